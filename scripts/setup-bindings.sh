#!/usr/bin/env bash
# Installs what the bindings tests need beyond Rust and Python: a Kotlin
# compiler (npm's kotlin-compiler, a full distribution with
# kotlinx-coroutines) under target/tools/, JNA (Debian's libjna-java), a
# Java runtime, and a Debian trixie chroot with Swift under target/tools/
# (root only). Idempotent; quick when everything is there.
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

# Swift: Debian 12 has none; Debian 13 (trixie) ships swiftlang. A minimal
# trixie chroot from the Debian mirror apt already uses, with swiftlang in
# it (about 3 GB, a minute or two here). Needs root, as the test does.
swift_root="${KIEMTRA_SWIFT_ROOT:-$tools/swift-trixie}"
if [ "$(id -u)" != 0 ]; then
    echo "setup-bindings: not root: no Swift chroot (the Swift scenario needs root and will fail)" >&2
    exit 0
fi
if [ ! -x "$swift_root/usr/libexec/swift/bin/swiftc" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq debootstrap
    }
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
    [ -n "$mirror" ] || mirror="$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
    [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
    echo "setup-bindings: making a trixie chroot with swiftlang at $swift_root (from $mirror)"
    rm -rf "$swift_root"
    mkdir -p "$swift_root"
    debootstrap --variant=minbase trixie "$swift_root" "$mirror" >/dev/null
    chroot "$swift_root" apt-get install -y -qq swiftlang libc6-dev libstdc++-14-dev >/dev/null
fi
[ -x "$swift_root/usr/libexec/swift/bin/swiftc" ] || { echo "setup-bindings: no swiftc in $swift_root" >&2; exit 1; }
echo "setup-bindings: Swift (Debian trixie chroot) ready"
