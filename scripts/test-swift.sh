#!/usr/bin/env bash
# Builds the Rust library, server and CLI on the host, generates the Swift
# bindings, copies them into the Swift package's sources (ios/; the manifest
# is the repository root's Package.swift) and runs its tests against the host
# library and a real eid-server on 127.0.0.1.
#
# Uses a native `swift` when one is on PATH. Otherwise (Debian 12 has no Swift)
# it creates, or reuses, a Debian trixie chroot with swiftlang 6.0.3 in a cache
# folder outside the repo: ${EID_SWIFT_CHROOT:-/var/cache/eid-swift-chroot}
# (needs root, debootstrap is installed with apt-get if missing). The chroot is
# only marked complete (a stamp file) once everything is installed, so a
# half-made one is made again. What it mounts it always unmounts.
#
# Usage: scripts/test-swift.sh [extra `swift test` arguments, e.g. --filter X]
# Env:   EID_SWIFT_CHROOT   chroot folder (default /var/cache/eid-swift-chroot)
#        EID_DEBIAN_MIRROR  Debian mirror (default: the host's apt source, else
#                           http://deb.debian.org/debian)
#        EID_SWIFT_SETUP_ONLY=1  only set up the chroot, then stop
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG="$ROOT/ios"   # the package's sources; SwiftPM runs in $ROOT (Package.swift)
# cargo's target folder: target/, or $CARGO_TARGET_DIR (mounted into the
# chroot when it lies outside the repository).
TARGET="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
CHROOT="${EID_SWIFT_CHROOT:-/var/cache/eid-swift-chroot}"
STAMP="$CHROOT/.eid-swift-ready-v3"          # everything installed
BASE_STAMP="$CHROOT/.eid-debootstrap-done"    # debootstrap finished
# The C headers (libc6-dev) are needed to compile; gcc only recommends them.
CHROOT_PACKAGES=(swiftlang libc6-dev libstdc++-14-dev libssl-dev pkg-config)

log() { printf '\n== %s\n' "$*" >&2; }

