#!/usr/bin/env bash
# Soak (docs/reliability.md, "Soak"): eid-server as its own process on 127.0.0.1 and
# eid-loadgen pacing full login flows at a fixed rate, sampling the server's
# resident memory every 10 s. Fails on any error, on a rate under 95% of the
# target, or when memory does not stay flat (the last samples more than 10%
# above the samples after warm-up).
#
#   scripts/soak.sh [seconds] [logins per second] [phones]   (default 600 1040 64)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
rate=${2:-1040}
phones=${3:-64}
cargo build --release --locked -p eid-server -p eid-loadgen
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
# The load generator's 64 phones each log in many times a minute: the
# per-person and per-provider rate limits (MFA-fatigue defense) are off here,
# and so is the per-address limit (all 64 activate from 127.0.0.1 at once),
# as FloodConfig::rate_limits_off() does for the embedded server.
EID_SERVER_FLOODS__PER_IDENTITY_PER_MINUTE=0 EID_SERVER_FLOODS__PER_IDENTITY_PER_HOUR=0 \
EID_SERVER_FLOODS__PER_PROVIDER_PER_MINUTE=0 EID_SERVER_FLOODS__PER_PROVIDER_PER_HOUR=0 \
EID_SERVER_FLOODS__PER_ADDRESS__PER_MINUTE=0 \
EID_SERVER_DATA_DIR="$work" EID_SERVER_LISTEN="127.0.0.1:$port" EID_SERVER_LOG_FORMAT=json \
  EID_LOG=warn target/release/eid-server >"$work/server.out" 2>"$work/server.err" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  grep -q "TLS SPKI pin" "$work/server.out" 2>/dev/null && break
  sleep 0.1
done
pin=$(sed -n 's/.*TLS SPKI pin: *//p' "$work/server.out")
target/release/eid-loadgen --server "https://127.0.0.1:$port" --spki-pin "$pin" \
  --admin-token-file "$work/admin-token" --phones "$phones" --http2 \
  --duration-secs "$seconds" --rate "$rate" --rss-every-secs 10 --rss-pid "$server" \
  --json >"$work/report.json"
python3 - "$work/report.json" "$rate" <<'PY'
import json, statistics, sys
report = json.load(open(sys.argv[1]))
target = float(sys.argv[2])
rss = report["rss_kib_samples"]
print(json.dumps({k: report[k] for k in ("seconds", "logins", "errors", "logins_per_sec",
                                          "login_p50_us", "login_p99_us")}))
print("server RSS MiB every 10 s:", [round(k / 1024, 1) for k in rss])
warm = rss[len(rss) // 5: len(rss) // 5 + 3] or rss
tail = rss[-3:]
growth = statistics.mean(tail) / statistics.mean(warm) - 1
print(f"server RSS after warm-up {statistics.mean(warm)/1024:.1f} MiB, at the end "
      f"{statistics.mean(tail)/1024:.1f} MiB ({growth:+.1%})")
problems = []
if report["errors"]:
    problems.append(f"{report['errors']} errors")
if report["logins_per_sec"] < 0.95 * target:
    problems.append(f"rate {report['logins_per_sec']:.0f}/s under 95% of {target:.0f}/s")
if growth > 0.10:
    problems.append(f"memory grew {growth:+.1%}")
if problems:
    sys.exit("soak failed: " + "; ".join(problems))
print("soak passed")
PY
if grep -qiE "panicked|\"level\":\"ERROR\"" "$work/server.err" "$work/server.out"; then
  echo "the server logged errors:" >&2
  grep -iE "panicked|\"level\":\"ERROR\"" "$work/server.err" "$work/server.out" | head >&2
  exit 1
fi
