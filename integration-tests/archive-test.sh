#!/usr/bin/env bash
# The S3 archive and the search cluster, exactly once: the stack's collector restarted with an
# archive route (s3://logstream-archive/PREFIX=*, into s3s-fs: scripts/stack.sh start s3) and a
# search route (opensearch+http://127.0.0.1:9200/logstream-PREFIX=*, into OpenSearch 2.19:
# scripts/stack.sh start opensearch), then 5,000 events/s for 60 s with the collector SIGKILLed
# twice and the S3 server stopped for 30 s in between. PostgreSQL must hold exactly what was
# sent, and the archive and the index exactly what PostgreSQL holds (per instance and seq, no
# duplicate); while S3 is down the archive's lag must grow and PostgreSQL keep storing. The
# routes start at the topic's end (LOGSTREAM_SINK_START=latest); the collector is restarted
# without them at the end.
#
#   integration-tests/archive-test.sh [--rate N] [--duration S]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
rate=5000 duration=60
while [ $# -gt 0 ]; do
  case $1 in
    --rate) rate=$2; shift 2;;
    --duration) duration=$2; shift 2;;
    *) echo "usage: $0 [--rate N] [--duration S]" >&2; exit 2;;
  esac
done
command -v zstd >/dev/null || { apt-get install -y -qq zstd >/dev/null; }
prefix="it-$(date +%s)"
scripts/stack.sh start s3
scripts/stack.sh start opensearch
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-logstream}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-logstream-secret}"
restore() {
  scripts/stack.sh stop collector
  env -u LOGSTREAM_ROUTES scripts/stack.sh start collector
}
trap restore EXIT
scripts/stack.sh stop collector
export LOGSTREAM_ROUTES="s3://logstream-archive/$prefix=*; opensearch+http://127.0.0.1:9200/logstream-$prefix=*" LOGSTREAM_S3_ENDPOINT=http://127.0.0.1:8014 \
  LOGSTREAM_S3_PATH_STYLE=true LOGSTREAM_ARCHIVE_MAX_SECONDS=5 LOGSTREAM_SINK_START=latest
scripts/stack.sh start collector
# The routes start at the topic's end (not at the millions of records earlier tests left in
# it): wait until both have recorded where, before the run's first event.
DB="${LOGSTREAM_DATABASE_URL:-postgres://logstream:logstream@127.0.0.1:5432/logstream}"
for _ in $(seq 120); do
  pinned=$(psql "$DB" -XtAc "SELECT count(DISTINCT destination) FROM archive_progress
    WHERE destination IN ('s3://logstream-archive/$prefix', 'opensearch+http://127.0.0.1:9200/logstream-$prefix')")
  [ "$pinned" = 2 ] && break
  sleep 0.5
done
[ "$pinned" = 2 ] || { echo "[archive-test] FAIL: the routes did not record where they start" >&2; exit 1; }
integration-tests/system-test.sh --rate "$rate" --duration "$duration" \
  --kill-collector-at "$((duration / 6)),$((duration * 2 / 3))" \
  --stop-s3-at "$((duration / 4))" --s3-down-for "$((duration / 2))" \
  --archive ".stack/s3/logstream-archive/$prefix" --search "http://127.0.0.1:9200/logstream-$prefix"
