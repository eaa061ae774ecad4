#!/usr/bin/env bash
# Builds the Rust library, server and CLI on the host, generates the Swift
# bindings, copies them into the Swift package (ios/) and runs its tests
# against the host library and a real eid-server on 127.0.0.1.
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
PKG="$ROOT/ios"
CHROOT="${EID_SWIFT_CHROOT:-/var/cache/eid-swift-chroot}"
STAMP="$CHROOT/.eid-swift-ready-v1"
CHROOT_PACKAGES=(swiftlang libssl-dev pkg-config ca-certificates)

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
cleanup() {
  local rc=$?
  local i
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
  # A half-made chroot (no stamp) is made again from scratch; make sure nothing
  # is still mounted inside before removing it.
  if [[ -d "$CHROOT" ]]; then
    local m
    for m in "$CHROOT/repo" "$CHROOT/proc" "$CHROOT/dev"; do
      mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true
    done
    rm -rf --one-file-system "$CHROOT"
  fi
  mkdir -p "$(dirname "$CHROOT")"
  debootstrap --variant=minbase trixie "$CHROOT" "$(debian_mirror)"
  mount_bind /proc "$CHROOT/proc"
  chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    bash -c "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${CHROOT_PACKAGES[*]} && apt-get clean"
  chroot "$CHROOT" swift --version
  touch "$STAMP"
}

if [[ "${EID_SWIFT_SETUP_ONLY:-}" == 1 ]]; then
  setup_chroot
  exit 0
fi
