#!/usr/bin/env bash
# Search over many stored events, on a running native stack (scripts/stack.sh up), through the
# gateway's GET /api/v1/logs. How the events are loaded: the stack's generator makes real
# events for 10 s (20,000/s, an error burst on payments), the collector stores them; those rows
# are copied into a schema of the bench's own (`search_bench`, migrated like the real one) until
# it holds --events rows, spread evenly over the 24 hours before now across 12 Kafka partitions
# (oldest first, as the collector stores them; the event-time index summarized as the collector
# keeps it; the other indexes are built after the load, as a restore would). Then a gateway on
# that schema is asked, --rounds times each, for:
#   - service + level + one-hour range (a random hour and service each time);
#   - text: a common word, a phrase, a rare word, over the whole 24 hours;
#   - text + service + level over one hour;
#   - the second page (cursor) of a service + level search;
# and prints p50, p99 and max answer time of each (the whole HTTP request, client side), then
# the query plans PostgreSQL chose (EXPLAIN ANALYZE). Then it builds the optional full-text index
# (what LOGSTREAM_SEARCH_TEXT_INDEX=true keeps) and asks the text queries again.
#
#   integration-tests/search-bench.sh [--events 10000000] [--rounds 50] [--keep]
#
# --keep leaves the search_bench schema in place (and reuses it next time if it holds enough
# rows).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EVENTS=10000000 ROUNDS=50 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
export EVENTS ROUNDS KEEP ROOT
PYTHONPATH="$ROOT/integration-tests" exec python3 - <<'PY'
import glob, json, os, random, socket, subprocess, time, urllib.parse, urllib.request
import stack_client as stack

EVENTS, ROUNDS, KEEP, ROOT = int(os.environ["EVENTS"]), int(os.environ["ROUNDS"]), os.environ["KEEP"] == "1", os.environ["ROOT"]
SCHEMA = "search_bench"
SERVICES = ["orders", "payments", "users", "inventory", "shipping", "auth"]

def say(msg):
    print(f"[search-bench] {msg}", flush=True)

def psql(sql, schema=SCHEMA, quiet=True):
    env = dict(os.environ, PGOPTIONS=f"-c search_path={schema} -c maintenance_work_mem=1GB")
    args = ["psql", stack.DATABASE, "-X", "-v", "ON_ERROR_STOP=1", "-tA"]
    out = subprocess.run(args + (["-q"] if quiet else []) + ["-c", sql], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"psql failed: {out.stderr.strip()}\n{sql}")
    return out.stdout.strip()

def existing_rows():
    if psql(f"SELECT count(*) FROM pg_namespace WHERE nspname = '{SCHEMA}'", "public") == "0":
        return 0
    if psql("SELECT to_regclass('log_events') IS NOT NULL") != "t":
        return 0
    return int(psql("SELECT count(*) FROM log_events"))

def generate_sample():
    say("generating real events: 20,000/s for 10 s with an error burst on payments")
    before = stack.instances()
    stack.call("POST", "/api/v1/generator/start", {"rate_per_second": 20000, "duration_seconds": 10,
                                                   "scenario": "error_burst"})
    time.sleep(11)
    after = {i["instance_id"]: i for i in stack.call("POST", "/api/v1/generator/stop")["instances"]}
    stack.run_accounting(before, after)
    time.sleep(5)

def load():
    t0 = time.time()
    psql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}", "public")
    for path in sorted(glob.glob(os.path.join(ROOT, "migrations", "*.sql"))):
        psql(open(path).read())
    psql("DROP INDEX log_events_service_level_time")
    psql("""CREATE TABLE sample AS
              SELECT row_number() OVER () AS rn, level, service, component, host, message, trace_id,
                     span_id, parent_id, attributes, instance_id, seq
              FROM (SELECT * FROM public.log_events ORDER BY event_time DESC LIMIT 200000) recent""")
    n = int(psql("SELECT count(*) FROM sample"))
    if n < 1000:
        raise SystemExit(f"only {n} events stored in public.log_events to copy from")
    say(f"copying {n:,} stored events into {EVENTS:,} rows over the last 24 hours")
    psql("SELECT logstream_ensure_partition(d::date) FROM generate_series(now() - interval '25 hours', now(), interval '1 day') d")
    psql("SELECT logstream_ensure_partition((now() AT TIME ZONE 'UTC')::date)")
    psql(f"""INSERT INTO log_events (event_time, level, service, component, host, message, trace_id,
                span_id, parent_id, attributes, instance_id, seq, kafka_partition, kafka_offset)
             SELECT now() - interval '1 ms' * (g.i * (86400000.0 / {EVENTS})), s.level, s.service,
                    s.component, s.host, s.message, s.trace_id, s.span_id, s.parent_id, s.attributes,
                    s.instance_id, s.seq, (g.i % 12)::int, g.i / 12
             FROM generate_series(0, {EVENTS} - 1) g(i) JOIN sample s ON s.rn = 1 + g.i % {n}
             ORDER BY g.i DESC""")
    # What the collector does every 10 s as rows arrive (Store::summarize_time_index).
    psql("""SELECT sum(brin_summarize_new_values(x.indexrelid)) FROM pg_inherits i
              JOIN pg_index x ON x.indrelid = i.inhrelid JOIN pg_class c ON c.oid = x.indexrelid
              JOIN pg_am a ON a.oid = c.relam
            WHERE i.inhparent = 'log_events'::regclass AND a.amname = 'brin'""")
    say(f"loaded in {time.time() - t0:.0f} s (the event-time index summarized, as the collector keeps it); building the search index")
    t1 = time.time()
    for path in sorted(glob.glob(os.path.join(ROOT, "migrations", "*search*.sql"))):
        psql(open(path).read())
    psql("ANALYZE log_events")
    size = psql("SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'log_events'::regclass")
    idx = psql("""SELECT string_agg(name || ' ' || pg_size_pretty(bytes), ', ') FROM (
                    SELECT regexp_replace(ci.relname, '^log_events_[0-9]+_', '') AS name, sum(pg_relation_size(ci.oid)) AS bytes
                    FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid JOIN pg_class ci ON ci.oid = x.indexrelid
                    WHERE i.inhparent = 'log_events'::regclass GROUP BY 1) s""")
    say(f"indexes built in {time.time() - t1:.0f} s; table with indexes {size}; indexes: {idx}")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def start_gateway():
    port = free_port()
    binary = os.path.join(ROOT, "target", "release", "logstream-gateway")
    env = dict(os.environ, LOGSTREAM_GATEWAY_LISTEN=f"127.0.0.1:{port}",
               LOGSTREAM_DATABASE_URL=f"{stack.DATABASE}?options[search_path]={SCHEMA}",
               LOGSTREAM_GENERATOR_URLS="http://127.0.0.1:1", LOGSTREAM_RATE_LIMIT_READ_PER_MINUTE="10000000")
    log = open(os.path.join(ROOT, ".stack", "logs", "search-bench-gateway.log"), "w")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return proc, base
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the bench's gateway did not come up; see .stack/logs/search-bench-gateway.log")

