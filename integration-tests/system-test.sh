#!/usr/bin/env bash
# End-to-end check against a running stack (scripts/stack.sh up, or docker compose up):
# generate through the gateway, stop, wait for the collector, and verify that PostgreSQL holds
# exactly the events the generators report as sent — per instance-id, the stored seq values of
# this run are exactly the acknowledged ones, with no gap and no duplicate.
#
#   integration-tests/system-test.sh [--rate N] [--duration S] [--kill-collector-at S[,S...]]
#                                    [--restart-after S]
#                                    [--cycle-second-collector N] [--zombie-collector]
#                                    [--stop-postgres-at S --postgres-down-for D]
#                                    [--freeze-broker-at S --broker-frozen-for D]
#                                    [--kill-broker-at S --broker-down-for D]
#                                    [--stop-redis-at S --redis-down-for D]
#                                    [--stop-s3-at S --s3-down-for D] [--archive DIR]
#                                    [--search URL/PREFIX]
#                                    [--formats '{"json": 70, "apache": 20, "syslog5424": 10}']
#                                    [--ingest-rate N]
#
# After every run the window aggregates (10 s tumbling and 300 s sliding by 60 s) of the run's
# time span must equal a recount of the stored events in log_events.
# --formats sends that format mix in the start request (default: the generator's, JSON only);
# every format must arrive in PostgreSQL parsed, so the seq accounting covers the parsers too.
# --kill-collector-at S sends SIGKILL to the native stack's collector S seconds into the run and
# restarts it (scripts/stack.sh start collector), to prove a crash neither loses nor doubles
# anything; a list (4,8,12) kills it at each of those times; --restart-after S (1) waits that
# long before each restart.
# --stop-postgres-at S --postgres-down-for D stops PostgreSQL S seconds into the run for D
# seconds (pg_ctlcluster): the collector must pause its partitions, lose nothing, double nothing,
# and keep its peak resident memory (VmHWM, printed) under LOGSTREAM_MEMORY_LIMIT_MB (512).
# --cycle-second-collector N starts a second collector in the same group and stops it (SIGTERM)
# N times during the run, so partitions move back and forth between members under load; the run
# fails when the second collector never stored anything.
# --zombie-collector starts, a fifth into the run, a second collector with the same static member
# id (group.instance.id) as the stack's: the broker hands the member's partitions to the newcomer
# and fences the old process, which must stop (fatal error, exit code != 0); at three fifths the
# stack's collector is started again under that id and fences the newcomer in turn. Whatever both
# stored while they overlapped, the offset fence in PostgreSQL must keep it exactly once.
# --freeze-broker-at S --broker-frozen-for D freezes the Kafka broker (SIGSTOP) for D seconds:
# the generator's circuit breaker must open and generation pause; after SIGCONT the breaker must
# close, generation return to the set rate, and the collector consume again by itself.
# --kill-broker-at S --broker-down-for D kills the broker (SIGKILL) and starts it again after D
# seconds (scripts/stack.sh start kafka): every record acknowledged before is on disk.
# --stop-redis-at S --redis-down-for D stops Redis for D seconds; the run then sets a global rate
# cap (global_rate_per_second = --rate): the generator's limiter must fall back to its local
# share while Redis is down (status rate_limiter "local"), the gateway's to local windows
# (gateway_rate_limiter_local 1), and both return to Redis after it is back.
# --stop-s3-at S --s3-down-for D stops the S3 server of the archive routes (s3s-fs, scripts/stack.sh
# stop s3) for D seconds: the archive's lag must grow while PostgreSQL goes on storing at about the
# generated rate. --archive DIR (an s3s-fs bucket directory and prefix, e.g.
# .stack/s3/logstream-archive/raw) checks, once everything is stored, that the archive's objects
# there hold exactly the stored events of the run, per instance and seq, no duplicate.
# --search URL/PREFIX (e.g. http://127.0.0.1:9200/logstream-it) checks the same of the search
# cluster's PREFIX-* indices.
# --ingest-rate N also sends N events/s into the ingest service for the whole run (half over
# HTTP, NDJSON and text lines in the four formats; half over syslog TCP): its instance is
# checked like a generator's, from its seq accounting (GET /api/v1/ingest/status, `kafka`):
# every seq Kafka acknowledged stored exactly once.
# Environment: GATEWAY_URL (http://127.0.0.1:8090), INGEST_URL (http://127.0.0.1:8082), DATABASE_URL
# (postgres://logstream:logstream@127.0.0.1:5432/logstream), CATCH_UP_SECONDS (180).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONPATH="$ROOT/integration-tests" exec python3 - "$ROOT" "$@" <<'PY'
import argparse, json, os, signal, subprocess, sys, threading, time
import stack_client as stack

