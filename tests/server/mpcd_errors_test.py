#!/usr/bin/python3
"""mpcd's machine-readable errors over real sockets: the google.rpc.Status in the
grpc-status-details-bin trailer, decoded with stubs generated at test time from the vendored
proto/google/rpc (a client from the protos alone).

Covered: an INVALID_ARGUMENT Solve or Backward carries a BadRequest naming every broken problem
(not only the first), bounded at 16 with an "at least" message; a single violation is one
FieldViolation split into field and description; UNAVAILABLE from a full queue carries a RetryInfo
(100 ms); mpcctl prints every violation and the retry delay on its one error line.

Usage: mpcd_errors_test.py --mpcd build/bin/mpcd --mpcctl build/bin/mpcctl --proto-dir proto
         --grpc-proto-dir /usr/share/grpc-proto --protoc protoc --grpc-python-plugin PATH
         --examples examples [unittest args]
"""

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
import mpcd_process_test as process_test  # noqa: E402  (stubs, heavy_request)
from mpcd_harness import Mpcd  # noqa: E402

RPC = None  # status_pb2 and error_details_pb2 from proto/google/rpc


def generate_rpc_stubs(out_dir):
    subprocess.run([process_test.ARGS.protoc, "-I", process_test.ARGS.proto_dir,
                    "--python_out", out_dir, "google/rpc/status.proto",
                    "google/rpc/error_details.proto"], check=True)
    # A top-level "google" would shadow protobuf's: load the generated files as plain modules.
    import importlib.util

    class Rpc:
        pass

    rpc = Rpc()
    for name in ("status_pb2", "error_details_pb2"):
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(out_dir, "google", "rpc", name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        setattr(rpc, name, module)
    return rpc


def rich_status(error):
    """The google.rpc.Status of a grpc.RpcError and its BadRequest / RetryInfo (or None)."""
    encoded = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if encoded is None:
        return None, None, None
    status = RPC.status_pb2.Status.FromString(encoded)
    bad_request = retry = None
    for detail in status.details:
        if detail.Is(RPC.error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = RPC.error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
        elif detail.Is(RPC.error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = RPC.error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    return status, bad_request, retry


def pendulum_request(count, broken):
    """`count` pendulum problems; those in `broken` get an x_init of the wrong shape."""
    pb2 = process_test.STUBS.mpcd_pb2
    request = pb2.SolveRequest(horizon=10)
    for i in range(count):
        problem = request.problems.add()
        problem.x_init.shape[:] = [2 if i in broken else 3]
        problem.x_init.data[:] = [1.0, 0.0] if i in broken else [1.0, 0.0, 0.0]
        problem.cost.quadratic.shape[:] = [4, 4]
        problem.cost.quadratic.data[:] = [1.0 if r == c else 0.0 for r in range(4) for c in range(4)]
        problem.cost.linear.shape[:] = [4]
        problem.cost.linear.data[:] = [0.0] * 4
        problem.dynamics.model.name = "pendulum"
    return request


class InvalidArgumentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Mpcd(process_test.ARGS.mpcd, "--backend=cpu")
        cls.channel = process_test.STUBS.grpc.insecure_channel(cls.server.target)
        cls.stub = process_test.STUBS.mpcd_pb2_grpc.MpcServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code, _, err = cls.server.stop()
        assert code == 0, err

    def refused(self, method, request):
        with self.assertRaises(process_test.STUBS.grpc.RpcError) as caught:
            method(request, timeout=60)
        error = caught.exception
        self.assertEqual(error.code(), process_test.STUBS.grpc.StatusCode.INVALID_ARGUMENT)
        status, bad_request, retry = rich_status(error)
        self.assertIsNotNone(status, "no google.rpc.Status in the trailer")
        self.assertEqual(status.code, 3)  # google.rpc.Code.INVALID_ARGUMENT
        self.assertEqual(status.message, error.details())
        self.assertIsNone(retry)
        return error, [(v.field, v.description) for v in bad_request.field_violations]

    def test_every_broken_problem_is_named(self):
        error, violations = self.refused(self.stub.Solve, pendulum_request(5, broken={1, 3, 4}))
        self.assertEqual(violations, [
            ("problems[1].x_init", "expected shape (3), got (2)"),
            ("problems[3].x_init", "expected shape (3), got (2)"),
            ("problems[4].x_init", "expected shape (3), got (2)")])
        self.assertEqual(error.details(), "problems[1].x_init: expected shape (3), got (2) "
                         "(and 2 more violations: see the error details)")

    def test_every_broken_field_of_a_problem_is_named(self):
        request = pendulum_request(2, broken=set())
        bad = request.problems[1]
        bad.x_init.data[1] = float("nan")
        bad.cost.linear.data[3] = float("inf")
        bad.u_lower.shape[:], bad.u_lower.data[:] = [1], [1.0]
        bad.u_upper.shape[:], bad.u_upper.data[:] = [1], [-1.0]
        error, violations = self.refused(self.stub.Solve, request)
        self.assertEqual([field for field, _ in violations],
                         ["problems[1].x_init", "problems[1].cost.linear", "problems[1].u_lower"])
        self.assertIn("(and 2 more violations: see the error details)", error.details())

    def test_a_broken_shape_hides_the_value_checks_that_depend_on_it(self):
        request = pendulum_request(1, broken={0})
        request.problems[0].cost.linear.data[0] = float("nan")
        request.problems[0].cost.quadratic.shape[:] = [2, 8]
        _, violations = self.refused(self.stub.Solve, request)
        # Both shapes are wrong and named; NaN is a value check, run only on the right shapes.
        self.assertEqual([field for field, _ in violations],
                         ["problems[0].x_init", "problems[0].cost.quadratic"])

    def test_violations_are_bounded(self):
        error, violations = self.refused(self.stub.Solve,
                                         pendulum_request(40, broken=set(range(40))))
        self.assertEqual([field for field, _ in violations],
                         ["problems[%d].x_init" % i for i in range(16)])
        self.assertIn("and at least 15 more violations", error.details())

    def test_a_request_level_violation_is_one_field_violation(self):
        request = pendulum_request(2, broken={1})
        request.horizon = 0
        error, violations = self.refused(self.stub.Solve, request)
        self.assertEqual(len(violations), 1)
        self.assertEqual(violations[0][0], "horizon")
        self.assertEqual(error.details(), "horizon: " + violations[0][1])

    def test_backward_names_every_broken_item(self):
        pb2 = process_test.STUBS.mpcd_pb2
        solve = pendulum_request(3, broken=set())
        solved = self.stub.Solve(solve, timeout=60)
        request = pb2.BackwardRequest(horizon=solve.horizon)
        request.problems.extend(solve.problems)
        for i, solution in enumerate(solved.solutions):
            item = request.solutions.add()
            item.x.CopyFrom(solution.x)
            item.u.CopyFrom(solution.u)
            cotangent = request.cotangents.add()
            cotangent.x.CopyFrom(solution.x)
            if i != 1:  # items 0 and 2: a cotangent of the wrong length
                cotangent.x.shape[:] = [9, 3]
                del cotangent.x.data[3:]
        _, violations = self.refused(self.stub.Backward, request)
        self.assertEqual([field for field, _ in violations],
                         ["cotangents[0].x", "cotangents[2].x"])

    def test_mpcctl_prints_every_violation_on_its_one_line(self):
        from google.protobuf import json_format
        path = os.path.join(tempfile.mkdtemp(prefix="mpcd_errors_"), "two_bad.json")
        try:
            with open(path, "w") as f:
                json.dump(json_format.MessageToDict(pendulum_request(3, broken={0, 2})), f)
            result = subprocess.run([process_test.ARGS.mpcctl, "solve", "--target",
                                     self.server.target, "--request", path],
                                    capture_output=True, text=True, timeout=60)
        finally:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr,
            "mpcctl: INVALID_ARGUMENT: problems[0].x_init: expected shape (3), got (2) (and 1 more "
            "violation: see the error details); violations: problems[0].x_init: expected shape "
            "(3), got (2); problems[2].x_init: expected shape (3), got (2)\n")


class UnavailableTest(unittest.TestCase):
    def test_a_full_queue_answers_unavailable_with_retry_info(self):
        # Two problems launched, two queued: every further request is refused at once.
        server = Mpcd(process_test.ARGS.mpcd, "--backend=cpu", "--threads=1",
                      "--max_batch_size=2", "--max_queue_problems=2",
                      "--max_problems_per_request=2")
        stubs = process_test.STUBS
        try:
            with stubs.grpc.insecure_channel(server.target) as channel:
                stub = stubs.mpcd_pb2_grpc.MpcServiceStub(channel)
                requests = [process_test.heavy_request(stubs.mpcd_pb2, seed, problems=2)
                            for seed in range(8)]
                with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
                    calls = [pool.submit(stub.Solve, r, timeout=120) for r in requests]
                    errors = [c.exception() for c in calls if c.exception() is not None]
                refused = [e for e in errors
                           if e.code() == stubs.grpc.StatusCode.UNAVAILABLE]
                self.assertTrue(refused, "no request was refused: %r" % errors)
                for error in refused:
                    status, bad_request, retry = rich_status(error)
                    self.assertEqual(status.code, 14)  # google.rpc.Code.UNAVAILABLE
                    self.assertIsNone(bad_request)
                    self.assertEqual((retry.retry_delay.seconds, retry.retry_delay.nanos),
                                     (0, 100000000))
        finally:
            code, _, err = server.stop()
        self.assertEqual(code, 0, err)


def load_rpc_stubs(stub_dir):
    global RPC
    RPC = generate_rpc_stubs(stub_dir)


if __name__ == "__main__":
    process_test.main(extra_arguments=(), after_stubs=load_rpc_stubs)
