#!/usr/bin/python3
"""mpcd's log lines, read from the stderr of a real mpcd answering real gRPC calls.

Covered: --log_format=json writes only JSON objects, one a line (time, level, msg); every answered
request is one line at debug with its request id, method, code, duration and peer; the client's
x-request-id is kept (and returned in the initial metadata), a bad one replaced, a missing one made
up; every refused request is one warning line naming the field it broke; the text format at the
default level writes the refused requests only; a Control stream logs its steps under one id;
a bad --log_level or --log_format exits 2 naming the flag.

Usage: mpcd_logging_test.py --mpcd build/bin/mpcd --mpcctl build/bin/mpcctl --proto-dir proto
         --grpc-proto-dir /usr/share/grpc-proto --protoc protoc --grpc-python-plugin PATH
         --examples examples [unittest args]
"""

import json
import os
import re
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
import mpcd_process_test as process_test  # noqa: E402  (its stub generation)
from mpcd_harness import Mpcd  # noqa: E402

HEX_ID = re.compile(r"^[0-9a-f]{16}$")


def example_request(name):
    from google.protobuf import json_format
    with open(os.path.join(process_test.ARGS.examples, name)) as f:
        return json_format.ParseDict(json.load(f), process_test.STUBS.mpcd_pb2.SolveRequest())


