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
cargo build --locked --release -p eid-server -p eid-loadgen >/dev/null
echo "gauge: $(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/^ *256 bits ecdsa/ {print $(NF-1) " signatures/s (P-256, one core)"}')"
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
EID_SERVER_DATA_DIR="$work" EID_SERVER_LISTEN="127.0.0.1:$port" \
  EID_SERVER_FLOODS__PER_IDENTITY_PER_MINUTE=0 \
  EID_SERVER_FLOODS__PER_IDENTITY_PER_HOUR=0 \
  EID_SERVER_FLOODS__PER_PROVIDER_PER_MINUTE=0 \
  EID_SERVER_FLOODS__PER_ADDRESS__PER_MINUTE=0 \
  target/release/eid-server >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  curl -skf "https://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done
pin=$(grep -o 'sha256/[A-Za-z0-9+/=]*' "$work/server.log" | head -1)
load() {
  EID_SERVER="https://127.0.0.1:$port" EID_SPKI_PIN="$pin" \
    EID_ADMIN_TOKEN_FILE="$work/admin-token" \
    target/release/eid-loadgen --flow "$flow" --phones 64 --http2 \
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
