#!/usr/bin/python3
"""Control sessions: per-step latency of real-time iteration (SQP-RTI: one iLQR iteration from the
shifted plan) against the full solve, over a real mpcd on loopback.

For each mode a fresh session runs a closed loop of --steps steps: the plant is the model itself
(the next measured state is the plan's x[1], plus a small seeded disturbance), so both modes see
the same kind of trajectory. Each step's latency is measured by the client (send to answer);
the closed-loop cost is the sum of the stage costs of the states and controls applied. One JSON
object per mode on stdout.

  bench/control_rti.py --mpcd build/bin/mpcd --model cartpole --horizon 40 --steps 300 \\
      --max_iterations 50 [--theta0 0.1]

Needs the Python package's stubs: PYTHONPATH=client/python:build/python.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "testing"))
from mpcd_harness import Mpcd  # noqa: E402

import mpcd  # noqa: E402

def problem_fields(model, theta0):
    """The swing-up (or balance) problem from angle theta0 (0 = upright, pi = hanging down; exactly
    pi is a stationary point where the solver's answer is u = 0); the cost pulls to upright."""
    if model == "pendulum":
        return dict(x_init=[np.cos(theta0), np.sin(theta0), 0.0],
                    C=np.diag([1.0, 1.0, 0.1, 0.001]), c=[-1.0, 0.0, 0.0, 0.0],
                    dynamics=mpcd.Model("pendulum"), u_lower=[-2.0], u_upper=[2.0])
    return dict(x_init=[0.0, 0.0, np.cos(theta0), np.sin(theta0), 0.0],
                C=np.diag([0.1, 0.1, 1.0, 1.0, 0.1, 0.001]), c=[0.0, 0.0, -1.0, 0.0, 0.0, 0.0],
                dynamics=mpcd.Model("cartpole"), u_lower=[-10.0], u_upper=[10.0])


COS_THETA = {"pendulum": 0, "cartpole": 2}  # where cos(theta) is in the state


def run(client, args, real_time_iteration):
    fields = problem_fields(args.model, args.theta0)
    C, c = np.asarray(fields["C"]), np.asarray(fields["c"])
    problem = mpcd.Problem(**fields)
    rng = np.random.default_rng(args.seed)
    latencies, iterations, cost, upright = [], [], 0.0, 0
    options = {"max_iterations": args.max_iterations}
    with client.control(args.horizon, problem, options=options,
                        real_time_iteration=real_time_iteration) as session:
        step = session.first
        for _ in range(args.steps):
            tau = np.concatenate([step.plan.x[0], step.u0])
            cost += 0.5 * tau @ C @ tau + c @ tau
            upright += int(step.plan.x[0][COS_THETA[args.model]] > 0.95)
            x = step.plan.x[1] + args.disturbance * rng.standard_normal(step.plan.x.shape[1])
            started = time.perf_counter()
            step = session.step(x)
            latencies.append(time.perf_counter() - started)
            iterations.append(step.plan.iterations)
    latencies.sort()
    return {
        "mode": "rti" if real_time_iteration else "full",
        "model": args.model, "theta0": args.theta0, "horizon": args.horizon, "steps": args.steps,
        "max_iterations": args.max_iterations,
        "latency_ms_p50": 1e3 * statistics.median(latencies),
        "latency_ms_p99": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "latency_ms_max": 1e3 * latencies[-1],
        "iterations_mean": statistics.mean(iterations),
        "closed_loop_cost": cost,
        "steps_upright": upright,  # cos(theta) > 0.95
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mpcd", required=True)
    parser.add_argument("--model", choices=("cartpole", "pendulum"), default="cartpole")
    parser.add_argument("--theta0", type=float, default=np.pi - 0.3,
                        help="start angle in rad: 0 = upright (balance), pi = hanging (swing-up)")
    parser.add_argument("--horizon", type=int, default=40)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--max_iterations", type=int, default=50)
    parser.add_argument("--disturbance", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    server = Mpcd(args.mpcd, "--backend=cpu", "--threads=%d" % args.threads,
                  "--max_queue_delay_us=0")
    try:
        with mpcd.Client(server.target, timeout=30) as client:
            for real_time_iteration in (False, True):
                print(json.dumps(run(client, args, real_time_iteration)), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
