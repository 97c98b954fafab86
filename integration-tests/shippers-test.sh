#!/usr/bin/env bash
# Real shippers into the ingest service of a running native stack (scripts/stack.sh up): every
# line sent must be stored exactly once (per line: none missing, none twice), the per-service
# stats must match, and the ingest service's accounting must balance (received == sent +
# rejected + dropped, per source).
#
#   integration-tests/shippers-test.sh [--lines N]
#
# A file of mixed real-world lines (BSD syslog as /var/log holds it, Apache access and error log
# lines, shippers' JSON, Java and plain lines, invalid UTF-8, a 20 KB line) goes through:
#   logger (util-linux): UDP RFC 3164, TCP LF RFC 5424, TCP octet-counted RFC 3164;
#   rsyslog: imfile -> omfwd TCP, octet-counted RFC 5424;
#   syslog-ng: file() -> network() TCP (RFC 3164, LF), file() -> network() TLS (RFC 5425, the
#     ingest service restarted with a self-signed certificate the client verifies), file() -> http() NDJSON, and
#     file() -> elasticsearch-http() (Elasticsearch's bulk API, its default document);
#   elasticsearch-py (PyPI, Elastic's official client, 8.x): info(), then helpers.bulk (with a
#     delete among the items, which must be refused alone);
#   curl: gzip NDJSON to POST /api/v1/logs (with a bad line, which must be rejected alone).
# rsyslog and syslog-ng are Debian's packages, unpacked (not installed: the two conflict, and an
# installed one would start as the system's logger) into .stack/shippers.
# Environment: INGEST_URL (http://127.0.0.1:8082), SYSLOG_PORT (5514), DATABASE_URL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHIP="$("$ROOT/integration-tests/fetch-shippers.sh")"
command -v logger >/dev/null || { echo "logger (bsdutils) is missing" >&2; exit 1; }
ES_VENV="$ROOT/.stack/es-client-venv"
ES_CLIENT_VERSION=8.19.3
if ! "$ES_VENV/bin/python" -c "import elasticsearch, sys; sys.exit(elasticsearch.__versionstr__ != '$ES_CLIENT_VERSION')" 2>/dev/null; then
  python3 -m venv "$ES_VENV"
  "$ES_VENV/bin/pip" install -q "elasticsearch==$ES_CLIENT_VERSION"
fi

ES_PYTHON="$ES_VENV/bin/python" SHIP="$SHIP" PYTHONPATH="$ROOT/integration-tests" exec python3 - "$@" <<'PY'
import argparse, atexit, gzip, json, os, re, subprocess, sys, tempfile, time, urllib.request
import stack_client as stack

