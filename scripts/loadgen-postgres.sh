#!/usr/bin/env bash
# Throughput and CPU per login of two eid-server replicas on one PostgreSQL
# database (docs/scaling.md, "Measured"): on a throw-away cluster
# (scripts/with-postgres.sh, PostgreSQL's defaults: synchronous_commit and
# fsync on), starts two release eid-server replicas on a fresh database,
# sharing one data folder (flood limits off, as scripts/loadgen-cpu.sh),
# and runs two eid-loadgen at once, 32 phones against each replica over
# HTTP/2, RUNS times per flow (plain API and OpenID Connect, alternating).
# Prints per run: logins/s (the two load generators' sum), server CPU
# milliseconds per login (user + system time of both replicas, from /proc),
# database CPU milliseconds per login (the postmaster and every process of
# the cluster, exited backends included, from /proc), the database's
# transactions, WAL flushes, WAL records, full-page images and WAL bytes
# per login (pg_stat_database, pg_stat_wal), and the login latency (the worse of the two load generators' p50 and
# p99). The CPU counts the load generators' short set-up (64 phones
# activated) too. Prints the machine's gauge (openssl speed ecdsap256, one
# core) first: on a shared machine the figures are a floor.
#
#   scripts/loadgen-postgres.sh [runs] [seconds]     (default 3 runs of 10 s)
#
# EID_LOADGEN_FLOWS picks the flows (default "plain oidc"), e.g. one of them
# only, when counting the database's statements per flow.
#
# On a cluster that preloads pg_stat_statements (given in
# EID_TEST_DATABASE_URL, started with `-c shared_preload_libraries=
# pg_stat_statements -c pg_stat_statements.track=all`), it also prints the
# statements per login: the server's own (top level; `BEGIN`s, `COMMIT`s
# and `ROLLBACK`s counted apart) and those run inside them (foreign-key
# checks, a PL/pgSQL function's statements).
#
# EID_LOADGEN_TOP=N (with pg_stat_statements) also prints, after each run,
# the N statements that took the most execution time: calls per login,
# mean execution time (wall clock: on a busy machine it includes waiting
# for a core), planning per login and WAL records per call. It resets
# pg_stat_statements before each run.
#
# EID_LOADGEN_PERF=DIR records the whole machine's CPU samples during each
# run's load (`perf record -F 999 -g -a`, Debian's linux-perf) into
# DIR/RUN-FLOW.perf.data; `perf report -i FILE --comm postgres` shows the
# database's share (docs/scaling.md, "Measured", the database's profile).
#
# EID_LOADGEN_COMMIT_DELAY_US sets PostgreSQL's commit_delay (group commit:
# a committing backend waits that many microseconds for others to share its
# WAL flush, when at least commit_siblings others are in a transaction) on
# the test database; 0 (the default, PostgreSQL's) leaves it off. See
# docs/scaling.md, "The primary's settings", for a production value.
#
# EID_SERVER_DATABASE_POOL_SIZE, like every EID_SERVER_* variable, reaches
# the replicas (docs/configuration.md).
#
# EID_COMPARE_SERVER runs another eid-server binary (a saved build, to compare
# before and after a change) instead of this checkout's.
#
# With EID_TEST_DATABASE_URL set it uses that cluster instead (it must be
# local: its processes are read from /proc, and the URL's user must be a
# superuser to create the database).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${EID_TEST_DATABASE_URL:-}" ]; then
  exec scripts/with-postgres.sh "$0" "$@"
fi
runs=${1:-3}
secs=${2:-10}
cargo build --locked --release -p eid-server -p eid-loadgen >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release
server_bin=${EID_COMPARE_SERVER:-$bin/eid-server}
echo "gauge: $(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/^ *256 bits ecdsa/ {print $(NF-1) " signatures/s (P-256, one core)"}')"

