# Sourced by the scripts that load one release eid-server on SQLite
# (loadgen-cpu.sh, loadgen-latency.sh, wal-pages.sh): builds it and the load
# generator (or takes them from BIN=DIR), prints the machine's gauge
# (openssl speed ecdsap256, one core), and starts the server on a random
# loopback port with a fresh data folder and the flood limits off, so the
# load generator's logins are never refused. Sets `bin`, `work`, `port`,
# `server` and `pin`; the server and the folder go when the script exits,
# and `on_exit`, if the script defines it, runs first.

bench_bins() {
  if [ -n "${BIN:-}" ]; then
    bin=$BIN
  else
    cargo build --locked --release -p eid-server -p eid-loadgen >/dev/null
    bin=${CARGO_TARGET_DIR:-target}/release
  fi
}

# The gauge alone: P-256 signatures a second on one core.
bench_gauge_value() {
  openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/^ *256 bits ecdsa/ {print $(NF-1)}'
}

bench_gauge() {
  echo "gauge: $(bench_gauge_value) signatures/s (P-256, one core)"
}

bench_server() {
  work=$(mktemp -d)
  port=$((20000 + RANDOM % 20000))
  EID_SERVER_DATA_DIR="$work" EID_SERVER_LISTEN="127.0.0.1:$port" \
    EID_SERVER_FLOODS__PER_IDENTITY_PER_MINUTE=0 \
    EID_SERVER_FLOODS__PER_IDENTITY_PER_HOUR=0 \
    EID_SERVER_FLOODS__PER_PROVIDER_PER_MINUTE=0 \
    EID_SERVER_FLOODS__PER_ADDRESS__PER_MINUTE=0 \
    "$bin/eid-server" >"$work/server.log" 2>&1 &
  server=$!
  trap 'if declare -F on_exit >/dev/null; then on_exit; fi; kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 50); do
    curl -skf "https://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.2
  done
  pin=$(grep -o 'sha256/[A-Za-z0-9+/=]*' "$work/server.log" | head -1)
}
