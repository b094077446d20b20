#!/usr/bin/env bash
# Installs what the PDF report needs and what its test reads it with:
# Debian's fonts-liberation2 (Liberation Serif 2, Times-New-Roman metrics,
# every Vietnamese letter; the server embeds it in the PDF) and
# poppler-utils (pdftotext, pdftoppm). Idempotent.
set -euo pipefail
need=""
[ -f /usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf ] || need="$need fonts-liberation2"
command -v pdftotext >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1 || need="$need poppler-utils"
if [ -n "$need" ]; then
    sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    echo "setup-report-tools: installing$need"
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
echo "setup-report-tools: fonts and PDF tools ready"
