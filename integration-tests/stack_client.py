"""Helpers shared by the end-to-end scripts (system-test.sh, load-test.sh): calls to the gateway
and collector, PostgreSQL queries through psql, and exact per-instance/seq accounting."""
import json
import signal
import time
import os
import subprocess
import sys
import urllib.error
import urllib.request

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8090")
INGEST = os.environ.get("INGEST_URL", "http://127.0.0.1:8082")
COLLECTOR = os.environ.get("COLLECTOR_URL", "http://127.0.0.1:8081")
DATABASE = os.environ.get("DATABASE_URL", "postgres://logstream:logstream@127.0.0.1:5432/logstream")


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


def ingest_instance(timeout=30):
    """The ingest service's seq accounting in the generators' instance form, once nothing it
    handed to Kafka is in flight: {instance_id: {generated_total (the last seq given),
    sent_total (acknowledged), failed_total (failed or not handed), in_flight}}."""
    def snapshot():
        with urllib.request.urlopen(INGEST + "/api/v1/ingest/status", timeout=10) as r:
            return json.load(r)

    def settled(status):
        streams = sum(src["connections"] for src in status["sources"])
        return status["kafka"]["in_flight"] == 0 and streams == 0

    # Settled: nothing in flight, no syslog connection still open (its last frames may not be
    # read yet), and the last seq the same half a second later.
    deadline = time.time() + timeout
    status = snapshot()
    while time.time() < deadline:
        time.sleep(0.5)
        again = snapshot()
        if settled(status) and settled(again) and again["kafka"]["seq_last"] == status["kafka"]["seq_last"]:
            break
        status = again
    k = status["kafka"]
    return {status["instance_id"]: {"generated_total": k["seq_last"], "sent_total": k["acknowledged"],
                                    "failed_total": k["failed"] + k["not_handed"],
                                    "in_flight": k["in_flight"]}}


