#!/usr/bin/env bash
# Hostile input against the ingest service of a running native stack: every case must get a clear
# answer (or a counted rejection), the service must stay up and answer /healthz quickly throughout,
# its accounting must balance (received == sent + rejected + dropped, per source), and its peak
# resident memory stay under INGEST_MEMORY_LIMIT_MB (256).
#
#   integration-tests/ingest-hostile-test.sh
#
# Cases: random bytes over syslog TCP; a 10 MiB line over TCP and over HTTP; a body over the
# limit; a gzip bomb (1 GiB of zeros in 1 MiB); invalid UTF-8 in NDJSON; a body shorter than its
# Content-Length; a client sending its body one byte a second (408 after the body timeout, 30 s);
# 1,000 idle TCP connections held while a real message still gets through.
# Environment: INGEST_URL (http://127.0.0.1:8082), SYSLOG_PORT (5514), INGEST_MEMORY_LIMIT_MB.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PID="$(cat "$ROOT/.stack/ingest.pid")"
PYTHONPATH="$ROOT/integration-tests" exec python3 - "$PID" <<'PY'
import gzip, http.client, json, os, socket, sys, threading, time, urllib.error, urllib.request
import stack_client as stack

PID = sys.argv[1]
INGEST = os.environ.get("INGEST_URL", "http://127.0.0.1:8082")
HOST, HTTP_PORT = INGEST.split("//")[1].split(":")
PORT = int(os.environ.get("SYSLOG_PORT", "5514"))
LIMIT_MB = int(os.environ.get("INGEST_MEMORY_LIMIT_MB", "256"))
problems = []

def say(msg):
    print(f"[hostile] {msg}", flush=True)

def post(body, headers=None, path="/api/v1/logs"):
    req = urllib.request.Request(INGEST + path, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")

def expect(case, got, want):
    ok = got == want
    say(f"{'ok  ' if ok else 'FAIL'} {case}: {got}")
    if not ok:
        problems.append(f"{case}: got {got}, expected {want}")

def healthy(within=2.0):
    started = time.time()
    with urllib.request.urlopen(INGEST + "/healthz", timeout=within) as r:
        r.read()
    return time.time() - started

def status():
    return json.load(urllib.request.urlopen(INGEST + "/api/v1/ingest/status", timeout=10))

def peak_mb():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

before = {s["source"]: s for s in status()["sources"]}
STARTED = time.time() - 5

# A client sending its body one byte a second, from the start (it takes the body timeout).
slow_result = {}
def slow_client():
    conn = http.client.HTTPConnection(HOST, int(HTTP_PORT), timeout=60)
    conn.putrequest("POST", "/api/v1/logs")
    conn.putheader("Content-Length", "100")
    conn.endheaders()
    try:
        for _ in range(100):
            conn.send(b"x")
            time.sleep(1)
    except OSError:
        pass
    try:
        slow_result["status"] = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        slow_result["status"] = f"error {e}"
slow = threading.Thread(target=slow_client, daemon=True)
slow.start()

# Random bytes over syslog TCP: read as plain lines (replaced bytes flagged) or rejected, counted.
with socket.create_connection(("127.0.0.1", PORT)) as s:
    s.sendall(os.urandom(1 << 20))
say("sent 1 MiB of random bytes over syslog TCP")

# A 10 MiB line over TCP (LF framing): rejected as too long, the next line still read.
with socket.create_connection(("127.0.0.1", PORT)) as s:
    s.sendall(b"<13>Dec  2 00:42:44 vm hostile: " + b"y" * (10 << 20) + b"\n<13>Dec  2 00:42:44 vm hostile: after the long line\n")
say("sent a 10 MiB line and one more over syslog TCP")

# HTTP: a 10 MiB line inside the body limit is rejected alone; the line after it accepted.
code, answer = post(b"z" * (10 << 20) + b"\nWARN a line after it\n", {"content-type": "text/plain"})
expect("10 MiB line over HTTP", (code, answer.get("accepted"), [r["line"] for r in answer.get("rejected", [])]),
       (200, 1, [1]))
# A body over the limit, announced by its Content-Length with `Expect: 100-continue` (as curl
# sends large bodies): refused before any of it is sent, so the answer is certain (a client
# writing the body regardless can find the connection closed under it once 413 is sent).
with socket.create_connection((HOST, int(HTTP_PORT))) as s:
    s.sendall(b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
              b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (18 << 20))
    s.settimeout(10)
    first_line = s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
expect("18 MiB body announced (limit 16 MiB)", first_line.split(" ")[1:2], ["413"])
bomb = gzip.compress(b"\0" * (1 << 30), 9)
code, _ = post(bomb, {"content-encoding": "gzip"})
expect(f"gzip bomb ({len(bomb) >> 10} KiB, 1 GiB inflated)", code, 413)
code, answer = post(b'{"msg":"caf\xe9 \xff\xfe"}\n', {"content-type": "application/x-ndjson"})
expect("invalid UTF-8 in NDJSON (replaced, flagged, accepted)", (code, answer.get("accepted")), (200, 1))
code, _ = post(b"garbage", {"content-encoding": "br"})
expect("unsupported Content-Encoding", code, 415)

# A body shorter than its Content-Length, then the connection closed.
with socket.create_connection((HOST, int(HTTP_PORT))) as s:
    s.sendall(b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly this")
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    reply = s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
expect("body shorter than its Content-Length", reply.split(" ")[1] if reply else "closed", "400")

# 1,000 idle TCP connections, while a real message gets through and /healthz answers fast.
idle = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(1000)]
time.sleep(1)
connections = next(s for s in status()["sources"] if s["source"] == "syslog_tcp")["connections"]
took = healthy()
with socket.create_connection(("127.0.0.1", PORT)) as s:
    s.sendall(b"<13>Dec  2 00:42:44 vm hostile: while 1000 connections idle\n")
expect("1,000 idle connections held", connections >= 1000, True)
expect("/healthz under 1,000 idle connections answers within 0.5 s", took < 0.5, True)
for s in idle:
    s.close()

slow.join(timeout=60)
expect("body sent one byte a second", slow_result.get("status"), 408)

time.sleep(3)
after = {s["source"]: s for s in status()["sources"]}
for source, s in after.items():
    d = {k: s[k] - before[source][k] for k in ("received", "sent", "rejected", "dropped")}
    balanced = d["received"] == d["sent"] + d["rejected"] + d["dropped"] and s["in_flight"] == 0
    say(f"{source}: received {d['received']}, sent {d['sent']}, rejected {d['rejected']}, dropped {d['dropped']}")
    if not balanced:
        problems.append(f"{source} accounting does not balance: {d}")
def stored_hostile():
    rows = stack.sql("SELECT count(*) FROM log_events WHERE service = 'hostile' AND message IN "
                     "('after the long line', 'while 1000 connections idle') "
                     f"AND received_at > to_timestamp({STARTED})")
    return int(rows[0][0]) if rows else 0
deadline = time.time() + 120
while stored_hostile() < 2 and time.time() < deadline:
    time.sleep(1)
expect("the lines after the long one and during the idle connections stored", stored_hostile(), 2)
healthy()
peak = peak_mb()
expect(f"peak resident memory {peak:.0f} MiB under {LIMIT_MB} MiB", peak < LIMIT_MB, True)
if problems:
    stack.fail("hostile", "; ".join(problems))
print("1 passed, 0 failed")
PY
