# Everyday commands. Each line is a plain command you can type by hand.

# Print the fixture campaign's tallies (the README's run command).
run:
    cargo run -p kiemtra-cli -- fixture-tally

# Every test (the README's test command).
test:
    cargo test --workspace

# Formatting and lints as CI checks them.
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks recorded in BENCHMARKS.md.
bench:
    cargo bench -p kiemtra-core --bench visit
    cargo bench -p kiemtra-store --bench store

# Regenerate the campaign fixture (deterministic; the diff should be empty).
fixtures:
    python3 fixtures/generate_cantho_2015.py
