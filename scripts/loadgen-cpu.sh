#!/usr/bin/env bash
# Throughput and the server's CPU per login, for the plain service-provider
# flow and the OpenID Connect flow (docs/benchmarks.md): starts a release
# eid-server of its own on 127.0.0.1 (flood limits off, fresh data folder),
# runs eid-loadgen against it RUNS times per flow, alternating the flows, and
# prints logins/s and server CPU milliseconds per login: user + system time
# of the server process (from /proc) over the timed logins only, which the
# load generator reads itself (--cpu-pid), and, as before, over the whole
# run including its set-up (64 identities and activations), and the load
# generator's own CPU per login over the timed logins (the phones' and the
# service provider's side, on the same cores). Prints the machine's gauge
# first (openssl speed ecdsap256, one core).
#
#   scripts/loadgen-cpu.sh [runs] [seconds]     (default 5 runs of 10 s)
#
# FLOWS="plain" (or "oidc") runs one flow only; the default is both.
# BIN=DIR takes eid-server and eid-loadgen from DIR without building (to
# alternate two saved builds).
#
# RATE=N paces the logins to N per second in total (open loop) instead of
# as fast as the phones go: CPU per login depends on the load (how many
# writes share a commit, how often threads sleep and wake), so two builds
# compare best at the same rate on a busy machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
secs=${2:-10}
if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  cargo build --locked --release -p eid-server -p eid-loadgen >/dev/null
  bin=${CARGO_TARGET_DIR:-target}/release
fi
echo "gauge: $(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/^ *256 bits ecdsa/ {print $(NF-1) " signatures/s (P-256, one core)"}')"
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
EID_SERVER_DATA_DIR="$work" EID_SERVER_LISTEN="127.0.0.1:$port" \
  EID_SERVER_FLOODS__PER_IDENTITY_PER_MINUTE=0 \
  EID_SERVER_FLOODS__PER_IDENTITY_PER_HOUR=0 \
  EID_SERVER_FLOODS__PER_PROVIDER_PER_MINUTE=0 \
  EID_SERVER_FLOODS__PER_ADDRESS__PER_MINUTE=0 \
  "$bin/eid-server" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  curl -skf "https://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done
pin=$(grep -o 'sha256/[A-Za-z0-9+/=]*' "$work/server.log" | head -1)
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
for run in $(seq "$runs"); do
  for flow in ${FLOWS:-plain oidc}; do
    before=$(cpu_ticks)
    out=$(EID_SERVER="https://127.0.0.1:$port" EID_SPKI_PIN="$pin" \
      EID_ADMIN_TOKEN_FILE="$work/admin-token" \
      "$bin/eid-loadgen" --flow "$flow" --phones 64 --http2 \
      --duration-secs "$secs" --json --cpu-pid "$server" ${RATE:+--rate "$RATE"})
    after=$(cpu_ticks)
    python3 - "$flow" "$run" "$before" "$after" "$ticks" "$out" <<'EOF'
import json, sys
flow, run, before, after, ticks, out = sys.argv[1:]
r = json.loads(out)
logins = max(r['logins'], 1)
whole = (int(after) - int(before)) * 1000 / int(ticks) / logins
timed = r['server_cpu_ticks'] * 1000 / int(ticks) / logins
own = r.get('loadgen_cpu_ticks')  # absent from older builds
own = 'n/a' if own is None else f"{own * 1000 / int(ticks) / logins:.3f}"
print(f"run {run} {flow:5}: {r['logins_per_sec']:7.0f} logins/s, {r['errors']} errors, "
      f"server CPU {timed:.3f} ms/login ({whole:.3f} with set-up), loadgen {own}, "
      f"login p50 {r['login_p50_us'] / 1000:.1f} ms p99 {r['login_p99_us'] / 1000:.1f} ms")
EOF
  done
done
