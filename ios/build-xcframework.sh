#!/usr/bin/env bash
# Builds eid_bindingsFFI.xcframework (static libeid_bindings.a for iOS devices,
# the iOS simulator on Apple silicon and Intel, and macOS, with the generated
# header and module map) next to Package.swift, and copies the generated
# eid_bindings.swift into Sources/EidBindings/Generated. Package.swift then
# links the XCFramework instead of the host library.
#
# macOS only (needs Xcode's xcodebuild and lipo, and the Rust targets:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios \
#                     aarch64-apple-darwin x86_64-apple-darwin).
# Usage: ios/build-xcframework.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG="$ROOT/ios"

if [[ "$(uname -s)" != Darwin ]] || ! command -v xcodebuild >/dev/null; then
  echo "build-xcframework.sh needs macOS with Xcode (xcodebuild)." >&2
  echo "On Linux, scripts/test-swift.sh builds and tests the package against the host library." >&2
  exit 1
fi

PROFILE=release
CARGO_FLAGS=(--release)
if [[ "${1:-}" == "--debug" ]]; then PROFILE=debug; CARGO_FLAGS=(); fi

# Bindings come from the unstripped host library (the generator reads its metadata).
scripts/gen-bindings.sh
GEN="$ROOT/target/bindings/swift"

TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
for t in "${TARGETS[@]}"; do
  cargo build --locked -p eid-bindings --lib --target "$t" "${CARGO_FLAGS[@]}"
done

OUT="$ROOT/target/xcframework"
rm -rf "$OUT"
mkdir -p "$OUT/headers" "$OUT/ios-sim" "$OUT/macos"
cp "$GEN/eid_bindingsFFI.h" "$OUT/headers/"
cp "$GEN/eid_bindingsFFI.modulemap" "$OUT/headers/module.modulemap"

lib() { echo "$ROOT/target/$1/$PROFILE/libeid_bindings.a"; }
# One library per platform: the simulator and macOS slices are fat (arm64 + x86_64).
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$OUT/ios-sim/libeid_bindings.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$OUT/macos/libeid_bindings.a"

rm -rf "$PKG/eid_bindingsFFI.xcframework"
xcodebuild -create-xcframework \
  -library "$(lib aarch64-apple-ios)" -headers "$OUT/headers" \
  -library "$OUT/ios-sim/libeid_bindings.a" -headers "$OUT/headers" \
  -library "$OUT/macos/libeid_bindings.a" -headers "$OUT/headers" \
  -output "$PKG/eid_bindingsFFI.xcframework"

mkdir -p "$PKG/Sources/EidBindings/Generated"
cp "$GEN/eid_bindings.swift" "$PKG/Sources/EidBindings/Generated/eid_bindings.swift"
echo "built $PKG/eid_bindingsFFI.xcframework"