class IngestLoad:
    """Events into the ingest service at `rate` per second while running, as real senders would:
    half over HTTP (NDJSON objects and text lines in the four formats, read with format=auto),
    half over one syslog TCP connection (octet-counted RFC 5424)."""

    def __init__(self, rate, tag):
        import threading
        self.rate, self.tag, self.stop_flag = rate, tag, threading.Event()
        self.http_refused = 0
        self.threads = [threading.Thread(target=self._http, daemon=True),
                        threading.Thread(target=self._tcp, daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=60)
        if any(t.is_alive() for t in self.threads):
            raise StackError("the ingest load did not stop within 60 s")

    def _ticks(self):
        per_tick = max(1, self.rate // 20)  # each half, ten times a second
        n = 0
        while not self.stop_flag.is_set():
            yield n, per_tick
            n += per_tick
            self.stop_flag.wait(0.1)

    def _http(self):
        now = lambda: time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        for n, count in self._ticks():
            lines = []
            for i in range(n, n + count):
                kind = i % 4
                if kind == 0:
                    lines.append(json.dumps({"message": f"{self.tag} http json {i}", "service": "ingest-load", "level": "info"}))
                elif kind == 1:
                    lines.append(f'10.1.0.{i % 250} - - [{now()}] "GET /load/{i} HTTP/1.1" 200 5 "-" "{self.tag}"')
                elif kind == 2:
                    lines.append(time.strftime("%b %d %H:%M:%S", time.gmtime()) + f" loadhost ingest-load[1]: {self.tag} bsd {i}")
                else:
                    lines.append(f"plain {self.tag} WARN line {i}")
            # text/plain: each line read in whatever format it is (format=auto).
            req = urllib.request.Request(INGEST + "/api/v1/logs", data="\n".join(lines).encode(), method="POST",
                                         headers={"content-type": "text/plain"})
            try:
                urllib.request.urlopen(req, timeout=60).read()
            except (urllib.error.HTTPError, OSError):
                self.http_refused += 1

    def _tcp(self):
        import socket
        sock = None
        for n, count in self._ticks():
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            frames = []
            for i in range(n, n + count):
                msg = f"<14>1 {stamp} loadhost ingest-load - - - {self.tag} tcp {i}".encode()
                frames.append(str(len(msg)).encode() + b" " + msg)
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", int(os.environ.get("SYSLOG_PORT", "5514"))))
                sock.sendall(b"".join(frames))
            except OSError:
                sock = None
        if sock is not None:
            sock.close()


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


def window_discrepancies(since_epoch):
    """Window aggregates starting at `since_epoch` (a minute boundary) or later, against a recount
    of the stored events (all of them there once the collector has caught up, so open windows
    compare too): 10 s tumbling windows and 300 s windows sliding by 60 s. Returns problems."""
    problems = []
    for size, slide in ((10, 10), (300, 60)):
        rows = sql(f"""
            WITH agg AS (
                SELECT window_start, service, level, event_count AS n FROM log_window_aggregates
                WHERE window_seconds = {size} AND slide_seconds = {slide}
                  AND window_start >= to_timestamp({since_epoch})),
            raw AS (
                SELECT w.start AS window_start, e.service, e.level, count(*) AS n
                FROM log_events e,
                     LATERAL (SELECT to_timestamp(floor(extract(epoch FROM e.event_time) / {slide}) * {slide}
                                                  - k * {slide}) AS start
                              FROM generate_series(0, {size // slide - 1}) AS k) w
                WHERE e.event_time >= to_timestamp({since_epoch})
                GROUP BY 1, 2, 3)
            SELECT count(*) FILTER (WHERE agg.n IS DISTINCT FROM raw.n), count(*),
                   coalesce(sum(agg.n), 0), coalesce(sum(raw.n), 0)
            FROM agg JOIN raw USING (window_start, service, level)
            UNION ALL
            SELECT count(*), 0, 0, 0 FROM raw LEFT JOIN agg USING (window_start, service, level)
            WHERE agg.n IS NULL AND raw.window_start >= to_timestamp({since_epoch})""")
        (bad, compared, agg_total, raw_total), (missing, _, _, _) = rows
        print(f"[windows] {size} s/{slide} s: {compared} windows compared, aggregates {agg_total}"
              f" = recount {raw_total}? mismatched {bad}, missing {missing}", flush=True)
        if int(bad) or int(missing) or int(compared) == 0:
            problems.append(f"{size} s/{slide} s windows: {bad} differ from a recount, {missing} missing,"
                            f" {compared} compared")
    return problems


def postgres(action):
    """Stops or starts the machine's PostgreSQL cluster (pg_ctlcluster)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    out = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
                         + (["-m", "fast"] if action == "stop" else []),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise StackError(f"pg_ctlcluster {action}: {out.stderr.strip()}")


def peak_rss_mb(pid):
    """A process's peak resident set size (VmHWM) in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise StackError(f"no VmHWM for pid {pid}")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stack(*args):
    """Runs scripts/stack.sh with these arguments (e.g. "start", "kafka")."""
    out = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), *args], capture_output=True, text=True,
                         env={**os.environ, "STACK_PROMETHEUS": "0"})
    if out.returncode != 0:
        raise StackError(f"stack.sh {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")


def pid(name):
    """The pid of a process the native stack started (.stack/NAME.pid)."""
    with open(os.path.join(ROOT, ".stack", f"{name}.pid")) as f:
        return int(f.read())


