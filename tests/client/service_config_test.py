#!/usr/bin/python3
"""The documented retry / load-balancing service config in use from Python and from Node.

client/service_config/replicated.json is the JSON docs/operations.md shows (checked here, value
for value) and the C++ client builds (service_config_test.cc). Against three real mpcd replicas on
loopback, one channel over all of them (target ipv4:A,B,C):

- Python: mpcd.Client(target, options=[("grpc.service_config", json)]) spreads its calls over
  every replica (each replica's /metrics counts some), and after one replica is SIGKILLed every
  later call still succeeds (round-robin skips the dead replica, a call caught by the kill is
  retried on another one).
- Node: client/node/replicas.js (@grpc/grpc-js, the same JSON file) does the same.

Without the service config (the control), a Python channel over the same addresses sends every
call to the first replica only (gRPC's default pick_first), which is what makes the spread check
meaningful.

Usage: service_config_test.py --mpcd build/bin/mpcd --package-dir client/python
         --stubs-dir build/python --node-dir client/node --proto-dir proto --source-dir .
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import Mpcd, scrape  # noqa: E402

ARGS = None
mpcd = None  # the Python package, imported in main() once its path is known


def service_config_text():
    with open(os.path.join(ARGS.source_dir, "client", "service_config", "replicated.json")) as f:
        return f.read()


def solve_count(server):
    """Solves a replica answered OK, from its /metrics."""
    match = re.search(r'^mpcd_requests_total\{code="OK",method="Solve"\} (\d+)',
                      scrape(server.metrics_url), re.MULTILINE)
    return int(match.group(1)) if match else 0


def lqr_problem():
    return mpcd.Problem(x_init=[1.0], C=[[1.0, 0.0], [0.0, 1.0]], c=[0.0, 0.0],
                        dynamics=mpcd.Linear(F=[[1.0, 1.0]]))


class Replicas(unittest.TestCase):

    def setUp(self):
        self.servers = [Mpcd(ARGS.mpcd, "--backend=cpu", "--threads=1") for _ in range(3)]
        self.target = "ipv4:" + ",".join(s.target for s in self.servers)

    def tearDown(self):
        for server in self.servers:
            if server.process.poll() is None:
                server.stop()
            else:
                server.stop()  # already killed: collects it and removes its folder

    def kill_one(self):
        victim = self.servers[1]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(timeout=30)
        return victim


class DocumentedConfigTest(unittest.TestCase):

    def test_docs_show_the_file(self):
        with open(os.path.join(ARGS.source_dir, "docs", "operations.md")) as f:
            docs = f.read()
        blocks = re.findall(r"```json\n(.*?)```", docs, re.DOTALL)
        wanted = json.loads(service_config_text())
        self.assertIn(wanted, [json.loads(block) for block in blocks])
        self.assertIn("client/service_config/replicated.json", docs)


class PythonTest(Replicas):

    def test_round_robin_and_retry(self):
        options = [("grpc.service_config", service_config_text())]
        with mpcd.Client(self.target, timeout=30, options=options) as client:
            for _ in range(30):
                solution = client.solve(horizon=5, problems=[lqr_problem()]).solutions[0]
                self.assertEqual(solution.status, "CONVERGED")
            counts = [solve_count(s) for s in self.servers]
            self.assertEqual(sum(counts), 30)
            self.assertTrue(all(count >= 5 for count in counts), counts)
            victim = self.kill_one()
            for _ in range(30):  # every call succeeds: none is lost to the dead replica
                solution = client.solve(horizon=5, problems=[lqr_problem()]).solutions[0]
                self.assertEqual(solution.status, "CONVERGED")
            alive = [s for s in self.servers if s is not victim]
            self.assertEqual(sum(solve_count(s) for s in alive) - sum(counts) + counts[1], 30)

    def test_without_the_config_one_replica_gets_everything(self):
        with mpcd.Client(self.target, timeout=30) as client:
            for _ in range(10):
                client.solve(horizon=5, problems=[lqr_problem()])
        counts = sorted(solve_count(s) for s in self.servers)
        self.assertEqual(counts, [0, 0, 10])


class NodeTest(Replicas):

    @classmethod
    def setUpClass(cls):
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                raise AssertionError("%s is not installed (scripts/install_deps.sh installs it)"
                                     % tool)
        if not os.path.isdir(os.path.join(ARGS.node_dir, "node_modules", "@grpc", "grpc-js")):
            npm = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ARGS.node_dir,
                                 capture_output=True, text=True, timeout=600)
            if npm.returncode != 0:
                raise AssertionError("npm ci failed:\n%s%s" % (npm.stdout, npm.stderr))

    def test_round_robin_and_retry(self):
        node = subprocess.Popen(
            ["node", "replicas.js", "--target=" + self.target, "--calls=30", "--pause",
             "--proto-dir=" + ARGS.proto_dir], cwd=ARGS.node_dir, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = node.stdout.readline()
            if line != "phase 1: 30/30 OK\n":
                node.kill()
                out, err = node.communicate()
                self.fail(line + out + err)
            counts = [solve_count(s) for s in self.servers]
            self.assertTrue(all(count >= 5 for count in counts), counts)
            self.kill_one()
            out, err = node.communicate("go\n", timeout=120)
        finally:
            if node.poll() is None:
                node.kill()
                node.communicate()
        self.assertEqual(node.returncode, 0, out + err)
        self.assertIn("phase 2: 30/30 OK", out)


def main():
    global ARGS, mpcd
    parser = argparse.ArgumentParser()
    for flag in ("--mpcd", "--package-dir", "--stubs-dir", "--node-dir", "--proto-dir",
                 "--source-dir"):
        parser.add_argument(flag, required=True)
    ARGS, rest = parser.parse_known_args()
    for name in ("mpcd", "package_dir", "stubs_dir", "node_dir", "proto_dir", "source_dir"):
        setattr(ARGS, name, os.path.abspath(getattr(ARGS, name)))
    sys.path[:0] = [ARGS.package_dir, ARGS.stubs_dir]
    import mpcd as package
    mpcd = package
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
