"""load-test.sh: drives the gateway through a ladder of rates against a running stack, prints a
line per second while it runs, checks every step exactly (per instance and seq), and writes a
report: `report.md` (the table), `timeline.csv` (one row per second) and `chart.svg` (target,
generated and stored rate, consumer lag, collector memory, over time)."""
import argparse
import os
import sys
import threading
import time
import urllib.request

import stack_client as stack
import svg_chart

LATENCY = "collector_event_latency_seconds"


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="load-test.sh", description=__doc__)
    ap.add_argument("--rates", default="1000,10000,50000,100000,200000",
                    help="events/s of each step, comma-separated")
    ap.add_argument("--step-seconds", type=int, default=20, help="length of each step")
    ap.add_argument("--catch-up-seconds", type=int, default=300,
                    help="longest wait after a step for everything sent to be stored")
    ap.add_argument("--memory-limit-mib", type=float, default=512,
                    help="the collector's LOGSTREAM_MEMORY_LIMIT_MB: a step whose peak is above it fails")
    ap.add_argument("--report-dir", default=None,
                    help="where the report goes (default: load-test-reports/<UTC time>)")
    args = ap.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",") if r]
    if not args.rates or min(args.rates) <= 0:
        ap.error("--rates: positive events/s, comma-separated")
    return args


def scrape(base):
    """A service's /metrics as {series: value} (series with their labels)."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            try:
                values[series] = float(value)
            except ValueError:
                pass
    return values


def total(values, name):
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def buckets(values, name):
    """A histogram's cumulative buckets {le: count} from scraped values."""
    out = {}
    for k, v in values.items():
        if k.startswith(name + "_bucket{"):
            le = k.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = v
    return out


def quantile(before, after, p):
    """The p-quantile (seconds) of what a histogram observed between two scrapes, linearly
    interpolated within its bucket as Prometheus' histogram_quantile does; None if empty."""
    count = after.get(float("inf"), 0) - before.get(float("inf"), 0)
    if count <= 0:
        return None
    lower, below = 0.0, 0.0
    for le in sorted(after):
        n = after[le] - before.get(le, 0)
        if n >= p * count:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (p * count - below) / max(n - below, 1e-9)
        lower, below = le, n
    return lower


def max_bound(before, after):
    """The upper bound (seconds) of the highest bucket that observed anything between two
    scrapes: the largest latency is at most this (inf: above the last bound); None if empty."""
    count = after.get(float("inf"), 0) - before.get(float("inf"), 0)
    if count <= 0:
        return None
    return min(le for le in after if after[le] - before.get(le, 0) >= count)


class Sampler(threading.Thread):
    """Once a second: generated and stored rates, consumer lag and collector memory, printed and
    kept for the timeline."""

    def __init__(self, started, step):
        super().__init__(daemon=True)
        self.started, self.step, self.rows = started, step, []
        self.stop = threading.Event()

    def snapshot(self):
        collector = scrape(stack.COLLECTOR)
        generated = sum(i["generated_total"] for i in stack.instances().values())
        return (time.time(), generated, total(collector, "log_events_stored_total"),
                total(collector, "kafka_consumer_lag"),
                total(collector, "process_resident_memory_bytes") / 2**20)

    def run(self):
        last = None
        while last is None and not self.stop.is_set():
            try:
                last = self.snapshot()
            except (stack.StackError, OSError) as e:
                print(f"[load-test] sample failed: {e}", flush=True)
                self.stop.wait(1.0)
        while last is not None and not self.stop.wait(max(0.0, last[0] + 1.0 - time.time())):
            try:
                now = self.snapshot()
            except (stack.StackError, OSError) as e:
                print(f"[load-test] sample failed: {e}", flush=True)
                continue
            dt = now[0] - last[0]
            row = {"t": now[0] - self.started, "target": self.step["target"],
                   "generated": (now[1] - last[1]) / dt, "stored": (now[2] - last[2]) / dt,
                   "lag": now[3], "rss_mib": now[4]}
            self.rows.append(row)
            print(f"[load-test] {row['target']:>7}/s  t={row['t']:5.0f}s  generated {row['generated']:8.0f}/s"
                  f"  stored {row['stored']:8.0f}/s  lag {row['lag']:8.0f}  collector {row['rss_mib']:6.1f} MiB",
                  flush=True)
            last = now


