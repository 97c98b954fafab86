#!/usr/bin/env bash
# The gateway's added latency on a stats call: GET /api/v1/stats through the gateway (wrk), next
# to the same SQL sent straight to PostgreSQL (pgbench, prepared), both with 1 and 8 concurrent
# clients; prints median and p99 of each and the difference. Needs the native stack up
# (scripts/stack.sh up). A second gateway is started on a free port with the read limit raised,
# so the Redis rate limiter still runs on every request but never refuses one.
# Usage: integration-tests/gateway-latency.sh [--seconds 10]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_RUN=10
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { echo "[gateway-latency] $*"; }
command -v wrk >/dev/null || { say "installing wrk (apt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
BIN="${LOGSTREAM_BIN_DIR:-$ROOT/target/${STACK_PROFILE:-release}}"
DB_URL="${LOGSTREAM_DATABASE_URL:-postgres://logstream:logstream@127.0.0.1:5432/logstream}"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
LOGSTREAM_GATEWAY_LISTEN=127.0.0.1:$PORT LOGSTREAM_DATABASE_URL="$DB_URL" \
  LOGSTREAM_RATE_LIMIT_READ_PER_MINUTE=1000000000 LOGSTREAM_LOG=warn \
  "$BIN/logstream-gateway" >"$WORK/gateway.log" 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/api/v1/stats" >/dev/null || { say "gateway does not answer"; cat "$WORK/gateway.log"; exit 1; }

cat >"$WORK/pct.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
cat >"$WORK/stats.sql" <<'SQL'
SELECT service, level, sum(event_count)::bigint FROM log_window_aggregates WHERE window_seconds = (SELECT min(window_seconds) FROM log_window_aggregates) AND (NULL::text IS NULL OR service = NULL::text) GROUP BY service, level;
SQL
rows=$(psql "$DB_URL" -tAc "SELECT count(*) FROM log_window_aggregates")
say "log_window_aggregates holds $rows rows"

printf '%-12s %-28s %10s %10s %10s\n' clients path requests "median ms" "p99 ms"
for c in 1 8; do
  # A client identity of its own (the token names the client), so the shared Redis windows of
  # other clients, e.g. the stack gateway's callers on 127.0.0.1, are left alone.
  read -r n errors p50 p99 < <(wrk -t1 -c"$c" -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/pct.lua" -H "Authorization: Bearer latency-$$" \
    "http://127.0.0.1:$PORT/api/v1/stats" | awk '/^RESULT/ {print $2, $3, $4, $5}')
  [ "$errors" = 0 ] || { say "$errors failed requests"; exit 1; }
  rm -f "$WORK"/pgbench_log.*
  (cd "$WORK" && pgbench -n -M prepared -f stats.sql -c"$c" -j1 -T"$SECONDS_PER_RUN" -l "$DB_URL" >/dev/null 2>&1)
  read -r pn pp50 pp99 < <(cat "$WORK"/pgbench_log.* | python3 -c '
import sys
lat = sorted(int(l.split()[2]) / 1000 for l in sys.stdin if l.strip())
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(len(lat), f"{pick(0.5):.3f}", f"{pick(0.99):.3f}")')
  printf '%-12s %-28s %10s %10s %10s\n' "$c" "gateway /api/v1/stats" "$n" "$p50" "$p99"
  printf '%-12s %-28s %10s %10s %10s\n' "$c" "same SQL, pgbench" "$pn" "$pp50" "$pp99"
  python3 -c "print(f'{\"$c\":<12} {\"added by the gateway\":<28} {\"\":>10} {$p50-$pp50:>10.3f} {$p99-$pp99:>10.3f}')"
done
