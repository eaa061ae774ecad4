#!/usr/bin/env bash
# Builds EidRust.xcframework (static libeid_bindings.a for iOS devices, the
# iOS simulator on Apple silicon and Intel, and macOS, with the generated
# header and module map of the EidRust module) in ios/, and
# copies the generated EidFFI.swift into Sources/EidFFI/Generated.
# The root Package.swift links the XCFramework on Apple platforms.
#
# macOS only (needs Xcode's xcodebuild and lipo, and the Rust targets:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios \
#                     aarch64-apple-darwin x86_64-apple-darwin).
# Usage: ios/build-xcframework.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG="$ROOT/ios"
TARGET="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

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
GEN="$TARGET/bindings/swift"

TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
for t in "${TARGETS[@]}"; do
  cargo build --locked -p eid-bindings --lib --target "$t" "${CARGO_FLAGS[@]}"
done

OUT="$TARGET/xcframework"
rm -rf "$OUT"
mkdir -p "$OUT/headers" "$OUT/ios-sim" "$OUT/macos"
cp "$GEN/EidRust.h" "$OUT/headers/"
cp "$GEN/EidRust.modulemap" "$OUT/headers/module.modulemap"

lib() { echo "$TARGET/$1/$PROFILE/libeid_bindings.a"; }
# One library per platform: the simulator and macOS slices are fat (arm64 + x86_64).
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$OUT/ios-sim/libeid_bindings.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$OUT/macos/libeid_bindings.a"

rm -rf "$PKG/EidRust.xcframework"
xcodebuild -create-xcframework \
  -library "$(lib aarch64-apple-ios)" -headers "$OUT/headers" \
  -library "$OUT/ios-sim/libeid_bindings.a" -headers "$OUT/headers" \
  -library "$OUT/macos/libeid_bindings.a" -headers "$OUT/headers" \
  -output "$PKG/EidRust.xcframework"

mkdir -p "$PKG/Sources/EidFFI/Generated"
cp "$GEN/EidFFI.swift" "$PKG/Sources/EidFFI/Generated/EidFFI.swift"
echo "built $PKG/EidRust.xcframework"
