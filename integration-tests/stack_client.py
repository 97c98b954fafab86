"""Helpers shared by the end-to-end scripts (system-test.sh, load-test.sh): calls to the gateway
and collector, PostgreSQL queries through psql, and exact per-instance/seq accounting."""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8090")
COLLECTOR = os.environ.get("COLLECTOR_URL", "http://127.0.0.1:8081")
DATABASE = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/logstream")


class StackError(Exception):
    pass


def call(method, path, body=None, base=GATEWAY):
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    token = os.environ.get("LOGSTREAM_API_TOKEN")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise StackError(f"{method} {path} answered {e.code}: {e.read().decode(errors='replace')}")
    except OSError as e:
        raise StackError(f"{method} {path}: {e}")


def metric(name, base=COLLECTOR):
    """Sum of all series of a metric on a service's /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def sql(query):
    out = subprocess.run(["psql", DATABASE, "-tAF", "\t", "-c", query], capture_output=True, text=True)
    if out.returncode != 0:
        raise StackError(f"psql: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.strip().splitlines() if line]


def instances():
    return {i["instance_id"]: i for i in call("GET", "/api/v1/generator/status")["instances"]}


def run_accounting(before, after):
    """Per instance: (first seq, last seq, sent, failed) of the run between two status snapshots."""
    runs = {}
    for iid, a in after.items():
        b = before.get(iid, {"generated_total": 0, "sent_total": 0, "failed_total": 0})
        lo, hi = b["generated_total"], a["generated_total"]
        sent, failed = a["sent_total"] - b["sent_total"], a["failed_total"] - b["failed_total"]
        if a.get("in_flight", 0):
            raise StackError(f"{iid}: {a['in_flight']} records still in flight after stop")
        if hi - lo != sent + failed:
            raise StackError(f"{iid}: generated {hi - lo} but sent {sent} + failed {failed}")
        if sent or failed:
            runs[iid] = (lo, hi, sent, failed)
    return runs


def stored(runs):
    """Per instance: (rows, distinct seq, min seq, max seq) stored for the run."""
    result = {}
    for iid, (lo, _hi, _s, _f) in runs.items():
        row = sql("SELECT count(*), count(DISTINCT seq), coalesce(min(seq),0), coalesce(max(seq),0) "
                  f"FROM log_events WHERE instance_id = '{iid}' AND seq > {lo}")[0]
        result[iid] = tuple(int(x) for x in row)
    return result


def wait_stored(runs, timeout, clock):
    """Polls until everything sent is stored (or timeout); returns stored(runs)."""
    total = sum(r[2] for r in runs.values())
    deadline = clock() + timeout
    while True:
        counts = stored(runs)
        if sum(c[0] for c in counts.values()) >= total or clock() > deadline:
            return counts
        __import__("time").sleep(1)


def discrepancies(runs, counts):
    """What differs between sent and stored, per instance (empty: exact)."""
    problems = []
    for iid, (lo, hi, sent, failed) in runs.items():
        n, distinct, mn, mx = counts[iid]
        if n != distinct:
            problems.append(f"{iid}: {n - distinct} duplicate seq values stored")
        if distinct != sent:
            problems.append(f"{iid}: {sent} sent but {distinct} distinct stored")
        if mx > hi:
            problems.append(f"{iid}: stored seq {mx} beyond the last generated {hi}")
        if failed == 0 and n and (mn != lo + 1 or mx != hi):
            problems.append(f"{iid}: stored seq range {mn}..{mx}, expected {lo + 1}..{hi}")
    return problems


def fail(tag, msg):
    print(f"[{tag}] FAIL: {msg}", flush=True)
    print("0 passed, 1 failed")
    sys.exit(1)
