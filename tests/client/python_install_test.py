#!/usr/bin/python3
"""client/python installs as a package: `pip install --no-build-isolation --no-index` (offline)
into a fresh venv made with --system-site-packages from /usr/bin/python3; from outside the
repository, with no PYTHONPATH, the installed package (stubs included) imports, solves against a
real mpcd, and the wire tests (tests/client/python_wire_test.py, the quick classes) pass with it.

The package is built from a copy of client/python (pip builds in the source tree; the checkout
stays clean) with MPCD_PROTO_DIR pointing at the repository's proto/.

Usage: python_install_test.py --mpcd build/bin/mpcd --package-dir client/python
         --proto-dir proto [unittest args]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import Mpcd  # noqa: E402

ARGS = None
HERE = os.path.dirname(os.path.abspath(__file__))


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mpcd_install_test_")
        cls.server = Mpcd(ARGS.mpcd, "--backend=cpu", "--threads=2")

    @classmethod
    def tearDownClass(cls):
        code, _, err = cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, err

    def run_checked(self, args, **kwargs):
        result = subprocess.run(args, capture_output=True, text=True, **kwargs)
        self.assertEqual(result.returncode, 0,
                         "%s failed:\n%s\n%s" % (" ".join(args), result.stdout, result.stderr))
        return result

    def test_installs_offline_into_a_fresh_venv_and_solves(self):
        venv = os.path.join(self.tmp, "venv")
        self.run_checked(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
        python = os.path.join(venv, "bin", "python")
        source = os.path.join(self.tmp, "src", "python")
        shutil.copytree(ARGS.package_dir, source,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["MPCD_PROTO_DIR"] = os.path.abspath(ARGS.proto_dir)
        env["PIP_NO_INPUT"] = "1"
        self.run_checked([python, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                          "--disable-pip-version-check", source], env=env, cwd=self.tmp)

        # From outside the repository with a clean environment: the venv's package, its stubs.
        del env["MPCD_PROTO_DIR"]
        script = textwrap.dedent("""
            import os, sys
            import numpy as np
            import mpcd, mpcd.torch
            from mpcd.v1 import mpcd_pb2
            venv = sys.argv[2]
            for module in (mpcd, mpcd_pb2):
                assert os.path.realpath(module.__file__).startswith(os.path.realpath(venv)), \\
                    module.__file__
            assert "raw_data" in mpcd_pb2.Tensor.DESCRIPTOR.fields_by_name
            client = mpcd.Client(sys.argv[1], timeout=30)
            assert client.health() == "SERVING"
            result = client.solve(20, [mpcd.Problem(
                x_init=[1.0, 0.0, 0.0], C=np.diag([1.0, 1.0, 0.1, 0.001]),
                c=[-1.0, 0.0, 0.0, 0.0], dynamics=mpcd.Model("pendulum"),
                u_lower=[-2.0], u_upper=[2.0])], options=dict(max_iterations=50))
            solution = result.solutions[0]
            assert solution.x.shape == (20, 3) and solution.u.shape == (20, 1), solution
            assert solution.status == "CONVERGED", solution.status
            print("solved", solution.cost)
            """)
        result = self.run_checked([python, "-c", script, self.server.target, venv], env=env,
                                  cwd=self.tmp)
        self.assertIn("solved", result.stdout)

        # The package's own wire tests with the installed package (no --package-dir/--stubs-dir).
        result = self.run_checked(
            [python, os.path.join(HERE, "python_wire_test.py"), "--mpcd", ARGS.mpcd,
             "WireEncodingTest", "TemplateTest", "BatchedLayoutTest",
             "TorchTransportTest.test_float32_in_float32_out",
             "TorchTransportTest.test_one_channel_per_target_shared_across_threads"],
            env=env, cwd=self.tmp)
        self.assertIn("OK", result.stderr)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", required=True)
    parser.add_argument("--package-dir", required=True)
    parser.add_argument("--proto-dir", required=True)
    ARGS, rest = parser.parse_known_args()
    ARGS.mpcd = os.path.abspath(ARGS.mpcd)
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
