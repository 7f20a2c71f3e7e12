#!/usr/bin/python3
"""Tensors on the wire, the problem template and the Python client's transport, against a real
mpcd process over a real socket (issue 14).

- raw (little-endian bytes) and repeated tensors give bitwise the same solutions; one request may
  mix them; float32 inputs are widened exactly; RAW_FLOAT32 answers are the float64 ones rounded;
- every malformed raw payload is INVALID_ARGUMENT naming the field;
- problem_template: template + per-problem fields give bitwise the solutions of spelled-out
  problems, for Solve and Backward;
- batched layouts (BatchedProblems, stacked answers, Client.solve_batched/backward_batched):
  bitwise the per-problem solutions and gradients; mixed listed/batched/template requests;
  malformed stacked tensors name the field; MPC's per-problem model params;
- BackwardRequest.gradient_fields answers only the named gradients; dL/dC formed on the client
  from dL/dc (as mpcd.torch.MPC does for a per-step cost) is bit for bit the server's;
- mpcd.torch.MPC: a batch of 128 n8 m4 T30 problems forward and backward (with one c for all, its
  Backward answer is over gRPC's default 4 MiB receive limit: a client held to that limit fails,
  the default one works; with a per-step c it matches the same batch done in chunks); float32 in
  -> float32 out; one channel per target; CUDA tensors where torch has CUDA;
- launch_immediately: only the requests that ask skip the server's queue delay; mpcd.torch.MPC
  asks, forward and backward.

Usage: python_wire_test.py --mpcd build/bin/mpcd --package-dir client/python
         --stubs-dir build/python [unittest args]
"""

import argparse
import os
import sys
import threading
import unittest

import grpc
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import Mpcd, module_server, sample, scrape  # noqa: E402

ARGS = None
SERVER = None


setUpModule, tearDownModule = module_server(globals(), "--backend=cpu", "--threads=2")


def lqr_problem(rng, n=3, m=2, T=6, time_varying=False):
    """A bounded convex LQR problem as an mpcd.Problem (float64)."""
    A = np.eye(n) + 0.2 * rng.standard_normal((n, n))
    Bm = rng.standard_normal((n, m))
    L = rng.standard_normal((n + m, n + m))
    C = L @ L.T / (n + m) + np.eye(n + m)
    F = np.concatenate([A, Bm], axis=1)
    if time_varying:
        C = np.stack([C * (1 + 0.1 * t) for t in range(T)])
        F = np.stack([F + 0.01 * t for t in range(T - 1)])
    return mpcd.Problem(
        x_init=rng.standard_normal(n), C=C, c=rng.standard_normal(n + m),
        dynamics=mpcd.Linear(F, 0.1 * rng.standard_normal(n)),
        u_lower=-0.5 * np.ones(m), u_upper=0.4 * np.ones(m), u_init=0.1 * np.ones((T, m)))


def problem_proto(problem, raw):
    """problem_to_proto with every tensor raw (float64) or repeated."""
    message = mpcd.client.problem_to_proto(problem)
    if not raw:
        for tensor in tensors_of(message):
            array = mpcd.client.from_tensor(tensor)
            if array is not None:
                mpcd.client.to_tensor(array, tensor, raw=False)
    return message


def tensors_of(problem):
    return [problem.x_init, problem.cost.quadratic, problem.cost.linear,
            problem.dynamics.linear.transition, problem.dynamics.linear.offset,
            problem.u_lower, problem.u_upper, problem.u_init]


def solve_request(T, problems, encoding):
    return mpcd_pb2.SolveRequest(horizon=T, problems=problems, response_encoding=encoding,
                                 options=mpcd_pb2.SolverOptions(max_iterations=30,
                                                                tolerance=1e-10),
                                 return_gains=True)


class WireEncodingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.client = mpcd.Client(SERVER.target, timeout=60)
        rng = np.random.default_rng(7)
        cls.T = 6
        cls.problems = [lqr_problem(rng, time_varying=(i % 2 == 1)) for i in range(4)]

    def solve(self, request):
        return self.client._call(self.client.stub.Solve, request, None)

    def test_raw_and_repeated_give_bitwise_the_same_solutions(self):
        repeated = self.solve(solve_request(
            self.T, [problem_proto(p, raw=False) for p in self.problems],
            mpcd_pb2.REPEATED_FLOAT64))
        raw = self.solve(solve_request(
            self.T, [problem_proto(p, raw=True) for p in self.problems], mpcd_pb2.RAW_FLOAT64))
        self.assertTrue(raw.solutions[0].x.raw_data, "the raw answer is not raw")
        self.assertFalse(repeated.solutions[0].x.raw_data)
        for a, b in zip(repeated.solutions, raw.solutions):
            for field in ("x", "u", "feedback", "feedforward"):
                want = mpcd.client.from_tensor(getattr(a, field))
                got = mpcd.client.from_tensor(getattr(b, field))
                self.assertEqual(got.dtype, np.float64)
                self.assertEqual(got.shape, want.shape)
                self.assertEqual(got.tobytes(), want.tobytes(), field)
            self.assertEqual(a.cost, b.cost)
            self.assertEqual(a.status, b.status)
        # A real answer (bounds active somewhere), not a trivial one.
        u = np.concatenate([mpcd.client.from_tensor(s.u).ravel() for s in raw.solutions])
        self.assertTrue(np.any(np.isclose(u, 0.4)) or np.any(np.isclose(u, -0.5)))

    def test_mixed_raw_and_repeated_in_one_request(self):
        base = self.solve(solve_request(
            self.T, [problem_proto(p, raw=False) for p in self.problems],
            mpcd_pb2.REPEATED_FLOAT64))
        mixed = []
        k = 0
        for p in self.problems:
            message = problem_proto(p, raw=True)
            for tensor in tensors_of(message):
                if k % 2 == 0 and tensor.raw_data:
                    mpcd.client.to_tensor(mpcd.client.from_tensor(tensor), tensor, raw=False)
                k += 1
            mixed.append(message)
        kinds = {bool(t.raw_data) for m in mixed for t in tensors_of(m) if t.shape}
        self.assertEqual(kinds, {True, False})
        answer = self.solve(solve_request(self.T, mixed, mpcd_pb2.REPEATED_FLOAT64))
        self.assertEqual(answer.solutions[0].SerializeToString(),
                         base.solutions[0].SerializeToString())
        self.assertEqual([s.SerializeToString() for s in answer.solutions],
                         [s.SerializeToString() for s in base.solutions])

    def test_float32_in_is_widened_exactly_and_float32_out_is_rounded(self):
        # The same values as float64 and as float32: bitwise the same float64 solution.
        as32 = [mpcd.Problem(**{k: (np.asarray(v, dtype=np.float32) if isinstance(v, np.ndarray)
                                    else v) for k, v in p.__dict__.items()})
                for p in self.problems]
        for p in as32:
            p.dynamics = mpcd.Linear(np.asarray(p.dynamics.F, np.float32),
                                     np.asarray(p.dynamics.f, np.float32))
        widened = [mpcd.Problem(**{k: (np.asarray(v, dtype=np.float64)
                                       if isinstance(v, np.ndarray) else v)
                                   for k, v in p.__dict__.items()}) for p in as32]
        for p, q in zip(widened, as32):
            p.dynamics = mpcd.Linear(q.dynamics.F.astype(np.float64),
                                     q.dynamics.f.astype(np.float64))
        message = mpcd.client.problem_to_proto(as32[0])
        self.assertEqual(message.cost.quadratic.dtype, mpcd_pb2.DATA_TYPE_FLOAT32)
        self.assertEqual(len(message.cost.quadratic.raw_data), 4 * as32[0].C.size)
        r64 = self.client.solve(self.T, widened, options=dict(max_iterations=30), dtype=np.float64)
        r32in = self.client.solve(self.T, as32, options=dict(max_iterations=30),
                                  dtype=np.float64)
        r32 = self.client.solve(self.T, as32, options=dict(max_iterations=30))  # float32 default
        for a, b, c in zip(r64.solutions, r32in.solutions, r32.solutions):
            self.assertEqual(a.x.tobytes(), b.x.tobytes())
            self.assertEqual(a.u.tobytes(), b.u.tobytes())
            self.assertEqual(c.x.dtype, np.float32)
            self.assertEqual(c.u.dtype, np.float32)
            np.testing.assert_array_equal(c.x, a.x.astype(np.float32))
            np.testing.assert_array_equal(c.u, a.u.astype(np.float32))

    def test_every_malformed_raw_payload_is_invalid_argument_naming_the_field(self):
        def ragged(t):
            t.raw_data = t.raw_data + b"\0"

        def short3(t):
            t.raw_data = t.raw_data[:-3]

        def ragged32(t):
            t.raw_data = np.asarray(np.frombuffer(t.raw_data, "<f8"), "<f4").tobytes() + b"\1\2"
            t.dtype = mpcd_pb2.DATA_TYPE_FLOAT32

        def missing(t):
            t.raw_data = t.raw_data[:-8]

        def as32(t):
            t.dtype = mpcd_pb2.DATA_TYPE_FLOAT32

        def nan(t):
            values = np.frombuffer(t.raw_data, "<f8").copy()
            values[-1] = np.nan
            t.raw_data = values.tobytes()

        def inf32(t):
            values = np.frombuffer(t.raw_data, "<f8").astype("<f4")
            values[0] = -np.inf
            t.raw_data = values.tobytes()
            t.dtype = mpcd_pb2.DATA_TYPE_FLOAT32

        def both(t):
            t.data.append(1.0)

        cases = [
            (ragged, "raw_data: %d bytes is not a whole number of DATA_TYPE_FLOAT64 values"),
            (short3, "raw_data: %d bytes is not a whole number of DATA_TYPE_FLOAT64 values"),
            (ragged32, "raw_data: %d bytes is not a whole number of DATA_TYPE_FLOAT32 values"),
            (missing, "values, got"),
            (as32, "values, got"),
            (nan, ": not finite at"),
            (inf32, ": not finite at"),
            (both, ": has both data and raw_data"),
        ]
        names = ["x_init", "cost.quadratic", "cost.linear", "dynamics.linear.transition",
                 "dynamics.linear.offset", "u_init"]
        checked = 0
        for mutate, message in cases:
            for index, name in enumerate(names):
                problems = [problem_proto(p, raw=True) for p in self.problems[:2]]
                tensor = [problems[1].x_init, problems[1].cost.quadratic,
                          problems[1].cost.linear, problems[1].dynamics.linear.transition,
                          problems[1].dynamics.linear.offset, problems[1].u_init][index]
                mutate(tensor)
                expected = message % len(tensor.raw_data) if "%d" in message else message
                with self.subTest(mutate=mutate.__name__, field=name):
                    with self.assertRaises(mpcd.InvalidArgumentError) as caught:
                        self.solve(solve_request(self.T, problems, mpcd_pb2.RAW_FLOAT64))
                    self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
                    self.assertIn("problems[1]." + name, caught.exception.details)
                    self.assertIn(expected, caught.exception.details)
                checked += 1
        self.assertEqual(checked, len(cases) * len(names))


class TemplateTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.client = mpcd.Client(SERVER.target, timeout=60)

    def test_template_and_per_problem_fields_solve_like_spelled_out_problems(self):
        rng = np.random.default_rng(11)
        T = 8
        shared = lqr_problem(rng, T=T)
        own = lqr_problem(rng, T=T, time_varying=True)
        template = mpcd.Problem(x_init=None, C=shared.C, c=shared.c, dynamics=shared.dynamics,
                                u_lower=shared.u_lower, u_upper=shared.u_upper)
        # Per problem: only x_init; x_init and its own C; x_init, own dynamics and u_init; and one
        # that sets everything itself.
        partial = [
            mpcd.Problem(x_init=rng.standard_normal(3), C=None),
            mpcd.Problem(x_init=rng.standard_normal(3), C=own.C),
            mpcd.Problem(x_init=rng.standard_normal(3), C=None, dynamics=own.dynamics,
                         u_init=own.u_init),
            own,
        ]
        full = []
        for p in partial:
            fields = dict(template.__dict__)
            fields.update({k: v for k, v in p.__dict__.items() if v is not None})
            full.append(mpcd.Problem(**fields))
        options = dict(max_iterations=30, tolerance=1e-10)
        a = self.client.solve(T, partial, options=options, template=template, return_gains=True)
        b = self.client.solve(T, full, options=options, return_gains=True)
        for sa, sb in zip(a.solutions, b.solutions):
            self.assertEqual(sa.x.tobytes(), sb.x.tobytes())
            self.assertEqual(sa.u.tobytes(), sb.u.tobytes())
            self.assertEqual(sa.feedback.tobytes(), sb.feedback.tobytes())
            self.assertEqual(sa.cost, sb.cost)
        # The problems really differ (the template did not make them all one problem).
        self.assertGreater(np.abs(a.solutions[0].u - a.solutions[2].u).max(), 1e-3)

        # Backward with the same template: gradients equal the spelled-out ones, each shaped like
        # the problem's (merged) input.
        rng2 = np.random.default_rng(12)
        cot = [(rng2.standard_normal((T, 3)), rng2.standard_normal((T, 2))) for _ in partial]
        ga = self.client.backward(T, partial, a.solutions, cot, template=template)
        gb = self.client.backward(T, full, b.solutions, cot)
        for x, y in zip(ga.gradients, gb.gradients):
            for field in ("x_init", "C", "c", "F", "f"):
                self.assertEqual(getattr(x, field).shape, getattr(y, field).shape, field)
                self.assertEqual(getattr(x, field).tobytes(), getattr(y, field).tobytes(), field)
        self.assertEqual(ga.gradients[0].C.shape, (5, 5))
        self.assertEqual(ga.gradients[1].C.shape, (T, 5, 5))

    def test_template_errors_name_the_template(self):
        rng = np.random.default_rng(13)
        shared = lqr_problem(rng)
        bad_c = np.array(shared.c)
        bad_c[1] = np.inf
        template = mpcd.Problem(x_init=None, C=shared.C, c=bad_c, dynamics=shared.dynamics)
        with self.assertRaises(mpcd.InvalidArgumentError) as caught:
            self.client.solve(6, [mpcd.Problem(x_init=np.zeros(3), C=None)], template=template)
        self.assertEqual(caught.exception.details,
                         "problem_template.cost.linear: not finite at [1] (inf)")