ap = argparse.ArgumentParser(prog="shippers-test.sh")
ap.add_argument("--lines", type=int, default=400)
args = ap.parse_args()
INGEST = os.environ.get("INGEST_URL", "http://127.0.0.1:8082")
PORT = os.environ.get("SYSLOG_PORT", "5514")
SHIP = os.environ["SHIP"]
RUN = str(int(time.time()))
LIB = ":".join(f"{SHIP}/{d}" for d in ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib/syslog-ng"])
ENV = dict(os.environ, LD_LIBRARY_PATH=LIB)
tmp = tempfile.mkdtemp(prefix="shippers-")

def say(msg):
    print(f"[shippers] {msg}", flush=True)

def line(i, long_ok=True):
    """The i-th input line (bytes): kinds cycle; each ends in run=RUN n=i."""
    tag = f"run={RUN} n={i}"
    kind = i % 8
    if kind == 7 and not long_ok:
        kind = 4
    return {
        0: f"Nov 30 06:55:46 host sshd[24200]: Invalid user u{i} from 10.0.{i % 256}.1 port 22 {tag}".encode(),
        1: f'10.0.0.{i % 250} - - [30/Nov/2026:06:55:46 +0000] "GET /search?q=x HTTP/1.1" 200 12 "-" "curl/8.0 {tag}"'.encode(),
        2: f"[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] File does not exist: /var/www/x {tag}".encode(),
        3: json.dumps({"msg": f"json line {tag}", "level": "error", "user": {"id": i}}).encode(),
        4: f"plain words, an ERROR somewhere {tag}".encode(),
        5: b"caf\xe9 cr\xe8me (latin-1, not UTF-8) " + tag.encode(),
        6: f"2026-11-30 06:55:46,123 WARN  [main] com.example.App - slow query {tag}".encode(),
        7: b"x" * 20000 + b" long line " + tag.encode(),
    }[kind]

def write_file(name, n, long_ok=True):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        for i in range(n):
            f.write(line(i, long_ok) + b"\n")
    return path

def service(name):
    return f"ship{RUN}-{name}"

N = args.lines
runs = {}  # service -> lines sent

# The ingest service with its TLS listener on: a self-signed certificate for 127.0.0.1.
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", f"{tmp}/tls.key", "-out", f"{tmp}/tls.crt", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
stack.stack("stop", "ingest")
os.environ["LOGSTREAM_SYSLOG_TLS_CERT"] = f"{tmp}/tls.crt"
os.environ["LOGSTREAM_SYSLOG_TLS_KEY"] = f"{tmp}/tls.key"
stack.stack("start", "ingest")
say("ingest restarted with a TLS listener on 6514 (self-signed certificate)")

restored = []

def restore_ingest():
    """The ingest service as the stack runs it (no TLS): at the end, or on the way out of a
    failure (atexit), once."""
    if restored:
        return
    restored.append(True)
    for name in ("LOGSTREAM_SYSLOG_TLS_CERT", "LOGSTREAM_SYSLOG_TLS_KEY"):
        os.environ.pop(name, None)
    stack.stack("stop", "ingest")
    stack.stack("start", "ingest")

atexit.register(restore_ingest)

def logger(name, *flags, long_ok=True):
    path = write_file(f"{name}.log", N, long_ok)
    svc = service(name)
    subprocess.run(["logger", "-n", "127.0.0.1", "-P", PORT, "-t", svc, "-e", "-S", "65536",
                    *flags, "-f", path], check=True)
    runs[svc] = N
    say(f"logger {' '.join(flags)}: {N} lines as {svc}")

def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.5)
    stack.fail("shippers", f"timed out waiting for {what}")

# logger: UDP (no 20 KB line: one datagram each, kept small), TCP LF 5424, TCP octet-counted 3164.
logger("logger-udp", "-d", "--rfc3164", long_ok=False)
logger("logger-tcp-5424", "-T", "--rfc5424")
logger("logger-tcp-octet", "-T", "--octet-count", "--rfc3164")

# rsyslog: imfile -> omfwd TCP, octet-counted RFC 5424.
svc = service("rsyslog")
src = write_file("rsyslog-in.log", N)
os.makedirs(f"{tmp}/rsyslog-work")
open(f"{tmp}/rsyslog.conf", "w").write(f'''
global(workDirectory="{tmp}/rsyslog-work" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="impstats" interval="1" format="json" log.syslog="off" log.file="{tmp}/rsyslog-stats.json")
input(type="imfile" file="{src}" tag="{svc}:" facility="local0" severity="info" freshStartTail="off" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" name="to_ingest" target="127.0.0.1" port="{PORT}" protocol="tcp"
         tcp_framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" queue.size="100000" action.resumeRetryCount="-1" action.resumeInterval="1")
}}
''')
rsyslogd = [f"{SHIP}/usr/sbin/rsyslogd", "-M", f"{SHIP}/usr/lib/x86_64-linux-gnu/rsyslog"]
subprocess.run(rsyslogd + ["-N1", "-f", f"{tmp}/rsyslog.conf"], env=ENV, check=True, capture_output=True)
rsyslog = subprocess.Popen(rsyslogd + ["-n", "-f", f"{tmp}/rsyslog.conf", "-i", f"{tmp}/rsyslogd.pid"],
                           env=ENV, stdout=open(f"{tmp}/rsyslogd.out", "w"), stderr=subprocess.STDOUT)
runs[svc] = N
say(f"rsyslog imfile -> omfwd (TCP, octet-counted, RFC 5424): {N} lines as {svc}")

