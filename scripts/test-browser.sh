#!/usr/bin/env bash
# Real-browser tests of the hosted login page (tests/browser/): Debian's
# Chromium, driven by playwright-core under Node's built-in test runner,
# against `eid demo --web` (the broker and a demo bank on 127.0.0.1), with
# the phone's side done by `eid app` (the real core).
#
#   1. installs chromium with apt-get when /usr/bin/chromium is missing (CI
#      runs as root on a fresh Debian machine); never a browser download of
#      Playwright's own;
#   2. `npm ci` in tests/browser (playwright-core, pinned in package-lock.json);
#   3. builds `eid`;
#   4. runs the tests; screenshots of every page land in target/browser/.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

if [ ! -x /usr/bin/chromium ]; then
  echo "chromium: installing with apt-get"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  timeout 300 $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive timeout 600 $sudo apt-get install -y -q chromium
fi
/usr/bin/chromium --version 2>/dev/null | grep -v '^\[' || true

command -v node >/dev/null || { echo "node is needed (Node 20 or later)" >&2; exit 1; }
(cd tests/browser && timeout 300 npm ci --ignore-scripts --no-audit --no-fund)

cargo build --locked -p eid-cli
export EID_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/eid"
mkdir -p target/browser
rm -f target/browser/*.png

cd tests/browser
node --test --test-concurrency=1 tests/*.test.mjs
echo "browser: done after $((SECONDS - started)) s (screenshots in target/browser/)"
