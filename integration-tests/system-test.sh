#!/usr/bin/env bash
# End-to-end check against a running stack (scripts/stack.sh up, or docker compose up):
# generate through the gateway, stop, wait for the collector, and verify that PostgreSQL holds
# exactly the events the generators report as sent — per instance-id, the stored seq values of
# this run are exactly the acknowledged ones, with no gap and no duplicate.
#
#   integration-tests/system-test.sh [--rate N] [--duration S] [--kill-collector-at S]
#
# --kill-collector-at S sends SIGKILL to the native stack's collector S seconds into the run and
# restarts it (scripts/stack.sh up), to prove a crash neither loses nor doubles anything.
# Environment: GATEWAY_URL (http://127.0.0.1:8090), DATABASE_URL
# (postgres://postgres@127.0.0.1:5432/logstream), CATCH_UP_SECONDS (180).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONPATH="$ROOT/integration-tests" exec python3 - "$ROOT" "$@" <<'PY'
import argparse, os, signal, subprocess, sys, time
import stack_client as stack

root = sys.argv[1]
ap = argparse.ArgumentParser(prog="system-test.sh")
ap.add_argument("--rate", type=int, default=2000)
ap.add_argument("--duration", type=int, default=10)
ap.add_argument("--kill-collector-at", type=float, default=None)
args = ap.parse_args(sys.argv[2:])
catch_up = int(os.environ.get("CATCH_UP_SECONDS", "180"))
def say(msg): print(f"[system-test] {msg}", flush=True)

try:
    before = stack.instances()
    say(f"start: {args.rate} events/s for {args.duration} s")
    stack.call("POST", "/api/v1/generator/start", {"rate_per_second": args.rate})
    started = time.time()
    if args.kill_collector_at is not None:
        time.sleep(args.kill_collector_at)
        pid = int(open(os.path.join(root, ".stack", "collector.pid")).read())
        say(f"SIGKILL collector (pid {pid}) at {time.time() - started:.1f} s")
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        subprocess.run([os.path.join(root, "scripts", "stack.sh"), "up"], check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "STACK_PROMETHEUS": "0"})
        say(f"collector restarted and ready at {time.time() - started:.1f} s")
    time.sleep(max(0.0, args.duration - (time.time() - started)))
    after = {i["instance_id"]: i for i in stack.call("POST", "/api/v1/generator/stop")["instances"]}
    say(f"stopped after {time.time() - started:.1f} s")
    runs = stack.run_accounting(before, after)
    if not runs:
        stack.fail("system-test", "no instance generated anything")
    total = sum(r[2] for r in runs.values())
    say(f"generators report {total} sent, {sum(r[3] for r in runs.values())} failed")
    counts = stack.wait_stored(runs, catch_up, time.time)
    say(f"stored {sum(c[0] for c in counts.values())} of {total} after {time.time() - started:.1f} s")
    for iid, (lo, hi, sent, failed) in runs.items():
        say(f"{iid}: seq {lo + 1}..{hi}: sent {sent}, failed {failed}, stored {counts[iid][0]} ({counts[iid][1]} distinct)")
    problems = stack.discrepancies(runs, counts)
except stack.StackError as e:
    stack.fail("system-test", str(e))
if problems:
    for p in problems: say(p)
    stack.fail("system-test", "stored != sent")
say("sent == stored, exactly, per instance and seq")
print("1 passed, 0 failed")
PY
