#!/usr/bin/python3
"""The tutorial (docs/tutorial.md) as it is written: every ```python block of the page is part of
examples/tutorial.py, and that script runs against a real mpcd with --check (its own assertions:
the plan converges within the torque limit, the closed loop ends upright, the gradients are finite
and not zero, the learning loop cuts the loss 100x and finds the mass and length within 5%) and
writes both plots. The notebook version (examples/tutorial.ipynb) is what
examples/tutorial_notebook.py makes of the script, and runs headless (jupyter nbconvert --execute)
to the same checks.

Usage: tutorial_test.py --mpcd build/bin/mpcd --package-dir client/python --stubs-dir build/python
         --source-dir .
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import Mpcd  # noqa: E402

ARGS = None


class TutorialTest(unittest.TestCase):

    def test_page_blocks_are_the_script(self):
        with open(os.path.join(ARGS.source_dir, "docs", "tutorial.md")) as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.DOTALL)
        with open(os.path.join(ARGS.source_dir, "examples", "tutorial.py")) as f:
            script = f.read()
        self.assertEqual(len(blocks), 4)
        for block in blocks:
            self.assertIn(textwrap.indent(block, "    ", lambda line: line.strip() != ""), script)

    def run_tutorial(self, run):
        """Starts mpcd, calls run(target, out, env) (env: the package on PYTHONPATH), which returns
        what the tutorial printed; checks that it passed its own checks and wrote both plots."""
        server = Mpcd(ARGS.mpcd, "--backend=cpu")
        out = tempfile.mkdtemp(prefix="mpcd_tutorial_")
        try:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([ARGS.package_dir, ARGS.stubs_dir]))
            self.assertIn("tutorial: all checks passed", run(server.target, out, env))
            for name in ("closed_loop.png", "learning.png"):
                with open(os.path.join(out, name), "rb") as f:
                    self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        finally:
            shutil.rmtree(out, ignore_errors=True)
            code, _, err = server.stop()
            self.assertEqual(code, 0, err)

    def test_script_runs_and_checks_itself(self):
        def run(target, out, env):
            result = subprocess.run(
                ["/usr/bin/python3", os.path.join(ARGS.source_dir, "examples", "tutorial.py"),
                 "--target=" + target, "--out=" + out, "--check"],
                capture_output=True, text=True, timeout=600, env=env)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            return result.stdout
        self.run_tutorial(run)

    def test_notebook_is_the_script_and_runs_headless(self):
        # The committed notebook is what examples/tutorial_notebook.py makes of the script.
        made = subprocess.run(["/usr/bin/python3", os.path.join(ARGS.source_dir, "examples",
                                                                "tutorial_notebook.py")],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(made.returncode, 0, made.stderr)
        with open(os.path.join(ARGS.source_dir, "examples", "tutorial.ipynb")) as f:
            self.assertEqual(f.read(), made.stdout,
                             "examples/tutorial.ipynb is stale: regenerate it with "
                             "examples/tutorial_notebook.py")

        def run(target, out, env):
            env = dict(env, MPCD_TARGET=target, MPCD_TUTORIAL_OUT=out)
            result = subprocess.run(
                ["jupyter-nbconvert", "--to", "notebook", "--execute",
                 "--ExecutePreprocessor.timeout=600", "--output-dir", out,
                 os.path.join(ARGS.source_dir, "examples", "tutorial.ipynb")],
                capture_output=True, text=True, timeout=900, env=env)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            with open(os.path.join(out, "tutorial.ipynb")) as f:
                executed = json.load(f)
            return "".join("".join(output.get("text", ""))
                           for cell in executed["cells"] if cell["cell_type"] == "code"
                           for output in cell["outputs"])
        self.run_tutorial(run)

def main():
    global ARGS
    parser = argparse.ArgumentParser()
    for flag in ("--mpcd", "--package-dir", "--stubs-dir", "--source-dir"):
        parser.add_argument(flag, required=True)
    ARGS, rest = parser.parse_known_args()
    for name in ("mpcd", "package_dir", "stubs_dir", "source_dir"):
        setattr(ARGS, name, os.path.abspath(getattr(ARGS, name)))
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
