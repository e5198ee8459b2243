#!/usr/bin/env bash
# Run the whole test suite, as CI does: install what the tests need, start the test
# services on loopback, run `cargo test` (library, binary and integration tests;
# the benches are built by .ci/run). Safe to run again; services already up are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hcbackup-target}"
source scripts/services.sh
start_services
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line with the totals of every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
