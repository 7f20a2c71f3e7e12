#!/usr/bin/python3
"""State bounds and general stage constraints through a real mpcd, against a dense QP solver.

Random LQR problems (stable and unstable dynamics, time-varying bounds, with and without control
bounds) with active state bounds and affine constraints G tau <= h: mpcd's x*, u* equal cvxopt's
QP solution, polished on its active set (the equality-constrained KKT system solved exactly), to
1e-7. An infeasible problem answers INFEASIBLE; a pendulum with an angular velocity bound keeps
it; mpcd.torch.MPC's x_lower/x_upper; Control sessions keep them; the same JSON request through mpcctl; invalid constraint inputs are INVALID_ARGUMENT naming
the field. Their gradients: constrained_gradients_test.py.

Usage: state_constraints_test.py --mpcd build/bin/mpcd --mpcctl build/bin/mpcctl
         --package-dir client/python --stubs-dir build/python [unittest args]
"""

import json
import os
import subprocess
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import class_client, client_test_args, module_server  # noqa: E402
from constrained_qp import (OPTIONS, DenseQp, cutting_bounds, cutting_rows,  # noqa: E402
                           random_lqr, random_lqr_grid, stacked_lqr, stage_rows)

ARGS = None
SERVER = None


setUpModule, tearDownModule = module_server(globals(), "--backend=cpu")


