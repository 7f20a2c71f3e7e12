#!/usr/bin/python3
"""Imitation learning through mpcd (Amos et al., "Differentiable MPC for End-to-end Planning and
Control", NeurIPS 2018, §5): learn the dynamics parameters or the cost of the pendulum and the
cartpole from expert trajectories, by gradient descent through mpcd.torch.MPC against a running mpcd.

The expert is MPC with the true parameters (mpc.pytorch's env_dx models and get_true_obj cost),
solved by mpcd from a seeded batch of initial states. The learner starts from perturbed
parameters, solves the same problems with its own, and descends the imitation loss
    L = mean over batch, t of ||x_t - x*_t||^2 + ||u_t - u*_t||^2
with Adam, the gradient coming from mpcd's Backward in the chosen mode (DEFAULT: mpc.pytorch's
gradient; EXACT: the true derivative of the solution map). Results: docs/imitation.md.

    make build && build/bin/mpcd --port=50051 &
    PYTHONPATH=client/python:build/python /usr/bin/python3 examples/imitation_learning.py \
        --target=localhost:50051 --out=build/imitation [--json=results.json]
"""

import argparse
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
from mpcd.torch import MPC, CartpoleDx, PendulumDx, QuadCost  # noqa: E402

ENVS = {"pendulum": PendulumDx, "cartpole": CartpoleDx}


@dataclasses.dataclass
class Setting:
    """One learning problem: which environment, what is learned, how."""
    env: str                     # "pendulum" or "cartpole"
    learn: str                   # "dynamics" (model params) or "cost" (goal weights)
    mode: str = "DEFAULT"        # mpcd's gradient mode
    iterations: int = 100
    optimizer: str = "adam"      # "adam" or "sgd" (plain gradient descent)
    lr: float = 0.05
    lr_decay: float = 0.1        # the step shrinks by this factor over the run (exponentially)
    n_batch: int = 16
    T: int = 20
    perturbation: float = 0.3    # initial parameters: truth * (1 +- this), seeded
    which: tuple = ()            # indices of the learned parameters (empty: all)
    max_angle: float = 1.0       # initial th uniform in [-max_angle, max_angle] (0 = upright)
    seed: int = 0
    lqr_iter: int = 200
    eps: float = 1e-8


def initial_states(env, n_batch, max_angle, rng):
    """Seeded initial states, th = 0 upright, in mpc.pytorch's state encoding."""
    th = rng.uniform(-max_angle, max_angle, n_batch)
    dth = rng.uniform(-1.0, 1.0, n_batch)
    if env == "pendulum":
        x = np.stack([np.cos(th), np.sin(th), dth], axis=1)
    else:
        pos, vel = rng.uniform(-0.5, 0.5, n_batch), rng.uniform(-0.5, 0.5, n_batch)
        x = np.stack([pos, vel, np.cos(th), np.sin(th), dth], axis=1)
    return torch.tensor(x, dtype=torch.float64)


def cost_from_weights(env_dx, goal_weights):
    """mpc.pytorch's get_true_obj with the given state weights: C = diag([w, ctrl_penalty]),
    c = [-sqrt(w) * goal, 0]."""
    q = torch.cat((goal_weights, env_dx.ctrl_penalty * torch.ones(env_dx.n_ctrl)))
    p = torch.cat((-torch.sqrt(goal_weights) * env_dx.goal_state, torch.zeros(env_dx.n_ctrl)))
    return QuadCost(torch.diag(q), p)


class Learner:
    """The learned quantities as log-parameters (positive by construction), the truth beside."""

    def __init__(self, setting, truth, rng):
        self.truth = truth.clone()
        which = list(setting.which) or list(range(len(truth)))
        self.which = which
        signs = rng.choice([-1.0, 1.0], len(which))
        start = truth.clone()
        start[which] = truth[which] * (1.0 + setting.perturbation * signs)
        self.log_learned = torch.log(start[which]).requires_grad_(True)

    def values(self):
        values = self.truth.clone()
        values[self.which] = torch.exp(self.log_learned)
        return values

    def relative_error(self):
        """The largest relative error of a learned parameter."""
        with torch.no_grad():
            error = (self.values() - self.truth).abs() / self.truth.abs()
            return error[self.which].max().item()


