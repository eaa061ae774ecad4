#!/usr/bin/env bash
# Counts the work per phone-core operation (docs/benchmarks.md, "Counting the
# work"): the example `benches/examples/work.rs` runs the server and the phone
# core in one process, and `perf stat` counts only while the operation runs
# (its control fifo), so set-up, request creation and the PIN unlock before an
# approval are left out. Counts are of both sides together.
#
#   scripts/core-work.sh [OP...]     OP: cold cold_closed warm warm_no_requests approve
#   N=500 scripts/core-work.sh warm  (iterations, default 200)
#
# Needs perf with syscall tracepoints and libc uprobes (root). The figures
# per operation: CPU time (task-clock, all threads of both sides), the wall
# time the example measured (mean and median), fsync + fdatasync calls, TCP connects, fcntl
# calls (SQLite's file and WAL locks: a few per transaction) and malloc calls. Printed beside the gauge `openssl speed ecdsap256`.
set -euo pipefail
cd "$(dirname "$0")/.."
ops=("$@")
[ ${#ops[@]} -gt 0 ] || ops=(cold warm warm_no_requests approve)
n=${N:-200}
target=${CARGO_TARGET_DIR:-target}
# The bench profile (release settings), so the dependencies built for
# `cargo bench` are shared. WORK_BIN runs an example built before instead.
bin=${WORK_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --profile bench -p eid-benches --example work
  bin="$target/release/examples/work"
fi
libc=$(ldd "$bin" | awk '/libc\.so\.6/ {print $3}')
perf probe -q -x "$libc" --add malloc 2>/dev/null || true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkfifo "$tmp/ctl" "$tmp/ack"
# Two runs per operation: the malloc uprobe costs a trap per call, so CPU
# and wall time come from the run without it.
count() { # op name events
  EID_PERF_CTL="$tmp/ctl" EID_PERF_ACK="$tmp/ack" \
    perf stat -x, -o "$tmp/$2.csv" --delay=-1 --control "fifo:$tmp/ctl,$tmp/ack" \
    -e "$3" -- "$bin" "$1" "$n" 2>"$tmp/$2.err"
}
printf '%-18s %9s %9s %9s %7s %8s %7s %9s\n' op cpu_us wall_us wall_med fsyncs connects fcntls mallocs
for op in "${ops[@]}"; do
  count "$op" "$op.time" task-clock,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_connect,syscalls:sys_enter_fcntl
  count "$op" "$op.alloc" probe_libc:malloc
  wall=$(sed -n 's/.*iterations, \([0-9.]*\) µs wall.*/\1/p' "$tmp/$op.time.err")
  med=$(sed -n 's/.*, median \([0-9.]*\) µs.*/\1/p' "$tmp/$op.time.err")
  cat "$tmp/$op.time.csv" "$tmp/$op.alloc.csv" | awk -F, -v op="$op" -v n="$n" -v wall="$wall" -v med="$med" '
    /task-clock/ {cpu = $1 * 1000 / n}
    /sys_enter_fsync|sys_enter_fdatasync/ {f += $1 / n}
    /sys_enter_connect/ {c = $1 / n}
    /sys_enter_fcntl/ {l = $1 / n}
    /probe_libc:malloc/ {m = $1 / n}
    END {printf "%-18s %9.1f %9s %9s %7.2f %8.2f %7.1f %9.0f\n", op, cpu, wall, med, f, c, l, m}
  '
done
echo "gauge: $(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/^ *256 bits ecdsa/ {print $(NF-1) " signs/s"}') (openssl speed -seconds 3 ecdsap256)"
