#!/usr/bin/python3
"""Learned dynamics through mpcd: a neural network (torch.nn.Module) learns the pendulum's
dynamics from expert MPC trajectories *through* the MPC layer, against the same network learned
by one-step regression on the same trajectories. Results: docs/learned_dynamics.md.

The expert is MPC with the true pendulum (mpcd's built-in model, mpc.pytorch's PendulumDx and its
get_true_obj cost), solved by mpcd from seeded initial states. The learner is an MLP
    dx(x, u) = x + W3 tanh(W2 tanh(W1 [x; u] + b1) + b2) + b3
given to mpcd.torch.MPC as the dynamics (exported once to ONNX; its weights travel with every
request and their gradients come back from mpcd's Backward into module.parameters()):
  - imitation: Adam on  L_u = mean over batch, t of ||u_t - u*_t||^2, where u is the plan of the
    MPC whose dynamics is the network (the gradient goes through the MPC's solution map);
  - regression: Adam on the one-step error mean ||dx(x*_t, u*_t) - x*_{t+1}||^2 of the expert's
    transitions.
Both start from the same weights; a third model is the regression's, then fine-tuned by imitation.
Each is then scored on held-out initial states by both losses
and in closed loop: receding-horizon MPC with the learned model acting on the true pendulum
(stepped by mpcd's built-in model), its states against the expert's own closed loop.

    make build && build/bin/mpcd --port=50051 &
    PYTHONPATH=client/python:build/python /usr/bin/python3 examples/learned_dynamics.py \
        --target=localhost:50051 --out=build/learned_dynamics
"""

import argparse
import copy
import dataclasses
import json
import os
import sys
import time

import numpy as np
import torch

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.join(_REPO, "client", "python") not in sys.path:
    sys.path.insert(0, os.path.join(_REPO, "client", "python"))

import mpcd  # noqa: E402
from mpcd.torch import MPC, PendulumDx, QuadCost  # noqa: E402


@dataclasses.dataclass
class Setting:
    hidden: int = 32             # units in each of the two hidden layers
    T: int = 20                  # MPC horizon
    n_train: int = 32            # expert trajectories learned from
    n_test: int = 32             # held-out initial states
    imitation_iterations: int = 300
    regression_iterations: int = 3000  # full-batch steps (cheap: no MPC inside)
    finetune_iterations: int = 150     # imitation steps from the regression's model
    lr: float = 3e-3
    finetune_lr: float = 3e-4          # smaller: it starts from a model that already fits
    lqr_iter: int = 30
    closed_loop_steps: int = 60
    max_angle: float = 1.5       # initial th uniform in [-max_angle, max_angle] (0 = upright)
    seed: int = 0


QUICK = Setting(hidden=16, T=8, n_train=4, n_test=4, imitation_iterations=6,
                regression_iterations=50, finetune_iterations=2, lqr_iter=15, closed_loop_steps=5)


class MlpDx(torch.nn.Module):
    """x_next = x + MLP([x; u]): two tanh hidden layers (mpc.pytorch's NNDynamics, residual)."""

    def __init__(self, n, m, hidden, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n + m, hidden), torch.nn.Tanh(),
            torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
            torch.nn.Linear(hidden, n))
        with torch.no_grad():  # start near "nothing moves", as a residual model should
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.zero_()
        self.double()

    def forward(self, x, u):
        return x + self.net(torch.cat((x, u), dim=-1))


def initial_states(n, max_angle, rng):
    th = rng.uniform(-max_angle, max_angle, n)
    dth = rng.uniform(-1.0, 1.0, n)
    return torch.tensor(np.stack([np.cos(th), np.sin(th), dth], axis=1), dtype=torch.float64)


def angle(x):
    """th of states (..., 3) = [cos th, sin th, dth]; 0 is upright."""
    return torch.atan2(x[..., 1], x[..., 0])


def upright_fraction(x, tolerance=0.3):
    """The fraction of states (B, 3) within `tolerance` rad of upright."""
    return (angle(x).abs() < tolerance).double().mean().item()


