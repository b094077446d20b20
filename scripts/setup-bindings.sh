#!/usr/bin/env bash
# Installs what the bindings tests need beyond Rust and Python: a Kotlin
# compiler (npm's kotlin-compiler, a full distribution with
# kotlinx-coroutines) under target/tools/, JNA (Debian's libjna-java) and a
# Java runtime. Idempotent; quick when everything is there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${CARGO_TARGET_DIR:-$root/target}/tools"

sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
apt_need=""
[ -f /usr/share/java/jna.jar ] || apt_need="$apt_need libjna-java"
command -v java >/dev/null 2>&1 || apt_need="$apt_need default-jre-headless"
command -v python3 >/dev/null 2>&1 || apt_need="$apt_need python3"
command -v npm >/dev/null 2>&1 || apt_need="$apt_need npm"
if [ -n "$apt_need" ]; then
    echo "setup-bindings: installing$apt_need"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq $apt_need
fi

kotlinc="$tools/node_modules/kotlin-compiler/bin/kotlinc"
if [ ! -x "$kotlinc" ]; then
    echo "setup-bindings: installing kotlin-compiler@2.4.20 into $tools"
    mkdir -p "$tools"
    (cd "$tools" && npm install --no-audit --no-fund --silent kotlin-compiler@2.4.20)
fi
[ -x "$kotlinc" ] || { echo "setup-bindings: no kotlinc at $kotlinc" >&2; exit 1; }
echo "setup-bindings: kotlinc, JNA and java ready"
