#!/usr/bin/env bash
# Builds the eid-bindings library (debug, unstripped: the generator reads its
# metadata) and generates the Kotlin and Swift bindings into
# <target>/bindings/{kotlin,swift}, where <target> is cargo's target folder
# (`target/`, or $CARGO_TARGET_DIR). Generated code is build output: never
# commit it. The foreign names (Kotlin package dk.eid.authenticator.ffi,
# Swift modules EidFFI and EidRust) come from bindings/uniffi.toml.
#
# Usage: scripts/gen-bindings.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
PROFILE=debug
CARGO_FLAGS=()
if [[ "${1:-}" == "--release" ]]; then
  PROFILE=release
  CARGO_FLAGS=(--release)
fi

# The library alone: building it with the whole workspace is fine too, since
# the generator lives in its own workspace (tools/uniffi-bindgen).
cargo build --locked -p eid-bindings "${CARGO_FLAGS[@]}"
LIB="$TARGET/$PROFILE/libeid_bindings.so"

BINDGEN_DIR="$ROOT/tools/uniffi-bindgen"
cargo build --locked --manifest-path "$BINDGEN_DIR/Cargo.toml" --target-dir "$TARGET/uniffi-bindgen"
BINDGEN="$TARGET/uniffi-bindgen/debug/uniffi-bindgen"

OUT="$TARGET/bindings"
rm -rf "$OUT"
mkdir -p "$OUT/kotlin" "$OUT/swift"
# Library mode: the generator finds bindings/uniffi.toml through cargo metadata.
"$BINDGEN" generate --no-format "$LIB" --language kotlin --out-dir "$OUT/kotlin"
"$BINDGEN" generate --no-format "$LIB" --language swift --out-dir "$OUT/swift"
echo "library:  $LIB"
echo "kotlin:   $OUT/kotlin"
echo "swift:    $OUT/swift"
