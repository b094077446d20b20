#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (chromium, chromium-driver)
# for the web console's browser test; no browser is downloaded by a tool.
# Idempotent.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "setup-browser: chromium and chromedriver ready"
    exit 0
fi
sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
echo "setup-browser: installing chromium chromium-driver"
$sudo_cmd apt-get update -qq
$sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
echo "setup-browser: chromium and chromedriver ready"
