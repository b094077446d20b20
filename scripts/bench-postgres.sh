#!/usr/bin/env bash
# The fleet benchmark side by side: one server on its embedded SQLite
# store, one server on PostgreSQL, three servers over one PostgreSQL
# database. Starts a throwaway PostgreSQL cluster (as the postgres user when
# run as root) on a free port, runs the three, stops and removes it.
#   DEVICES=1000 VISITS=2 EDITS=200 PER_TEAM=10 bash scripts/bench-postgres.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup-postgres.sh >/dev/null
devices="${DEVICES:-1000}"; visits="${VISITS:-2}"; edits="${EDITS:-200}"; per_team="${PER_TEAM:-10}"
cargo build --release -p kiemtra-server -p kiemtra-loadgen >/dev/null
target="${CARGO_TARGET_DIR:-$root/target}/release"
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
dir="$(mktemp -d)"
as=()
if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$dir"; as=(runuser -u postgres --); fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -E UTF8 -U postgres --no-sync >/dev/null
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
stop() { "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap stop EXIT
url() { echo "postgres://postgres@127.0.0.1:$port/$1"; }
mkdb() { "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE $1" >/dev/null; }
args=(fleet --devices "$devices" --visits "$visits" --edits "$edits" --per-team "$per_team")
echo "## one server, embedded SQLite"
"$target/kiemtra-loadgen" "${args[@]}"
echo; echo "## one server, PostgreSQL"
mkdb one; "$target/kiemtra-loadgen" "${args[@]}" --database "$(url one)" --servers 1
echo; echo "## three servers, one PostgreSQL database"
mkdb three; "$target/kiemtra-loadgen" "${args[@]}" --database "$(url three)" --servers 3
