#!/usr/bin/env bash
# An OpenID Connect login the way a service provider's Python code does it:
# authlib (discovery, PAR with PKCE S256, private_key_jwt or
# client_secret_basic, the token exchange, the ID token) against a fresh
# eid-server, the person's browser with requests and the phone with the real
# `eid app` commands. The person and the clients are set up with the eid CLI
# as in a developer's first hour (docs/oidc.md). Installs the pinned packages
# of tests/oidc-python/requirements.txt from PyPI into a venv under target/.
#
#   scripts/test-oidc-python.sh [pytest arguments, e.g. -k receipt]
#
# TLS: the server's self-signed development certificate (dev-tls-cert.pem in
# its data folder) is the trust anchor given to requests as `verify=`; the CLI
# pins the same key by its SPKI pin.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
venv=target/oidc-python-venv
requirements=tests/oidc-python/requirements.txt
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
  python3 -m venv "$venv" 2>/dev/null || {
    # Debian splits venv out of python3.
    apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi
cargo build --locked -p eid-server -p eid-cli
bin=$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)
eid=$bin/eid
py=$(cd "$venv/bin" && pwd)/python

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
EID_SERVER_DATA_DIR="$work/server" EID_SERVER_LISTEN="127.0.0.1:$port" \
  "$bin/eid-server" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
issuer="https://127.0.0.1:$port"
ca="$work/server/dev-tls-cert.pem"
for _ in $(seq 100); do
  [ -f "$ca" ] && curl -sf --cacert "$ca" "$issuer/healthz" >/dev/null && break
  sleep 0.1
done
# The environment the eid commands read: the server, its key pin (printed at
# start) and the administrator's token file.
EID_SERVER=$issuer
EID_SPKI_PIN=$(sed -n 's/^ *TLS SPKI pin: *//p' "$work/server.log")
EID_ADMIN_TOKEN_FILE="$work/server/admin-token"
export EID_SERVER EID_SPKI_PIN EID_ADMIN_TOKEN_FILE
field() { "$py" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# The person: an identity with a user ID, an activation code, the app.
user_id='Tulipan-1984!'
pin=482915
identity=$("$eid" --json admin create-identity --user-id "$user_id" \
  --name 'Karen Holm' | field identity_id)
code=$("$eid" --json admin activation-code --identity "$identity" | field activation_code)
mkdir "$work/phone"
EID_APP_DIR="$work/phone" EID_PIN=$pin "$eid" --json app activate \
  --user-id "$user_id" --code "$code" >/dev/null

# The service provider and its two clients: A signs client assertions with
# its own P-256 key (private_key_jwt); B, of another sector, has a secret.
provider_name='Sparekassen Vest'
"$eid" --json admin register-provider --name "$provider_name" >"$work/provider.json"
provider=$(field service_provider_id <"$work/provider.json")
# Its API key reads the full receipt at /v1/rp (the ID token has its hash).
(umask 077 && field api_key <"$work/provider.json" >"$work/provider.key")
rm "$work/provider.json"
"$py" tests/oidc-python/client_key.py "$work/client-a.pem" "$work/client-a.jwk"
client_a=$("$eid" --json admin register-oidc-client --provider "$provider" \
  --redirect-uri http://127.0.0.1:8080/callback --jwk-file "$work/client-a.jwk" \
  | field client_id)
"$eid" --json admin register-oidc-client --provider "$provider" \
  --redirect-uri https://pension.example/callback --client-secret >"$work/client-b.json"
client_b=$(field client_id <"$work/client-b.json")
(umask 077 && field client_secret <"$work/client-b.json" >"$work/client-b.secret")
rm "$work/client-b.json"

"$py" - "$work/setup.json" <<PY
import json, sys
json.dump({
    "issuer": "$issuer", "ca_file": "$ca", "eid": "$eid",
    "user_id": "$user_id", "pin": "$pin", "identity_id": "$identity",
    "app_dir": "$work/phone", "provider_name": "$provider_name",
    "provider_key_file": "$work/provider.key",
    "key_client": {"client_id": "$client_a",
                   "private_key_file": "$work/client-a.pem",
                   "redirect_uri": "http://127.0.0.1:8080/callback"},
    "secret_client": {"client_id": "$client_b",
                      "client_secret_file": "$work/client-b.secret",
                      "redirect_uri": "https://pension.example/callback"},
}, open(sys.argv[1], "w"))
PY
echo "oidc-python: server and person set up after $((SECONDS - started)) s"
tests_started=$SECONDS
status=0
# requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE from the environment
# override a session's `verify` (the server's certificate here), so neither
# may reach the tests. No bytecode caches in the source tree.
(cd tests/oidc-python && env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE \
  PYTHONDONTWRITEBYTECODE=1 EID_OIDC_SETUP="$work/setup.json" \
  "$py" -m pytest -q "$@") || status=$?
echo "oidc-python: tests took $((SECONDS - tests_started)) s, $((SECONDS - started)) s in all"
if grep -qE "panicked| ERROR " "$work/server.log"; then
  echo "the server logged errors during the run:" >&2
  grep -E "panicked| ERROR " "$work/server.log" | head -20 >&2
  exit 1
fi
exit $status
