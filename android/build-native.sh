#!/usr/bin/env bash
# Builds the Rust core for Android with cargo-ndk and generates the Kotlin
# bindings for the Gradle build in this folder.
#
# Needs: the Android NDK (ANDROID_NDK_HOME), `cargo install cargo-ndk`, and the
# Rust targets: rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
#
# Output (build output, never committed):
#   eid/src/main/jniLibs/<abi>/libeid_bindings.so
#   eid/build/generated/uniffi/kotlin/dk/eid/authenticator/ffi/eid_bindings.kt
#   (package dk.eid.authenticator.ffi, named in bindings/uniffi.toml)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

cd "$ROOT"
# Release libraries for the app (stripped by the Android Gradle plugin).
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 \
  -o "$HERE/eid/src/main/jniLibs" \
  build --release --locked -p eid-bindings

# Bindings come from the unstripped host library (the generator reads its
# metadata); they are the same for every target.
scripts/gen-bindings.sh
TARGET="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
OUT="$HERE/eid/build/generated/uniffi/kotlin"
rm -rf "$OUT"
mkdir -p "$OUT"
cp -R "$TARGET/bindings/kotlin/." "$OUT/"
echo "jniLibs:  $HERE/eid/src/main/jniLibs"
echo "bindings: $OUT"
