# Everyday commands. Each line is a plain command you can type by hand.

# Run the sync server on its embedded SQLite default (the README's run command).
serve:
    cargo run --release -p kiemtra-server

# The whole story: server, phones, campaign, conflicts, approvals, report.
demo:
    cargo run -p kiemtra-cli -- demo

# Every test (the README's test command).
test:
    bash scripts/test.sh

# Formatting and lints as CI checks them.
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks recorded in BENCHMARKS.md.
bench:
    cargo bench -p kiemtra-core --bench visit
    cargo bench -p kiemtra-store --bench store
    cargo build --release -p kiemtra-server -p kiemtra-loadgen
    target/release/kiemtra-loadgen standard
    target/release/kiemtra-loadgen history
    target/release/kiemtra-loadgen shaped
    target/release/kiemtra-loadgen fleet

# The fixture campaign's tallies, in Vietnamese and English.
tally:
    cargo run -p kiemtra-cli -- fixture-tally

# Regenerate the campaign fixture (deterministic; the diff should be empty).
fixtures:
    python3 fixtures/generate_cantho_2015.py
