#!/usr/bin/python3
"""Nonlinear stage constraints g(x_t, u_t) <= 0 as ONNX graphs (Problem.constraint_graph) through
mpcd.Client and a real mpcd.

Obstacle avoidance: the planar double integrator drives from the origin to (4, 0) past circular
obstacles g_j = r_j^2 - |p - c_j|^2 <= 0 whose centres and radii are the graph's parameters. The
unconstrained solution goes through an obstacle; the constrained one converges outside every
obstacle, reports the violation of g itself, costs more, and equals an independent solve (a dense
SQP in numpy with cvxopt's QP for the steps, polished by Newton's method on the KKT system of its
active set) to 1e-6, also beside a state bound. A start inside an obstacle is INFEASIBLE. The
gradients (EXACT) of the obstacles' centres and radii, x_init and the cost's c equal central
differences of the whole solve; DEFAULT equals the implicit derivative of the KKT system without
the constraints' curvature (both in numpy). Bad graphs and parameters are INVALID_ARGUMENT naming
the field; a graph that evaluates to NaN ends NOT_FINITE.

Usage: constraint_graph_test.py --mpcd build/bin/mpcd --package-dir client/python
         --stubs-dir build/python [unittest args]
"""

import io
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import Mpcd, client_test_args  # noqa: E402

