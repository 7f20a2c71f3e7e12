#!/usr/bin/python3
"""The README's and the docs' commands, copied from the files themselves and run as written.

- The bad-input example: the `$ build/bin/mpcctl ...` line and the one line of output printed
  under it in README.md are run and compared (exit code 2, that exact line on stderr).
- The TLS block of README.md ("TLS and authentication"), run verbatim with bash: openssl makes
  the certificates, mpcd serves TLS + mutual TLS + a token on port 50443, mpcctl checks health and
  solves, SIGTERM stops mpcd (exit 0).
- The docs stand alone: no file under docs/ nor README.md points at material a reader of the
  repository does not have (DESIGN.md, ../shared/, "issue N").

Each command runs in a scratch folder where `build/bin` is the build under test and `examples` the
repository's examples, so paths read exactly as in the README.

- LICENSE is the Apache License 2.0 and CHANGELOG.md's newest version is CMake's project version.

Usage: readme_test.py --source-dir . --bin-dir build/bin --project-version 0.2.0 [unittest args]
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None


def readme():
    with open(os.path.join(ARGS.source_dir, "README.md")) as f:
        return f.read()


def fenced_block(text, heading, language="sh"):
    """The first ```language block after `heading` (a line of the file)."""
    start = text.index("\n" + heading + "\n")
    begin = text.index("```" + language + "\n", start) + len(language) + 4
    return text[begin:text.index("```", begin)]


class Workspace:
    """A scratch folder holding build/bin -> the binaries under test and examples -> examples/."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="mpcd_readme_")
        os.makedirs(os.path.join(self.path, "build"))
        os.symlink(os.path.abspath(ARGS.bin_dir), os.path.join(self.path, "build", "bin"))
        os.symlink(os.path.join(os.path.abspath(ARGS.source_dir), "examples"),
                   os.path.join(self.path, "examples"))
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ReadmeTest(unittest.TestCase):

    def test_sampling_example(self):
        """The CEM->iLQR block, verbatim: the chain converges, plain iLQR does not, as told."""
        block = fenced_block(readme(), "## Sampling-based MPC: CEM, MPPI and CEM→iLQR")
        commands = [line for line in block.splitlines() if line.strip()]
        self.assertEqual(len(commands), 2)
        outputs = []
        with Workspace() as cwd:
            for command in commands:
                result = subprocess.run(command, shell=True, cwd=cwd, capture_output=True,
                                        text=True, timeout=120)
                self.assertEqual(result.returncode, 0, result.stderr)
                outputs.append(result.stdout.splitlines()[1].split())
        (_, chained_status, _, chained_cost, _), (_, plain_status, _, plain_cost, _) = outputs
        self.assertEqual(chained_status, "CONVERGED")
        self.assertEqual(plain_status, "MAX_ITERATIONS")
        self.assertAlmostEqual(float(chained_cost), 76.1, places=1)
        self.assertAlmostEqual(float(plain_cost), 97.8, places=1)

    def test_bad_input_example(self):
        match = re.search(r"^\$ (build/bin/mpcctl [^\n]*)\n([^\n]*)\n```", readme(), re.MULTILINE)
        self.assertIsNotNone(match, "README.md has no `$ build/bin/mpcctl ...` example")
        command, expected = match.groups()
        self.assertIn("examples/bad.json", command)
        with Workspace() as cwd:
            result = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True,
                                    timeout=120)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertEqual(result.stderr, expected + "\n")

    def test_tls_block_runs_verbatim(self):
        block = fenced_block(readme(), "## TLS and authentication")
        self.assertIn("openssl req", block)
        port = int(re.search(r"--port=(\d+)", block).group(1))
        self.assertNotEqual(port, 50051)  # `make run`'s port
        # Another checkout's test may hold the port for a few seconds: wait for it, then run.
        deadline = time.monotonic() + 120
        while not port_free(port) and time.monotonic() < deadline:
            time.sleep(1)
        with Workspace() as cwd:
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=cwd,
                                    capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        # The solve's answer: a SolveResponse with a solution.
        self.assertIn('"solutions"', result.stdout)
        self.assertIn("security: mutual TLS + bearer token", result.stdout)
        self.assertIn("every call in flight was answered", result.stdout)


class DocsStandAloneTest(unittest.TestCase):

    FORBIDDEN = re.compile(r"DESIGN(\.md| §)|\.\./shared|TOOLCHAIN|\bissues? \d+\b")

    def test_no_reference_outside_the_repository(self):
        files = [os.path.join(ARGS.source_dir, "README.md")]
        docs = os.path.join(ARGS.source_dir, "docs")
        files += [os.path.join(docs, f) for f in sorted(os.listdir(docs)) if f.endswith(".md")]
        found = []
        for path in files:
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if self.FORBIDDEN.search(line):
                        found.append("%s:%d: %s" % (os.path.relpath(path, ARGS.source_dir),
                                                    number, line.strip()))
        self.assertEqual(found, [])


class ReleaseFilesTest(unittest.TestCase):

    def read(self, name):
        with open(os.path.join(ARGS.source_dir, name)) as f:
            return f.read()

    def test_license_is_apache_2(self):
        text = self.read("LICENSE")
        self.assertIn("Apache License", text)
        self.assertIn("Version 2.0, January 2004", text)
        self.assertIn("END OF TERMS AND CONDITIONS", text)
        self.assertIn("[LICENSE](LICENSE)", readme())

    def test_changelog_names_the_cmake_version_first(self):
        versions = re.findall(r"^## (\d+\.\d+\.\d+) - \d{4}-\d{2}-\d{2}$", self.read("CHANGELOG.md"),
                              re.MULTILINE)
        self.assertTrue(versions, "CHANGELOG.md has no released version")
        self.assertEqual(versions[0], ARGS.project_version)
        self.assertEqual(len(versions), len(set(versions)))
        result = subprocess.run([os.path.join(ARGS.bin_dir, "mpcd"), "--version"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith("mpcd %s " % versions[0]), result.stdout)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--project-version", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
