#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: installs and starts what the
# tests need (Apache Kafka, PostgreSQL, Redis, Prometheus; s3s-fs and OpenSearch when their
# test starts them) through the native stack, then runs
#   1. formatting and clippy checks, and the structure check (no import cycle between modules,
#      no function over 80 lines outside tests),
#   2. cargo test --workspace (unit, property, and integration tests against the live stack),
#   3. promtool checks and every dashboard panel's PromQL against a live Prometheus,
#      the docker-compose check,
#   4. real shippers (logger, rsyslog, syslog-ng, curl) into the ingest service, every line
#      stored exactly once; hostile input into it (clear answers, bounded memory); schemathesis
#      against the gateway's and the ingest service's OpenAPI documents; 110,000 distinct
#      service names in, every service's metrics bounded,
#   5. end-to-end runs on the real broker, each checking stored == sent per instance and seq and
#      the windows against a recount: all four formats; PostgreSQL stopped for 30 s; the
#      collector killed five times; a second collector joining and leaving twice; a second
#      collector under the same static member id (fencing); the broker frozen for 30 s; the
#      broker killed and restarted; Redis stopped for 20 s; an S3 archive route (s3s-fs) and an
#      OpenSearch route with the collector killed twice and S3 stopped for 30 s, archive ==
#      index == stored.
# Stops what it started on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export STACK_PROMETHEUS="${STACK_PROMETHEUS:-1}"
STARTED=$SECONDS
# Each step with the minutes and seconds since the start (CI allows 90 minutes; aim under 60).
step() { printf '\n=== [%d:%02d] %s\n' $(((SECONDS - STARTED) / 60)) $(((SECONDS - STARTED) % 60)) "$*"; }
# A fresh build needs about 6 GiB under target/; incremental state would add more and is of
# no use to a one-off run.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
free_gib=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
echo "disk: ${free_gib} GiB free under $ROOT"
if [ "${free_gib:-0}" -lt 8 ]; then
  echo "warning: under 8 GiB free; the build and the tests may run out of disk" >&2
fi

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
python3 scripts/structure-check.py

step "native stack up"
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up

step "cargo test --workspace"
# In the stack's profile: with release, the tests reuse the dependencies the stack's binaries
# were built with instead of building them all again unoptimised (minutes on 2 cores).
profile="${STACK_PROFILE:-release}"
LOGSTREAM_IT=1 LOGSTREAM_BIN_DIR="$ROOT/target/$profile" \
  cargo test --workspace $([ "$profile" = release ] && echo --release)

step "dashboards and alert rules against live Prometheus"
integration-tests/dashboard-test.sh

step "docker-compose.yml check"
integration-tests/compose-env-test.sh

step "real shippers into the ingest service: logger, rsyslog, syslog-ng, curl"
integration-tests/shippers-test.sh

step "hostile input into the ingest service: random bytes, 10 MiB lines, a gzip bomb, a slow client, 1,000 idle connections"
integration-tests/ingest-hostile-test.sh

step "the ingest service's per-client rate limit (Redis)"
integration-tests/ingest-ratelimit-test.sh

step "file source: 200,000 events at 5,000/s into a file rotated three times (rename twice, copytruncate once), the ingest service SIGKILLed twice, Kafka frozen 40 s"
integration-tests/file-tail-test.sh --freeze-broker 40

step "WebSocket fan-in: three generator streams and five hostile upstreams (garbage, 5 MiB frames, a stall, a flapping server, a flood)"
integration-tests/ws-fanin-test.sh

step "property-based API tests from the OpenAPI documents (schemathesis): gateway and ingest"
integration-tests/schemathesis-test.sh

step "search and tail as a new user: error_burst, its errors found with curl and logstream search, followed with logstream tail"
integration-tests/search-tail-test.sh

step "bounded labels: 100,000 distinct service names in, at most 100 service label values out"
integration-tests/label-bound-test.sh

step "system test: 2,000 events/s for 10 s in all four formats, 1,000/s into the ingest service"
integration-tests/system-test.sh --rate 2000 --duration 10 --ingest-rate 1000 \
  --formats '{"json": 55, "apache": 20, "syslog5424": 15, "syslog3164": 10}'

step "PostgreSQL outage: 5,000 events/s for 45 s, PostgreSQL stopped from 5 s to 35 s"
integration-tests/system-test.sh --rate 5000 --duration 45 --stop-postgres-at 5 --postgres-down-for 30

step "crash: 20,000 events/s for 60 s and 2,000/s into the ingest service, the collector killed (SIGKILL) and restarted five times"
integration-tests/system-test.sh --rate 20000 --duration 60 --kill-collector-at 5,15,25,35,45 \
  --ingest-rate 2000

step "rebalance: 5,000 events/s for 60 s, a second collector joining and leaving twice"
integration-tests/system-test.sh --rate 5000 --duration 60 --cycle-second-collector 2

step "zombie: 5,000 events/s for 50 s, a second collector under the same static member id"
integration-tests/system-test.sh --rate 5000 --duration 50 --zombie-collector

step "broker frozen: 5,000 events/s for 60 s, Kafka stopped (SIGSTOP) from 10 s to 40 s"
integration-tests/system-test.sh --rate 5000 --duration 60 --freeze-broker-at 10 --broker-frozen-for 30

step "broker killed: 5,000 events/s for 50 s, Kafka killed (SIGKILL) at 10 s and started 10 s later"
integration-tests/system-test.sh --rate 5000 --duration 50 --kill-broker-at 10 --broker-down-for 10

step "Redis outage: 2,000 events/s for 45 s under a global cap, Redis stopped from 10 s to 30 s"
integration-tests/system-test.sh --rate 2000 --duration 45 --stop-redis-at 10 --redis-down-for 20

step "S3 archive and OpenSearch: 5,000 events/s for 60 s into s3s-fs and OpenSearch 2.19, the collector killed twice and S3 stopped for 30 s; archive == index == stored per instance and seq"
integration-tests/archive-test.sh

step "enrichment: Apache lines and ECS JSON with real user agents and public addresses, a real GeoLite2 country database (npm): ua and geo as expected"
integration-tests/enrich-test.sh

step "sampling under lag: the collector 10 s behind with LOGSTREAM_SAMPLE_LAG_SECONDS=5, then keeping up; stored + sampled out == sent per instance and seq, windows count every event"
integration-tests/sampling-test.sh

step "load test: 2,000 then 20,000 events/s, 10 s each, with its report (table, timeline, chart)"
report="$ROOT/.stack/load-test-report"
rm -rf "$report"
./load-test.sh --rates 2000,20000 --step-seconds 10 --report-dir "$report"
for f in report.md timeline.csv chart.svg; do
  [ -s "$report/$f" ] || { echo "load-test wrote no $f"; exit 1; }
done
grep -q '<polyline' "$report/chart.svg" || { echo "chart.svg has no lines"; exit 1; }
[ "$(wc -l < "$report/timeline.csv")" -ge 10 ] || { echo "timeline.csv has fewer than 9 seconds"; exit 1; }

step "all tests passed"
