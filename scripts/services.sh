# Test services, sourced by scripts/test.sh and .ci/run. The core engine's tests need
# none yet; the database, cloud and alert issues add PostgreSQL, moto (S3) and
# aiosmtpd here, each started on loopback and checked before the tests run.
start_services() {
    command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq build-essential; }
}
