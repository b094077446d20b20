#!/usr/bin/env bash
# The README's test command: installs the bindings tests' tools (Kotlin,
# JNA), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-bindings.sh
cargo test --workspace "$@"
