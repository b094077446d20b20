#!/usr/bin/env bash
# The README's test command: installs the bindings tests' tools (Kotlin,
# JNA, the Swift chroot), PostgreSQL (for the storage conformance
# suite), the PDF report's font and reader, and Debian's Chromium with its
# WebDriver for the console's browser test, then runs every test of the
# workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-bindings.sh
bash scripts/setup-postgres.sh
bash scripts/setup-report-tools.sh
bash scripts/setup-browser.sh
cargo test --workspace "$@"
