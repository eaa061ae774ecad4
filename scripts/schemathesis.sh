#!/usr/bin/env bash
# Hostile HTTP input: runs schemathesis against a fresh eid-server's
# own OpenAPI document and fails on any 5xx, any response that breaks the
# documented schema, status code or content type, and any malformed input the
# server accepts. Installs schemathesis from PyPI into a venv under target/.
#
#   scripts/schemathesis.sh [seconds]      (default 60; the budget of the run)
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-60}
version=4.32.5
venv=target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv" 2>/dev/null || {
    # Debian splits venv out of python3.
    apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet "schemathesis==$version"
fi
cargo build --locked -p eid-server
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
# The per-address limit on the public endpoints stays in the path but is
# raised far above this run's rate: at its default, most of the run's calls to
# them would be answered 429 before their input is looked at (its 429 answers
# are tested in server/tests/web.rs).
EID_SERVER_DATA_DIR="$work" EID_SERVER_LISTEN="127.0.0.1:$port" \
  EID_SERVER_FLOODS__PER_ADDRESS__PER_MINUTE=1000000 \
  EID_SERVER_FLOODS__PER_ADDRESS__BURST=100000 \
  target/debug/eid-server >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
base="https://127.0.0.1:$port"
for _ in $(seq 50); do
  curl -skf "$base/healthz" >/dev/null && break
  sleep 0.2
done
token=$(cat "$work/admin-token")
# The header from a file: curl's argv is visible to every local user (ps).
(umask 077 && printf 'Authorization: Bearer %s\n' "$token" >"$work/admin-auth")
api_key=$(curl -sk -X POST "$base/v1/admin/service-providers" \
  -H @"$work/admin-auth" -H 'content-type: application/json' \
  -d '{"name":"Schemathesis Bank"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
# An OIDC client (of a provider of its own), so PAR and token get past client
# authentication and their parameters are what is fuzzed.
sp_id=$(curl -sk -X POST "$base/v1/admin/service-providers" \
  -H @"$work/admin-auth" -H 'content-type: application/json' \
  -d '{"name":"Schemathesis OIDC Bank"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["service_provider_id"])')
read -r client_id client_secret < <(curl -sk -X POST "$base/v1/admin/oidc-clients" \
  -H @"$work/admin-auth" -H 'content-type: application/json' \
  -d "{\"service_provider_id\":\"$sp_id\",\"redirect_uris\":[\"https://bank.example/cb\"],\"client_secret_basic\":true,\"scopes\":[\"openid\"]}" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["client_id"], d["client_secret"])')
cat >"$work/schemathesis.toml" <<TOML
[auth.openapi.admin_token]
bearer = "$token"
[auth.openapi.api_key]
bearer = "$api_key"
[auth.openapi.client_secret_basic]
username = "$client_id"
password = "$client_secret"
TOML
# The TLS certificate is the server's self-signed development one.
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
  --tls-verify false --max-time "$budget" --seed 1 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection
# An ERROR-level line or a panic (not the word "error" in a field of an
# INFO line, such as a refused batch's reason).
if grep -qE "panicked| ERROR " "$work/server.log"; then
  echo "the server logged errors during the run:" >&2
  grep -E "panicked| ERROR " "$work/server.log" | head -20 >&2 || true
  exit 1
fi
echo "schemathesis: no failures in ${budget}s"