ARGS = None
N, M, T = 4, 2, 30  # the double integrator: [px, py, vx, vy], [ax, ay]
DT = 0.1
NT = N + M
GOAL = np.array([4.0, 0.0])
# Semi-implicit Euler with unit mass and no drag (the model's defaults): linear.
A = np.array([[1, 0, DT, 0], [0, 1, 0, DT], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
B = np.array([[DT * DT, 0], [0, DT * DT], [DT, 0], [0, DT]])
C = np.diag([1.0, 1.0, 0.1, 0.1, 0.05, 0.05])
c = -C @ np.concatenate([GOAL, np.zeros(4)])
ONE = {"centers": np.array([[2.0, 0.05]]), "radii": np.array([0.5])}
TWO = {"centers": np.array([[1.5, 0.1], [3.0, -0.15]]), "radii": np.array([0.4, 0.35])}
# The iLQR converges linearly on the penalty's Gauss-Newton model of curved rows: 1e-10 on the
# step norm (a few hundred iterations per round) rather than the affine rows' tests' 1e-12.
OPTIONS = {"max_iterations": 200, "tolerance": 1e-10, "constraint_tolerance": 1e-10,
           "max_constraint_iterations": 40}


def setUpModule():
    global SERVER, CLIENT
    make_modules()
    SERVER = Mpcd(ARGS.mpcd, "--backend=cpu")
    CLIENT = mpcd.Client(SERVER.target, timeout=120)


def tearDownModule():
    CLIENT.close()
    code, _, err = SERVER.stop()
    assert code == 0, err


def make_modules():
    """Defined once torch is imported."""
    global Obstacles

    class Obstacles(torch.nn.Module):
        """g_j(x) = r_j^2 - |p - c_j|^2, p = x[0:2]: one row per obstacle (u unused, so the
        export drops it: a graph of x alone)."""

        def __init__(self, obstacles):
            super().__init__()
            self.centers = torch.nn.Parameter(torch.tensor(obstacles["centers"]))
            self.radii = torch.nn.Parameter(torch.tensor(obstacles["radii"]))

        def forward(self, x, u):
            d = x[0:2].unsqueeze(0) - self.centers
            return self.radii * self.radii - (d * d).sum(-1)


def export(module, n=N, m=M):
    buffer = io.BytesIO()
    torch.onnx.export(module.double(), (torch.zeros(n), torch.zeros(m)), buffer,
                      input_names=["x", "u"], output_names=["g"], opset_version=13,
                      do_constant_folding=False)
    return buffer.getvalue()


def problem(onnx=None, parameters=None, x0=None, cost_c=None, **fields):
    graph = None if onnx is None else mpcd.ConstraintGraph(onnx=onnx, parameters=parameters)
    return mpcd.Problem(x_init=np.zeros(N) if x0 is None else x0, C=C,
                        c=c if cost_c is None else cost_c,
                        dynamics=mpcd.Model("double_integrator"), constraint_graph=graph,
                        **fields)


def solve(p, **options):
    return CLIENT.solve(T, [p], options=dict(OPTIONS, **options)).solutions[0]


def obstacle_values(x, obstacles):
    """g (T, k) on a trajectory x (T, n)."""
    d = x[:, None, 0:2] - obstacles["centers"][None]
    return obstacles["radii"][None] ** 2 - (d * d).sum(-1)


class Reference:
    """The same problem over U = (u_0 .. u_{T-1}) with X = S x_0 + R U, dense: min 0.5 U' H U + q' U
    s.t. the obstacles' rows at t >= 1 and rows a' x_t <= b (state bounds)."""

    def __init__(self, obstacles, x0=np.zeros(N), cost_c=c, state_rows=()):
        self.obstacles, self.x0, self.cost_c = obstacles, x0, cost_c
        self.state_rows = list(state_rows)
        self.S = np.zeros((T, N, N))
        self.R = np.zeros((T, N, T * M))
        self.S[0] = np.eye(N)
        for t in range(1, T):
            self.S[t] = A @ self.S[t - 1]
            self.R[t] = A @ self.R[t - 1]
            self.R[t][:, (t - 1) * M:t * M] += B
        self.H = np.zeros((T * M, T * M))
        self.q = np.zeros(T * M)
        Cxx, Cxu, Cuu = C[:N, :N], C[:N, N:], C[N:, N:]
        for t in range(T):
            Rt, xs = self.R[t], self.S[t] @ x0
            E = np.zeros((M, T * M))
            E[:, t * M:(t + 1) * M] = np.eye(M)
            self.H += Rt.T @ Cxx @ Rt + Rt.T @ Cxu @ E + E.T @ Cxu.T @ Rt + E.T @ Cuu @ E
            self.q += Rt.T @ (Cxx @ xs + cost_c[:N]) + E.T @ (Cxu.T @ xs + cost_c[N:])

    def states(self, U):
        return np.einsum("tij,j->ti", self.S, self.x0) + np.einsum("tij,j->ti", self.R, U)

    def rows(self, U):
        """The rows at t >= 1: values (r,), Jacobians (r, T m) and Hessians (r of (T m, T m))."""
        X = self.states(U)
        values, jacobians, hessians = [], [], []
        for t in range(1, T):
            for center, radius in zip(self.obstacles["centers"], self.obstacles["radii"]):
                d = X[t, 0:2] - center
                values.append(radius ** 2 - d @ d)
                jacobians.append(-2 * d @ self.R[t][0:2])
                hessians.append(-2 * self.R[t][0:2].T @ self.R[t][0:2])
            for a, b in self.state_rows:
                values.append(a @ X[t] - b)
                jacobians.append(a @ self.R[t])
                hessians.append(np.zeros((T * M, T * M)))
        return np.array(values), np.array(jacobians), hessians

    def solve(self):
        from cvxopt import matrix, solvers
        solvers.options["show_progress"] = False
        solvers.options["abstol"] = solvers.options["reltol"] = solvers.options["feastol"] = 1e-12
        U = np.linalg.solve(self.H, -self.q)  # the unconstrained optimum
        for _ in range(200):  # SQP with the cost's Hessian (the rows linearised at U)
            g, J, _ = self.rows(U)
            qp = solvers.qp(matrix(self.H), matrix(self.H @ U + self.q), matrix(J), matrix(-g))
            step = np.array(qp["x"]).ravel()
            U = U + step
            if np.abs(step).max() < 1e-9:
                break
        nu = np.array(qp["z"]).ravel()
        active = nu > 1e-7
        for _ in range(20):  # Newton on the KKT system of the active rows
            K, rhs = self.kkt(U, nu, active)
            delta = np.linalg.solve(K, rhs)
            U = U - delta[:T * M]
            nu[active] -= delta[T * M:]
            if np.abs(delta).max() < 1e-14:
                break
        g, _, _ = self.rows(U)
        assert (nu[active] > 0).all() and g.max() < 1e-9, (nu[active].min(), g.max())
        return U, nu, active

    def kkt(self, U, nu, active, curvature=True):
        """The KKT matrix of the active rows at (U, nu) and its residual."""
        g, J, hessians = self.rows(U)
        hessian = self.H + (sum(n * h for n, h in zip(nu, hessians)) if curvature else 0)
        Ja = J[active]
        K = np.block([[hessian, Ja.T], [Ja, np.zeros((len(Ja), len(Ja)))]])
        return K, np.concatenate([self.H @ U + self.q + J.T @ nu, g[active]])

    def residual(self, U, nu, active, J=None):
        """The KKT residual; with J given, the rows' gradient held at J (their linearisation)."""
        g, J_here, _ = self.rows(U)
        J = J_here if J is None else J
        return np.concatenate([self.H @ U + self.q + J.T @ nu, g[active]])

    def x_init_gradient(self, U, nu, active, wx, wu, curvature):
        """dL/dx_0 of L = sum wx x + sum wu u by the implicit function theorem on the KKT system
        (with or without the rows' curvature: without, the rows are their linearisation at the
        solution, in K and in dF/dx_0): sum_t S_t' wx_t - dF/dx_0' K^-T [dL/dU; 0], dF/dx_0 by
        central differences of the residual (a quadratic in x_0: exact)."""
        K, _ = self.kkt(U, nu, active, curvature)
        J = None if curvature else self.rows(U)[1]
        dL_dU = np.einsum("ti,tij->j", wx, self.R) + wu.ravel()
        adjoint = np.linalg.solve(K.T, np.concatenate([dL_dU, np.zeros(active.sum())]))
        dF = np.zeros((len(adjoint), N))
        for i in range(N):
            e = np.eye(N)[i]
            plus = Reference(self.obstacles, self.x0 + e, self.cost_c, self.state_rows)
            minus = Reference(self.obstacles, self.x0 - e, self.cost_c, self.state_rows)
            dF[:, i] = (plus.residual(U, nu, active, J) - minus.residual(U, nu, active, J)) / 2
        return np.einsum("ti,tij->j", wx, self.S) - dF.T @ adjoint


class ObstacleAvoidanceTest(unittest.TestCase):

    def check_against_reference(self, obstacles, **fields):
        free = solve(problem(**fields))
        self.assertEqual(free.status, "CONVERGED")
        self.assertGreater(obstacle_values(free.x, obstacles).max(), 0.05)  # through one
        s = solve(problem(export(Obstacles(obstacles)), **fields))
        self.assertEqual(s.status, "CONVERGED")
        g = obstacle_values(s.x, obstacles)
        self.assertLess(g.max(), 1e-9)
        # The violation reported is g's own on the returned trajectory, not its linearisation's.
        self.assertAlmostEqual(s.max_constraint_violation, max(0.0, g.max()), delta=1e-15)
        self.assertGreater(s.cost, free.cost)
        return s

    def test_one_obstacle_against_an_independent_sqp(self):
        s = self.check_against_reference(ONE)
        U, nu, active = Reference(ONE).solve()
        self.assertGreater(active.sum(), 0)
        np.testing.assert_allclose(s.u.ravel(), U, rtol=0, atol=1e-6)
        np.testing.assert_allclose(s.x, Reference(ONE).states(U), rtol=0, atol=1e-6)

    def test_two_obstacles_beside_a_state_bound(self):
        # y >= -0.26 from t = 1 (the path past the second obstacle touches it): the rows of
        # x_lower and the graph's together.
        lower = np.array([-np.inf, -0.26, -np.inf, -np.inf])
        s = self.check_against_reference(TWO, x_lower=lower)
        self.assertGreaterEqual(s.x[1:, 1].min(), -0.26 - 1e-9)
        self.assertLess(s.x[1:, 1].min(), -0.26 + 1e-6)
        reference = Reference(TWO, state_rows=[(-np.eye(N)[1], 0.26)])
        U, nu, active = reference.solve()
        self.assertGreater(active.sum(), 2)
        np.testing.assert_allclose(s.u.ravel(), U, rtol=0, atol=1e-6)

    def test_a_start_inside_an_obstacle_is_infeasible(self):
        s = solve(problem(export(Obstacles(ONE)), x0=np.array([2.0, 0.0, 0.0, 0.0])))
        self.assertEqual(s.status, "INFEASIBLE")
        self.assertTrue(np.isfinite(s.x).all() and np.isfinite(s.u).all())
        self.assertAlmostEqual(s.max_constraint_violation, obstacle_values(s.x, ONE).max(),
                               delta=1e-12)
        self.assertGreater(s.max_constraint_violation, 0.2)


class ConstraintGraphGradientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.onnx = export(Obstacles(ONE))
        rng = np.random.RandomState(3)
        cls.wx, cls.wu = rng.randn(T, N), rng.randn(T, M)

    def loss(self, parameters=ONE, x0=None, cost_c=None):
        s = solve(problem(self.onnx, parameters, x0, cost_c))
        self.assertEqual(s.status, "CONVERGED")
        return float(np.sum(self.wx * s.x) + np.sum(self.wu * s.u)), s

    def gradient(self, mode):
        _, s = self.loss()
        g = CLIENT.backward(T, [problem(self.onnx, ONE)], [s], [(self.wx, self.wu)],
                            mode=mode).gradients[0]
        self.assertEqual(g.diagnostics["status"], "GRADIENT_OK", g.diagnostics)
        self.assertGreater(g.diagnostics["active_constraints"], 0)
        return g

    def central_difference(self, h=1e-4, **where):
        (name, value), = where.items()
        out = np.zeros(value.shape)
        for e in range(value.size):
            plus, minus = value.copy(), value.copy()
            plus.flat[e] += h
            minus.flat[e] -= h
            if name in ONE:
                out.flat[e] = (self.loss(dict(ONE, **{name: plus}))[0] -
                               self.loss(dict(ONE, **{name: minus}))[0]) / (2 * h)
            else:
                out.flat[e] = (self.loss(**{name: plus})[0] -
                               self.loss(**{name: minus})[0]) / (2 * h)
        return out

    def test_exact_gradients_equal_central_differences_of_the_whole_solve(self):
        g = self.gradient("EXACT")
        for name in ("centers", "radii"):
            numeric = self.central_difference(**{name: ONE[name]})
            np.testing.assert_allclose(g.constraint_graph.parameters[name], numeric, rtol=1e-6,
                                       atol=1e-6 * np.abs(numeric).max(), err_msg=name)
        numeric = self.central_difference(x0=np.zeros(N))
        np.testing.assert_allclose(g.x_init, numeric, rtol=1e-6, atol=1e-6 * np.abs(numeric).max())
        numeric = self.central_difference(cost_c=c)
        np.testing.assert_allclose(g.c, numeric, rtol=1e-6, atol=1e-6 * np.abs(numeric).max())

    def test_default_and_full_chain_hold_the_linearised_rows(self):
        # Without the rows' curvature in the KKT Hessian (as DEFAULT drops the dynamics'): the
        # implicit derivative of the KKT system with H alone, which differs from EXACT's.
        U, nu, active = Reference(ONE).solve()
        reference = Reference(ONE)
        want = reference.x_init_gradient(U, nu, active, self.wx, self.wu, curvature=False)
        exact = reference.x_init_gradient(U, nu, active, self.wx, self.wu, curvature=True)
        self.assertGreater(np.abs(want - exact).max(), 1e-3 * np.abs(exact).max())
        for mode in ("DEFAULT", "FULL_CHAIN"):
            g = self.gradient(mode)
            np.testing.assert_allclose(g.x_init, want, rtol=1e-6,
                                       atol=1e-6 * np.abs(want).max(), err_msg=mode)
        np.testing.assert_allclose(self.gradient("EXACT").x_init, exact, rtol=1e-6,
                                   atol=1e-6 * np.abs(exact).max())


    def test_the_solution_jacobian_agrees_with_backward(self):
        for mode in ("DEFAULT", "EXACT"):
            s = CLIENT.solve(T, [problem(self.onnx, ONE)], options=OPTIONS,
                             return_x_init_jacobian=True, jacobian_mode=mode).solutions[0]
            self.assertEqual(s.status, "CONVERGED")
            self.assertEqual(s.jacobian_diagnostics["status"], "GRADIENT_OK")
            w = np.concatenate([self.wx, self.wu], axis=1)  # (T, n+m)
            want = self.gradient(mode).x_init
            np.testing.assert_allclose(np.einsum("ti,tij->j", w, s.x_init_jacobian), want,
                                       rtol=1e-9, atol=1e-9 * np.abs(want).max(), err_msg=mode)


class BadConstraintGraphTest(unittest.TestCase):

    def assert_invalid(self, p, message):
        with self.assertRaises(mpcd.InvalidArgumentError) as raised:
            CLIENT.solve(T, [p])
        self.assertIn(message, str(raised.exception))

    def test_bad_graphs_and_parameters_name_the_field(self):
        class Cost(torch.nn.Module):
            def forward(self, tau):
                return (tau * tau).sum()

        cost = io.BytesIO()
        torch.onnx.export(Cost(), (torch.zeros(NT),), cost, input_names=["tau"],
                          output_names=["cost"], opset_version=13)
        onnx = export(Obstacles(ONE))
        nan = dict(ONE, radii=np.array([np.nan]))
        self.assert_invalid(problem(export(Obstacles(ONE), n=3)),
                            "problems[0].constraint_graph.onnx: the graph's input 'x' has 3 "
                            "elements, expected n = 4")
        self.assert_invalid(problem(cost.getvalue()),
                            "problems[0].constraint_graph.onnx: a cost graph")
        self.assert_invalid(problem(onnx, nan), 'problems[0].constraint_graph.parameters["radii"]')
        self.assert_invalid(problem(onnx, {"radii": np.ones(2)}),
                            'problems[0].constraint_graph.parameters["radii"]: expected shape (1)')
        self.assert_invalid(problem(onnx, {"nope": np.ones(1)}),
                            'problems[0].constraint_graph.parameters["nope"]: the graph has no '
                            "initializer")
        self.assert_invalid(
            mpcd.Problem(x_init=np.zeros(N), C=C, c=c,
                         dynamics=mpcd.Model("double_integrator"),
                         constraint_graph=mpcd.ConstraintGraph(onnx=onnx), slew_rate_penalty=1.0),
            "problems[0].slew_rate_penalty: not supported with constraint_graph")

    def test_a_graph_that_evaluates_to_nan_ends_not_finite(self):
        class Root(torch.nn.Module):
            def forward(self, x, u):
                return torch.sqrt(x[0:1] - 10.0) + 0.0 * u[0:1]

        s = solve(problem(export(Root())))
        self.assertEqual(s.status, "NOT_FINITE")


class TorchConstraintModuleTest(unittest.TestCase):
    """mpcd.torch.MPC(constraint=module): a batch-first torch module g(x, u) -> (B, k) exported by
    the client; the batch's solutions equal the independent SQP's, and the module's parameters
    and x_init get gradients equal to central differences of the whole batched solve."""

    X0 = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, -0.1, 0.0, 0.0]])

    @classmethod
    def setUpClass(cls):
        class BatchObstacles(torch.nn.Module):
            def __init__(self, obstacles):
                super().__init__()
                self.centers = torch.nn.Parameter(torch.tensor(obstacles["centers"]))
                self.radii = torch.nn.Parameter(torch.tensor(obstacles["radii"]))

            def forward(self, x, u):
                d = x[:, None, 0:2] - self.centers
                return self.radii * self.radii - (d * d).sum(-1)

        cls.Module = BatchObstacles
        rng = np.random.RandomState(5)
        cls.wx, cls.wu = torch.tensor(rng.randn(T, 2, N)), torch.tensor(rng.randn(T, 2, M))

    def solve(self, module, x0):
        mpc = mpcd.torch.MPC(N, M, T, lqr_iter=OPTIONS["max_iterations"],
                             eps=OPTIONS["tolerance"], client=CLIENT, gradient_mode="EXACT",
                             constraint=module, options={
                                 "constraint_tolerance": OPTIONS["constraint_tolerance"],
                                 "max_constraint_iterations":
                                     OPTIONS["max_constraint_iterations"]})
        x, u, _ = mpc(x0, mpcd.torch.QuadCost(torch.tensor(C), torch.tensor(c)),
                      mpcd.torch.ModelDx("double_integrator"))
        self.assertEqual(mpc.last_statuses, ["CONVERGED"] * len(x0))
        return x, u

    def loss(self, module, x0):
        x, u = self.solve(module, x0)
        return (self.wx * x).sum() + (self.wu * u).sum()

    def test_the_batch_solves_as_the_independent_sqp(self):
        x, u = self.solve(self.Module(ONE), torch.tensor(self.X0))
        for b, x0 in enumerate(self.X0):
            reference = Reference(ONE, x0=x0)
            U, _, active = reference.solve()
            self.assertGreater(active.sum(), 0)
            np.testing.assert_allclose(u[:, b].detach().numpy().ravel(), U, rtol=0, atol=1e-6)
            np.testing.assert_allclose(x[:, b].detach().numpy(), reference.states(U), rtol=0,
                                       atol=1e-6)

    def test_gradients_reach_the_module_and_x_init(self):
        module = self.Module(ONE)
        x0 = torch.tensor(self.X0, requires_grad=True)
        self.loss(module, x0).backward()
        h = 1e-4
        with torch.no_grad():
            for name, grad in (("centers", module.centers.grad), ("radii", module.radii.grad),
                               ("x_init", x0.grad)):
                self.assertIsNotNone(grad, name)
                numeric = np.zeros(grad.shape)
                for e in range(grad.numel()):
                    values = []
                    for sign in (1, -1):
                        moved, start = self.Module(ONE), torch.tensor(self.X0)
                        target = start if name == "x_init" else getattr(moved, name)
                        target.view(-1)[e] += sign * h
                        values.append(float(self.loss(moved, start)))
                    numeric.flat[e] = (values[0] - values[1]) / (2 * h)
                np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-6,
                                           atol=1e-6 * np.abs(numeric).max(), err_msg=name)

    def test_stacked_gradients_carry_the_graph_parameters(self):
        template = problem(export(Obstacles(ONE)), ONE)
        template.x_init = None
        batch = mpcd.Batch(x_init=self.X0)
        solutions = CLIENT.solve_batched(T, batch, template=template, options=OPTIONS)
        self.assertEqual(solutions.status, ["CONVERGED"] * 2)
        wx, wu = self.wx.numpy().transpose(1, 0, 2), self.wu.numpy().transpose(1, 0, 2)
        stacked = CLIENT.backward_batched(T, batch, solutions, wx, wu, template=template,
                                          mode="EXACT")
        for b, x0 in enumerate(self.X0):
            one = problem(export(Obstacles(ONE)), ONE, x0=x0)
            s = solve(one)
            g = CLIENT.backward(T, [one], [s], [(wx[b], wu[b])], mode="EXACT").gradients[0]
            for name in ("centers", "radii"):
                np.testing.assert_allclose(stacked.constraint_graph_parameters[name][b],
                                           g.constraint_graph.parameters[name], rtol=1e-9,
                                           atol=1e-9, err_msg=name)
        self.assertEqual(stacked.cost_graph_parameters, {})


def main():
    global ARGS, mpcd, torch
    ARGS, argv = client_test_args()
    import mpcd
    import mpcd.torch
    import torch
    torch.set_default_dtype(torch.float64)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