# syslog-ng: file() -> network() TCP LF RFC 3164, file() -> http() NDJSON, and
# file() -> elasticsearch-http() with its default document (format-json --scope rfc5424).
sng_tcp, sng_http, sng_es = service("syslog-ng-tcp"), service("syslog-ng-http"), service("syslog-ng-es")
tcp_src, http_src, es_src = write_file("sng-tcp.log", N), write_file("sng-http.log", N), write_file("sng-es.log", N)
sng_tls, tls_src = service("syslog-ng-tls"), write_file("sng-tls.log", N)
open(f"{tmp}/syslog-ng.conf", "w").write(f'''@version: 3.38
@include "{SHIP}/usr/share/syslog-ng/include/scl/elasticsearch/elastic-http.conf"
options {{ keep-hostname(yes); stats-freq(0); log-msg-size(65536); time-reopen(1); }};
source s_tcp {{ file("{tcp_src}" flags(no-parse) program-override("{sng_tcp}") follow-freq(1)); }};
source s_http {{ file("{http_src}" flags(no-parse) program-override("{sng_http}") follow-freq(1)); }};
source s_es {{ file("{es_src}" flags(no-parse) program-override("{sng_es}") follow-freq(1)); }};
source s_tls {{ file("{tls_src}" flags(no-parse) program-override("{sng_tls}") follow-freq(1)); }};
destination d_tls {{
  network("127.0.0.1" port(6514) transport("tls") persist-name("d_tls")
          tls(peer-verify(required-trusted) ca-file("{tmp}/tls.crt")));
}};
destination d_tcp {{ network("127.0.0.1" port({PORT}) transport("tcp") persist-name("d_tcp")); }};
destination d_http {{
  http(url("{INGEST}/api/v1/logs") method("POST")
       headers("Content-Type: application/x-ndjson")
       body("$(format-json timestamp=${{ISODATE}} level=${{LEVEL}} service=${{PROGRAM}} host=${{HOST}} message=${{MESSAGE}})")
       delimiter("\\n") batch-lines(100) batch-timeout(200) workers(1));
}};
destination d_es {{
  elasticsearch-http(url("{INGEST}/_bulk") index("logs-${{YEAR}}.${{MONTH}}.${{DAY}}") type("")
                     batch-lines(100) batch-timeout(200) workers(1));
}};
log {{ source(s_tcp); destination(d_tcp); }};
log {{ source(s_http); destination(d_http); }};
log {{ source(s_es); destination(d_es); }};
log {{ source(s_tls); destination(d_tls); }};
''')
sng = [f"{SHIP}/usr/sbin/syslog-ng", f"--module-path={SHIP}/usr/lib/syslog-ng/3.38", "--no-caps"]
check = subprocess.run(sng + ["-s", "-f", f"{tmp}/syslog-ng.conf"], env=ENV, capture_output=True, text=True)
if check.returncode != 0:
    stack.fail("shippers", f"syslog-ng config: {check.stderr}")
syslog_ng = subprocess.Popen(sng + ["-F", "-e", "-f", f"{tmp}/syslog-ng.conf", "-R", f"{tmp}/sng.persist",
                                    "-p", f"{tmp}/sng.pid", "-c", f"{tmp}/sng.ctl"],
                             env=ENV, stdout=open(f"{tmp}/syslog-ng.out", "w"), stderr=subprocess.STDOUT)
runs[sng_tcp] = N
runs[sng_http] = N
runs[sng_es] = N
runs[sng_tls] = N
say(f"syslog-ng file -> network() (TCP, LF, RFC 3164) as {sng_tcp}; file -> network() TLS as {sng_tls}; "
    f"file -> http() NDJSON as {sng_http}; file -> elasticsearch-http() as {sng_es}: {N} lines each")

