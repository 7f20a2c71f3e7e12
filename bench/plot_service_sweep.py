#!/usr/bin/python3
"""Plots service_sweep.py results: throughput and p99 latency against concurrency (one line per
JSONL file, e.g. one per model or per max_queue_delay_us), with the solver-only throughput of the
same problems as a dashed line when given.

  bench/plot_service_sweep.py --out docs/service_sweep.png \\
      --series "cartpole T=25=cartpole.jsonl" --series "linear n8 m4 T30=linear.jsonl" \\
      --solver_only "cartpole T=25=22300" --solver_only "linear n8 m4 T30=7060"
"""

import argparse
import collections
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def load(path):
    """{(max_queue_delay_us, concurrency): median report over repetitions}."""
    runs = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.strip():
                report = json.loads(line)
                key = (report["server"]["max_queue_delay_us"], report["concurrency"])
                runs[key].append(report)
    return {key: sorted(reports, key=lambda r: r["problems_per_s"])[len(reports) // 2]
            for key, reports in runs.items()}


def labelled(values):
    pairs = []
    for value in values:
        label, _, rest = value.rpartition("=")
        if not label:
            raise SystemExit("expected LABEL=VALUE, got %r" % value)
        pairs.append((label, rest))
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", action="append", required=True, help="LABEL=FILE.jsonl")
    parser.add_argument("--solver_only", action="append", default=[],
                        help="LABEL=PROBLEMS_PER_S (same LABEL as a series)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    solver_only = {label: float(value) for label, value in labelled(args.solver_only)}
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, path in labelled(args.series):
        points = load(path)
        for delay in sorted({d for d, _ in points}):
            concurrency = sorted(c for d, c in points if d == delay)
            reports = [points[(delay, c)] for c in concurrency]
            name = "%s, delay %d µs" % (label, delay)
            line, = throughput.plot(concurrency, [r["problems_per_s"] for r in reports], "o-",
                                    label=name)
            latency.plot(concurrency, [1e3 * r["latency_s"]["p99"] for r in reports], "o-",
                         color=line.get_color(), label=name)
            if label in solver_only:
                throughput.axhline(solver_only[label], linestyle="--", color=line.get_color(),
                                   linewidth=1, label="%s, solver only" % label)
                throughput.axhline(0.7 * solver_only[label], linestyle=":",
                                   color=line.get_color(), linewidth=1,
                                   label="%s, 70%% of solver only" % label)
    for axis in (throughput, latency):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients (closed loop)")
        axis.grid(True, which="both", alpha=0.3)
    throughput.set_ylabel("problems / s")
    throughput.set_title("End-to-end throughput")
    latency.set_yscale("log")
    latency.set_ylabel("p99 latency (ms)")
    latency.set_title("p99 latency")
    throughput.legend(fontsize=7)
    latency.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()
