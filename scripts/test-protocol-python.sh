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
# from PyPI into a venv in the cargo target directory (scripts/lib/
# python-suite.sh has what the suites share).
#
#   scripts/test-protocol-python.sh [pytest arguments, e.g. -k vector]
#
# EID_BIN_DIR=DIR takes eid-server and eid from DIR instead of building them.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
source scripts/lib/python-suite.sh
python_suite_venv protocol-python
python_suite_server

# A person with the app, and a service provider with its API key.
user_id='Rugbrød-2718!'
pin=604173
python_suite_person "$user_id" 'Jens Lund' "$pin" "$work/phone" >/dev/null
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
python_suite_end protocol-python
