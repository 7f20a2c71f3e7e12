#!/usr/bin/python3
"""Problem.tracking (mpcd.proto's TrackingCost) through mpcd.Client and a real mpcd process.

The pendulum swinging to a moving goal: the solve equals the one with the quadratic cost C, c the
tracking cost stands for (built here with numpy from its definition), Backward's dL/d(goals,
weights) agree with central differences of the converged solve, the protobuf JSON of
examples/pendulum_tracking.json solves, and bad input is INVALID_ARGUMENT naming the field.

Usage: tracking_test.py --mpcd build/bin/mpcd --package-dir client/python --stubs-dir build/python
         --examples-dir examples [unittest args]
"""

import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import class_client, client_test_args, module_server  # noqa: E402

ARGS = None
SERVER = None
T, N, M = 10, 3, 1  # the pendulum: (cos th, sin th, dth), torque
TIGHT = {"max_iterations": 100, "tolerance": 1e-10}


setUpModule, tearDownModule = module_server(globals(), "--backend=cpu")


def tracking_inputs(seed):
    rng = np.random.RandomState(seed)
    angle = np.linspace(0.3, 1.2, T)
    x_goal = np.stack([np.cos(angle), np.sin(angle), np.zeros(T)], axis=1)  # (T, n): moving
    return mpcd.Tracking(x_goal=x_goal, u_goal=np.array([0.1]),
                         w_x=rng.uniform(0.5, 2.0, N), w_u=rng.uniform(0.05, 0.2, (T, M)),
                         w_x_terminal=np.array([5.0, 5.0, 1.0]))


def per_step(array, k):
    array = np.asarray(array, dtype=np.float64)
    return np.broadcast_to(array, (T, k)) if array.ndim == 1 else array


def quadratic_cost(tracking):
    """C (T, n+m, n+m), c (T, n+m) of the tracking cost, from its definition."""
    w_x = per_step(tracking.w_x, N).copy()
    w_x[-1] = tracking.w_x_terminal
    w = np.concatenate([w_x, per_step(tracking.w_u, M)], axis=1)
    goal = np.concatenate([per_step(tracking.x_goal, N), per_step(tracking.u_goal, M)], axis=1)
    return np.stack([np.diag(row) for row in w]), -w * goal


def x_init():
    return np.array([np.cos(0.2), np.sin(0.2), 0.0])


