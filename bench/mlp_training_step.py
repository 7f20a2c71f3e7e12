#!/usr/bin/python3
"""The training step (forward + backward) of MPC with learned MLP dynamics, mpcd against
locuslab/mpc.pytorch in one run: n=4, m=1, dynamics x' = x + W3 tanh(W2 tanh(W1 [x; u] + b1) + b2)
+ b3 (mpc.pytorch's NNDynamics with hidden_sizes=[64, 64], tanh, passthrough), T=25, exactly 10
iLQR iterations (lqr_iter=10, eps=0, not_improved_lim=10**9), C = diag(1, 1, 1, 1, 0.01), c = 0,
|u| <= 1, x_init ~ U(-1, 1) (seed 0), float64. The step is
    x, u = MPC(...)(x_init, QuadCost(C, c), dx);  L = sum(Wx * x) + sum(Wu * u);  L.backward()
with dx's parameters requiring grad: every weight gets dL/dtheta (mpcd: Backward's reverse sweeps
over the ONNX graph; mpc.pytorch: autograd through its AUTO_DIFF linearisation). The same
NNDynamics object is the dynamics of both (mpcd.torch.MPC exports it to ONNX).

mpc.pytorch's code is not part of this repository: point --mpc-pytorch-dir at a checkout of
github.com/locuslab/mpc.pytorch (its NNDynamics gains 'tanh' here by adding torch.tanh to its
activation table at run time; nothing of it is modified on disk). Both run on one thread
(torch.set_num_threads(1); mpcd --threads=1), in this process and one local mpcd.

Usage (after `make build`):
  /usr/bin/python3 bench/mlp_training_step.py --mpcd build/bin/mpcd \
      --mpc-pytorch-dir /tmp/mpc.pytorch --batches 1,64,256 --repeats 3
"""

import argparse
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
from mpcd.torch import MPC as MpcdMPC, QuadCost  # noqa: E402

N, M, T, HIDDEN = 4, 1, 25, 64
FIXED10 = dict(lqr_iter=10, eps=0.0, not_improved_lim=10**9, u_lower=-1.0, u_upper=1.0,
               exit_unconverged=False, detach_unconverged=False, verbose=-1)


def nn_dynamics(mpc_module):
    """mpc.pytorch's NNDynamics, two tanh hidden layers of 64, float64, seeded."""
    mpc_module.dynamics.ACTS.setdefault("tanh", torch.tanh)
    torch.manual_seed(0)
    return mpc_module.dynamics.NNDynamics(N, M, hidden_sizes=[HIDDEN, HIDDEN],
                                          activation="tanh").double()


def inputs(B):
    rng = np.random.default_rng(0)
    x_init = torch.tensor(rng.uniform(-1, 1, (B, N)))
    C = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0, 0.01])).expand(T, B, N + M, N + M)
    c = torch.zeros(T, B, N + M)
    wx = torch.tensor(rng.standard_normal((T, B, N)))
    wu = torch.tensor(rng.standard_normal((T, B, M)))
    return x_init, C, c, wx, wu


def step(mpc, cost, dx, B):
    """Seconds of one training step; `cost`: the QuadCost type of the MPC's own package."""
    x_init, C, c, wx, wu = inputs(B)
    dx.zero_grad()
    start = time.perf_counter()
    x, u, _ = mpc(x_init, cost(C, c), dx)
    ((wx * x).sum() + (wu * u).sum()).backward()
    elapsed = time.perf_counter() - start
    grads = [p.grad for p in dx.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    return elapsed


def median_step(mpc, cost, dx, B, repeats):
    step(mpc, cost, dx, B)  # warm-up (mpcd: the export and the graph's first send)
    return statistics.median(step(mpc, cost, dx, B) for _ in range(repeats))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", default=os.path.join(REPO, "build", "bin", "mpcd"))
    parser.add_argument("--mpc-pytorch-dir", required=True)
    parser.add_argument("--batches", default="1,64,256")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # mpc.pytorch makes its own tensors in it
    sys.path.insert(0, os.path.abspath(args.mpc_pytorch_dir))
    import mpc as mpc_pytorch
    import mpc.dynamics  # noqa: F401
    from mpc.mpc import GradMethods

    from mpcd_harness import Mpcd
    server = Mpcd(args.mpcd, "--backend=cpu", "--threads=1", "--max_batch_size=1024")
    client = mpcd.Client(server.target, timeout=600)
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    print("| batch | mpcd step (s) | mpcd server solve + backward (s) | mpc.pytorch step (s) "
          "| mpc.pytorch / mpcd |")
    print("|---:|---:|---:|---:|---:|")
    try:
        for B in [int(b) for b in args.batches.split(",")]:
            dx = nn_dynamics(mpc_pytorch)
            ours = MpcdMPC(N, M, T, client=client, **FIXED10)
            mpcd_s = median_step(ours, QuadCost, dx, B, args.repeats)
            server_s = ours.last_timing["forward"][1] + ours.last_timing["backward"][1]
            theirs = mpc_pytorch.mpc.MPC(N, M, T, grad_method=GradMethods.AUTO_DIFF, **FIXED10)
            pytorch_s = median_step(theirs, mpc_pytorch.mpc.QuadCost, dx, B, args.repeats)
            print("| %d | %.4f | %.4f | %.3f | %.0fx |" % (B, mpcd_s, server_s, pytorch_s,
                                                           pytorch_s / mpcd_s), flush=True)
    finally:
        client.close()
        server.stop()
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
