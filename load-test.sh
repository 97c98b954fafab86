#!/usr/bin/env bash
# Load test against a running stack (scripts/stack.sh up, or docker compose up): drives the
# gateway through a ladder of rates and prints, per step, the target rate, the achieved
# generation rate, the rate stored into PostgreSQL during the step, the consumer lag at the end of
# the step, and the events lost (sent by the generators but not stored, checked exactly per
# instance and seq after the collector caught up).
#
#   ./load-test.sh [--rates 1000,10000,50000,100000,200000] [--step-seconds 20] [--catch-up-seconds 300]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$ROOT/integration-tests" exec python3 - "$@" <<'PY'
import argparse, sys, time
import stack_client as stack

ap = argparse.ArgumentParser(prog="load-test.sh")
ap.add_argument("--rates", default="1000,10000,50000,100000,200000")
ap.add_argument("--step-seconds", type=int, default=20)
ap.add_argument("--catch-up-seconds", type=int, default=300)
args = ap.parse_args(sys.argv[1:])
rates = [int(r) for r in args.rates.split(",") if r]

def lag():
    parts = stack.call("GET", "/api/v1/collector/status", base=stack.COLLECTOR)["partitions"]
    return sum(p["lag"] or 0 for p in parts)

rows = []
header = f"{'target/s':>10} {'generated/s':>12} {'stored/s':>10} {'lag@end':>9} {'sent':>10} {'stored':>10} {'lost':>6} {'dup':>5} {'catch-up s':>10}"
try:
    for rate in rates:
        before = stack.instances()
        stored0 = stack.metric("log_events_stored_total")
        stack.call("POST", "/api/v1/generator/start", {"rate_per_second": rate})
        t0 = time.time()
        time.sleep(args.step_seconds)
        stored1 = stack.metric("log_events_stored_total")
        t1 = time.time()
        lag_end = lag()
        after = {i["instance_id"]: i for i in stack.call("POST", "/api/v1/generator/stop")["instances"]}
        t_stop = time.time()
        runs = stack.run_accounting(before, after)
        generated = sum(r[1] - r[0] for r in runs.values())
        sent = sum(r[2] for r in runs.values())
        counts = stack.wait_stored(runs, args.catch_up_seconds, time.time)
        caught = time.time() - t_stop
        stored = sum(c[1] for c in counts.values())
        dups = sum(c[0] - c[1] for c in counts.values())
        row = (rate, generated / (t_stop - t0), (stored1 - stored0) / (t1 - t0), lag_end, sent, stored, sent - stored, dups, caught)
        rows.append(row)
        print(f"[load-test] step {rate}/s done: generated {generated}, sent {sent}, stored {stored}, lost {sent - stored}", flush=True)
except stack.StackError as e:
    print(f"[load-test] error: {e}")
    try: stack.call("POST", "/api/v1/generator/stop")
    except stack.StackError: pass

print()
print(header)
for r in rows:
    print(f"{r[0]:>10} {r[1]:>12.0f} {r[2]:>10.0f} {r[3]:>9} {r[4]:>10} {r[5]:>10} {r[6]:>6} {r[7]:>5} {r[8]:>10.1f}")
lossless = [r[0] for r in rows if r[6] == 0 and r[7] == 0 and r[1] >= 0.98 * r[0]]
print(f"\nhighest step with zero loss and generation within 2% of target: {max(lossless) if lossless else 'none'} events/s")
sys.exit(0 if all(r[6] == 0 and r[7] == 0 for r in rows) and rows else 1)
PY
