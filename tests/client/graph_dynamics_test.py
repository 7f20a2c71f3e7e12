#!/usr/bin/python3
"""Dynamics graphs (DESIGN §12) through a real mpcd process.

The wire: GraphDynamics by bytes, then by SHA-256 (the same answer bit for bit), by --model_dir
name (and ListModels describing it); an unknown hash is FAILED_PRECONDITION naming it; a bad graph,
a bad parameter name or shape INVALID_ARGUMENT naming the field; NaN during evaluation the
problem's NOT_FINITE status; Backward's dL/dtheta per initializer, shaped like it, against central
differences of the converged solve.

mpcd.torch.MPC with torch.nn.Module dynamics (mpc.pytorch's NNDynamics / AffineDynamics
situations, written here): the solution satisfies the module's own dynamics, gradients on
module.parameters() agree with central differences of the solve (EXACT; FULL_CHAIN for dynamics
linear in (x, u)), DEFAULT and FULL_CHAIN equal the LinDx problem linearised by torch's autograd
at the solution, an affine module gives
the LinDx answer, parameters of equal value keep their own gradients, and a server that does not
know the graph's hash gets the bytes again.

Usage: graph_dynamics_test.py --mpcd build/bin/mpcd --package-dir client/python
         --stubs-dir build/python [unittest args]
"""

import io
import os
import shutil
import sys
import tempfile
import unittest

import grpc
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import Mpcd, client_test_args, sample, scrape  # noqa: E402

ARGS = None
N, M, T = 3, 2, 6


def export(module, n=N, m=M):
    """ONNX bytes of a float64 module dx(x (1, n), u (1, m)), as a user would write them."""
    buffer = io.BytesIO()
    torch.onnx.export(module.double(), (torch.zeros(1, n), torch.zeros(1, m)), buffer,
                      input_names=["x", "u"], output_names=["x_next"], opset_version=13,
                      do_constant_folding=False)
    return buffer.getvalue()


def make_modules():
    """Defined once torch is imported."""
    global Affine, SigmoidMlp, TwinLayers

    class Affine(torch.nn.Module):
        """mpc.pytorch's AffineDynamics situation: x' = A x + B u + c, all learnable."""

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(1)
            self.A = torch.nn.Parameter(torch.eye(N) + 0.1 * torch.randn(N, N, generator=g))
            self.B = torch.nn.Parameter(0.3 * torch.randn(N, M, generator=g))
            self.c = torch.nn.Parameter(0.05 * torch.randn(N, generator=g))

        def forward(self, x, u):
            return x @ self.A.t() + u @ self.B.t() + self.c

    class SigmoidMlp(torch.nn.Module):
        """mpc.pytorch's NNDynamics situation: x' = x + MLP([x, u]), sigmoid hidden layers."""

        def __init__(self, hidden=8):
            super().__init__()
            torch.manual_seed(2)
            self.l1 = torch.nn.Linear(N + M, hidden)
            self.l2 = torch.nn.Linear(hidden, hidden)
            self.l3 = torch.nn.Linear(hidden, N)

        def forward(self, x, u):
            h = torch.sigmoid(self.l1(torch.cat([x, u], -1)))
            h = torch.sigmoid(self.l2(h))
            return x + 0.1 * self.l3(h)

    class TwinLayers(torch.nn.Module):
        """Two parameters with equal values (an exporter may merge them into one initializer)."""

        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.full((N,), 0.6))
            self.b = torch.nn.Parameter(torch.full((N,), 0.6))
            self.B = torch.nn.Parameter(torch.ones(N, M) * 0.2)

        def forward(self, x, u):
            return self.a * x + 0.5 * self.b * x + u @ self.B.t()


def setUpModule():
    global SERVER, MODEL_DIR, STUB
    make_modules()
    MODEL_DIR = tempfile.mkdtemp(prefix="mpcd_graphs_")
    with open(os.path.join(MODEL_DIR, "affine.onnx"), "wb") as f:
        f.write(export(Affine()))
    SERVER = Mpcd(ARGS.mpcd, "--backend=cpu", "--model_dir=" + MODEL_DIR)
    STUB = mpcd_pb2_grpc.MpcServiceStub(grpc.insecure_channel(SERVER.target))


def tearDownModule():
    code, _, err = SERVER.stop()
    shutil.rmtree(MODEL_DIR, ignore_errors=True)
    assert code == 0, err


