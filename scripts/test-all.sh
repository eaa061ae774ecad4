#!/usr/bin/env bash
# Runs every test suite of the project. Today: the Rust workspace (protocol,
# core, server end-to-end over TLS on 127.0.0.1, api-client). The Kotlin and
# Swift suites join when the bindings issue lands.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo --version
cargo test --workspace --locked
