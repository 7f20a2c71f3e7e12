#!/usr/bin/python3
"""One training step through mpcd.torch.MPC, as a PyTorch user runs it (issue 14).

The step: forward solve and backward of L = sum(Wx * x) + sum(Wu * u) with x_init, C, c and the
model's parameters requiring grad, exactly the 'fwd+bwd' setting of mpc.pytorch's timings
(../shared/reference/mpc_pytorch/TIMINGS.md): pendulum T=20 and cartpole T=25 with
get_true_obj() costs, env bounds and line-search settings, the notebooks' initial-state
distributions (seed 0), float64; 'fixed10' (lqr_iter=10, eps=0, not_improved_lim=10**9: exactly 10
iterations) and 'converged' (lqr_iter=500, eps=1e-4, not_improved_lim=5).

Three figures per configuration, all from one run:
  - step:    wall time of forward + backward through mpcd.torch.MPC (a real mpcd over gRPC on
             loopback; median of --repeats after one warm-up);
  - solver:  the server's backend time for that step (Solve + Backward launches, their
             Timing.solve_seconds): the solver alone, in the server process;
  - mpc.pytorch: measured in this process when `mpc` (locuslab/mpc.pytorch) is importable, else
             the recorded TIMINGS.md row (batches 1..256).
client + transport = step - solver - queue (the batcher's wait, Timing.queue_seconds, reported).

Layouts: 'batched' sends C (T, B, n+m, n+m) and c (T, B, n+m), as the mpc.pytorch harness does
(every problem its own cost); 'shared' sends C (n+m, n+m) and c (n+m) once (problem_template).

Usage (after `make build`):
  /usr/bin/python3 bench/training_step.py --mpcd build/bin/mpcd --threads 2 \
      --server-flags=--max_batch_size=1024 --repeats 5 \
      --out bench/results/training_step.jsonl --plot docs/training_step.png
"""

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# --client-dir DIR (read before the imports): time another copy of the Python client, e.g. an
# older commit's, against the same server (docs/benchmarks.md §5 measures the baseline so).
_CLIENT_DIR = os.path.join(REPO, "client", "python")
if "--client-dir" in sys.argv:
    _CLIENT_DIR = os.path.abspath(sys.argv[sys.argv.index("--client-dir") + 1])
sys.path[:0] = [_CLIENT_DIR, os.path.join(REPO, "build", "python"),
                os.path.join(REPO, "tests", "testing")]

import torch  # noqa: E402

import mpcd.torch  # noqa: E402
from mpcd.torch import MPC, CartpoleDx, PendulumDx, QuadCost  # noqa: E402

TIMINGS = os.path.join(REPO, os.pardir, "shared", "reference", "mpc_pytorch", "TIMINGS.md")

PROBLEMS = {
    # name: (env class, T, linesearch decay, max linesearch iterations)
    "pendulum": (PendulumDx, 20, 0.2, 5),
    "cartpole": (CartpoleDx, 25, 0.5, 2),
}
SETTINGS = {
    "fixed10": dict(lqr_iter=10, eps=0.0, not_improved_lim=10**9),
    "converged": dict(lqr_iter=500, eps=1e-4, not_improved_lim=5),
}


def initial_states(name, B, seed=0):
    rng = np.random.default_rng(seed)
    if name == "pendulum":
        th = rng.uniform(-np.pi, np.pi, B)
        thdot = rng.uniform(-1, 1, B)
        return np.stack([np.cos(th), np.sin(th), thdot], axis=1)
    th = rng.uniform(-2 * np.pi, 2 * np.pi, B)
    x, dx, dth = (rng.uniform(-0.5, 0.5, B) for _ in range(3))
    return np.stack([x, dx, np.cos(th), np.sin(th), dth], axis=1)


def recorded_mpc_pytorch():
    """{(problem, setting, B): median seconds} of TIMINGS.md's float64 fwd+bwd rows."""
    rows = {}
    if not os.path.isfile(TIMINGS):
        return rows
    problem = None
    with open(TIMINGS) as f:
        for line in f:
            header = re.match(r"##+ (\w+)(?:, T=(\d+))?", line)
            if header:
                # Only the tables of our horizons (pendulum T=20, cartpole T=25).
                name, T = header.group(1), header.group(2)
                problem = name if name in PROBLEMS and T == str(PROBLEMS[name][1]) else None
                continue
            cells = [c.strip() for c in line.split("|")]
            if problem and len(cells) > 8 and cells[1] == "float64" and cells[3] == "fwd+bwd":
                rows[(problem, cells[2], int(cells[4]))] = float(cells[7])
    return rows


def mpc_pytorch_step(name, setting, B):
    """The same step through locuslab/mpc.pytorch in this process, or None without it."""
    import importlib.util
    if importlib.util.find_spec("mpc") is None:
        return None
    raise NotImplementedError("mpc.pytorch is installed: add its in-process step here")


