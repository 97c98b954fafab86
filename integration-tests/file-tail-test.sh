#!/usr/bin/env bash
# The file source, on a running native stack (scripts/stack.sh up): a writer appends events at
# 5,000 lines/s (every 1,000th a three-line stack trace) to a file that is rotated three times
# (twice by rename-and-create, once by copytruncate, done by the writer between two writes as
# logrotate's copytruncate would be without its race), while the ingest service is SIGKILLed
# and started again twice (once right after the copytruncate). Every event must be stored exactly
# once: per seq (1..N, no gap, no duplicate) and per line number in the message, and each stack
# trace whole. The ingest service is restarted without the file source at the end.
#
# With --freeze-broker N, Kafka is also stopped (SIGSTOP) for N seconds from 80 % of the run:
# commits wait, time out and are tried again, and the source catches up after SIGCONT.
#
#   integration-tests/file-tail-test.sh [--events 200000] [--rate 5000] [--freeze-broker 0]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONPATH="$ROOT/integration-tests" exec python3 - "$@" <<'PY'
import argparse, atexit, json, os, re, shutil, signal, sys, threading, time, urllib.request
import stack_client as stack

parser = argparse.ArgumentParser()
parser.add_argument("--events", type=int, default=200_000)
parser.add_argument("--rate", type=int, default=5_000)
parser.add_argument("--freeze-broker", type=int, default=0)
args = parser.parse_args(sys.argv[1:])
N, RATE = args.events, args.rate
RUN = str(int(time.time()))
SOURCE_ID = f"filetest-{RUN}"
INSTANCE = f"files-{SOURCE_ID}"
SERVICE = f"filetail{RUN}"
DIR = os.path.join(stack.ROOT, ".stack", f"file-tail-{RUN}")
LOG = os.path.join(DIR, "app.log")
TRACE_EVERY = 1000
os.makedirs(DIR)

def say(msg):
    print(f"[file-tail] {msg}", flush=True)

def status():
    with urllib.request.urlopen(stack.INGEST + "/api/v1/ingest/status", timeout=10) as r:
        return json.load(r)

def start_ingest(with_files=True):
    for name, value in (("LOGSTREAM_FILE_PATHS", f"{LOG}*"), ("LOGSTREAM_FILE_SOURCE_ID", SOURCE_ID),
                        ("LOGSTREAM_FILE_SERVICE", SERVICE)):
        if with_files:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    stack.stack("start", "ingest")

restored = []
def restore():
    if restored:
        return
    restored.append(True)
    stack.stack("stop", "ingest")
    start_ingest(with_files=False)
atexit.register(restore)

