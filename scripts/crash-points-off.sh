#!/usr/bin/env bash
# Checks that release builds carry no fail point (docs/reliability.md): the feature
# `crash-points` is off in `cargo build --release --bin eid` (only the cli's
# dev-dependencies turn it on, for cli/tests/cli/crash.rs), no point name is in the
# binary, and EID_CRASH_AT at every point is ignored: an activation through
# `eid serve` and `eid app activate` with the variable set completes and
# neither process dies.
#
#   scripts/crash-points-off.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if cargo tree -p eid-cli -e normal,build,features --locked | grep -q crash-points; then
  echo "FAIL: crash-points is enabled for the eid binary's normal dependencies" >&2
  exit 1
fi
cargo build --release --locked -p eid-cli --bin eid
bin=target/release/eid

points=(core.pin.attempt_counted core.pin.reset core.activation.pending_stored
  core.activation.answered core.activation.account_stored core.decision.signed
  core.decision.answered core.decision.receipt_stored
  server.decision.committed server.activation.code_used)
for p in "${points[@]}" EID_CRASH_AT; do
  if strings "$bin" | grep -qF "$p"; then
    echo "FAIL: $p is in the release binary" >&2
    exit 1
  fi
done

work=$(mktemp -d)
server=
cleanup() {
  if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkfifo "$work/ready"
EID_CRASH_AT=server.activation.code_used "$bin" --json serve --data-dir "$work/server" \
  >"$work/ready" 2>"$work/server.err" &
server=$!
read -r line <"$work/ready"
export EID_SERVER EID_SPKI_PIN EID_ADMIN_TOKEN_FILE EID_APP_DIR="$work/phone" EID_KDF_ITERATIONS=1000
EID_SERVER=$(jq -r .listening <<<"$line")
EID_SPKI_PIN=$(jq -r .spki_pin <<<"$line")
EID_ADMIN_TOKEN_FILE=$(jq -r .admin_token_file <<<"$line")
identity=$("$bin" --json admin create-identity --user-id 'crash#2024x' --name 'Grete Jensen' | jq -r .identity_id)
code=$("$bin" --json admin activation-code --identity "$identity" | jq -r .activation_code)
for p in core.activation.pending_stored core.activation.answered core.activation.account_stored; do
  # Each point is tried in turn; only the first activation can succeed, the
  # later ones are refused by the server (spent code), none may crash.
  set +e
  EID_CRASH_AT=$p "$bin" --json app activate --user-id 'crash#2024x' --code "$code" --pin-stdin \
    <<<"384726" >"$work/activate.out"
  status=$?
  set -e
  if ((status > 128)); then
    echo "FAIL: eid app activate died with signal $((status - 128)) at $p" >&2
    exit 1
  fi
done
state=$("$bin" --json app authenticators | jq -r '.accounts[0].state')
if [[ "$state" != active ]]; then
  echo "FAIL: the activation did not complete (state $state)" >&2
  exit 1
fi
if ! kill -0 "$server" 2>/dev/null; then
  echo "FAIL: the server died with EID_CRASH_AT set" >&2
  exit 1
fi
echo "OK: no fail point in $bin; EID_CRASH_AT ignored by the app and the server"
