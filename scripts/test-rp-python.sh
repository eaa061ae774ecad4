#!/usr/bin/env bash
# A bank's first hour with the service-provider API (/v1/rp), in Python:
# tests/rp-python/bank.py (the code docs/relying-party.md prints) against a
# fresh eid-server, with people whose phones are the real `eid app` commands.
# The people and the two service providers are set up with the eid CLI as in
# the guide. Installs the pinned packages of tests/rp-python/requirements.txt
# from PyPI into a venv under the cargo target directory.
#
#   scripts/test-rp-python.sh [pytest arguments, e.g. -k receipt]
#
# TLS: the server's self-signed development certificate (dev-tls-cert.pem in
# its data folder) is the trust anchor given to requests as `verify=`; the CLI
# pins the same key by its SPKI pin.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
target=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
venv=$target/rp-python-venv
requirements=tests/rp-python/requirements.txt
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
  python3 -m venv "$venv" 2>/dev/null || {
    # Debian splits venv out of python3.
    apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi
cargo build --locked -p eid-server -p eid-cli
bin=$target/debug
eid=$bin/eid
py=$venv/bin/python

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
EID_SERVER_DATA_DIR="$work/server" EID_SERVER_LISTEN="127.0.0.1:$port" \
  "$bin/eid-server" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
base_url="https://127.0.0.1:$port"
ca="$work/server/dev-tls-cert.pem"
for _ in $(seq 100); do
  [ -f "$ca" ] && curl -sf --cacert "$ca" "$base_url/healthz" >/dev/null && break
  sleep 0.1
done
# The environment the eid commands read: the server, its key pin (printed at
# start) and the administrator's token file.
EID_SERVER=$base_url
EID_SPKI_PIN=$(sed -n 's/^ *TLS SPKI pin: *//p' "$work/server.log")
# The receipt-signing key as the operator reads it off the start-up lines.
printed_key=$(sed -n 's/^ *server key: *//p' "$work/server.log")
EID_ADMIN_TOKEN_FILE="$work/server/admin-token"
export EID_SERVER EID_SPKI_PIN EID_ADMIN_TOKEN_FILE
field() { "$py" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# A person: an identity with a user ID, an activation code, the app on a
# phone of their own. Prints the identity id.
person() { # user_id name pin phone_dir
  local identity code
  identity=$("$eid" --json admin create-identity --user-id "$1" --name "$2" \
    | field identity_id)
  code=$("$eid" --json admin activation-code --identity "$identity" \
    | field activation_code)
  mkdir "$4"
  EID_APP_DIR="$4" EID_PIN=$3 "$eid" --json app activate \
    --user-id "$1" --code "$code" >/dev/null
  echo "$identity"
}
karen=$(person 'Tulipan-1984!' 'Karen Holm' 482915 "$work/karen-phone")
niels=$(person 'Snebaer-2001#' 'Niels Dam' 730164 "$work/niels-phone")
# A person whose identity support has blocked (no phone needed).
blocked=$("$eid" --json admin create-identity --user-id 'Kastanje-1990!' \
  --name 'Ida Berg' | field identity_id)
"$eid" --json admin block --identity "$blocked" \
  --reason 'support case 1: phone stolen' >/dev/null

# The bank and a second service provider; each API key is shown once and
# kept in a file only its owner reads.
provider() { # name key_file; prints the service provider id
  "$eid" --json admin register-provider --name "$1" >"$work/provider.json"
  (umask 077 && field api_key <"$work/provider.json" >"$2")
  field service_provider_id <"$work/provider.json"
  rm "$work/provider.json"
}
bank=$(provider 'Sparekassen Vest' "$work/bank.key")
other=$(provider 'Pension Nord' "$work/other.key")

"$py" - "$work/setup.json" <<PY
import json, sys
json.dump({
    "base_url": "$base_url", "ca_file": "$ca", "eid": "$eid",
    "printed_server_key": "$printed_key",
    "bank": {"provider_id": "$bank", "api_key_file": "$work/bank.key"},
    "other": {"provider_id": "$other", "api_key_file": "$work/other.key"},
    "karen": {"user_id": "Tulipan-1984!", "identity_id": "$karen",
              "pin": "482915", "app_dir": "$work/karen-phone"},
    "niels": {"user_id": "Snebaer-2001#", "identity_id": "$niels",
              "pin": "730164", "app_dir": "$work/niels-phone"},
    "blocked_user_id": "Kastanje-1990!",
}, open(sys.argv[1], "w"))
PY
echo "rp-python: server, people and providers set up after $((SECONDS - started)) s"
tests_started=$SECONDS
status=0
# requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE from the environment
# override a session's `verify` (the server's certificate here), so neither
# may reach the tests. No bytecode caches in the source tree.
(cd tests/rp-python && env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE \
  PYTHONDONTWRITEBYTECODE=1 EID_RP_SETUP="$work/setup.json" \
  "$py" -m pytest -q "$@") || status=$?
echo "rp-python: tests took $((SECONDS - tests_started)) s, $((SECONDS - started)) s in all"
if grep -qE "panicked| ERROR " "$work/server.log"; then
  echo "the server logged errors during the run:" >&2
  grep -E "panicked| ERROR " "$work/server.log" | head -20 >&2
  exit 1
fi
exit $status
