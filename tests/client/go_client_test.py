#!/usr/bin/python3
"""A Go client from the proto alone, against a real mpcd.

client/go/main.go is built offline in GOPATH mode against Debian's Go packages
(/usr/share/gocode: golang-google-grpc-dev, golang-google-protobuf-dev), with stubs generated at
test time by protoc-gen-go and protoc-gen-go-grpc from proto/mpcd/v1/mpcd.proto (its go_package
option places them), and run with --check: health SERVING, the models listed, a pendulum swing-up
CONVERGED with x of shape (T, n), and a malformed request refused INVALID_ARGUMENT with a
google.rpc.BadRequest naming problems[0].x_init.

Usage: go_client_test.py --mpcd build/bin/mpcd --protoc protoc --source-dir . [unittest args]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import Mpcd  # noqa: E402

ARGS = None


class GoClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for tool in ("go", "protoc-gen-go", "protoc-gen-go-grpc"):
            if shutil.which(tool) is None:
                raise AssertionError("%s is not installed (scripts/install_deps.sh installs it)"
                                     % tool)
        cls.gopath = tempfile.mkdtemp(prefix="mpcd_gopath_")
        source = os.path.join(cls.gopath, "src")
        os.makedirs(source)
        subprocess.run([ARGS.protoc, "-I", os.path.join(ARGS.source_dir, "proto"),
                        "--go_out=" + source, "--go-grpc_out=" + source, "mpcd/v1/mpcd.proto"],
                       check=True)
        shutil.copytree(os.path.join(ARGS.source_dir, "client", "go"),
                        os.path.join(source, "mpcdclient"))
        cls.binary = os.path.join(cls.gopath, "mpcd-go")
        env = dict(os.environ, GO111MODULE="off", GOPROXY="off", GOFLAGS="",
                   GOPATH=cls.gopath + ":/usr/share/gocode",
                   GOCACHE=os.path.join(cls.gopath, "cache"))
        build = subprocess.run(["go", "build", "-o", cls.binary, "mpcdclient"], env=env,
                               capture_output=True, text=True, timeout=900)
        if build.returncode != 0:
            shutil.rmtree(cls.gopath, ignore_errors=True)
            raise AssertionError("go build failed:\n" + build.stdout + build.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.gopath, ignore_errors=True)

    def test_client_checks_pass(self):
        server = Mpcd(ARGS.mpcd, "--backend=cpu")
        try:
            run = subprocess.run([self.binary, "--target=" + server.target, "--check"],
                                 capture_output=True, text=True, timeout=120)
        finally:
            code, _, err = server.stop()
        sys.stdout.write(run.stdout)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("health: SERVING", run.stdout)
        self.assertIn("bad request: InvalidArgument: problems[0].x_init", run.stdout)
        self.assertIn("go client: all checks passed", run.stdout)
        self.assertEqual(code, 0, err)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    for flag in ("--mpcd", "--protoc", "--source-dir"):
        parser.add_argument(flag, required=True)
    ARGS, rest = parser.parse_known_args()
    for name in ("mpcd", "source_dir"):
        setattr(ARGS, name, os.path.abspath(getattr(ARGS, name)))
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
