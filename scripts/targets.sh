#!/usr/bin/env bash
# Reads every target of the speed-and-size issue on the gauge, in one run,
# and prints the verdict table (docs/benchmarks.md, "Reading the targets on
# the gauge"): the figures a pass reported by hand, measured and judged the
# same way each time, so that a quiet machine can settle them with one
# command.
#
#   scripts/targets.sh [runs] [seconds]   (default 5 runs of 10 s)
#
# What it runs, in this order, each figure the median of the runs with the
# spread:
# - the gauge (openssl speed ecdsap256, one core), again before the phone's
#   benches and at the end; the server's figures are read on the first, the
#   phone's on the second;
# - the P-256 floor of the server's share of a login (criterion `floor`);
# - plain logins as fast as 64 phones go (HTTP/2, durable approvals): logins/s
#   and the server's CPU per login (scripts/loadgen-cpu.sh's measurement);
# - the same at half that rate, open loop: the login's p99;
# - the phone's criterion benches: cold and warm open, the approval without
#   the PIN KDF and the bare loopback round trip, `runs` runs;
# - the stripped phone library's size (scripts/lib-size.sh --check);
# - two replicas on PostgreSQL, plain flow (scripts/loadgen-postgres.sh), as a
#   share of the SQLite figure of this same run; PG=0 leaves it out.
#
# A time measured here counts on the reference machine (gauge 51,000) as
# time × gauge / 51,000; the approval's round trip is taken off first. This
# is a reading, not a test: it belongs on a quiet machine, never in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
secs=${2:-10}
case "$runs$secs" in *[!0-9]*) echo "usage: scripts/targets.sh [runs] [seconds]" >&2; exit 2 ;; esac
[ "$runs" -ge 1 ] && [ "$secs" -ge 1 ] || { echo "runs and seconds are at least 1" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}
out=$(mktemp -d)
on_exit() { rm -rf "$out"; }
trap on_exit EXIT # bench_server's trap, set later, calls it too
. scripts/lib/bench-server.sh

# Forgets the earlier results of these benchmarks, so that one that no
# longer runs (renamed, filtered out) fails the reading instead of
# handing it a stale figure.
forget() { for b in "$@"; do rm -rf "$target/criterion/$b"; done; }
# The median criterion estimate of one benchmark's last run, in ns.
estimate() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' \
  "$target/criterion/$1/new/estimates.json"; }

echo "== building (release server and load generator, benches)"
bench_bins
cargo bench --quiet --locked -p eid-benches --no-run
bench_gauge_value >"$out/gauge-server"
echo "gauge: $(cat "$out/gauge-server") signatures/s"

echo "== the server's crypto floor"
forget login_crypto/server
cargo bench --quiet --locked -p eid-benches --bench floor -- --noplot \
  --warm-up-time 1 --measurement-time 5 'login_crypto/server$' >/dev/null 2>"$out/bench.log" ||
  { cat "$out/bench.log" >&2; exit 1; }
estimate login_crypto/server >"$out/floor"

echo "== plain logins, $runs runs of $secs s"
bench_server
# One load generator run of plain logins against the server, as JSON.
load() {
  EID_SERVER="https://127.0.0.1:$port" EID_SPKI_PIN="$pin" \
    EID_ADMIN_TOKEN_FILE="$work/admin-token" \
    "$bin/eid-loadgen" --flow plain --phones 64 --http2 \
    --duration-secs "$secs" --json "$@"
}
for run in $(seq "$runs"); do
  load --cpu-pid "$server" >"$out/plain-$run.json"
  python3 -c 'import json, sys
r = json.load(open(sys.argv[2]))
print("run %s: %.0f logins/s, %d errors" % (sys.argv[1], r["logins_per_sec"], r["errors"]))' \
    "$run" "$out/plain-$run.json"
done
half=$(python3 - "$out"/plain-*.json <<'PY'
import json, statistics, sys
rates = [json.load(open(f))["logins_per_sec"] for f in sys.argv[1:]]
print(max(1, round(statistics.median(rates) / 2)))
PY
)
echo "== half load, open loop at $half logins/s, $runs runs"
for run in $(seq "$runs"); do
  load --rate "$half" >"$out/half-$run.json"
done
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true

echo "== the phone's benches, $runs runs"
bench_gauge_value >"$out/gauge-phone"
echo "gauge: $(cat "$out/gauge-phone") signatures/s"
for run in $(seq "$runs"); do
  forget app_open/cold app_open/warm approve/approve_excluding_kdf round_trip_healthz_warm
  cargo bench --quiet --locked -p eid-benches --bench core -- --noplot \
    --warm-up-time 1 --measurement-time 5 \
    'app_open/cold$|app_open/warm$|approve/approve_excluding_kdf|round_trip/healthz_warm' \
    >/dev/null 2>"$out/bench.log" || { cat "$out/bench.log" >&2; exit 1; }
  cold=$(estimate app_open/cold)
  warm=$(estimate app_open/warm)
  approve=$(estimate approve/approve_excluding_kdf)
  rtt=$(estimate round_trip_healthz_warm)
  echo "$cold $warm $approve $rtt" >>"$out/phone"
  echo "run $run: done"
