#!/usr/bin/env bash
# An independent implementation of docs/protocol.md in Python checks the
# project's known answers and one live receipt:
#   - tests/protocol-python/protocol.py encodes every signed message from the
#     document's rules alone and verifies with the `cryptography` package;
#     the tests read only testvectors/*.json (canonical bytes, hashes,
#     signatures incl. high-S ones, the rotating binding codes);
#   - test_live.py asks a fresh eid-server for a request with a service
#     provider's API key, lets the real `eid app` approve it, fetches the
#     signed receipt and verifies it with the key from /v1/server-key.
# Installs the pinned packages of tests/protocol-python/requirements.txt
# from PyPI into a venv in the cargo target directory.
#
#   scripts/test-protocol-python.sh [pytest arguments, e.g. -k vector]
#
# EID_BIN_DIR=DIR takes eid-server and eid from DIR instead of building them.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
target=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
venv=$target/protocol-python-venv
requirements=tests/protocol-python/requirements.txt
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
  python3 -m venv "$venv" 2>/dev/null || {
    # Debian splits venv out of python3.
    apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi
work=$(mktemp -d)
bin=$work/bin
mkdir "$bin"
if [ -n "${EID_BIN_DIR:-}" ]; then
  # Binaries built beforehand (a target directory shared by several
  # checkouts holds in debug/ whichever checkout built last).
  cp "$EID_BIN_DIR/eid-server" "$EID_BIN_DIR/eid" "$bin/"
else
  cargo build --locked -p eid-server -p eid-cli
  cp "$target/debug/eid-server" "$target/debug/eid" "$bin/"
fi
eid=$bin/eid
py=$venv/bin/python
port=$((20000 + RANDOM % 20000))
EID_SERVER_DATA_DIR="$work/server" EID_SERVER_LISTEN="127.0.0.1:$port" \
  "$bin/eid-server" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
base="https://127.0.0.1:$port"
ca="$work/server/dev-tls-cert.pem"
for _ in $(seq 100); do
  [ -f "$ca" ] && curl -sf --cacert "$ca" "$base/healthz" >/dev/null && break
  sleep 0.1
done
EID_SERVER=$base
EID_SPKI_PIN=$(sed -n 's/^ *TLS SPKI pin: *//p' "$work/server.log")
EID_ADMIN_TOKEN_FILE="$work/server/admin-token"
export EID_SERVER EID_SPKI_PIN EID_ADMIN_TOKEN_FILE
field() { "$py" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# A person with the app, and a service provider with its API key.
user_id='Rugbrød-2718!'
pin=604173
identity=$("$eid" --json admin create-identity --user-id "$user_id" \
  --name 'Jens Lund' | field identity_id)
code=$("$eid" --json admin activation-code --identity "$identity" | field activation_code)
mkdir "$work/phone"
EID_APP_DIR="$work/phone" EID_PIN=$pin "$eid" --json app activate \
  --user-id "$user_id" --code "$code" >/dev/null
"$eid" --json admin register-provider --name 'Andelskassen Nord' >"$work/provider.json"
(umask 077 && field api_key <"$work/provider.json" >"$work/provider.key")
rm "$work/provider.json"

echo "protocol-python: server and person set up after $((SECONDS - started)) s"
status=0
(cd tests/protocol-python && PYTHONDONTWRITEBYTECODE=1 \
  EID_LIVE_SERVER="$base" EID_LIVE_CA_FILE="$ca" EID_LIVE_EID="$eid" \
  EID_LIVE_APP_DIR="$work/phone" EID_LIVE_PIN="$pin" EID_LIVE_USER_ID="$user_id" \
  EID_LIVE_PROVIDER_KEY_FILE="$work/provider.key" \
  "$py" -m pytest -q "$@") || status=$?
echo "protocol-python: $((SECONDS - started)) s in all"
if grep -qE "panicked| ERROR " "$work/server.log"; then
  echo "the server logged errors during the run:" >&2
  grep -E "panicked| ERROR " "$work/server.log" | head -20 >&2
  exit 1
fi
exit $status