class BatchedLayoutTest(unittest.TestCase):
    """Equal shapes as one stacked tensor per input (BatchedProblems) and stacked answers: bitwise
    the per-problem layout's solutions and gradients."""

    @classmethod
    def setUpClass(cls):
        cls.client = mpcd.Client(SERVER.target, timeout=60)
        rng = np.random.default_rng(21)
        cls.T = 7
        cls.problems = [lqr_problem(rng, T=cls.T, time_varying=True) for _ in range(5)]

    def stacked(self, name):
        if name in ("F", "f"):
            return np.stack([getattr(p.dynamics, name) for p in self.problems])
        return np.stack([getattr(p, name) for p in self.problems])

    def test_batched_and_per_problem_give_bitwise_the_same_solutions_and_gradients(self):
        T = self.T
        options = dict(max_iterations=30, tolerance=1e-10)
        per = self.client.solve(T, self.problems, options=options, return_gains=True)
        # Per-problem x_init, C, F, f and u_init stacked; c and the bounds differ per problem too.
        batch = mpcd.Batch(**{name: self.stacked(name) for name in
                              ("x_init", "C", "c", "F", "f", "u_lower", "u_upper", "u_init")})
        stacked = self.client.solve_batched(T, batch, options=options, return_gains=True)
        self.assertEqual(stacked.x.shape, (5, T, 3))
        self.assertEqual(stacked.feedback.shape, (5, T, 2, 3))
        for b, one in enumerate(per.solutions):
            self.assertEqual(stacked.x[b].tobytes(), one.x.tobytes())
            self.assertEqual(stacked.u[b].tobytes(), one.u.tobytes())
            self.assertEqual(stacked.feedback[b].tobytes(), one.feedback.tobytes())
            self.assertEqual(stacked.cost[b], one.cost)
            self.assertEqual(stacked.status[b], one.status)
            self.assertEqual(stacked.iterations[b], one.iterations)
        self.assertGreater(np.abs(stacked.u[0] - stacked.u[1]).max(), 1e-3)

        rng = np.random.default_rng(22)
        dx = rng.standard_normal((5, T, 3))
        du = rng.standard_normal((5, T, 2))
        g_per = self.client.backward(T, self.problems, per.solutions, list(zip(dx, du)))
        g_stacked = self.client.backward_batched(T, batch, stacked, dl_dx=dx, dl_du=du)
        self.assertEqual(g_stacked.C.shape, (5, T, 5, 5))
        self.assertEqual(len(g_stacked.diagnostics), 5)
        for b, one in enumerate(g_per.gradients):
            for field in ("x_init", "C", "c", "F", "f"):
                self.assertEqual(getattr(g_stacked, field)[b].tobytes(),
                                 getattr(one, field).tobytes(), field)
            self.assertEqual(g_stacked.diagnostics[b], one.diagnostics)
        self.assertGreater(np.abs(g_stacked.c).max(), 1e-6)

    def test_gradient_fields_and_dC_formed_from_dc(self):
        """gradient_fields answers only the named gradients; dL/dC of a per-step cost formed on
        the client from dL/dc and the solution (what mpcd.torch.MPC does instead of receiving it)
        is bit for bit the server's."""
        T = self.T
        options = dict(max_iterations=30, tolerance=1e-10)
        rng = np.random.default_rng(23)
        # C and c per step (dL/dc per step is what dL/dC is formed from).
        inputs = {name: self.stacked(name) for name in
                  ("x_init", "C", "F", "f", "u_lower", "u_upper", "u_init")}
        batch = mpcd.Batch(c=rng.standard_normal((5, T, 5)), **inputs)
        stacked = self.client.solve_batched(T, batch, options=options)
        dx = rng.standard_normal((5, T, 3))
        du = rng.standard_normal((5, T, 2))
        every = self.client.backward_batched(T, batch, stacked, dl_dx=dx, dl_du=du)
        some = self.client.backward_batched(T, batch, stacked, dl_dx=dx, dl_du=du,
                                            gradients=["cost_linear"])
        for absent in ("x_init", "C", "F", "f"):
            self.assertIsNone(getattr(some, absent), absent)
        self.assertEqual(some.c.tobytes(), every.c.tobytes())
        formed = mpcd.torch._quadratic_cost_gradient(some.c, stacked.message)
        self.assertEqual(formed.shape, every.C.shape)
        self.assertEqual(formed.tobytes(), every.C.tobytes())
        time_major = mpcd.torch._quadratic_cost_gradient(some.c, stacked.message, time_major=True)
        self.assertTrue(time_major.flags.c_contiguous)
        self.assertEqual(time_major.tobytes(),
                         np.ascontiguousarray(every.C.transpose(1, 0, 2, 3)).tobytes())
        self.assertGreater(np.abs(every.C).max(), 1e-6)
        with self.assertRaises(mpcd.MpcdError) as caught:
            self.client.backward_batched(T, batch, stacked, dl_dx=dx, dl_du=du,
                                         gradients=["cost_linear", "C"])
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn('gradient_fields[1]: unknown gradient "C"', str(caught.exception))

    def test_mixed_batch_listed_problems_batched_slices_and_template(self):
        T = self.T
        shared = self.problems[0]
        template = mpcd.Problem(x_init=None, C=shared.C, c=shared.c, dynamics=shared.dynamics)
        own = self.problems[3]
        request = mpcd_pb2.SolveRequest(
            horizon=T, response_encoding=mpcd_pb2.RAW_FLOAT64, stacked_response=True,
            options=mpcd_pb2.SolverOptions(max_iterations=30, tolerance=1e-10))
        request.problem_template.CopyFrom(mpcd.client.problem_to_proto(template))
        request.batched.CopyFrom(mpcd.client.batch_to_proto(mpcd.Batch(
            x_init=self.stacked("x_init"), u_lower=self.stacked("u_lower"),
            u_upper=self.stacked("u_upper"))))
        # Problem 2 brings its own cost and dynamics; the others only take slices and template.
        for b in range(5):
            message = request.problems.add()
            if b == 2:
                mpcd.client.to_tensor(own.C, message.cost.quadratic)
                mpcd.client.to_tensor(own.c, message.cost.linear)
                mpcd.client.to_tensor(own.dynamics.F, message.dynamics.linear.transition)
        answer = self.client._call(self.client.stub.Solve, request, None).stacked
        spelled = []
        for b, p in enumerate(self.problems):
            spelled.append(mpcd.Problem(
                x_init=p.x_init, C=own.C if b == 2 else shared.C,
                c=own.c if b == 2 else shared.c,
                dynamics=mpcd.Linear(own.dynamics.F) if b == 2 else shared.dynamics,
                u_lower=p.u_lower, u_upper=p.u_upper))
        want = self.client.solve(T, spelled, options=dict(max_iterations=30, tolerance=1e-10))
        x = mpcd.client.from_tensor(answer.x)
        for b, one in enumerate(want.solutions):
            self.assertEqual(x[b].tobytes(), one.x.tobytes(), b)

    def test_malformed_batched_inputs_are_invalid_argument_naming_the_field(self):
        T = self.T
        cases = [
            (mpcd.Batch(x_init=self.stacked("x_init"), C=self.stacked("C")[:4]),
             "batched.cost_quadratic: expected the batch (5 problems) as the first dimension"),
            (mpcd.Batch(x_init=self.stacked("x_init"), f=self.stacked("f")),
             "batched.offset: only with batched.transition"),
            (mpcd.Batch(x_init=np.where(np.arange(15).reshape(5, 3) == 7, np.nan,
                                        self.stacked("x_init"))),
             "batched.x_init: not finite at [2,1] (nan)"),
        ]
        template = mpcd.Problem(x_init=None, C=self.problems[0].C,
                                dynamics=self.problems[0].dynamics)
        for batch, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(mpcd.InvalidArgumentError) as caught:
                    self.client.solve_batched(T, batch, template=template)
                self.assertIn(message, caught.exception.details)
        request = mpcd_pb2.SolveRequest(horizon=T)
        request.batched.CopyFrom(mpcd.client.batch_to_proto(mpcd.Batch(
            x_init=self.stacked("x_init"))))
        request.batched.x_init.raw_data = request.batched.x_init.raw_data[:-3]
        with self.assertRaises(mpcd.InvalidArgumentError) as caught:
            self.client._call(self.client.stub.Solve, request, None)
        self.assertIn("batched.x_init.raw_data: 117 bytes is not a whole number",
                      caught.exception.details)

    def test_mpc_with_per_problem_model_params(self):
        """PendulumDx with params (B, p) travels as batched.model_params: the batch gives bitwise
        each problem's answer and params gradient alone."""
        B, T = 4, 10
        env = mpcd.torch.PendulumDx()
        q, p = env.get_true_obj()
        rng = np.random.default_rng(23)
        th = rng.uniform(-np.pi, np.pi, B)
        x0 = np.stack([np.cos(th), np.sin(th), rng.uniform(-1, 1, B)], axis=1)
        params = np.stack([[10.0 + b, 1.0 + 0.1 * b, 1.0] for b in range(B)])
        w = torch.tensor(rng.standard_normal((T, B, 3)))

        def step(rows):
            theta = torch.tensor(params[rows], requires_grad=True)
            mpc = MPC(3, 1, T, u_lower=-2.0, u_upper=2.0, lqr_iter=20, exit_unconverged=False,
                      detach_unconverged=False, verbose=-1, target=SERVER.target)
            x, u, _ = mpc(torch.tensor(x0[rows]), QuadCost(torch.diag(q), p),
                          mpcd.torch.PendulumDx(theta))
            (w[:, rows] * x).sum().backward()
            return u.detach(), theta.grad

        u_all, g_all = step(list(range(B)))
        self.assertEqual(tuple(g_all.shape), (B, 3))
        for b in range(B):
            u_one, g_one = step([b])
            self.assertEqual(u_all[:, b].numpy().tobytes(), u_one[:, 0].numpy().tobytes())
            self.assertEqual(g_all[b].numpy().tobytes(), g_one[0].numpy().tobytes())
        self.assertGreater(g_all.abs().max().item(), 1e-6)


    def test_mpc_sends_an_input_repeated_over_the_batch_once(self):
        """C (T, B, n+m, n+m) repeated over the batch (as mpc.pytorch users build it) travels once,
        in the template; x, u and every problem's dC are bitwise those of each problem alone."""
        B, T, n, m = 6, 8, 3, 2
        rng = np.random.default_rng(24)
        L = rng.standard_normal((T, n + m, n + m))
        C = torch.tensor(np.einsum("tij,tkj->tik", L, L) + np.eye(n + m))
        C = C.unsqueeze(1).repeat(1, B, 1, 1)
        c = torch.tensor(rng.standard_normal((T, B, n + m)))
        F = torch.tensor(np.concatenate([np.eye(n) + 0.1 * rng.standard_normal((n, n)),
                                         rng.standard_normal((n, m))], axis=1))
        x0 = torch.tensor(rng.standard_normal((B, n)))
        w = torch.tensor(rng.standard_normal((T, B, m)))
        client = mpcd.Client(SERVER.target, timeout=60)
        sent = []
        call = client._call

        def spy(method, request, timeout):
            sent.append(request)
            return call(method, request, timeout)

        client._call = spy

        def step(rows):
            leaves = [C[:, rows].clone().requires_grad_(True), c[:, rows].clone()]
            mpc = MPC(n, m, T, u_lower=-0.5, u_upper=0.5, lqr_iter=30, client=client)
            x, u, _ = mpc(x0[rows], QuadCost(*leaves), LinDx(F, None))
            (w[:, rows] * u).sum().backward()
            return u.detach(), leaves[0].grad

        u_all, dC_all = step(list(range(B)))
        solve = sent[0]
        self.assertTrue(solve.problem_template.cost.HasField("quadratic"))
        self.assertFalse(solve.batched.HasField("cost_quadratic"))
        self.assertTrue(solve.batched.HasField("cost_linear"))  # c differs per problem
        self.assertGreater(dC_all.abs().max().item(), 1e-6)
        for b in range(B):
            u_one, dC_one = step([b])
            self.assertEqual(u_all[:, b].numpy().tobytes(), u_one[:, 0].numpy().tobytes())
            self.assertEqual(dC_all[:, b].numpy().tobytes(), dC_one[:, 0].numpy().tobytes())
        client.close()