# elasticsearch-py: the official client checks the cluster (info) and sends bulk requests; one
# delete among the items is refused alone (a 400 item), every document is acknowledged (201).
svc = service("es-py")
docs = [{"message": line(i).decode("utf-8", "replace"), "service.name": svc,
         "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} for i in range(N)]
es_script = """
import json, sys
from elasticsearch import Elasticsearch, helpers
url, docs = sys.argv[1], json.load(sys.stdin)
es = Elasticsearch(url, request_timeout=60)
version = es.info()["version"]["number"]
actions = [{"_index": "logs", **d} for d in docs]
actions.insert(len(actions) // 2, {"_op_type": "delete", "_index": "logs", "_id": "nope"})
ok, errors = helpers.bulk(es, actions, chunk_size=100, raise_on_error=False)
print(json.dumps({"version": version, "ok": ok, "errors": errors}))
"""
out = subprocess.run([os.environ["ES_PYTHON"], "-c", es_script, INGEST], input=json.dumps(docs).encode(),
                     capture_output=True)
if out.returncode != 0:
    stack.fail("shippers", f"elasticsearch-py: {out.stderr.decode(errors='replace')[-2000:]}")
es_answer = json.loads(out.stdout)
es_errors = es_answer["errors"]
if es_answer["ok"] != N or len(es_errors) != 1 or "delete" not in es_errors[0]:
    stack.fail("shippers", f"elasticsearch-py bulk: ok {es_answer['ok']}, errors {es_errors}")
runs[svc] = N
say(f"elasticsearch-py (server seen as {es_answer['version']}): {N} documents acknowledged, "
    f"the delete refused alone: {es_errors[0]['delete']['error']['reason']}")

# curl: gzip NDJSON, one bad line among them, rejected alone.
svc = service("curl")
body = b"\n".join(json.dumps({"message": line(i).decode("utf-8", "replace"), "ts": time.time()}).encode()
                  for i in range(N))
body = body + b"\n{not json at all\n"
out = subprocess.run(["curl", "-sS", "-XPOST", f"{INGEST}/api/v1/logs?service={svc}",
                      "-H", "content-type: application/x-ndjson", "-H", "content-encoding: gzip",
                      "--data-binary", "@-"], input=gzip.compress(body), capture_output=True, check=True)
answer = json.loads(out.stdout)
if answer.get("accepted") != N or [r["line"] for r in answer.get("rejected", [])] != [N + 1]:
    stack.fail("shippers", f"curl NDJSON answer: {answer}")
runs[svc] = N
say(f"curl gzip NDJSON: accepted {answer['accepted']}, rejected line {N + 1} alone: {answer['rejected'][0]['error']}")

def stored():
    rows = stack.sql(f"""SELECT service, count(*), count(DISTINCT substring(message from 'run=[0-9]+ n=([0-9]+)'))
                         FROM log_events WHERE service LIKE 'ship{RUN}-%' GROUP BY service""")
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}

try:
    wait_for(lambda: all(stored().get(s, (0, 0))[0] >= n for s, n in runs.items()), 90,
             "every shipper's lines to be stored")
finally:
    for p in (rsyslog, syslog_ng):
        p.terminate()
    for p in (rsyslog, syslog_ng):
        p.wait(timeout=30)
time.sleep(2)  # anything doubled would have arrived by now
got = stored()
status = json.load(urllib.request.urlopen(f"{INGEST}/api/v1/ingest/status", timeout=10))
restore_ingest()
problems = []
for s, n in sorted(runs.items()):
    count, distinct = got.get(s, (0, 0))
    ok = count == n and distinct == n
    say(f"{s}: sent {n}, stored {count}, distinct lines {distinct} {'ok' if ok else 'MISMATCH'}")
    if not ok:
        problems.append(s)
stats = stack.call("GET", "/api/v1/stats")["by_service"]
for s, n in runs.items():
    if stats.get(s) != n:
        problems.append(f"{s}: /api/v1/stats says {stats.get(s)}, sent {n}")
for src in status["sources"]:
    balance = src["sent"] + src["rejected"] + src["dropped"]
    say(f"ingest {src['source']}: received {src['received']}, sent {src['sent']}, rejected {src['rejected']}, dropped {src['dropped']}")
    if src["received"] != balance:
        problems.append(f"ingest {src['source']}: received {src['received']} != sent + rejected + dropped {balance}")
levels = dict(tuple(r) for r in stack.sql(f"""SELECT level, count(*) FROM log_events
                                             WHERE service = '{service('curl')}' GROUP BY level"""))
say(f"levels of the curl run (from the lines' markers): {levels}")
if problems:
    stack.fail("shippers", "; ".join(problems))
print(f"{len(runs)} passed, 0 failed")
PY
