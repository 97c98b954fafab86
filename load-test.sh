#!/usr/bin/env bash
# Load test against a running stack (scripts/stack.sh up, or docker compose up): drives the
# gateway through a ladder of rates, prints a line per second (target, generated and stored
# rate, consumer lag, collector memory), and per step the event-to-row latency (p50, p99) and
# the events lost or doubled, checked exactly per instance and seq once the collector caught up.
# Writes report.md (the table), timeline.csv and chart.svg, and prints where.
#
#   ./load-test.sh [--rates 1000,10000,50000,100000,200000] [--step-seconds 20]
#                  [--catch-up-seconds 300] [--report-dir DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$ROOT/integration-tests" exec python3 "$ROOT/integration-tests/load_test.py" "$@"
