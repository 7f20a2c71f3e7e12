"""What every Python test of a real mpcd process needs: start one on ports the kernel picks, stop
it, and read its /metrics. Imported by the process, robustness, security, client and scale-out
tests (each puts tests/testing on sys.path)."""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request

# How many times slower than the Release build the binaries under test run: `make check-sanitizers`
# sets it for its ASan+UBSan tree (docs/robustness.md §5). Work sized to keep mpcd busy for a wall
# time is divided by it; fixed loads and the waits for them are stretched by it.
SLOWDOWN = float(os.environ.get("MPCD_TEST_SLOWDOWN", "1"))
# Also set by `make check-sanitizers`: RSS then measures the sanitizer's allocator (its quarantine
# holds up to 256 MiB of freed memory by design), so RSS bounds are reported, not checked.
SANITIZED = os.environ.get("MPCD_TEST_SANITIZED") == "1"

# "serving on BOUND (backend B, metrics URL, dial TARGET)": BOUND is what the listener is bound to
# (0.0.0.0:P = every interface), TARGET an address to dial from this machine. Older builds printed
# only the target, in BOUND's place: still read, for the before-and-after runs of
# docs/robustness.md §7.
STARTUP_LINE = re.compile(
    r"serving on ([\d.]+:\d+) \(backend (\w+), metrics (\S+?)(?:, dial ([\d.]+:\d+))?\)")


class Mpcd:
    """An mpcd process on ports the kernel picks (read from its first line): `target` is its
    gRPC address, `backend` the backend it chose and `metrics_url` its /metrics (or "off").
    Without `flagfile_lines` it listens on 127.0.0.1 with both ports picked by the kernel; with
    them, the flags come from a flagfile holding those lines (the way deploy/ runs it)."""

    def __init__(self, binary, *flags, flagfile_lines=None):
        self.tmp = tempfile.mkdtemp(prefix="mpcd_harness_")
        args = [binary]
        if flagfile_lines is None:
            args += ["--host=127.0.0.1", "--port=0", "--metrics_port=0"]
        else:
            path = self.tmp + "/mpcd.flags"
            with open(path, "w") as f:
                f.write("\n".join(flagfile_lines) + "\n")
            args.append("--flagfile=" + path)
        self.process = subprocess.Popen(args + list(flags), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = STARTUP_LINE.search(line)
        if match is None:
            self.process.kill()
            _, err = self.process.communicate()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise AssertionError("mpcd did not start: %r %r" % (line, err))
        self.bound, self.backend, self.metrics_url, self.target = match.groups()
        self.target = self.target or self.bound
        # mpcd logs every refused request on stderr: read it as it comes, or a full pipe would
        # block mpcd's writes (and so its calls) under heavy invalid traffic.
        self._stderr_lines = []
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read_stderr(self):
        for line in self.process.stderr:
            self._stderr_lines.append(line)

    def stderr_lines(self):
        """The lines mpcd has written to stderr so far."""
        return list(self._stderr_lines)

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=10)
        self._stderr_reader.join(timeout=10)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Sends `sig` (unless it has already exited) and returns (exit code, stdout, stderr);
        a process that does not stop within `timeout` seconds is killed and fails the test."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        # stdout holds a few lines only; stderr is read by _read_stderr (communicate would race it).
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self._stderr_reader.join(timeout=10)
            raise AssertionError("mpcd did not stop within %s s: %s" %
                                 (timeout, "".join(self._stderr_lines)))
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        out = self.process.stdout.read()
        self._stderr_reader.join(timeout=10)
        self.process.stdout.close()
        self.process.stderr.close()
        return self.process.returncode, out, "".join(self._stderr_lines)


def module_server(module, *flags):
    """setUpModule and tearDownModule for a test module run against one mpcd: the first starts
    Mpcd(ARGS.mpcd, *flags) as the module's SERVER (ARGS and SERVER are globals of `module`, the
    module's globals()), the second stops it and fails unless it exited with 0. Usage:
    setUpModule, tearDownModule = module_server(globals(), "--backend=cpu")."""
    def set_up():
        module["SERVER"] = Mpcd(module["ARGS"].mpcd, *flags)

    def tear_down():
        code, _, err = module["SERVER"].stop()
        assert code == 0, err

    return set_up, tear_down


def class_client(module, timeout):
    """setUpClass and tearDownClass for a TestCase of a module_server module: the first opens
    `client`, an mpcd.Client on the module's SERVER with `timeout` seconds a call (mpcd is the
    module's global of that name), the second closes it. Usage in the class body:
    setUpClass, tearDownClass = class_client(globals(), timeout=60)."""
    def set_up(cls):
        cls.client = module["mpcd"].Client(module["SERVER"].target, timeout=timeout)

    def tear_down(cls):
        cls.client.close()

    return classmethod(set_up), classmethod(tear_down)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(metrics_url, timeout=30):
    with urllib.request.urlopen(metrics_url, timeout=timeout) as response:
        return response.read().decode()


def sample(text, name, **labels):
    """The value of sample `name` whose labels include `labels` in Prometheus text `text` (0 when
    absent: a labelled counter appears only once it has counted something)."""
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match is None or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def client_test_args(*extra):
    """What a test of the Python client against a real mpcd takes: --mpcd, --package-dir,
    --stubs-dir and each of `extra` (required options, e.g. "--examples-dir"). Puts the package and
    the stubs first on sys.path; returns (the options, the argv left for unittest.main)."""
    parser = argparse.ArgumentParser()
    for name in ("--mpcd", "--package-dir", "--stubs-dir") + extra:
        parser.add_argument(name, required=True)
    args, rest = parser.parse_known_args()
    sys.path[:0] = [args.package_dir, args.stubs_dir]
    return args, [sys.argv[0]] + rest
