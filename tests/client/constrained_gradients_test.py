#!/usr/bin/python3
"""Gradients through state bounds and stage constraints, through a real mpcd.

Random LQR problems with active state bounds and rows of G (stable and unstable dynamics,
time-varying bounds, with and without control bounds): Backward equals the active-set KKT formula
(the adjoint of cvxopt's QP polished on its active set, dense, in numpy) and central differences of
that polished QP, to 1e-6 relative, for every input (x_init, C, c, F, f, x_lower, x_upper, G, h);
the solution's Jacobian d tau/d x_init likewise. A pendulum swing-up with an angular-velocity
bound: gradients against central differences of the whole solve. Constraints that never act
leave the gradients bitwise as without them. A row at its bound with a zero multiplier is
reported weakly active. constraint_smoothing: tau -> 0 recovers the exact gradient, tau > 0 moves
rows near their bound; a negative one is INVALID_ARGUMENT naming it. mpcd.torch.MPC's x_upper
tensor gets its gradient.

Usage: constrained_gradients_test.py --mpcd build/bin/mpcd --package-dir client/python
         --stubs-dir build/python [unittest args]
"""

import os
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


class Case:
    """One random constrained LQR problem: its data (a dict of the differentiable inputs), the
    problem built from it, and the dense QP on a fixed active set as a function of the data."""

    def __init__(self, seed, unstable, varying, control_bounds, general, solve):
        rng = np.random.RandomState(seed)
        n, m, T = 4, 2, 10
        self.n, self.m, self.T = n, m, T
        C, c, F, f, x_init = random_lqr(rng, n, m, T, unstable, varying)
        self.u_bounds = (-np.ones(m), np.ones(m)) if control_bounds else (None, None)
        self.data = {"x_init": x_init, "C": C, "c": c, "F": F, "f": f}
        free = solve(self.problem())
        self.data["x_lower"], self.data["x_upper"] = cutting_bounds(free.x, n, T, varying)
        if general:
            self.data["G"], self.data["h"] = cutting_rows(rng, free.x, free.u)
        qp = self.qp(self.data)
        self.z, active = qp.solve()
        assert active > 0
        self.active = qp.active

    def problem(self, data=None):
        d = self.data if data is None else data
        constraints = (d["G"], d["h"]) if "G" in d else None
        return mpcd.Problem(x_init=d["x_init"], C=d["C"], c=d["c"],
                            dynamics=mpcd.Linear(F=d["F"], f=d["f"]),
                            u_lower=self.u_bounds[0], u_upper=self.u_bounds[1],
                            x_lower=d.get("x_lower"), x_upper=d.get("x_upper"),
                            constraints=constraints)

    def qp(self, d):
        rows = stage_rows(self.n, self.m, self.T, d.get("x_lower"), d.get("x_upper"),
                          self.u_bounds[0], self.u_bounds[1], d.get("G"), d.get("h"))
        return DenseQp(d["C"], d["c"], d["F"], d["f"], d["x_init"], rows)

    def trajectories(self, d):
        """x, u of the QP on this case's active set, for data d."""
        qp = self.qp(d)
        return qp.trajectories(qp.polish(self.active), d["x_init"])

    def loss(self, d, dl_dx, dl_du):
        x, u = self.trajectories(d)
        return np.sum(dl_dx * x) + np.sum(dl_du * u)

    def central_difference(self, name, direction, dl_dx, dl_du, eps=1e-6):
        def shifted(sign):
            d = dict(self.data)
            d[name] = self.data[name] + sign * eps * direction
            return self.loss(d, dl_dx, dl_du)
        return (shifted(1) - shifted(-1)) / (2 * eps)

    def kkt_gradient_of_bounds(self, dl_dx, dl_du):
        """dL/dx_lower, dL/dx_upper, dL/dh by the adjoint of the polished KKT system: the loss is
        w'z (+ a constant), so dL/d rhs = K^-T [w; 0], and each active row's bound is one entry of
        rhs (x_lower's row is -x_t[i] <= -x_lower: the sign flips)."""
        qp = self.qp(self.data)
        K, _ = qp.kkt(self.active)
        m, T = self.m, self.T
        w = np.concatenate([dl_dx[1:].ravel(), dl_du.ravel()])
        adjoint = np.linalg.solve(K.T, np.concatenate([w, np.zeros(K.shape[0] - w.size)]))
        per_row = adjoint[w.size + qp.A.shape[0]:]
        d_row = np.zeros(len(self.active))
        d_row[self.active] = per_row
        # Walk the rows in stage_rows' order and gather them per input.
        out = {name: np.zeros_like(self.data[name]) for name in ("x_lower", "x_upper", "h")
               if name in self.data}
        index = 0
        lower, upper = self.data["x_lower"], self.data["x_upper"]
        for t in range(T):
            for name, bound, sign in (("x_upper", upper, 1), ("x_lower", lower, -1)):
                values = bound[t] if bound.ndim == 2 else bound
                if t == 0:
                    continue
                for i, v in enumerate(values):
                    if np.isfinite(v):
                        target = out[name][t] if bound.ndim == 2 else out[name]
                        target[i] += sign * d_row[index]
                        index += 1
            for _ in range(m if self.u_bounds[0] is not None else 0):
                index += 2
            if "G" in self.data:
                for r in range(self.data["G"].shape[1]):
                    if np.any(self.data["G"][t, r] != 0):
                        out["h"][t, r] += d_row[index]
                        index += 1
        assert index == len(self.active)
        return out


