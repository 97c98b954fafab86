#!/usr/bin/env bash
# Sampling under lag, on a running native stack (scripts/stack.sh up). The collector is stopped
# while the generator sends 20,000 events/s for 10 s, then started again with
# LOGSTREAM_SAMPLE_LAG_SECONDS=5 and LOGSTREAM_SAMPLE_KEEP_RATIO=0.1: it finds the records far
# behind, so it stores only a tenth of the raw DEBUG and INFO rows while it catches up; then
# 2,000 events/s for 10 s arrive while it keeps up, and sampling must stop. Checked exactly:
#   - per instance and seq: stored (no duplicate) + sampled out == sent;
#   - every WARN, ERROR and FATAL event stored;
#   - the 10 s windows (what /api/v1/stats reads) count every event sent, sampled or not;
#   - sent == stored + sampled out + dead-lettered + filtered, and consumed == that + the
#     records read again only to rebuild the detectors (the collector's counters);
#   - log_events_sampled_out_total == the log_events_sampled_out table's growth;
#   - nothing sampled out of the second run, collector_sampling_active back at 0.
# The collector is restarted without sampling at the end.
#
#   integration-tests/sampling-test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONPATH="$ROOT/integration-tests" exec python3 - <<'PY'
import os, time
import stack_client as stack

LAG_SECONDS, RATIO = 5, 0.1
problems = []

def say(msg):
    print(f"[sampling] {msg}", flush=True)

def sampled_out():
    return {iid: int(n) for iid, n in stack.sql("SELECT instance_id, events FROM log_events_sampled_out")}

def generate(rate, seconds):
    before = stack.instances()
    stack.call("POST", "/api/v1/generator/start", {"rate_per_second": rate, "duration_seconds": seconds})
    time.sleep(seconds + 1)
    after = {i["instance_id"]: i for i in stack.call("POST", "/api/v1/generator/stop")["instances"]}
    return stack.run_accounting(before, after)

def stored(runs):
    """Per instance: (rows, distinct seq) stored within the run's seq range."""
    out = {}
    for iid, (lo, hi, _s, _f) in runs.items():
        row = stack.sql("SELECT count(*), count(DISTINCT seq) FROM log_events "
                        f"WHERE instance_id = '{iid}' AND seq > {lo} AND seq <= {hi}")[0]
        out[iid] = (int(row[0]), int(row[1]))
    return out

def level_rows(runs, levels):
    where = " OR ".join(f"(instance_id = '{iid}' AND seq > {lo} AND seq <= {hi})" for iid, (lo, hi, _s, _f) in runs.items())
    in_levels = ",".join(f"'{l}'" for l in levels)
    return int(stack.sql(f"SELECT count(*) FROM log_events WHERE ({where}) AND level IN ({in_levels})")[0][0])

def window_counts(since, until):
    rows = stack.sql("SELECT level, sum(event_count) FROM log_window_aggregates WHERE window_seconds = 10 "
                     f"AND window_start >= to_timestamp({since}) AND window_start < to_timestamp({until}) GROUP BY level")
    return {level: int(n) for level, n in rows}

def caught_up(timeout):
    deadline = time.time() + timeout
    while stack.metric("kafka_consumer_lag") > 0 and time.time() < deadline:
        time.sleep(1)
    return stack.metric("kafka_consumer_lag") == 0

