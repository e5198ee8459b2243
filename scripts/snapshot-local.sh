#!/usr/bin/env bash
# Build hcbackup and take a snapshot of a folder into a local repository.
#   scripts/snapshot-local.sh [FOLDER]   (default: $UPLOADS_DIR, else a small sample)
# With POSTGRES_DB set (and POSTGRES_HOST/PORT/USER/PASSWORD as in the seed), the
# database is dumped into the same snapshot; pg_dump must then be installed.
# The repository is $BACKUP_DIR/repository (default ./local-backup/repository); the
# password is read from $HCBACKUP_PASSWORD_FILE (default ./local-backup/password, made
# once with random bytes: keep a copy somewhere safe, without it nothing restores).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hcbackup-target}"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/hcbackup"
export BACKUP_DIR="${BACKUP_DIR:-$PWD/local-backup}"
mkdir -p -m 700 "$BACKUP_DIR"
export HCBACKUP_PASSWORD_FILE="${HCBACKUP_PASSWORD_FILE:-$BACKUP_DIR/password}"
if [ ! -s "$HCBACKUP_PASSWORD_FILE" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 > "$HCBACKUP_PASSWORD_FILE")
    echo "new password written to $HCBACKUP_PASSWORD_FILE: keep a copy somewhere safe"
fi
src="${1:-${UPLOADS_DIR:-}}"
if [ -z "$src" ]; then
    src="$BACKUP_DIR/sample-uploads"
    mkdir -p "$src/exams" "$src/records"
    [ -f "$src/exams/scan.dcm" ] || head -c 5000000 /dev/urandom > "$src/exams/scan.dcm"
    [ -f "$src/records/patient.txt" ] || seq 1 100000 | sed 's/^/consulta /' > "$src/records/patient.txt"
fi
[ -f "$BACKUP_DIR/repository/config" ] || "$bin" init
"$bin" snapshot "$src"
"$bin" snapshots