class ConstrainedGradientsTest(unittest.TestCase):

    setUpClass, tearDownClass = class_client(globals(), timeout=120)

    def solve(self, T, problem, **options):
        return self.client.solve(T, [problem], options=dict(OPTIONS, **options)).solutions[0]

    def backward(self, T, problem, solution, dl_dx, dl_du, **kwargs):
        return self.client.backward(T, [problem], [solution], [(dl_dx, dl_du)], **kwargs)

    def assert_close(self, actual, expected, label, rtol=1e-6):
        scale = max(1.0, np.max(np.abs(expected)))
        np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale, err_msg=label)

    def check_case(self, seed, unstable, varying, control_bounds, general):
        case = Case(seed, unstable, varying, control_bounds, general,
                    lambda p: self.solve(10, p))
        label = "seed %d unstable %s varying %s control bounds %s general %s" % (
            seed, unstable, varying, control_bounds, general)
        problem = case.problem()
        solution = self.solve(case.T, problem)
        self.assertEqual(solution.status, "CONVERGED", label)
        rng = np.random.RandomState(100 + seed)
        dl_dx, dl_du = rng.randn(case.T, case.n), rng.randn(case.T, case.m)
        result = self.backward(case.T, problem, solution, dl_dx, dl_du)
        g = result.gradients[0]
        d = g.diagnostics
        self.assertEqual(d["status"], "GRADIENT_OK", label)
        self.assertEqual(d["active_constraints"],
                         int(case.active.sum()) - d["active_controls"], label)
        grads = {"x_init": g.x_init, "C": g.C, "c": g.c, "F": g.F, "f": g.f,
                 "x_lower": g.x_lower, "x_upper": g.x_upper}
        if general:
            grads["G"], grads["h"] = g.constraints
        # The active-set KKT formula for the bounds and h, entry by entry (zero where inactive).
        for name, expected in case.kkt_gradient_of_bounds(dl_dx, dl_du).items():
            self.assert_close(grads[name], expected, "%s: KKT dL/d%s" % (label, name))
        self.assertTrue(np.any(grads["x_upper"] != 0) or np.any(grads["x_lower"] != 0), label)
        # Central differences of the polished QP along a random direction of every input, and
        # entry by entry for the finite bound entries and h.
        for name, gradient in grads.items():
            base = case.data[name]
            direction = rng.randn(*base.shape) * np.isfinite(base)
            if name == "G":
                direction *= case.data["G"] != 0
            expected = case.central_difference(name, direction, dl_dx, dl_du)
            actual = np.sum(gradient * direction)
            self.assertAlmostEqual(actual, expected, delta=1e-6 * max(1.0, abs(expected)),
                                   msg="%s: dL/d%s along a direction" % (label, name))
        for name in ("x_lower", "x_upper", "h"):
            if name not in case.data:
                continue
            for index in zip(*np.nonzero(np.isfinite(case.data[name]))):
                direction = np.zeros(case.data[name].shape)
                direction[index] = 1.0
                expected = case.central_difference(name, direction, dl_dx, dl_du)
                self.assertAlmostEqual(grads[name][index], expected,
                                       delta=1e-6 * max(1.0, abs(expected)),
                                       msg="%s: dL/d%s%s" % (label, name, index))
        # The solution's Jacobian d tau / d x_init on the same active set.
        with_jacobian = self.client.solve(case.T, [problem], options=OPTIONS,
                                          return_x_init_jacobian=True).solutions[0]
        jacobian = with_jacobian.x_init_jacobian  # (T, n+m, n)
        for j in range(case.n):
            direction = np.zeros(case.n)
            direction[j] = 1.0
            columns = []
            for sign in (1, -1):
                d = dict(case.data, x_init=case.data["x_init"] + sign * 1e-6 * direction)
                columns.append(np.hstack(case.trajectories(d)))
            expected = (columns[0] - columns[1]) / 2e-6
            self.assert_close(jacobian[:, :, j], expected, "%s: d tau/d x_init[%d]" % (label, j))

    def test_random_lqr_gradients_match_the_kkt_formula_and_differences(self):
        cases = 0
        for seed, unstable, varying, control_bounds in random_lqr_grid(2):
            with self.subTest(seed=seed, unstable=unstable, varying=varying,
                              control_bounds=control_bounds):
                self.check_case(seed, unstable, varying, control_bounds, general=seed == 1)
                cases += 1
        self.assertEqual(cases, 16)

    def pendulum(self, x_upper):
        return mpcd.Problem(
            x_init=np.array([np.cos(np.pi - 0.3), np.sin(np.pi - 0.3), 0.0]),
            C=np.diag([1.0, 1.0, 0.1, 0.001]), c=np.array([-1.0, 0.0, 0.0, 0.0]),
            dynamics=mpcd.Model("pendulum"), u_lower=[-2.0], u_upper=[2.0],
            x_lower=[-np.inf, -np.inf, -x_upper], x_upper=[np.inf, np.inf, x_upper])

    def test_pendulum_velocity_bound_gradients_match_differences_of_the_solve(self):
        T = 20
        options = dict(max_iterations=300, tolerance=1e-11, constraint_tolerance=1e-11)
        problem = self.pendulum(1.5)
        solution = self.solve(T, problem, **options)
        self.assertEqual(solution.status, "CONVERGED")
        rng = np.random.RandomState(3)
        dl_dx, dl_du = rng.randn(T, 3), rng.randn(T, 1)
        g = self.backward(T, problem, solution, dl_dx, dl_du, mode="EXACT").gradients[0]
        self.assertIn(g.diagnostics["status"], ("GRADIENT_OK", "GRADIENT_REGULARIZED"))
        self.assertGreater(g.diagnostics["active_constraints"], 0)

        def loss(p):
            s = self.solve(T, p, **options)
            self.assertEqual(s.status, "CONVERGED")
            return np.sum(dl_dx * s.x) + np.sum(dl_du * s.u)
        eps = 1e-5
        # The velocity bound (the same value in x_lower and x_upper moves both rows).
        up, down = self.pendulum(1.5 + eps), self.pendulum(1.5 - eps)
        expected = (loss(up) - loss(down)) / (2 * eps)
        actual = g.x_upper[2] - g.x_lower[2]
        self.assertAlmostEqual(actual, expected, delta=1e-4 * max(1.0, abs(expected)))
        self.assertNotEqual(actual, 0.0)
        # x_init along a direction that keeps cos^2 + sin^2 free (the model takes any x).
        direction = rng.randn(3)
        shifted = []
        for sign in (1, -1):
            p = self.pendulum(1.5)
            p.x_init = problem.x_init + sign * eps * direction
            shifted.append(loss(p))
        expected = (shifted[0] - shifted[1]) / (2 * eps)
        self.assertAlmostEqual(np.dot(g.x_init, direction), expected,
                               delta=1e-4 * max(1.0, abs(expected)))

    def test_constraints_that_never_act_leave_the_gradient_bitwise(self):
        rng = np.random.RandomState(11)
        n, m, T = 4, 2, 10
        C, c, F, f, x_init = random_lqr(rng, n, m, T)
        free = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                            u_lower=-np.ones(m), u_upper=np.ones(m))
        bounded = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                               u_lower=-np.ones(m), u_upper=np.ones(m),
                               x_lower=np.full(n, -1e3), x_upper=np.full(n, 1e3),
                               constraints=(np.ones((1, n + m)), np.array([1e4])))
        dl_dx, dl_du = rng.randn(T, n), rng.randn(T, m)
        for mode in ("DEFAULT", "EXACT"):
            a = self.solve(T, free)
            b = self.solve(T, bounded)
            np.testing.assert_array_equal(a.x, b.x)
            ga = self.backward(T, free, a, dl_dx, dl_du, mode=mode).gradients[0]
            gb = self.backward(T, bounded, b, dl_dx, dl_du, mode=mode).gradients[0]
            for name in ("x_init", "C", "c", "F", "f"):
                np.testing.assert_array_equal(getattr(ga, name), getattr(gb, name), err_msg=name)
            self.assertEqual(gb.diagnostics["active_constraints"], 0)
            self.assertEqual(gb.diagnostics["weakly_active_constraints"], 0)
            np.testing.assert_array_equal(gb.x_lower, np.zeros(n))
            np.testing.assert_array_equal(gb.x_upper, np.zeros(n))
            np.testing.assert_array_equal(gb.constraints[0], np.zeros((1, n + m)))
            np.testing.assert_array_equal(gb.constraints[1], np.zeros(1))

    def test_a_bound_met_with_a_zero_multiplier_is_weakly_active(self):
        rng = np.random.RandomState(12)
        n, m, T = 4, 2, 10
        C, c, F, f, x_init = random_lqr(rng, n, m, T)
        free = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f))
        s = self.solve(T, free)
        t = int(np.argmax(s.x[1:, 0])) + 1
        # x_upper at step t exactly where the free solution already is: met, multiplier zero.
        upper = np.full((T, n), np.inf)
        upper[t, 0] = s.x[t, 0]
        touching = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                                x_upper=upper)
        solution = self.solve(T, touching)
        dl_dx, dl_du = rng.randn(T, n), rng.randn(T, m)
        d = self.backward(T, touching, solution, dl_dx, dl_du).gradients[0].diagnostics
        self.assertEqual(d["active_constraints"], 1)
        self.assertEqual(d["weakly_active_constraints"], 1)
        # Cut well into the free trajectory instead: strongly active, nothing weak.
        upper[t, 0] = s.x[t, 0] - 0.5 * np.ptp(s.x[1:, 0])
        cutting = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                               x_upper=upper)
        solution = self.solve(T, cutting)
        d = self.backward(T, cutting, solution, dl_dx, dl_du).gradients[0].diagnostics
        self.assertEqual(d["active_constraints"], 1)
        self.assertEqual(d["weakly_active_constraints"], 0)

    def test_smoothing_recovers_the_exact_gradient_and_moves_nearby_rows(self):
        case = Case(0, False, True, False, False, lambda p: self.solve(10, p))
        problem = case.problem()
        solution = self.solve(case.T, problem)
        rng = np.random.RandomState(21)
        dl_dx, dl_du = rng.randn(case.T, case.n), rng.randn(case.T, case.m)
        exact = self.backward(case.T, problem, solution, dl_dx, dl_du).gradients[0]
        errors = []
        for tau in (1e-4, 1e-7, 1e-10):
            smooth = self.backward(case.T, problem, solution, dl_dx, dl_du,
                                   constraint_smoothing=tau).gradients[0]
            errors.append(max(np.max(np.abs(smooth.c - exact.c)),
                              np.max(np.abs(smooth.x_upper - exact.x_upper))))
        scale = max(np.max(np.abs(exact.c)), np.max(np.abs(exact.x_upper)))
        self.assertLess(errors[2], 1e-4 * scale)
        self.assertLess(errors[2], errors[0])
        # An upper bound just above the free trajectory's maximum at one step: inactive, so the
        # exact du/dh there is zero; a smoothed one is not.
        rng = np.random.RandomState(22)
        n, m, T = 4, 2, 10
        C, c, F, f, x_init = random_lqr(rng, n, m, T)
        free = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f))
        s = self.solve(T, free)
        t = int(np.argmax(s.x[1:, 0])) + 1
        upper = np.full((T, n), np.inf)
        upper[t, 0] = s.x[t, 0] + 1e-3
        near = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                            x_upper=upper)
        solution = self.solve(T, near)
        du = np.zeros((T, m))
        du[t - 1] = 1.0  # L = sum of the controls that steer x_t
        exact = self.backward(T, near, solution, None, du).gradients[0]
        smooth = self.backward(T, near, solution, None, du,
                               constraint_smoothing=1e-4).gradients[0]
        self.assertEqual(exact.diagnostics["active_constraints"], 0)
        self.assertEqual(exact.x_upper[t, 0], 0.0)
        self.assertGreater(abs(smooth.x_upper[t, 0]), 1e-6)

    def test_torch_mpc_state_bound_tensors_get_their_gradients(self):
        # mpcd.torch.MPC(x_upper=<tensor requiring grad>): loss.backward() fills x_upper.grad with
        # the sum over the batch of each problem's dL/dx_upper from Client.backward.
        rng = np.random.RandomState(5)
        n, m, T, B = 3, 2, 8, 2
        problems = [random_lqr(rng, n, m, T) for _ in range(B)]
        C, c, F, f, x_init = (torch.tensor(a) for a in stacked_lqr(problems))
        upper_values = np.array([0.05, np.inf, np.inf])
        upper = torch.tensor(upper_values, requires_grad=True)
        x, u, _ = MPC(n, m, T, x_upper=upper, lqr_iter=100, eps=1e-12,
                      exit_unconverged=False, client=self.client)(
            x_init, QuadCost(C, c), LinDx(F, f))
        dl_dx, dl_du = rng.randn(T, B, n), rng.randn(T, B, m)
        (torch.sum(x * torch.tensor(dl_dx)) + torch.sum(u * torch.tensor(dl_du))).backward()
        want = np.zeros(n)
        for b, (Cb, cb, Fb, fb, xb) in enumerate(problems):
            problem = mpcd.Problem(x_init=xb, C=Cb, c=cb, dynamics=mpcd.Linear(F=Fb, f=fb),
                                   x_upper=upper_values)
            solution = self.client.solve(T, [problem], options={
                "max_iterations": 100, "tolerance": 1e-12}).solutions[0]
            gradient = self.backward(T, problem, solution, dl_dx[:, b], dl_du[:, b])
            want += gradient.gradients[0].x_upper
        self.assertNotEqual(want[0], 0.0)
        np.testing.assert_allclose(upper.grad.numpy(), want, rtol=1e-9, atol=1e-12)

    def test_negative_smoothing_is_invalid_argument(self):
        case_rng = np.random.RandomState(1)
        n, m, T = 3, 1, 5
        C, c, F, f, x_init = random_lqr(case_rng, n, m, T)
        p = mpcd.Problem(x_init=x_init, C=C, c=c, dynamics=mpcd.Linear(F=F, f=f),
                         x_upper=[0.1, np.inf, np.inf])
        s = self.solve(T, p)
        with self.assertRaises(mpcd.MpcdError) as caught:
            self.backward(T, p, s, np.ones((T, n)), None, constraint_smoothing=-1.0)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("constraint_smoothing", caught.exception.details)


def main():
    global ARGS, mpcd, grpc, torch, MPC, QuadCost, LinDx
    ARGS, argv = client_test_args()
    import grpc
    import mpcd
    import mpcd.torch
    import torch
    from mpcd.torch import MPC, QuadCost, LinDx
    torch.set_default_dtype(torch.float64)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
