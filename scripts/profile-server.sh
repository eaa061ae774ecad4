#!/usr/bin/env bash
# Where the server's CPU goes during plain logins (docs/benchmarks.md, "Fifth
# pass"): starts a release eid-server of its own (flood limits off, fresh
# data folder), warms it with 2 s of plain logins, then samples it with
# `perf record -F 999 --call-graph dwarf` during SECONDS more and prints the
# share of each group of work, each sample counted once in the first group
# that matches, top to bottom (the crypto and the SQLite groups by any frame of
# the stack, the rest by the sampled function). Needs perf and python3.
#
#   scripts/profile-server.sh [seconds] [perf.data]   (default 6 s, a temporary file)
#
# BIN=DIR takes eid-server and eid-loadgen from DIR without building.
# `perf report -i perf.data` reads a kept profile further.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-6}
data=${2:-}
. scripts/lib/bench-server.sh
bench_bins
bench_gauge
bench_server
[ -n "$data" ] || data="$work/perf.data"
logins() {
  EID_SERVER="https://127.0.0.1:$port" EID_SPKI_PIN="$pin" \
    EID_ADMIN_TOKEN_FILE="$work/admin-token" \
    "$bin/eid-loadgen" --flow plain --phones 64 --http2 --duration-secs "$1" \
    --json --cpu-pid "$server"
}
logins 2 >/dev/null
perf record -q -F 999 --call-graph dwarf,16384 -p "$server" -o "$data" -- sleep "$secs" 2>/dev/null &
perf=$!
out=$(logins "$secs")
wait $perf || true
python3 - "$out" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r, ticks = json.loads(sys.argv[1]), int(sys.argv[2])
print(f"{r['logins_per_sec']:.0f} logins/s, server CPU "
      f"{r['server_cpu_ticks'] * 1000 / ticks / max(r['logins'], 1):.3f} ms per login")
PY
perf script -i "$data" -F comm,ip,sym,dso 2>/dev/null | python3 -c '
import collections, re, sys

def samples(lines):
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line.startswith("\t"):
            comm, frames = line.split()[0], []
        else:
            m = re.match(r"\s*[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$", line)
            frames.append((m.group(1), m.group(2)) if m else (line.strip(), "?"))
    if comm is not None:
        yield comm, frames

def any_frame(frames, pattern):
    return any(re.search(pattern, f) for f, _ in frames)

def group(comm, fr):
    if any_frame(fr, r"EcdsaVerificationAlgorithm"):
        return "P-256 verification (3 per login)"
    if any_frame(fr, r"EcdsaKeyPair|ecdsa::signing"):
        return "P-256 signatures (2 per login)"
    # A write runs on the writer thread, or on the calling worker when the
    # writer is idle (a batch of its own: Held::run_here); its stack names
    # the batch or the savepoint of its job either way.
    writes = comm.startswith("eid-sqlite") or any_frame(fr, r"in_savepoint|Held.*(batch|run_here)")
    if writes:
        if any_frame(fr, r"^(fsync|fdatasync)$|do_fsync|ext4_sync_file"):
            return "writes: fsync"
        if any_frame(fr, r"sqlite3WalFrames|walWriteOne|walWriteToLog|walCheckpoint"):
            return "writes: WAL writes, checkpoints"
        if any_frame(fr, r"sqlite3|rusqlite"):
            return "writes: statements"
        if comm.startswith("eid-sqlite"):
            return "writer thread otherwise (hand-off, wake-ups)"
    if any_frame(fr, r"rustls|aes_hw|gcm_|aes_gcm|_aesni|ghash"):
        return "TLS (rustls)"
    if any_frame(fr, r"sqlite3|rusqlite"):
        if any_frame(fr, r"munmap|mmap|page_fault|exc_page|unixMapfile|unixUnmapfile"):
            return "readers: SQLite file mapping, page faults"
        return "readers: SQLite"
    if any_frame(fr, r"serde_json"):
        return "JSON"
    if any_frame(fr, r"tracing_subscriber|tracing_core::event"):
        return "log line (tracing)"
    leaf, dso = fr[0] if fr else ("?", "?")
    if "kernel" in dso:
        user = " ".join(f for f, d in fr if "kernel" not in d)
        if re.search(r"Poll::poll|epoll|park|Condvar|futex", user):
            return "kernel: worker park and unpark"
        if re.search(r"wake", user):
            return "kernel: waking a thread"
        if re.search(r"write|send|flush", user, re.I):
            return "kernel: socket writes"
        if re.search(r"read|recv", user, re.I):
            return "kernel: socket reads"
        return "kernel: otherwise (interrupts, faults)"
    if re.search(r"^(_?mi_|malloc|free|_int_malloc|_int_free|cfree|realloc|__libc_|unlink_chunk|tcache)", leaf):
        return "allocation (mimalloc, glibc)"
    if re.search(r"memmove|memcpy|memset|memcmp|strlen", leaf):
        return "memcpy, memcmp"
    if re.search(r"^<?h2::|hpack", leaf):
        return "HTTP/2 (h2)"
    if "hyper" in leaf:
        return "hyper"
    if re.search(r"axum|tower|matchit|http::|http_body|MapFuture|futures_util", leaf):
        return "axum, tower, http types"
    if re.search(r"tokio|mio", leaf):
        return "tokio scheduler"
    return "handlers and the rest"

counts = collections.Counter()
for comm, frames in samples(sys.stdin):
    counts[group(comm, frames)] += 1
total = max(sum(counts.values()), 1)
print(f"{total} samples")
for name, n in counts.most_common():
    print(f"| {name} | {100 * n / total:4.1f} % |")
'