class Pendulum:
    """The task: the true pendulum, its cost, and the MPC layers that solve it through mpcd."""

    def __init__(self, client, setting):
        self.client, self.setting = client, setting
        self.env = PendulumDx()
        q, p = self.env.get_true_obj()
        self.cost = QuadCost(torch.diag(q), p)
        self.C, self.c = self.cost.C.numpy(), self.cost.c.numpy()
        self.n, self.m = self.env.n_state, self.env.n_ctrl

    def mpc(self, T=None):
        return MPC(self.n, self.m, T or self.setting.T, u_lower=self.env.lower,
                   u_upper=self.env.upper, lqr_iter=self.setting.lqr_iter, eps=1e-6,
                   exit_unconverged=False, detach_unconverged=False, verbose=-1,
                   client=self.client)

    def plan(self, x_init, dx):
        """x (T, B, n), u (T, B, m) of the MPC with dynamics dx (a module or PendulumDx)."""
        x, u, _ = self.mpc()(x_init, self.cost, dx)
        return x, u

    def true_step(self, x, u):
        """x_{t+1} of the true pendulum (mpcd's built-in model, the controls pinned by bounds)."""
        problems = [mpcd.Problem(xi, self.C, self.c, mpcd.Model("pendulum"), u_lower=ui,
                                 u_upper=ui) for xi, ui in zip(x.numpy(), u.numpy())]
        result = self.client.solve(2, problems)
        return torch.tensor(np.stack([s.x[1] for s in result.solutions]))

    def closed_loop(self, x_init, dx, steps):
        """States (steps+1, B, n) of receding-horizon MPC with model dx on the true pendulum."""
        states = [x_init]
        x = x_init
        with torch.no_grad():
            for _ in range(steps):
                _, u = self.plan(x, dx)
                x = self.true_step(x, u[0].clamp(self.env.lower, self.env.upper))
                states.append(x)
        return torch.stack(states)


def transitions(x, u):
    """The expert's one-step transitions (x_t, u_t) -> x_{t+1}, flattened over t and batch."""
    n, m = x.shape[-1], u.shape[-1]
    return x[:-1].reshape(-1, n), u[:-1].reshape(-1, m), x[1:].reshape(-1, n)


def regression_loss(model, data):
    x, u, x_next = data
    return ((model(x, u) - x_next) ** 2).sum(-1).mean()


def imitation_loss(task, model, x_init, u_expert):
    _, u = task.plan(x_init, model)
    return ((u - u_expert) ** 2).sum(-1).mean()


