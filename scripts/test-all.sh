#!/usr/bin/env bash
# Runs every test suite of the project:
#   1. the Rust workspace: unit tests, the server's API tests, the end-to-end
#      suite in tests/ (core against the real server over TLS), the CLI tests,
#      and the PostgreSQL backend's tests (store conformance, several
#      replicas on one database) against a throw-away PostgreSQL cluster
#      (scripts/with-postgres.sh);
#   2. the Kotlin shell's JUnit tests on the JVM (Maven) against the host-built
#      library and a real eid-server;
#   3. the Swift package's XCTest suite against the same, with a native swift
#      or Swift 6.0.3 in a Debian trixie chroot that the script sets up itself;
#   4. schemathesis (hostile HTTP input from the server's OpenAPI document) for
#      60 s against a fresh server: no 5xx, no response off its schema;
#   5. an OpenID Connect login with authlib, a browser and the eid phone;
#   6. the hosted login page in Debian's Chromium (playwright-core) against
#      `eid demo --web`, the phone's side done by `eid app`;
#   7. the phone library's size against its 3.5 MiB budget (scripts/lib-size.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
cargo --version
./scripts/with-postgres.sh cargo test --workspace --locked
echo "rust: done after $((SECONDS - started)) s"
# The phone library's size budget (release-small build of the cdylib).
./scripts/lib-size.sh --check
echo "library size: done after $((SECONDS - started)) s"
./scripts/test-browser.sh
./scripts/test-kotlin.sh
echo "kotlin: done after $((SECONDS - started)) s"
./scripts/test-swift.sh
echo "swift: done after $((SECONDS - started)) s"
./scripts/schemathesis.sh 60
echo "schemathesis: done after $((SECONDS - started)) s"
./scripts/test-protocol-python.sh
./scripts/test-oidc-python.sh
./scripts/test-rp-python.sh
