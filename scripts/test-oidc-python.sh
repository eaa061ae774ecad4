#!/usr/bin/env bash
# An OpenID Connect login the way a service provider's Python code does it:
# authlib (discovery, PAR with PKCE S256, private_key_jwt or
# client_secret_basic, the token exchange, the ID token) against a fresh
# eid-server, the person's browser with requests and the phone with the real
# `eid app` commands. The person and the clients are set up with the eid CLI
# as in a developer's first hour (docs/oidc.md). Installs the pinned packages
# of tests/oidc-python/requirements.txt from PyPI into a venv in the cargo
# target directory (scripts/lib/python-suite.sh has what the suites share).
#
#   scripts/test-oidc-python.sh [pytest arguments, e.g. -k receipt]
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
source scripts/lib/python-suite.sh
python_suite_venv oidc-python
python_suite_server
issuer=$base

# The person: an identity with a user ID, an activation code, the app.
user_id='Tulipan-1984!'
pin=482915
identity=$(python_suite_person "$user_id" 'Karen Holm' "$pin" "$work/phone")

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
python_suite_pytest oidc-python EID_OIDC_SETUP "$work/setup.json" "$@"
echo "oidc-python: tests took $((SECONDS - tests_started)) s, $((SECONDS - started)) s in all"
python_suite_end oidc-python