root = sys.argv[1]
ap = argparse.ArgumentParser(prog="system-test.sh")
ap.add_argument("--rate", type=int, default=2000)
ap.add_argument("--duration", type=int, default=10)
ap.add_argument("--kill-collector-at", type=lambda s: [float(x) for x in s.split(",")], default=[])
ap.add_argument("--restart-after", type=float, default=1)
ap.add_argument("--stop-postgres-at", type=float, default=None)
ap.add_argument("--postgres-down-for", type=float, default=30)
ap.add_argument("--cycle-second-collector", type=int, default=0)
ap.add_argument("--zombie-collector", action="store_true")
ap.add_argument("--freeze-broker-at", type=float, default=None)
ap.add_argument("--broker-frozen-for", type=float, default=30)
ap.add_argument("--kill-broker-at", type=float, default=None)
ap.add_argument("--broker-down-for", type=float, default=10)
ap.add_argument("--stop-redis-at", type=float, default=None)
ap.add_argument("--redis-down-for", type=float, default=20)
ap.add_argument("--stop-s3-at", type=float, default=None)
ap.add_argument("--s3-down-for", type=float, default=30)
ap.add_argument("--archive", default=None)
ap.add_argument("--search", default=None)
ap.add_argument("--formats", type=json.loads, default=None)
ap.add_argument("--ingest-rate", type=int, default=0)
args = ap.parse_args(sys.argv[2:])
catch_up = int(os.environ.get("CATCH_UP_SECONDS", "180"))
def say(msg): print(f"[system-test] {msg}", flush=True)

def abort(msg):
    """Fails the run, stopping generation first so the next run starts from a quiet stack."""
    try:
        stack.call("POST", "/api/v1/generator/stop")
    except stack.StackError:
        pass
    stack.fail("system-test", msg)

def stack_errors(step):
    """Runs `step`; its StackError's message, or None."""
    try:
        step()
    except stack.StackError as e:
        return str(e)
    return None

def collector_env(**settings):
    """Environment for an extra collector: the stack's Kafka brokers."""
    env = {**os.environ, **settings}
    brokers = os.path.join(root, ".stack", "kafka.brokers")
    if os.path.exists(brokers):
        env["LOGSTREAM_KAFKA_BROKERS"] = open(brokers).read().strip()
    return env

