#!/usr/bin/env bash
# The ingest service's WebSocket fan-in (LOGSTREAM_WS_SOURCES) against a running native stack
# (scripts/stack.sh up): three of the generator's /ws/logs streams (10 ms apart, each its own
# service) and five hostile upstreams served by ws_hostile.py: garbage frames (not UTF-8, empty,
# blank, lines over the line limit, JSON with a wrong-typed field or without a message), a 5 MiB
# frame or a text frame that is not UTF-8 per connection, a server that accepts and then stalls
# (never sends, never answers a ping), one that closes every second after 5 valid events, and a
# flood of 64 KiB frames, more than its share of the queue (one parser worker, so it must drop).
# The generator streams go through byte-for-byte relays in ws_hostile.py, so that stopping it
# at the end cuts every upstream and the counts settle.
#
#   integration-tests/ws-fanin-test.sh [--seconds 30]
#
# The ingest service is restarted with the upstreams and LOGSTREAM_WS_MAX_BUFFERED_BYTES=16 MiB;
# its resident memory is sampled every second. Checks: the healthy upstreams never reconnected,
# were never rejected or dropped from, and their received count grew in every 5 s window; the
# hostile ones were refused for the right reasons (stalled, frame too large, rejection reasons in
# the metrics, overflow drops) and the service answered /healthz throughout; per upstream and for
# the source: received == sent + rejected + dropped; the rows stored under this ingest instance
# equal Kafka's acknowledgements (seq exact) and per service each upstream's sent count; the peak
# RSS stays under WS_BASE_MB (64) + the buffered limit + one frame and a read buffer per upstream;
# /stats is the same document as /api/v1/ingest/status. The normal ingest service is restored at
# the end, whatever happens.
# Environment: INGEST_URL (http://127.0.0.1:8082), GENERATOR_URL (http://127.0.0.1:8080),
# DATABASE_URL, WS_HOSTILE_PORT (18600: it and the next 7 ports), WS_BASE_MB (64).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.stack/ws-hostile-venv"
WEBSOCKETS_VERSION=15.0.1
if ! "$VENV/bin/python" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "websockets==$WEBSOCKETS_VERSION"
fi

HOSTILE_PYTHON="$VENV/bin/python" PYTHONPATH="$ROOT/integration-tests" exec python3 - "$@" <<'PY'
import argparse, atexit, json, os, re, subprocess, tempfile, time, urllib.request
import stack_client as stack

ap = argparse.ArgumentParser(prog="ws-fanin-test.sh")
ap.add_argument("--seconds", type=int, default=30)
args = ap.parse_args()
INGEST = os.environ.get("INGEST_URL", "http://127.0.0.1:8082")
GENERATOR = os.environ.get("GENERATOR_URL", "http://127.0.0.1:8080")
PORT = int(os.environ.get("WS_HOSTILE_PORT", "18600"))
BASE_MB = float(os.environ.get("WS_BASE_MB", "64"))
MAX_LINE = int(os.environ.get("LOGSTREAM_INGEST_MAX_LINE_BYTES", str(256 * 1024)))
BUFFERED = 16 * 1024 * 1024
MAX_FRAME = 1024 * 1024           # LOGSTREAM_WS_MAX_FRAME_BYTES' default
READ_BUFFER = 128 * 1024          # tungstenite's read buffer, per connection
RUN = str(int(time.time()))
PREFIX = f"wsfan{RUN}"
HEALTHY = ["gen-a", "gen-b", "gen-c"]
UPSTREAMS = {
    "gen-a": f"ws://127.0.0.1:{PORT + 5}/ws/logs?interval_ms=10&service={PREFIX}-a",
    "gen-b": f"ws://127.0.0.1:{PORT + 6}/ws/logs?interval_ms=10&service={PREFIX}-b",
    "gen-c": f"ws://127.0.0.1:{PORT + 7}/ws/logs?interval_ms=10&service={PREFIX}-c",
    "garbage": f"ws://127.0.0.1:{PORT}/garbage",
    "huge": f"ws://127.0.0.1:{PORT + 1}/huge",
    "stall": f"ws://127.0.0.1:{PORT + 2}/stall",
    "flappy": f"ws://127.0.0.1:{PORT + 3}/flappy",
    "flood": f"ws://127.0.0.1:{PORT + 4}/flood",
}
SERVICE_OF = {"gen-a": f"{PREFIX}-a", "gen-b": f"{PREFIX}-b", "gen-c": f"{PREFIX}-c", "flappy": f"{PREFIX}-flappy"}
SETTINGS = {
    "LOGSTREAM_WS_SOURCES": ",".join(UPSTREAMS.values()),
    "LOGSTREAM_WS_MAX_BUFFERED_BYTES": str(BUFFERED),
    "LOGSTREAM_WS_WORKERS": "1",
    "LOGSTREAM_WS_STALL_TIMEOUT_MS": "3000",
    "LOGSTREAM_WS_PING_INTERVAL_MS": "1000",
    "LOGSTREAM_WS_BACKOFF_MAX_MS": "2000",
}
problems = []
tmp = tempfile.mkdtemp(prefix="ws-fanin-")

