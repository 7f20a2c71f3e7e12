#!/usr/bin/python3
"""The training step of bench/training_step.py (cartpole T=25 or pendulum T=20, fixed 10
iterations) through two copies of the Python client against one mpcd, one step of each in turn, so
that both see the same load (on a shared machine the load drifts by more than the difference
measured). Each client runs in a process of its own; with --fresh-workers, a new pair of processes
for every (problem, layout, batch) point, as a training loop runs one configuration (a process's
heap remembers what earlier configurations allocated).

Typical use: the client before a change (from git) against this checkout's:
  mkdir -p /tmp/base && git archive 3a4a548 client/python | tar -x -C /tmp/base
  /usr/bin/python3 bench/training_step_ab.py --mpcd build/bin/mpcd \\
      --baseline-client-dir /tmp/base/client/python --steps 7 \\
      --out bench/results/training_step_ab.jsonl

Each output row: problem, layout, B, the median load average, and per client the median step, the
server's solver time for it and the client+transport share (step - solver - queue) / step.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def worker(client_dir, target):
    """Runs steps read from stdin ("problem layout B") with the client in client_dir; prints the step,
    solver and queue seconds of each."""
    sys.argv = [sys.argv[0], "--client-dir", client_dir]  # read by training_step's import
    sys.path[:0] = [HERE]
    import torch
    import training_step
    import mpcd
    torch.set_num_threads(1)
    client = mpcd.Client(target, timeout=600)
    client.models_by_name = {m.name: m for m in client.models()}
    for line in sys.stdin:
        problem, layout, batch = line.split()
        print("%r %r %r" % training_step.one_step(problem, "fixed10", int(batch), layout,
                                                  client)[:3], flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", default=os.path.join(REPO, "build", "bin", "mpcd"))
    parser.add_argument("--baseline-client-dir", required=True)
    parser.add_argument("--client-dir", default=os.path.join(REPO, "client", "python"))
    parser.add_argument("--problems", default="cartpole")
    parser.add_argument("--layouts", default="batched,shared")
    parser.add_argument("--batches", default="1,16,64,256,1024")
    parser.add_argument("--steps", type=int, default=7, help="timed steps per client and point")
    parser.add_argument("--baseline-server-flags",
                        help="serve the baseline client from a second mpcd with these extra flags "
                        "(e.g. to compare server settings with one client: --baseline-client-dir "
                        "client/python)")
    parser.add_argument("--fresh-workers", action="store_true",
                        help="new client processes for every (problem, layout, batch) point")
    parser.add_argument("--out", default="-")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    sys.path.insert(0, os.path.join(REPO, "tests", "testing"))
    from mpcd_harness import Mpcd
    flags = ("--backend=cpu", "--threads=2", "--max_batch_size=1024")
    server = Mpcd(args.mpcd, *flags)
    servers = [server]
    targets = {"baseline": server.target, "this": server.target}
    if args.baseline_server_flags:
        servers.append(Mpcd(args.mpcd, *flags, *args.baseline_server_flags.split()))
        targets["baseline"] = servers[-1].target
    clients = {"baseline": os.path.abspath(args.baseline_client_dir),
               "this": os.path.abspath(args.client_dir)}
    workers = {}

    def start_workers():
        for process in workers.values():
            process.stdin.close()
            process.wait()
        workers.update({name: subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--baseline-client-dir", "-", "--worker",
             directory, targets[name]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for name, directory in clients.items()})

    def step(name, problem, layout, batch):
        process = workers[name]
        process.stdin.write("%s %s %d\n" % (problem, layout, batch))
        process.stdin.flush()
        return [float(x) for x in process.stdout.readline().split()]

    out = sys.stdout if args.out == "-" else open(args.out, "w")
    try:
        start_workers()
        points = [(problem, layout, int(batch)) for problem in args.problems.split(",")
                  for layout in args.layouts.split(",") for batch in args.batches.split(",")]
        for problem, layout, batch in points:
            if args.fresh_workers:
                start_workers()
            for name in workers:
                step(name, problem, layout, batch)  # warm-up
            runs = {name: [] for name in workers}
            loads = []
            for _ in range(args.steps):
                for name in workers:
                    runs[name].append(step(name, problem, layout, batch))
                loads.append(os.getloadavg()[0])
            row = dict(problem=problem, layout=layout, batch=batch,
                       load=round(statistics.median(loads), 1))
            for name, rows in runs.items():
                row[name + "_step_ms"] = round(1e3 * statistics.median(r[0] for r in rows), 2)
                row[name + "_solver_ms"] = round(1e3 * statistics.median(r[1] for r in rows), 2)
                row[name + "_share"] = round(
                    statistics.median((r[0] - r[1] - r[2]) / r[0] for r in rows), 3)
            print(json.dumps(row), file=out, flush=True)
    finally:
        for process in workers.values():
            process.stdin.close()
            process.wait()
        for running in servers:
            running.stop()
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
