#!/usr/bin/env bash
# Runs CMD with a throw-away PostgreSQL cluster and EID_TEST_DATABASE_URL
# pointing to it:
#   scripts/with-postgres.sh cargo test -p eid-server --features conformance --test store
# The cluster lives in a temporary directory, listens on 127.0.0.1 on a free
# port (and a socket in that directory), is started with pg_ctl (no systemd),
# and is stopped and removed when CMD ends, however it ends. As root it runs
# as the `postgres` user (PostgreSQL refuses to run as root). It needs
# Debian's `postgresql` package (.ci/run installs it when missing). With
# EID_TEST_DATABASE_URL already set, CMD runs against that database instead.
# The URL holds no password (the cluster trusts local connections), and it
# is passed in the environment, never on a command line.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }
if [ -n "${EID_TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "with-postgres: PostgreSQL is not installed (Debian: apt-get install -y postgresql)" >&2
  exit 1
fi
as_owner=()
dir=$(mktemp -d "${TMPDIR:-/tmp}/eid-postgres.XXXXXX")
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  as_owner=(runuser -u postgres --)
fi
# A free port: try random ones until nothing answers there.
port=
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    port=$candidate
    break
  fi
done
[ -n "$port" ] || { echo "with-postgres: no free port found" >&2; exit 1; }
stop() {
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" stop -m fast >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM
"${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
# Enough connections for the tests' pools (each test database gets its own)
# and the multi-replica tests' three servers.
"${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400" start >/dev/null ||
  { cat "$dir/log" >&2; exit 1; }
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
export EID_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
set +e
"$@"
status=$?
set -e
exit "$status"
