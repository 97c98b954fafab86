#!/usr/bin/env bash
# Service names are input, never unbounded labels: 100,000 distinct service names through the
# ingest service (HTTP NDJSON) and 10,000 more over syslog TCP (distinct app-names), into a
# running native stack (scripts/stack.sh up). Every event must be stored; then every service's
# /metrics (collector, ingest, gateway, generator) must hold at most LOGSTREAM_METRICS_MAX_SERVICES
# (100) distinct `service` label values plus `other`, the collector's `other` series must count
# the rest, and the number of series must stay small. Prints each service's series count and
# resident memory before and after.
#
#   integration-tests/label-bound-test.sh [--services N]
#
# Environment: INGEST_URL (http://127.0.0.1:8082), SYSLOG_PORT (5514), DATABASE_URL,
# COLLECTOR_URL, GATEWAY_URL, GENERATOR_URL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONPATH="$ROOT/integration-tests" exec python3 - "$@" <<'PY'
import argparse, json, os, re, socket, time, urllib.request
import stack_client as stack

ap = argparse.ArgumentParser(prog="label-bound-test.sh")
ap.add_argument("--services", type=int, default=100_000)
args = ap.parse_args()
INGEST = os.environ.get("INGEST_URL", "http://127.0.0.1:8082")
PORT = int(os.environ.get("SYSLOG_PORT", "5514"))
ENDPOINTS = {
    "collector": stack.COLLECTOR,
    "ingest": INGEST,
    "gateway": stack.GATEWAY,
    "generator": os.environ.get("GENERATOR_URL", "http://127.0.0.1:8080"),
}
MAX_LABELS = 100
RUN = str(int(time.time()))
SYSLOG_SERVICES = args.services // 10

def say(msg):
    print(f"[labels] {msg}", flush=True)

def scrape(base):
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        return r.read().decode()

def services_in(text):
    return set(re.findall(r'[{,]service="([^"]*)"', text))

def series(text):
    return sum(1 for l in text.splitlines() if l and not l.startswith("#"))

def rss_mb(name):
    try:
        with open(f"/proc/{stack.pid(name)}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return float("nan")

before = {name: series(scrape(base)) for name, base in ENDPOINTS.items()}
rss_before = {name: rss_mb(name) for name in ENDPOINTS}
since = stack.sql("SELECT now()")[0][0]

# HTTP: NDJSON bodies of 20,000 events, each of its own service.
sent = 0
for start in range(0, args.services, 20_000):
    body = "".join(json.dumps({"message": f"label test {RUN} {i}", "service": f"lb{RUN}-{i}"}) + "\n"
                   for i in range(start, min(start + 20_000, args.services))).encode()
    req = urllib.request.Request(f"{INGEST}/api/v1/logs", data=body, method="POST",
                                 headers={"content-type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=120) as r:
        answer = json.load(r)
    if answer["rejected_count"] != 0:
        stack.fail("labels", f"ingest rejected events: {answer['rejected'][:3]}")
    sent += answer["accepted"]
say(f"HTTP: {sent} events of {args.services} distinct services acknowledged")

# Syslog TCP: RFC 5424 lines, octet-counted, each of its own app-name.
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
with socket.create_connection(("127.0.0.1", PORT)) as s:
    frames = []
    for i in range(SYSLOG_SERVICES):
        msg = f"<14>1 {now} host lb{RUN}-s{i} - - - label test {RUN} s{i}".encode()
        frames.append(str(len(msg)).encode() + b" " + msg)
    s.sendall(b"".join(frames))
say(f"syslog TCP: {SYSLOG_SERVICES} events of {SYSLOG_SERVICES} distinct app-names sent")
total = args.services + SYSLOG_SERVICES

deadline = time.time() + 180
stored = 0
while time.time() < deadline:
    stored = int(stack.sql(f"""SELECT count(*) FROM log_events WHERE received_at >= '{since}'
                               AND message LIKE 'label test {RUN} %'""")[0][0])
    if stored >= total:
        break
    time.sleep(2)
distinct = int(stack.sql(f"""SELECT count(DISTINCT service) FROM log_events WHERE received_at >= '{since}'
                             AND message LIKE 'label test {RUN} %'""")[0][0])
say(f"stored {stored} of {total} events, {distinct} distinct services")
problems = []
if stored != total or distinct != total:
    problems.append(f"stored {stored} events of {distinct} services, sent {total} of {total}")

for name, base in ENDPOINTS.items():
    text = scrape(base)
    labels = services_in(text)
    ours = {l for l in labels if l.startswith(f"lb{RUN}-")}
    say(f"{name}: {series(text)} series (before: {before[name]}), {len(labels)} distinct service labels "
        f"({len(ours)} of this run's), resident memory {rss_before[name]:.0f} -> {rss_mb(name):.0f} MiB")
    if len(labels - {"other"}) > MAX_LABELS:
        problems.append(f"{name}: {len(labels)} distinct service label values")
    if series(text) > before[name] + 2_000:
        problems.append(f"{name}: series grew from {before[name]} to {series(text)}")
other = sum(float(v) for v in re.findall(
    r'^log_events_stored_by_level_total\{[^}]*service="other"[^}]*\} (\S+)$', scrape(stack.COLLECTOR), re.M))
say(f"collector: log_events_stored_by_level_total{{service=\"other\"}} = {other:.0f}")
if other < total - MAX_LABELS:
    problems.append(f"collector: only {other:.0f} events under service=\"other\", expected at least {total - MAX_LABELS}")
if problems:
    stack.fail("labels", "; ".join(problems))
print("1 passed, 0 failed")
PY