class TrackingTest(unittest.TestCase):

    setUpClass, tearDownClass = class_client(globals(), timeout=60)

    def solve(self, problem):
        result = self.client.solve(T, [problem], options=TIGHT)
        solution = result.solutions[0]
        # At the optimum: converged, or stopped by the iteration cap within rounding of it.
        self.assertTrue(solution.status == "CONVERGED" or solution.step_norm < 1e-9,
                        (solution.status, solution.step_norm))
        return solution

    def tracking_problem(self, tracking):
        return mpcd.Problem(x_init(), dynamics=mpcd.Model("pendulum"), tracking=tracking)

    def test_solution_is_that_of_the_quadratic_cost_it_stands_for(self):
        tracking = tracking_inputs(1)
        C, c = quadratic_cost(tracking)
        by_tracking = self.solve(self.tracking_problem(tracking))
        by_cost = self.solve(mpcd.Problem(x_init(), C, c, mpcd.Model("pendulum")))
        np.testing.assert_allclose(by_tracking.u, by_cost.u, rtol=0, atol=1e-12)
        np.testing.assert_allclose(by_tracking.x, by_cost.x, rtol=0, atol=1e-12)

    def loss(self, tracking, rx, ru):
        solution = self.solve(self.tracking_problem(tracking))
        return float(np.sum(rx * solution.x) + np.sum(ru * solution.u))

    def test_gradients_match_central_differences(self):
        tracking = tracking_inputs(2)
        problem = self.tracking_problem(tracking)
        solution = self.solve(problem)
        rng = np.random.RandomState(3)
        rx, ru = rng.randn(T, N), rng.randn(T, M)
        gradient = self.client.backward(T, [problem], [solution], [(rx, ru)],
                                        mode="EXACT").gradients[0]
        self.assertIsNone(gradient.C)
        self.assertIsNotNone(gradient.tracking)
        eps = 1e-4  # solves converge to 1e-10: the differences carry about 1e-6 of noise
        for name in ("x_goal", "u_goal", "w_x", "w_u", "w_x_terminal"):
            value = np.asarray(getattr(tracking, name), dtype=np.float64)
            analytic = getattr(gradient.tracking, name)
            self.assertEqual(analytic.shape, value.shape, name)
            for index in np.ndindex(value.shape):
                plus, minus = value.copy(), value.copy()
                plus[index] += eps
                minus[index] -= eps
                numeric = (self.loss(mpcd.Tracking(**{**vars(tracking), name: plus}), rx, ru)
                           - self.loss(mpcd.Tracking(**{**vars(tracking), name: minus}), rx, ru)
                           ) / (2 * eps)
                self.assertAlmostEqual(analytic[index], numeric,
                                       delta=1e-5 * (1 + abs(numeric)),
                                       msg="%s%s" % (name, index))

    def test_batched_goals_and_stacked_gradients_are_each_problems(self):
        # Each problem's start and goal trajectory stacked in the batch, the weights shared by
        # the template.
        tracking = tracking_inputs(4)
        starts = np.stack([x_init(), x_init() * 0.9, np.array([np.cos(0.2), np.sin(0.2), 0.1])])
        goals = np.stack([tracking.x_goal, 0.9 * tracking.x_goal, tracking.x_goal + 0.05])
        template = mpcd.Problem(None, dynamics=mpcd.Model("pendulum"), tracking=mpcd.Tracking(
            **{**vars(tracking), "x_goal": None}))
        batch = mpcd.Batch(x_init=starts, tracking=mpcd.Tracking(x_goal=goals))
        solutions = self.client.solve_batched(T, batch, template=template, options=TIGHT)
        rng = np.random.RandomState(5)
        rx, ru = rng.randn(len(starts), T, N), rng.randn(len(starts), T, M)
        stacked = self.client.backward_batched(T, batch, solutions, rx, ru, template=template,
                                               mode="EXACT")
        self.assertIsNone(stacked.C)
        for b, start in enumerate(starts):
            problem = self.tracking_problem(mpcd.Tracking(**{**vars(tracking),
                                                             "x_goal": goals[b]}))
            problem.x_init = start
            alone = self.solve(problem)
            np.testing.assert_array_equal(solutions.u[b], alone.u)
            own = self.client.backward(T, [problem], [(solutions.x[b], solutions.u[b])],
                                       [(rx[b], ru[b])], mode="EXACT").gradients[0]
            for name in ("x_goal", "u_goal", "w_x", "w_u", "w_x_terminal"):
                np.testing.assert_array_equal(getattr(stacked.tracking, name)[b],
                                              getattr(own.tracking, name), err_msg=name)

    def test_json_example_solves(self):
        with open(os.path.join(ARGS.examples_dir, "pendulum_tracking.json")) as f:
            request = json_format.Parse(f.read(), mpcd_pb2.SolveRequest())
        self.assertTrue(request.problems[0].HasField("tracking"))
        response = self.client.stub.Solve(request, timeout=60)
        solution = response.solutions[0]
        x = np.asarray(solution.x.data).reshape(tuple(solution.x.shape))
        goal = np.asarray(request.problems[0].tracking.x_goal.data)
        # It swings up: the last state is much closer to the goal than the first.
        self.assertLess(np.linalg.norm(x[-1] - goal), 0.25 * np.linalg.norm(x[0] - goal))

    def test_bad_input_names_the_field(self):
        tracking = tracking_inputs(4)
        cases = [
            (mpcd.Problem(x_init(), np.eye(N + M), dynamics=mpcd.Model("pendulum"),
                          tracking=tracking), "problems[0].tracking: give either tracking or cost"),
            (self.tracking_problem(mpcd.Tracking(**{**vars(tracking), "w_x": -np.ones(N)})),
             "problems[0].tracking.w_x: weights must be >= 0"),
            (self.tracking_problem(mpcd.Tracking(**{**vars(tracking), "x_goal": np.zeros(N + 1)})),
             "problems[0].tracking.x_goal: expected shape (3) or (10,3), got (4)"),
            (self.tracking_problem(mpcd.Tracking(**{**vars(tracking),
                                                    "u_goal": np.array([np.nan])})),
             "problems[0].tracking.u_goal"),
        ]
        for problem, message in cases:
            with self.assertRaises(mpcd.InvalidArgumentError) as raised:
                self.client.solve(T, [problem])
            self.assertIn(message, str(raised.exception))


def main():
    global ARGS, mpcd, mpcd_pb2, json_format
    ARGS, argv = client_test_args("--examples-dir")
    import mpcd
    from google.protobuf import json_format
    from mpcd.v1 import mpcd_pb2
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
