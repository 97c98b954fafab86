#!/usr/bin/env bash
# One sink alone: how fast an archive (s3) or search (opensearch) route drains the whole topic.
# The stack's collector is restarted with only that route, under a fresh prefix, so the route
# starts at the beginning of the retained topic; the bench times the route's progress in
# PostgreSQL (archive_progress) reaching the end PostgreSQL storage has reached
# (kafka_offsets), from collector start (group join included), and restarts the collector
# without the route at the end. Fill the topic first, e.g. 50,000 events/s for 50 s through the
# gateway, and let PostgreSQL storage catch up.
#
#   integration-tests/sink-bench.sh --sink s3|opensearch [--max-seconds 60]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
sink="" max_seconds=60
while [ $# -gt 0 ]; do
  case $1 in
    --sink) sink=$2; shift 2;;
    --max-seconds) max_seconds=$2; shift 2;;
    *) echo "usage: $0 --sink s3|opensearch [--max-seconds S]" >&2; exit 2;;
  esac
done
prefix="bench-$(date +%s)"
case $sink in
  s3)
    scripts/stack.sh start s3
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-logstream}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-logstream-secret}"
    export LOGSTREAM_S3_ENDPOINT=http://127.0.0.1:8014 LOGSTREAM_S3_PATH_STYLE=true
    destination="s3://logstream-archive/$prefix";;
  opensearch)
    scripts/stack.sh start opensearch
    destination="opensearch+http://127.0.0.1:9200/logstream-$prefix";;
  *) echo "usage: $0 --sink s3|opensearch [--max-seconds S]" >&2; exit 2;;
esac
DB="${LOGSTREAM_DATABASE_URL:-postgres://logstream:logstream@127.0.0.1:5432/logstream}"
total=$(psql "$DB" -XtAc "SELECT sum(next_offset) FROM kafka_offsets")
restore() {
  scripts/stack.sh stop collector >/dev/null
  env -u LOGSTREAM_ROUTES scripts/stack.sh start collector >/dev/null
}
trap restore EXIT
scripts/stack.sh stop collector >/dev/null
LOGSTREAM_ROUTES="$destination=*" LOGSTREAM_ARCHIVE_MAX_SECONDS=$max_seconds \
  LOGSTREAM_SINK_START=earliest scripts/stack.sh start collector >/dev/null
start=$(date +%s.%N)
last=0
while true; do
  done_=$(psql "$DB" -XtAc "SELECT coalesce(sum(next_offset), 0) FROM archive_progress WHERE destination = '$destination'")
  [ "$done_" -ge "$total" ] && break
  now=$(date +%s)
  if [ "$now" -ge $((last + 10)) ]; then
    last=$now
    echo "[sink-bench] $sink: $done_ of $total records"
  fi
  sleep 0.5
done
end=$(date +%s.%N)
sent=$(curl -s localhost:8081/metrics | awk -v d="$destination" 'index($0, "sink_events_sent_total{sink=\"" d "\"}") == 1 {print $2}')
rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$(cat .stack/collector.pid)/status" 2>/dev/null || echo "?")
python3 - "$sink" "$done_" "${sent:-0}" "$start" "$end" "$rss" <<'EOF'
import sys
sink, records, sent, start, end, rss = sys.argv[1:]
d = float(end) - float(start)
print(f"[sink-bench] {sink} alone: {int(records):,} records ({float(sent):,.0f} events sent) in {d:.1f} s "
      f"from collector start: {int(records) / d:,.0f} records/s; collector peak RSS {rss} MiB")
EOF
if [ "$sink" = s3 ]; then du -sh ".stack/s3/logstream-archive/$prefix"; else
  curl -s "localhost:9200/_cat/indices/logstream-$prefix-*?h=index,docs.count,store.size"; fi
