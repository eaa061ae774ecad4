#!/usr/bin/env bash
# Which SQLite pages a plain login writes, and the server's syscalls per
# login (docs/benchmarks.md, "Third pass"). Starts a release eid-server of its
# own (flood limits off, fresh data folder), runs WARM plain logins, then
# holds a read snapshot with the sqlite3 shell (so no checkpoint can reset
# the WAL) while eid-loadgen runs LOGINS more, and reads the WAL's frame
# headers: frames per login and per commit, and each frame's B-tree (from
# `dbstat`). Syscalls come from `perf stat` on the server during those
# logins. Needs sqlite3 (with dbstat), python3 and perf.
#
#   scripts/wal-pages.sh [logins] [warm]     (default 3000 after 4000)
#
# BIN=DIR takes eid-server and eid-loadgen from DIR without building.
# PROBES=1 also counts, per login, SQLite statement steps, B-tree seeks
# (index and table), B-trees opened (after the start only temporary ones:
# RETURNING, long IN lists) and the server's Rust allocations (mimalloc's entry
# points), with uprobes on the binary that the script removes at exit. The
# probes slow the server about tenfold, so such a run's logins share fewer
# commits: compare its WAL figures only with another PROBES=1 run.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3000}
warm=${2:-4000}
. scripts/lib/bench-server.sh
bench_bins
bench_gauge
reader=
group=
on_exit() {
  [ -z "$reader" ] || kill "$reader" 2>/dev/null || true
  [ -z "$group" ] || perf probe -q -d "$group:*" 2>/dev/null || true
}
events='syscalls:sys_enter_pwrite64,syscalls:sys_enter_pread64,syscalls:sys_enter_getrandom,syscalls:sys_enter_writev,syscalls:sys_enter_fcntl,syscalls:sys_enter_write,syscalls:sys_enter_fsync,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,context-switches'
bench_server
logins() {
  EID_SERVER="https://127.0.0.1:$port" EID_SPKI_PIN="$pin" \
    EID_ADMIN_TOKEN_FILE="$work/admin-token" \
    "$bin/eid-loadgen" --flow plain --phones 64 --http2 --duration-secs 300 \
    --json --max-logins "$1"
}
logins "$warm" >/dev/null
# After the warm-up (the probes are slow); bench_server's exit trap
# (on_exit) removes them.
if [ -n "${PROBES:-}" ]; then
  group=walpages$$
  for p in step:sqlite3_step index_seek:sqlite3BtreeIndexMoveto table_seek:sqlite3BtreeTableMoveto \
    temp_table:sqlite3BtreeOpen \
    alloc_plain:mi_malloc_aligned alloc_zeroed:mi_zalloc_aligned alloc_grow:mi_realloc_aligned; do
    perf probe -q -x "$(realpath "$bin/eid-server")" --add "$group:${p%%:*}=${p#*:}"
    events="$events,$group:${p%%:*}"
  done
fi
db="$work/eid-server.sqlite3"
# The snapshot: the shell's stdin stays open (and its transaction with it)
# until the fifo's writer is killed.
mkfifo "$work/hold"
sqlite3 "$db" <"$work/hold" >/dev/null &
exec 3>"$work/hold"
reader=$!
echo "BEGIN; SELECT count(*) FROM sqlite_schema;" >&3
sleep 0.5
start=$(stat -c %s "$db-wal")
perf stat -x, -e "$events" -p "$server" -o "$work/perf.csv" &
perf=$!
sleep 0.3
out=$(logins "$n")
kill -INT $perf
wait $perf 2>/dev/null || true
end=$(stat -c %s "$db-wal")
exec 3>&-
wait "$reader" 2>/dev/null || true
reader=
python3 - "$db" "$start" "$end" "$out" "$work/perf.csv" <<'PY'
import collections, json, sqlite3, struct, sys
db, start, end, out, perf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
r = json.loads(out)
logins = max(r['logins'], 1)
page = sqlite3.connect(db).execute('PRAGMA page_size').fetchone()[0]
frame = 24 + page
with open(db + '-wal', 'rb') as f:
    f.seek(start)
    wal = f.read(end - start)
frames = [struct.unpack('>II', wal[i:i + 8]) for i in range(0, len(wal) - frame + 1, frame)]
commits = sum(1 for _, c in frames if c)
print(f"{r['logins']} plain logins, {r['logins_per_sec']:.0f}/s, {r['errors']} errors "
      f"(including a set-up of 64 identities)")
print(f"WAL frames per login {len(frames) / logins:.2f}, logins per commit {logins / max(commits, 1):.2f} (durable and unsynced commits)")
owner = {}
for name, pageno, kind in sqlite3.connect(db).execute('SELECT name, pageno, pagetype FROM dbstat'):
    owner[pageno] = f'{name} ({kind})'
for name, count in collections.Counter(owner.get(p, f'page {p}') for p, _ in frames).most_common(16):
    print(f'  {count / logins:6.3f} per login  {name}')
print('syscalls (and with PROBES=1 statement steps, B-tree seeks, allocations) per login:')
for line in open(perf):
    parts = line.strip().split(',')
    if len(parts) > 2 and parts[0].isdigit():
        name = parts[2].split('sys_enter_')[-1].split(':')[-1]
        print(f"  {name:10} {int(parts[0]) / logins:6.2f}")
PY
