#!/usr/bin/env bash
# Search and tail tried as a new user would, on a running native stack (scripts/stack.sh up):
# `logstream tail --service payments --level ERROR` is started, then the error_burst scenario
# runs for 10 s at 2,000 events/s; then the burst's errors are found with one curl of
# GET /api/v1/logs and with `logstream search`. Checked exactly against what PostgreSQL holds
# for the run (payments ERROR rows of the run's instances and seqs):
#   - curl (following `next`) and `logstream search --json` list exactly those rows, once each,
#     newest first;
#   - the tail showed every one of them (it reads Kafka, so it shows each as published), and
#     nothing of another service or level.
#
#   integration-tests/search-tail-test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LOGSTREAM_CLI="${LOGSTREAM_CLI:-$ROOT/target/release/logstream}"
PYTHONPATH="$ROOT/integration-tests" exec python3 - <<'PY'
import json, os, subprocess, time, urllib.parse
import stack_client as stack

CLI = os.environ["LOGSTREAM_CLI"]
problems = []

def say(msg):
    print(f"[search-tail] {msg}", flush=True)

def check(ok, what):
    say(("ok: " if ok else "FAILED: ") + what)
    if not ok:
        problems.append(what)

env = dict(os.environ, LOGSTREAM_GATEWAY_URL=stack.GATEWAY, NO_COLOR="1")
tail_out = open("/tmp/search-tail-tail.ndjson", "w")
tail = subprocess.Popen([CLI, "tail", "--service", "payments", "--level", "ERROR", "--json"],
                        stdout=tail_out, stderr=subprocess.PIPE, env=env, text=True)
time.sleep(3)  # the gateway starts reading Kafka from the end once the tail follows
if tail.poll() is not None:
    raise SystemExit(f"logstream tail exited: {tail.stderr.read()}")

started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
before = stack.instances()
stack.call("POST", "/api/v1/generator/start", {"rate_per_second": 2000, "duration_seconds": 10,
                                               "scenario": "error_burst"})
time.sleep(11)
after = {i["instance_id"]: i for i in stack.call("POST", "/api/v1/generator/stop")["instances"]}
runs = stack.run_accounting(before, after)
stack.wait_stored(runs, 60, time.time)
time.sleep(2)
tail.terminate()
tail.wait()
tail_out.close()

where = " OR ".join(f"(instance_id = '{iid}' AND seq > {lo} AND seq <= {hi})" for iid, (lo, hi, _s, _f) in runs.items())
rows = stack.sql(f"SELECT kafka_partition, kafka_offset FROM log_events WHERE service = 'payments' AND level = 'ERROR' AND ({where}) "
                 "ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC")
expected = [(int(p), int(o)) for p, o in rows]
say(f"the run stored {len(expected)} payments ERROR events")
check(len(expected) > 1000, f"the error burst made errors ({len(expected)})")

def ours(events):
    """(partition, offset) of the listed events that belong to the run."""
    wanted = set(expected)
    return [(e["kafka_partition"], e["kafka_offset"]) for e in events if (e["kafka_partition"], e["kafka_offset"]) in wanted]

# One curl, then its pages.
query = {"service": "payments", "level": "ERROR", "from": started, "limit": "1000"}
listed, pages, cursor = [], 0, None
while True:
    q = dict(query, **({"cursor": cursor} if cursor else {}))
    out = subprocess.run(["curl", "-sf", f"{stack.GATEWAY}/api/v1/logs?{urllib.parse.urlencode(q)}"],
                         capture_output=True, text=True, check=True)
    page = json.loads(out.stdout)
    listed += page["events"]
    pages += 1
    cursor = page["next"]
    if not cursor:
        break
check(all(e["service"] == "payments" and e["level"] == "ERROR" for e in listed), "curl: only payments ERROR events")
check(ours(listed) == expected, f"curl: every stored error of the run once, newest first ({len(ours(listed))} of {len(expected)}, {pages} pages)")

out = subprocess.run([CLI, "search", "--service", "payments", "--level", "ERROR", "--from", started,
                      "-n", "1000000", "--json"], capture_output=True, text=True, env=env)
check(out.returncode == 0, f"logstream search exits 0 ({out.stderr.strip()[:200]})")
searched = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
check(ours(searched) == expected, f"logstream search: the same events ({len(ours(searched))} of {len(expected)})")
text = subprocess.run([CLI, "search", "--service", "payments", "--level", "ERROR", "-n", "3"],
                      capture_output=True, text=True, env=env)
say("logstream search -n 3 prints:\n" + text.stdout.rstrip())
check(text.returncode == 0 and len(text.stdout.splitlines()) == 3 and " ERROR " in text.stdout,
      "logstream search prints one line per event")

tailed = [json.loads(line) for line in open("/tmp/search-tail-tail.ndjson") if line.strip()]
events = [e for e in tailed if "skipped" not in e]
check(all(e["service"] == "payments" and e["level"] == "ERROR" for e in events), "tail: only payments ERROR events")
check(not any("skipped" in e for e in tailed), "tail: nothing skipped")
check(sorted(set(ours(events))) == sorted(expected) and len(ours(events)) == len(expected),
      f"tail: every error of the run once ({len(ours(events))} of {len(expected)})")

bad = subprocess.run([CLI, "search", "--level", "LOUD"], capture_output=True, text=True, env=env)
check(bad.returncode == 1 and "level" in bad.stderr, f"a bad filter: exit 1 naming it ({bad.stderr.strip()})")

if problems:
    raise SystemExit(f"[search-tail] {len(problems)} problem(s): " + "; ".join(problems))
say("passed")
PY
