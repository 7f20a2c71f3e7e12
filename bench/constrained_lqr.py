#!/usr/bin/python3
"""The linear benchmark of the differentiable-MPC literature (issue 17): n=8, m=4, T=40, batch 64,
control bounds |u| <= 1 and |u| <= 10, plus a state-bounded variant; forward (solve) and backward
(dL/d x_init, C, c, F, f at the solution) per problem, mpcd on one and two threads, side by side
with locuslab/mpc.pytorch in this process.

The problems (written from the papers' description: random linear systems, quadratic costs, box
constraints; seed 0): for each of the 64 problems its own system x' = A x + B u with
A = I + 0.1 N(0, 1)^{n x n} / sqrt(n) (eigenvalues around 1: some modes unstable) and
B = N(0, 1)^{n x m} / sqrt(m); cost sum_t 0.5 (x'x + 0.1 u'u) (C = diag(1 x 8, 0.1 x 4), c = 0);
x_init ~ N(0, 3^2) per entry, large enough that |u| <= 1 binds for most of the horizon. The
state-bounded variant ('x-bounded') adds -1.5 <= x_t[0] <= 1.5 on x_1 .. x_{T-1} to |u| <= 10
with x_init[0] ~ U(-1, 1) (mpc.pytorch has no state constraints: mpcd only). Every solve runs to
convergence (max_iterations 200, tolerance 1e-7 on the control step, mpc.pytorch's eps 1e-7 and
lqr_iter 200); the tables report the iterations, the largest constraint violation and, for
mpc.pytorch, its cost against mpcd's (positive: mpc.pytorch's is higher).

Figures per row: mpcd's forward and backward are the server's backend time (Timing.solve_seconds
of the Solve and of the Backward call) divided by the batch; mpc.pytorch's are wall times of its
forward (MPC(...)(x_init, QuadCost, LinDx)) and of autograd's backward of L = sum(Wx * x) +
sum(Wu * u) with x_init, C, c, F requiring grad, divided by the batch, with torch's threads set to
the same count. Median of --repeats after one warm-up.

mpc.pytorch's code is not part of this repository: point --mpc-pytorch-dir at a checkout of
github.com/locuslab/mpc.pytorch (nothing of it is modified); without it only mpcd's rows run.

Usage (after `make build`):
  /usr/bin/python3 bench/constrained_lqr.py --mpcd build/bin/mpcd \
      --mpc-pytorch-dir /tmp/mpc.pytorch --threads 1,2 --repeats 3
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, "client", "python"), os.path.join(REPO, "build", "python"),
                os.path.join(REPO, "tests", "testing")]

import torch  # noqa: E402

import mpcd  # noqa: E402

N, M, T, BATCH = 8, 4, 40, 64
MAX_ITERATIONS, TOLERANCE = 200, 1e-7
VARIANTS = {
    # name: (|u| bound, state bound on x[0] or None)
    "u<=1": (1.0, None),
    "u<=10": (10.0, None),
    "x-bounded": (10.0, 1.5),
}


def generate(variant, seed=0):
    """The batch's arrays: A (B, n, n), B (B, n, m), x_init (B, n), C (n+m, n+m), bounds."""
    u_max, x_max = VARIANTS[variant]
    rng = np.random.default_rng(seed)
    A = np.eye(N) + 0.1 * rng.standard_normal((BATCH, N, N)) / np.sqrt(N)
    B = rng.standard_normal((BATCH, N, M)) / np.sqrt(M)
    x_init = 3.0 * rng.standard_normal((BATCH, N))
    if x_max is not None:
        x_init[:, 0] = rng.uniform(-1.0, 1.0, BATCH)
    C = np.diag(np.concatenate([np.ones(N), 0.1 * np.ones(M)]))
    cotangent_x = rng.standard_normal((BATCH, T, N))
    cotangent_u = rng.standard_normal((BATCH, T, M))
    return dict(A=A, B=B, x_init=x_init, C=C, u_max=u_max, x_max=x_max,
                wx=cotangent_x, wu=cotangent_u)


def state_bounds(data):
    if data["x_max"] is None:
        return None, None
    upper = np.full(N, np.inf)
    upper[0] = data["x_max"]
    return -upper, upper


def violation(data, x, u):
    """The largest violation of the bounds in (B, T, n) states and (B, T, m) controls."""
    worst = float(np.max(np.abs(u)) - data["u_max"])
    if data["x_max"] is not None:
        worst = max(worst, float(np.max(np.abs(x[:, 1:, 0])) - data["x_max"]))
    return max(worst, 0.0)


def mpcd_problems(data):
    x_lower, x_upper = state_bounds(data)
    problems = []
    for b in range(BATCH):
        F = np.concatenate([data["A"][b], data["B"][b]], axis=1)
        problems.append(mpcd.Problem(
            x_init=data["x_init"][b], C=data["C"], c=np.zeros(N + M),
            dynamics=mpcd.Linear(F=F, f=np.zeros(N)), u_lower=-data["u_max"] * np.ones(M),
            u_upper=data["u_max"] * np.ones(M), x_lower=x_lower, x_upper=x_upper))
    return problems


