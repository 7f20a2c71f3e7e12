#!/usr/bin/python3
"""Scale-out on this machine, with real processes: several mpcd replicas on loopback, load from
`mpcctl bench --verify` (every answer checked against an in-process solve), one replica killed
with SIGKILL in the middle of the load.

- Client-side load balancing: one gRPC channel to ipv4:A,B,C with mpcctl --round_robin (round_robin
  plus a retry policy for UNAVAILABLE). Nothing may be lost or answered wrongly, and the survivors
  must take over the load. A control run with round_robin but no retry policy shows that the kill
  does break calls in flight, i.e. that the retry policy is what saves them.
- A proxy: the same through nginx grpc_pass (config generated here, unprivileged ports).

Usage: scale_out_test.py --mpcd build/bin/mpcd --mpcctl build/bin/mpcctl [--nginx /usr/sbin/nginx]
         [unittest args]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import SLOWDOWN, Mpcd, free_port, sample, scrape  # noqa: E402

ARGS = None
REPLICAS = 3
# Load: enough callers that every replica always has calls in flight, so the kill hits some.
BENCH_FLAGS = ["--model=cartpole", "--horizon=25", "--batch=2", "--concurrency=12",
               "--warmup=0", "--duration=%g" % (4 * SLOWDOWN), "--timeout=30", "--json"]
ROUND_ROBIN_ONLY = '{"loadBalancingConfig": [{"round_robin": {}}]}'


class Replica(Mpcd):
    """One mpcd replica with one solver thread, on ports the kernel picks."""

    def __init__(self, *flags):
        super().__init__(ARGS.mpcd, "--threads=1", *flags)
        self.address = self.target

    def solves_answered(self):
        """OK Solve calls so far, from the replica's own /metrics."""
        return int(sample(scrape(self.metrics_url, timeout=5), "mpcd_requests_total", code="OK",
                          method="Solve"))


