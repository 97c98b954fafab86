#!/usr/bin/env bash
# ingest-bench against the native stack (scripts/stack.sh up), next to rsyslog: starts Debian's
# rsyslog (unpacked by fetch-shippers.sh) with imtcp on 127.0.0.1:5515 and omkafka into the same
# topic with the same producer guarantees the ingest service has (acks=all, idempotence, lz4,
# linger 5 ms), sends it the same messages, and prints both rates and their ratio. Then the same
# for files: rsyslog's imfile (inotify) -> omkafka against the ingest service's file source
# (restarted to tail .stack/bench-files/ingest/*.log, and restarted as the stack runs it at the end),
# each on a file of the same lines moved into the directory it watches.
#
#   integration-tests/ingest-bench.sh [ingest-bench flags: --events N --batch N --concurrency N
#                                      --connections N --rounds N]
#
# The stack's collector is stopped during the bench (and started again after), so that both
# shippers have the machine's two cores to themselves; what they published is stored then.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHIP="$("$ROOT/integration-tests/fetch-shippers.sh")"
BROKERS="$(cat "$ROOT/.stack/kafka.brokers" 2>/dev/null || echo 127.0.0.1:9092)"
T="$(mktemp -d)"
mkdir -p "$T/work"
FILES="$ROOT/.stack/bench-files"
rm -rf "$FILES" && mkdir -p "$FILES/ingest" "$FILES/rsyslog"
cat >"$T/rsyslog.conf" <<CONF
global(workDirectory="$T/work" maxMessageSize="64k")
module(load="imtcp" maxSessions="2000")
module(load="impstats" interval="1" format="json" log.syslog="off" log.file="$T/stats.json")
module(load="omkafka")
module(load="imfile" mode="inotify")
input(type="imfile" File="$FILES/rsyslog/*.log" Tag="bench" ruleset="to_kafka" addMetadata="off")
template(name="raw_msg" type="string" string="%rawmsg%")
template(name="kafka_key" type="string" string="%app-name%")
input(type="imtcp" port="5515" address="127.0.0.1" ruleset="to_kafka")
ruleset(name="to_kafka" queue.type="LinkedList" queue.size="500000") {
  action(type="omkafka" name="kafka" broker=["$BROKERS"] topic="logs.raw"
         template="raw_msg" key="kafka_key" dynaKey="on" partitions.auto="on"
         confParam=["acks=all", "enable.idempotence=true", "linger.ms=5",
                    "batch.num.messages=10000", "compression.codec=lz4",
                    "queue.buffering.max.messages=1000000"]
         resubmitOnFailure="on" keepFailedMessages="on" failedMsgFile="$T/work/failed.msgs"
         closeTimeout="60000" action.resumeRetryCount="-1")
}
CONF
export LD_LIBRARY_PATH="$SHIP/usr/lib/x86_64-linux-gnu:$SHIP/lib/x86_64-linux-gnu"
RSYSLOGD=("$SHIP/usr/sbin/rsyslogd" -M "$SHIP/usr/lib/x86_64-linux-gnu/rsyslog")
"${RSYSLOGD[@]}" -N1 -f "$T/rsyslog.conf" >/dev/null
"${RSYSLOGD[@]}" -n -f "$T/rsyslog.conf" -i "$T/rsyslogd.pid" >"$T/rsyslogd.out" 2>&1 &
RS=$!
"$ROOT/scripts/stack.sh" stop collector >/dev/null
"$ROOT/scripts/stack.sh" stop ingest >/dev/null
LOGSTREAM_FILE_PATHS="$FILES/ingest/*.log" LOGSTREAM_FILE_SOURCE_ID="bench-$(date +%s)" \
  "$ROOT/scripts/stack.sh" start ingest >/dev/null
restore() {
  kill $RS 2>/dev/null; wait $RS 2>/dev/null; rm -rf "$T" "$FILES"
  "$ROOT/scripts/stack.sh" stop ingest >/dev/null; "$ROOT/scripts/stack.sh" start ingest >/dev/null
  "$ROOT/scripts/stack.sh" start collector >/dev/null
}
trap restore EXIT
for _ in $(seq 1 50); do [ -f "$T/rsyslogd.pid" ] && break; sleep 0.2; done
[ -f "$T/rsyslogd.pid" ] || { cat "$T/rsyslogd.out"; echo "rsyslogd did not start" >&2; exit 1; }
echo "[ingest-bench] rsyslog $("${RSYSLOGD[@]}" -v | head -1 | awk '{print $2}') imtcp :5515 -> omkafka (librdkafka, acks=all, idempotent) -> $BROKERS"
bin="$ROOT/target/${STACK_PROFILE:-release}/ingest-bench"
[ -x "$bin" ] || (cd "$ROOT" && cargo build --release -q -p logstream-integration-tests --bin ingest-bench)
"$bin" --brokers "$BROKERS" --rsyslog 127.0.0.1:5515 --rsyslog-pid "$RS" \
  --ingest-pid "$(cat "$ROOT/.stack/ingest.pid")" \
  --file-dir "$FILES/ingest" --rsyslog-file-dir "$FILES/rsyslog" "$@"