try:
    binary = os.path.join(root, "target", os.environ.get("STACK_PROFILE", "release"), "logstream-collector")
    zombie = None
    outage, outcome = None, []
    stack.call("POST", "/api/v1/generator/stop")  # a quiet start, whatever ran before
    before = stack.instances()
    load = None
    if args.ingest_rate:
        before.update(stack.ingest_instance())
        load = stack.IngestLoad(args.ingest_rate, f"system-test-{int(time.time())}")
    body = {"rate_per_second": args.rate}
    if args.formats:
        body["formats"] = args.formats
    if args.stop_redis_at is not None:
        body["global_rate_per_second"] = args.rate
    say(f"start: {args.rate} events/s for {args.duration} s" + (f", formats {args.formats}" if args.formats else ""))
    window_since = int(time.time()) // 60 * 60
    stack.call("POST", "/api/v1/generator/start", body)
    started = time.time()
    if load is not None:
        load.start()
        say(f"ingest: {args.ingest_rate} events/s (HTTP and syslog TCP) for the whole run")
    collector_pid = lambda: stack.pid("collector")
    at = lambda t: time.sleep(max(0.0, t - (time.time() - started)))
    elapsed = lambda: time.time() - started
    if args.zombie_collector:
        at(args.duration / 5)
        original = collector_pid()
        env = collector_env(LOGSTREAM_COLLECTOR_LISTEN="127.0.0.1:8083", LOGSTREAM_GROUP_INSTANCE_ID="collector-1")
        log = open(os.path.join(root, ".stack", "logs", "collector-zombie.log"), "w")
        zombie = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        say(f"second collector under the stack's static member id started (pid {zombie.pid}) at {elapsed():.1f} s")
        code = stack.wait_exit(original, 60)
        if code is None:
            abort(f"the stack's collector (pid {original}) was not fenced within 60 s")
        say(f"the stack's collector (pid {original}) was fenced and stopped at {elapsed():.1f} s")
        at(args.duration * 3 / 5)
        stack.stack("start", "collector")
        say(f"the stack's collector started again under the same id at {elapsed():.1f} s")
        try:
            code = zombie.wait(timeout=60)
        except subprocess.TimeoutExpired:
            abort("the second collector was not fenced within 60 s of the first one's return")
        say(f"the second collector was fenced in turn (exit {code}) at {elapsed():.1f} s")
        if code == 0:
            abort("the fenced collector exited 0: fencing must not look like a clean stop")
    if args.freeze_broker_at is not None:
        at(args.freeze_broker_at)
        stack.broker_freeze(args.broker_frozen_for, args.rate, say)
    if args.kill_broker_at is not None:
        at(args.kill_broker_at)
        kafka = stack.pid("kafka")
        os.kill(kafka, signal.SIGKILL)
        say(f"SIGKILL broker (pid {kafka}) at {elapsed():.1f} s")
        time.sleep(args.broker_down_for)
        stack.stack("start", "kafka")
        say(f"broker started again at {elapsed():.1f} s")
    if args.stop_redis_at is not None:
        at(args.stop_redis_at)
        stack.redis_outage(args.redis_down_for, say)
    if args.stop_s3_at is not None:
        # On a thread of its own, so the collector can be killed while the S3 server is down.
        def s3_outage():
            at(args.stop_s3_at)
            stack.s3_outage(args.s3_down_for, args.rate, say)
        outage = threading.Thread(target=lambda: outcome.append(stack_errors(s3_outage)))
        outage.start()
    if args.stop_postgres_at is not None:
        time.sleep(args.stop_postgres_at)
        stack.postgres("stop")
        say(f"PostgreSQL stopped at {time.time() - started:.1f} s")
        time.sleep(args.postgres_down_for)
        try:
            paused = stack.metric("collector_consumer_paused")
            pauses = stack.metric("collector_consumer_pauses_total")
            say(f"collector while PostgreSQL is down: paused={paused:.0f}, pauses so far {pauses:.0f}")
        except OSError as e:
            say(f"collector metrics unreachable: {e}")
        stack.postgres("start")
        say(f"PostgreSQL started again at {time.time() - started:.1f} s")
    for kill_at in args.kill_collector_at:
        time.sleep(max(0.0, kill_at - (time.time() - started)))
        pid = collector_pid()
        say(f"SIGKILL collector (pid {pid}) at {time.time() - started:.1f} s")
        os.kill(pid, signal.SIGKILL)
        time.sleep(args.restart_after)
        stack.stack("start", "collector")
        say(f"collector restarted and ready at {time.time() - started:.1f} s")
    if args.cycle_second_collector:
        env = collector_env(LOGSTREAM_COLLECTOR_LISTEN="127.0.0.1:8084")
        env.pop("LOGSTREAM_GROUP_INSTANCE_ID", None)
        slot = args.duration / (args.cycle_second_collector * 2 + 1)
        second_stored_total = 0
        for cycle in range(args.cycle_second_collector):
            time.sleep(slot)
            log = open(os.path.join(root, ".stack", "logs", f"collector-2.{cycle}.log"), "w")
            second = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
            say(f"second collector started (pid {second.pid}) at {time.time() - started:.1f} s")
            time.sleep(slot)
            try:
                second_stored = stack.metric("log_events_stored_total", base="http://127.0.0.1:8084")
            except OSError as e:
                abort(f"second collector's metrics unreachable: {e}")
            second.send_signal(signal.SIGTERM)
            code = second.wait(timeout=60)
            say(f"second collector stopped (exit {code}) at {time.time() - started:.1f} s, "
                f"after storing {second_stored:.0f} events (more on its way out)")
            second_stored_total += second_stored
        if second_stored_total == 0:
            abort("the second collector never stored anything: no partitions moved to it")
    if outage is not None:
        outage.join()
        if outcome[0]:
            abort(outcome[0])
    time.sleep(max(0.0, args.duration - (time.time() - started)))
    after = {i["instance_id"]: i for i in stack.call("POST", "/api/v1/generator/stop")["instances"]}
    if load is not None:
        load.stop()
        after.update(stack.ingest_instance())
        say(f"ingest load stopped ({load.http_refused} HTTP requests refused or failed)")
    say(f"stopped after {time.time() - started:.1f} s")
    runs = stack.run_accounting(before, after)
    if zombie is not None:
        conflicts = stack.metric("collector_offset_conflicts_total")
        say(f"the stack's collector has had {conflicts:.0f} batches refused by the offset fence since its return")
    if not runs:
        abort("no instance generated anything")
    total = sum(r[2] for r in runs.values())
    say(f"generators report {total} sent, {sum(r[3] for r in runs.values())} failed")
    counts = stack.wait_stored(runs, catch_up, time.time)
    say(f"stored {sum(c[0] for c in counts.values())} of {total} after {time.time() - started:.1f} s")
    for iid, (lo, hi, sent, failed) in runs.items():
        say(f"{iid}: seq {lo + 1}..{hi}: sent {sent}, failed {failed}, stored {counts[iid][0]} ({counts[iid][1]} distinct)")
    problems = stack.discrepancies(runs, counts)
    if args.archive:
        problems += stack.archive_discrepancies(os.path.join(root, args.archive), runs, catch_up, say)
    if args.search:
        url, prefix = args.search.rsplit("/", 1)
        problems += stack.search_discrepancies(url, prefix, runs, catch_up, say)
    windows = stack.window_discrepancies(window_since)
    problems += windows
    if not windows:
        say("window aggregates equal a recount of log_events (10 s tumbling, 300 s sliding)")
    if args.stop_postgres_at is not None:
        limit = int(os.environ.get("LOGSTREAM_MEMORY_LIMIT_MB", "512"))
        peak = stack.peak_rss_mb(collector_pid())
        say(f"collector peak resident memory {peak:.1f} MiB (limit {limit} MiB)")
        if peak >= limit:
            problems.append(f"collector peak RSS {peak:.1f} MiB is over the limit {limit} MiB")
except stack.StackError as e:
    abort(str(e))
if problems:
    for p in problems: say(p)
    abort("stored != sent")
say("sent == stored, exactly, per instance and seq")
print("1 passed, 0 failed")
PY
