# Test services, sourced by scripts/test.sh and .ci/run: each is installed when
# missing, started on loopback, and checked before the tests run. Safe to source
# again: a service already up is reused.
#
# PostgreSQL 15 (the Debian cluster "15 main", port 5432) with a test role
# `hcbackup_test` that may create databases (what a clinic's backup user usually
# is) and a superuser `hcbackup_admin` (amcheck, role passwords); the tests reach
# them through the HCBACKUP_TEST_PG_* variables exported here. The cloud and alert issues add moto
# (S3) and aiosmtpd here.

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

start_services() {
    command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq build-essential; }
    start_postgres
}