def run(setting, client, log=None):
    """Runs one learning problem; returns the per-iteration history."""
    torch.manual_seed(setting.seed)
    rng = np.random.default_rng(setting.seed)
    env = ENVS[setting.env]()
    true_params = env_default_params(client, setting.env)
    x_init = initial_states(setting.env, setting.n_batch, setting.max_angle, rng)
    mpc = MPC(env.n_state, env.n_ctrl, setting.T, u_lower=env.lower, u_upper=env.upper,
              lqr_iter=setting.lqr_iter, eps=setting.eps, exit_unconverged=False,
              detach_unconverged=False, verbose=-1, client=client, gradient_mode=setting.mode)

    with torch.no_grad():
        x_expert, u_expert, _ = mpc(x_init, cost_from_weights(env, env.goal_weights),
                                    ENVS[setting.env](true_params))

    truth = true_params if setting.learn == "dynamics" else env.goal_weights
    learner = Learner(setting, truth, rng)
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[setting.optimizer](
        [learner.log_learned], lr=setting.lr)
    # A shrinking step, so that the end shows where each gradient leads rather than Adam's jitter.
    schedule = torch.optim.lr_scheduler.ExponentialLR(
        optimizer, setting.lr_decay ** (1.0 / setting.iterations))
    history = {"loss": [], "param_error": [], "seconds": [], "unconverged": []}
    start = time.perf_counter()
    for it in range(setting.iterations + 1):
        values = learner.values()
        if setting.learn == "dynamics":
            cost, dx = cost_from_weights(env, env.goal_weights), ENVS[setting.env](values)
        else:
            cost, dx = cost_from_weights(env, values), ENVS[setting.env](true_params)
        x, u, _ = mpc(x_init, cost, dx)
        loss = (((x - x_expert) ** 2).sum(-1) + ((u - u_expert) ** 2).sum(-1)).mean()
        history["loss"].append(loss.item())
        history["param_error"].append(learner.relative_error())
        history["seconds"].append(time.perf_counter() - start)
        history["unconverged"].append(sum(s != "CONVERGED" for s in mpc.last_statuses))
        if log is not None and (it % 20 == 0 or it == setting.iterations):
            log("%s %s %s it %3d: loss %.3e, param error %.3e, params %s, unconverged %d" % (
                setting.env, setting.learn, setting.mode, it, loss.item(),
                learner.relative_error(), np.round(values.detach().numpy(), 4).tolist(),
                history["unconverged"][-1]))
        if it == setting.iterations:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    history["final_params"] = values.detach().tolist()
    history["truth"] = truth.tolist()
    history["learned"] = learner.which
    return history


_DEFAULT_PARAMS = {}


def env_default_params(client, name):
    """The model's true (default) parameters, from the server's ListModels."""
    if name not in _DEFAULT_PARAMS:
        for model in client.models():
            _DEFAULT_PARAMS[model.name] = torch.tensor(model.default_params, dtype=torch.float64)
    return _DEFAULT_PARAMS[name].clone()


# The experiments of docs/imitation.md. Each learns the identifiable parameters (docs/imitation.md,
# "What can be learned"): the pendulum's dynamics depend on g/l and 1/(m l^2) only, so l stays at
# its true value; on the unit circle cos^2 + sin^2 = 1 makes the cos and sin goal weights nearly
# redundant, so the sin weight stays at its true value.
EXPERIMENTS = {
    "pendulum/dynamics": dict(env="pendulum", learn="dynamics", which=(0, 1), max_angle=3.0,
                              iterations=150),
    # The pole's mass (0.1 kg on a 1 kg cart) moves the trajectories little: a long run.
    "cartpole/dynamics": dict(env="cartpole", learn="dynamics", max_angle=0.6, iterations=600,
                              lr=0.1, lr_decay=0.3),
    # The imitation loss is much flatter in the cost weights: larger, slower-shrinking steps.
    "pendulum/cost": dict(env="pendulum", learn="cost", which=(0, 2), max_angle=1.0,
                          iterations=300, lr=0.1, lr_decay=0.3),
    "cartpole/cost": dict(env="cartpole", learn="cost", which=(0, 1, 2, 4), max_angle=0.6,
                          iterations=300, lr=0.1, lr_decay=0.3),
}
MODES = ("DEFAULT", "EXACT")


