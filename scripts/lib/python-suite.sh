# What the Python suites (scripts/test-{protocol,oidc,rp}-python.sh) share;
# sourced from the repository root after `set -euo pipefail`. Each suite
# gets a venv of its own pinned packages, the binaries built once and copied
# aside, and a fresh eid-server on 127.0.0.1 with a random port.
#
#   python_suite_venv NAME     tests/NAME/requirements.txt into a venv in the
#                              cargo target directory; sets $py
#   python_suite_server        builds (or takes $EID_BIN_DIR) eid-server and
#                              eid, starts the server, waits for it; sets
#                              $work $bin $eid $base $ca and exports the
#                              EID_SERVER, EID_SPKI_PIN, EID_ADMIN_TOKEN_FILE
#                              the eid commands read; stops it on exit
#   field KEY                  one field of the JSON object on stdin
#   python_suite_person USER_ID NAME PIN PHONE_DIR
#                              an identity with the app activated in
#                              PHONE_DIR (the eid CLI, as in a developer's
#                              first hour); prints the identity id
#   python_suite_pytest DIR SETUP_VAR SETUP_FILE [pytest arguments]
#                              runs pytest in tests/DIR with SETUP_VAR naming
#                              the set-up file; sets $status
#   python_suite_end NAME      fails when the server logged an error or a
#                              panic, else exits with the tests' status
#
# TLS: the server's self-signed development certificate ($ca) is the trust
# anchor the tests give requests as `verify=`; the CLI pins the same key by
# its SPKI pin.

python_suite_target=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

python_suite_venv() {
  local venv=$python_suite_target/$1-venv requirements=tests/$1/requirements.txt
  if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    python3 -m venv "$venv" 2>/dev/null || {
      # Debian splits venv out of python3.
      apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$venv"
    }
    "$venv/bin/pip" install --quiet -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
  fi
  py=$venv/bin/python
}

python_suite_server() {
  work=$(mktemp -d)
  bin=$work/bin
  mkdir "$bin"
  if [ -n "${EID_BIN_DIR:-}" ]; then
    # Binaries built beforehand (a target directory shared by several
    # checkouts holds in debug/ whichever checkout built last).
    cp "$EID_BIN_DIR/eid-server" "$EID_BIN_DIR/eid" "$bin/"
  else
    cargo build --locked -p eid-server -p eid-cli
    cp "$python_suite_target/debug/eid-server" "$python_suite_target/debug/eid" "$bin/"
  fi
  eid=$bin/eid
  local port=$((20000 + RANDOM % 20000))
  EID_SERVER_DATA_DIR="$work/server" EID_SERVER_LISTEN="127.0.0.1:$port" \
    "$bin/eid-server" >"$work/server.log" 2>&1 &
  python_suite_server_pid=$!
  trap 'kill $python_suite_server_pid 2>/dev/null || true; rm -rf "$work"' EXIT
  base="https://127.0.0.1:$port"
  ca="$work/server/dev-tls-cert.pem"
  for _ in $(seq 100); do
    [ -f "$ca" ] && curl -sf --cacert "$ca" "$base/healthz" >/dev/null && break
    sleep 0.1
  done
  # The environment the eid commands read: the server, its key pin (printed
  # at start) and the administrator's token file.
  EID_SERVER=$base
  EID_SPKI_PIN=$(sed -n 's/^ *TLS SPKI pin: *//p' "$work/server.log")
  EID_ADMIN_TOKEN_FILE="$work/server/admin-token"
  export EID_SERVER EID_SPKI_PIN EID_ADMIN_TOKEN_FILE
}

field() { "$py" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

python_suite_person() { # user_id name pin phone_dir
  local identity code
  identity=$("$eid" --json admin create-identity --user-id "$1" --name "$2" \
    | field identity_id)
  code=$("$eid" --json admin activation-code --identity "$identity" \
    | field activation_code)
  mkdir "$4"
  EID_APP_DIR="$4" EID_PIN=$3 "$eid" --json app activate \
    --user-id "$1" --code "$code" >/dev/null
  echo "$identity"
}

python_suite_pytest() { # dir setup_var setup_file [pytest arguments]
  local dir=$1 var=$2 file=$3
  shift 3
  status=0
  # requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE from the environment
  # override a session's `verify` (the server's certificate here), so
  # neither may reach the tests. No bytecode caches in the source tree.
  (cd "tests/$dir" && env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE \
    PYTHONDONTWRITEBYTECODE=1 "$var=$file" "$py" -m pytest -q "$@") || status=$?
}

python_suite_end() { # name
  if grep -qE "panicked| ERROR " "$work/server.log"; then
    echo "$1: the server logged errors during the run:" >&2
    grep -E "panicked| ERROR " "$work/server.log" | head -20 >&2
    exit 1
  fi
  exit "$status"
}