try:
    # What earlier runs left unconsumed would be sampled here too.
    if not caught_up(120):
        problems.append("the collector had not caught up before the test")
    stack.stack("stop", "collector")
    # Start on a 10 s boundary, so the 10 s windows from here hold only this test's events.
    time.sleep(10 - time.time() % 10 + 0.2)
    since = int(time.time()) // 10 * 10
    say("collector stopped; 20,000 events/s for 10 s")
    behind = generate(20_000, 10)
    time.sleep(LAG_SECONDS)
    sampled_before = sampled_out()
    os.environ.update(LOGSTREAM_SAMPLE_LAG_SECONDS=str(LAG_SECONDS), LOGSTREAM_SAMPLE_KEEP_RATIO=str(RATIO))
    stack.stack("start", "collector")
    say(f"collector started with sampling (lag above {LAG_SECONDS} s, keep {RATIO})")
    deadline = time.time() + 120
    while True:
        stored_now = stored(behind)
        grown = {iid: sampled_out().get(iid, 0) - sampled_before.get(iid, 0) for iid in behind}
        if all(stored_now[iid][1] + grown[iid] >= r[2] for iid, r in behind.items()):
            break
        if time.time() > deadline:
            raise stack.StackError("the collector did not catch up within 120 s")
        time.sleep(1)
    say("caught up; 2,000 events/s for 10 s while keeping up")
    sampled_mid = sampled_out()
    keeping_up = generate(2_000, 10)
    stack.wait_stored(keeping_up, 60, time.time)
    until = time.time() + 1
    sampled_after = sampled_out()

    for label, runs, before, after in (("behind", behind, sampled_before, sampled_mid),
                                       ("keeping up", keeping_up, sampled_mid, sampled_after)):
        counts = stored(runs)
        for iid, (lo, hi, sent, failed) in runs.items():
            n, distinct = counts[iid]
            out = after.get(iid, 0) - before.get(iid, 0)
            say(f"{label}: {iid}: sent {sent}, stored {distinct}, sampled out {out}")
            if n != distinct:
                problems.append(f"{label}: {iid}: {n - distinct} duplicate seq stored")
            if distinct + out != sent:
                problems.append(f"{label}: {iid}: stored {distinct} + sampled out {out} != sent {sent}")
            if label == "behind" and out == 0:
                problems.append("nothing was sampled out while the collector was behind")
            if label == "keeping up" and out != 0:
                problems.append(f"{out} events sampled out while the collector kept up")
    sent_total = sum(r[2] for r in behind.values()) + sum(r[2] for r in keeping_up.values())
    windows = window_counts(since, until)
    say(f"10 s windows since the start: {sum(windows.values())} events {windows}; sent {sent_total}")
    if sum(windows.values()) != sent_total:
        problems.append(f"windows count {sum(windows.values())} events, {sent_total} were sent")
    high = ("WARN", "ERROR", "FATAL")
    high_rows = level_rows(behind, high) + level_rows(keeping_up, high)
    high_windows = sum(windows.get(l, 0) for l in high)
    say(f"WARN and above: {high_rows} rows stored, {high_windows} counted in windows")
    if high_rows != high_windows:
        problems.append(f"WARN and above: {high_rows} stored but {high_windows} counted")
    consumed = stack.metric("log_events_consumed_total")
    stored = stack.metric("log_events_stored_total")
    out = stack.metric("log_events_sampled_out_total")
    dlq = stack.metric("log_events_dlq_total")
    filtered = stack.metric("log_events_filtered_total")
    replayed = stack.metric("collector_records_replayed_total")
    duplicates = stack.metric("collector_duplicates_skipped_total")
    say(f"collector counters since its start: consumed {consumed:.0f} = stored {stored:.0f} + sampled out {out:.0f} "
        f"+ dead-lettered {dlq:.0f} + filtered {filtered:.0f}, + read again only for the detectors "
        f"{replayed:.0f} + duplicates skipped {duplicates:.0f}")
    # Records skipped while a partition is read again (a gap, a rebalance) count as consumed
    # only, so consumed can be higher; never lower.
    if consumed < stored + out + dlq + filtered + replayed + duplicates:
        problems.append("the collector counted more than it consumed")
    if stored + out + dlq + filtered != sent_total:
        problems.append(f"stored + sampled out + dead-lettered + filtered != {sent_total} sent")
    grown = sum(sampled_after.values()) - sum(sampled_before.values())
    if out != grown:
        problems.append(f"log_events_sampled_out_total {out:.0f} but the table grew by {grown}")
    if stack.metric("collector_sampling_active") != 0:
        problems.append("collector_sampling_active still 1 after the collector caught up")
except stack.StackError as e:
    problems.append(str(e))
finally:
    os.environ.pop("LOGSTREAM_SAMPLE_LAG_SECONDS", None)
    os.environ.pop("LOGSTREAM_SAMPLE_KEEP_RATIO", None)
    stack.stack("stop", "collector")
    stack.stack("start", "collector")

for p in problems:
    say(f"FAIL: {p}")
print(f"{0 if problems else 1} passed, {1 if problems else 0} failed")
raise SystemExit(1 if problems else 0)
PY
