#!/usr/bin/env bash
# Installs Debian's PostgreSQL server (Debian 12: PostgreSQL 15) when no
# server is there: the storage conformance suite starts a throwaway cluster
# of its own with it (initdb in a temporary folder, as the postgres user
# when run as root). Nothing is started here. Idempotent.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${KIEMTRA_PG_BIN:-}" ]; then
    echo "setup-postgres: PostgreSQL server ready"
    exit 0
fi
sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
echo "setup-postgres: installing postgresql"
$sudo_cmd apt-get update -qq
# The package's own cluster is not wanted: the tests make their own.
$sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
        $sudo_cmd pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "setup-postgres: no initdb after installing" >&2; exit 1; }
echo "setup-postgres: PostgreSQL server ready"