done

echo "== the phone library's size"
# Over the budget is a verdict here, not the end of the reading.
scripts/lib-size.sh --check >"$out/size" 2>&1 || true
cat "$out/size"

if [ "${PG:-1}" != 0 ]; then
  echo "== two replicas on PostgreSQL, $runs runs of $secs s"
  # A cluster that cannot start leaves its row out, not the whole reading.
  if ! EID_LOADGEN_FLOWS=plain scripts/loadgen-postgres.sh "$runs" "$secs" >"$out/postgres" 2>&1; then
    echo "(the PostgreSQL run failed; its row is left out)"
  fi
  cat "$out/postgres"
fi
bench_gauge_value >"$out/gauge-end"
getconf CLK_TCK >"$out/ticks"

python3 - "$out" <<'PY'
import json, re, statistics, sys
from pathlib import Path

out = Path(sys.argv[1])
REFERENCE = 51_000
g_server = float((out / "gauge-server").read_text())
g_phone = float((out / "gauge-phone").read_text())
g_end = float((out / "gauge-end").read_text())
ticks = int((out / "ticks").read_text())

def spread(xs, fmt, unit=""):
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))}){unit}"

def num(x):
    return f"{x:.3f}"

def ms(x):
    return f"{x:.3f} ms"

def verdict(ok):
    return "**met**" if ok else "**missed**"

rows = []
plain = [json.loads(f.read_text()) for f in sorted(out.glob("plain-*.json"))]
rates = [r["logins_per_sec"] for r in plain]
cpu = [r["server_cpu_ticks"] * 1000 / ticks / max(r["logins"], 1) for r in plain]
rate = statistics.median(rates)
per_gauge = rate / (g_server / 1000)
rows.append(("plain logins/s (64 phones, HTTP/2)", spread(rates, lambda x: f"{x:,.0f}"),
             f"{per_gauge:.1f} per 1,000 gauge", "≥ 60 per 1,000", verdict(per_gauge >= 60)))
scale_s = g_server / REFERENCE
c = statistics.median(cpu)
rows.append(("server CPU per plain login", spread(cpu, num, " ms"), ms(c * scale_s), "≤ 0.35 ms",
             verdict(c * scale_s <= 0.35)))
floor = float((out / "floor").read_text()) / 1e6
above = c - floor
rows.append(("server CPU above its crypto floor", f"{above:.3f} ms (floor {floor:.3f})",
             ms(above * scale_s), "proposed ≤ 0.25 ms", verdict(above * scale_s <= 0.25)))
half = [json.loads(f.read_text()) for f in sorted(out.glob("half-*.json"))]
p99 = [r["login_p99_us"] / 1000 for r in half]
rows.append((f"p99 at half load ({statistics.median(r['logins_per_sec'] for r in half):,.0f}/s)",
             spread(p99, lambda x: f"{x:.1f}", " ms"), "(latency, not scaled)", "< 25 ms",
             verdict(statistics.median(p99) < 25)))

phone = [list(map(float, l.split())) for l in (out / "phone").read_text().splitlines()]
scale_p = g_phone / REFERENCE
cold, warm, approve, rtt = ([row[i] / 1e6 for row in phone] for i in range(4))
for name, xs, limit in (("`app_open/cold`", cold, 1.5), ("`app_open/warm`", warm, 0.8)):
    ref = statistics.median(xs) * scale_p
    rows.append((name, spread(xs, num, " ms"), ms(ref), f"≤ {limit} ms", verdict(ref <= limit)))
a, t = statistics.median(approve), statistics.median(rtt)
ref = (a - t) * scale_p
rows.append(("`approve/approve_excluding_kdf`", f"{spread(approve, num, ' ms')}; round trip {spread(rtt, num, ' ms')}",
             ms(ref), "≤ 1 ms + round trip", verdict(ref <= 1.0)))

size = (out / "size").read_text()
m = re.search(r"(\d+) bytes.*?budget (?:of )?(\d+)", size, re.S)
if m:
    b, budget = int(m.group(1)), int(m.group(2))
    rows.append(("phone library, stripped", f"{b:,} bytes", "(size, not scaled)",
                 f"≤ {budget:,} bytes", verdict(b <= budget)))
else:
    rows.append(("phone library, stripped", "not read (scripts/lib-size.sh --check failed)", "",
                 "≤ 3.5 MiB", verdict(False)))

pg = out / "postgres"
if pg.exists():
    pr = [float(x) for x in re.findall(r"^run \d+ plain:\s+(\d+) logins/s", pg.read_text(), re.M)]
    if pr:
        share = statistics.median(pr) / rate * 100
        rows.append(("PostgreSQL, 2 replicas, plain", spread(pr, lambda x: f"{x:,.0f}", " logins/s"),
                     f"{share:.1f} % of SQLite's", "≥ 50 %", verdict(share >= 50)))

print()
print(f"gauge: {g_server:,.0f} (server), {g_phone:,.0f} (phone), {g_end:,.0f} (end); "
      f"medians of {len(plain)} runs, spread in brackets")
print()
print("| target | measured | on the reference | target | status |")
print("|---|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
PY
