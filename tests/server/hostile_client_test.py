#!/usr/bin/python3
"""The hostile client's findings against the real mpcd (issue 13, docs/robustness.md §7), one
regression test each: every scenario is the probe's, scaled to a test's time, against default
flags unless the finding is about a flag.

Light tests (`make test`, MpcdHostile): 1 an answer over 2 GiB, 3 deadlines and cancellation inside
the solve and a light client beside a heavy one, 5 Control sessions counted in bytes, 6 a request
larger than the queue, 7 error messages echoing the request, 8/9 flags out of range, 10 the
start-up line, 11 Backward at an unconverged point, and 2's idle and preface-only connections.
Heavy tests (`make check-robustness`, MpcdHostileHeavy): 2 descriptor exhaustion by 2,000
preface-only connections, 4 RSS after the large-shape pattern.

Usage: hostile_client_test.py --mpcd build/bin/mpcd --mpcctl build/bin/mpcctl --proto-dir proto
         --grpc-proto-dir /usr/share/grpc-proto --protoc protoc --grpc-python-plugin PATH
         --examples examples --project-version X [unittest args, e.g. LightTest]
"""

import array
import concurrent.futures
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import mpcd_process_test as harness  # noqa: E402  (stubs, argument parsing)
from mpcd_harness import SLOWDOWN, Mpcd, free_port, sample, scrape  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def pb():
    return harness.STUBS.mpcd_pb2


def grpc():
    return harness.STUBS.grpc


def start(*flags):
    return Mpcd(harness.ARGS.mpcd, *flags)


