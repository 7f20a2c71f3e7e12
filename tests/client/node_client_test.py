#!/usr/bin/python3
"""Runs the Node.js example (client/node/solve_cartpole.js --check) against a real mpcd process.

The example loads only the .proto files (@grpc/proto-loader) and asserts its own results: health
SERVING, a converged cartpole plan whose reported cost is the objective of the returned trajectory,
and INVALID_ARGUMENT naming the field for a malformed request. node_modules is installed with
`npm ci` from package-lock.json when it is missing.

Usage: node_client_test.py --mpcd build/bin/mpcd --node-dir client/node --proto-dir proto
         --grpc-proto-dir /usr/share/grpc-proto
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ARGS = None
MAKE_CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing",
                          "make_test_certs.sh")


class NodeClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                raise AssertionError("%s is not installed (scripts/install_deps.sh installs it)" % tool)
        if not os.path.isdir(os.path.join(ARGS.node_dir, "node_modules", "@grpc", "grpc-js")):
            npm = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ARGS.node_dir,
                                 capture_output=True, text=True, timeout=600)
            if npm.returncode != 0:
                raise AssertionError("npm ci failed:\n%s%s" % (npm.stdout, npm.stderr))

    def setUp(self):
        self.start_server()

    def start_server(self, *flags):
        self.server = subprocess.Popen(
            [ARGS.mpcd, "--host=127.0.0.1", "--port=0", "--metrics_port=0", "--backend=cpu"]
            + list(flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.server.stdout.readline()
        match = re.search(r"serving on ([\d.]+):(\d+)", line)
        if match is None:
            self.server.kill()
            self.fail("mpcd did not start: %r %r" % (line, self.server.stderr.read()))
        self.target = "%s:%s" % match.groups()

    def tearDown(self):
        self.server.terminate()
        _, err = self.server.communicate(timeout=60)
        self.assertEqual(self.server.returncode, 0, err)

    def run_example(self, *options):
        run = subprocess.run(
            ["node", "solve_cartpole.js", "--target=" + self.target, "--check",
             "--proto-dir=" + ARGS.proto_dir, "--grpc-proto-dir=" + ARGS.grpc_proto_dir]
            + list(options), cwd=ARGS.node_dir, capture_output=True, text=True, timeout=120)
        sys.stdout.write(run.stdout)
        return run

    def test_example_checks_pass(self):
        run = self.run_example()
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("health: SERVING", run.stdout)
        self.assertIn("node client: all checks passed", run.stdout)

    def test_example_over_mutual_tls_with_a_token(self):
        certs = tempfile.mkdtemp(prefix="mpcd_certs_")
        try:
            subprocess.run([MAKE_CERTS, certs], check=True)
            cert = lambda name: os.path.join(certs, name)  # noqa: E731
            with open(cert("token"), "w") as f:
                f.write("node-token-0123456789\n")
            with open(cert("wrong_token"), "w") as f:
                f.write("not-the-token\n")
            self.tearDown()  # the plaintext server of setUp
            self.start_server("--tls_cert=" + cert("server.pem"), "--tls_key=" + cert("server.key"),
                              "--tls_client_ca=" + cert("ca.pem"),
                              "--auth_token_file=" + cert("token"))
            tls = ["--tls-ca=" + cert("ca.pem"), "--tls-cert=" + cert("client.pem"),
                   "--tls-key=" + cert("client.key")]
            run = self.run_example(*tls, "--token-file=" + cert("token"))
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            self.assertIn("node client: all checks passed", run.stdout)
            # The same calls with the wrong token, or in plaintext, get nothing.
            wrong = self.run_example(*tls, "--token-file=" + cert("wrong_token"))
            self.assertNotEqual(wrong.returncode, 0)
            self.assertIn("UNAUTHENTICATED", wrong.stdout + wrong.stderr)
            plaintext = self.run_example("--token-file=" + cert("token"))
            self.assertNotEqual(plaintext.returncode, 0)
        finally:
            shutil.rmtree(certs, ignore_errors=True)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    for flag in ("--mpcd", "--node-dir", "--proto-dir", "--grpc-proto-dir"):
        parser.add_argument(flag, required=True)
    ARGS, rest = parser.parse_known_args()
    for name in ("mpcd", "node_dir", "proto_dir", "grpc_proto_dir"):  # node runs in node_dir
        setattr(ARGS, name, os.path.abspath(getattr(ARGS, name)))
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