def timed(base, params):
    url = base + "/api/v1/logs?" + urllib.parse.urlencode(params)
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = json.load(r)
    return (time.perf_counter() - t) * 1000, body

def hour(now):
    start = now - random.uniform(3600, 86400 - 60)
    iso = lambda s: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + "Z"
    return iso(start), iso(start + 3600)

def percentiles(ms):
    ms = sorted(ms)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    return pick(0.5), pick(0.99), ms[-1]

TEXT_INDEX = "CREATE INDEX IF NOT EXISTS log_events_message_words ON log_events USING gin (to_tsvector('simple'::regconfig, message))"

def measure(base, kinds):
    print("| query | p50 ms | p99 ms | max ms | events per answer (median) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, params in kinds.items():
        times, counts = [], []
        for _ in range(ROUNDS):
            if params is None:
                first = dict(zip(("from", "to"), hour(NOW)), service=random.choice(SERVICES), level="INFO")
                _, body = timed(base, first)
                p = dict(first, cursor=body["next"]) if body.get("next") else first
            else:
                p = params()
            ms, body = timed(base, p)
            times.append(ms)
            counts.append(len(body["events"]))
        p50, p99, mx = percentiles(times)
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {mx:.1f} | {sorted(counts)[len(counts) // 2]} |", flush=True)

def plans(day_ago, text_only=False):
    f, t = hour(NOW)
    queries = [("service + level + 1 h", f"service = 'payments' AND level = 'ERROR' AND event_time >= '{f}' AND event_time < '{t}'"),
               ("text: rare words, 1 h", f"message ILIKE '%crashed%' AND message ILIKE '%memory%' AND to_tsvector('simple'::regconfig, message) @@ websearch_to_tsquery('simple'::regconfig, 'crashed memory') AND event_time >= '{f}' AND event_time < '{t}'"),
               ("text: common word, 24 h", f"to_tsvector('simple'::regconfig, message) @@ websearch_to_tsquery('simple'::regconfig, 'timeout') AND event_time >= '{day_ago}' AND event_time < now()")]
    for title, where in queries[1:] if text_only else queries[:2]:
        plan = psql(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM log_events WHERE {where} "
                    "ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC LIMIT 101")
        say(f"plan of {title}:\n{plan}")

NOW = time.time()

def main():
    rows = existing_rows()
    if rows >= EVENTS:
        say(f"reusing {SCHEMA}: {rows:,} rows")
        psql("DROP INDEX IF EXISTS log_events_message_words")
    else:
        generate_sample()
        load()
    proc, base = start_gateway()
    day_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 86400))
    long_text = {
        "text: common word, 24 h": lambda: {"q": "timeout", "from": day_ago},
        "text: phrase, 24 h": lambda: {"q": '"issuer unavailable"', "from": day_ago},
        "text: rare words, 24 h": lambda: {"q": "crashed memory", "from": day_ago},
    }
    short_text = {
        "text: rare words, 1 h": lambda: dict(zip(("from", "to"), hour(NOW)), q="crashed memory"),
        "text + service + level + 1 h": lambda: dict(zip(("from", "to"), hour(NOW)), q="declined", service="payments", level="ERROR"),
    }
    text = {**long_text, **short_text}
    kinds = {
        "service + level + 1 h": lambda: dict(zip(("from", "to"), hour(NOW)), service=random.choice(SERVICES), level="ERROR"),
        "service + >=WARN + 1 h": lambda: dict(zip(("from", "to"), hour(NOW)), service=random.choice(SERVICES), level=">=WARN"),
        **text,
        "second page (cursor)": None,
    }
    try:
        say(f"without the full-text index: {ROUNDS} rounds of each, limit 100 (answer time of the whole HTTP request)")
        measure(base, kinds)
        plans(day_ago)
        t = time.time()
        psql(TEXT_INDEX)
        size = psql("SELECT pg_size_pretty(sum(pg_relation_size(x.indexrelid))) FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid JOIN pg_class c ON c.oid = x.indexrelid WHERE i.inhparent = 'log_events'::regclass AND c.relname LIKE '%to_tsvector%'")
        say(f"full-text index built in {time.time() - t:.0f} s ({size}); the text queries again")
        measure(base, text)
        plans(day_ago, text_only=True)
    finally:
        proc.terminate()
        proc.wait()
    if not KEEP:
        psql(f"DROP SCHEMA {SCHEMA} CASCADE", "public")

main()
PY