def descend(model, loss_of, iterations, lr, log, label, log_every):
    """Adam on model's parameters for `iterations` steps of loss_of(model); returns the loss before
    each step and after the last."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for it in range(iterations + 1):
        optimizer.zero_grad()
        loss = loss_of(model)
        history.append(loss.item())
        if it == iterations:
            break
        loss.backward()
        optimizer.step()
        if log and it % log_every == 0:
            log("%s it %4d: loss %.4e" % (label, it, loss.item()))
    return history


def learn_by_imitation(task, model, x_init, u_expert, iterations, lr, log):
    return descend(model, lambda m: imitation_loss(task, m, x_init, u_expert), iterations, lr,
                   log, "imitation (control loss)", 25)


def learn_by_regression(model, data, iterations, lr, log):
    return descend(model, lambda m: regression_loss(m, data), iterations, lr, log,
                   "regression (one-step loss)", 500)


def run(setting, client, log=print):
    """Learns both ways and scores both; returns a dict of the results (and the trajectories)."""
    rng = np.random.default_rng(setting.seed)
    task = Pendulum(client, setting)
    x_train = initial_states(setting.n_train, setting.max_angle, rng)
    x_test = initial_states(setting.n_test, setting.max_angle, rng)
    with torch.no_grad():
        x_star, u_star = task.plan(x_train, task.env)
        x_star_test, u_star_test = task.plan(x_test, task.env)
    train_data, test_data = transitions(x_star, u_star), transitions(x_star_test, u_star_test)

    models = {"imitation": MlpDx(task.n, task.m, setting.hidden, setting.seed),
              "regression": MlpDx(task.n, task.m, setting.hidden, setting.seed)}
    start = time.perf_counter()
    histories = {"imitation": learn_by_imitation(task, models["imitation"], x_train, u_star,
                                                 setting.imitation_iterations, setting.lr, log)}
    seconds = {"imitation": time.perf_counter() - start}
    start = time.perf_counter()
    histories["regression"] = learn_by_regression(models["regression"], train_data,
                                                  setting.regression_iterations, setting.lr, log)
    seconds["regression"] = time.perf_counter() - start
    models["regression+imitation"] = copy.deepcopy(models["regression"])
    start = time.perf_counter()
    histories["regression+imitation"] = learn_by_imitation(
        task, models["regression+imitation"], x_train, u_star, setting.finetune_iterations,
        setting.finetune_lr, log)
    seconds["regression+imitation"] = time.perf_counter() - start

    expert_loop = task.closed_loop(x_test, task.env, setting.closed_loop_steps)
    results = {"setting": dataclasses.asdict(setting), "seconds": seconds,
               "histories": histories, "scores": {}}
    loops = {"expert": expert_loop}
    for name, model in models.items():
        with torch.no_grad():
            loop = task.closed_loop(x_test, model, setting.closed_loop_steps)
            loops[name] = loop
            results["scores"][name] = {
                "train_control_loss": imitation_loss(task, model, x_train, u_star).item(),
                "test_control_loss": imitation_loss(task, model, x_test, u_star_test).item(),
                "train_one_step_loss": regression_loss(model, train_data).item(),
                "test_one_step_loss": regression_loss(model, test_data).item(),
                # Closed loop on the true pendulum: mean ||x_t - x^expert_t|| over t and the
                # held-out states, and the mean |th| at the end (0 = upright).
                "closed_loop_state_error": (loop - expert_loop).norm(dim=-1).mean().item(),
                "final_abs_angle": angle(loop[-1]).abs().mean().item(),
                "upright_at_end": upright_fraction(loop[-1]),
            }
    results["scores"]["expert"] = {"final_abs_angle": angle(expert_loop[-1]).abs().mean().item(),
                                   "upright_at_end": upright_fraction(expert_loop[-1])}
    results["loops"] = {k: angle(v).numpy().tolist() for k, v in loops.items()}
    return results


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    h = results["histories"]
    scores = results["scores"]
    axes[0].semilogy(h["imitation"], label="imitation (through mpcd)")
    axes[0].axhline(scores["regression"]["train_control_loss"], color="C1", ls="--",
                    label="regression's model")
    axes[0].semilogy(np.arange(len(h["regression+imitation"])), h["regression+imitation"],
                     color="C2", label="regression, then imitation")
    axes[0].set(xlabel="imitation iteration", ylabel="control loss (train)",
                title="MPC control imitation loss")
    axes[0].legend()
    axes[1].semilogy(h["regression"], color="C1", label="regression")
    axes[1].axhline(scores["imitation"]["train_one_step_loss"], color="C0", ls="--",
                    label="imitation's model")
    axes[1].set(xlabel="regression iteration", ylabel="one-step loss (train)",
                title="one-step prediction loss")
    axes[1].legend()
    # Unwrapped along time, so that a swing through +-pi reads as the turn it is.
    loops = {k: np.unwrap(np.array(v), axis=0) for k, v in results["loops"].items()}
    t = np.arange(loops["expert"].shape[0])
    for color, name in (("k", "expert"), ("C0", "imitation"), ("C1", "regression"),
                        ("C2", "regression+imitation")):
        for b in range(min(4, loops[name].shape[1])):
            axes[2].plot(t, loops[name][:, b], color=color, alpha=0.7,
                         label=name if b == 0 else None)
    axes[2].set(xlabel="closed-loop step (dt 0.05 s)",
                ylabel="th (rad, unwrapped; upright at 0 and +-2 pi)",
                title="closed loop on the true pendulum (held-out states)")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--out", default="learned_dynamics_out")
    parser.add_argument("--quick", action="store_true", help="a few iterations (the test's run)")
    args = parser.parse_args()
    setting = QUICK if args.quick else Setting()
    torch.set_default_dtype(torch.float64)
    os.makedirs(args.out, exist_ok=True)
    with mpcd.Client(args.target, timeout=300) as client:
        results = run(setting, client)
    with open(os.path.join(args.out, "learned_dynamics.json"), "w") as f:
        json.dump({k: v for k, v in results.items() if k != "loops"}, f, indent=2)
    plot(results, os.path.join(args.out, "learned_dynamics.png"))
    for name, score in results["scores"].items():
        print(name, json.dumps(score))
    print("seconds", json.dumps(results["seconds"]))


if __name__ == "__main__":
    main()
