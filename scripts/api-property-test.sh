#!/usr/bin/env bash
# The HTTP API against its own OpenAPI document, with schemathesis: builds
# the server (debug), starts it on 127.0.0.1 with a free port and a
# throwaway data folder, enrolls an administrator and an inspector, and runs
# every check schemathesis has (no server errors, status codes, content
# types, headers and bodies as documented, invalid input refused, auth not
# ignored, 405 with Allow) against GET /v1/openapi.json — as the
# administrator, then as an inspector and as an auditor, over a directory,
# a campaign and a visit that signed log entries made
# (scripts/api_property_seed.py). Bounded: about two minutes on two cores. The server is stopped however the script ends.
#
#   bash scripts/api-property-test.sh            # API_EXAMPLES=N per operation (default 100)
#   SEED=123 bash scripts/api-property-test.sh   # replay a run
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
examples=${API_EXAMPLES:-100}
schemathesis_version=4.32.5

cargo build -q -p kiemtra-server
bin="$target/debug/kiemtra-server"

# schemathesis in a virtual environment of its own under target/.
venv="$target/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version" \
    || ! "$venv/bin/python" -c "import cryptography" 2>/dev/null; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian keeps venv's pip apart: python3-venv.
        sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq
        $sudo_cmd apt-get install -y -qq python3-venv
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$schemathesis_version" cryptography
fi

work=$(mktemp -d)
server=""
stop() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop EXIT

RUST_LOG=warn "$bin" --listen 127.0.0.1:0 --data "$work/data" >"$work/server.out" 2>"$work/server.log" &
server=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$work/server.out" | head -n1)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; echo "api-property-test: the server did not start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { echo "api-property-test: the server did not say its port" >&2; exit 1; }
url="http://127.0.0.1:$port"
echo "server on $url (data in $work/data)"

# The first administrator's code is made on the server machine; an
# inspector's and an auditor's too. The keys are RFC 8032's test keys (TEST
# 1 to 3): valid Ed25519 public keys; the administrator's signs the seeded
# log entries with its published private key.
code() { RUST_LOG=warn "$bin" enroll-code --data "$work/data" --user "$1" --team "$2" --role "$3" | head -n1; }
admin_code=$(code quan-tri so-noi-vu administrator)
inspector_code=$(code kiem-tra-an doan-1 inspector)
auditor_code=$(code kiem-toan thanh-tra auditor)
read -r admin_token admin_device < <(python3 scripts/api_property_enroll.py "$url" "$admin_code" \
    d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a "Bàn quản trị")
read -r inspector_token _ < <(python3 scripts/api_property_enroll.py "$url" "$inspector_code" \
    3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c "Điện thoại kiểm tra")
read -r auditor_token _ < <(python3 scripts/api_property_enroll.py "$url" "$auditor_code" \
    fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025 "Máy kiểm toán")
[ -n "$admin_token" ] && [ -n "$inspector_token" ] && [ -n "$auditor_token" ] || { echo "api-property-test: enrollment failed" >&2; exit 1; }
# Signed entries make a directory, a campaign and a visit to answer with.
visit=$("$venv/bin/python" scripts/api_property_seed.py "$url" "$admin_token" "$admin_device")
echo "seeded the administration log; the inspector's visit is $visit"

run() {
    local who=$1 token=$2 n=$3
    echo "== schemathesis as the $who ($n examples per operation)"
    local seed=()
    [ -n "${SEED:-}" ] && seed=(--seed "$SEED")
    (cd "$work" && SCHEMATHESIS_HOOKS="$root/scripts/schemathesis_hooks.py" "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run \
        "$url/v1/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks all \
        --phases examples,coverage,fuzzing \
        --max-examples "$n" \
        --workers 1 \
        --request-timeout 20 \
        --generation-database none \
        --no-color \
        "${seed[@]}")
}

status=0
run administrator "$admin_token" "$examples" || status=1
run inspector "$inspector_token" "$(( (examples + 1) / 2 ))" || status=1
run auditor "$auditor_token" "$(( (examples + 1) / 2 ))" || status=1
if [ "$status" != 0 ]; then
    echo "--- server log (warnings and errors)"
    tail -n 50 "$work/server.log"
    echo "api-property-test: schemathesis found answers that do not match the document" >&2
fi
exit "$status"
