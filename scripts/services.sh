# Test services, sourced by scripts/test.sh and .ci/run: each is installed when
# missing, started on loopback, and checked before the tests run. Safe to source
# again: a service already up is reused.
#
# PostgreSQL 15 (the Debian cluster "15 main", port 5432) with a test role
# `hcbackup_test` that may create databases (what a clinic's backup user usually
# is) and a superuser `hcbackup_admin` (amcheck, role passwords); the tests reach
# them through the HCBACKUP_TEST_PG_* variables exported here. Then moto (S3)
# and aiosmtpd (an SMTP server that files what it receives in a Maildir).

start_postgres() {
    if ! command -v pg_ctlcluster >/dev/null || ! command -v pg_dump >/dev/null; then
        apt-get update -qq && apt-get install -y -qq postgresql-15 postgresql-client-15
    fi
    pg_ctlcluster 15 main status >/dev/null 2>&1 || pg_ctlcluster 15 main start
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 0.5
    done
    pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; return 1; }
    runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hcbackup_test') THEN
    CREATE ROLE hcbackup_test LOGIN CREATEDB PASSWORD 'hcbackup-test-pw';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hcbackup_admin') THEN
    CREATE ROLE hcbackup_admin LOGIN SUPERUSER PASSWORD 'hcbackup-admin-pw';
  END IF;
END $$;
SQL
    export HCBACKUP_TEST_PG_HOST=127.0.0.1
    export HCBACKUP_TEST_PG_PORT=5432
    export HCBACKUP_TEST_PG_USER=hcbackup_test
    export HCBACKUP_TEST_PG_PASSWORD=hcbackup-test-pw
    export HCBACKUP_TEST_PG_ADMIN_USER=hcbackup_admin
    export HCBACKUP_TEST_PG_ADMIN_PASSWORD=hcbackup-admin-pw
}

# S3: moto's server (pinned) in a venv outside the clone, on loopback port 5055.
# The tests reach it through HCBACKUP_TEST_S3_ENDPOINT and test credentials.
start_s3() {
    local venv=/var/tmp/hcbackup-venv port=5055
    if [ ! -x "$venv/bin/moto_server" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q 'moto[server]==5.2.5'
    fi
    if ! curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
        nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/var/tmp/hcbackup-moto.log 2>&1 &
        for _ in $(seq 1 60); do
            curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
            sleep 0.5
        done
    fi
    curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null || { echo "moto did not start" >&2; return 1; }
    export HCBACKUP_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=hcbackup-test AWS_SECRET_ACCESS_KEY=hcbackup-test-secret AWS_REGION=us-east-1
}

# SMTP: aiosmtpd (pinned) in the same venv, on loopback port 2525, filing every
# message it receives in the Maildir HCBACKUP_TEST_MAILDIR (its new/ folder), so
# the alert tests read what arrived.
start_smtp() {
    local venv=/var/tmp/hcbackup-venv port=2525 maildir=/var/tmp/hcbackup-mail
    [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
    "$venv/bin/python3" -c 'import aiosmtpd' 2>/dev/null || "$venv/bin/pip" install -q 'aiosmtpd==1.4.6'
    mkdir -p "$maildir/tmp" "$maildir/new" "$maildir/cur"
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        nohup "$venv/bin/python3" -m aiosmtpd -n -l "127.0.0.1:$port" \
            -c aiosmtpd.handlers.Mailbox "$maildir" >/var/tmp/hcbackup-smtp.log 2>&1 &
        for _ in $(seq 1 60); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.5
        done
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "aiosmtpd did not start" >&2; return 1; }
    export HCBACKUP_TEST_SMTP_PORT=$port HCBACKUP_TEST_MAILDIR=$maildir
}

# The second reader (tests/reader/hcbread.py, tests/second_reader.rs): its
# packages (pinned) in the same venv; the tests run it with HCBACKUP_TEST_READER_PYTHON.
setup_reader() {
    local venv=/var/tmp/hcbackup-venv
    [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
    "$venv/bin/python3" -c 'import blake3, cbor2, zstandard
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id' 2>/dev/null ||
        "$venv/bin/pip" install -q 'blake3==1.0.11' 'cbor2==6.3.0' 'zstandard==0.25.0' 'cryptography>=44'
    export HCBACKUP_TEST_READER_PYTHON=$venv/bin/python3
}

start_services() {
    command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq build-essential; }
    command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
    # The Drive test server (tests/common/drive.rs) makes its service-account key
    # pair with openssl; Drive's client checks TLS roots from ca-certificates.
    command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
    [ -e /etc/ssl/certs/ca-certificates.crt ] || { apt-get update -qq && apt-get install -y -qq ca-certificates; }
    # The dashboard test renders `serve`'s page in headless Chromium.
    command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
    start_postgres
    start_s3
    start_smtp
    setup_reader
}