admin_url=$EID_TEST_DATABASE_URL
db=eid_loadgen_$$
commit_delay=${EID_LOADGEN_COMMIT_DELAY_US:-0}
case $commit_delay in '' | *[!0-9]*) echo "EID_LOADGEN_COMMIT_DELAY_US: microseconds" >&2; exit 2 ;; esac
psql -q -X -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE $db" >/dev/null
psql -q -X -v ON_ERROR_STOP=1 "$admin_url" -c "ALTER DATABASE $db SET commit_delay = $commit_delay" >/dev/null
database_url=${admin_url%/*}/$db
datadir=$(psql -X -At "$admin_url" -c 'SHOW data_directory')
postmaster=$(head -1 "$datadir/postmaster.pid")
echo "database: PostgreSQL $(psql -X -At "$admin_url" -c 'SHOW server_version'), synchronous_commit=$(psql -X -At "$admin_url" -c 'SHOW synchronous_commit'), fsync=$(psql -X -At "$admin_url" -c 'SHOW fsync'), commit_delay=${commit_delay} us (commit_siblings=$(psql -X -At "$admin_url" -c 'SHOW commit_siblings'))"

work=$(mktemp -d)
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q -X "$admin_url" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ports=()
# One after the other: the first creates the keys and the admin token in the
# shared data folder, and migrates the database.
for i in 0 1; do
  port=$((20000 + RANDOM % 20000))
  EID_SERVER_DATA_DIR="$work/data" EID_SERVER_LISTEN="127.0.0.1:$port" \
    EID_SERVER_DATABASE_URL="$database_url" \
    EID_SERVER_FLOODS__PER_IDENTITY_PER_MINUTE=0 \
    EID_SERVER_FLOODS__PER_IDENTITY_PER_HOUR=0 \
    EID_SERVER_FLOODS__PER_PROVIDER_PER_MINUTE=0 \
    EID_SERVER_FLOODS__PER_ADDRESS__PER_MINUTE=0 \
    "$server_bin" >"$work/server$i.log" 2>&1 &
  servers+=($!)
  ports+=("$port")
  up=
  for _ in $(seq 100); do
    curl -skf "https://127.0.0.1:$port/healthz" >/dev/null && { up=1; break; }
    sleep 0.2
  done
  [ -n "$up" ] || { echo "replica $i did not start:" >&2; cat "$work/server$i.log" >&2; exit 1; }
done
pin=$(grep -o 'sha256/[A-Za-z0-9+/=]*' "$work/server0.log" | head -1)
ticks=$(getconf CLK_TCK)
server_ticks() {
  local total=0 pid
  for pid in "${servers[@]}"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
# The postmaster (with its exited children's time) and its live children.
database_ticks() {
  local total pid
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
  for pid in $(ps -o pid= --ppid "$postmaster"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
statements=
if psql -X -At "$admin_url" -c 'SHOW shared_preload_libraries' | grep -q pg_stat_statements &&
  psql -X -q "$admin_url" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >/dev/null 2>&1; then
  statements=1
fi
database_counts() {
  if [ -n "$statements" ]; then
    psql -X -At -F ' ' "$admin_url" -c \
      "SELECT (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database),
              (SELECT wal_sync FROM pg_stat_wal),
              (SELECT wal_records FROM pg_stat_wal),
              (SELECT wal_fpi FROM pg_stat_wal),
              (SELECT wal_bytes FROM pg_stat_wal),
              (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE toplevel
                 AND query !~* '^(START TRANSACTION|BEGIN|COMMIT|ROLLBACK)'),
              (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE toplevel
                 AND query ~* '^(START TRANSACTION|BEGIN|COMMIT|ROLLBACK)'),
              (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE NOT toplevel)"
  else
    psql -X -At -F ' ' "$admin_url" -c \
      "SELECT (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database),
              (SELECT wal_sync FROM pg_stat_wal),
              (SELECT wal_records FROM pg_stat_wal),
              (SELECT wal_fpi FROM pg_stat_wal),
              (SELECT wal_bytes FROM pg_stat_wal)"
  fi
}
top=${EID_LOADGEN_TOP:-}
if [ -n "$top" ] && [ -z "$statements" ]; then
  echo "EID_LOADGEN_TOP needs a cluster that preloads pg_stat_statements" >&2
  top=
fi
case $top in '' | *[!0-9]*) top= ;; esac
perf_dir=${EID_LOADGEN_PERF:-}
[ -z "$perf_dir" ] || mkdir -p "$perf_dir"
for run in $(seq "$runs"); do
  for flow in ${EID_LOADGEN_FLOWS:-plain oidc}; do
    if [ -n "$top" ]; then
      psql -X -q "$admin_url" -c 'SELECT pg_stat_statements_reset()' >/dev/null
    fi
    s_before=$(server_ticks)
    d_before=$(database_ticks)
    c_before=$(database_counts)
    loadgens=()
    for i in 0 1; do
      EID_SERVER="https://127.0.0.1:${ports[$i]}" EID_SPKI_PIN="$pin" \
        EID_ADMIN_TOKEN_FILE="$work/data/admin-token" \
        "$bin/eid-loadgen" --flow "$flow" --phones 32 --http2 \
        --duration-secs "$secs" --json >"$work/loadgen$i.json" &
      loadgens+=($!)
    done
    perf_pid=
    if [ -n "$perf_dir" ]; then
      perf record -F 999 -g -a -o "$perf_dir/$run-$flow.perf.data" -- sleep "$secs" \
        >/dev/null 2>"$perf_dir/$run-$flow.perf.log" &
      perf_pid=$!
    fi
    # A load generator with failed logins still prints its report (and
    # the count of errors) before it exits non-zero.
    for pid in "${loadgens[@]}"; do wait "$pid" || true; done
    [ -z "$perf_pid" ] || wait "$perf_pid" || true
    for i in 0 1; do
      if ! [ -s "$work/loadgen$i.json" ]; then
        echo "load generator $i failed; the replicas' last errors:" >&2
        grep -h ' ERROR ' "$work"/server*.log | tail -n 5 >&2
        exit 1
      fi
    done
    s_after=$(server_ticks)
    d_after=$(database_ticks)
    c_after=$(database_counts)
    python3 - "$flow" "$run" "$ticks" "$s_before" "$s_after" "$d_before" "$d_after" \
      "$c_before" "$c_after" "$work/loadgen0.json" "$work/loadgen1.json" <<'EOF'
import json, sys
flow, run, ticks, sb, sa, db, da, cb, ca, *files = sys.argv[1:]
rs = [json.load(open(f)) for f in files]
logins = sum(r['logins'] for r in rs)
n = max(logins, 1)
errors = sum(r['errors'] for r in rs)
rate = sum(r['logins_per_sec'] for r in rs)
ms = lambda before, after: (int(after) - int(before)) * 1000 / int(ticks) / n
cb, ca = [list(map(int, c.split())) for c in (cb, ca)]
xb, wb, xa, wa = cb[0], cb[1], ca[0], ca[1]
wal = [(a - b) / n for a, b in zip(ca[2:5], cb[2:5])]
counted = ""
if len(cb) == 8 and len(ca) == 8:
    d = [(a - b) / n for a, b in zip(ca[5:], cb[5:])]
    counted = (f", {d[0]:.1f} statements + {d[1]:.1f} BEGIN/COMMIT/ROLLBACK/login "
               f"(+ {d[2]:.1f} nested)")
p50 = max(r['login_p50_us'] for r in rs) / 1000
p99 = max(r['login_p99_us'] for r in rs) / 1000
print(f"run {run} {flow:5}: {rate:6.0f} logins/s, {errors} errors, "
      f"server CPU {ms(sb, sa):.3f} ms/login, database CPU {ms(db, da):.3f} ms/login, "
      f"{(xa - xb) / n:.1f} transactions and {(wa - wb) / n:.2f} WAL flushes/login, "
      f"WAL {wal[0]:.1f} records, {wal[1]:.2f} full pages, {wal[2] / 1024:.1f} KB/login, "
      f"login p50 {p50:.1f} ms p99 {p99:.1f} ms{counted}")
EOF
    if [ -n "$top" ]; then
      logins=$(python3 -c 'import json, sys; print(max(1, sum(json.load(open(f))["logins"] for f in sys.argv[1:])))' \
        "$work/loadgen0.json" "$work/loadgen1.json")
      psql -X -q -P pager=off "$admin_url" -c "
        SELECT round(calls::numeric / $logins, 2) AS per_login,
               round((mean_exec_time * 1000)::numeric, 1) AS mean_exec_us,
               round((total_plan_time * 1000 / $logins)::numeric, 2) AS plan_us_per_login,
               round(wal_records::numeric / greatest(calls, 1), 2) AS wal_records_per_call,
               CASE WHEN toplevel THEN '' ELSE 'nested' END AS nested,
               left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement
        FROM pg_stat_statements WHERE query !~ '^(CREATE|DROP|ALTER)'
        ORDER BY total_exec_time DESC LIMIT $top"
    fi
  done
done
