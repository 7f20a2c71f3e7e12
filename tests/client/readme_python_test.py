#!/usr/bin/python3
"""The README's Python examples as they are written: every ```python block of README.md, in
order, runs as one script against a real mpcd (the blocks build on each other). The only change
is the server's address: the README's "localhost:50051" becomes the test server's.

Usage: readme_python_test.py --mpcd build/bin/mpcd --package-dir client/python
         --stubs-dir build/python --source-dir . [unittest args]
"""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import Mpcd, client_test_args  # noqa: E402

ARGS = None


class ReadmePythonTest(unittest.TestCase):

    def test_the_blocks_run_as_one_script(self):
        with open(os.path.join(ARGS.source_dir, "README.md")) as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.DOTALL)
        self.assertGreaterEqual(len(blocks), 3)
        script = "\n".join(blocks)
        self.assertIn('"localhost:50051"', script)
        server = Mpcd(ARGS.mpcd, "--backend=cpu")
        try:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([ARGS.package_dir, ARGS.stubs_dir]))
            result = subprocess.run(
                ["/usr/bin/python3", "-c",
                 script.replace('"localhost:50051"', '"%s"' % server.target)],
                capture_output=True, text=True, timeout=300, env=env)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("SERVING", result.stdout)
            self.assertIn("CONVERGED", result.stdout)
        finally:
            code, _, err = server.stop()
            self.assertEqual(code, 0, err)


def main():
    global ARGS
    ARGS, argv = client_test_args("--source-dir")
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
