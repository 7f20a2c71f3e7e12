#!/usr/bin/python3
"""The hostile client's scenarios as measurements (docs/robustness.md §7): run against any mpcd
binary (this tree's, or an older build's for the "before" column), each prints one line.

  starvation   a light client (one-problem cartpole Solves, one after another) beside a heavy
               one (the probe's Solve: n=60, m=4, T=1000, 250 iterations, with a --heavy-deadline
               of 1 s, again and again) for --seconds: the light client's latency percentiles,
               how the heavy calls ended, and how long the server kept solving after the last one
  drain        SIGTERM with --shutdown_grace_s=2 while the heavy Solve runs: time to exit
  response     72 heavy problems with one iteration asking for x_init Jacobians (a 4.6 MB request,
               a 2.25 GB answer): what the server answers, and how fast
  sessions     12 idle Control sessions with 15.5 MB templates: how many are accepted, and RSS
  descriptors  2,000 preface-only connections against an mpcd limited to 256 descriptors, then
               closed: is a new client served within 30 s (no supervisor: without the watchdog
               the process stays up and serves nobody; with it, it exits 3)

Usage (from the repository root, after `make build`):
  /usr/bin/python3 bench/hostile_probe.py --mpcd build/bin/mpcd starvation [--seconds 20]
"""

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
sys.path.insert(0, os.path.join(ROOT, "tests", "testing"))
import hostile_client_test as hostile  # noqa: E402  (the probe's requests)
import mpcd_process_test as harness  # noqa: E402  (stubs)
from mpcd_harness import Mpcd, free_port, sample, scrape  # noqa: E402


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024


def starvation(args, grpc, pb):
    server = Mpcd(args.mpcd, "--threads=%d" % args.threads)
    try:
        channel, stub = hostile.stub_for(server)
        stop = threading.Event()
        outcomes = {}
        last_heavy_end = [time.monotonic()]

        def heavy():
            while not stop.is_set():
                try:
                    response = stub.Solve(hostile.heavy_request(), timeout=args.heavy_deadline)
                    name = pb.SolveStatus.Name(response.solutions[0].status)
                except grpc.RpcError as error:
                    name = error.code().name
                outcomes[name] = outcomes.get(name, 0) + 1
                last_heavy_end[0] = time.monotonic()

        heavy_thread = threading.Thread(target=heavy)
        heavy_thread.start()
        latencies, failures = [], 0
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                stub.Solve(hostile.cartpole_request(10), timeout=60)
                latencies.append(time.monotonic() - started)
            except grpc.RpcError:
                failures += 1
        stop.set()
        heavy_thread.join()
        while (sample(scrape(server.metrics_url), "mpcd_inflight_problems") > 0 and
               time.monotonic() - last_heavy_end[0] < 600):
            time.sleep(0.05)
        print("light client: %d calls answered, %d failed; p50 %.1f ms, p99 %.1f ms, max %.1f ms"
              "; heavy calls (%.1f s deadline): %s; still solving %.2f s after the last ended" %
              (len(latencies), failures, 1e3 * percentile(latencies or [0], 50),
               1e3 * percentile(latencies or [0], 99), 1e3 * max(latencies or [0]),
               args.heavy_deadline, outcomes, time.monotonic() - last_heavy_end[0]))
        channel.close()
    finally:
        server.stop(timeout=900)


def drain(args, grpc, pb):
    server = Mpcd(args.mpcd, "--threads=%d" % args.threads, "--shutdown_grace_s=2")
    channel, stub = hostile.stub_for(server)
    call = stub.Solve.future(hostile.heavy_request(), timeout=900)
    while sample(scrape(server.metrics_url), "mpcd_inflight_problems") < 1:
        time.sleep(0.05)
    time.sleep(0.5)
    started = time.monotonic()
    code, _, _ = server.stop(timeout=900)
    print("SIGTERM with --shutdown_grace_s=2 and the heavy Solve running: exit %d after %.1f s" %
          (code, time.monotonic() - started))
    call.cancel()
    channel.close()