def running(pid_):
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid_}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_exit(pid_, timeout):
    """Waits until a process (not necessarily our child) is gone; True, or None on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not running(pid_):
            return True
        time.sleep(0.2)
    return None


def generator_status():
    return call("GET", "/api/v1/generator/status")


def broker_freeze(frozen_for, rate, say):
    """Freezes the Kafka broker (SIGSTOP) for `frozen_for` seconds during generation: the
    circuit breaker must open and generation pause (only the half-open probes go out), then after
    SIGCONT the breaker must close and generation come back to `rate`."""
    kafka = pid("kafka")
    os.kill(kafka, signal.SIGSTOP)
    frozen = time.time()
    say(f"broker frozen (SIGSTOP pid {kafka})")
    opened_after, generated_at_open = None, None
    try:
        while time.time() - frozen < frozen_for:
            st = generator_status()
            if opened_after is None and st["circuit_breaker_state"] == "open":
                opened_after, generated_at_open = time.time() - frozen, st["generated_total"]
            time.sleep(0.5)
        generated_at_thaw = generator_status()["generated_total"]
    finally:
        os.kill(kafka, signal.SIGCONT)
    thawed = time.time()
    say(f"broker thawed (SIGCONT) after {thawed - frozen:.1f} s")
    if opened_after is None:
        raise StackError("the circuit breaker did not open while the broker was frozen")
    open_for = thawed - frozen - opened_after
    while_open = generated_at_thaw - generated_at_open
    say(f"breaker open {opened_after:.1f} s into the freeze; {while_open} events generated in the "
        f"{open_for:.1f} s it was open (half-open probes at most 10/s)")
    if while_open > 10 * open_for + rate:
        raise StackError(f"generation did not pause while the breaker was open: {while_open} events")
    closed_after = None
    while time.time() - thawed < 60:
        st = generator_status()
        if st["circuit_breaker_state"] == "closed":
            closed_after = time.time() - thawed
            break
        time.sleep(0.2)
    if closed_after is None:
        raise StackError("the circuit breaker did not close within 60 s of the broker's return")
    g0, t0 = st["generated_total"], time.time()
    time.sleep(5)
    g1, t1 = generator_status()["generated_total"], time.time()
    achieved = (g1 - g0) / (t1 - t0)
    say(f"breaker closed {closed_after:.1f} s after SIGCONT; rate over the next 5 s: {achieved:.0f}/s (set {rate}/s)")
    if achieved < 0.9 * rate:
        raise StackError(f"generation came back at {achieved:.0f}/s, under 90% of the set {rate}/s")


def limiter_modes():
    """(generator limiter modes, gateway_rate_limiter_local) after one call through the gateway."""
    modes = sorted({i.get("rate_limiter") for i in generator_status()["instances"]} - {None})
    return modes, metric("gateway_rate_limiter_local", base=GATEWAY)


def redis_outage(down_for, say):
    """Stops Redis for `down_for` seconds: the generator's global limiter and the gateway's
    limiter must fall back to local limits while it is down and return to Redis afterwards."""
    stack("stop", "redis")
    stopped = time.time()
    say("Redis stopped")
    time.sleep(min(5.0, down_for))
    modes, gateway_local = limiter_modes()
    say(f"while Redis is down: generator limiter {modes}, gateway_rate_limiter_local {gateway_local:.0f}")
    if modes != ["local"] or gateway_local != 1:
        raise StackError("the rate limiters did not fall back to local limits while Redis was down")
    time.sleep(max(0.0, down_for - (time.time() - stopped)))
    stack("start", "redis")
    say(f"Redis started again after {time.time() - stopped:.1f} s")
    # Redis comes back empty (no persistence): the generators register again within 5 s, and
    # until then the gateway finds none.
    deadline = time.time() + 30
    while True:
        time.sleep(2)
        try:
            modes, gateway_local = limiter_modes()
        except StackError as e:
            modes, gateway_local = [str(e)], None
        if modes == ["redis"] and gateway_local == 0:
            break
        if time.time() > deadline:
            raise StackError(f"the rate limiters did not return to Redis: generator {modes}, "
                             f"gateway_rate_limiter_local {gateway_local:.0f}")
    say(f"back on Redis: generator limiter {modes}, gateway_rate_limiter_local {gateway_local:.0f}")


def s3_outage(down_for, rate, say):
    """Stops the S3 server (s3s-fs) for `down_for` seconds: the archive must pause (its lag
    grows) while PostgreSQL storage goes on at about the generated rate."""
    stack("stop", "s3")
    stopped = time.time()
    say("S3 server stopped")
    lag = 0.0
    while time.time() - stopped < down_for:
        time.sleep(1)
        try:
            lag = max(lag, metric("sink_lag_seconds"))
        except OSError:
            pass  # the collector restarting
    (rows,), = sql("SELECT count(*) FROM log_events WHERE received_at >= "
                   f"to_timestamp({stopped + 2}) AND received_at < to_timestamp({time.time()})")
    stack("start", "s3")
    span = time.time() - stopped - 2
    say(f"S3 server started again after {time.time() - stopped:.1f} s; meanwhile the archive's lag "
        f"reached {lag:.1f} s at most and PostgreSQL stored {int(rows)} events ({int(rows) / span:.0f}/s)")
    if lag < min(5.0, down_for / 2):
        raise StackError(f"the archive's lag was only {lag:.1f} s with the S3 server down")
    if int(rows) < 0.5 * rate * span:
        raise StackError(f"PostgreSQL storage slowed down while S3 was down: {int(rows)} events in {span:.0f} s")


def archived(directory, runs):
    """Per instance of `runs`: the seq values of the run in the archive's objects under
    `directory` (an s3s-fs bucket directory and prefix: zstd NDJSON files), and the objects that
    could not be read yet (an upload in progress)."""
    seqs = {iid: [] for iid in runs}
    unreadable = 0
    for path, _dirs, files in os.walk(directory):
        for name in files:
            if name.startswith(".") or not name.endswith(".ndjson.zst"):
                continue
            out = subprocess.run(["zstd", "-dcq", os.path.join(path, name)], capture_output=True)
            if out.returncode != 0:
                unreadable += 1
                continue
            for line in out.stdout.splitlines():
                kafka = json.loads(line)["kafka"]
                iid = kafka.get("instance_id")
                if iid in seqs and kafka.get("seq", 0) > runs[iid][0]:
                    seqs[iid].append(kafka["seq"])
    return seqs, unreadable


def archive_discrepancies(directory, runs, timeout, say):
    """Waits until the archive under `directory` holds exactly the run's stored events, per
    instance and seq (or `timeout` seconds pass); returns the problems (empty: exact)."""
    return copy_discrepancies("archive", "archived", lambda: archived(directory, runs), runs, timeout, say)


def indexed(url, prefix, runs):
    """Per instance of `runs`: the seq values of the run in the search cluster's `prefix-*`
    indices (scrolled after a refresh)."""
    def call(method, path, body=None):
        req = urllib.request.Request(f"{url}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)
    call("POST", f"/{prefix}-*/_refresh")
    seqs = {iid: [] for iid in runs}
    should = [{"bool": {"filter": [{"term": {"kafka.instance_id": iid}},
                                   {"range": {"kafka.seq": {"gt": lo}}}]}}
              for iid, (lo, _hi, _s, _f) in runs.items()]
    page = call("POST", f"/{prefix}-*/_search?scroll=1m",
                {"size": 10000, "_source": ["kafka.instance_id", "kafka.seq"],
                 "query": {"bool": {"should": should, "minimum_should_match": 1}}})
    while page["hits"]["hits"]:
        for hit in page["hits"]["hits"]:
            kafka = hit["_source"]["kafka"]
            seqs[kafka["instance_id"]].append(kafka["seq"])
        page = call("POST", "/_search/scroll", {"scroll": "1m", "scroll_id": page["_scroll_id"]})
    return seqs


def search_discrepancies(url, prefix, runs, timeout, say):
    """Waits until the search cluster's `prefix-*` indices hold exactly the run's stored events,
    per instance and seq (or `timeout` seconds pass); returns the problems (empty: exact)."""
    def read():
        try:
            return indexed(url, prefix, runs), 0
        except (OSError, KeyError) as e:
            say(f"search cluster: {e}")
            return {iid: [] for iid in runs}, 0
    return copy_discrepancies("search", "indexed", read, runs, timeout, say)


def copy_discrepancies(name, verb, read, runs, timeout, say):
    """Waits until `read()` (seq values per instance of `runs`, and how many parts could not be
    read yet) gives exactly the run's stored events per instance and seq, or `timeout` seconds
    pass; returns the problems (empty: exact). `name` and `verb` word the report."""
    stored = {iid: sorted(int(s) for (s,) in sql(
        f"SELECT seq FROM log_events WHERE instance_id = '{iid}' AND seq > {lo}"))
        for iid, (lo, _hi, _s, _f) in runs.items()}
    deadline = time.time() + timeout
    while True:
        seqs, unreadable = read()
        if all(sorted(seqs[iid]) == stored[iid] for iid in runs) and not unreadable:
            say(f"{name}: {sum(len(v) for v in seqs.values())} events, equal to the stored ones per instance and seq")
            return []
        if time.time() > deadline:
            break
        time.sleep(3)
    problems = [f"{name}: {unreadable} objects unreadable"] if unreadable else []
    for iid in runs:
        got, want = seqs[iid], stored[iid]
        dup = len(got) - len(set(got))
        missing = len(set(want) - set(got))
        extra = len(set(got) - set(want))
        if dup or missing or extra:
            problems.append(f"{name} {iid}: {dup} duplicates, {missing} stored but not {verb}, {extra} {verb} but not stored")
    return problems