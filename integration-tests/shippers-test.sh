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
#   syslog-ng: file() -> network() TCP (RFC 3164, LF) and file() -> http() NDJSON;
#   curl: gzip NDJSON to POST /api/v1/logs (with a bad line, which must be rejected alone).
# rsyslog and syslog-ng are Debian's packages, unpacked (not installed: the two conflict, and an
# installed one would start as the system's logger) into .stack/shippers.
# Environment: INGEST_URL (http://127.0.0.1:8082), SYSLOG_PORT (5514), DATABASE_URL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHIP="$("$ROOT/integration-tests/fetch-shippers.sh")"
command -v logger >/dev/null || { echo "logger (bsdutils) is missing" >&2; exit 1; }

SHIP="$SHIP" PYTHONPATH="$ROOT/integration-tests" exec python3 - "$@" <<'PY'
import argparse, gzip, json, os, re, subprocess, sys, tempfile, time, urllib.request
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

# syslog-ng: file() -> network() TCP LF RFC 3164, and file() -> http() NDJSON.
sng_tcp, sng_http = service("syslog-ng-tcp"), service("syslog-ng-http")
tcp_src, http_src = write_file("sng-tcp.log", N), write_file("sng-http.log", N)
open(f"{tmp}/syslog-ng.conf", "w").write(f'''@version: 3.38
options {{ keep-hostname(yes); stats-freq(0); log-msg-size(65536); time-reopen(1); }};
source s_tcp {{ file("{tcp_src}" flags(no-parse) program-override("{sng_tcp}") follow-freq(1)); }};
source s_http {{ file("{http_src}" flags(no-parse) program-override("{sng_http}") follow-freq(1)); }};
destination d_tcp {{ network("127.0.0.1" port({PORT}) transport("tcp") persist-name("d_tcp")); }};
destination d_http {{
  http(url("{INGEST}/api/v1/logs") method("POST")
       headers("Content-Type: application/x-ndjson")
       body("$(format-json timestamp=${{ISODATE}} level=${{LEVEL}} service=${{PROGRAM}} host=${{HOST}} message=${{MESSAGE}})")
       delimiter("\\n") batch-lines(100) batch-timeout(200) workers(1));
}};
log {{ source(s_tcp); destination(d_tcp); }};
log {{ source(s_http); destination(d_http); }};
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
say(f"syslog-ng file -> network() (TCP, LF, RFC 3164) as {sng_tcp}; file -> http() NDJSON as {sng_http}: {N} lines each")

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
status = json.load(urllib.request.urlopen(f"{INGEST}/api/v1/ingest/status", timeout=10))
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