def say(msg):
    print(f"[ws-fanin] {msg}", flush=True)

def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)

def status():
    return get(f"{INGEST}/api/v1/ingest/status")

def by_name(st):
    """The status's websocket entries by this test's names (matched on the URL)."""
    names = {url: name for name, url in UPSTREAMS.items()}
    return {names[u["url"]]: u for u in st.get("websocket", []) if u["url"] in names}

def source(st):
    return next(s for s in st["sources"] if s["source"] == "websocket")

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

get(f"{GENERATOR}/healthz")  # the generator's streams are the healthy upstreams

# The hostile upstreams and the relays to the generator.
ready = os.path.join(tmp, "ready")
summary = os.path.join(tmp, "summary.json")
hostile = subprocess.Popen(
    [os.environ["HOSTILE_PYTHON"], os.path.join(stack.ROOT, "integration-tests", "ws_hostile.py"),
     "--base-port", str(PORT), "--generator", GENERATOR.split("//", 1)[1].rstrip("/"),
     "--prefix", PREFIX, "--max-line-bytes", str(MAX_LINE), "--summary", summary, "--ready", ready],
    stdout=open(os.path.join(tmp, "hostile.log"), "w"), stderr=subprocess.STDOUT)
atexit.register(lambda: hostile.poll() is None and hostile.kill())
deadline = time.time() + 15
while not os.path.exists(ready):
    if hostile.poll() is not None or time.time() > deadline:
        stack.fail("ws-fanin", f"ws_hostile.py did not start: {open(os.path.join(tmp, 'hostile.log')).read()[-2000:]}")
    time.sleep(0.1)
say(f"hostile upstreams and relays listening on 127.0.0.1:{PORT}..{PORT + 7}")

# The ingest service with the eight upstreams; restored as the stack runs it at the end.
restored = []

def restore_ingest():
    if restored:
        return
    restored.append(True)
    for name in SETTINGS:
        os.environ.pop(name, None)
    stack.stack("stop", "ingest")
    stack.stack("start", "ingest")

stack.stack("stop", "ingest")
os.environ.update(SETTINGS)
atexit.register(restore_ingest)
stack.stack("start", "ingest")
pid = stack.pid("ingest")
instance = status()["instance_id"]
say(f"ingest restarted (pid {pid}, instance {instance}) with {len(UPSTREAMS)} upstreams, "
    f"LOGSTREAM_WS_MAX_BUFFERED_BYTES={BUFFERED}, one parser worker")
if len(by_name(status())) != len(UPSTREAMS):
    stack.fail("ws-fanin", f"the ingest status lists {status().get('websocket')} as its upstreams")

# The run: every second RSS, /healthz, and each upstream's numbers.
samples, errors_seen = [], {name: set() for name in UPSTREAMS}
started = time.time()
while time.time() - started < args.seconds:
    time.sleep(1)
    rss, _ = rss_mb(pid)
    try:
        t0 = time.time()
        urllib.request.urlopen(f"{INGEST}/healthz", timeout=2).read()
        health = time.time() - t0
    except OSError as e:
        health = None
        problems.append(f"/healthz failed {time.time() - started:.0f} s into the run: {e}")
    ups = by_name(status())
    for name, u in ups.items():
        if u["last_error"]:
            errors_seen[name].add(u["last_error"])
    samples.append((time.time() - started, rss, health, {n: u["received"] for n, u in ups.items()}))
