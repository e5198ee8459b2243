#!/usr/bin/env bash
# Run the whole test suite, as CI does: install what the tests need, start the test
# services on loopback, run `cargo test`. Safe to run again; services already up are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hcbackup-target}"
source scripts/services.sh
start_services
cargo test --all-targets "$@"