def run_step(rate, args, started, timeline):
    """One step: generation at `rate` for the step's length, then exact accounting."""
    step = {"target": rate}
    before = stack.instances()
    metrics0 = scrape(stack.COLLECTOR)
    sampler = Sampler(started, step)
    sampler.start()
    stack.call("POST", "/api/v1/generator/start", {"rate_per_second": rate})
    t0 = time.time()
    time.sleep(args.step_seconds)
    metrics1 = scrape(stack.COLLECTOR)
    t1 = time.time()
    after = {i["instance_id"]: i for i in stack.call("POST", "/api/v1/generator/stop")["instances"]}
    t_stop = time.time()
    runs = stack.run_accounting(before, after)
    counts = stack.wait_stored(runs, args.catch_up_seconds, time.time)
    caught = time.time() - t_stop
    # The latency of everything the step sent, including the catch-up.
    metrics2 = scrape(stack.COLLECTOR)
    sampler.stop.set()
    sampler.join()
    timeline.extend(sampler.rows)
    sent = sum(r[2] for r in runs.values())
    stored = sum(c[1] for c in counts.values())
    lat0, lat2 = buckets(metrics0, LATENCY), buckets(metrics2, LATENCY)
    step.update(
        generated=sum(r[1] - r[0] for r in runs.values()) / (t_stop - t0),
        stored_rate=(total(metrics1, "log_events_stored_total")
                     - total(metrics0, "log_events_stored_total")) / (t1 - t0),
        lag=total(metrics1, "kafka_consumer_lag"), sent=sent, stored=stored,
        lost=sent - stored, dup=sum(c[0] - c[1] for c in counts.values()), catch_up=caught,
        p50=quantile(lat0, lat2, 0.5), p99=quantile(lat0, lat2, 0.99), max=max_bound(lat0, lat2),
        rss=max((r["rss_mib"] for r in sampler.rows), default=0.0),
        problems=stack.discrepancies(runs, counts))
    if step["rss"] > args.memory_limit_mib:
        step["problems"].append(f"collector peak {step['rss']:.1f} MiB over the limit {args.memory_limit_mib:g} MiB")
    print(f"[load-test] step {rate}/s done: sent {sent}, stored {stored}, lost {sent - stored}, "
          f"duplicates {step['dup']}, caught up in {caught:.1f} s", flush=True)
    for problem in step["problems"]:
        print(f"[load-test]   {problem}", flush=True)
    return step


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def ms_bound(seconds):
    if seconds is None:
        return "-"
    return "> last bucket" if seconds == float("inf") else f"≤ {seconds * 1000:.0f}"


TABLE_HEAD = ("| target/s | generated/s | stored/s | lag at end | latency p50 ms | latency p99 ms "
              "| latency max ms | sent | stored | lost | duplicates | catch-up s | collector peak MiB |\n"
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def table(steps):
    lines = [TABLE_HEAD]
    for s in steps:
        lines.append(f"| {s['target']} | {s['generated']:.0f} | {s['stored_rate']:.0f} | {s['lag']:.0f} "
                     f"| {ms(s['p50'])} | {ms(s['p99'])} | {ms_bound(s['max'])} | {s['sent']} "
                     f"| {s['stored']} | {s['lost']} "
                     f"| {s['dup']} | {s['catch_up']:.1f} | {s['rss']:.1f} |")
    return "\n".join(lines)


def write_report(directory, steps, timeline, args):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "timeline.csv"), "w") as f:
        f.write("t_seconds,target_per_s,generated_per_s,stored_per_s,lag_records,collector_rss_mib\n")
        for r in timeline:
            f.write(f"{r['t']:.1f},{r['target']},{r['generated']:.0f},{r['stored']:.0f},{r['lag']:.0f},"
                    f"{r['rss_mib']:.1f}\n")
    svg_chart.write(os.path.join(directory, "chart.svg"), timeline)
    lossless = [s["target"] for s in steps
                if s["lost"] == 0 and s["dup"] == 0 and s["generated"] >= 0.98 * s["target"]]
    with open(os.path.join(directory, "report.md"), "w") as f:
        f.write(f"# Load test, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n\n"
                f"Steps of {args.step_seconds} s. Latency: event time to the commit of its row "
                f"(`{LATENCY}`), over everything the step sent.\n\n{table(steps)}\n\n"
                f"Highest step with zero loss and generation within 2% of target: "
                f"{max(lossless) if lossless else 'none'} events/s.\n\n![chart](chart.svg)\n")


def main(argv):
    args = parse_args(argv)
    directory = args.report_dir or os.path.join(
        "load-test-reports", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    steps, timeline, started = [], [], time.time()
    try:
        for rate in args.rates:
            steps.append(run_step(rate, args, started, timeline))
    except (stack.StackError, OSError) as e:
        print(f"[load-test] error: {e}", flush=True)
    finally:
        # Never leave the generators running.
        try:
            stack.call("POST", "/api/v1/generator/stop")
        except stack.StackError:
            pass
    print()
    print(table(steps))
    if steps:
        write_report(directory, steps, timeline, args)
        print(f"\n[load-test] report: {os.path.abspath(os.path.join(directory, 'report.md'))} "
              f"(chart.svg, timeline.csv beside it)")
    if not timeline:
        print("[load-test] no timeline was recorded")
    exact = (steps and timeline and len(steps) == len(args.rates)
             and all(not s["problems"] and s["dup"] == 0 for s in steps))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
