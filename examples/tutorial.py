#!/usr/bin/python3
"""The mpcd tutorial (docs/tutorial.md) as one script, against a running mpcd: a solve, a
closed-loop control run with plots, gradients through the MPC layer, and a small learning loop.

    build/bin/mpcd --host=127.0.0.1 --port=50051 --metrics_port=-1 &
    PYTHONPATH=client/python:build/python /usr/bin/python3 examples/tutorial.py \\
        --target=localhost:50051 --out=build/tutorial

It writes closed_loop.png and learning.png into --out. With --check it also asserts what the
tutorial says happens (the test runs it that way).
"""

import argparse
import os

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

import mpcd  # noqa: E402
from mpcd.torch import MPC, PendulumDx, QuadCost  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--out", default="build/tutorial")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    # --- 1. One solve -----------------------------------------------------------------------
    client = mpcd.Client(args.target, timeout=60, wait_for_ready=True)
    print("server:", client.health())
    hanging = np.pi - 0.3  # the angle, 0 = upright: the pendulum starts nearly hanging down
    pendulum = mpcd.Problem(
        x_init=[np.cos(hanging), np.sin(hanging), 0.0],  # state: cos th, sin th, dth
        C=np.diag([1.0, 1.0, 0.1, 0.001]),                # weights on [x; u]
        c=[-1.0, 0.0, 0.0, 0.0],                          # pulls cos th towards 1 (upright)
        dynamics=mpcd.Model("pendulum"),
        u_lower=[-2.0], u_upper=[2.0])                    # the motor's torque limit
    plan = client.solve(horizon=20, problems=[pendulum],
                        options={"max_iterations": 100}).solutions[0]
    print("plan:", plan.status, "after", plan.iterations, "iterations, cost %.4f" % plan.cost)
    print("first torques:", plan.u[:5, 0].round(3))

    # --- 2. Closed loop ---------------------------------------------------------------------
    states, torques = [np.array(pendulum.x_init)], []
    with client.control(20, pendulum, options={"max_iterations": 20}) as session:
        step = session.first
        for _ in range(100):
            torques.append(step.u0[0])
            measured = step.plan.x[1]  # here the plant is the model: it goes where predicted
            states.append(measured)
            step = session.step(measured)
    states = np.array(states)
    angle = np.unwrap(np.arctan2(states[:, 1], states[:, 0]))  # no jumps at +-pi
    time = 0.05 * np.arange(len(states))
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5))
    top.plot(time, angle)
    top.set_ylabel("angle (rad, 0 = upright)")
    bottom.step(time[:-1], torques, where="post")
    bottom.set_ylabel("torque")
    bottom.set_xlabel("time (s)")
    figure.savefig(os.path.join(args.out, "closed_loop.png"), dpi=100)
    print("closed loop: final cos th %.6f (1 = upright)" % states[-1, 0])

    # --- 3. Gradients through the MPC layer --------------------------------------------------
    torch.set_default_dtype(torch.float64)
    params = torch.tensor([10.0, 1.0, 1.0], requires_grad=True)  # g, m, l
    x_init = torch.tensor([[np.cos(0.5), np.sin(0.5), 0.0]])
    q, p = PendulumDx().get_true_obj()
    cost = QuadCost(torch.diag(q), p)
    mpc = MPC(3, 1, 20, u_lower=-2.0, u_upper=2.0, lqr_iter=100, client=client,
              gradient_mode="EXACT")
    x, u, _ = mpc(x_init, cost, PendulumDx(params))  # x: (T, batch, n), u: (T, batch, m)
    loss = x[:, :, 1].square().sum()  # how far from upright (sin th) the plan stays
    loss.backward()  # one Backward RPC: dloss/d(g, m, l) lands in params.grad
    print("dloss/d(g, m, l):", params.grad.numpy().round(4))

    # --- 4. Learning the model from an expert -----------------------------------------------
    torch.manual_seed(0)
    angles = torch.empty(8).uniform_(-1.0, 1.0)
    x_inits = torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros(8)], dim=1)
    truth = torch.tensor([10.0, 1.0, 1.0])
    with torch.no_grad():
        x_expert, u_expert, _ = mpc(x_inits, cost, PendulumDx(truth))
    log_ml = torch.log(torch.tensor([1.5, 0.7])).requires_grad_()  # mass and length, both wrong
    optimizer = torch.optim.Adam([log_ml], lr=0.05)
    losses = []
    for _ in range(60):
        guess = torch.cat([truth[:1], log_ml.exp()])  # g is known
        x, u, _ = mpc(x_inits, cost, PendulumDx(guess))
        loss = (x - x_expert).square().mean() + (u - u_expert).square().mean()
        optimizer.zero_grad()
        loss.backward()  # one Backward RPC for the whole batch
        optimizer.step()
        losses.append(loss.item())
    learned = log_ml.exp().detach()
    print("learned m, l:", learned.numpy().round(4), "(truth 1, 1); loss %.2e -> %.2e"
          % (losses[0], losses[-1]))
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.semilogy(losses)
    axis.set_xlabel("iteration")
    axis.set_ylabel("imitation loss")
    figure.savefig(os.path.join(args.out, "learning.png"), dpi=100)

    if args.check:
        assert plan.status == "CONVERGED", plan.status
        assert np.all(np.abs(plan.u) <= 2.0 + 1e-12)
        assert states[-1, 0] > 0.999, states[-1]  # swung up and held upright
        assert torch.all(torch.isfinite(params.grad)) and params.grad.abs().sum() > 0
        assert losses[-1] < 0.01 * losses[0], (losses[0], losses[-1])
        assert torch.allclose(learned, torch.ones(2), rtol=0.05), learned
        print("tutorial: all checks passed")
    client.close()


if __name__ == "__main__":
    main()