end_of_run = by_name(status())
_, peak_hwm = rss_mb(pid)

# Cut every upstream (the relays too) and let the counts settle.
hostile.terminate()
hostile.wait(timeout=30)
sent_by_hostile = json.load(open(summary)) if os.path.exists(summary) else {}
deadline, last = time.time() + 60, None
while True:
    st = status()
    key = (source(st)["received"], source(st)["sent"], st["kafka"]["seq_last"])
    settled = source(st)["connections"] == 0 and st["kafka"]["in_flight"] == 0 and key == last
    if settled or time.time() > deadline:
        break
    last = key
    time.sleep(1)
if not settled:
    problems.append("the websocket counts did not settle within 60 s of cutting the upstreams")
final = by_name(st)
src, kafka = source(st), st["kafka"]

# /stats: the same document (a reconnection attempt may change it between two reads).
same = False
for _ in range(10):
    a, b = status(), get(f"{INGEST}/stats")
    if a == b:
        same = True
        break
say(f"/stats is the same document as /api/v1/ingest/status: {same}")
if not same:
    problems.append("/stats differs from /api/v1/ingest/status")

# What was stored: everything Kafka acknowledged for this instance, each seq once.
deadline = time.time() + 90
while True:
    rows, distinct = (int(x) for x in stack.sql(
        f"SELECT count(*), count(DISTINCT seq) FROM log_events WHERE instance_id = '{instance}'")[0])
    if rows >= kafka["acknowledged"] or time.time() > deadline:
        break
    time.sleep(1)
time.sleep(2)  # anything doubled would have arrived by now
rows, distinct = (int(x) for x in stack.sql(
    f"SELECT count(*), count(DISTINCT seq) FROM log_events WHERE instance_id = '{instance}'")[0])
per_service = {r[0]: int(r[1]) for r in stack.sql(
    f"SELECT service, count(*) FROM log_events WHERE instance_id = '{instance}' GROUP BY service")}

# The table.
say(f"{'upstream':<8} {'conn':>5} {'frames':>7} {'received':>9} {'sent':>7} {'rejected':>8} {'dropped':>8} "
    f"{'stored':>7}  last error during the run")
for name in UPSTREAMS:
    u = final[name]
    stored = per_service.get(SERVICE_OF[name], 0) if name in SERVICE_OF else "-"
    say(f"{name:<8} {u['connects']:>5} {u['frames']:>7} {u['received']:>9} {u['sent']:>7} {u['rejected']:>8} "
        f"{u['dropped']:>8} {stored:>7}  {(end_of_run[name]['last_error'] or '-')[:70]}")
say(f"{'source':<8} {src['connections']:>5} {'':>7} {src['received']:>9} {src['sent']:>7} {src['rejected']:>8} "
    f"{src['dropped']:>8} {rows:>7}  (stored: rows of instance {instance})")
say(f"kafka: seq_last {kafka['seq_last']}, acknowledged {kafka['acknowledged']}, failed {kafka['failed']}, "
    f"not handed {kafka['not_handed']}; stored {rows} rows, {distinct} distinct seq")
say("hostile side sent: " + ", ".join(f"{n} {c['connections']} conn/{c['frames']} frames"
                                       for n, c in sent_by_hostile.items()))

# Accounting: per upstream, for the source, and against what was stored.
for name, u in final.items():
    if u["received"] != u["sent"] + u["rejected"] + u["dropped"] or u["in_flight"]:
        problems.append(f"{name}: received {u['received']} != sent {u['sent']} + rejected {u['rejected']} "
                        f"+ dropped {u['dropped']} (in flight {u['in_flight']})")
if src["received"] != src["sent"] + src["rejected"] + src["dropped"]:
    problems.append(f"source websocket: received {src['received']} != sent + rejected + dropped")
for field in ("received", "sent", "rejected", "dropped"):
    total = sum(u[field] for u in final.values())
    if total != src[field]:
        problems.append(f"the upstreams' {field} add up to {total}, the source says {src[field]}")
