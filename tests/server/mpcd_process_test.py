#!/usr/bin/python3
"""Runs the real mpcd binary as a process and talks to it the ways users and operators do.

Covered: --flagfile and flag validation; mpcctl solve/models/health/bench --target (same answers as
--local; gRPC errors as "mpcctl: CODE: message", exit 2); a Python gRPC client from the .proto
alone; server reflection, v1alpha and v1 (list services, fetch a descriptor); a real HTTP scrape of /metrics
(linted by `promtool check metrics` when Debian's prometheus is installed); SIGTERM and SIGINT while
busy: calls in flight are answered, new ones are refused, exit 0.

Usage: mpcd_process_test.py --mpcd build/bin/mpcd --mpcctl build/bin/mpcctl --proto-dir proto
         --grpc-proto-dir /usr/share/grpc-proto --protoc protoc --grpc-python-plugin PATH
         --examples examples --project-version 0.2.0 [unittest args]
"""

import argparse
import concurrent.futures
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import SANITIZED, SLOWDOWN, Mpcd, free_port, sample, scrape  # noqa: E402

ARGS = None
STUBS = None  # module namespace with mpcd_pb2, mpcd_pb2_grpc, health_pb2, ...


def generate_stubs(out_dir):
    """Python stubs for mpcd.proto, health.proto and reflection.proto (v1alpha: gRPC 1.51 serves
    only that). Health and reflection are generated top-level (TOOLCHAIN G7): a generated grpc/
    package would shadow grpcio."""
    health_dir = os.path.join(ARGS.grpc_proto_dir, "grpc", "health", "v1")
    reflection_dir = os.path.join(ARGS.grpc_proto_dir, "grpc", "reflection", "v1alpha")
    plugin = "--plugin=protoc-gen-grpc_python=" + ARGS.grpc_python_plugin
    subprocess.run([ARGS.protoc, "-I", ARGS.proto_dir, "--python_out", out_dir,
                    "--grpc_python_out", out_dir, plugin, "mpcd/v1/mpcd.proto"], check=True)
    for folder, name in ((health_dir, "health.proto"), (reflection_dir, "reflection.proto")):
        subprocess.run([ARGS.protoc, "-I", folder, "--python_out", out_dir, "--grpc_python_out",
                        out_dir, plugin, name], check=True)
    sys.path.insert(0, out_dir)
    import grpc  # noqa: F401  (Debian's grpcio, under /usr/bin/python3)
    from mpcd.v1 import mpcd_pb2, mpcd_pb2_grpc
    import health_pb2, health_pb2_grpc, reflection_pb2, reflection_pb2_grpc

    class Stubs:
        pass

    stubs = Stubs()
    stubs.grpc = grpc
    stubs.mpcd_pb2, stubs.mpcd_pb2_grpc = mpcd_pb2, mpcd_pb2_grpc
    stubs.health_pb2, stubs.health_pb2_grpc = health_pb2, health_pb2_grpc
    stubs.reflection_pb2, stubs.reflection_pb2_grpc = reflection_pb2, reflection_pb2_grpc
    return stubs


def start_mpcd(*flags, flagfile_lines=None):
    return Mpcd(ARGS.mpcd, *flags, flagfile_lines=flagfile_lines)