def response(args, grpc, pb):
    server = Mpcd(args.mpcd)
    channel, stub = hostile.stub_for(server)
    request = hostile.heavy_request(problems=72, iterations=1)
    request.return_x_init_jacobian = True
    started = time.monotonic()
    try:
        stub.Solve(request, timeout=900)
        outcome = "answered"
    except grpc.RpcError as error:
        outcome = "%s: %s" % (error.code().name, error.details()[:160])
    print("%.1f MB request, 2.25 GB answer: after %.2f s, %s" %
          (request.ByteSize() / 1e6, time.monotonic() - started, outcome))
    channel.close()
    print("server %s" % ("alive" if server.process.poll() is None else
                         "DIED with %s" % server.process.returncode))
    server.stop()


def sessions(args, grpc, pb):
    server = Mpcd(args.mpcd, "--threads=%d" % args.threads)
    channel, stub = hostile.stub_for(server)
    idle = rss_mb(server.process.pid)
    n, m, horizon = 40, 4, 1000
    transition = []
    for i in range(n):
        transition += [0.95 if i == j else 0.0 for j in range(n)] + [0.1] * m
    open_sessions, refused = [], {}
    for _ in range(12):
        first = pb.ControlRequest(horizon=horizon)
        hostile.raw_tensor(first.problem.x_init, [n], [0.1] * n)
        hostile.raw_tensor(first.problem.cost.quadratic, [horizon, n + m, n + m],
                           hostile.identity(n + m) * horizon)
        hostile.raw_tensor(first.problem.dynamics.linear.transition, [n, n + m], transition)
        first.options.max_iterations = 1
        release = threading.Event()

        def requests(first=first, release=release):
            yield first
            release.wait()

        responses = stub.Control(requests(), timeout=600)
        try:
            next(responses)
            open_sessions.append((release, responses))
        except grpc.RpcError as error:
            refused[error.code().name] = refused.get(error.code().name, 0) + 1
    time.sleep(1)
    print("12 Control sessions with %.1f MB templates: %d open, refused %s; RSS %.0f MB "
          "(idle %.0f MB)" % (first.ByteSize() / 1e6, len(open_sessions), refused,
                              rss_mb(server.process.pid), idle))
    for release, responses in open_sessions:
        release.set()
        responses.cancel()
    channel.close()
    server.stop()


def descriptors(args, grpc, pb):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    port = free_port()
    process = subprocess.Popen(
        [args.mpcd, "--host=127.0.0.1", "--port=%d" % port, "--metrics_port=-1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    time.sleep(1)
    connections = []
    for _ in range(2000):
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=2)
            connection.send(hostile.PREFACE)
            connections.append(connection)
        except OSError:
            break
    time.sleep(2)
    for connection in connections:
        connection.close()
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    stub = harness.STUBS.mpcd_pb2_grpc.MpcServiceStub(channel)
    started, served = time.monotonic(), False
    while time.monotonic() - started < 30 and not served:
        try:
            stub.Solve(hostile.light_request(), timeout=2)
            served = True
        except grpc.RpcError:
            pass
    print("%d preface-only connections at 256 descriptors, closed: new client %s; mpcd %s" %
          (len(connections), "served after %.1f s" % (time.monotonic() - started) if served
           else "not served within 30 s",
           "still running" if process.poll() is None else "exited %d" % process.returncode))
    channel.close()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--heavy-deadline", type=float, default=1.0)
    parser.add_argument("scenario",
                        choices=["starvation", "drain", "response", "sessions", "descriptors"])
    args = parser.parse_args()
    harness.ARGS = argparse.Namespace(grpc_proto_dir="/usr/share/grpc-proto",
                                      proto_dir=os.path.join(ROOT, "proto"), protoc="protoc",
                                      grpc_python_plugin=shutil.which("grpc_python_plugin"))
    stub_dir = tempfile.mkdtemp(prefix="mpcd_probe_stubs_")
    try:
        harness.STUBS = harness.generate_stubs(stub_dir)
        globals()[args.scenario](args, harness.STUBS.grpc, harness.STUBS.mpcd_pb2)
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
