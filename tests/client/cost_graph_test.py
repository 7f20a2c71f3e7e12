#!/usr/bin/python3
"""Stage costs as ONNX graphs (Problem.cost_graph, DESIGN §12) through mpcd.Client and a real mpcd.

The quadratic cost written as a torch module and exported gives the quadratic cost's solve and
gradients (dL/dC, dL/dc as the graph's own parameters); a log-cosh tracking cost on the pendulum
gives dL/dx_init and dL/d(cost parameters) that agree with central differences of the converged
solve in every mode; a non-convex cost reports its Hessian projections; bad cost graphs and
conflicting fields are INVALID_ARGUMENT naming the field. mpcd.torch.MPC with a torch.nn.Module
cost: a quadratic module gives QuadCost's solution and gradients (on the module's parameters).

Usage: cost_graph_test.py --mpcd build/bin/mpcd --package-dir client/python
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
N, M, T = 3, 1, 10  # the pendulum
NT = N + M
GOAL = np.array([1.0, 0.0, 0.0, 0.0])


def export(module, nt=NT):
    """ONNX bytes of a float64 cost module l(tau (nt)) -> scalar, as a user would write them."""
    buffer = io.BytesIO()
    torch.onnx.export(module.double(), (torch.zeros(nt),), buffer, input_names=["tau"],
                      output_names=["cost"], opset_version=13, do_constant_folding=False)
    return buffer.getvalue()


def make_modules():
    """Defined once torch is imported."""
    global QuadraticCost, LogCosh, Wavy

    class QuadraticCost(torch.nn.Module):
        def __init__(self, C, c):
            super().__init__()
            self.C = torch.nn.Parameter(torch.tensor(C))
            self.c = torch.nn.Parameter(torch.tensor(c))

        def forward(self, tau):
            return 0.5 * (tau * (self.C @ tau)).sum() + (self.c * tau).sum()

    class LogCosh(torch.nn.Module):
        """sum_i w_i log cosh(tau_i - goal_i), cosh by its exponentials."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([1.0, 1.0, 0.3, 0.5]))
            self.goal = torch.nn.Parameter(torch.tensor(GOAL))

        def forward(self, tau):
            z = tau - self.goal
            return (self.w * torch.log(0.5 * (torch.exp(z) + torch.exp(-z)))).sum()

    class Wavy(torch.nn.Module):
        """Not convex near the goal: 0.5 sum w (tau - goal)^2 + a cos(2 dth)."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([1.0, 1.0, 0.3, 0.5]))
            self.a = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, tau):
            z = tau - torch.tensor(GOAL)
            return 0.5 * (self.w * z * z).sum() + self.a * torch.cos(2.0 * tau[2])


def setUpModule():
    global SERVER, CLIENT
    make_modules()
    SERVER = Mpcd(ARGS.mpcd, "--backend=cpu")
    CLIENT = mpcd.Client(SERVER.target)


def tearDownModule():
    CLIENT.close()
    code, _, err = SERVER.stop()
    assert code == 0, err


def x_init(th=0.3, dth=-0.2):
    return np.array([np.cos(th), np.sin(th), dth])


def parameters_of(module):
    return {name: p.detach().numpy().copy() for name, p in module.named_parameters()}


OPTIONS = {"max_iterations": 300, "tolerance": 1e-10}


def graph_problem(onnx, parameters=None, x0=None):
    return mpcd.Problem(x_init=x_init() if x0 is None else x0, dynamics=mpcd.Model("pendulum"),
                        cost_graph=mpcd.CostGraph(onnx=onnx, parameters=parameters))


class CostGraphTest(unittest.TestCase):

    def test_the_quadratic_cost_as_a_graph_solves_and_differentiates_as_the_quadratic_cost(self):
        # With the pendulum and with linear dynamics (dL/dtheta of the cost graph is assembled
        # beside every kind of dynamics' own parameters).
        rng = np.random.RandomState(0)
        C = np.diag([1.0, 1.0, 0.1, 0.5]) + 0.02 * np.ones((NT, NT))
        c = np.array([-1.0, 0.0, 0.0, 0.0]) + 0.01 * rng.randn(NT)
        onnx = export(QuadraticCost(C, c))
        linear = mpcd.Linear(F=np.hstack([np.eye(N) + 0.1 * rng.randn(N, N), rng.randn(N, M)]),
                             f=0.1 * rng.randn(N))
        for dynamics in (mpcd.Model("pendulum"), linear):
            with self.subTest(dynamics=type(dynamics).__name__):
                quadratic = mpcd.Problem(x_init=x_init(), C=C, c=c, dynamics=dynamics)
                graph = mpcd.Problem(x_init=x_init(), dynamics=dynamics,
                                     cost_graph=mpcd.CostGraph(onnx=onnx,
                                                               parameters={"C": C, "c": c}))
                self.check_same_solve_and_gradients(quadratic, graph, rng)

    def check_same_solve_and_gradients(self, quadratic, graph, rng):
        want = CLIENT.solve(T, [quadratic], options=OPTIONS).solutions[0]
        got = CLIENT.solve(T, [graph], options=OPTIONS).solutions[0]
        self.assertEqual(got.status, "CONVERGED")
        np.testing.assert_allclose(got.x, want.x, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.u, want.u, rtol=0, atol=1e-10)
        self.assertAlmostEqual(got.cost, want.cost, delta=1e-10)
        self.assertEqual(got.cost_hessian_projections, 0)
        dl_dx, dl_du = rng.randn(T, N), rng.randn(T, M)
        for mode in ("DEFAULT", "EXACT", "FULL_CHAIN"):
            g_want = CLIENT.backward(T, [quadratic], [want], [(dl_dx, dl_du)],
                                     mode=mode).gradients[0]
            g_got = CLIENT.backward(T, [graph], [got], [(dl_dx, dl_du)], mode=mode).gradients[0]
            self.assertIsNone(g_got.C)
            self.assertGreater(np.abs(g_want.c).max(), 1e-3)
            np.testing.assert_allclose(g_got.x_init, g_want.x_init, rtol=0, atol=1e-9)
            np.testing.assert_allclose(g_got.cost_graph.parameters["c"], g_want.c, rtol=0,
                                       atol=1e-9)
            np.testing.assert_allclose(g_got.cost_graph.parameters["C"], g_want.C, rtol=0,
                                       atol=1e-9)
            for name in ("params", "F", "f"):
                if getattr(g_want, name, None) is not None:
                    np.testing.assert_allclose(getattr(g_got, name), getattr(g_want, name),
                                               rtol=0, atol=1e-9)

    def test_a_log_cosh_cost_gradients_agree_with_central_differences(self):
        module = LogCosh()
        onnx = export(module)
        theta = parameters_of(module)
        rng = np.random.RandomState(1)
        wx, wu = rng.randn(T, N), rng.randn(T, M)

        def loss(params=theta, x0=None):
            # As close to the optimum as rounding lets the iterations get (the step norm of the
            # returned iterate is its distance to the next one).
            s = CLIENT.solve(T, [graph_problem(onnx, params, x0)],
                             options={"max_iterations": 60, "tolerance": 1e-14}).solutions[0]
            self.assertLess(s.step_norm, 1e-9)
            return float(np.sum(wx * s.x) + np.sum(wu * s.u)), s

        _, solution = loss()
        self.assertGreater(np.abs(solution.u).max(), 1e-3)  # the cost moves the pendulum
        h = 1e-4
        for mode in ("DEFAULT", "EXACT", "FULL_CHAIN"):
            g = CLIENT.backward(T, [graph_problem(onnx, theta)], [solution], [(wx, wu)],
                                mode=mode).gradients[0]
            self.assertEqual(g.diagnostics["status"], "GRADIENT_OK")
            if mode != "EXACT":
                continue  # only EXACT is the derivative of the solution map for the pendulum
            for name, value in theta.items():
                for e in range(value.size):
                    plus, minus = dict(theta), dict(theta)
                    plus[name] = value.copy()
                    minus[name] = value.copy()
                    plus[name].flat[e] += h
                    minus[name].flat[e] -= h
                    numeric = (loss(plus)[0] - loss(minus)[0]) / (2 * h)
                    self.assertAlmostEqual(g.cost_graph.parameters[name].flat[e], numeric,
                                           delta=1e-5 * (1 + abs(numeric)), msg=(name, e))
            x0 = x_init()
            for i in range(N):
                plus, minus = x0.copy(), x0.copy()
                plus[i] += h
                minus[i] -= h
                numeric = (loss(x0=plus)[0] - loss(x0=minus)[0]) / (2 * h)
                self.assertAlmostEqual(g.x_init[i], numeric, delta=1e-5 * (1 + abs(numeric)))

    def test_a_non_convex_cost_reports_its_hessian_projections(self):
        onnx = export(Wavy())
        s = CLIENT.solve(T, [graph_problem(onnx, x0=x_init(0.2, 0.0))], options=OPTIONS)
        solution = s.solutions[0]
        self.assertEqual(solution.status, "CONVERGED")
        self.assertGreater(solution.cost_hessian_projections, 0)

    def test_bad_cost_graphs_are_invalid_argument_naming_the_field(self):
        class Vector(torch.nn.Module):
            def forward(self, tau):
                return tau * 2.0

        class Erf(torch.nn.Module):
            def forward(self, tau):
                return torch.erf(tau).sum()

        class Square(torch.nn.Module):
            def forward(self, tau):
                return (tau * tau).sum()

        class Dynamics(torch.nn.Module):
            def forward(self, x, u):
                return x + u.sum()

        dynamics_buffer = io.BytesIO()
        torch.onnx.export(Dynamics(), (torch.zeros(N), torch.zeros(M)), dynamics_buffer,
                          input_names=["x", "u"], output_names=["x_next"], opset_version=13)
        log_cosh = export(LogCosh())
        nan = parameters_of(LogCosh())
        nan["w"][1] = np.nan
        cases = [
            (graph_problem(export(Vector())),
             "problems[0].cost_graph.onnx: graph output 'cost' has shape (4) (4 elements), "
             "expected a scalar"),
            (graph_problem(export(Square(), nt=NT + 1)),
             "problems[0].cost_graph.onnx: the graph's input 'tau' has 5 elements, expected "
             "n+m = 4"),
            (graph_problem(export(Erf())), "(op Erf): is not supported"),
            (graph_problem(log_cosh, nan), "problems[0].cost_graph.parameters[\"w\"]"),
            (graph_problem(dynamics_buffer.getvalue()),
             "problems[0].cost_graph.onnx: a dynamics graph"),
            (graph_problem(log_cosh, {"nope": np.zeros(2)}),
             "problems[0].cost_graph.parameters[\"nope\"]: the graph has no initializer"),
            (mpcd.Problem(x_init=x_init(), C=np.eye(NT), dynamics=mpcd.Model("pendulum"),
                          cost_graph=mpcd.CostGraph(onnx=log_cosh)),
             "problems[0].cost.quadratic: give either cost_graph or cost.quadratic"),
        ]
        for problem, message in cases:
            with self.assertRaises(mpcd.InvalidArgumentError) as raised:
                CLIENT.solve(T, [problem])
            self.assertIn(message, str(raised.exception))


class TorchModuleCostTest(unittest.TestCase):
    """mpcd.torch.MPC(...)(x_init, cost, dx) with a torch.nn.Module cost (mpc.pytorch's
    convention: cost(tau (B, n+m)) -> (B,), the same at every step)."""

    def mpc(self):
        return mpcd.torch.MPC(N, M, T, lqr_iter=300, eps=1e-10, target=SERVER.target,
                              gradient_mode="EXACT")

    def test_a_quadratic_module_cost_solves_and_backpropagates_as_quad_cost(self):
        class QuadModule(torch.nn.Module):
            def __init__(self, C, c):
                super().__init__()
                self.C = torch.nn.Parameter(C.clone())
                self.c = torch.nn.Parameter(c.clone())

            def forward(self, tau):
                return 0.5 * ((tau @ self.C) * tau).sum(-1) + tau @ self.c

        C0 = torch.diag(torch.tensor([1.0, 1.0, 0.1, 0.5])) + 0.02
        c0 = torch.tensor([-1.0, 0.0, 0.0, 0.0])
        x0 = torch.tensor(np.stack([x_init(0.3, -0.2), x_init(-0.4, 0.1)]), requires_grad=True)
        weights = torch.tensor(np.random.RandomState(5).randn(T, 2, M))

        C = C0.clone().requires_grad_()
        c = c0.clone().requires_grad_()
        x_want, u_want, _ = self.mpc()(x0, mpcd.torch.QuadCost(C, c), mpcd.torch.PendulumDx())
        (u_want * weights).sum().backward()
        x0_grad_want = x0.grad.clone()
        x0.grad = None

        module = QuadModule(C0, c0)
        x_got, u_got, _ = self.mpc()(x0, module, mpcd.torch.PendulumDx())
        (u_got * weights).sum().backward()
        np.testing.assert_allclose(x_got.detach(), x_want.detach(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(u_got.detach(), u_want.detach(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(x0.grad, x0_grad_want, rtol=0, atol=1e-8)
        self.assertGreater(float(module.C.grad.abs().max()), 1e-6)
        np.testing.assert_allclose(module.C.grad, C.grad, rtol=0, atol=1e-8)
        np.testing.assert_allclose(module.c.grad, c.grad, rtol=0, atol=1e-8)

    def test_an_unsupported_module_cost_names_the_op(self):
        class Erf(torch.nn.Module):
            def forward(self, tau):
                return torch.erf(tau).sum(-1)

        with self.assertRaises(mpcd.InvalidArgumentError) as raised:
            self.mpc()(torch.tensor(x_init()).unsqueeze(0), Erf(), mpcd.torch.PendulumDx())
        self.assertIn("(op Erf): is not supported", str(raised.exception))


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