def first_below(values, threshold):
    """The first iteration from which values stay below threshold (None if never)."""
    for i in range(len(values)):
        if all(v < threshold for v in values[i:]):
            return i
    return None


def summarize(results, seeds):
    """Markdown table: per experiment and mode, the median over seeds of the final parameter
    error (the largest relative error of a learned parameter), the final loss, and the iteration
    from which the error stays below 1%."""
    lines = ["| experiment | mode | final param error (median, worst) | final loss (median) | "
             "iterations to < 1% error (median, worst) | seconds per iteration |",
             "|---|---|---|---|---|---|"]
    for name in EXPERIMENTS:
        for mode in MODES:
            runs = [results["%s/%s/%d" % (name, mode, seed)] for seed in seeds]
            errors = [r["param_error"][-1] for r in runs]
            losses = [r["loss"][-1] for r in runs]
            reach = [first_below(r["param_error"], 0.01) for r in runs]
            reached = [r for r in reach if r is not None]
            reach_text = ("%d, %d" % (np.median(reached), max(reached)) if len(reached) == len(reach)
                          else "%d of %d runs never" % (len(reach) - len(reached), len(reach)))
            per_iteration = np.median([r["seconds"][-1] / (len(r["seconds"]) - 1) for r in runs])
            lines.append("| %s | %s | %.2e, %.2e | %.2e | %s | %.3f |" % (
                name, mode, np.median(errors), max(errors), np.median(losses), reach_text,
                per_iteration))
    return "\n".join(lines)


def plot(results, seeds, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(EXPERIMENTS)
    figure, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7), squeeze=False)
    colors = {"DEFAULT": "tab:orange", "EXACT": "tab:blue"}
    for column, name in enumerate(names):
        for row, key in enumerate(("loss", "param_error")):
            ax = axes[row][column]
            for mode in MODES:
                curves = np.array([results["%s/%s/%d" % (name, mode, seed)][key] for seed in seeds])
                for curve in curves:
                    ax.semilogy(curve, color=colors[mode], alpha=0.25, linewidth=0.8)
                ax.semilogy(np.median(curves, axis=0), color=colors[mode], linewidth=2,
                            label="%s (median of %d)" % (mode, len(seeds)))
            if key == "param_error":
                ax.axhline(0.01, color="gray", linestyle=":", linewidth=1)
            ax.set_title("%s: %s" % (name, "imitation loss" if key == "loss"
                                     else "max relative param. error"), fontsize=10)
            ax.set_xlabel("iteration")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--out", default=os.path.join(_REPO, "build", "imitation"),
                        help="folder for imitation.png (docs/imitation.png is the committed copy)")
    parser.add_argument("--json", default="", help="also write every run's history here")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS))
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    client = mpcd.Client(args.target, timeout=120, wait_for_ready=True)
    seeds = list(range(args.seeds))
    selected = args.experiments.split(",")
    for name in list(EXPERIMENTS):
        if name not in selected:
            del EXPERIMENTS[name]
    results = {}
    for name, fields in EXPERIMENTS.items():
        for mode in MODES:
            for seed in seeds:
                setting = Setting(mode=mode, seed=seed, **fields)
                results["%s/%s/%d" % (name, mode, seed)] = run(setting, client, log=print)
    os.makedirs(args.out, exist_ok=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"experiments": {k: dict(v, which=list(v.get("which", ())))
                                       for k, v in EXPERIMENTS.items()},
                       "seeds": seeds, "runs": results}, f)
    plot(results, seeds, os.path.join(args.out, "imitation.png"))
    print(summarize(results, seeds))


if __name__ == "__main__":
    main()
