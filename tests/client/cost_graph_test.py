#!/usr/bin/python3
"""Stage costs as ONNX graphs (Problem.cost_graph, DESIGN §12) through mpcd.Client and a real mpcd.

The quadratic cost written as a torch module and exported gives the quadratic cost's solve and
gradients (dL/dC, dL/dc as the graph's own parameters); a log-cosh tracking cost on the pendulum
gives dL/dx_init and dL/d(cost parameters) that agree with central differences of the converged
solve in every mode; a non-convex cost reports its Hessian projections; bad cost graphs and
conflicting fields are INVALID_ARGUMENT naming the field. mpcd.torch.MPC with a torch.nn.Module
cost: a quadratic module gives QuadCost's solution and gradients (on the module's parameters).

Sampling (CEM, MPPI and their iLQR polish) samples a cost graph's cost: a quadratic cost as stage
or terminal graphs samples as the quadratic cost (to rounding), a log-cosh graph gives the cost
PyTorch evaluates along the answer, bitwise the same alone or in a batch, differentiable after the
polish.

Terminal cost graphs (Problem.terminal_cost_graph): a terminal graph 0.5 x'Qx + 0.5 u'Ru + q'x
beside a quadratic stage cost (or the same stage cost as a graph) solves and differentiates as the
time-varying quadratic cost whose slice T-1 is [Q 0; 0 R], [q; 0] (dL/dC[T-1], dL/dc[T-1] are the
graph's dL/dQ, dL/dR, dL/dq; the stage cost's gradients leave out t = T-1); a smooth
distance-to-goal plus a cos term gives dL/d(its parameters) and dL/dx_init that agree with central
differences of the converged solve (linear dynamics: every mode; the pendulum: EXACT); bad
terminal graphs are INVALID_ARGUMENT naming the field.

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
    global QuadraticCost, LogCosh, Wavy, TerminalQuadratic, DistanceToGoal, Vector, Square

    class Vector(torch.nn.Module):
        """Not a cost: a vector output."""

        def forward(self, tau):
            return tau * 2.0

    class Square(torch.nn.Module):
        def forward(self, tau):
            return (tau * tau).sum()

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

    class TerminalQuadratic(torch.nn.Module):
        """0.5 x'Qx + 0.5 u'Ru + q'x of tau = [x; u]."""

        def __init__(self, Q, R, q):
            super().__init__()
            self.Q = torch.nn.Parameter(torch.tensor(Q))
            self.R = torch.nn.Parameter(torch.tensor(R))
            self.q = torch.nn.Parameter(torch.tensor(q))

        def forward(self, tau):
            x, u = tau[:N], tau[N:]
            return (0.5 * (x * (self.Q @ x)).sum() + 0.5 * (u * (self.R @ u)).sum() +
                    (self.q * x).sum())

    class DistanceToGoal(torch.nn.Module):
        """w sqrt(|x - goal|^2 + 0.01) + a cos(x_1) + 0.5 r |u|^2: smooth, not quadratic."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(2.0))
            self.goal = torch.nn.Parameter(torch.tensor([1.0, 0.3, -0.2]))
            self.a = torch.nn.Parameter(torch.tensor(0.2))
            self.r = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, tau):
            x, u = tau[:N], tau[N:]
            z = x - self.goal
            return (self.w * torch.sqrt((z * z).sum() + 0.01) + self.a * torch.cos(x[1]) +
                    0.5 * self.r * (u * u).sum())


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
MODES = ("DEFAULT", "EXACT", "FULL_CHAIN")


def same_solve_then_gradients(case, quadratic, graph, rng, atol):
    """Asserts that `graph` solves as `quadratic` (x, u and the cost to atol, no Hessian
    projection), then yields their gradients (quadratic's, graph's) in every mode for the same
    random cotangents."""
    want = CLIENT.solve(T, [quadratic], options=OPTIONS).solutions[0]
    got = CLIENT.solve(T, [graph], options=OPTIONS).solutions[0]
    case.assertEqual(got.status, "CONVERGED")
    np.testing.assert_allclose(got.x, want.x, rtol=0, atol=atol)
    np.testing.assert_allclose(got.u, want.u, rtol=0, atol=atol)
    case.assertAlmostEqual(got.cost, want.cost, delta=atol)
    case.assertEqual(got.cost_hessian_projections, 0)
    dl_dx, dl_du = rng.randn(T, N), rng.randn(T, M)
    for mode in MODES:
        with case.subTest(mode=mode):
            yield (CLIENT.backward(T, [quadratic], [want], [(dl_dx, dl_du)],
                                   mode=mode).gradients[0],
                   CLIENT.backward(T, [graph], [got], [(dl_dx, dl_du)], mode=mode).gradients[0])


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
        for g_want, g_got in same_solve_then_gradients(self, quadratic, graph, rng, 1e-10):
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
        class Erf(torch.nn.Module):
            def forward(self, tau):
                return torch.erf(tau).sum()

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


def linear_dynamics(rng):
    return mpcd.Linear(F=np.hstack([np.eye(N) + 0.1 * rng.randn(N, N), rng.randn(N, M)]),
                       f=0.1 * rng.randn(N))


STAGE_C = np.diag([1.0, 1.0, 0.1, 0.5]) + 0.02 * np.ones((NT, NT))
STAGE_c = np.array([-1.0, 0.0, 0.0, 0.0])


class TerminalCostGraphTest(unittest.TestCase):

    def test_a_quadratic_terminal_graph_is_the_time_varying_quadratic_cost(self):
        rng = np.random.RandomState(0)
        Q = np.array([[3.0, 0.2, 0.0], [0.2, 2.0, 0.1], [0.0, 0.1, 1.0]])
        R = np.array([[0.7]])
        q = np.array([-2.0, 0.5, 0.1])
        terminal = mpcd.CostGraph(onnx=export(TerminalQuadratic(Q, R, q)),
                                  parameters={"Q": Q, "R": R, "q": q})
        C_t = np.repeat(STAGE_C[None], T, axis=0)
        c_t = np.repeat(STAGE_c[None], T, axis=0)
        C_t[T - 1] = 0.0
        C_t[T - 1, :N, :N] = Q
        C_t[T - 1, N:, N:] = R
        c_t[T - 1] = np.concatenate([q, np.zeros(M)])
        stage_graph = mpcd.CostGraph(onnx=export(QuadraticCost(STAGE_C, STAGE_c)))
        for dynamics in (mpcd.Model("pendulum"), linear_dynamics(rng)):
            want = mpcd.Problem(x_init=x_init(), C=C_t, c=c_t, dynamics=dynamics)
            beside_invariant = mpcd.Problem(x_init=x_init(), C=STAGE_C, c=STAGE_c,
                                            dynamics=dynamics, terminal_cost_graph=terminal)
            # Slice T-1 of a time-varying C, c is the terminal graph's: its value is not read.
            beside_varying = mpcd.Problem(x_init=x_init(), C=np.repeat(STAGE_C[None], T, axis=0),
                                          c=np.repeat(STAGE_c[None], T, axis=0),
                                          dynamics=dynamics, terminal_cost_graph=terminal)
            beside_graph = mpcd.Problem(x_init=x_init(), dynamics=dynamics,
                                        cost_graph=stage_graph, terminal_cost_graph=terminal)
            for name, got in (("invariant", beside_invariant), ("varying", beside_varying),
                              ("graph", beside_graph)):
                with self.subTest(dynamics=type(dynamics).__name__, stage=name):
                    self.check_as_time_varying(want, got, name, rng)

    def check_as_time_varying(self, quadratic, terminal, stage, rng):
        for g_want, g_got in same_solve_then_gradients(self, quadratic, terminal, rng, 1e-9):
            self.assertEqual(g_got.diagnostics["status"], "GRADIENT_OK")
            np.testing.assert_allclose(g_got.x_init, g_want.x_init, rtol=0, atol=1e-9)
            last = g_want.C[T - 1]
            self.assertGreater(np.abs(last).max(), 1e-3)
            tg = g_got.terminal_cost_graph.parameters
            np.testing.assert_allclose(tg["Q"], last[:N, :N], rtol=0, atol=1e-9)
            np.testing.assert_allclose(tg["R"], last[N:, N:], rtol=0, atol=1e-9)
            np.testing.assert_allclose(tg["q"], g_want.c[T - 1, :N], rtol=0, atol=1e-9)
            if stage == "invariant":
                np.testing.assert_allclose(g_got.C, g_want.C[:T - 1].sum(0), rtol=0, atol=1e-9)
                np.testing.assert_allclose(g_got.c, g_want.c[:T - 1].sum(0), rtol=0, atol=1e-9)
            elif stage == "varying":
                np.testing.assert_allclose(g_got.C[:T - 1], g_want.C[:T - 1], rtol=0, atol=1e-9)
                np.testing.assert_allclose(g_got.c[:T - 1], g_want.c[:T - 1], rtol=0, atol=1e-9)
                self.assertEqual(np.abs(g_got.C[T - 1]).max(), 0.0)
                self.assertEqual(np.abs(g_got.c[T - 1]).max(), 0.0)
            else:
                self.assertIsNone(g_got.C)
                sg = g_got.cost_graph.parameters
                np.testing.assert_allclose(sg["C"], g_want.C[:T - 1].sum(0), rtol=0, atol=1e-9)
                np.testing.assert_allclose(sg["c"], g_want.c[:T - 1].sum(0), rtol=0, atol=1e-9)
            if g_want.params is not None:
                np.testing.assert_allclose(g_got.params, g_want.params, rtol=0, atol=1e-9)

    def test_a_distance_to_goal_terminal_graph_gradients_agree_with_central_differences(self):
        module = DistanceToGoal()
        onnx = export(module)
        theta = parameters_of(module)
        rng = np.random.RandomState(1)
        wx, wu = rng.randn(T, N), rng.randn(T, M)
        for dynamics, modes in ((linear_dynamics(rng), MODES), (mpcd.Model("pendulum"),
                                                                 ("EXACT",))):
            def problem(params=theta, x0=None):
                return mpcd.Problem(x_init=x_init() if x0 is None else x0, C=0.1 * STAGE_C,
                                    c=0.1 * STAGE_c, dynamics=dynamics,
                                    terminal_cost_graph=mpcd.CostGraph(onnx=onnx,
                                                                       parameters=params))

            def loss(params=theta, x0=None):
                s = CLIENT.solve(T, [problem(params, x0)],
                                 options={"max_iterations": 100, "tolerance": 1e-14}).solutions[0]
                self.assertLess(s.step_norm, 1e-9)
                return float(np.sum(wx * s.x) + np.sum(wu * s.u)), s

            _, solution = loss()
            h = 1e-4
            numeric_theta = {}
            for name, value in theta.items():
                numeric_theta[name] = np.zeros(value.shape)
                for e in range(value.size):
                    plus, minus = dict(theta), dict(theta)
                    plus[name] = value.copy()
                    minus[name] = value.copy()
                    plus[name].flat[e] += h
                    minus[name].flat[e] -= h
                    numeric_theta[name].flat[e] = (loss(plus)[0] - loss(minus)[0]) / (2 * h)
            numeric_x0 = np.zeros(N)
            for i in range(N):
                plus, minus = x_init(), x_init()
                plus[i] += h
                minus[i] -= h
                numeric_x0[i] = (loss(x0=plus)[0] - loss(x0=minus)[0]) / (2 * h)
            self.assertGreater(np.abs(numeric_theta["goal"]).max(), 1e-2)  # the goal matters
            for mode in modes:
                with self.subTest(dynamics=type(dynamics).__name__, mode=mode):
                    g = CLIENT.backward(T, [problem()], [solution], [(wx, wu)],
                                        mode=mode).gradients[0]
                    self.assertEqual(g.diagnostics["status"], "GRADIENT_OK")
                    self.assertIsNone(g.cost_graph)
                    for name, numeric in numeric_theta.items():
                        np.testing.assert_allclose(g.terminal_cost_graph.parameters[name],
                                                   numeric, rtol=1e-5, atol=1e-5, err_msg=name)
                    np.testing.assert_allclose(g.x_init, numeric_x0, rtol=1e-5, atol=1e-5)

    def test_a_template_terminal_graph_stacks_its_gradients(self):
        # The template carries the terminal graph (merged into each problem); the stacked answer
        # holds each problem's dL/dtheta_T, as the per-problem Backward gives it.
        terminal = mpcd.CostGraph(onnx=export(DistanceToGoal()))
        template = mpcd.Problem(x_init=None, C=STAGE_C, c=STAGE_c, dynamics=mpcd.Model("pendulum"),
                                terminal_cost_graph=terminal)
        x0 = np.stack([x_init(0.3, -0.2), x_init(-0.5, 0.4)])
        stacked = CLIENT.solve_batched(T, mpcd.Batch(x_init=x0), template=template,
                                       options=OPTIONS)
        rng = np.random.RandomState(3)
        dl_dx, dl_du = rng.randn(2, T, N), rng.randn(2, T, M)
        got = CLIENT.backward_batched(T, mpcd.Batch(x_init=x0), stacked, dl_dx, dl_du,
                                      template=template, mode="EXACT")
        for b in range(2):
            problem = mpcd.Problem(x_init=x0[b], C=STAGE_C, c=STAGE_c,
                                   dynamics=mpcd.Model("pendulum"), terminal_cost_graph=terminal)
            solution = CLIENT.solve(T, [problem], options=OPTIONS).solutions[0]
            np.testing.assert_array_equal(stacked.u[b], solution.u)
            want = CLIENT.backward(T, [problem], [solution], [(dl_dx[b], dl_du[b])],
                                   mode="EXACT").gradients[0]
            self.assertEqual(set(got.terminal_cost_graph_parameters), {"w", "goal", "a", "r"})
            self.assertGreater(np.abs(want.terminal_cost_graph.parameters["goal"]).max(), 1e-3)
            for name, value in want.terminal_cost_graph.parameters.items():
                np.testing.assert_allclose(got.terminal_cost_graph_parameters[name][b], value,
                                           rtol=0, atol=1e-12, err_msg=name)

    def test_bad_terminal_cost_graphs_are_invalid_argument_naming_the_field(self):
        # A node reads "w", which is neither an input nor an initializer nor any node's output.
        missing = onnx.helper.make_model(
            onnx.helper.make_graph(
                [onnx.helper.make_node("Mul", ["tau", "w"], ["wt"]),
                 onnx.helper.make_node("ReduceSum", ["wt"], ["cost"], keepdims=0)],
                "missing", [onnx.helper.make_tensor_value_info("tau", onnx.TensorProto.DOUBLE,
                                                               [NT])],
                [onnx.helper.make_tensor_value_info("cost", onnx.TensorProto.DOUBLE, [])]),
            opset_imports=[onnx.helper.make_opsetid("", 13)]).SerializeToString()
        goal = export(DistanceToGoal())
        nan = parameters_of(DistanceToGoal())
        nan["goal"][1] = np.nan

        def problem(graph, parameters=None, **fields):
            return mpcd.Problem(x_init=x_init(), C=STAGE_C, c=STAGE_c,
                                dynamics=mpcd.Model("pendulum"),
                                terminal_cost_graph=mpcd.CostGraph(onnx=graph,
                                                                   parameters=parameters),
                                **fields)

        cases = [
            (problem(missing), "problems[0].terminal_cost_graph.onnx: "),
            (problem(export(Vector())),
             "problems[0].terminal_cost_graph.onnx: graph output 'cost' has shape (4) (4 "
             "elements), expected a scalar"),
            (problem(export(Square(), nt=NT + 1)),
             "problems[0].terminal_cost_graph.onnx: the graph's input 'tau' has 5 elements, "
             "expected n+m = 4"),
            (problem(goal, nan), "problems[0].terminal_cost_graph.parameters[\"goal\"]"),
            (problem(goal, {"nope": np.zeros(2)}),
             "problems[0].terminal_cost_graph.parameters[\"nope\"]: the graph has no "
             "initializer"),
        ]
        for problem_, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(mpcd.InvalidArgumentError) as raised:
                    CLIENT.solve(T, [problem_])
                self.assertIn(message, str(raised.exception))


class SamplingCostGraphTest(unittest.TestCase):
    """CEM and MPPI (and their iLQR polish) sample the cost the problem gives, graphs included."""

    T = 40
    # The polish's tolerance sits above its step's rounding floor: at 1e-10 the log-cosh cost's
    # MPPI polish converged or stalled (581 iterations) depending on the Riccati kernels' last
    # bits; at 3e-10 and 1e-9 it converges in 25.
    SAMPLING = {"samples": 48, "elites": 6, "sampling_iterations": 4, "knot_spacing": 5,
                "seed": 3, "max_iterations": 200, "tolerance": 1e-9}
    METHODS = ("CEM", "MPPI", "CEM_THEN_ILQR", "MPPI_THEN_ILQR")

    @staticmethod
    def hanging(x0=None, **cost):
        return mpcd.Problem(x_init=x_init(np.pi + 0.2, -0.25) if x0 is None else x0,
                            dynamics=mpcd.Model("pendulum"), u_lower=[-1.0], u_upper=[1.0],
                            **cost)

    def solve(self, problems, method):
        return CLIENT.solve(self.T, problems, options=dict(self.SAMPLING, method=method)).solutions

    def test_a_quadratic_cost_as_graphs_samples_as_the_quadratic_cost(self):
        # The same cost given as a stage graph, and as a quadratic stage cost beside a terminal
        # graph holding slice T-1 of a time-varying one: every sample costs the same up to
        # rounding, so the same samples are chosen and the answers agree to rounding.
        Q, R = np.diag([2.0, 1.0, 0.3]), np.array([[0.2]])
        q = np.array([-3.0, 0.1, 0.0])
        C_t = np.repeat(STAGE_C[None], self.T, axis=0)
        c_t = np.repeat(STAGE_c[None], self.T, axis=0)
        C_t[-1] = 0.0
        C_t[-1, :N, :N], C_t[-1, N:, N:] = Q, R
        c_t[-1] = np.concatenate([q, np.zeros(M)])
        stage = mpcd.CostGraph(onnx=export(QuadraticCost(STAGE_C, STAGE_c)))
        terminal = mpcd.CostGraph(onnx=export(TerminalQuadratic(Q, R, q)))
        cases = (
            ("stage graph", self.hanging(C=STAGE_C, c=STAGE_c), self.hanging(cost_graph=stage)),
            ("terminal graph", self.hanging(C=C_t, c=c_t),
             self.hanging(C=STAGE_C, c=STAGE_c, terminal_cost_graph=terminal)),
        )
        for name, quadratic, graph in cases:
            for method in self.METHODS:
                with self.subTest(cost=name, method=method):
                    want, = self.solve([quadratic], method)
                    got, = self.solve([graph], method)
                    self.assertEqual(got.method, method)
                    self.assertEqual(got.status, want.status)
                    if not method.endswith("_THEN_ILQR"):
                        # The polish's iteration count follows its own rounding; the sampling's
                        # is the option's.
                        self.assertEqual(got.iterations, want.iterations)
                    np.testing.assert_allclose(got.u, want.u, rtol=0, atol=1e-8)
                    np.testing.assert_allclose(got.x, want.x, rtol=0, atol=1e-8)
                    self.assertAlmostEqual(got.cost, want.cost, delta=1e-8 * abs(want.cost))
                    # The samples moved the plan: the test would see a cost that was ignored.
                    self.assertGreater(np.abs(got.u).max(), 0.1)

    def test_a_log_cosh_cost_is_sampled_deterministically_and_polished(self):
        module = LogCosh()
        cost = mpcd.CostGraph(onnx=export(module))
        starts = [x_init(np.pi + 0.2, -0.25), x_init(0.5, 0.3), x_init(-2.0, 1.0)]
        for method in self.METHODS:
            with self.subTest(method=method):
                alone, = self.solve([self.hanging(cost_graph=cost)], method)
                batch = self.solve([self.hanging(x0, cost_graph=cost) for x0 in starts], method)
                # The same request and seed: bitwise the same answer alone or in any batch.
                np.testing.assert_array_equal(batch[0].u, alone.u)
                np.testing.assert_array_equal(batch[0].x, alone.x)
                self.assertTrue(np.all(np.abs(alone.u) <= 1.0))
                # The reported cost is the graph's, as PyTorch evaluates it along the answer.
                with torch.no_grad():
                    tau = torch.tensor(np.hstack([alone.x, alone.u]))
                    want = float(sum(module(row) for row in tau))
                self.assertAlmostEqual(alone.cost, want, delta=1e-9 * abs(want))
                # Sampling improved on the warm start (zeros) under that cost: one sample, the
                # mean itself, keeps the warm start as the plan.
                zero, = CLIENT.solve(self.T, [self.hanging(cost_graph=cost)],
                                     options={"method": "CEM", "samples": 1, "elites": 1,
                                              "sampling_iterations": 1}).solutions
                self.assertLess(alone.cost, zero.cost)
                if method.endswith("_THEN_ILQR"):
                    self.assertEqual(alone.status, "CONVERGED")
                    rng = np.random.RandomState(4)
                    cotangent = (rng.randn(self.T, N), rng.randn(self.T, M))
                    problem = self.hanging(cost_graph=cost)
                    chained = CLIENT.backward(self.T, [problem], [alone], [cotangent]
                                              ).gradients[0]
                    as_ilqr = CLIENT.backward(self.T, [problem], [(alone.x, alone.u)],
                                              [cotangent]).gradients[0]
                    self.assertEqual(chained.diagnostics["status"], "GRADIENT_OK")
                    np.testing.assert_array_equal(chained.x_init, as_ilqr.x_init)
                    np.testing.assert_array_equal(chained.cost_graph.parameters["goal"],
                                                  as_ilqr.cost_graph.parameters["goal"])


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

    def test_a_terminal_module_cost_is_the_time_varying_quad_cost(self):
        class TerminalQuadModule(torch.nn.Module):
            def __init__(self, Q, R, q):
                super().__init__()
                self.Q = torch.nn.Parameter(Q.clone())
                self.R = torch.nn.Parameter(R.clone())
                self.q = torch.nn.Parameter(q.clone())

            def forward(self, tau):
                x, u = tau[:, :N], tau[:, N:]
                return (0.5 * ((x @ self.Q) * x).sum(-1) + 0.5 * ((u @ self.R) * u).sum(-1) +
                        x @ self.q)

        Q = torch.tensor([[3.0, 0.2, 0.0], [0.2, 2.0, 0.1], [0.0, 0.1, 1.0]])
        R, q = torch.tensor([[0.7]]), torch.tensor([-2.0, 0.5, 0.1])
        x0 = torch.tensor(np.stack([x_init(0.3, -0.2), x_init(-0.4, 0.1)]))
        weights = torch.tensor(np.random.RandomState(6).randn(T, 2, M))
        C_t = torch.tensor(STAGE_C).repeat(T, 1, 1)
        c_t = torch.tensor(STAGE_c).repeat(T, 1)
        C_t[T - 1] = torch.block_diag(Q, R)
        c_t[T - 1] = torch.cat([q, torch.zeros(M)])
        C_t.requires_grad_()
        c_t.requires_grad_()
        x_want, u_want, _ = self.mpc()(x0, mpcd.torch.QuadCost(C_t, c_t), mpcd.torch.PendulumDx())
        (u_want * weights).sum().backward()

        module = TerminalQuadModule(Q, R, q)
        mpc = mpcd.torch.MPC(N, M, T, lqr_iter=300, eps=1e-10, target=SERVER.target,
                             gradient_mode="EXACT", terminal_cost=module)
        x_got, u_got, _ = mpc(x0, mpcd.torch.QuadCost(torch.tensor(STAGE_C),
                                                      torch.tensor(STAGE_c)),
                              mpcd.torch.PendulumDx())
        (u_got * weights).sum().backward()
        np.testing.assert_allclose(x_got.detach(), x_want.detach(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(u_got.detach(), u_want.detach(), rtol=0, atol=1e-9)
        last = C_t.grad[T - 1]
        self.assertGreater(float(last.abs().max()), 1e-6)
        np.testing.assert_allclose(module.Q.grad, last[:N, :N], rtol=0, atol=1e-8)
        np.testing.assert_allclose(module.R.grad, last[N:, N:], rtol=0, atol=1e-8)
        np.testing.assert_allclose(module.q.grad, c_t.grad[T - 1, :N], rtol=0, atol=1e-8)

    def test_an_unsupported_module_cost_names_the_op(self):
        class Erf(torch.nn.Module):
            def forward(self, tau):
                return torch.erf(tau).sum(-1)

        with self.assertRaises(mpcd.InvalidArgumentError) as raised:
            self.mpc()(torch.tensor(x_init()).unsqueeze(0), Erf(), mpcd.torch.PendulumDx())
        self.assertIn("(op Erf): is not supported", str(raised.exception))


def main():
    global ARGS, mpcd, torch, onnx
    ARGS, argv = client_test_args()
    import mpcd
    import mpcd.torch
    import onnx
    import onnx.helper
    import torch
    torch.set_default_dtype(torch.float64)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
