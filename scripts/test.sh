#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: installs and starts what the
# tests need (PostgreSQL, Redis, tansu as Kafka) through the native stack, then runs
#   1. formatting and clippy checks,
#   2. cargo test --workspace (unit, property, and integration tests against the live stack),
#   3. promtool checks and every dashboard panel's PromQL against a live Prometheus,
#      the docker-compose check, the end-to-end system test and a PostgreSQL outage under
#      load; each end-to-end run also checks the windows against a recount,
#   4. on librdkafka's mock Kafka cluster: the collector killed five times under load, and a
#      second collector joining and leaving twice (rebalances).
# Stops what it started on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export STACK_PROMETHEUS="${STACK_PROMETHEUS:-1}"
step() { printf '\n=== %s\n' "$*"; }

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

step "native stack up"
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up

step "cargo test --workspace"
LOGSTREAM_IT=1 LOGSTREAM_BIN_DIR="$ROOT/target/${STACK_PROFILE:-release}" cargo test --workspace

step "dashboards and alert rules against live Prometheus"
integration-tests/dashboard-test.sh

step "docker-compose.yml check"
integration-tests/compose-env-test.sh

step "system test: 2,000 events/s for 10 s in all four formats"
integration-tests/system-test.sh --rate 2000 --duration 10 \
  --formats '{"json": 55, "apache": 20, "syslog5424": 15, "syslog3164": 10}'

step "PostgreSQL outage: 5,000 events/s for 45 s, PostgreSQL stopped from 5 s to 35 s"
integration-tests/system-test.sh --rate 5000 --duration 45 --stop-postgres-at 5 --postgres-down-for 30

# Crash and rebalance runs need a group coordinator that hands partitions on; tansu 0.6's does
# not reliably (a collector restarted after SIGKILL, or left alone after a rebalance, can be left
# without partitions for good). They run against librdkafka's mock cluster instead, with the same
# services, PostgreSQL and Redis. The mock keeps only 5 MiB per partition, so the generator
# compresses with zstd (larger batches: 20 ms linger) and the collector's session timeout is 3 s,
# for the dead member's partitions to move on before the mock drops records.
step "Kafka group faults, on librdkafka's mock cluster"
scripts/stack.sh down
export STACK_KAFKA=mock STACK_PROMETHEUS=0 LOGSTREAM_KAFKA_COMPRESSION=zstd LOGSTREAM_KAFKA_LINGER_MS=20 \
  LOGSTREAM_KAFKA_SESSION_TIMEOUT_MS=3000
scripts/stack.sh up

step "crash: 20,000 events/s for 60 s, the collector killed (SIGKILL) and restarted five times"
integration-tests/system-test.sh --rate 20000 --duration 60 --kill-collector-at 5,15,25,35,45

step "rebalance: 5,000 events/s for 60 s, a second collector joining and leaving twice"
integration-tests/system-test.sh --rate 5000 --duration 60 --cycle-second-collector 2

# Not here: `system-test.sh --zombie-collector` (a second collector under the same static member
# id). Under tansu it proved the offset fence in most runs, but in one CI run tansu left both
# members without partitions and nothing was consumed; the mock cluster does not implement static
# membership at all. It stays available for manual runs.

step "all tests passed"