class TorchTransportTest(unittest.TestCase):

    def batch(self, B=128, n=8, m=4, T=30, seed=5, dtype=None):
        """Per-element time-varying C and F: the Backward answer carries their gradients
        (B T (n+m)^2 + B (T-1) n (n+m) doubles, about 7.9 MB for 128 n8 m4 T30)."""
        dtype = dtype or torch.float64
        rng = np.random.default_rng(seed)
        nt = n + m
        L = rng.standard_normal((T, B, nt, nt)) / np.sqrt(nt)
        C = np.einsum("tbij,tbkj->tbik", L, L) + np.eye(nt)
        A = np.eye(n) + 0.05 * rng.standard_normal((T - 1, B, n, n))
        Bm = 0.3 * rng.standard_normal((T - 1, B, n, m))
        F = np.concatenate([A, Bm], axis=3)
        return dict(x_init=torch.tensor(rng.standard_normal((B, n)), dtype=dtype),
                    C=torch.tensor(C, dtype=dtype),
                    c=torch.tensor(rng.standard_normal((T, B, nt)), dtype=dtype),
                    F=torch.tensor(F, dtype=dtype),
                    f=torch.tensor(0.1 * rng.standard_normal((T - 1, B, n)), dtype=dtype))

    def run_step(self, inputs, n, m, T, client=None, chunk=None, device="cpu"):
        """Forward and backward of sum(w_x x) + sum(w_u u); returns x, u and the grads. With
        `chunk`, the batch is split into chunks of that size (each its own Solve/Backward)."""
        leaves = {k: v.clone().to(device).requires_grad_(True) for k, v in inputs.items()}
        B = leaves["x_init"].shape[0]
        rng = np.random.default_rng(99)
        wx = torch.tensor(rng.standard_normal((T, B, n)), dtype=leaves["x_init"].dtype,
                          device=device)
        wu = torch.tensor(rng.standard_normal((T, B, m)), dtype=leaves["x_init"].dtype,
                          device=device)
        chunk = chunk or B
        xs, us = [], []
        for s in range(0, B, chunk):
            sl = slice(s, s + chunk)
            mpc = MPC(n, m, T, u_lower=-1.0, u_upper=1.0, lqr_iter=50, eps=1e-10,
                      client=client, target=SERVER.target, timeout=120)
            c = leaves["c"][:, sl] if leaves["c"].dim() == 3 else leaves["c"]
            x, u, _ = mpc(leaves["x_init"][sl], QuadCost(leaves["C"][:, sl], c),
                          LinDx(leaves["F"][:, sl], leaves["f"][:, sl]))
            xs.append(x)
            us.append(u)
        x, u = torch.cat(xs, dim=1), torch.cat(us, dim=1)
        ((wx * x).sum() + (wu * u).sum()).backward()
        return x.detach(), u.detach(), {k: v.grad for k, v in leaves.items()}

    def test_batch_of_128_n8_m4_t30_forward_and_backward(self):
        n, m, T = 8, 4, 30
        inputs = self.batch()
        # With one c for every step and problem, dL/dC cannot be formed from dL/dc and travels:
        # gRPC's default 4 MiB receive limit cannot take that Backward's answer (~7.3 MB); the
        # default client takes it.
        shared_c = dict(inputs, c=inputs["c"][0, 0])
        small = mpcd.Client(SERVER.target, timeout=120,
                            options=[("grpc.max_receive_message_length", 4 << 20)])
        with self.assertRaises(mpcd.MpcdError) as caught:
            self.run_step(shared_c, n, m, T, client=small)
        self.assertEqual(caught.exception.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        small.close()
        _, _, grads_shared_c = self.run_step(shared_c, n, m, T)
        self.assertEqual(grads_shared_c["C"].shape, inputs["C"].shape)
        # The default client takes it, and agrees with the batch done in chunks of 32.
        x, u, grads = self.run_step(inputs, n, m, T)
        xc, uc, gradsc = self.run_step(inputs, n, m, T, chunk=32)
        self.assertEqual(tuple(x.shape), (T, 128, n))
        self.assertEqual(tuple(u.shape), (T, 128, m))
        torch.testing.assert_close(x, xc, rtol=0, atol=0)
        torch.testing.assert_close(u, uc, rtol=0, atol=0)
        self.assertTrue(torch.any(u.abs() >= 1.0 - 1e-12), "no bound is active: a weak test")
        for name, grad in grads.items():
            self.assertEqual(grad.shape, inputs[name].shape, name)
            torch.testing.assert_close(grad, gradsc[name], rtol=0, atol=0, msg=name)
            self.assertGreater(grad.abs().max().item(), 1e-6, name)

    def test_float32_in_float32_out(self):
        n, m, T, B = 3, 2, 10, 16
        inputs64 = self.batch(B=B, n=n, m=m, T=T, seed=8)
        inputs32 = {k: v.float() for k, v in inputs64.items()}
        x32, u32, g32 = self.run_step(inputs32, n, m, T)
        x64, u64, g64 = self.run_step({k: v.double() for k, v in inputs32.items()}, n, m, T)
        self.assertEqual(x32.dtype, torch.float32)
        self.assertEqual(u32.dtype, torch.float32)
        # Computed in float64 from exactly the float32 values, rounded once.
        torch.testing.assert_close(x32, x64.float(), rtol=0, atol=0)
        torch.testing.assert_close(u32, u64.float(), rtol=0, atol=0)
        for name in g32:
            self.assertEqual(g32[name].dtype, torch.float32, name)
            # The cotangents travel as float32 too, so the gradients agree to float32 precision.
            torch.testing.assert_close(g32[name], g64[name].float(), rtol=1e-4, atol=1e-5,
                                       msg=name)

    def test_one_channel_per_target_shared_across_threads(self):
        a = MPC(3, 1, 5, target=SERVER.target).client
        b = MPC(3, 1, 5, target=SERVER.target).client
        self.assertIs(a, b)
        self.assertIs(a, mpcd.torch.shared_client(SERVER.target))
        seen = []
        barrier = threading.Barrier(8)

        def make():
            barrier.wait()
            seen.append(mpcd.torch.shared_client("127.0.0.1:1"))

        threads = [threading.Thread(target=make) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len({id(c) for c in seen}), 1)
        self.assertIsNot(seen[0], a)
        given = mpcd.Client(SERVER.target)
        self.assertIs(MPC(3, 1, 5, client=given).client, given)
        given.close()

    def test_cuda_tensors(self):
        if not torch.cuda.is_available():
            self.skipTest("torch has no CUDA device here")
        n, m, T, B = 3, 2, 8, 4
        inputs = self.batch(B=B, n=n, m=m, T=T, seed=9)
        x, u, g = self.run_step(inputs, n, m, T, device="cuda")
        xh, uh, gh = self.run_step(inputs, n, m, T)
        self.assertEqual(x.device.type, "cuda")
        torch.testing.assert_close(x.cpu(), xh, rtol=0, atol=0)
        torch.testing.assert_close(u.cpu(), uh, rtol=0, atol=0)
        for name in g:
            self.assertEqual(g[name].device.type, "cuda", name)
            torch.testing.assert_close(g[name].cpu(), gh[name], rtol=0, atol=0, msg=name)


class RetainedSolveTest(unittest.TestCase):
    """mpcd.torch.MPC's Backward names the server's retained copy of the Solve's problems and
    solutions (SolveRequest.retain_for_backward) and sends only the cotangents: the gradients are
    bitwise those of a server that keeps nothing (every problem sent again), and when the server
    has given the copy up for newer ones, the client sends everything again by itself."""

    @classmethod
    def setUpClass(cls):
        cls.kept = Mpcd(ARGS.mpcd, "--backend=cpu", "--threads=2")
        cls.none = Mpcd(ARGS.mpcd, "--backend=cpu", "--threads=2", "--retained_solve_bytes=0")
        cls.clients = {name: mpcd.Client(server.target, timeout=60)
                       for name, server in (("kept", cls.kept), ("none", cls.none))}

    @classmethod
    def tearDownClass(cls):
        for client in cls.clients.values():
            client.close()
        for server in (cls.kept, cls.none):
            code, _, err = server.stop()
            assert code == 0, err

    @staticmethod
    def retained_bytes(server):
        return sample(scrape(server.metrics_url), "mpcd_retained_solve_bytes")

    def forward(self, client, seed, retained_sizes):
        n, m, T, B = 3, 2, 6, 8
        rng = np.random.default_rng(seed)
        C = torch.tensor(np.tile(np.eye(n + m), (T, B, 1, 1)), requires_grad=True)
        c = torch.tensor(rng.standard_normal((T, B, n + m)), requires_grad=True)
        F = torch.tensor(np.concatenate([np.eye(n), 0.3 * rng.standard_normal((n, m))], axis=1)
                         .reshape(1, 1, n, n + m).repeat(T - 1, axis=0).repeat(B, axis=1),
                         requires_grad=True)
        x0 = torch.tensor(rng.standard_normal((B, n)), requires_grad=True)
        mpc = MPC(n, m, T, u_lower=-1.0, u_upper=1.0, client=client)
        calls = []
        call = client._call

        def recording(method, request, timeout):
            if isinstance(request, mpcd_pb2.BackwardRequest):
                calls.append(request.ByteSize())  # also the calls that fail
            response = call(method, request, timeout)
            if isinstance(request, mpcd_pb2.SolveRequest):
                retained_sizes.append(len(response.retained_solve))
            return response

        client._call = recording
        try:
            x, u, _ = mpc(x0, QuadCost(C, c), LinDx(F))
        finally:
            del client._call
        leaves = (x0, C, c, F)

        def backward():
            client._call = recording
            try:
                (x.sum() + (u * u).sum()).backward()
            finally:
                del client._call
            return [t.grad.numpy().tobytes() for t in leaves], calls

        return backward

    def test_gradients_are_bitwise_those_of_sending_everything_again(self):
        sizes = []
        reference, full_calls = self.forward(self.clients["none"], 41, sizes)()
        self.assertEqual(sizes, [0])  # --retained_solve_bytes=0 keeps nothing
        self.assertEqual(self.retained_bytes(self.none), 0)
        grads, calls = self.forward(self.clients["kept"], 41, sizes)()
        self.assertEqual(sizes[1], 32)  # a name: 128 random bits in hex
        self.assertGreater(self.retained_bytes(self.kept), 0)
        self.assertEqual(grads, reference)
        self.assertEqual(len(calls), 1)
        self.assertLess(calls[0], full_calls[0] / 2)  # cotangents and options only

    def test_a_copy_given_up_for_a_newer_one_is_sent_again(self):
        before = self.retained_bytes(self.kept)
        self.forward(self.clients["kept"], 44, [])
        one = self.retained_bytes(self.kept) - before  # what one such forward keeps
        self.assertGreater(one, 0)
        small = Mpcd(ARGS.mpcd, "--backend=cpu", "--threads=2",
                     "--retained_solve_bytes=%d" % (one * 3 // 2))
        try:
            client = mpcd.Client(small.target, timeout=60)
            sizes = []
            reference, _ = self.forward(self.clients["none"], 42, sizes)()
            first = self.forward(client, 42, sizes)
            self.forward(client, 43, sizes)  # takes the room of the first's copy
            self.assertEqual(self.retained_bytes(small), one)
            grads, calls = first()
            self.assertEqual(grads, reference)
            # By name (FAILED_PRECONDITION), then everything again.
            self.assertEqual(len(calls), 2)
            self.assertLess(calls[0], calls[1] / 2)
            client.close()
        finally:
            code, _, err = small.stop()
            self.assertEqual(code, 0, err)


class LaunchImmediatelyTest(unittest.TestCase):
    """SolveRequest/BackwardRequest.launch_immediately against a server that holds partial
    batches for a whole second (--max_queue_delay_us=1000000): a request that asks is launched at
    once, one that does not waits out the delay; mpcd.torch.MPC asks, forward and backward."""

    @classmethod
    def setUpClass(cls):
        cls.server = Mpcd(ARGS.mpcd, "--backend=cpu", "--threads=2",
                          "--max_queue_delay_us=1000000")
        cls.client = mpcd.Client(cls.server.target, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        code, _, err = cls.server.stop()
        assert code == 0, err

    def test_only_the_requests_that_ask_skip_the_delay(self):
        rng = np.random.default_rng(31)
        request = solve_request(6, [problem_proto(lqr_problem(rng), raw=True)],
                                mpcd_pb2.RAW_FLOAT64)
        waited = self.client._call(self.client.stub.Solve, request, None)
        self.assertGreaterEqual(waited.timing.queue_seconds, 1.0)
        request.launch_immediately = True
        at_once = self.client._call(self.client.stub.Solve, request, None)
        self.assertLess(at_once.timing.queue_seconds, 0.5)
        self.assertEqual(at_once.solutions[0].x.raw_data, waited.solutions[0].x.raw_data)

    def test_mpc_asks_forward_and_backward(self):
        n, m, T, B = 3, 1, 5, 4
        rng = np.random.default_rng(32)
        C = torch.eye(n + m, dtype=torch.float64).repeat(T, B, 1, 1)
        c = torch.tensor(rng.standard_normal((T, B, n + m)), requires_grad=True)
        F = torch.tensor(np.concatenate([np.eye(n), rng.standard_normal((n, m))], axis=1))
        x0 = torch.tensor(rng.standard_normal((B, n)))
        mpc = MPC(n, m, T, u_lower=-1.0, u_upper=1.0, client=self.client)
        f = torch.zeros(T - 1, B, n, dtype=torch.float64)
        x, u, _ = mpc(x0, QuadCost(C, c), LinDx(F.repeat(T - 1, B, 1, 1), f))
        (x.sum() + u.sum()).backward()
        self.assertLess(mpc.last_timing["forward"][0], 0.5)
        self.assertLess(mpc.last_timing["backward"][0], 0.5)
        self.assertGreater(c.grad.abs().max().item(), 1e-6)


def main():
    global ARGS, mpcd, mpcd_pb2, torch, MPC, QuadCost, LinDx
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", required=True)
    parser.add_argument("--package-dir", default=None)
    parser.add_argument("--stubs-dir", default=None)
    ARGS, rest = parser.parse_known_args()
    sys.path[:0] = [p for p in (ARGS.package_dir, ARGS.stubs_dir) if p]
    import mpcd
    import mpcd.client
    import mpcd.torch
    import torch
    from mpcd.torch import MPC, QuadCost, LinDx
    from mpcd.v1 import mpcd_pb2
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
