#!/usr/bin/env bash
# Builds the eid-bindings library (debug, unstripped: the generator reads its
# metadata) and generates the Kotlin and Swift bindings into
# target/bindings/{kotlin,swift}. Generated code is build output: never commit it.
#
# Usage: scripts/gen-bindings.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=debug
CARGO_FLAGS=()
if [[ "${1:-}" == "--release" ]]; then
  PROFILE=release
  CARGO_FLAGS=(--release)
fi

# The library alone: building it with the whole workspace is fine too, since
# the generator lives in its own workspace (tools/uniffi-bindgen).
cargo build --locked -p eid-bindings "${CARGO_FLAGS[@]}"
LIB="$ROOT/target/$PROFILE/libeid_bindings.so"

BINDGEN_DIR="$ROOT/tools/uniffi-bindgen"
cargo build --locked --manifest-path "$BINDGEN_DIR/Cargo.toml" --target-dir "$ROOT/target/uniffi-bindgen"
BINDGEN="$ROOT/target/uniffi-bindgen/debug/uniffi-bindgen"

OUT="$ROOT/target/bindings"
rm -rf "$OUT"
mkdir -p "$OUT/kotlin" "$OUT/swift"
"$BINDGEN" generate --no-format "$LIB" --language kotlin --out-dir "$OUT/kotlin"
"$BINDGEN" generate --no-format "$LIB" --language swift --out-dir "$OUT/swift"
echo "library:  $LIB"
echo "kotlin:   $OUT/kotlin"
echo "swift:    $OUT/swift"
