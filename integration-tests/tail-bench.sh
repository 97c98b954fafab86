#!/usr/bin/env bash
# Live tails against the pipeline's rate, on a running native stack (scripts/stack.sh up): the
# generator at --rate events/s for --seconds, first with nobody following, then with --clients
# Server-Sent Events followers of GET /api/v1/tail (no filter: every event) of which one
# connects and then reads nothing. Prints, for both runs, the rate stored (events/s, from the
# collector's counter over the run) and the loss (exact, per instance and seq), and for the
# tailed run each reading follower's events received + skipped (against the events sent), what
# happened to the stalled one, and the gateway's CPU.
#
#   integration-tests/tail-bench.sh [--rate 5000] [--seconds 30] [--clients 20]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RATE=5000 SECONDS_=30 CLIENTS=20
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE="$2"; shift 2 ;;
    --seconds) SECONDS_="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
export RATE SECONDS_ CLIENTS ROOT
PYTHONPATH="$ROOT/integration-tests" exec python3 - <<'PY'
import json, os, socket, subprocess, threading, time, urllib.request
import stack_client as stack

RATE, SECONDS, CLIENTS = int(os.environ["RATE"]), int(os.environ["SECONDS_"]), int(os.environ["CLIENTS"])
HOST, PORT = "127.0.0.1", int(stack.GATEWAY.rsplit(":", 1)[1])

def say(msg):
    print(f"[tail-bench] {msg}", flush=True)

def gateway_pid():
    return int(open(os.path.join(os.environ["ROOT"], ".stack", "gateway.pid")).read().strip())

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def run():
    """One generator run; (stored events/s over the run, sent, lost, doubled)."""
    before = stack.instances()
    stored0, t0 = stack.metric("log_events_stored_total"), time.time()
    stack.call("POST", "/api/v1/generator/start", {"rate_per_second": RATE, "duration_seconds": SECONDS})
    time.sleep(SECONDS + 1)
    after = {i["instance_id"]: i for i in stack.call("POST", "/api/v1/generator/stop")["instances"]}
    runs = stack.run_accounting(before, after)
    stored = stack.wait_stored(runs, 120, time.time)
    elapsed = time.time() - t0
    sent = sum(r[2] for r in runs.values())
    rows = sum(s[0] for s in stored.values())
    distinct = sum(s[1] for s in stored.values())
    rate = (stack.metric("log_events_stored_total") - stored0) / elapsed
    return rate, sent, sent - distinct, rows - distinct

class Follower(threading.Thread):
    def __init__(self, stalled=False):
        super().__init__(daemon=True)
        self.stalled, self.received, self.skipped, self.closed = stalled, 0, 0, False
        self.sock = socket.create_connection((HOST, PORT), timeout=120)
        self.sock.sendall(f"GET /api/v1/tail HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.stop = False

    def run(self):
        if self.stalled:
            while not self.stop:
                time.sleep(0.2)
            return
        f = self.sock.makefile("rb")
        name = b""
        while not self.stop:
            line = f.readline()
            if not line:
                self.closed = True
                return
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                if name == b"skipped":
                    self.skipped += json.loads(line[5:])["skipped"]
                elif line.startswith(b"data: {"):
                    self.received += 1
                name = b""

def main():
    say(f"run 1: {RATE} events/s for {SECONDS} s, nobody following")
    rate1, sent1, lost1, dup1 = run()
    say(f"run 1: stored {rate1:.0f} events/s; sent {sent1}, lost {lost1}, doubled {dup1}")
    followers = [Follower(stalled=(i == 0)) for i in range(CLIENTS)]
    for f in followers:
        f.start()
    time.sleep(3)
    clients = stack.metric("gateway_tail_clients", base=stack.GATEWAY)
    say(f"run 2: the same with {CLIENTS} followers ({clients:.0f} counted by the gateway), one of them reading nothing")
    pid = gateway_pid()
    cpu0, t0 = cpu_seconds(pid), time.time()
    rate2, sent2, lost2, dup2 = run()
    gateway_cores = (cpu_seconds(pid) - cpu0) / (time.time() - t0)
    time.sleep(3)
    clients_after = stack.metric("gateway_tail_clients", base=stack.GATEWAY)
    skipped_total = stack.metric("gateway_tail_events_skipped_total", base=stack.GATEWAY)
    for f in followers:
        f.stop = True
    readers = [f for f in followers if not f.stalled]
    got = sorted(f.received + f.skipped for f in readers)
    say(f"run 2: stored {rate2:.0f} events/s; sent {sent2}, lost {lost2}, doubled {dup2}; gateway CPU {gateway_cores:.2f} cores")
    say(f"readers ({len(readers)}): received per reader min {min(f.received for f in readers)} max {max(f.received for f in readers)}; "
        f"received + skipped min {got[0]} max {got[-1]} (sent {sent2}); skipped in all {skipped_total:.0f}")
    say(f"the stalled follower: followers counted after the run {clients_after:.0f} (it is dropped after 30 s of reading nothing)")
    print()
    print("| run | followers | stored events/s | sent | lost | doubled | gateway CPU (cores) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| nobody following | 0 | {rate1:.0f} | {sent1} | {lost1} | {dup1} | |")
    print(f"| tailed | {CLIENTS} (1 stalled) | {rate2:.0f} | {sent2} | {lost2} | {dup2} | {gateway_cores:.2f} |")
    problems = []
    if lost1 or lost2 or dup1 or dup2:
        problems.append("events lost or doubled")
    if rate2 < 0.95 * rate1:
        problems.append(f"the stored rate dropped with followers ({rate2:.0f} vs {rate1:.0f})")
    if got[0] < sent2 * 0.99:
        problems.append(f"a reader got {got[0]} of {sent2} (received + skipped)")
    if problems:
        raise SystemExit("[tail-bench] " + "; ".join(problems))
    say("passed")

main()
PY
