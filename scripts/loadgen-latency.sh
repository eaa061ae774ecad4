#!/usr/bin/env bash
# Latency under load (docs/benchmarks.md): starts a release eid-server of its
# own on 127.0.0.1 (flood limits off, fresh data folder), finds the maximum
# rate of full logins with one unpaced eid-loadgen run, then runs open-loop
# at 50 % and 90 % of it (`--rate`: each login starts on its slot whatever
# the previous one did) and prints p50/p99 per step. Prints the machine's
# gauge first (openssl speed ecdsap256, one core).
#
#   scripts/loadgen-latency.sh [flow] [seconds]   (default plain, 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
flow=${1:-plain}
secs=${2:-10}
. scripts/lib/bench-server.sh
bench_bins
bench_gauge
bench_server
load() {
  EID_SERVER="https://127.0.0.1:$port" EID_SPKI_PIN="$pin" \
    EID_ADMIN_TOKEN_FILE="$work/admin-token" \
    "$bin/eid-loadgen" --flow "$flow" --phones 64 --http2 \
    --duration-secs "$secs" --json "$@"
}
report() {
  python3 - "$1" "$2" <<'PY'
import json, sys
label, out = sys.argv[1:]
r = json.loads(out)
print(f"{label}: {r['logins_per_sec']:.0f} logins/s, {r['errors']} errors, "
      f"login p50 {r['login_p50_us'] / 1000:.1f} ms p99 {r['login_p99_us'] / 1000:.1f} ms")
for s in r["steps"]:
    print(f"  {s['step']:<16} p50 {s['p50_us'] / 1000:6.2f} ms   p99 {s['p99_us'] / 1000:6.2f} ms")
PY
}
max_out=$(load)
report "maximum ($flow)" "$max_out"
max=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["logins_per_sec"])' "$max_out")
for share in 50 90; do
  rate=$(python3 -c "print(round($max * $share / 100))")
  report "$share % ($rate/s, open loop)" "$(load --rate "$rate")"
done
