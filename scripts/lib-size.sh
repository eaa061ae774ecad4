#!/usr/bin/env bash
# Size of the phone core as it would ship, built with the workspace's
# `release-small` profile (opt-level "z", fat LTO, 1 codegen unit, panic=abort,
# symbols stripped).
#
# What is measured, and why:
# 0. Main figure: `libeid_bindings.so`, the uniffi cdylib the Kotlin and Swift
#    shells load: the core, every dependency and the FFI scaffolding, stripped.
# 1. Without the FFI layer: `eid-size-probe`, a tiny program that calls every public
#    operation of `eid_core::App` (plus a tokio runtime to drive the
#    async calls, as the bindings will need). With fat LTO the linked program
#    holds the core and every dependency code path it reaches, and drops what
#    is unreachable -- what an app's native library would contain. A `cdylib`
#    of eid-core would keep only exported symbols (none: exporting needs
#    `#[unsafe(no_mangle)]`, which the workspace forbids), so it would measure
#    almost nothing; the uniffi bindings crate will be the real cdylib later.
# 2. Baseline: an empty `fn main() {}` with the same flags (Rust std's share,
#    which a cdylib also carries), so "probe - baseline" is the core's share.
# 3. Upper bound: `eid-core` as a `staticlib` (fat LTO, debug info stripped).
#    An archive keeps every public item of every dependency, reachable or not,
#    so it overstates what a linked library contains.
#
# Usage: scripts/lib-size.sh            (prints sizes in bytes and MiB)
#        scripts/lib-size.sh --check    (builds the phone library only; fails
#                                        when it is over the budget; the test
#                                        command runs this, so the size cannot
#                                        creep back unnoticed)
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
out="$target_dir/release-small"
# The budget for the stripped phone library, in bytes.
budget=$((7 * 1048576 / 2))

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
report() { printf '%-58s %10d bytes  %6s MiB\n' "$1" "$2" "$(mib "$2")"; }

cargo build --quiet --locked -p eid-bindings --profile release-small
cdylib_size=$(stat -c %s "$out/libeid_bindings.so")
if [ "${1:-}" = "--check" ]; then
  report "phone library: libeid_bindings.so (cdylib, stripped)" "$cdylib_size"
  if [ "$cdylib_size" -gt "$budget" ]; then
    echo "OVER BUDGET: the phone library is $cdylib_size bytes, the budget $budget bytes (3.5 MiB)" >&2
    exit 1
  fi
  echo "within the budget of $budget bytes (3.5 MiB): $((budget - cdylib_size)) bytes to spare"
  exit 0
fi

cargo build --quiet -p eid-size-probe --profile release-small
probe="$out/eid-size-probe"
probe_size=$(stat -c %s "$probe")

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo 'fn main() {}' > "$tmp/empty.rs"
rustc --edition 2024 -C opt-level=z -C lto=fat -C codegen-units=1 -C panic=abort \
  -C strip=symbols -o "$tmp/empty" "$tmp/empty.rs"
empty_size=$(stat -c %s "$tmp/empty")

cargo rustc --quiet -p eid-core --profile release-small --lib --crate-type staticlib
cp "$out/libeid_core.a" "$tmp/libeid_core.a"
strip --strip-debug "$tmp/libeid_core.a"
static_size=$(stat -c %s "$tmp/libeid_core.a")

echo "release-small: opt-level=z, lto=fat, codegen-units=1, panic=abort, strip=symbols"
report "phone library: libeid_bindings.so (cdylib, stripped)" "$cdylib_size"
report "core as linked without FFI (eid-size-probe, stripped)" "$probe_size"
report "  of which Rust std baseline (empty main, same flags)" "$empty_size"
report "  core + dependencies (difference)" "$((probe_size - empty_size))"
report "upper bound: libeid_core.a staticlib (debug info stripped)" "$static_size"
echo "target: <= 3.5 MiB ($budget bytes) for the linked library"
if [ "$cdylib_size" -le "$budget" ]; then echo "within target"; else echo "OVER TARGET"; fi