def mpcd_run(client, data):
    problems = mpcd_problems(data)
    options = dict(max_iterations=MAX_ITERATIONS, tolerance=TOLERANCE)
    solved = client.solve(T, problems, options=options)
    forward = solved.solve_seconds / BATCH
    x = np.stack([s.x for s in solved.solutions])
    u = np.stack([s.u for s in solved.solutions])
    row = dict(forward_us=forward * 1e6,
               iterations=statistics.median(s.iterations for s in solved.solutions),
               max_iterations_seen=max(s.iterations for s in solved.solutions),
               statuses=sorted({s.status for s in solved.solutions}),
               violation=violation(data, x, u),
               cost=[s.cost for s in solved.solutions])
    try:
        cotangents = [(data["wx"][b], data["wu"][b]) for b in range(BATCH)]
        backward = client.backward(T, problems, solved.solutions, cotangents)
        row["backward_us"] = backward.solve_seconds / BATCH * 1e6
    except mpcd.MpcdError as error:  # a build without gradients through constraints
        row["backward_us"] = None
        row["backward_error"] = str(error).splitlines()[0][:120]
    return row


def mpc_pytorch_run(mpc_module, data, threads):
    torch.set_num_threads(threads)
    F = torch.tensor(np.concatenate([data["A"], data["B"]], axis=2))
    F = F.unsqueeze(0).expand(T - 1, BATCH, N, N + M).clone().requires_grad_(True)
    x_init = torch.tensor(data["x_init"]).requires_grad_(True)
    C = torch.tensor(data["C"]).expand(T, BATCH, N + M, N + M).clone().requires_grad_(True)
    c = torch.zeros(T, BATCH, N + M, dtype=torch.float64, requires_grad=True)
    u_max = data["u_max"]
    controller = mpc_module.mpc.MPC(
        N, M, T, u_lower=-u_max * torch.ones(T, BATCH, M, dtype=torch.float64),
        u_upper=u_max * torch.ones(T, BATCH, M, dtype=torch.float64), lqr_iter=MAX_ITERATIONS,
        eps=TOLERANCE, exit_unconverged=False, detach_unconverged=False, verbose=-1,
        backprop=True, n_batch=BATCH)
    start = time.perf_counter()
    x, u, objs = controller(x_init, mpc_module.mpc.QuadCost(C, c), mpc_module.mpc.LinDx(F, None))
    forward = time.perf_counter() - start
    wx = torch.tensor(data["wx"]).transpose(0, 1)
    wu = torch.tensor(data["wu"]).transpose(0, 1)
    start = time.perf_counter()
    ((wx * x).sum() + (wu * u).sum()).backward()
    backward = time.perf_counter() - start
    x_np = x.detach().transpose(0, 1).numpy()
    u_np = u.detach().transpose(0, 1).numpy()
    return dict(forward_us=forward / BATCH * 1e6, backward_us=backward / BATCH * 1e6,
                violation=violation(data, x_np, u_np), cost=objs.detach().numpy().tolist())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", default=os.path.join(REPO, "build", "bin", "mpcd"))
    parser.add_argument("--mpc-pytorch-dir", help="a checkout of locuslab/mpc.pytorch")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mpc_module = None
    if args.mpc_pytorch_dir:
        sys.path.insert(0, args.mpc_pytorch_dir)
        import mpc  # noqa: F401
        import mpc.mpc  # noqa: F401
        mpc_module = sys.modules["mpc"]

    from mpcd_harness import Mpcd
    for threads in (int(t) for t in args.threads.split(",")):
        server = Mpcd(args.mpcd, "--backend=cpu", "--threads=%d" % threads)
        client = mpcd.Client(server.target, timeout=600)
        try:
            for variant in args.variants.split(","):
                data = generate(variant)
                mpcd_run(client, data)  # warm-up
                runs = [mpcd_run(client, data) for _ in range(args.repeats)]
                row = dict(runs[-1], variant=variant, threads=threads, solver="mpcd",
                           forward_us=statistics.median(r["forward_us"] for r in runs),
                           load_average=round(os.getloadavg()[0], 2))
                if row["backward_us"] is not None:
                    row["backward_us"] = statistics.median(r["backward_us"] for r in runs)
                mpcd_cost = np.array(row.pop("cost"))
                print(json.dumps(row), flush=True)
                if mpc_module is None or data["x_max"] is not None:
                    continue
                mpc_pytorch_run(mpc_module, data, threads)  # warm-up
                runs = [mpc_pytorch_run(mpc_module, data, threads) for _ in range(args.repeats)]
                cost = np.array(runs[-1]["cost"])
                print(json.dumps(dict(
                    variant=variant, threads=threads, solver="mpc.pytorch",
                    forward_us=statistics.median(r["forward_us"] for r in runs),
                    backward_us=statistics.median(r["backward_us"] for r in runs),
                    violation=runs[-1]["violation"],
                    cost_gap_median=float(np.median(cost - mpcd_cost)),
                    cost_gap_max=float(np.max(cost - mpcd_cost)),
                    load_average=round(os.getloadavg()[0], 2))), flush=True)
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
