#!/usr/bin/env bash
# Proves the dashboards and alert rules work: `promtool check config`, `promtool check rules` and
# the rules' unit tests (`promtool test rules monitoring/prometheus/tests/*.yml`)
# pass, and, against the native stack's live Prometheus (scripts/stack.sh up with
# STACK_PROMETHEUS=1) after real traffic (steady, then the `attack` scenario, so alerts fire),
# every PromQL expression of every panel of every dashboard under monitoring/grafana/dashboards
# returns at least one series (the alert and ingest panels: one above zero; ingest gets syslog and
# NDJSON traffic, with a bad line, and is restarted for the run to tail a file being written and
# to read the generator's WebSocket stream; the Sinks panels one above zero too, the collector
# restarted with an archive route into s3s-fs, stopped for 6 s), and every SQL panel (the
# PostgreSQL datasource) and SQL variable at least one row, as Grafana would send it (its time
# macros over the last 6 hours, every variable at All, a text box empty), run by psql as the
# datasource's read-only role logstream_reader (READER_DATABASE_URL), which must be refused a
# write.
#
#   integration-tests/dashboard-test.sh            (PROMETHEUS_URL, default http://127.0.0.1:9090)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
promtool check config "$ROOT/.stack/prometheus.yml"
promtool check rules monitoring/prometheus/rules/*.yml
promtool test rules monitoring/prometheus/tests/*.yml
PYTHONPATH="$ROOT/integration-tests" exec python3 - <<'PY'
import glob, json, os, re, socket, subprocess, time, urllib.parse, urllib.request
import stack_client as stack

prom = os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:9090")
def say(msg): print(f"[dashboard-test] {msg}", flush=True)
def query(expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise stack.StackError(f"query failed: {body}")
    return body["data"]["result"]
READER = os.environ.get("READER_DATABASE_URL", "postgres://logstream_reader:logstream_reader@127.0.0.1:5432/logstream")
def sql_rows(sql):
    out = subprocess.run(["psql", READER, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise stack.StackError(out.stderr.strip())
    return [line for line in out.stdout.splitlines() if line.strip()]
def variable_values(board):
    """Each variable's values at All (None: a text box, left empty); a variable with a custom
    All value is that value (and its query must still return values)."""
    values = {}
    for var in board.get("templating", {}).get("list", []):
        if var.get("allValue"):
            if var["type"] == "query" and not sql_rows(var["query"]):
                raise stack.StackError(f"variable {var['name']}: its query returns nothing")
            values[var["name"]] = ("raw", var["allValue"])
        elif var["type"] == "custom":
            values[var["name"]] = var["query"].split(",")
        elif var["type"] == "query":
            values[var["name"]] = sql_rows(var["query"])
        else:
            values[var["name"]] = None
    return values
def grafana_sql(sql, values):
    """The SQL Grafana sends for a panel: macros over the last 6 hours, variables substituted."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN now() - interval '6 hours' AND now()", sql)
    sql = re.sub(r"\$__timeGroupAlias\((\w+), '1m'\)", r"date_trunc('minute', \1) AS time", sql)
    for name, vals in values.items():
        if vals is None:
            sql = sql.replace("${%s:sqlstring}" % name, "''")
        elif isinstance(vals, tuple):
            sql = sql.replace("${%s}" % name, vals[1]).replace("$" + name, vals[1])
        else:
            quoted = ",".join("'" + v.replace("'", "''") + "'" for v in vals) or "NULL"
            sql = sql.replace("${%s}" % name, quoted).replace("$" + name, quoted)
    if "$" in sql.replace("$$", ""):
        raise stack.StackError(f"unsubstituted Grafana syntax left in: {sql}")
    return sql

# The ingest service with its file source and a WebSocket upstream, for the run (restored after).
FILES = os.path.join(stack.ROOT, ".stack", "dashboard-files")
os.makedirs(FILES, exist_ok=True)
STREAM = "ws://127.0.0.1:8080/ws/logs?interval_ms=100&service=dashboard-ws"
stack.stack("stop", "ingest")
os.environ.update(LOGSTREAM_FILE_PATHS=f"{FILES}/*.log", LOGSTREAM_WS_SOURCES=STREAM,
                  LOGSTREAM_FILE_SOURCE_ID=f"dashboard-{int(time.time())}")
stack.stack("start", "ingest")
# The collector with an archive route into s3s-fs, for the Sinks panels (S3 is stopped for a few
# seconds of the run, so the failed attempts are real ones).
ARCHIVE = {"LOGSTREAM_ROUTES": f"s3://logstream-archive/dashboard-{int(time.time())}=level>=WARN",
           "LOGSTREAM_S3_ENDPOINT": "http://127.0.0.1:8014", "LOGSTREAM_S3_PATH_STYLE": "true",
           "LOGSTREAM_ARCHIVE_MAX_SECONDS": "2"}
stack.stack("start", "s3")
stack.stack("stop", "collector")
os.environ.update(ARCHIVE)
stack.stack("start", "collector")

def restore_ingest():
    for name in ("LOGSTREAM_FILE_PATHS", "LOGSTREAM_WS_SOURCES", "LOGSTREAM_FILE_SOURCE_ID", *ARCHIVE):
        os.environ.pop(name, None)
    stack.stack("stop", "ingest")
    stack.stack("start", "ingest")
    stack.stack("stop", "collector")
    stack.stack("start", "collector")
    stack.stack("start", "s3")
__import__("atexit").register(restore_ingest)

held = None
def ingest_traffic(second):
    """Real traffic into the ingest service: syslog over UDP and TCP (and one TCP connection held
    open throughout), and an NDJSON body with one bad line (rejected)."""
    global held
    held = held or socket.create_connection(("127.0.0.1", 5514), timeout=10)
    held.sendall(f"<13>1 - - dashboard - - - held connection, second {second}\n".encode())
    ingest = os.environ.get("INGEST_URL", "http://127.0.0.1:8082")
    for transport in ("-d", "-T"):
        subprocess.run(["logger", "-n", "127.0.0.1", "-P", "5514", transport, "-t", "dashboard",
                        f"dashboard test second {second}"], check=True)
    body = b'{"msg":"dashboard test","service":"dashboard"}\n{not json\n'
    req = urllib.request.Request(f"{ingest}/api/v1/logs", data=body, method="POST",
                                 headers={"content-type": "application/x-ndjson"})
    urllib.request.urlopen(req, timeout=30).read()
    with open(os.path.join(FILES, "app.log"), "a") as f:
        for i in range(50):
            f.write(f"WARN dashboard file line {second}.{i}\n")

try:
    deadline = time.time() + 60
    while len([s for s in query('up{job=~"generator|collector|gateway|ingest"}') if s["value"][1] == "1"]) < 4:
        if time.time() > deadline:
            stack.fail("dashboard-test", "Prometheus does not see all four services up")
        time.sleep(1)
    say("Prometheus scrapes generator, collector, gateway and ingest; running traffic for 20 s (attacks from 5 s, syslog and NDJSON into ingest)")
    stack.call("POST", "/api/v1/generator/start", {"rate_per_second": 2000, "scenarios": [
        {"name": "steady"}, {"name": "attack", "start_seconds": 5, "share": 0.05}]})
    for second in range(20):
        stack.call("GET", "/api/v1/stats")
        ingest_traffic(second)
        if second == 8:
            stack.stack("stop", "s3")
        if second == 14:
            stack.stack("start", "s3")
        time.sleep(1)
    stack.call("POST", "/api/v1/generator/stop")
    held.close()
    time.sleep(12)  # two more scrapes after the last request
except (stack.StackError, OSError) as e:
    stack.fail("dashboard-test", str(e))

passed, failed = 0, 0
write = subprocess.run(["psql", READER, "-v", "ON_ERROR_STOP=1", "-tAc", "DELETE FROM alerts WHERE false"],
                       capture_output=True, text=True, timeout=30)
refused = write.returncode != 0 and "read-only" in write.stderr
passed += refused
failed += not refused
say(f"{'ok  ' if refused else 'FAIL'} the datasource's role logstream_reader cannot write: {write.stderr.strip() or 'it could'}")
for path in sorted(glob.glob("monitoring/grafana/dashboards/*.json")):
    board = json.load(open(path))
    try:
        values = variable_values(board)
    except stack.StackError as e:
        values = {}
        failed += 1
        say(f"FAIL {board['title']} variables: {e}")
    for name, vals in values.items():
        if isinstance(vals, list):
            ok = len(vals) > 0
            passed += ok
            failed += not ok
            say(f"{'ok  ' if ok else 'FAIL'} {board['title']} / variable {name}: {len(vals)} values")
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target.get("expr") or target["rawSql"]
            try:
                if "expr" in target:
                    result = query(expr)
                    # Alert series exist at zero from the start: these panels must show alerts.
                    # So do the ingest counters: these panels must show the test's traffic.
                    # And the Sinks panels: the archive's run, with S3 stopped for a while.
                    if panel["title"].startswith(("Alerts", "Ingest", "Sinks")):
                        result = [r for r in result if float(r["value"][1]) > 0]
                    series = len(result)
                else:
                    series = len(sql_rows(grafana_sql(expr, values)))
            except (stack.StackError, OSError, subprocess.SubprocessError) as e:
                series = 0
                say(f"error: {e}")
            ok = series > 0
            passed += ok
            failed += not ok
            say(f"{'ok  ' if ok else 'FAIL'} {board['title']} / {panel['title']}: {series} series  {expr}")
print(f"{passed} passed, {failed} failed")
raise SystemExit(1 if failed else 0)
PY