def one_step(name, setting, B, layout, client):
    env_class, T, decay, ls_iters = PROBLEMS[name]
    env = env_class()
    n, m = env.n_state, env.n_ctrl
    q, p = env.get_true_obj()
    if layout == "batched":
        C = torch.diag(q).expand(T, B, n + m, n + m).clone()
        c = p.expand(T, B, n + m).clone()
    else:
        C, c = torch.diag(q), p.clone()
    x_init = torch.tensor(initial_states(name, B))
    params = torch.tensor(client.models_by_name[env.name].default_params)
    leaves = [t.requires_grad_(True) for t in (x_init, C, c, params)]
    rng = np.random.default_rng(1)
    wx = torch.tensor(rng.standard_normal((T, B, n)))
    wu = torch.tensor(rng.standard_normal((T, B, m)))
    mpc = MPC(n, m, T, u_lower=env.lower, u_upper=env.upper, linesearch_decay=decay,
              max_linesearch_iter=ls_iters, exit_unconverged=False, detach_unconverged=False,
              verbose=-1, client=client, **SETTINGS[setting])
    start = time.perf_counter()
    x, u, _ = mpc(leaves[0], QuadCost(leaves[1], leaves[2]), env_class(leaves[3]))
    ((wx * x).sum() + (wu * u).sum()).backward()
    elapsed = time.perf_counter() - start
    timing = mpc.last_timing
    solver = timing["forward"][1] + timing["backward"][1]
    queue = timing["forward"][0] + timing["backward"][0]
    return elapsed, solver, queue


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", default=os.path.join(REPO, "build", "bin", "mpcd"))
    parser.add_argument("--target", help="use a running server instead of starting --mpcd")
    parser.add_argument("--threads", type=int, default=2)
    # One backend launch per call even at batch 1024 (the default 256 splits it, and the
    # launches' queue and solve times then overlap in Timing).
    parser.add_argument("--server-flags", default="--max_batch_size=1024")
    parser.add_argument("--problems", default="cartpole,pendulum")
    parser.add_argument("--settings", default="fixed10,converged")
    parser.add_argument("--layouts", default="batched,shared")
    parser.add_argument("--batches", default="1,16,64,256,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "training_step.jsonl"))
    parser.add_argument("--plot", default=os.path.join(REPO, "docs", "training_step.png"))
    parser.add_argument("--client-dir", default=_CLIENT_DIR,
                        help="the mpcd Python package's parent directory to time")
    args = parser.parse_args()
    torch.set_num_threads(1)

    server = None
    if args.target is None:
        from mpcd_harness import Mpcd
        server = Mpcd(args.mpcd, "--backend=cpu", "--threads=%d" % args.threads,
                      *args.server_flags.split())
        args.target = server.target
    client = mpcd.Client(args.target, timeout=600)
    client.models_by_name = {model.name: model for model in client.models()}
    recorded = recorded_mpc_pytorch()
    results = []
    try:
        for name in args.problems.split(","):
            for setting in args.settings.split(","):
                for layout in args.layouts.split(","):
                    for B in (int(b) for b in args.batches.split(",")):
                        one_step(name, setting, B, layout, client)  # warm-up
                        runs = [one_step(name, setting, B, layout, client)
                                for _ in range(args.repeats)]
                        step = statistics.median(r[0] for r in runs)
                        solver = statistics.median(r[1] for r in runs)
                        queue = statistics.median(r[2] for r in runs)
                        measured = mpc_pytorch_step(name, setting, B)
                        reference = measured if measured is not None else recorded.get(
                            (name, setting, B))
                        row = dict(problem=name, setting=setting, layout=layout, batch=B,
                                   step_s=step, solver_s=solver, queue_s=queue,
                                   client_transport_share=(step - solver - queue) / step,
                                   mpc_pytorch_s=reference,
                                   mpc_pytorch_source=("measured" if measured is not None else
                                                       "TIMINGS.md" if reference else None),
                                   speedup=(reference / step) if reference else None,
                                   solver_speedup=(reference / solver) if reference else None,
                                   load_average=round(os.getloadavg()[0], 2))
                        results.append(row)
                        print(json.dumps(row), flush=True)
    finally:
        client.close()
        if server is not None:
            server.stop()

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(json.dumps(dict(machine=platform.node(), threads=args.threads,
                                server_flags=args.server_flags, client_dir=args.client_dir,
                                load_average=os.getloadavg(),
                                cpu_count=os.cpu_count(), date=time.strftime("%Y-%m-%d"),
                                torch=torch.__version__)) + "\n")
        for row in results:
            f.write(json.dumps(row) + "\n")
    if args.plot:
        plot(results, args.plot)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = sorted({(r["problem"], r["setting"]) for r in results})
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, (name, setting) in zip(axes[0], keys):
        rows = [r for r in results if r["problem"] == name and r["setting"] == setting]
        for layout, style in (("batched", "-"), ("shared", "--")):
            sel = sorted((r for r in rows if r["layout"] == layout), key=lambda r: r["batch"])
            if not sel:
                continue
            b = [r["batch"] for r in sel]
            ax.plot(b, [r["step_s"] for r in sel], "o" + style, color="C0",
                    label="mpcd step (%s)" % layout)
            ax.plot(b, [r["solver_s"] for r in sel], "s" + style, color="C2",
                    label="solver alone (%s)" % layout)
        ref = sorted({(r["batch"], r["mpc_pytorch_s"]) for r in rows if r["mpc_pytorch_s"]})
        if ref:
            ax.plot([b for b, _ in ref], [t for _, t in ref], "^-", color="C3",
                    label="mpc.pytorch")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch")
        ax.set_ylabel("seconds per training step")
        ax.set_title("%s, %s" % (name, setting))
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
