#!/usr/bin/python3
"""TLS, mutual TLS and the bearer token of the real mpcd binary, seen by mpcctl and a Python client.

Certificates are made at test time by tests/testing/make_test_certs.sh (the openssl CLI): a CA, a
server certificate for localhost/127.0.0.1, a client certificate from the CA and one from an
unrelated CA. Covered: the right certificate and token solve (same numbers as mpcctl --local);
plaintext, no client certificate and a certificate from the wrong CA never get a call through (the
server counts no request at all); a missing or wrong token is UNAUTHENTICATED and nothing reaches
the batcher (checked on /metrics); health needs no token; bad flag combinations and bad files exit 2
with a message naming the flag.

Usage: mpcd_security_test.py (the same arguments as mpcd_process_test.py) [unittest args]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import mpcd_process_test as process_test
from mpcd_process_test import lqr_request, start_mpcd, mpcctl
from mpcd_harness import sample, scrape

MAKE_CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing",
                          "make_test_certs.sh")
TOKEN = "test-token-0123456789"
CERTS = ""  # folder with the certificates, the token files and the example request


def cert(name):
    return os.path.join(CERTS, name)


def read(name):
    with open(cert(name), "rb") as f:
        return f.read()


def requests_answered(text):
    return sum(float(v) for v in re.findall(r"^mpcd_requests_total\{[^}]*\} (\S+)$", text, re.M))


def problems_queued(text):
    return sum(sample(text, "mpcd_queue_duration_seconds_count", kind=kind)
               for kind in ("solve", "backward"))


class MutualTlsWithTokenTest(unittest.TestCase):
    """One server requiring a client certificate from the test CA and the token."""

    @classmethod
    def setUpClass(cls):
        cls.server = start_mpcd("--backend=cpu", "--threads=1", "--tls_cert=" + cert("server.pem"),
                            "--tls_key=" + cert("server.key"), "--tls_client_ca=" + cert("ca.pem"),
                            "--auth_token_file=" + cert("token"))
        cls.security_line = cls.server.process.stdout.readline()
        cls.grpc, cls.pb = process_test.STUBS.grpc, process_test.STUBS.mpcd_pb2

    @classmethod
    def tearDownClass(cls):
        code, _, err = cls.server.stop()
        assert code == 0, err

    def tls_flags(self, cert_name="client"):
        return ["--target", self.server.target, "--tls_ca=" + cert("ca.pem"),
                "--tls_cert=" + cert(cert_name + ".pem"), "--tls_key=" + cert(cert_name + ".key")]

    def stub(self, channel):
        return process_test.STUBS.mpcd_pb2_grpc.MpcServiceStub(channel)

    def tls_channel(self, cert_name="client", root="ca.pem"):
        key, chain = (None, None) if cert_name is None else (read(cert_name + ".key"),
                                                             read(cert_name + ".pem"))
        credentials = self.grpc.ssl_channel_credentials(
            root_certificates=read(root), private_key=key, certificate_chain=chain)
        return self.grpc.secure_channel(self.server.target, credentials)

    def test_startup_line_names_the_security(self):
        self.assertEqual(self.security_line, "mpcd: security: mutual TLS + bearer token\n")

    def test_mpcctl_with_certificate_and_token_matches_local_solve(self):
        example = os.path.join(process_test.ARGS.examples, "lqr_box.json")
        remote = mpcctl("solve", "--request", example, "--auth_token_file=" + cert("token"),
                        *self.tls_flags())
        self.assertEqual(remote.returncode, 0, remote.stderr)
        local = mpcctl("solve", "--local", "--request", example)
        self.assertEqual(local.returncode, 0, local.stderr)
        self.assertEqual(json.loads(remote.stdout)["solutions"], json.loads(local.stdout)["solutions"])
        models = mpcctl("models", "--auth_token_file=" + cert("token"), *self.tls_flags())
        self.assertEqual(models.returncode, 0, models.stderr)

    def test_mpcctl_health_needs_the_certificate_but_no_token(self):
        # What a container or exec-probe health check runs.
        ok = mpcctl("health", *self.tls_flags())
        self.assertEqual((ok.returncode, ok.stdout), (0, "SERVING\n"), ok.stderr)
        # --tls_server_name: the certificate names localhost, not other.example.
        named = mpcctl("health", "--tls_server_name=localhost", *self.tls_flags())
        self.assertEqual((named.returncode, named.stdout), (0, "SERVING\n"), named.stderr)
        misnamed = mpcctl("health", "--timeout=10", "--tls_server_name=other.example",
                          *self.tls_flags())
        self.assertEqual(misnamed.returncode, 2)
        self.assertRegex(misnamed.stderr, r"^mpcctl: UNAVAILABLE: ")
        for flags, code in ((["--target", self.server.target], "UNAVAILABLE"),
                            (self.tls_flags() + ["--tls_ca=" + cert("other_ca.pem")],
                             "UNAVAILABLE"),
                            (["--target", self.server.target, "--tls_ca=" + cert("ca.pem")],
                             "UNAUTHENTICATED"),
                            (self.tls_flags("other_client"), "UNAUTHENTICATED")):
            with self.subTest(flags=flags):
                refused = mpcctl("health", "--timeout=10", *flags)
                self.assertEqual(refused.returncode, 2)
                self.assertEqual(refused.stdout, "")
                self.assertRegex(refused.stderr, r"^mpcctl: %s: " % code)
                self.assertEqual(len(refused.stderr.splitlines()), 1, refused.stderr)

    def test_mpcctl_without_the_token_is_unauthenticated(self):
        example = os.path.join(process_test.ARGS.examples, "lqr_box.json")
        for token_flags in ([], ["--auth_token_file=" + cert("wrong_token")]):
            with self.subTest(token_flags=token_flags):
                result = mpcctl("solve", "--request", example, *token_flags, *self.tls_flags())
                self.assertEqual(result.returncode, 2)
                self.assertRegex(result.stderr, r"^mpcctl: UNAUTHENTICATED: ")

    def test_without_the_right_certificate_no_call_gets_through(self):
        before = scrape(self.server.metrics_url)
        token = (("authorization", "Bearer " + TOKEN),)
        cases = {
            # No TLS session, so no call to refuse: gRPC reports the failed connection.
            "plaintext": (self.grpc.insecure_channel(self.server.target),
                          self.grpc.StatusCode.UNAVAILABLE, ""),
            "no client certificate": (self.tls_channel(None),
                                      self.grpc.StatusCode.UNAUTHENTICATED,
                                      "no client certificate"),
            "client certificate from another CA": (self.tls_channel("other_client"),
                                                   self.grpc.StatusCode.UNAUTHENTICATED,
                                                   "not trusted"),
            "expired client certificate": (self.tls_channel("expired_client"),
                                           self.grpc.StatusCode.UNAUTHENTICATED, "expired"),
        }
        for what, (channel, code, reason) in cases.items():
            with self.subTest(what):
                with self.assertRaises(self.grpc.RpcError) as error:
                    self.stub(channel).Solve(lqr_request(self.pb), timeout=10, metadata=token)
                self.assertEqual(error.exception.code(), code)
                self.assertIn(reason, error.exception.details())
            channel.close()
        after = scrape(self.server.metrics_url)
        # Refused before any handler: none was answered by the service or queued, and each
        # refusal for a certificate was counted.
        self.assertEqual(requests_answered(after), requests_answered(before))
        self.assertEqual(problems_queued(after), problems_queued(before))
        refused = "mpcd_refused_client_certificates_total"
        self.assertEqual(sample(after, refused) - sample(before, refused), 3)

    def test_missing_or_wrong_token_is_unauthenticated_and_nothing_is_solved(self):
        before = scrape(self.server.metrics_url)
        channel = self.tls_channel()
        stub = self.stub(channel)
        refusals = 0
        for metadata in ((), (("authorization", "Bearer wrong-" + TOKEN),),
                         (("authorization", TOKEN),)):
            with self.subTest(metadata=metadata):
                with self.assertRaises(self.grpc.RpcError) as error:
                    stub.Solve(lqr_request(self.pb), timeout=10, metadata=metadata)
                self.assertEqual(error.exception.code(), self.grpc.StatusCode.UNAUTHENTICATED)
                self.assertNotIn(TOKEN, error.exception.details())
                refusals += 1
        refused = scrape(self.server.metrics_url)
        self.assertEqual(sample(refused, "mpcd_requests_total", method="Solve",
                                code="UNAUTHENTICATED"),
                         sample(before, "mpcd_requests_total", method="Solve",
                                code="UNAUTHENTICATED") + refusals)
        self.assertEqual(problems_queued(refused), problems_queued(before))
        self.assertEqual(sample(refused, "mpcd_solver_iterations_count"),
                         sample(before, "mpcd_solver_iterations_count"))
        # Health needs no token (Kubernetes and container probes carry none).
        health = process_test.STUBS.health_pb2_grpc.HealthStub(channel)
        reply = health.Check(process_test.STUBS.health_pb2.HealthCheckRequest(), timeout=10)
        self.assertEqual(reply.status, process_test.STUBS.health_pb2.HealthCheckResponse.SERVING)
        # And the same client with the token is served: the counters above do move.
        response = stub.Solve(lqr_request(self.pb), timeout=30,
                              metadata=(("authorization", "Bearer " + TOKEN),))
        self.assertEqual(list(response.solutions[0].x.shape), [5, 1])
        served = scrape(self.server.metrics_url)
        self.assertEqual(problems_queued(served), problems_queued(before) + 1)
        self.assertEqual(sample(served, "mpcd_requests_total", method="Solve", code="OK"),
                         sample(before, "mpcd_requests_total", method="Solve", code="OK") + 1)
        channel.close()


class TokenWithoutTlsTest(unittest.TestCase):
    """A token over plaintext (behind a TLS-terminating proxy): allowed, with a warning."""

    def test_token_over_plaintext(self):
        server = start_mpcd("--backend=cpu", "--threads=1", "--auth_token_file=" + cert("token"))
        grpc, pb = process_test.STUBS.grpc, process_test.STUBS.mpcd_pb2
        channel = grpc.insecure_channel(server.target)
        try:
            stub = process_test.STUBS.mpcd_pb2_grpc.MpcServiceStub(channel)
            with self.assertRaises(grpc.RpcError) as error:
                stub.Solve(lqr_request(pb), timeout=10)
            self.assertEqual(error.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            response = stub.Solve(lqr_request(pb), timeout=30,
                                  metadata=(("authorization", "Bearer " + TOKEN),))
            self.assertEqual(len(response.solutions), 1)
            # The probe a kubelet sends (plaintext grpc.health.v1, no token) is answered.
            health = mpcctl("health", "--target", server.target)
            self.assertEqual((health.returncode, health.stdout), (0, "SERVING\n"), health.stderr)
        finally:
            channel.close()
            code, _, err = server.stop()
        self.assertEqual(code, 0, err)
        self.assertIn("WARNING --auth_token_file without --tls_cert", err)


class SecurityFlagsTest(unittest.TestCase):

    def run_mpcd(self, *flags):
        return subprocess.run([process_test.ARGS.mpcd, "--host=127.0.0.1", "--port=0",
                               "--metrics_port=-1", "--backend=cpu"] + list(flags),
                              capture_output=True, text=True, timeout=60)

    def test_bad_combinations_and_files_exit_2_naming_the_flag(self):
        server, key, ca = cert("server.pem"), cert("server.key"), cert("ca.pem")
        for flags, message in (
                (["--tls_key=" + key], "tls_key: needs --tls_cert"),
                (["--tls_cert=" + server], "tls_cert: needs --tls_key"),
                (["--tls_client_ca=" + ca], "tls_client_ca: needs --tls_cert"),
                (["--tls_cert=" + cert("nope.pem"), "--tls_key=" + key],
                 "tls_cert: cannot read " + cert("nope.pem")),
                (["--tls_cert=" + server, "--tls_key=" + cert("token")],
                 "tls_key: " + cert("token") + " holds no unencrypted PEM private key"),
                (["--tls_cert=" + server, "--tls_key=" + cert("client.key")],
                 "tls_key: " + cert("client.key") + " is not the key of the certificate"),
                (["--tls_cert=" + server, "--tls_key=" + key, "--tls_client_ca=" + key],
                 "tls_client_ca: " + key + " holds no PEM certificate"),
                (["--auth_token_file=" + cert("empty_token")], "auth_token_file: "),
                (["--auth_token_file=" + CERTS], "auth_token_file: cannot read")):
            with self.subTest(flags=flags):
                result = self.run_mpcd(*flags)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertEqual(result.stdout, "")
                self.assertIn(message, result.stderr)
                self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)

    def test_mpcctl_refuses_half_a_client_certificate(self):
        result = mpcctl("health", "--target=127.0.0.1:1", "--tls_cert=" + cert("client.pem"))
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr, "mpcctl: --tls_cert and --tls_key: give both or neither\n")
        result = mpcctl("health", "--target=127.0.0.1:1", "--tls_ca=" + cert("nope.pem"))
        self.assertEqual(result.returncode, 2)
        self.assertRegex(result.stderr, r"^mpcctl: --tls_ca: cannot read ")


def main():
    global CERTS
    parser = argparse.ArgumentParser()
    for name in ("--mpcd", "--mpcctl", "--proto-dir", "--grpc-proto-dir", "--protoc",
                 "--grpc-python-plugin", "--examples"):
        parser.add_argument(name, required=True)
    process_test.ARGS, rest = parser.parse_known_args()
    stub_dir = tempfile.mkdtemp(prefix="mpcd_stubs_")
    CERTS = tempfile.mkdtemp(prefix="mpcd_certs_")
    try:
        subprocess.run([MAKE_CERTS, CERTS], check=True)
        for name, contents in (("token", TOKEN + "\n"), ("wrong_token", "not-" + TOKEN + "\n"),
                               ("empty_token", "\n")):
            with open(cert(name), "w") as f:
                f.write(contents)
        process_test.STUBS = process_test.generate_stubs(stub_dir)
        unittest.main(argv=[sys.argv[0]] + rest)
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)
        shutil.rmtree(CERTS, ignore_errors=True)


if __name__ == "__main__":
    main()
