#!/usr/bin/env bash
# The ingest service's per-client rate limit, on a running native stack (scripts/stack.sh up):
# the ingest service is restarted with LOGSTREAM_INGEST_RATE_LIMIT_PER_MINUTE=20; 25 requests
# from 127.0.0.1 must get 20 answers 200 and 5 answers 429 (with Retry-After and
# X-RateLimit-*), a request from another address (127.0.0.2) must still pass, the count must be
# in Redis, ingest_rate_limited_total must say 5, and exactly the accepted events be stored.
# The ingest service is restarted without the limit at the end.
#
#   integration-tests/ingest-ratelimit-test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONPATH="$ROOT/integration-tests" exec python3 - <<'PY'
import http.client, json, os, subprocess, time
import stack_client as stack

LIMIT, SENT = 20, 25
RUN = str(int(time.time()))
problems = []

def say(msg):
    print(f"[ratelimit] {msg}", flush=True)

def post(i, source="127.0.0.1"):
    conn = http.client.HTTPConnection("127.0.0.1", 8082, timeout=30, source_address=(source, 0))
    body = json.dumps({"message": f"rate limit test {RUN} {i}", "service": f"rl{RUN}"}).encode()
    conn.request("POST", "/api/v1/logs", body=body, headers={"content-type": "application/x-ndjson"})
    r = conn.getresponse()
    r.read()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders())

# Counts left by an earlier run within the minute would change the answers.
subprocess.run(["redis-cli", "DEL", "logstream:ingest-ratelimit:127.0.0.1", "logstream:ingest-ratelimit:127.0.0.2"],
               check=True, capture_output=True)
stack.stack("stop", "ingest")
os.environ["LOGSTREAM_INGEST_RATE_LIMIT_PER_MINUTE"] = str(LIMIT)
try:
    stack.stack("start", "ingest")
    answers = [post(i) for i in range(SENT)]
    statuses = [s for s, _ in answers]
    refused = [h for s, h in answers if s == 429]
    say(f"{SENT} requests from 127.0.0.1 with a limit of {LIMIT} a minute: "
        f"{statuses.count(200)} answered 200, {statuses.count(429)} answered 429")
    if statuses != [200] * LIMIT + [429] * (SENT - LIMIT):
        problems.append(f"statuses {statuses}")
    if refused and not all(h.get("retry-after", "0").isdigit() and int(h["retry-after"]) >= 1 for h in refused):
        problems.append(f"429 without a Retry-After: {refused[0]}")
    first = answers[0][1]
    say(f"first answer's X-RateLimit-Limit {first.get('x-ratelimit-limit')}, remaining {first.get('x-ratelimit-remaining')}; "
        f"a refusal's Retry-After {refused[0].get('retry-after') if refused else None} s")
    if first.get("x-ratelimit-limit") != str(LIMIT) or first.get("x-ratelimit-remaining") != str(LIMIT - 1):
        problems.append(f"X-RateLimit headers of the first answer: {first}")
    other, _ = post(SENT, source="127.0.0.2")
    say(f"a request from 127.0.0.2: {other}")
    if other != 200:
        problems.append(f"another client was refused too ({other})")
    keys = subprocess.run(["redis-cli", "--scan", "--pattern", "logstream:ingest-ratelimit:*"],
                          capture_output=True, text=True).stdout.split()
    say(f"Redis keys: {keys}")
    if "logstream:ingest-ratelimit:127.0.0.1" not in keys:
        problems.append("no count for 127.0.0.1 in Redis")
    limited = stack.metric("ingest_rate_limited_total", base="http://127.0.0.1:8082")
    say(f"ingest_rate_limited_total {limited:.0f}")
    if limited != SENT - LIMIT:
        problems.append(f"ingest_rate_limited_total is {limited}, want {SENT - LIMIT}")
    accepted = LIMIT + 1
    deadline = time.time() + 60
    stored = 0
    while time.time() < deadline:
        stored = int(stack.sql(f"SELECT count(*) FROM log_events WHERE service = 'rl{RUN}'")[0][0])
        if stored >= accepted:
            break
        time.sleep(1)
    time.sleep(1)
    stored = int(stack.sql(f"SELECT count(*) FROM log_events WHERE service = 'rl{RUN}'")[0][0])
    say(f"stored {stored} of the {accepted} accepted events")
    if stored != accepted:
        problems.append(f"stored {stored}, accepted {accepted}")
finally:
    os.environ.pop("LOGSTREAM_INGEST_RATE_LIMIT_PER_MINUTE", None)
    stack.stack("stop", "ingest")
    stack.stack("start", "ingest")
if problems:
    stack.fail("ratelimit", "; ".join(problems))
print("1 passed, 0 failed")
PY
