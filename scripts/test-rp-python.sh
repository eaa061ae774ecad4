#!/usr/bin/env bash
# A bank's first hour with the service-provider API (/v1/rp), in Python:
# tests/rp-python/bank.py (the code docs/relying-party.md prints) against a
# fresh eid-server, with people whose phones are the real `eid app` commands.
# The people and the two service providers are set up with the eid CLI as in
# the guide. Installs the pinned packages of tests/rp-python/requirements.txt
# from PyPI into a venv in the cargo target directory (scripts/lib/
# python-suite.sh has what the suites share).
#
#   scripts/test-rp-python.sh [pytest arguments, e.g. -k receipt]
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
source scripts/lib/python-suite.sh
python_suite_venv rp-python
python_suite_server
base_url=$base
# The receipt-signing key as the operator reads it off the start-up lines.
printed_key=$(sed -n 's/^ *server key: *//p' "$work/server.log")

karen=$(python_suite_person 'Tulipan-1984!' 'Karen Holm' 482915 "$work/karen-phone")
niels=$(python_suite_person 'Snebaer-2001#' 'Niels Dam' 730164 "$work/niels-phone")
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
python_suite_pytest rp-python EID_RP_SETUP "$work/setup.json" "$@"
echo "rp-python: tests took $((SECONDS - tests_started)) s, $((SECONDS - started)) s in all"
python_suite_end rp-python