def client_ports(server_address):
    """The peer ports of the established TCP connections to server_address (from /proc; gRPC
    uses IPv4-mapped IPv6 sockets, so both tables)."""
    port = int(server_address.rsplit(":", 1)[1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, remote, state = line.split()[1:4]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    ports.add(int(remote.rsplit(":", 1)[1], 16))
    return ports


class Nginx:
    """nginx as a gRPC load balancer in front of `addresses`, config and logs in a temp dir."""

    def __init__(self, addresses):
        self.dir = tempfile.mkdtemp(prefix="mpcd_nginx_")
        os.chmod(self.dir, 0o755)  # nginx's workers (user nobody when run as root) use it too
        self.port = free_port()
        servers = "\n".join("    server %s max_fails=1 fail_timeout=30s;" % a for a in addresses)
        config = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream mpcd {{
{servers}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{port} http2;
    location / {{
      grpc_pass grpc://mpcd;
      # Every MpcService method is idempotent: a call whose replica died may go to another.
      grpc_next_upstream error timeout non_idempotent;
      grpc_next_upstream_tries 3;
      grpc_read_timeout 30s;
    }}
  }}
}}
""".format(dir=self.dir, servers=servers, port=self.port)
        self.config = os.path.join(self.dir, "nginx.conf")
        with open(self.config, "w") as f:
            f.write(config)
        self.process = subprocess.Popen(
            [ARGS.nginx, "-p", self.dir, "-c", self.config, "-e", self.dir + "/error.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("nginx did not start: %s %s" %
                                         (self.process.stderr.read(), self.error_log()))
                time.sleep(0.05)

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class KillUnderLoad:
    """Runs bench against `target`; once every replica has answered some of its calls, SIGKILLs
    replicas[0]. Returns the bench JSON and how many Solves each replica had answered at the kill
    and at the end (the killed one: at its last scrape before the kill)."""

    def __init__(self, test, replicas, target, channel_flags):
        bench = subprocess.Popen(
            [ARGS.mpcctl, "bench", "--target=" + target, "--verify"] + channel_flags +
            BENCH_FLAGS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20 * SLOWDOWN
        while True:
            counts = [r.solves_answered() for r in replicas]
            if min(counts) >= 20:
                break
            if bench.poll() is not None or time.monotonic() > deadline:
                bench.kill()
                test.fail("the load did not reach every replica: %s %s" %
                          (counts, bench.communicate()[1][-2000:]))
            time.sleep(0.05)
        self.killed_at = time.monotonic()
        replicas[0].kill()
        self.at_kill = [counts[0]] + [r.solves_answered() for r in replicas[1:]]
        out, err = bench.communicate(timeout=90 * SLOWDOWN)
        test.assertEqual(bench.returncode, 0, err[-2000:])
        self.result = json.loads(out)
        self.at_end = [self.at_kill[0]] + [r.solves_answered() for r in replicas[1:]]
        print("\n%s %s: answered per replica at the kill %s, at the end %s; bench: %d OK, "
              "%d failed (%s), %d wrong, %.0f problems/s" %
              (target, " ".join(channel_flags) or "(no flags)", self.at_kill, self.at_end,
               self.result["total_ok"], self.result["total_failed"],
               self.result["errors_by_code"], self.result["wrong_answers"],
               self.result["problems_per_s"]), file=sys.stderr)

    def assert_nothing_lost(self, test):
        test.assertTrue(self.result["verified"])
        test.assertEqual(self.result["total_failed"], 0, self.result)
        test.assertEqual(self.result["wrong_answers"], 0, self.result)
        test.assertGreater(self.result["total_ok"], 0)

    def assert_survivors_took_over(self, test, replicas):
        # The kill came early in the run (every replica had answered only a few calls), so the
        # rest of the load went to the survivors, each of them.
        for before, after in zip(self.at_kill[1:], self.at_end[1:]):
            test.assertGreaterEqual(after - before, 10, (self.at_kill, self.at_end))
        test.assertEqual(replicas[0].process.returncode, -signal.SIGKILL)


class ScaleOutTest(unittest.TestCase):
    def setUp(self):
        self.replicas = []
        for _ in range(REPLICAS):
            self.replicas.append(Replica())
        self.addCleanup(self.stop_replicas)

    def stop_replicas(self):
        for replica in self.replicas:
            replica.stop()

    def client_side_target(self):
        return "ipv4:" + ",".join(r.address for r in self.replicas)

    def test_round_robin_with_retries_loses_nothing_when_a_replica_is_killed(self):
        run = KillUnderLoad(self, self.replicas, self.client_side_target(), ["--round_robin"])
        run.assert_nothing_lost(self)
        run.assert_survivors_took_over(self, self.replicas)

    def test_control_without_retries_the_kill_breaks_calls_in_flight(self):
        # The same kill with round_robin and no retry policy: the calls in flight on the killed
        # replica fail with UNAVAILABLE. Shows the test above can fail; answers stay right.
        run = KillUnderLoad(self, self.replicas, self.client_side_target(),
                            ["--service_config=" + ROUND_ROBIN_ONLY])
        self.assertGreater(run.result["total_failed"], 0, run.result)
        self.assertEqual(set(run.result["errors_by_code"]), {"UNAVAILABLE"}, run.result)
        self.assertEqual(run.result["wrong_answers"], 0, run.result)
        run.assert_survivors_took_over(self, self.replicas)

    def test_nginx_grpc_pass_loses_nothing_when_a_replica_is_killed(self):
        if not ARGS.nginx:
            self.skipTest("nginx is not installed (apt-get install nginx-light)")
        nginx = Nginx([r.address for r in self.replicas])
        self.addCleanup(nginx.stop)
        run = KillUnderLoad(self, self.replicas, "127.0.0.1:%d" % nginx.port, ["--retry"])
        run.assert_nothing_lost(self)
        run.assert_survivors_took_over(self, self.replicas)
        # nginx did send calls to the killed replica and saw them fail (then re-routed them).
        self.assertIn("upstream: \"grpc://%s\"" % self.replicas[0].address, nginx.error_log())


class ConnectionAgeTest(unittest.TestCase):
    def test_clients_reconnect_after_max_connection_age_without_losing_calls(self):
        # A long-lived client of a headless Service finds new replicas only when it reconnects
        # and resolves again; --max_connection_age_s makes it reconnect. Here: a connection may
        # live 0.5 s, so a 3 s run must see several, and no call may fail or be wrong.
        replica = Replica("--max_connection_age_s=0.5", "--shutdown_grace_s=5")
        self.addCleanup(replica.stop)
        bench = subprocess.Popen(
            [ARGS.mpcctl, "bench", "--target=" + replica.address, "--retry", "--verify",
             "--model=cartpole", "--horizon=25", "--concurrency=4", "--warmup=0", "--duration=3",
             "--timeout=30", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = set()
        while bench.poll() is None:
            seen |= client_ports(replica.address)
            time.sleep(0.05)
        out, err = bench.communicate()
        self.assertEqual(bench.returncode, 0, err[-2000:])
        result = json.loads(out)
        print("\nmax_connection_age 0.5 s: %d client connections seen over the 3 s run; bench: "
              "%d OK, %d failed, %d wrong" % (len(seen), result["total_ok"],
                                              result["total_failed"], result["wrong_answers"]),
              file=sys.stderr)
        self.assertGreaterEqual(len(seen), 3)
        self.assertEqual(result["total_failed"], 0, result)
        self.assertEqual(result["wrong_answers"], 0, result)
        self.assertGreater(result["total_ok"], 0)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", required=True)
    parser.add_argument("--mpcctl", required=True)
    parser.add_argument("--nginx", default="")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