def stub_for(server):
    channel = grpc().insecure_channel(server.target, options=[
        ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
    return channel, harness.STUBS.mpcd_pb2_grpc.MpcServiceStub(channel)


def raw_tensor(tensor, shape, values):
    tensor.shape[:] = shape
    tensor.raw_data = array.array("d", values).tobytes()
    tensor.dtype = pb().DATA_TYPE_FLOAT64


def identity(size):
    return [1.0 if i == j else 0.0 for i in range(size) for j in range(size)]


def add_linear_problem(request, n, m, cost_slices=0):
    """A stable linear system x' = 0.95 x + 0.1 [1..1] u with cost |x|^2 + |u|^2, the cost given
    once or, with `cost_slices` = T, once per step."""
    problem = request.problems.add()
    raw_tensor(problem.x_init, [n], [1.0] * n)
    if cost_slices:
        raw_tensor(problem.cost.quadratic, [cost_slices, n + m, n + m],
                   identity(n + m) * cost_slices)
    else:
        raw_tensor(problem.cost.quadratic, [n + m, n + m], identity(n + m))
    transition = []
    for i in range(n):
        transition += [0.95 if i == j else 0.0 for j in range(n)] + [0.1] * m
    raw_tensor(problem.dynamics.linear.transition, [n, n + m], transition)
    return problem


def heavy_request(problems=1, n=60, m=4, horizon=1000, iterations=250, time_varying=False):
    """The probe's heavy solve: n=60, m=4, T=1000, 250 iterations that never stop early (tolerance
    0; every iterate ties the best, so not_improved_limit never triggers): tens of seconds."""
    request = pb().SolveRequest(horizon=horizon)
    request.options.max_iterations = iterations
    request.options.tolerance = 0.0
    for _ in range(problems):
        add_linear_problem(request, n, m, horizon if time_varying else 0)
    return request


def light_request():
    return harness.lqr_request(pb())


def cartpole_request(iterations):
    """mpcd_process_test's cartpole problem (T = 60), one of it, solved to its default tolerance
    or `iterations`."""
    request = harness.heavy_request(pb(), seed=0, problems=1)
    request.options.ClearField("tolerance")
    request.options.ClearField("not_improved_limit")
    request.options.max_iterations = iterations
    return request


def wait_for(condition, timeout, period=0.05):
    """Polls `condition` until it holds (returns True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return condition()


def inflight_problems(server):
    return sample(scrape(server.metrics_url), "mpcd_inflight_problems")


class LightTest(unittest.TestCase):
    """Findings 1, 3, 5-11 and the idle-connection half of 2, in `make test`."""

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for server in self.servers:
            if server.process.poll() is None:
                server.kill()

    def serve(self, *flags):
        server = start(*flags)
        self.servers.append(server)
        return server

    def assert_serves(self, stub):
        response = stub.Solve(light_request(), timeout=30)
        self.assertEqual(len(response.solutions), 1)

    # Finding 1: 72 problems (n=60, m=4, T=1000, one iteration) asking for x_init Jacobians: a
    # 4.7 MB request whose answer is 2.25 GB aborted mpcd (protobuf cannot serialise 2 GiB).
    def test_1_an_answer_over_the_limit_is_refused_before_it_is_built(self):
        server = self.serve()
        channel, stub = stub_for(server)
        request = heavy_request(problems=72, iterations=1)
        request.return_x_init_jacobian = True
        self.assertGreater(request.ByteSize(), 4_000_000)
        started = time.monotonic()
        with self.assertRaises(grpc().RpcError) as error:
            stub.Solve(request, timeout=60)
        self.assertEqual(error.exception.code(), grpc().StatusCode.INVALID_ARGUMENT)
        self.assertIn("max_response_bytes", error.exception.details())
        self.assertLess(time.monotonic() - started, 10 * SLOWDOWN, "it was solved first")
        self.assert_serves(stub)
        self.assertIsNone(server.process.poll())
        channel.close()

    # Finding 3: a solve with a deadline ran 34 s past it; the promised DEADLINE status was never
    # produced. Now the solve stops in time and answers its best iterate with status DEADLINE.
    def test_3_a_deadline_stops_the_solve_with_its_best_iterate(self):
        server = self.serve("--threads=2")
        channel, stub = stub_for(server)
        started = time.monotonic()
        # T=300: an iteration (~0.1 s alone, ~0.4 s on a loaded machine) fits the deadline many
        # times; the whole solve takes a minute. The solver checks between iterations, so with
        # iterations longer than the deadline the client sees DEADLINE_EXCEEDED instead (the
        # solve still stops after one iteration).
        response = stub.Solve(heavy_request(horizon=300), timeout=2.0 * SLOWDOWN)
        elapsed = time.monotonic() - started
        solution = response.solutions[0]
        self.assertEqual(solution.status, pb().DEADLINE)
        self.assertGreaterEqual(solution.iterations, 1)
        self.assertLess(solution.iterations, 250)
        self.assertEqual(list(solution.x.shape), [300, 60])
        self.assertLess(elapsed, 2.0 * SLOWDOWN)
        self.assertTrue(wait_for(lambda: inflight_problems(server) == 0, 1.0))
        channel.close()

    # Finding 3: a light client's p99 went from 3.7 ms to 13.4 s beside one heavy Solve, and a
    # cancelled solve ran on. Now launches run side by side and a cancel stops the solve.
    def test_3_a_light_client_is_not_starved_and_a_cancel_stops_the_solve(self):
        server = self.serve("--threads=2")
        channel, stub = stub_for(server)
        heavy = stub.Solve.future(heavy_request(), timeout=600)
        self.assertTrue(wait_for(lambda: inflight_problems(server) == 1, 10), "heavy never ran")
        latencies = []
        end = time.monotonic() + 3
        while time.monotonic() < end:
            started = time.monotonic()
            stub.Solve(cartpole_request(10), timeout=60)
            latencies.append(time.monotonic() - started)
        latencies.sort()
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        print("light client beside a heavy one: %d calls, p50 %.4f s, p99 %.4f s" %
              (len(latencies), latencies[len(latencies) // 2], p99), file=sys.stderr)
        # Loose on purpose (a shared 2-core machine); before the fix it was the heavy solve's
        # whole duration. The bench (docs/robustness.md §7) has the real figures.
        self.assertLess(p99, 1.0 * SLOWDOWN)
        self.assertFalse(heavy.done(), "the heavy solve was not heavy")
        heavy.cancel()
        self.assertTrue(wait_for(lambda: inflight_problems(server) == 0, 2.0 * SLOWDOWN),
                        "the cancelled solve kept running")
        channel.close()

    # "Nothing runs after its caller is gone": a cancelled Backward's running launch computed every
    # gradient of its batch (tens of seconds here). Now the problems not yet begun are left out.
    def test_3_a_cancel_stops_a_running_backward(self):
        server = self.serve("--threads=2")
        channel, stub = stub_for(server)
        solve = heavy_request(iterations=1)
        solution = stub.Solve(solve, timeout=120 * SLOWDOWN).solutions[0]
        backward = pb().BackwardRequest(horizon=solve.horizon)
        for _ in range(40):  # one gradient is about a second of one thread: 20 s on two
            backward.problems.add().CopyFrom(solve.problems[0])
            point = backward.solutions.add()
            point.x.CopyFrom(solution.x)
            point.u.CopyFrom(solution.u)
            backward.cotangents.add().u.CopyFrom(solution.u)
        call = stub.Backward.future(backward, timeout=600)
        self.assertTrue(wait_for(lambda: inflight_problems(server) > 0, 30), "it never ran")
        started = time.monotonic()
        call.cancel()
        self.assertTrue(wait_for(lambda: inflight_problems(server) == 0, 5.0 * SLOWDOWN),
                        "the cancelled backward kept running")
        print("a cancelled backward of 40 heavy problems stopped in %.2f s" %
              (time.monotonic() - started), file=sys.stderr)
        self.assert_serves(stub)
        channel.close()

    # Finding 3: SIGTERM with --shutdown_grace_s=2 took 14-24 s with a long solve in flight.
    def test_3_the_drain_cancels_a_running_solve_after_its_grace(self):
        server = self.serve("--threads=2", "--shutdown_grace_s=1")
        channel, stub = stub_for(server)
        heavy = stub.Solve.future(heavy_request(), timeout=600)
        self.assertTrue(wait_for(lambda: inflight_problems(server) == 1, 10), "heavy never ran")
        started = time.monotonic()
        code, out, err = server.stop(timeout=60)
        elapsed = time.monotonic() - started
        self.assertEqual(code, 0, err)
        self.assertIn("grace period ran out", out)
        print("drain with a long solve in flight, --shutdown_grace_s=1: %.1f s" % elapsed,
              file=sys.stderr)
        # Grace, then the solve stops at its next check (one iteration, ~0.3 s alone here); loose
        # for a shared machine. Before: over 60 s (the solve ran to its end).
        self.assertLess(elapsed, 10 * SLOWDOWN)
        with self.assertRaises(grpc().RpcError):
            heavy.result(timeout=30)
        channel.close()

    # Finding 5: 12 idle Control sessions with 33 MB templates held 1 GB, outside every bound.
    def test_5_control_sessions_are_counted_against_max_session_bytes(self):
        # Each session holds its template twice (as a Problem and as the message read), ~31 MB.
        server = self.serve("--max_session_bytes=80000000")
        channel, stub = stub_for(server)

        def template():
            # A time-varying cost (T, n+m, n+m): 1000 x 44 x 44 doubles, about 15.5 MB.
            n, m, horizon = 40, 4, 1000
            request = pb().ControlRequest(horizon=horizon)
            problem = request.problem
            raw_tensor(problem.x_init, [n], [0.1] * n)
            raw_tensor(problem.cost.quadratic, [horizon, n + m, n + m],
                       identity(n + m) * horizon)
            transition = []
            for i in range(n):
                transition += [0.95 if i == j else 0.0 for j in range(n)] + [0.1] * m
            raw_tensor(problem.dynamics.linear.transition, [n, n + m], transition)
            request.options.max_iterations = 1
            return request

        sessions = []

        def open_session():
            outgoing = threading.Event()
            first = template()

            def requests():
                yield first
                outgoing.wait()

            responses = stub.Control(requests(), timeout=120)
            sessions.append((outgoing, responses))
            return next(responses)

        for _ in range(2):
            self.assertEqual(len(open_session().u0.shape), 1)
        held = sample(scrape(server.metrics_url), "mpcd_session_bytes")
        self.assertGreater(held, 60e6)
        self.assertLessEqual(held, 80e6)
        with self.assertRaises(grpc().RpcError) as error:
            open_session()
        self.assertEqual(error.exception.code(), grpc().StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("max_session_bytes", error.exception.details())
        for outgoing, responses in sessions:
            outgoing.set()
            responses.cancel()
        self.assertTrue(wait_for(
            lambda: sample(scrape(server.metrics_url), "mpcd_session_bytes") == 0, 10))
        open_session()  # room again
        for outgoing, responses in sessions:
            outgoing.set()
            responses.cancel()
        channel.close()

    # Finding 6: a request larger than --max_queue_bytes was told "queue full ... retry with
    # backoff" (UNAVAILABLE) forever.
    def test_6_a_request_larger_than_the_queue_is_refused_for_good(self):
        server = self.serve("--max_queue_bytes=1000000")
        channel, stub = stub_for(server)
        request = heavy_request(problems=1, n=20, m=4, horizon=1000, iterations=1)
        request.return_gains = True
        with self.assertRaises(grpc().RpcError) as error:
            stub.Solve(request, timeout=60)
        self.assertEqual(error.exception.code(), grpc().StatusCode.INVALID_ARGUMENT)
        self.assertIn("max_queue_bytes", error.exception.details())
        self.assert_serves(stub)
        channel.close()

    # Finding 7: error messages repeated the client's whole shape; from 10,000 dimensions the
    # client saw RESOURCE_EXHAUSTED (an oversized header) instead of INVALID_ARGUMENT.
    def test_7_error_messages_are_bounded(self):
        server = self.serve()
        channel, stub = stub_for(server)
        request = light_request()
        request.problems[0].x_init.shape[:] = [1] * 10000
        with self.assertRaises(grpc().RpcError) as error:
            stub.Solve(request, timeout=30)
        self.assertEqual(error.exception.code(), grpc().StatusCode.INVALID_ARGUMENT)
        self.assertIn("problems[0].x_init", error.exception.details())
        self.assertLess(len(error.exception.details()), 1024)
        channel.close()

    # Findings 8 and 9: --threads=100000 aborted (exit 134); --max_connection_age_s=1e-9 was
    # accepted and then every call timed out.
    def test_8_9_flags_out_of_range_exit_2_naming_the_flag(self):
        for flag, name in (("--threads=100000", "threads"),
                           ("--max_connection_age_s=1e-9", "max_connection_age_s"),
                           ("--max_connection_idle_s=0", "max_connection_idle_s"),
                           ("--handshake_timeout_s=0", "handshake_timeout_s"),
                           ("--max_response_bytes=3000000000", "max_response_bytes"),
                           ("--max_request_work=0", "max_request_work"),
                           ("--max_session_bytes=0", "max_session_bytes"),
                           ("--listener_watchdog_failures=0", "listener_watchdog_failures")):
            with self.subTest(flag=flag):
                result = subprocess.run([harness.ARGS.mpcd, "--port=0", "--metrics_port=-1", flag],
                                        capture_output=True, text=True, timeout=60)
                self.assertEqual(result.returncode, 2, result.stderr)
                lines = result.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, result.stderr)
                self.assertIn(name, lines[0])

    # Finding 10: the start-up line said "serving on 127.0.0.1:PORT" while mpcd listened on every
    # interface in plaintext.
    def test_10_the_startup_line_prints_the_bound_address_and_warns(self):
        server = Mpcd(harness.ARGS.mpcd, "--host=0.0.0.0", "--port=0", "--metrics_port=-1",
                      flagfile_lines=[])
        self.servers.append(server)
        self.assertTrue(server.bound.startswith("0.0.0.0:"), server.bound)
        channel, stub = stub_for(server)
        self.assert_serves(stub)
        channel.close()
        code, _, err = server.stop()
        self.assertEqual(code, 0, err)
        self.assertIn("WARNING listening on 0.0.0.0:", err)
        self.assertIn("plaintext without --auth_token_file", err)
        loopback = self.serve("--metrics_port=-1")
        code, _, err = loopback.stop()
        self.assertNotIn("plaintext without", err)

    # Finding 11: Backward at an unconverged point reported GRADIENT_OK.
    def test_11_backward_at_an_unconverged_point_says_so(self):
        server = self.serve()
        channel, stub = stub_for(server)
        statuses = {}
        for iterations in (1, 100):
            solve = cartpole_request(iterations)
            solution = stub.Solve(solve, timeout=60).solutions[0]
            backward = pb().BackwardRequest(horizon=solve.horizon)
            backward.problems.add().CopyFrom(solve.problems[0])
            point = backward.solutions.add()
            point.x.CopyFrom(solution.x)
            point.u.CopyFrom(solution.u)
            cotangent = backward.cotangents.add()
            cotangent.u.shape[:] = [60, 1]
            cotangent.u.data[:] = [1.0] * 60
            diagnostics = stub.Backward(backward, timeout=60).diagnostics[0]
            statuses[iterations] = (solution.status, diagnostics.status)
        self.assertEqual(statuses[1], (pb().MAX_ITERATIONS, pb().GRADIENT_NOT_SOLUTION))
        # 100 iterations reach the optimum to well within the residual's tolerance, though not
        # always to the step tolerance (1e-7) that CONVERGED needs.
        self.assertEqual(statuses[100][1], pb().GRADIENT_OK)
        channel.close()

    # Finding 2 (its cause): preface-only connections stayed open forever, each holding a
    # descriptor. Now idle connections are closed, and so are ones that never send a preface.
    def test_2_idle_and_silent_connections_are_closed(self):
        server = self.serve("--max_connection_idle_s=1", "--handshake_timeout_s=1")
        host, port = server.target.split(":")
        for greeting in (PREFACE, b""):
            with self.subTest(preface=bool(greeting)):
                connection = socket.create_connection((host, int(port)), timeout=10)
                connection.sendall(greeting)
                started = time.monotonic()
                closed = False
                while time.monotonic() - started < 8:
                    try:
                        if connection.recv(65536) == b"":
                            closed = True
                            break
                    except (socket.timeout, ConnectionResetError):
                        closed = True
                        break
                elapsed = time.monotonic() - started
                connection.close()
                self.assertTrue(closed, "the server kept the connection open")
                self.assertLess(elapsed, 5)


class HeavyTest(unittest.TestCase):
    """Findings 2 and 4 at the probe's scale, in `make check-robustness`."""

    # Finding 2: about 1,014 preface-only connections filled a 1024-descriptor limit and gRPC 1.51
    # stopped accepting for good. Now the watchdog notices, health turns NOT_SERVING and mpcd
    # exits 3; under a supervisor (here: this test) new clients are served within seconds.
    def test_2_descriptor_exhaustion_recovers(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
        port = free_port()
        limit = 256

        def limited():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        exits = []
        stop = threading.Event()
        current = {}

        def supervise():
            while not stop.is_set():
                process = subprocess.Popen(
                    [harness.ARGS.mpcd, "--host=127.0.0.1", "--port=%d" % port,
                     "--metrics_port=-1", "--listener_watchdog_s=1",
                     "--listener_watchdog_failures=2", "--shutdown_grace_s=1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                    preexec_fn=limited)
                current["process"] = process
                _, err = process.communicate()
                exits.append((process.returncode, err[-400:]))
                time.sleep(0.2)

        supervisor = threading.Thread(target=supervise, daemon=True)
        supervisor.start()
        target = "127.0.0.1:%d" % port
        try:
            channel = grpc().insecure_channel(target)
            stub = harness.STUBS.mpcd_pb2_grpc.MpcServiceStub(channel)
            self.assertTrue(wait_for(lambda: self.serves(stub), 30), "mpcd never started")
            connections = []
            for _ in range(2000):
                try:
                    c = socket.create_connection(("127.0.0.1", port), timeout=2)
                    c.setblocking(False)
                    try:
                        c.send(PREFACE)
                    except OSError:
                        pass
                    connections.append(c)
                except OSError:
                    break
            print("opened %d preface-only connections" % len(connections), file=sys.stderr)
            time.sleep(2)
            for c in connections:
                c.close()
            channel.close()
            closed = time.monotonic()
            fresh = grpc().insecure_channel(target)
            fresh_stub = harness.STUBS.mpcd_pb2_grpc.MpcServiceStub(fresh)
            served = wait_for(lambda: self.serves(fresh_stub), 30)
            recovery = time.monotonic() - closed
            print("served a new client %.1f s after the connections closed; mpcd exits: %s" %
                  (recovery, [code for code, _ in exits]), file=sys.stderr)
            self.assertTrue(served, "no new client was served: %s" % exits)
            self.assertLess(recovery, 20)
            for code, err in exits:
                self.assertEqual(code, 3, err)
                self.assertIn("listener stopped accepting", err)
            fresh.close()
        finally:
            stop.set()
            process = current.get("process")
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
            supervisor.join(timeout=30)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    @staticmethod
    def serves(stub):
        try:
            stub.Solve(light_request(), timeout=2)
            return True
        except grpc().RpcError:
            return False

    # Finding 4: 34 requests of distinct large shapes (Solve then Backward) grew RSS from 19 MB to
    # 5 GB for good (16 cached workspaces per thread and direction, up to ~160 MB each).
    def test_4_rss_stays_bounded_after_many_large_shapes(self):
        server = start("--threads=2")
        try:
            channel, stub = stub_for(server)
            # 34 shapes. The probe's requests were 126 KB (time-invariant inputs); the solver core
            # now packs those small, so the costs here are per step, as large as the workspaces.
            for n in range(30, 64):
                request = heavy_request(problems=1, n=n, m=4, horizon=400, iterations=2,
                                        time_varying=True)
                solution = stub.Solve(request, timeout=600).solutions[0]
                backward = pb().BackwardRequest(horizon=400)
                backward.problems.add().CopyFrom(request.problems[0])
                point = backward.solutions.add()
                point.x.CopyFrom(solution.x)
                point.u.CopyFrom(solution.u)
                cotangent = backward.cotangents.add()
                raw_tensor(cotangent.u, [400, 4], [1.0] * 1600)
                stub.Backward(backward, timeout=600)
            with open("/proc/%d/status" % server.process.pid) as f:
                rss = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024
            print("RSS after 34 large shapes, Solve then Backward: %.0f MB" % (rss / 1e6),
                  file=sys.stderr)
            # --max_workspace_bytes (256 MiB) plus the process's own ~100 MB.
            self.assertLess(rss, 400e6)
            channel.close()
        finally:
            code, _, err = server.stop()
            self.assertEqual(code, 0, err)


if __name__ == "__main__":
    # mpcd_process_test's main parses the shared flags, generates the stubs and runs this module's
    # tests (unittest.main(module="__main__")).
    harness.main()