others = sum(s["sent"] for s in st["sources"] if s["source"] != "websocket")
if rows != distinct or rows != kafka["acknowledged"] or kafka["acknowledged"] != src["sent"] + others:
    problems.append(f"stored {rows} rows ({distinct} distinct seq) for Kafka's {kafka['acknowledged']} "
                    f"acknowledgements (websocket sent {src['sent']}, other sources {others})")
if kafka["seq_last"] != kafka["acknowledged"] + kafka["failed"] + kafka["in_flight"] + kafka["not_handed"]:
    problems.append(f"seq accounting: {kafka}")
for name, service in SERVICE_OF.items():
    if per_service.get(service, 0) != final[name]["sent"]:
        problems.append(f"{name}: {final[name]['sent']} sent but {per_service.get(service, 0)} stored as {service}")

# The healthy upstreams: one connection each, nothing refused, never stopped being read.
for name in HEALTHY:
    u = end_of_run[name]
    if u["connects"] != 1 or not u["connected"] or u["rejected"] or u["dropped"] or final[name]["sent"] == 0:
        problems.append(f"{name} (healthy): {u}")
    for i in range(5, len(samples), 5):
        before, after = samples[i - 5][3].get(name, 0), samples[i][3].get(name, 0)
        if after <= before:
            problems.append(f"{name} received nothing between {samples[i - 5][0]:.0f} s and {samples[i][0]:.0f} s")

# The hostile ones: refused for the right reasons.
def expect(what, ok):
    say(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        problems.append(what)

expect("garbage: nothing sent, everything rejected",
       final["garbage"]["sent"] == 0 and final["garbage"]["rejected"] > 0)
expect("huge: frames refused, never read, and the connection made again",
       final["huge"]["rejected"] >= 2 and final["huge"]["connects"] >= 2
       and any("LOGSTREAM_WS_MAX_FRAME_BYTES" in e for e in errors_seen["huge"]))
expect("stall: taken for stalled and connected again",
       final["stall"]["connects"] >= 2 and any(e.startswith("stalled") for e in errors_seen["stall"]))
expect("flappy: reconnected after each close, its valid events sent",
       final["flappy"]["connects"] >= 5 and final["flappy"]["sent"] >= 25 and final["flappy"]["rejected"] == 0)
expect("flood: frames beyond its share dropped (overflow), none sent",
       final["flood"]["dropped"] > 0 and final["flood"]["sent"] == 0)
metrics = urllib.request.urlopen(f"{INGEST}/metrics", timeout=10).read().decode()
def series(name):
    """The websocket series of a counter, by reason."""
    found = {}
    for line in metrics.splitlines():
        if line.startswith(name + "{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if labels.get("source") == "websocket":
                found[labels.get("reason", "")] = float(line.rsplit(" ", 1)[1])
    return found
rejected_by, dropped_by = series("ingest_events_rejected_total"), series("ingest_events_dropped_total")
say(f"rejected by reason: {rejected_by}; dropped by reason: {dropped_by}")
for reason in ("not_utf8", "empty", "too_long", "invalid_field", "missing_field", "too_large"):
    if not rejected_by.get(reason):
        problems.append(f"no websocket event rejected for {reason}")
if not dropped_by.get("overflow"):
    problems.append("no websocket event dropped for overflow")

# Memory: bounded by the buffered limit, one frame and a read buffer per upstream, and a base.
limit = BASE_MB + (BUFFERED + len(UPSTREAMS) * (MAX_FRAME + READ_BUFFER)) / 2**20
peak = max(s[1] for s in samples)
slowest = max((s[2] for s in samples if s[2] is not None), default=0)
say(f"ingest RSS: peak sampled {peak:.1f} MiB, VmHWM {peak_hwm:.1f} MiB; limit {limit:.1f} MiB "
    f"({BASE_MB:.0f} base + 16 buffered + {len(UPSTREAMS)} x (1 MiB frame + 128 KiB read buffer)); "
    f"slowest /healthz {slowest * 1000:.0f} ms")
if peak_hwm > limit:
    problems.append(f"ingest peak memory {peak_hwm:.1f} MiB over {limit:.1f} MiB")

restore_ingest()
if problems:
    stack.fail("ws-fanin", "; ".join(problems))
say("PASS")
print("1 passed, 0 failed")
PY
