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
. scripts/lib/bench-server.sh
bench_bins
bench_gauge
bench_server
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