def quadratic_cost(problem):
    C = np.diag([1.0, 0.5, 2.0, 0.1, 0.2])
    c = np.array([-0.3, 0.2, 0.1, 0.0, 0.05])
    mpcd.client.to_tensor(C, problem.cost.quadratic)
    mpcd.client.to_tensor(c, problem.cost.linear)


def solve_request(graph_setter, parameters=None, x_init=(0.5, -0.3, 0.2), tolerance=1e-11):
    request = mpcd_pb2.SolveRequest(horizon=T)
    request.options.max_iterations = 200
    request.options.tolerance = tolerance
    problem = request.problems.add()
    mpcd.client.to_tensor(np.asarray(x_init), problem.x_init)
    quadratic_cost(problem)
    graph_setter(problem.dynamics.graph)
    for name, value in (parameters or {}).items():
        mpcd.client.to_tensor(value, problem.dynamics.graph.parameters[name])
    return request


class WireTest(unittest.TestCase):

    def setUp(self):
        self.module = Affine()
        self.onnx = export(self.module)

    def solve(self, request):
        return STUB.Solve(request, timeout=60)

    def test_bytes_then_hash_give_the_same_answer(self):
        first = self.solve(solve_request(lambda g: setattr(g, "onnx", self.onnx)))
        sha256 = mpcd.torch.hashlib.sha256(self.onnx).hexdigest()
        second = self.solve(solve_request(lambda g: setattr(g, "sha256", sha256)))
        self.assertEqual(mpcd_pb2.SolveStatus.Name(first.solutions[0].status), "CONVERGED")
        self.assertEqual(first.solutions[0].x, second.solutions[0].x)
        self.assertEqual(first.solutions[0].u, second.solutions[0].u)

    def test_the_solution_follows_the_modules_own_dynamics(self):
        response = self.solve(solve_request(lambda g: setattr(g, "onnx", self.onnx)))
        x = mpcd.client.from_tensor(response.solutions[0].x)
        u = mpcd.client.from_tensor(response.solutions[0].u)
        with torch.no_grad():
            predicted = self.module(torch.tensor(x[:-1]), torch.tensor(u[:-1])).numpy()
        np.testing.assert_allclose(x[1:], predicted, atol=1e-12)

    def test_a_model_dir_graph_by_name_and_in_list_models(self):
        by_name = self.solve(solve_request(lambda g: setattr(g, "name", "affine")))
        by_bytes = self.solve(solve_request(lambda g: setattr(g, "onnx", self.onnx)))
        self.assertEqual(by_name.solutions[0].x, by_bytes.solutions[0].x)
        models = {m.name: m for m in STUB.ListModels(mpcd_pb2.ListModelsRequest()).models}
        affine = models["affine"]
        self.assertEqual((affine.state_dim, affine.control_dim), (N, M))
        self.assertEqual(list(affine.param_names), ["A", "B", "c"])
        self.assertEqual([list(s.shape) for s in affine.param_shapes], [[N, N], [N, M], [N]])
        self.assertEqual(affine.sha256, mpcd.torch.hashlib.sha256(self.onnx).hexdigest())
        self.assertIn("pendulum", models)  # the built-in models are still listed

    def test_unknown_hash_is_failed_precondition_naming_it(self):
        unknown = "ab" * 32
        with self.assertRaises(grpc.RpcError) as raised:
            self.solve(solve_request(lambda g: setattr(g, "sha256", unknown)))
        self.assertEqual(raised.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("problems[0].dynamics.graph.sha256: unknown graph sha256 " + unknown,
                      raised.exception.details())

    def test_bad_input_is_invalid_argument_naming_the_field(self):
        cases = [
            (b"not onnx", {}, "problems[0].dynamics.graph.onnx: not a serialized ONNX"),
            (self.onnx, {"nope": np.zeros(3)},
             'problems[0].dynamics.graph.parameters["nope"]: the graph has no initializer of '
             "that name (it has: A, B, c)"),
            (self.onnx, {"c": np.zeros(4)},
             'problems[0].dynamics.graph.parameters["c"]: expected shape (3), got (4)'),
            (self.onnx, {"c": np.array([0.0, np.nan, 0.0])},
             'problems[0].dynamics.graph.parameters["c"]: not finite at [1]'),
        ]
        for onnx_bytes, parameters, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(grpc.RpcError) as raised:
                    self.solve(solve_request(lambda g: setattr(g, "onnx", onnx_bytes),
                                             parameters))
                self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn(message, raised.exception.details())
        import onnx
        from onnx import TensorProto, helper
        graph = helper.make_graph(
            [helper.make_node("Erf", ["x"], ["x_next"], name="erf")], "g",
            [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [N]),
             helper.make_tensor_value_info("u", TensorProto.DOUBLE, [M])],
            [helper.make_tensor_value_info("x_next", TensorProto.DOUBLE, [N])])
        bad = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        with self.assertRaises(grpc.RpcError) as raised:
            self.solve(solve_request(lambda g: setattr(g, "onnx", bad.SerializeToString())))
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("problems[0].dynamics.graph.onnx: node 0 'erf' (op Erf): is not supported; "
                      "supported ops: Abs, Add", raised.exception.details())
        del onnx

    def test_a_continuous_time_graph_is_integrated_by_the_requests_integrator(self):
        dt = 0.1

        def rk4(x, u):
            f = lambda y: self.module(y, u)  # noqa: E731
            k1 = f(x)
            k2 = f(x + 0.5 * dt * k1)
            k3 = f(x + 0.5 * dt * k2)
            k4 = f(x + dt * k3)
            return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

        steps = {"euler": lambda x, u: x + dt * self.module(x, u),
                 "midpoint": lambda x, u: x + dt * self.module(x + 0.5 * dt * self.module(x, u), u),
                 "rk4": rk4, "": rk4}
        for integrator, step in steps.items():
            with self.subTest(integrator=integrator):
                def continuous(g):
                    g.onnx = self.onnx
                    g.continuous = True
                    g.dt = dt
                    g.integrator = integrator
                response = self.solve(solve_request(continuous))
                self.assertEqual(
                    mpcd_pb2.SolveStatus.Name(response.solutions[0].status), "CONVERGED")
                x = mpcd.client.from_tensor(response.solutions[0].x)
                u = mpcd.client.from_tensor(response.solutions[0].u)
                with torch.no_grad():
                    predicted = step(torch.tensor(x[:-1]), torch.tensor(u[:-1])).numpy()
                np.testing.assert_allclose(x[1:], predicted, atol=1e-12)

    def test_time_step_fields_are_checked_naming_them(self):
        def setter(continuous, dt, integrator):
            def set_graph(g):
                g.onnx = self.onnx
                g.continuous = continuous
                g.dt = dt
                g.integrator = integrator
            return set_graph

        field = "problems[0].dynamics.graph."
        cases = [
            ((False, 0.1, ""), field + "dt: only for a continuous-time graph"),
            ((False, 0.0, "rk4"), field + "integrator: only for a continuous-time graph"),
            ((True, 0.0, "rk4"), field + "dt: must be > 0 for a continuous-time graph, got 0"),
            ((True, float("inf"), ""), field + "dt: must be > 0 for a continuous-time graph"),
            ((True, 0.1, "rk45"), field + 'integrator: unknown integrator "rk45" (known: rk4, '
                                          "euler, midpoint)"),
        ]
        for arguments, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(grpc.RpcError) as raised:
                    self.solve(solve_request(setter(*arguments)))
                self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn(message, raised.exception.details())

    def test_nan_during_evaluation_is_the_problems_status(self):
        class Log(torch.nn.Module):
            def forward(self, x, u):
                return torch.log(x) + u.sum(-1, keepdim=True)

        response = self.solve(solve_request(lambda g: setattr(g, "onnx", export(Log())),
                                            x_init=(-1.0, 1.0, 1.0)))
        self.assertEqual(mpcd_pb2.SolveStatus.Name(response.solutions[0].status), "NOT_FINITE")

    def test_backward_gives_every_initializers_gradient_against_central_differences(self):
        weights_x = np.random.RandomState(3).randn(T, N)
        weights_u = np.random.RandomState(4).randn(T, M)
        values = {name: p.detach().numpy().copy() for name, p in self.module.named_parameters()}

        def loss(parameters):
            response = self.solve(solve_request(lambda g: setattr(g, "onnx", self.onnx),
                                                parameters))
            solution = response.solutions[0]
            self.assertEqual(mpcd_pb2.SolveStatus.Name(solution.status), "CONVERGED")
            x, u = mpcd.client.from_tensor(solution.x), mpcd.client.from_tensor(solution.u)
            return float(np.sum(weights_x * x) + np.sum(weights_u * u)), solution

        _, solution = loss(values)
        # FULL_CHAIN: the complete chain rule through the linearisation, which for dynamics linear
        # in (x, u) is the true derivative of the solution map (EXACT adds lambda' d2f/dtau2 = 0).
        request = mpcd_pb2.BackwardRequest(horizon=T, mode=mpcd_pb2.FULL_CHAIN)
        request.problems.extend(solve_request(lambda g: setattr(g, "onnx", self.onnx),
                                              values).problems)
        out = request.solutions.add()
        out.x.CopyFrom(solution.x)
        out.u.CopyFrom(solution.u)
        cotangent = request.cotangents.add()
        mpcd.client.to_tensor(weights_x, cotangent.x)
        mpcd.client.to_tensor(weights_u, cotangent.u)
        gradient = STUB.Backward(request, timeout=60).gradients[0].dynamics.graph
        self.assertEqual(gradient.sha256, mpcd.torch.hashlib.sha256(self.onnx).hexdigest())
        h = 1e-6
        for name, value in values.items():
            got = mpcd.client.from_tensor(gradient.parameters[name])
            self.assertEqual(got.shape, value.shape, name)
            for index in np.ndindex(value.shape):
                plus = {k: v.copy() for k, v in values.items()}
                minus = {k: v.copy() for k, v in values.items()}
                plus[name][index] += h
                minus[name][index] -= h
                fd = (loss(plus)[0] - loss(minus)[0]) / (2 * h)
                self.assertAlmostEqual(got[index], fd, delta=1e-6 * (1 + abs(fd)),
                                       msg="%s%s" % (name, index))


