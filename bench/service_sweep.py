#!/usr/bin/python3
"""End-to-end service benchmark: mpcd on loopback, mpcctl bench (closed loop) against it.

For every --delays value (max_queue_delay_us) a fresh server is started; for every --concurrency
value one `mpcctl bench --json` runs against it. Each result is one JSON object per line on stdout
(or --out), with the server flags added, so tables and plots can be made from the file.

  bench/service_sweep.py --mpcd build/bin/mpcd --mpcctl build/bin/mpcctl \\
      --model cartpole --horizon 25 --concurrency 1,2,4,8,16,32,64,128,256 --delays 200 \\
      --duration 5 --out cartpole.jsonl

Note: the load generator runs on the same machine as the server, so on a small machine it competes
with the solver for the cores (as any loopback benchmark does).
"""

import argparse
import json
import re
import signal
import subprocess
import sys


def start_server(args, delay_us):
    flags = [args.mpcd, "--host=127.0.0.1", "--port=0", "--metrics_port=-1",
             "--backend=" + args.backend, "--threads=%d" % args.threads,
             "--max_batch_size=%d" % args.max_batch_size, "--max_queue_delay_us=%d" % delay_us]
    server = subprocess.Popen(flags, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    match = re.search(r"serving on (\S+) ", line)
    if match is None:
        server.kill()
        sys.exit("mpcd did not start: %r" % line)
    return server, match.group(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mpcd", required=True)
    parser.add_argument("--mpcctl", required=True)
    parser.add_argument("--model", default="cartpole")
    parser.add_argument("--horizon", type=int, default=25)
    parser.add_argument("--batch", type=int, default=1, help="problems per request")
    parser.add_argument("--state_dim", type=int, default=8)
    parser.add_argument("--control_dim", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--concurrency", default="1,2,4,8,16,32,64,128,256")
    parser.add_argument("--delays", default="200", help="max_queue_delay_us values")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0, help="mpcd --threads")
    parser.add_argument("--max_batch_size", type=int, default=256)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--repetitions", type=int, default=1,
                        help="runs per point; the summary on stderr shows their median")
    parser.add_argument("--out", default="-")
    args = parser.parse_args()

    out = sys.stdout if args.out == "-" else open(args.out, "w")
    for delay in [int(d) for d in args.delays.split(",")]:
        server, target = start_server(args, delay)
        try:
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                command = [args.mpcctl, "bench", "--target=" + target, "--json",
                           "--model=" + args.model, "--horizon=%d" % args.horizon,
                           "--batch=%d" % args.batch, "--iterations=%d" % args.iterations,
                           "--state_dim=%d" % args.state_dim,
                           "--control_dim=%d" % args.control_dim,
                           "--concurrency=%d" % concurrency, "--duration=%g" % args.duration,
                           "--warmup=%g" % args.warmup]
                reports = []
                for repetition in range(args.repetitions):
                    result = subprocess.run(command, capture_output=True, text=True)
                    if result.returncode != 0:
                        sys.exit("mpcctl bench failed: %s" % result.stderr)
                    report = json.loads(result.stdout)
                    report["repetition"] = repetition
                    report["server"].update({"max_queue_delay_us": delay,
                                             "threads": args.threads,
                                             "max_batch_size": args.max_batch_size})
                    out.write(json.dumps(report) + "\n")
                    out.flush()
                    reports.append(report)
                median = sorted(reports, key=lambda r: r["problems_per_s"])[len(reports) // 2]
                print("delay %6d us  concurrency %4d  %9.1f problems/s  p50 %7.3f ms  "
                      "p99 %7.3f ms  (median of %d)"
                      % (delay, concurrency, median["problems_per_s"],
                         1e3 * median["latency_s"]["p50"], 1e3 * median["latency_s"]["p99"],
                         len(reports)), file=sys.stderr)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