class StateConstraintsTest(unittest.TestCase):

    setUpClass, tearDownClass = class_client(globals(), timeout=120)

    def solve(self, T, problem, **options):
        result = self.client.solve(T, [problem], options=dict(OPTIONS, **options))
        return result.solutions[0]

    def check_against_qp(self, seed, unstable, varying, control_bounds, general):
        rng = np.random.RandomState(seed)
        n, m, T = 4, 2, 10
        C, c, F, f, x_init = random_lqr(rng, n, m, T, unstable, varying)
        base = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f))
        kwargs = {}
        if control_bounds:
            kwargs["u_lower"], kwargs["u_upper"] = -np.ones(m), np.ones(m)
            base.u_lower, base.u_upper = kwargs["u_lower"], kwargs["u_upper"]
        free = self.solve(T, base)
        self.assertEqual(free.status, "CONVERGED")
        lower, upper = cutting_bounds(free.x, n, T, varying)
        G, h = cutting_rows(rng, free.x, free.u) if general else (None, None)
        problem = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                               x_lower=lower, x_upper=upper,
                               constraints=None if G is None else (G, h), **kwargs)
        solution = self.solve(T, problem)
        qp = DenseQp(C, c, F, f, x_init,
                     stage_rows(n, m, T, lower, upper, kwargs.get("u_lower"),
                                kwargs.get("u_upper"), G, h))
        z, active = qp.solve()
        self.assertGreater(active, 0)
        x, u = qp.trajectories(z, x_init)
        label = "seed %d unstable %s varying %s control bounds %s general %s" % (
            seed, unstable, varying, control_bounds, general)
        self.assertEqual(solution.status, "CONVERGED", label)
        np.testing.assert_allclose(solution.x, x, rtol=0, atol=1e-7, err_msg=label)
        np.testing.assert_allclose(solution.u, u, rtol=0, atol=1e-7, err_msg=label)
        self.assertLessEqual(solution.max_constraint_violation, 1e-10)
        self.assertGreater(solution.cost, free.cost)

    def test_random_lqr_matches_the_dense_qp(self):
        cases = 0
        for seed, unstable, varying, control_bounds in random_lqr_grid(4):
            with self.subTest(seed=seed, unstable=unstable, varying=varying,
                              control_bounds=control_bounds):
                self.check_against_qp(seed, unstable, varying, control_bounds, general=seed == 3)
                cases += 1
        self.assertEqual(cases, 32)

    def test_infeasible_bounds_answer_infeasible(self):
        rng = np.random.RandomState(7)
        n, m, T = 3, 1, 6
        C, c, F, f, x_init = random_lqr(rng, n, m, T)
        problem = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                               u_lower=[-0.01], u_upper=[0.01],
                               x_lower=[50.0, -np.inf, -np.inf])
        solution = self.solve(T, problem)
        self.assertEqual(solution.status, "INFEASIBLE")
        self.assertGreater(solution.max_constraint_violation, 40.0)
        self.assertTrue(np.all(np.isfinite(solution.x)) and np.all(np.isfinite(solution.u)))

    def test_pendulum_angular_velocity_bound_holds(self):
        problem = mpcd.Problem(
            x_init=np.array([np.cos(np.pi - 0.3), np.sin(np.pi - 0.3), 0.0]),
            C=np.diag([1.0, 1.0, 0.1, 0.001]), c=np.array([-1.0, 0.0, 0.0, 0.0]),
            dynamics=mpcd.Model("pendulum"), u_lower=[-2.0], u_upper=[2.0],
            x_lower=[-np.inf, -np.inf, -1.5], x_upper=[np.inf, np.inf, 1.5])
        solution = self.solve(30, problem, max_iterations=200, tolerance=1e-8,
                              constraint_tolerance=1e-8)
        self.assertNotIn(solution.status, ("INFEASIBLE", "NOT_FINITE"))
        self.assertLessEqual(np.abs(solution.x[1:, 2]).max(), 1.5 + 1e-8)
        self.assertLessEqual(solution.max_constraint_violation, 1e-8)
        free = mpcd.Problem(x_init=problem.x_init, C=problem.C, c=problem.c,
                            dynamics=problem.dynamics, u_lower=[-2.0], u_upper=[2.0])
        unbounded = self.solve(30, free, max_iterations=200, tolerance=1e-8)
        self.assertGreater(np.abs(unbounded.x[1:, 2]).max(), 1.5)  # the bound binds

    def test_invalid_inputs_name_the_field(self):
        n, m, T = 3, 1, 5
        rng = np.random.RandomState(0)
        C, c, F, f, x_init = random_lqr(rng, n, m, T)

        def problem(**kwargs):
            return mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                                **kwargs)
        cases = [
            (problem(x_lower=[0, 0, 1], x_upper=[1, 1, 0]),
             "problems[0].x_lower: must be <= x_upper at [0,2]"),
            (problem(x_upper=[1, np.nan, 1]), "problems[0].x_upper: not a number"),
            (problem(x_lower=np.zeros((T - 1, n))), "problems[0].x_lower: expected shape (3) or"),
            (problem(constraints=(np.ones((2, n + m + 1)), np.ones(2))),
             "problems[0].constraints.G: expected shape (k,4) or (5,k,4)"),
            (problem(constraints=(np.ones((2, n + m)), np.ones(3))),
             "problems[0].constraints.h: expected shape (2) or (5,2)"),
            (problem(constraints=(np.ones((2, n + m)), np.array([1.0, np.inf]))),
             "problems[0].constraints.h: not finite"),
        ]
        for p, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(mpcd.MpcdError) as caught:
                    self.client.solve(T, [p])
                self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn(message, caught.exception.details)

    def test_torch_mpc_takes_state_bounds(self):
        # mpcd.torch.MPC(..., x_lower=, x_upper=) with LinDx: the bounds hold and the answer is
        # the one mpcd.Client gets for each problem of the batch.
        rng = np.random.RandomState(5)
        n, m, T, B = 3, 2, 8, 2
        problems = [random_lqr(rng, n, m, T) for _ in range(B)]
        C, c, F, f, x_init = (torch.tensor(a) for a in stacked_lqr(problems))
        upper = np.array([0.05, np.inf, np.inf])
        x, u, _ = MPC(n, m, T, x_upper=upper, lqr_iter=100, eps=1e-12, backprop=False,
                      exit_unconverged=False, client=self.client)(
            x_init, QuadCost(C, c), LinDx(F, f))
        self.assertLessEqual(x[1:, :, 0].max().item(), 0.05 + 1e-8)
        free, _, _ = MPC(n, m, T, lqr_iter=100, eps=1e-12, backprop=False,
                         exit_unconverged=False, client=self.client)(
            x_init, QuadCost(C, c), LinDx(F, f))
        self.assertGreater(free[1:, :, 0].max().item(), 0.1)  # the bound binds
        for b, (Cb, cb, Fb, fb, xb) in enumerate(problems):
            want = self.client.solve(T, [mpcd.Problem(
                x_init=xb, C=Cb, c=cb, dynamics=mpcd.Linear(F=Fb, f=fb), x_upper=upper)],
                options={"max_iterations": 100, "tolerance": 1e-12}).solutions[0]
            np.testing.assert_allclose(x[:, b].numpy(), want.x, rtol=0, atol=1e-12)
            np.testing.assert_allclose(u[:, b].numpy(), want.u, rtol=0, atol=1e-12)

    def test_control_sessions_carry_the_constraints(self):
        # Every step's plan keeps the bound; the first plan is Solve's answer (with gains).
        rng = np.random.RandomState(11)
        n, m, T = 3, 2, 8
        C, c, F, f, x_init = random_lqr(rng, n, m, T)
        problem = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                               x_upper=[0.1, np.inf, np.inf])
        options = {"max_iterations": 100, "tolerance": 1e-12}
        solved = self.client.solve(T, [problem], options=options,
                                   return_gains=True).solutions[0]
        free = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f))
        self.assertGreater(self.solve(T, free).x[1:, 0].max(), 0.15)  # the bound binds
        with self.client.control(T, problem, options=options) as session:
            np.testing.assert_array_equal(session.first.plan.x, solved.x)
            np.testing.assert_array_equal(session.first.plan.u, solved.u)
            x = session.first.plan.x[1]
            for _ in range(5):
                step = session.step(x)
                self.assertEqual(step.plan.status, "CONVERGED")
                self.assertLessEqual(step.plan.x[1:, 0].max(), 0.1 + 1e-8)
                self.assertLessEqual(step.plan.max_constraint_violation, 1e-8)
                x = step.plan.x[1]

    def test_json_through_mpcctl(self):
        # Protobuf JSON: +-inf bounds as "Infinity" strings; the answer carries the status and
        # the violation.
        request = {
            "horizon": 6,
            "options": {"max_iterations": 100, "constraint_tolerance": 1e-9},
            "problems": [{
                "x_init": {"shape": [2], "data": [1.0, 0.0]},
                "cost": {"quadratic": {"shape": [3, 3], "data": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
                         "linear": {"shape": [3], "data": [0, -1, 0]}},
                "dynamics": {"linear": {"transition": {
                    "shape": [2, 3], "data": [1, 0.1, 0, 0, 1, 0.1]}}},
                "x_upper": {"shape": [2], "data": ["Infinity", 0.08]},
                "constraints": {"G": {"shape": [1, 3], "data": [0, 0, 1]},
                                "h": {"shape": [1], "data": [0.25]}},
            }],
        }
        result = subprocess.run([ARGS.mpcctl, "solve", "--local", "--request=-"],
                                input=json.dumps(request), capture_output=True, text=True,
                                timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        solution = json.loads(result.stdout)["solutions"][0]
        self.assertEqual(solution["status"], "CONVERGED")
        x = np.array(solution["x"]["data"]).reshape(6, 2)
        u = np.array(solution["u"]["data"])
        self.assertLessEqual(x[1:, 1].max(), 0.08 + 1e-9)
        self.assertLessEqual(u.max(), 0.25 + 1e-9)
        self.assertLessEqual(solution.get("max_constraint_violation", 0.0), 1e-9)
        # Without the constraints the velocity and the control exceed both limits.
        del request["problems"][0]["x_upper"], request["problems"][0]["constraints"]
        free = subprocess.run([ARGS.mpcctl, "solve", "--local", "--request=-"],
                              input=json.dumps(request), capture_output=True, text=True,
                              timeout=120)
        free_solution = json.loads(free.stdout)["solutions"][0]
        self.assertGreater(np.array(free_solution["x"]["data"]).reshape(6, 2)[1:, 1].max(), 0.1)
        self.assertGreater(max(free_solution["u"]["data"]), 0.3)


def main():
    global ARGS, mpcd, grpc, torch, MPC, QuadCost, LinDx
    ARGS, argv = client_test_args("--mpcctl")
    import grpc
    import mpcd
    import mpcd.torch
    import torch
    from mpcd.torch import MPC, QuadCost, LinDx
    torch.set_default_dtype(torch.float64)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