# Rotations and kills, at these fractions of the events written.
ROTATIONS = {int(N * 0.2): "rename", int(N * 0.4): "rename", int(N * 0.6): "copytruncate"}
KILLS = [int(N * 0.3), int(N * 0.6) + RATE // 10]
kill_at = {k: False for k in KILLS}

def shift():
    """app.log.1 -> app.log.2, ... as logrotate does before it rotates."""
    for i in range(8, 0, -1):
        if os.path.exists(f"{LOG}.{i}"):
            os.rename(f"{LOG}.{i}", f"{LOG}.{i + 1}")

def writer():
    out = open(LOG, "a")
    start = time.time()
    lines = 0
    for i in range(N):
        kind = ROTATIONS.get(i)
        if kind == "rename":
            out.close()
            shift()
            os.rename(LOG, f"{LOG}.1")
            out = open(LOG, "a")
            say(f"rotated by rename at event {i}")
        elif kind == "copytruncate":
            out.flush()
            shift()
            shutil.copyfile(LOG, f"{LOG}.1")
            os.truncate(LOG, 0)
            say(f"rotated by copytruncate at event {i}")
        if i in kill_at:
            kill_at[i] = True
        if i == int(N * 0.8):
            freeze_at[0] = True
        level = ("INFO", "WARN", "ERROR", "DEBUG")[i % 4]
        if i % TRACE_EVERY == 0:
            out.write(f"{level} {SERVICE} event {i} failed\n\tat a.b.C.run(C.java:{i})\n\tat a.b.D.call(D.java:7)\n")
            lines += 3
        else:
            out.write(f"{level} {SERVICE} event {i} payload {'x' * (i % 64)}\n")
            lines += 1
        if i % 100 == 99:
            out.flush()
            ahead = (i + 1) / RATE - (time.time() - start)
            if ahead > 0:
                time.sleep(ahead)
    out.close()
    written.append((lines, time.time() - start))

written = []
freeze_at = [False]
stack.stack("stop", "ingest")
start_ingest()
say(f"ingest tails {LOG}* as {INSTANCE}; writing {N} events at {RATE}/s")
thread = threading.Thread(target=writer, daemon=True)
thread.start()
killed = 0
for at in KILLS:
    while not kill_at[at]:
        time.sleep(0.01)
    pid = stack.pid("ingest")
    os.kill(pid, signal.SIGKILL)
    stack.wait_exit(pid, 10)
    killed += 1
    say(f"ingest SIGKILLed at event {at} (pid {pid}); starting it again in 2 s")
    time.sleep(2)
    start_ingest()
if args.freeze_broker:
    while not freeze_at[0] and not written:
        time.sleep(0.05)
    kafka = stack.pid("kafka")
    os.kill(kafka, signal.SIGSTOP)
    say(f"Kafka stopped (SIGSTOP) for {args.freeze_broker} s")
    time.sleep(args.freeze_broker)
    os.kill(kafka, signal.SIGCONT)
    say("Kafka continued (SIGCONT)")
thread.join()
lines, took = written[0]
say(f"writer done: {N} events in {lines} lines, {took:.1f} s ({N / took:.0f} events/s)")

# Every open file read to its end and committed, then every event stored.
deadline = time.time() + 120 + 2 * args.freeze_broker
while True:
    files = status()["files"]
    lagging = [f for f in files if f["open"] and f["committed_offset"] < f["size"]]
    if not lagging and files or time.time() > deadline:
        break
    time.sleep(1)
rows = []
deadline = time.time() + 120
while time.time() < deadline:
    n = int(stack.sql(f"SELECT count(*) FROM log_events WHERE instance_id = '{INSTANCE}'")[0][0])
    if n >= N:
        break
    time.sleep(1)
time.sleep(3)
count, distinct, lo, hi = (int(x) for x in stack.sql(
    "SELECT count(*), count(DISTINCT seq), coalesce(min(seq),0), coalesce(max(seq),0) "
    f"FROM log_events WHERE instance_id = '{INSTANCE}'")[0])
numbers = {}
for k, c in stack.sql("SELECT substring(message from 'event ([0-9]+) ')::int, count(*) "
                      f"FROM log_events WHERE instance_id = '{INSTANCE}' GROUP BY 1"):
    numbers[int(k)] = int(c)
traces_whole = int(stack.sql(
    f"SELECT count(*) FROM log_events WHERE instance_id = '{INSTANCE}' "
    "AND message LIKE E'%failed\\n\\tat a.b.C.run(C.java:%)\\n\\tat a.b.D.call(D.java:7)'")[0][0])
missing = [k for k in range(N) if k not in numbers]
doubled = [k for k, c in numbers.items() if c > 1]
src = next(s for s in status()["sources"] if s["source"] == "file")
problems = []
if count != N or distinct != N or (lo, hi) != (1, N):
    problems.append(f"stored {count} rows, {distinct} distinct seq in {lo}..{hi}; expected {N} in 1..{N}")
if missing:
    problems.append(f"{len(missing)} events missing, first {missing[:5]}")
if doubled:
    problems.append(f"{len(doubled)} events stored twice or more, first {doubled[:5]}")
if traces_whole != len(range(0, N, TRACE_EVERY)):
    problems.append(f"{traces_whole} of {len(range(0, N, TRACE_EVERY))} stack traces stored whole")
if src["received"] != src["sent"] + src["rejected"] + src["dropped"]:
    problems.append(f"file source accounting does not close: {src}")
print(f"| written events (lines) | stored rows | distinct seq | seq range | missing | doubled | traces whole | SIGKILLs | rotations |")
print(f"| {N} ({lines}) | {count} | {distinct} | {lo}..{hi} | {len(missing)} | {len(doubled)} | {traces_whole} | {killed} | 2 rename, 1 copytruncate |")
say(f"this process's file source (since the last start): {src}")
for f in status()["files"]:
    say(f"  {f['path']}: size {f['size']}, committed {f['committed_offset']}, open {f['open']}, warning {f['last_warning']}")
if problems:
    for p in problems:
        say(f"FAIL: {p}")
    print("0 passed, 1 failed")
    sys.exit(1)
say("PASS: every event stored exactly once")
print("1 passed, 0 failed")
PY