class ModuleDynamicsTest(unittest.TestCase):
    """mpcd.torch.MPC(...)(x_init, cost, dx) with dx a torch.nn.Module."""

    def setUp(self):
        self.client = mpcd.Client(SERVER.target, timeout=60)
        g = torch.Generator().manual_seed(5)
        self.x_init = 0.5 * torch.randn(2, N, generator=g)
        C = torch.diag(torch.tensor([1.0, 0.5, 2.0, 0.1, 0.2]))
        self.cost = QuadCost(C, torch.tensor([-0.3, 0.2, 0.1, 0.0, 0.05]))
        self.weights_x = torch.randn(T, 2, N, generator=g)
        self.weights_u = torch.randn(T, 2, M, generator=g)
        self.lqr_iter = 200

    def tearDown(self):
        self.client.close()

    def mpc(self, mode="DEFAULT", client=None):
        # A full step under 1e-9 comes after Newton's quadratic convergence has brought the
        # iterate to rounding level; much tighter, some solves stall on rounding and never stop.
        return MPC(N, M, T, lqr_iter=self.lqr_iter, eps=1e-9, client=client or self.client,
                   gradient_mode=mode)

    def loss(self, module, mode="DEFAULT"):
        x, u, _ = self.mpc(mode)(self.x_init, self.cost, module)
        return (self.weights_x * x).sum() + (self.weights_u * u).sum(), x, u

    def check_solution_follows_the_module(self, module, x, u):
        with torch.no_grad():
            predicted = module(x[:-1].reshape(-1, N), u[:-1].reshape(-1, M)).reshape(T - 1, 2, N)
        np.testing.assert_allclose(x[1:].detach().numpy(), predicted.numpy(), atol=1e-11)

    def check_gradients_against_central_differences(self, module, mode="FULL_CHAIN", h=1e-4):
        """EXACT is the true derivative of the solution map; for dynamics linear in (x, u),
        FULL_CHAIN is too (it lacks only lambda' d2f/dtau2, zero there). The loss is linear in the
        solution, so a solve accurate to e moves a difference quotient by e / h: h = 1e-4 keeps
        that small for iterates stopped at a 1e-9 step (and the O(h^2) error too)."""
        module.zero_grad()
        value, x, u = self.loss(module, mode)
        value.backward()
        self.check_solution_follows_the_module(module, x, u)
        for name, parameter in module.named_parameters():
            self.assertIsNotNone(parameter.grad, name)
            for index in np.ndindex(tuple(parameter.shape)):
                with torch.no_grad():
                    saved = parameter[index].item()
                    parameter[index] = saved + h
                    plus = self.loss(module)[0].item()
                    parameter[index] = saved - h
                    minus = self.loss(module)[0].item()
                    parameter[index] = saved
                fd = (plus - minus) / (2 * h)
                self.assertAlmostEqual(parameter.grad[index].item(), fd, delta=1e-5 * (1 + abs(fd)),
                                       msg="%s%s" % (name, index))

    def linearised_oracle(self, module, x, u, full_chain):
        """The loss through MPC(LinDx(F, f)) with F_t = df/dtau and f_t = f(tau_t) - F_t tau_t at
        the module's solution, computed by torch's autograd: F a constant (DEFAULT, mpc.pytorch's
        definition) or itself a function of the parameters (FULL_CHAIN)."""
        F, f = [], []
        for t in range(T - 1):
            F_t, f_t = [], []
            for b in range(2):
                tau = torch.cat([x[t, b], u[t, b]]).detach()

                def step(tau):
                    return module(tau[:N].unsqueeze(0), tau[N:].unsqueeze(0))[0]

                J = torch.autograd.functional.jacobian(step, tau, create_graph=full_chain)
                if not full_chain:
                    J = J.detach()
                F_t.append(J)
                f_t.append(step(tau) - J @ tau)
            F.append(torch.stack(F_t))
            f.append(torch.stack(f_t))
        lx, lu, _ = self.mpc()(self.x_init, self.cost, LinDx(torch.stack(F), torch.stack(f)))
        return (self.weights_x * lx).sum() + (self.weights_u * lu).sum(), lx, lu

    def test_sigmoid_mlp_gradients_are_the_linearised_problems(self):
        module = SigmoidMlp()
        for mode, full_chain in (("DEFAULT", False), ("FULL_CHAIN", True)):
            with self.subTest(mode=mode):
                module.zero_grad()
                value, x, u = self.loss(module, mode)
                value.backward()
                self.check_solution_follows_the_module(module, x, u)
                mine = {name: p.grad.clone() for name, p in module.named_parameters()}
                module.zero_grad()
                oracle, lx, lu = self.linearised_oracle(module, x, u, full_chain)
                np.testing.assert_allclose(lx.detach().numpy(), x.detach().numpy(), atol=1e-9)
                np.testing.assert_allclose(lu.detach().numpy(), u.detach().numpy(), atol=1e-9)
                oracle.backward()
                for name, p in module.named_parameters():
                    np.testing.assert_allclose(mine[name].numpy(), p.grad.numpy(), rtol=1e-6,
                                               atol=1e-9, err_msg=name)
        self.assertGreater(float(mine["l1.weight"].abs().max()), 1e-4)  # not trivially zero

    def test_sigmoid_mlp_exact_gradients_against_central_differences(self):
        self.check_gradients_against_central_differences(SigmoidMlp(), "EXACT")

    def test_affine_gradients_against_central_differences(self):
        self.check_gradients_against_central_differences(Affine())

    def test_continuous_time_modules_are_integrated_and_differentiated_through(self):
        # ContinuousDx: the module is dx/dt; the solution follows its integrated step and the
        # gradients are those of the integrated step (FULL_CHAIN is exact for a linear ODE). The
        # iLQR converges only linearly on the integrated MLP (no second-order dynamics terms in
        # its steps), so reaching a 1e-9 step takes some perturbed solves past 200 iterations.
        self.lqr_iter = 2000
        for ode, integrator, mode in ((Affine(), "midpoint", "FULL_CHAIN"),
                                      (SigmoidMlp().double(), "rk4", "EXACT")):
            with self.subTest(ode=type(ode).__name__, integrator=integrator):
                self.check_gradients_against_central_differences(
                    mpcd.torch.ContinuousDx(ode, dt=0.1, integrator=integrator), mode)
        with self.assertRaises(ValueError):
            mpcd.torch.ContinuousDx(Affine(), dt=0.1, integrator="rk45")

    def test_parameters_of_equal_value_keep_their_own_gradients(self):
        module = TwinLayers()
        self.check_gradients_against_central_differences(module)
        self.assertGreater(float((module.a.grad - module.b.grad).abs().max()), 1e-3)

    def test_affine_module_gives_the_lindx_answer(self):
        module = Affine()
        value, x, u = self.loss(module, "FULL_CHAIN")
        value.backward()
        A, B, c = (p.detach().clone().requires_grad_() for p in (module.A, module.B, module.c))
        lx, lu, _ = self.mpc()(self.x_init, self.cost, LinDx(torch.cat([A, B], 1), c))
        ((self.weights_x * lx).sum() + (self.weights_u * lu).sum()).backward()
        np.testing.assert_allclose(x.detach().numpy(), lx.detach().numpy(), atol=1e-10)
        np.testing.assert_allclose(u.detach().numpy(), lu.detach().numpy(), atol=1e-10)
        for mine, theirs in ((module.A, A), (module.B, B), (module.c, c)):
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), atol=1e-8)

    def test_float32_module_gets_float32_gradients(self):
        module = Affine().float()
        x, u, _ = self.mpc("FULL_CHAIN")(self.x_init.float(), QuadCost(
            self.cost.C.float(), self.cost.c.float()), module)
        ((self.weights_x.float() * x).sum() + (self.weights_u.float() * u).sum()).backward()
        self.assertEqual(module.A.grad.dtype, torch.float32)
        reference = Affine()
        self.loss(reference, "FULL_CHAIN")[0].backward()
        np.testing.assert_allclose(module.A.grad.numpy(), reference.A.grad.numpy(), rtol=1e-4,
                                   atol=1e-4)

    def test_bytes_are_sent_again_when_the_server_lost_the_hash(self):
        module = Affine()
        first, _, _ = self.loss(module)
        other = Mpcd(ARGS.mpcd, "--backend=cpu")  # a fresh replica that never saw the graph
        try:
            client = mpcd.Client(other.target, timeout=60)
            graph = mpcd.torch._module_graph(module, N, M)
            graph.registered.add(client)  # as if it had: the first request sends the hash only
            x, u, _ = self.mpc(client=client)(self.x_init, self.cost, module)
            value = (self.weights_x * x).sum() + (self.weights_u * u).sum()
            self.assertAlmostEqual(value.item(), first.item(), delta=1e-12)
            client.close()
        finally:
            self.assertEqual(other.stop()[0], 0)

    def backward_after_eviction(self, *server_flags):
        """Solves with a module's graph by its hash, evicts the graph (--graph_cache_size=1) with
        another module's Solve, then runs the first one's backward: checks the gradients against
        those of a server that kept the graph and returns the Backwards refused
        FAILED_PRECONDITION."""
        module = Affine()
        module.zero_grad()
        self.loss(module)[0].backward()
        expected = {name: p.grad.clone() for name, p in module.named_parameters()}
        small = Mpcd(ARGS.mpcd, "--backend=cpu", "--graph_cache_size=1", *server_flags)
        try:
            client = mpcd.Client(small.target, timeout=60)
            self.mpc(client=client)(self.x_init, self.cost, module)  # sends the bytes
            module.zero_grad()
            x, u, _ = self.mpc(client=client)(self.x_init, self.cost, module)  # the hash only
            self.mpc(client=client)(self.x_init, self.cost, SigmoidMlp())  # evicts it
            ((self.weights_x * x).sum() + (self.weights_u * u).sum()).backward()
            for name, parameter in module.named_parameters():
                np.testing.assert_array_equal(parameter.grad.numpy(), expected[name].numpy(),
                                              err_msg=name)
            client.close()
            return sample(scrape(small.metrics_url), "mpcd_requests_total", method="Backward",
                          code="FAILED_PRECONDITION")
        finally:
            self.assertEqual(small.stop()[0], 0)

    def test_a_retained_solve_keeps_its_graph_through_an_eviction(self):
        """The Solve's retained copy holds its problems as converted, graph included: the
        Backward by name needs nothing from the graph cache."""
        self.assertEqual(self.backward_after_eviction(), 0.0)

    def test_a_graph_evicted_between_solve_and_backward_is_sent_again(self):
        """Without a retained copy (--retained_solve_bytes=0) the Backward names the graph by its
        hash, which another graph evicted: it is refused, and the client sends the bytes."""
        self.assertEqual(self.backward_after_eviction("--retained_solve_bytes=0"), 1.0)

    def test_modules_the_exporter_or_the_server_cannot_run_are_errors_naming_the_op(self):
        class Unexportable(torch.nn.Module):
            def forward(self, x, u):
                return x + torch.linalg.svdvals(x.reshape(N, 1)) + u.sum()

        with self.assertRaises(TypeError) as raised:
            self.mpc()(self.x_init, self.cost, Unexportable())
        self.assertIn("svdvals", str(raised.exception))

        class Unsupported(torch.nn.Module):
            def forward(self, x, u):
                return torch.erf(x) + u.sum(-1, keepdim=True)

        with self.assertRaises(mpcd.InvalidArgumentError) as raised:
            self.mpc()(self.x_init, self.cost, Unsupported())
        self.assertIn("(op Erf): is not supported", str(raised.exception))


def main():
    global ARGS, mpcd, mpcd_pb2, mpcd_pb2_grpc, torch, MPC, QuadCost, LinDx
    ARGS, argv = client_test_args()
    import mpcd
    import mpcd.client
    import mpcd.torch
    import torch
    from mpcd.torch import MPC, QuadCost, LinDx
    from mpcd.v1 import mpcd_pb2, mpcd_pb2_grpc
    torch.set_default_dtype(torch.float64)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