def wait_for_lines(server, count, timeout=10):
    """mpcd writes a request's line just before it answers: give the reader a moment."""
    deadline = time.monotonic() + timeout
    while len(server.stderr_lines()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.stderr_lines()


class JsonLogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Mpcd(process_test.ARGS.mpcd, "--backend=cpu", "--log_format=json",
                          "--log_level=debug")
        stubs = process_test.STUBS
        cls.channel = stubs.grpc.insecure_channel(cls.server.target)
        cls.stub = stubs.mpcd_pb2_grpc.MpcServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code, _, err = cls.server.stop()
        assert code == 0, err

    def lines_of(self, request_id):
        records = [json.loads(line) for line in wait_for_lines(self.server, 1)]
        deadline = time.monotonic() + 10
        while not any(r.get("request_id") == request_id for r in records):
            self.assertLess(time.monotonic(), deadline, "no line for %s" % request_id)
            time.sleep(0.02)
            records = [json.loads(line) for line in self.server.stderr_lines()]
        return [r for r in records if r.get("request_id") == request_id]

    def solve(self, request, request_id=None):
        metadata = [("x-request-id", request_id)] if request_id is not None else []
        call = self.stub.Solve.future(request, metadata=metadata, timeout=60)
        try:
            call.result()
            code = process_test.STUBS.grpc.StatusCode.OK
        except process_test.STUBS.grpc.RpcError as error:
            code = error.code()
        returned = dict(call.initial_metadata()).get("x-request-id")
        return code, returned

    def test_every_line_is_a_json_object_with_time_level_and_message(self):
        self.solve(example_request("pendulum_swingup.json"))
        self.solve(example_request("bad.json"))
        lines = wait_for_lines(self.server, 3)
        self.assertGreaterEqual(len(lines), 3)  # "serving", then the two requests
        for line in lines:
            record = json.loads(line)  # a stack trace or a plain text line would not parse
            self.assertIsInstance(record, dict)
            self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
            self.assertIn(record["level"], ("debug", "info", "warning", "error"))
            self.assertIsInstance(record["msg"], str)
        serving = json.loads(lines[0])
        self.assertEqual((serving["level"], serving["msg"], serving["backend"]),
                         ("info", "serving", "cpu"))

    def test_an_answered_request_is_one_debug_line_under_the_clients_id(self):
        request = example_request("pendulum_swingup.json")
        code, returned = self.solve(request, "robot-7.step:1")
        self.assertEqual(code, process_test.STUBS.grpc.StatusCode.OK)
        self.assertEqual(returned, "robot-7.step:1")
        (record,) = self.lines_of("robot-7.step:1")
        self.assertEqual((record["level"], record["msg"], record["method"], record["code"]),
                         ("debug", "request answered", "Solve", "OK"))
        self.assertEqual(record["problems"], len(request.problems))
        self.assertGreater(record["duration_ms"], 0)
        self.assertIn("127.0.0.1", record["peer"])
        self.assertNotIn("reason", record)

    def test_a_missing_or_unusable_id_is_replaced_by_a_new_one(self):
        ids = []
        for sent in (None, "has spaces", "x" * 65, ""):
            with self.subTest(sent=sent):
                code, returned = self.solve(example_request("pendulum_swingup.json"), sent)
                self.assertEqual(code, process_test.STUBS.grpc.StatusCode.OK)
                self.assertRegex(returned, HEX_ID)
                (record,) = self.lines_of(returned)
                self.assertEqual(record["code"], "OK")
                ids.append(returned)
        self.assertEqual(len(set(ids)), len(ids))

    def test_a_refused_request_is_one_warning_line_with_the_reason(self):
        code, returned = self.solve(example_request("bad.json"), "bad-1")
        self.assertEqual(code, process_test.STUBS.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(returned, "bad-1")
        (record,) = self.lines_of("bad-1")
        self.assertEqual((record["level"], record["msg"], record["method"], record["code"]),
                         ("warning", "request refused", "Solve", "INVALID_ARGUMENT"))
        self.assertEqual(record["reason"], "problems[1].x_init: expected shape (5), got (4)")

    def test_a_control_session_logs_each_step_under_the_streams_id(self):
        pb2 = process_test.STUBS.mpcd_pb2
        with open(os.path.join(process_test.ARGS.examples, "pendulum_control.json")) as f:
            from google.protobuf import json_format
            template = json_format.ParseDict(json.load(f), pb2.ControlRequest())
        step = pb2.ControlRequest()
        step.x.CopyFrom(template.problem.x_init)
        bad_step = pb2.ControlRequest()
        bad_step.x.shape.append(7)
        bad_step.x.data.extend([0.0] * 7)
        # The bad measurement costs its own step only (ControlResponse.error); the 4th step is
        # answered.
        responses = list(self.stub.Control(iter([template, step, bad_step, step]),
                                           metadata=[("x-request-id", "session-1")], timeout=60))
        self.assertEqual([r.HasField("error") for r in responses], [False, False, True, False])
        records = self.lines_of("session-1")
        deadline = time.monotonic() + 10
        while len(records) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
            records = self.lines_of("session-1")
        self.assertEqual([(r["method"], r["step"], r["code"]) for r in records],
                         [("Control", 1, "OK"), ("Control", 2, "OK"),
                          ("Control", 3, "INVALID_ARGUMENT"), ("Control", 4, "OK")])
        self.assertEqual(records[2]["level"], "warning")
        self.assertRegex(records[2]["reason"], r"^x: ")


class TextLogTest(unittest.TestCase):
    def test_default_level_logs_the_refused_requests_only(self):
        server = Mpcd(process_test.ARGS.mpcd, "--backend=cpu")
        try:
            stubs = process_test.STUBS
            with stubs.grpc.insecure_channel(server.target) as channel:
                stub = stubs.mpcd_pb2_grpc.MpcServiceStub(channel)
                for _ in range(3):
                    stub.Solve(example_request("pendulum_swingup.json"), timeout=60)
                with self.assertRaises(stubs.grpc.RpcError):
                    stub.Solve(example_request("bad.json"), metadata=[("x-request-id", "bad-2")],
                               timeout=60)
        finally:
            code, _, err = server.stop()
        self.assertEqual(code, 0, err)
        refused = [line for line in err.splitlines() if "request" in line and "refused" in line]
        self.assertEqual(len(refused), 1, err)
        self.assertRegex(
            refused[0],
            r"^\d{4}-\d\d-\d\dT[\d:.]+Z WARNING request refused request_id=bad-2 method=Solve "
            r"code=INVALID_ARGUMENT duration_ms=[\d.e-]+ peer=ipv4:127\.0\.0\.1:\d+ "
            r"reason=\"problems\[1\]\.x_init: expected shape \(5\), got \(4\)\"$")
        self.assertNotIn("request answered", err)

    def test_bad_log_flags_exit_2_naming_the_flag(self):
        for flag, name in (("--log_level=verbose", "log_level"), ("--log_format=xml",
                                                                  "log_format")):
            with self.subTest(flag=flag):
                result = subprocess.run([process_test.ARGS.mpcd, "--port=0", "--metrics_port=-1",
                                         flag], capture_output=True, text=True, timeout=60)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(name, result.stderr)


if __name__ == "__main__":
    process_test.main(extra_arguments=())