def mpcctl(*args, stdin=None, timeout=120):
    return subprocess.run([ARGS.mpcctl] + list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def split_json_objects(text):
    """The JSON objects of concatenated pretty-printed JSON text, in order."""
    decoder, index, objects = json.JSONDecoder(), 0, []
    text = text.strip()
    while index < len(text):
        obj, end = decoder.raw_decode(text, index)
        objects.append(obj)
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    return objects


class ServingTest(unittest.TestCase):
    """One server for the read-mostly checks, started from a --flagfile."""

    @classmethod
    def setUpClass(cls):
        cls.server = start_mpcd(flagfile_lines=[
            "--host=127.0.0.1", "--port=0", "--metrics_port=0", "--backend=cpu",
            "--max_batch_size=32", "--max_queue_delay_us=100", "--threads=2"])
        cls.channel = STUBS.grpc.insecure_channel(cls.server.target)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code, _, err = cls.server.stop()
        assert code == 0, err

    def example(self, name):
        return os.path.join(ARGS.examples, name)

    def test_remote_solve_matches_local_solve(self):
        for name in sorted(f for f in os.listdir(ARGS.examples) if f.endswith(".json")):
            with open(self.example(name)) as f:
                request = json.load(f)
            if name == "bad.json":  # the README's refused request: refused remotely too
                remote = mpcctl("solve", "--target", self.server.target, "--request",
                                self.example(name))
                self.assertEqual(remote.returncode, 2)
                self.assertEqual(remote.stderr, "mpcctl: INVALID_ARGUMENT: problems[1].x_init: "
                                 "expected shape (5), got (4)\n")
                continue
            if "cotangents" in request or "problem" in request:
                continue  # a BackwardRequest or a ControlRequest (tested below)
            with self.subTest(example=name):
                remote = mpcctl("solve", "--target", self.server.target, "--request",
                                self.example(name))
                self.assertEqual(remote.returncode, 0, remote.stderr)
                local = mpcctl("solve", "--local", "--request", self.example(name))
                self.assertEqual(local.returncode, 0, local.stderr)
                remote_json, local_json = json.loads(remote.stdout), json.loads(local.stdout)
                # Exactly the same numbers; only timing and batch size may differ.
                self.assertEqual(remote_json["solutions"], local_json["solutions"])
                self.assertEqual(remote_json["backend"], "cpu")
                self.assertGreaterEqual(remote_json["batch_size"], len(remote_json["solutions"]))

    def test_remote_backward_matches_local_backward(self):
        with open(self.example("cartpole_swingup.json")) as f:
            solve = json.load(f)
        solved = mpcctl("solve", "--target", self.server.target, "--request",
                        self.example("cartpole_swingup.json"))
        self.assertEqual(solved.returncode, 0, solved.stderr)
        solutions = json.loads(solved.stdout)["solutions"]
        request = {"horizon": solve["horizon"], "problems": solve["problems"], "mode": "EXACT",
                   "solutions": [{"x": s["x"], "u": s["u"]} for s in solutions],
                   "cotangents": [{"x": s["x"]} for s in solutions]}
        path = os.path.join(self.server.tmp, "backward.json")
        with open(path, "w") as f:
            json.dump(request, f)
        remote = mpcctl("backward", "--target", self.server.target, "--request", path)
        self.assertEqual(remote.returncode, 0, remote.stderr)
        local = mpcctl("backward", "--local", "--request", path)
        self.assertEqual(local.returncode, 0, local.stderr)
        remote_json, local_json = json.loads(remote.stdout), json.loads(local.stdout)
        self.assertEqual(remote_json["gradients"], local_json["gradients"])
        self.assertEqual(remote_json["diagnostics"], local_json["diagnostics"])
        self.assertEqual(len(remote_json["gradients"]), len(solve["problems"]))
        request["cotangents"][0]["u"] = {"shape": [3, 1], "data": [0, 0, 0]}
        with open(path, "w") as f:
            json.dump(request, f)
        bad = mpcctl("backward", "--target", self.server.target, "--request", path)
        self.assertEqual(bad.returncode, 2)
        self.assertRegex(bad.stderr, r"^mpcctl: INVALID_ARGUMENT: cotangents\[0\]\.u")

    def test_remote_models_match_local_models(self):
        remote = mpcctl("models", "--target", self.server.target)
        self.assertEqual(remote.returncode, 0, remote.stderr)
        local = mpcctl("models", "--local")
        self.assertEqual(json.loads(remote.stdout), json.loads(local.stdout))

    def test_control_session_swings_the_pendulum_up(self):
        # A receding-horizon session: each step measures the state the last plan predicted.
        result = mpcctl("control", "--target", self.server.target, "--request",
                        self.example("pendulum_control.json"), "--steps=60", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        answers = split_json_objects(result.stdout)
        self.assertEqual(len(answers), 60)
        first_x = answers[0]["plan"]["x"]["data"][:3]
        last_x = answers[-1]["plan"]["x"]["data"][:3]
        self.assertLess(first_x[0], -0.9)  # starts hanging down (x = [cos th, sin th, thdot])
        self.assertGreater(last_x[0], 0.99)  # ends upright
        self.assertLess(abs(last_x[2]), 0.5)
        for answer in answers:
            self.assertEqual(answer["u0"]["data"], answer["plan"]["u"]["data"][:1])
            self.assertEqual(answer["feedback0"]["shape"], [1, 3])
        # Steps after the first are warm-started from the shifted plan: far fewer iterations.
        self.assertLess(sum(a["plan"]["iterations"] for a in answers[40:]) / 20.0,
                        answers[0]["plan"]["iterations"])

    def test_control_session_rejects_a_bad_template(self):
        result = mpcctl("control", "--target", self.server.target, "--request=-",
                        stdin=json.dumps({"horizon": 5, "problem": {"dynamics": {"model": {
                            "name": "pendulum"}}}}))
        self.assertEqual(result.returncode, 2)
        self.assertRegex(result.stderr, r"^mpcctl: INVALID_ARGUMENT: problem\.x_init: required")

    def test_health(self):
        ok = mpcctl("health", "--target", self.server.target)
        self.assertEqual((ok.returncode, ok.stdout), (0, "SERVING\n"), ok.stderr)
        service = mpcctl("health", "--target", self.server.target, "--service=mpcd.v1.MpcService")
        self.assertEqual((service.returncode, service.stdout), (0, "SERVING\n"))
        unknown = mpcctl("health", "--target", self.server.target, "--service=no.Such")
        self.assertEqual(unknown.returncode, 1)
        self.assertEqual(unknown.stdout, "SERVICE_UNKNOWN\n")

    def test_server_errors_print_the_code_and_exit_2(self):
        with open(self.example("lqr_box.json")) as f:
            request = json.load(f)
        request["problems"][0]["u_lower"]["data"][0] = 5.0
        result = mpcctl("solve", "--target", self.server.target, "--request=-",
                        stdin=json.dumps(request))
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertRegex(lines[0], r"^mpcctl: INVALID_ARGUMENT: problems\[0\]\.u_")

    def test_unreachable_server_is_unavailable_exit_2(self):
        result = mpcctl("health", "--target", "127.0.0.1:%d" % free_port(), "--timeout=5")
        self.assertEqual(result.returncode, 2)
        self.assertRegex(result.stderr, r"^mpcctl: (UNAVAILABLE|DEADLINE_EXCEEDED): ")

    def test_bench_json(self):
        result = mpcctl("bench", "--target", self.server.target, "--model=cartpole",
                        "--horizon=25", "--batch=2", "--concurrency=4", "--duration=2",
                        "--warmup=0.2", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout)  # exactly one JSON object
        self.assertEqual(report["errors"], 0)
        self.assertGreater(report["problems"], 0)
        self.assertEqual(report["problems"], 2 * report["requests"])
        self.assertGreater(report["problems_per_s"], 0)
        latency = report["latency_s"]
        self.assertLessEqual(latency["p50"], latency["p90"])
        self.assertLessEqual(latency["p90"], latency["p99"])
        self.assertLessEqual(latency["p99"], latency["max"])
        # Progress goes to stderr once a second; the 2 s run guarantees one report while it runs.
        self.assertIn("bench:", result.stderr)

    def test_bench_text_and_other_models(self):
        for model in ("pendulum", "linear"):
            result = mpcctl("bench", "--target", self.server.target, "--model=" + model,
                            "--horizon=20", "--concurrency=2", "--duration=0.5", "--warmup=0")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertRegex(result.stdout, r"throughput +[\d.]+ problems/s")
            self.assertRegex(result.stdout, r"latency +p50 [\d.]+ ms +p90 [\d.]+ ms +p99 [\d.]+ ms")

    def test_python_client_from_the_proto_alone(self):
        pb = STUBS.mpcd_pb2
        stub = STUBS.mpcd_pb2_grpc.MpcServiceStub(self.channel)
        request = lqr_request(pb)
        response = stub.Solve(request, timeout=30)
        self.assertEqual(len(response.solutions), 1)
        self.assertEqual(list(response.solutions[0].x.shape), [5, 1])
        self.assertEqual(response.solutions[0].x.data[0], 1.0)
        with self.assertRaises(STUBS.grpc.RpcError) as error:
            stub.Solve(pb.SolveRequest(horizon=5), timeout=30)
        self.assertEqual(error.exception.code(), STUBS.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("problems", error.exception.details())

    def test_reflection_lists_services_and_serves_descriptors(self):
        stub = STUBS.reflection_pb2_grpc.ServerReflectionStub(self.channel)
        rpb = STUBS.reflection_pb2
        requests = [rpb.ServerReflectionRequest(list_services=""),
                    rpb.ServerReflectionRequest(file_containing_symbol="mpcd.v1.MpcService")]
        responses = list(stub.ServerReflectionInfo(iter(requests), timeout=30))
        services = {s.name for s in responses[0].list_services_response.service}
        self.assertTrue({"mpcd.v1.MpcService", "grpc.health.v1.Health",
                         "grpc.reflection.v1alpha.ServerReflection"} <= services, services)
        descriptors = responses[1].file_descriptor_response.file_descriptor_proto
        self.assertGreaterEqual(len(descriptors), 1)
        from google.protobuf import descriptor_pb2
        names = set()
        for blob in descriptors:
            file = descriptor_pb2.FileDescriptorProto.FromString(blob)
            names |= {s.name for s in file.service}
        self.assertIn("MpcService", names)

    def test_reflection_v1_answers_like_v1alpha(self):
        # Stubs for grpc/reflection/v1 under their canonical file name (v1alpha's "reflection.proto"
        # is taken), loaded as a plain module; the method is called by name.
        import importlib.util
        out = tempfile.mkdtemp(prefix="mpcd_reflection_v1_")
        try:
            subprocess.run([ARGS.protoc, "-I", ARGS.grpc_proto_dir, "--python_out", out,
                            "grpc/reflection/v1/reflection.proto"], check=True)
            spec = importlib.util.spec_from_file_location(
                "reflection_v1_pb2", os.path.join(out, "grpc", "reflection", "v1",
                                                  "reflection_pb2.py"))
            v1 = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(v1)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        call = self.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=v1.ServerReflectionRequest.SerializeToString,
            response_deserializer=v1.ServerReflectionResponse.FromString)
        requests = [v1.ServerReflectionRequest(list_services=""),
                    v1.ServerReflectionRequest(file_containing_symbol="mpcd.v1.SolveRequest"),
                    v1.ServerReflectionRequest(file_by_filename="mpcd/v1/mpcd.proto"),
                    v1.ServerReflectionRequest(file_containing_symbol="no.such.Symbol")]
        responses = list(call(iter(requests), timeout=30))
        self.assertEqual(len(responses), 4)
        services = {s.name for s in responses[0].list_services_response.service}
        self.assertEqual(services, {"mpcd.v1.MpcService", "grpc.health.v1.Health",
                                    "grpc.reflection.v1alpha.ServerReflection",
                                    "grpc.reflection.v1.ServerReflection"})
        from google.protobuf import descriptor_pb2
        for response in responses[1:3]:
            files = [descriptor_pb2.FileDescriptorProto.FromString(blob)
                     for blob in response.file_descriptor_response.file_descriptor_proto]
            self.assertEqual(files[0].name, "mpcd/v1/mpcd.proto")
            self.assertIn("MpcService", {service.name for service in files[0].service})
            # Its imports come along, so a client can build the whole descriptor.
            self.assertEqual(set(files[0].dependency) - {f.name for f in files}, set())
        self.assertEqual(responses[3].error_response.error_code, 5)  # NOT_FOUND
        self.assertEqual(responses[3].original_request.file_containing_symbol, "no.such.Symbol")

    def check_grafana_dashboard(self, text):
        """Every query of the Grafana dashboard names series this server exports (in `text`, a
        real scrape): a renamed metric or a typo leaves a panel empty, and this fails instead."""
        dashboard, queries = dashboard_queries()
        self.assertEqual(len({p["id"] for p in dashboard["panels"]}), len(dashboard["panels"]))
        self.assertIn("job", [v["name"] for v in dashboard["templating"]["list"]])
        exported = set(re.findall(r"^(\w+)[{ ]", text, re.MULTILINE))
        named = set()
        for title, expr in queries:
            with self.subTest(panel=title, expr=expr):
                names = _metric_selectors(expr)
                self.assertTrue(names, "the query selects no metric")
                for name in names:
                    self.assertTrue(name.startswith("mpcd_"), name)
                    self.assertIn(name, exported)
                    if "histogram_quantile" in expr:
                        self.assertTrue(name.endswith("_bucket"), name)
                named |= set(names)
        # The dashboard covers the families an operator needs first.
        for family in ("mpcd_requests_total", "mpcd_request_duration_seconds_bucket",
                       "mpcd_queued_problems", "mpcd_dropped_problems_total", "mpcd_build_info"):
            self.assertIn(family, named)

    def check_process_metrics(self, text):
        """The process_* families (server/process_metrics.cc) against what the kernel says about the
        mpcd process, read here from /proc/PID (VmRSS, fd/, limits) and the clock."""
        pid = self.server.process.pid
        for family, kind in (("process_cpu_seconds_total", "counter"),
                             ("process_resident_memory_bytes", "gauge"),
                             ("process_virtual_memory_bytes", "gauge"),
                             ("process_open_fds", "gauge"), ("process_max_fds", "gauge"),
                             ("process_start_time_seconds", "gauge")):
            self.assertIn("# TYPE %s %s" % (family, kind), text)
        # It has solved problems: some CPU time, at most all of both cores since it started.
        cpu = sample(text, "process_cpu_seconds_total")
        started = sample(text, "process_start_time_seconds")
        self.assertGreater(cpu, 0)
        self.assertLess(started, time.time())
        self.assertGreater(started, time.time() - 3600)
        self.assertLessEqual(cpu, (time.time() - started + 1) * os.cpu_count())
        rss = sample(text, "process_resident_memory_bytes")
        self.assertLess(abs(rss / 1024 - proc_status_kib(pid, "VmRSS")), 0.25 * rss / 1024)
        self.assertGreaterEqual(sample(text, "process_virtual_memory_bytes"), rss)
        open_fds = sample(text, "process_open_fds")
        self.assertLess(abs(open_fds - len(os.listdir("/proc/%d/fd" % pid))), 8)
        with open("/proc/%d/limits" % pid) as f:
            soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
        self.assertEqual(sample(text, "process_max_fds"), float(soft))

    def test_metrics_scrape(self):
        # Make sure something was counted.
        self.assertEqual(mpcctl("models", "--target", self.server.target).returncode, 0)
        self.assertEqual(mpcctl("solve", "--target", self.server.target, "--request",
                                self.example("lqr_box.json")).returncode, 0)
        text = scrape(self.server.metrics_url)  # raises unless the answer is 200
        for family in ("mpcd_requests_total", "mpcd_request_duration_seconds",
                       "mpcd_queue_duration_seconds", "mpcd_solve_duration_seconds",
                       "mpcd_batch_size", "mpcd_solver_iterations", "mpcd_solutions_total",
                       "mpcd_queued_problems", "mpcd_inflight_problems",
                       "mpcd_dropped_problems_total", "mpcd_backend_info"):
            self.assertIn("# TYPE %s " % family, text)
        self.assertRegex(text, r'mpcd_requests_total\{code="OK",method="ListModels"\} [1-9]')
        self.assertIn('mpcd_backend_info{backend="cpu"} 1', text)
        # The build's version and revision, the same as `mpcd --version` prints.
        version, revision = mpcd_version()
        self.assertIn("# TYPE mpcd_build_info gauge", text)
        self.assertIn('mpcd_build_info{revision="%s",version="%s"} 1' % (revision, version), text)
        self.check_grafana_dashboard(text)
        self.check_process_metrics(text)
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not installed (scripts/install_deps.sh --extras)")
        lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def dashboard_queries():
    """Every PromQL query of deploy/grafana/mpcd-dashboard.json, by panel title."""
    path = os.path.join(os.path.dirname(os.path.abspath(ARGS.examples)), "deploy", "grafana",
                        "mpcd-dashboard.json")
    with open(path) as f:
        dashboard = json.load(f)
    queries = []
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            queries.append((panel["title"], target["expr"]))
    return dashboard, queries


def mpcd_version():
    """(version, revision) from `mpcd --version`; the version must be CMake's project version."""
    result = subprocess.run([ARGS.mpcd, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"mpcd (\S+) \(revision ([0-9a-f]{7,}|unknown)\)\n", result.stdout)
    assert match is not None, result.stdout
    assert match.group(1) == ARGS.project_version, (match.group(1), ARGS.project_version)
    return match.groups()


def _metric_selectors(expr):
    """The metric names a PromQL query selects: every name followed by a {label matcher}."""
    return re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)


def lqr_request(pb):
    """A one-problem scalar LQR request (T = 5), built field by field from the generated stubs."""
    request = pb.SolveRequest(horizon=5)
    problem = request.problems.add()
    problem.x_init.shape[:] = [1]
    problem.x_init.data[:] = [1.0]
    problem.cost.quadratic.shape[:] = [2, 2]
    problem.cost.quadratic.data[:] = [1.0, 0.0, 0.0, 1.0]
    problem.dynamics.linear.transition.shape[:] = [1, 2]
    problem.dynamics.linear.transition.data[:] = [1.0, 1.0]
    return request


def heavy_request(pb, seed, problems=12):
    """Cartpole problems that take one CPU thread a while: fixed 300 iterations at T = 60 (divided
    by SLOWDOWN), several milliseconds each, so six such requests keep the server busy for about
    half a second."""
    rng = random.Random(seed)
    request = pb.SolveRequest(horizon=60)
    request.options.max_iterations = max(10, round(300 / SLOWDOWN))
    request.options.tolerance = 0.0
    request.options.not_improved_limit = 1000
    for _ in range(problems):
        problem = request.problems.add()
        th = rng.uniform(-math.pi, math.pi)
        problem.x_init.shape[:] = [5]
        problem.x_init.data[:] = [rng.uniform(-.5, .5), rng.uniform(-.5, .5), math.cos(th),
                                  math.sin(th), rng.uniform(-.5, .5)]
        problem.cost.quadratic.shape[:] = [6, 6]
        weights = [0.1, 0.1, 1.0, 1.0, 0.1, 0.001]
        problem.cost.quadratic.data[:] = [weights[i] if i == j else 0.0
                                          for i in range(6) for j in range(6)]
        problem.cost.linear.shape[:] = [6]
        problem.cost.linear.data[:] = [0, 0, -1, 0, 0, 0]
        problem.dynamics.model.name = "cartpole"
    return request


class ShutdownTest(unittest.TestCase):

    def drain(self, sig):
        server = start_mpcd("--threads=1", "--max_batch_size=4")
        channel = STUBS.grpc.insecure_channel(server.target)
        stub = STUBS.mpcd_pb2_grpc.MpcServiceStub(channel)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=6)
        try:
            futures = [pool.submit(stub.Solve, heavy_request(STUBS.mpcd_pb2, seed), timeout=120)
                       for seed in range(6)]
            # Wait until the server is busy with them (queued or running), then signal.
            deadline = time.time() + 60
            while True:
                if sample(scrape(server.metrics_url), "mpcd_inflight_requests",
                          method="Solve") >= 6:
                    break
                self.assertLess(time.time(), deadline, "the server never got busy")
                self.assertFalse(all(f.done() for f in futures), "answered before the signal")
                time.sleep(0.005)
            server.process.send_signal(sig)
            # Every call in flight at the signal is answered in full.
            for future in futures:
                response = future.result(timeout=120)
                self.assertEqual(len(response.solutions), 12)
            code, out, err = server.stop(timeout=60)
            self.assertEqual(code, 0, err)
            self.assertIn("draining", out)
            self.assertIn("stopped (every call in flight was answered)", out)
            # And nothing new is accepted once it is gone.
            with self.assertRaises(STUBS.grpc.RpcError) as error:
                stub.Solve(heavy_request(STUBS.mpcd_pb2, 99, 1), timeout=10)
            self.assertEqual(error.exception.code(), STUBS.grpc.StatusCode.UNAVAILABLE)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            channel.close()
            if server.process.poll() is None:
                server.process.kill()

    def test_sigterm_while_busy_answers_calls_in_flight_and_exits_0(self):
        self.drain(signal.SIGTERM)

    def test_sigint_too(self):
        self.drain(signal.SIGINT)

    def test_sigterm_when_idle_exits_0_quickly(self):
        server = start_mpcd("--metrics_port=-1")
        start = time.time()
        code, _, err = server.stop()
        self.assertEqual(code, 0, err)
        self.assertLess(time.time() - start, 10)


class KeepaliveTest(unittest.TestCase):
    """A client with a 5 s keepalive that idles between calls (pings with no call open): mpcd with
    gRPC's default enforcement disconnects it (GOAWAY too_many_pings), mpcd with
    --keepalive_min_ping_interval_s=4 --keepalive_permit_without_calls keeps its connection (4, a
    little under the client's 5 s, so that a ping sent a moment early is no strike)."""

    IDLE_S = 25  # five pings; the default enforcement gives up after the third

    def watch(self, target):
        """A channel pinging every 5 s and the connectivity states it went through."""
        grpc = STUBS.grpc
        channel = grpc.insecure_channel(target, options=[
            ("grpc.keepalive_time_ms", 5000), ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", 5000)])
        states = []
        channel.subscribe(states.append, try_to_connect=True)
        grpc.channel_ready_future(channel).result(timeout=30)
        return channel, states

    def test_configured_server_keeps_a_client_pinging_every_5_s(self):
        default = start_mpcd("--backend=cpu", "--metrics_port=-1")
        configured = start_mpcd("--backend=cpu", "--metrics_port=-1",
                                 "--keepalive_min_ping_interval_s=4",
                                 "--keepalive_permit_without_calls")
        channels = []
        try:
            watched = {}
            for name, server in (("default", default), ("configured", configured)):
                channel, states = self.watch(server.target)
                channels.append(channel)
                watched[name] = states
            time.sleep(self.IDLE_S * SLOWDOWN)
            ready = STUBS.grpc.ChannelConnectivity.READY
            left = {name: [s for s in states[states.index(ready):] if s != ready]
                    for name, states in watched.items()}
            # The control: gRPC's default enforcement drops the connection.
            self.assertTrue(left["default"], watched["default"])
            # Configured: the connection stayed up the whole time, and still answers.
            self.assertEqual(left["configured"], [], watched["configured"])
            stub = STUBS.mpcd_pb2_grpc.MpcServiceStub(channels[1])
            self.assertEqual(len(stub.ListModels(STUBS.mpcd_pb2.ListModelsRequest(),
                                                 timeout=30).models) > 0, True)
            self.assertEqual(watched["configured"][-1], ready)
        finally:
            for channel in channels:
                channel.close()
            for server in (default, configured):
                code, _, err = server.stop()
                self.assertEqual(code, 0, err)


def minor_page_faults(pid):
    """The process's minor page faults so far (/proc/PID/stat, field 10)."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


@unittest.skipIf(SANITIZED, "the sanitizers' allocator is not glibc's malloc")
class MallocThresholdsTest(unittest.TestCase):
    """--malloc_mmap_threshold_bytes / --malloc_trim_threshold_bytes: a large request's buffers are
    reused from call to call, not mapped afresh and page-faulted each time as with glibc's
    adaptive thresholds (both flags 0)."""

    def faults_per_large_request(self, *flags):
        server = start_mpcd("--backend=cpu", "--metrics_port=-1", *flags)
        try:
            channel = STUBS.grpc.insecure_channel(server.target, options=[
                ("grpc.max_send_message_length", 64 << 20)])
            stub = STUBS.mpcd_pb2_grpc.MpcServiceStub(channel)

            def call(doubles):
                request = STUBS.mpcd_pb2.BackwardRequest(horizon=0)  # refused once read
                request.stacked_cotangents.x.shape.append(doubles)
                request.stacked_cotangents.x.raw_data = os.urandom(8 * doubles)
                with self.assertRaises(STUBS.grpc.RpcError) as caught:
                    stub.Backward(request, timeout=60)
                self.assertEqual(caught.exception.code(), STUBS.grpc.StatusCode.INVALID_ARGUMENT)

            for _ in range(5):
                call(1 << 17)  # 1 MiB
            before = minor_page_faults(server.process.pid)
            # Each request 128 KiB larger than the last (1.1 to 3.5 MiB), so that glibc's
            # adaptive threshold, which rises to the largest block freed so far, never catches up.
            for step in range(1, 21):
                call((1 << 17) + step * (1 << 14))
            channel.close()
            return (minor_page_faults(server.process.pid) - before) / 20
        finally:
            server.stop()

    def test_large_requests_reuse_their_buffers(self):
        adaptive = self.faults_per_large_request("--malloc_mmap_threshold_bytes=0",
                                                 "--malloc_trim_threshold_bytes=0")
        fixed = self.faults_per_large_request()  # the defaults: 4 MiB and 32 MiB
        print("\nminor page faults per request: %.0f with glibc's adaptive thresholds, %.0f with "
              "the defaults" % (adaptive, fixed), file=sys.stderr)
        # A request of 1-3.5 MiB is 280-900 pages, in each of its copies: mapped afresh, they
        # fault on every request (measured 540-670 a request); from the heap, mostly the 32 pages
        # each request adds to the last one's (measured 140-190).
        self.assertGreater(adaptive, 300, (adaptive, fixed))
        self.assertLess(fixed, adaptive / 2, (adaptive, fixed))


class FlagsTest(unittest.TestCase):

    def run_mpcd(self, *flags):
        return subprocess.run([ARGS.mpcd] + list(flags), capture_output=True, text=True,
                              timeout=60)

    def test_invalid_flags_exit_2_naming_the_flag(self):
        for flags, message in (
                (["--max_batch_size=0"], "max_batch_size"),
                (["--max_queue_delay_us=-1"], "max_queue_delay_us"),
                (["--backend=tpu"], "backend"),
                (["--cuda_precision=float16"], "cuda_precision"),
                (["--backend=cpu", "--cuda_precision=float32"], "cuda_precision"),
                (["--port=70000"], "port"),
                (["--max_connection_age_s=-1"], "max_connection_age_s"),
                (["--keepalive_min_ping_interval_s=-1"], "keepalive_min_ping_interval_s"),
                (["--malloc_mmap_threshold_bytes=33554433"], "malloc_mmap_threshold_bytes"),
                (["--malloc_mmap_threshold_bytes=-1"], "malloc_mmap_threshold_bytes"),
                (["--malloc_trim_threshold_bytes=-1"], "malloc_trim_threshold_bytes"),
                (["--max_problems_per_request=100", "--max_queue_problems=10"],
                 "max_problems_per_request")):
            with self.subTest(flags=flags):
                result = self.run_mpcd("--port=0", "--metrics_port=-1", *flags)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(message, result.stderr)

    def test_help_lists_the_flags_with_defaults_and_exits_0(self):
        for flag in ("--help", "-h", "--helpshort"):
            with self.subTest(flag=flag):
                result = self.run_mpcd(flag)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn("usage: mpcd", result.stdout)
                flags = dict(re.findall(r"^  --(\w+)=(.*)$", result.stdout, re.MULTILINE))
                self.assertEqual(flags["port"], "50051")
                self.assertEqual(flags["metrics_port"], "9464")
                self.assertEqual(flags["backend"], '"auto"')
                self.assertEqual(flags["tls_cert"], '""')
                for name in ("host", "max_batch_size", "max_queue_delay_us", "max_queue_problems",
                             "threads", "auth_token_file", "shutdown_grace_s"):
                    self.assertIn(name, flags)
                # Every flag of server/main.cc, none of gRPC's or Abseil's own.
                self.assertGreaterEqual(len(flags), 24)
                self.assertNotIn("flagfile", flags)

    def test_every_flag_reads_its_environment_variable(self):
        env = dict(os.environ, MPCD_FLAG_HOST="127.0.0.1", MPCD_FLAG_PORT="0",
                   MPCD_FLAG_METRICS_PORT="-1", MPCD_FLAG_BACKEND="cpu",
                   MPCD_FLAG_AUTH_TOKEN_FILE="/nonexistent/token")
        result = subprocess.run([ARGS.mpcd], capture_output=True, text=True, timeout=60, env=env)
        # The token file from the environment was read (and is missing): exit 2 naming it.
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("/nonexistent/token", result.stderr)
        # The command line wins over the environment.
        del env["MPCD_FLAG_AUTH_TOKEN_FILE"]
        server = subprocess.Popen([ARGS.mpcd, "--metrics_port=0"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = server.stdout.readline()
            self.assertRegex(line, r"serving on 127\.0\.0\.1:\d+ \(backend cpu, metrics http://")
        finally:
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=60)
        self.assertEqual(server.returncode, 0)
        for variable, value in (("MPCD_FLAG_PORT", "abc"), ("MPCD_FLAG_MAX_BATCH_SIZE", "0"),
                                ("MPCD_FLAG_BACKEND", "tpu")):
            with self.subTest(variable=variable):
                bad = dict(env, **{variable: value})
                result = subprocess.run([ARGS.mpcd], capture_output=True, text=True, timeout=60,
                                        env=bad)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertTrue(variable in result.stderr or
                                variable[len("MPCD_FLAG_"):].lower() in result.stderr,
                                result.stderr)
        # --help names the rule.
        self.assertIn("MPCD_FLAG_PORT=50052", self.run_mpcd("--help").stdout)

    def test_version(self):
        version, revision = mpcd_version()
        self.assertRegex(version, r"^\d+\.\d+\.\d+$")
        if revision != "unknown":
            source = os.path.dirname(os.path.abspath(ARGS.examples))
            if subprocess.run(["git", "-C", source, "rev-parse", "--git-dir"],
                              capture_output=True, timeout=60).returncode == 0:
                # A commit of this repository (the one CMake was last configured at).
                found = subprocess.run(["git", "-C", source, "cat-file", "-e",
                                        revision + "^{commit}"], capture_output=True, timeout=60)
                self.assertEqual(found.returncode, 0, revision)

    def test_unknown_flag_is_refused(self):
        result = self.run_mpcd("--no_such_flag=1")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no_such_flag", result.stderr)

    def test_busy_port_exits_1(self):
        first = start_mpcd()
        try:
            port = first.target.split(":")[1]
            result = self.run_mpcd("--host=127.0.0.1", "--port=" + port, "--metrics_port=-1")
            self.assertEqual(result.returncode, 1)
            self.assertIn("cannot listen", result.stderr)
        finally:
            first.stop()


def main(extra_arguments=("--project-version",), after_stubs=None):
    """Parses this file's arguments (the common ones plus `extra_arguments`) into ARGS, generates
    the stubs into STUBS, calls after_stubs(stub_dir) if given, then runs the tests of __main__
    (also the main of the test files that share them: mpcd_logging_test, mpcd_errors_test)."""
    global ARGS, STUBS
    parser = argparse.ArgumentParser()
    for name in ("--mpcd", "--mpcctl", "--proto-dir", "--grpc-proto-dir", "--protoc",
                 "--grpc-python-plugin", "--examples") + tuple(extra_arguments):
        parser.add_argument(name, required=True)
    ARGS, rest = parser.parse_known_args()
    stub_dir = tempfile.mkdtemp(prefix="mpcd_stubs_")
    try:
        STUBS = generate_stubs(stub_dir)
        if after_stubs is not None:
            after_stubs(stub_dir)
        unittest.main(module="__main__", argv=[sys.argv[0]] + rest)
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