debian_mirror() {
  if [[ -n "${EID_DEBIAN_MIRROR:-}" ]]; then echo "$EID_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]*/debian/?([[:space:]]|$)' \
          /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -oE 'https?://[^[:space:]]*/debian/?' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

MOUNTS=()
PID_DIR_HOST=""
cleanup() {
  local rc=$?
  local i
  [[ -n "$PID_DIR_HOST" ]] && kill_leftovers
  for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do
    umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_bind() { # src dst
  mkdir -p "$2"
  if ! mountpoint -q "$2"; then
    mount --bind "$1" "$2"
    MOUNTS+=("$2")
  fi
}

setup_chroot() {
  if [[ -f "$STAMP" ]]; then
    log "reusing the Swift chroot at $CHROOT"
    return
  fi
  [[ $EUID -eq 0 ]] || { echo "creating the Swift chroot needs root (or put swift on PATH)" >&2; exit 1; }
  log "creating a Debian trixie chroot with Swift at $CHROOT"
  if ! command -v debootstrap >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
  fi
  # A chroot whose debootstrap did not finish is made again from scratch
  # (after making sure nothing is still mounted inside it).
  if [[ ! -f "$BASE_STAMP" ]]; then
    if [[ -d "$CHROOT" ]]; then
      local m
      for m in "$CHROOT/repo" "$CHROOT/proc"; do
        if mountpoint -q "$m" 2>/dev/null; then umount -l "$m"; fi
      done
      rm -rf --one-file-system "$CHROOT"
    fi
    mkdir -p "$(dirname "$CHROOT")"
    debootstrap --variant=minbase trixie "$CHROOT" "$(debian_mirror)"
    touch "$BASE_STAMP"
  fi
  mount_bind /proc "$CHROOT/proc"
  chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    bash -c "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${CHROOT_PACKAGES[*]} && apt-get clean"
  chroot "$CHROOT" swift --version
  touch "$STAMP"
}

if [[ "${EID_SWIFT_SETUP_ONLY:-}" == 1 ]]; then
  setup_chroot
  exit 0
fi

# --- Host build: library, server, CLI; then the generated Swift bindings. ---
log "building eid-bindings, eid-server and eid-cli on the host"
cargo build --locked -p eid-bindings -p eid-server -p eid-cli
scripts/gen-bindings.sh >/dev/null

# The module names (EidRust, EidFFI) come from bindings/uniffi.toml.
GEN="$TARGET/bindings/swift"
RUST_DIR="$PKG/Sources/EidRust/Generated"
SWIFT_DIR="$PKG/Sources/EidFFI/Generated"
mkdir -p "$RUST_DIR" "$SWIFT_DIR"
install -m 0644 "$GEN/EidRust.h" "$RUST_DIR/EidRust.h"
install -m 0644 "$GEN/EidRust.modulemap" "$RUST_DIR/module.modulemap"
install -m 0644 "$GEN/EidFFI.swift" "$SWIFT_DIR/EidFFI.swift"

# The servers a test starts leave their pid here; whatever a crashed test left
# behind is killed on the way out (by pid, nothing else).
PID_DIR_HOST=$(mktemp -d /tmp/eid-swift-pids.XXXXXX)
kill_leftovers() {
  local f pid
  for f in "$PID_DIR_HOST"/*.pid; do
    [[ -e "$f" ]] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      echo "killing a server left behind: $pid" >&2
      kill "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$PID_DIR_HOST"
}

# Runs `swift <args>` in the package, natively or in the chroot.
run_swift() {
  local libdir=$1; shift
  local pid_dir=$1; shift
  local bin_dir=$libdir
  local cmd=(swift "$@" -Xlinker -L"$libdir" -Xlinker -rpath -Xlinker "$libdir")
  if [[ -n "$NATIVE_SWIFT" ]]; then
    # EID_SWIFT_HOST_LIBRARY: on a Mac, link the host library, not the XCFramework.
    (cd "$ROOT" && LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
       DYLD_LIBRARY_PATH="$libdir${DYLD_LIBRARY_PATH:+:$DYLD_LIBRARY_PATH}" EID_SWIFT_HOST_LIBRARY=1 \
       EID_BIN_DIR="$bin_dir" EID_TEST_PID_DIR="$pid_dir" "${cmd[@]}")
  else
    chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      LD_LIBRARY_PATH="$libdir" EID_BIN_DIR="$bin_dir" EID_TEST_PID_DIR="$pid_dir" \
      bash -c 'cd /repo && exec "$@"' swift-run "${cmd[@]}"
  fi
}

NATIVE_SWIFT=""
SWIFT_TEST_FLAGS=()
if command -v swift >/dev/null 2>&1; then
  NATIVE_SWIFT=$(command -v swift)
  log "using the native $NATIVE_SWIFT"
  swift --version
  LIBDIR="$TARGET/debug"
  PID_DIR="$PID_DIR_HOST"
else
  setup_chroot
  mount_bind /proc "$CHROOT/proc"
  mount_bind "$ROOT" "$CHROOT/repo"
  # /tmp inside the chroot is the chroot's own; the pid folder is shared through it.
  mkdir -p "$CHROOT/tmp"
  PID_DIR="/tmp/$(basename "$PID_DIR_HOST")"
  mount_bind "$PID_DIR_HOST" "$CHROOT$PID_DIR"
  case "$TARGET/" in
    "$ROOT"/*) LIBDIR="/repo/${TARGET#"$ROOT"/}/debug" ;;
    *) mount_bind "$TARGET" "$CHROOT/cargo-target"; LIBDIR="/cargo-target/debug" ;;
  esac
  # Debian's Swift 6.0.3 ships a libswiftObservation.so with an undefined
  # symbol (swift::threading::fatal, an abort path); SwiftPM's generated test
  # runner imports Testing, which pulls it in. Lazy binding never resolves it
  # unless it is called, so let the link through.
  SWIFT_TEST_FLAGS=(-Xlinker --allow-shlib-undefined)
fi


log "swift build --build-tests"
run_swift "$LIBDIR" "$PID_DIR" build --build-tests "${SWIFT_TEST_FLAGS[@]}"
log "swift test"
run_swift "$LIBDIR" "$PID_DIR" test --skip-build "${SWIFT_TEST_FLAGS[@]}" "$@"
log "Swift tests passed"
