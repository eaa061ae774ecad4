#!/usr/bin/env bash
# Builds and tests the Kotlin shell on the JVM (android/jvm, Maven):
#  1. builds the host library, eid-server and the eid CLI (debug);
#  2. generates the Kotlin bindings (scripts/gen-bindings.sh);
#  3. runs `mvn test`: the tests start their own eid-server on 127.0.0.1 and
#     stop it when done;
#  4. compiles the Android-only code that needs just the framework, and the
#     documentation snippets, against Robolectric's android-all jar
#     (android/framework/pom.xml; compile only, nothing runs).
# Needs: cargo, Java 17+, Maven, Maven Central reachable (first run).
# Extra arguments go to Maven, e.g. scripts/test-kotlin.sh -Dtest=ExpiryTest
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd -P)"
# cargo's target folder: target/, or $CARGO_TARGET_DIR.
TARGET="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

command -v mvn >/dev/null || { echo "test-kotlin: Maven (mvn) is needed" >&2; exit 1; }
command -v java >/dev/null || { echo "test-kotlin: Java 17+ is needed" >&2; exit 1; }

echo "== cargo build (eid-bindings, eid-server, eid-cli)"
cargo build --locked -p eid-bindings -p eid-server -p eid-cli
echo "== bindings"
scripts/gen-bindings.sh >/dev/null
test -f "$TARGET/bindings/kotlin/dk/eid/authenticator/ffi/eid_bindings.kt"

echo "== mvn test (android/jvm)"
# A fresh build each time: classes compiled from a renamed or deleted source
# would otherwise stay in target/ and still run.
rm -rf "$ROOT/android/jvm/target"
mvn -B -q -Dstyle.color=never -f "$ROOT/android/jvm/pom.xml" \
  -Deid.repo.root="$ROOT" \
  -Deid.native.dir="$TARGET/debug" \
  -Deid.bindings.dir="$TARGET/bindings/kotlin" \
  test "$@"
# Surefire's closing lines are quiet under -q; print the totals ourselves,
# on a line of their own.
echo
python3 - "$ROOT/android/jvm/target/surefire-reports" <<'PY' || true
import glob, sys, xml.etree.ElementTree as ET
t = f = e = s = 0
for p in glob.glob(sys.argv[1] + "/TEST-*.xml"):
    r = ET.parse(p).getroot()
    t += int(r.get("tests", 0)); f += int(r.get("failures", 0))
    e += int(r.get("errors", 0)); s += int(r.get("skipped", 0))
print(f"kotlin: {t - f - e - s} passed, {f + e} failed, {s} skipped")
PY

echo "== mvn compile (android/framework: androidMain and the doc snippets against android-all)"
rm -rf "$ROOT/android/framework/target"
mvn -B -q -Dstyle.color=never -f "$ROOT/android/framework/pom.xml" \
  -Deid.repo.root="$ROOT" \
  -Deid.bindings.dir="$TARGET/bindings/kotlin" \
  compile
echo "android framework compile check: ok"
