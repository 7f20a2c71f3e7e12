#!/usr/bin/python3
"""Runs the real mpcctl binary on the example requests and on bad input.

Contract under test: a valid request prints a SolveResponse as JSON on stdout and exits 0; bad input
exits 2 with exactly one line "mpcctl: <message>" on stderr naming the field, and never crashes.

Usage: mpcctl_test.py --mpcctl build/bin/mpcctl --examples examples [unittest args]
"""

import argparse
import copy
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import unittest

MPCCTL = ""
EXAMPLES = ""


def solve_examples():
    """The example SolveRequests (examples/*_backward.json hold BackwardRequests and
    examples/*_control.json the first message of a Control session; examples/bad.json is the
    README's refused request)."""
    return sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".json")
                  and not f.endswith(("_backward.json", "_control.json")) and f != "bad.json")


def backward_examples():
    return sorted(f for f in os.listdir(EXAMPLES) if f.endswith("_backward.json"))
KNOWN_STATUSES = {"CONVERGED", "MAX_ITERATIONS", "LINESEARCH_FAILED", "NOT_FINITE"}


def run(args, stdin=None):
    return subprocess.run([MPCCTL] + args, input=stdin, capture_output=True, text=True,
                          timeout=120)


def load_example(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        return json.load(f)


def dims(problem):
    """(n, m) of a request problem."""
    model = problem["dynamics"].get("model")
    if model is not None:
        return {"pendulum": (3, 1), "cartpole": (5, 1)}[model["name"]]
    n = problem["x_init"]["shape"][0]
    return n, problem["dynamics"]["linear"]["transition"]["shape"][-1] - n


class ExamplesTest(unittest.TestCase):

    def check_response(self, request, stdout):
        response = json.loads(stdout)
        T = request["horizon"]
        self.assertEqual(len(response["solutions"]), len(request["problems"]))
        self.assertEqual(response["batch_size"], len(request["problems"]))
        self.assertEqual(response["backend"], "cpu")
        self.assertGreaterEqual(response["timing"]["solve_seconds"], 0)
        for problem, solution in zip(request["problems"], response["solutions"]):
            n, m = dims(problem)
            self.assertEqual(solution["x"]["shape"], [T, n])
            self.assertEqual(len(solution["x"]["data"]), T * n)
            self.assertEqual(solution["u"]["shape"], [T, m])
            self.assertEqual(len(solution["u"]["data"]), T * m)
            # x[0] = x_init exactly.
            self.assertEqual(solution["x"]["data"][:n], problem["x_init"]["data"])
            self.assertIn(solution["status"], KNOWN_STATUSES)
            self.assertGreaterEqual(solution["iterations"], 1)
            self.assertIsInstance(solution["cost"], (int, float))
            if request.get("return_gains"):
                self.assertEqual(solution["feedback"]["shape"], [T, m, n])
                self.assertEqual(solution["feedforward"]["shape"], [T, m])
            else:
                self.assertNotIn("feedback", solution)

    def test_every_example_solves(self):
        names = solve_examples()
        self.assertGreaterEqual(len(names), 3)
        for name in names:
            with self.subTest(example=name):
                result = run(["solve", "--local", "--request", os.path.join(EXAMPLES, name)])
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(result.stderr, "")
                self.check_response(load_example(name), result.stdout)

    def test_reads_stdin_and_lower_camel_case(self):
        request = load_example("lqr_box.json")
        text = json.dumps(request)
        for snake, camel in [("x_init", "xInit"), ("u_lower", "uLower"), ("u_upper", "uUpper"),
                             ("return_gains", "returnGains"), ("max_iterations", "maxIterations")]:
            text = text.replace('"%s"' % snake, '"%s"' % camel)
        result = run(["solve", "--local", "--threads=1", "--request=-"], stdin=text)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.check_response(request, result.stdout)

    def test_models(self):
        result = run(["models", "--local"])
        self.assertEqual(result.returncode, 0, result.stderr)
        models = {m["name"]: m for m in json.loads(result.stdout)["models"]}
        self.assertEqual(models["cartpole"]["state_dim"], 5)
        self.assertEqual(models["pendulum"]["param_names"], ["g", "m", "l"])
        self.assertEqual(models["pendulum"]["default_dt"], 0.05)

    def test_demo(self):
        result = run(["demo"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("cartpole swing-up", result.stdout)


class BadInputTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, text, name="request.json"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_fails(self, args, message, stdin=None, exact=True):
        result = run(args, stdin=stdin)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(result.stderr.endswith("\n"))
        if exact:
            self.assertEqual(lines[0], "mpcctl: " + message)
        else:
            self.assertTrue(lines[0].startswith("mpcctl: "), lines[0])
            self.assertIn(message, lines[0])

    def assert_request_fails(self, mutate, message, exact=True):
        request = copy.deepcopy(load_example("cartpole_swingup.json"))
        mutate(request)
        path = self.write(json.dumps(request))
        self.assert_fails(["solve", "--local", "--request", path], message, exact=exact)

    def test_wrong_shape(self):
        def mutate(r):
            r["problems"][1]["x_init"] = {"shape": [4], "data": [0, 0, 1, 0]}
        self.assert_request_fails(mutate, "problems[1].x_init: expected shape (5), got (4)")

    def test_data_length(self):
        def mutate(r):
            r["problems"][0]["cost"]["linear"]["data"].pop()
        self.assert_request_fails(mutate,
                                  "problems[0].cost.linear: shape (6) needs 6 values, got 5")

    def test_nan(self):
        def mutate(r):
            r["problems"][0]["cost"]["linear"]["data"][2] = "NaN"
        self.assert_request_fails(mutate, "problems[0].cost.linear: not finite at [2] (nan)")

    def test_infinity(self):
        def mutate(r):
            r["problems"][1]["x_init"]["data"][4] = "-Infinity"
        self.assert_request_fails(mutate, "problems[1].x_init: not finite at [4] (-inf)")

    def test_lower_above_upper(self):
        def mutate(r):
            r["problems"][0]["u_lower"]["data"] = [200]
        self.assert_request_fails(mutate,
                                  "problems[0].u_lower: must be <= u_upper at [0] (200 > 100)")

    def test_one_bound(self):
        def mutate(r):
            del r["problems"][1]["u_upper"]
        self.assert_request_fails(
            mutate,
            "problems[1].u_upper: required when u_lower is given (give both bounds or neither)")

    def test_unknown_model(self):
        def mutate(r):
            r["problems"][0]["dynamics"]["model"]["name"] = "foo"
        self.assert_request_fails(
            mutate,
            'problems[0].dynamics.model.name: unknown model "foo" (known: pendulum, cartpole, '
            'double_integrator, unicycle, kinematic_bicycle, quadrotor, cartpole_continuous)')

    def test_missing_dynamics(self):
        def mutate(r):
            del r["problems"][1]["dynamics"]
        self.assert_request_fails(
            mutate,
            "problems[1].dynamics: required (set dynamics.linear, dynamics.model or dynamics.graph)")

    def test_horizon_zero(self):
        def mutate(r):
            r["horizon"] = 0
        self.assert_request_fails(mutate, "horizon: must be >= 1, got 0")

    def test_horizon_missing(self):
        def mutate(r):
            del r["horizon"]
        self.assert_request_fails(mutate, "horizon: must be >= 1, got 0")

    def test_no_problems(self):
        def mutate(r):
            r["problems"] = []
        self.assert_request_fails(mutate, "problems: must not be empty")

    def test_bad_option(self):
        def mutate(r):
            r["options"]["linesearch_decay"] = 0
        self.assert_request_fails(mutate, "options.linesearch_decay: must be in (0, 1], got 0")

    def test_negative_dt(self):
        def mutate(r):
            r["problems"][0]["dynamics"]["model"]["dt"] = -0.05
        self.assert_request_fails(
            mutate,
            "problems[0].dynamics.model.dt: must be > 0 (or 0 for the model's default), got -0.05")

    def test_unknown_field(self):
        def mutate(r):
            r["problems"][0]["x_inital"] = r["problems"][0].pop("x_init")
        self.assert_request_fails(mutate, "not a valid SolveRequest JSON", exact=False)

    def test_negative_horizon(self):
        def mutate(r):
            r["horizon"] = -3
        self.assert_request_fails(mutate, "not a valid SolveRequest JSON", exact=False)

    def test_malformed_json(self):
        path = self.write('{"horizon": 25, "problems": [')
        self.assert_fails(["solve", "--local", "--request", path],
                          path + ": not a valid SolveRequest JSON: ", exact=False)

    def test_malformed_json_on_stdin(self):
        self.assert_fails(["solve", "--local", "--request=-"],
                          "stdin: not a valid SolveRequest JSON: ", stdin="{nope\n\n}", exact=False)

    def test_empty_file(self):
        path = self.write("")
        self.assert_fails(["solve", "--local", "--request", path], "not a valid SolveRequest JSON",
                          exact=False)

    def test_missing_file(self):
        path = os.path.join(self.tmp.name, "absent.json")
        self.assert_fails(["solve", "--local", "--request", path],
                          "cannot read %s: No such file or directory" % path)

    def test_directory(self):
        self.assert_fails(["solve", "--local", "--request", self.tmp.name],
                          "cannot read %s: is a directory" % self.tmp.name)

    def test_usage_errors(self):
        example = os.path.join(EXAMPLES, "lqr_box.json")
        self.assert_fails([], "missing command", exact=False)
        self.assert_fails(["frobnicate"], 'unknown command "frobnicate"', exact=False)
        self.assert_fails(["solve", "--local"],
                          "solve needs --request=FILE.json (or --request=- for stdin)")
        self.assert_fails(["solve", "--request", example],
                          "solve needs --local (solve in this process) or --target=HOST:PORT")
        self.assert_fails(["solve", "--local", "--target=localhost:1", "--request", example],
                          "--local and --target exclude each other")
        # (--target against real servers: tests/server/mpcd_process_test.py)
        self.assert_fails(["models", "--target=localhost:1", "--service_config={bad"],
                          "--service_config: INVALID_ARGUMENT: JSON parsing failed", exact=False)
        self.assert_fails(["solve", "--local", "--threads=-1", "--request", example],
                          "--threads: must be >= 0, got -1")
        self.assert_fails(["solve", "extra", "--local", "--request", example],
                          'unexpected argument "extra"', exact=False)


class BackwardTest(unittest.TestCase):
    def test_every_backward_example_runs(self):
        names = backward_examples()
        self.assertGreaterEqual(len(names), 1)
        for name in names:
            with self.subTest(example=name):
                result = run(["backward", "--local", "--request", os.path.join(EXAMPLES, name)])
                self.assertEqual(result.returncode, 0, result.stderr)
                response = json.loads(result.stdout)
                request = load_example(name)
                self.assertEqual(len(response["gradients"]), len(request["problems"]))
                for gradient in response["gradients"]:
                    self.assertEqual(gradient["x_init"]["shape"], [5])

    """mpcctl backward --local: a BackwardRequest built from each example's solve."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def backward_request(self, name, mode="DEFAULT"):
        request = load_example(name)
        result = run(["solve", "--local", "--request", os.path.join(EXAMPLES, name)])
        self.assertEqual(result.returncode, 0, result.stderr)
        solutions = json.loads(result.stdout)["solutions"]
        cotangents = []
        for s in solutions:
            # dL/dx = 1 everywhere, dL/du absent (zero).
            cotangents.append({"x": {"shape": s["x"]["shape"], "data": [1.0] * len(s["x"]["data"])}})
        return {"horizon": request["horizon"], "problems": request["problems"],
                "solutions": [{"x": s["x"], "u": s["u"]} for s in solutions],
                "cotangents": cotangents, "mode": mode}

    def write(self, obj):
        path = os.path.join(self.tmp.name, "backward.json")
        with open(path, "w") as f:
            f.write(json.dumps(obj) if not isinstance(obj, str) else obj)
        return path

    def test_gradients_mirror_every_example_request(self):
        names = solve_examples()
        for name in names:
            for mode in ("DEFAULT", "EXACT", "FULL_CHAIN"):
                with self.subTest(example=name, mode=mode):
                    request = self.backward_request(name, mode)
                    result = run(["backward", "--local", "--request", self.write(request)])
                    self.assertEqual(result.returncode, 0, result.stderr)
                    self.assertEqual(result.stderr, "")
                    response = json.loads(result.stdout)
                    self.assertEqual(response["backend"], "cpu")
                    self.assertEqual(response["batch_size"], len(request["problems"]))
                    self.assertEqual(len(response["gradients"]), len(request["problems"]))
                    self.assertEqual(len(response["diagnostics"]), len(request["problems"]))
                    for problem, grad, diag in zip(request["problems"], response["gradients"],
                                                   response["diagnostics"]):
                        n, m = dims(problem)
                        self.assertEqual(grad["x_init"]["shape"], [n])
                        if "tracking" in problem:  # its goals' and weights' gradients instead
                            self.assertNotIn("cost", grad)
                            for field, given in problem["tracking"].items():
                                self.assertEqual(grad["tracking"][field]["shape"],
                                                 given["shape"])
                        else:
                            self.assertEqual(grad["cost"]["quadratic"]["shape"],
                                             problem["cost"]["quadratic"]["shape"])
                        model = problem["dynamics"].get("model")
                        if model is not None:
                            self.assertEqual(grad["dynamics"]["model"]["name"], model["name"])
                            self.assertEqual(len(grad["dynamics"]["model"]["params"]),
                                             {"pendulum": 3, "cartpole": 4}[model["name"]])
                        else:
                            self.assertEqual(grad["dynamics"]["linear"]["transition"]["shape"],
                                             problem["dynamics"]["linear"]["transition"]["shape"])
                        self.assertIn(diag["status"], {"GRADIENT_OK", "GRADIENT_ILL_CONDITIONED",
                                                       "GRADIENT_REGULARIZED"})
                        for v in grad["x_init"]["data"]:
                            self.assertTrue(math.isfinite(v))

    def test_linear_gradient_matches_finite_differences(self):
        # L = sum(x): dL/dx_init from backward against central differences of two solves.
        request = self.backward_request("lqr_box.json")
        result = run(["backward", "--local", "--request", self.write(request)])
        self.assertEqual(result.returncode, 0, result.stderr)
        grad = json.loads(result.stdout)["gradients"][0]["x_init"]["data"]
        solve = load_example("lqr_box.json")
        solve["problems"] = solve["problems"][:1]
        h = 1e-5
        for i in range(len(grad)):
            values = []
            for sign in (1, -1):
                perturbed = copy.deepcopy(solve)
                perturbed["problems"][0]["x_init"]["data"][i] += sign * h
                out = run(["solve", "--local", "--request=-"], stdin=json.dumps(perturbed))
                self.assertEqual(out.returncode, 0, out.stderr)
                values.append(sum(json.loads(out.stdout)["solutions"][0]["x"]["data"]))
            fd = (values[0] - values[1]) / (2 * h)
            self.assertAlmostEqual(fd, grad[i], delta=1e-5 * max(1.0, abs(grad[i])))

    def assert_backward_fails(self, mutate, message, exact=True):
        request = self.backward_request("cartpole_swingup.json")
        mutate(request)
        result = run(["backward", "--local", "--request", self.write(request)])
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        if exact:
            self.assertEqual(lines[0], "mpcctl: " + message)
        else:
            self.assertIn(message, lines[0])

    def test_bad_input(self):
        def short_cotangent(r):
            r["cotangents"][1]["u"] = {"shape": [24, 1], "data": [0.0] * 24}
        self.assert_backward_fails(short_cotangent,
                                   "cotangents[1].u: expected shape (25,1), got (24,1)")

        def missing_solution(r):
            r["solutions"].pop()
        self.assert_backward_fails(missing_solution,
                                   "solutions: expected 2 (one per problem), got 1")

        def nan_solution(r):
            r["solutions"][0]["u"]["data"][3] = "NaN"
        self.assert_backward_fails(nan_solution, "solutions[0].u: not finite at [3,0] (nan)")

        def no_x(r):
            del r["solutions"][1]["x"]
        self.assert_backward_fails(no_x, "solutions[1].x: required, expected shape (25,5)")

        def bad_problem(r):
            r["problems"][0]["dynamics"]["model"]["name"] = "foo"
        self.assert_backward_fails(bad_problem, 'problems[0].dynamics.model.name: unknown model',
                                   exact=False)

        def bad_mode(r):
            r["mode"] = "SOMETIMES"
        self.assert_backward_fails(bad_mode, "not a valid BackwardRequest JSON", exact=False)

    def test_usage_errors(self):
        result = run(["backward", "--local"])
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr,
                         "mpcctl: backward needs --request=FILE.json (or --request=- for stdin)\n")
        result = run(["backward", "--local", "--request=-"], stdin="{nope")
        self.assertEqual(result.returncode, 2)
        self.assertIn("stdin: not a valid BackwardRequest JSON", result.stderr)
        self.assertEqual(len(result.stderr.splitlines()), 1)
        result = run(["backward", "--request", os.path.join(EXAMPLES, "lqr_box.json")])
        self.assertEqual(result.returncode, 2)
        self.assertIn("backward needs --local", result.stderr)


# Every flag mpcctl defines (client/mpcctl.cc), and a few each subcommand must list in its help.
ALL_FLAGS = {
    "local", "request", "target", "timeout", "tls", "tls_ca", "tls_cert", "tls_key",
    "tls_server_name", "auth_token_file", "service", "model", "horizon", "batch", "concurrency",
    "duration", "warmup", "iterations", "state_dim", "control_dim", "channels", "json", "steps",
    "round_robin", "retry", "service_config", "verify", "verify_tolerance", "rate",
    "max_in_flight", "threads", "output"}
COMMAND_FLAGS = {
    "solve": ({"request", "local", "threads", "target", "timeout", "tls_ca", "output"},
              {"model", "steps"}),
    "backward": ({"request", "local", "target"}, {"concurrency"}),
    "models": ({"local", "target"}, {"request"}),
    "health": ({"service", "target", "tls_ca"}, {"request", "local"}),
    "control": ({"request", "steps", "json", "target"}, {"local", "model"}),
    "bench": ({"model", "horizon", "batch", "concurrency", "rate", "duration", "verify",
               "target", "round_robin"}, {"local", "request"}),
    "demo": ({"threads"}, {"target", "request"}),
}


def listed_flags(help_text):
    """Flag name -> default as printed on the "  --name=default" lines of a help text."""
    return dict(re.findall(r"^  --(\w+)=(.*)$", help_text, re.MULTILINE))


class HelpTest(unittest.TestCase):

    def test_help_lists_every_flag_with_its_default(self):
        for argv in (["--help"], ["-h"], ["--helpshort"]):
            with self.subTest(argv=argv):
                result = run(argv)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn("usage: mpcctl solve", result.stdout)
                flags = listed_flags(result.stdout)
                self.assertEqual(set(flags), ALL_FLAGS)
                self.assertEqual(flags["timeout"], "60")
                self.assertEqual(flags["model"], '"cartpole"')
                self.assertEqual(flags["horizon"], "25")
                self.assertEqual(flags["local"], "false")
                self.assertEqual(flags["target"], '""')

    def test_each_subcommand_lists_its_flags(self):
        covered = set()
        for command, (present, absent) in COMMAND_FLAGS.items():
            with self.subTest(command=command):
                result = run([command, "--help"])
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn("usage: mpcctl " + command, result.stdout)
                self.assertNotIn("usage: mpcctl demo" if command != "demo" else
                                 "usage: mpcctl solve", result.stdout)
                flags = set(listed_flags(result.stdout))
                self.assertLessEqual(present, flags)
                self.assertFalse(absent & flags, absent & flags)
                covered |= flags
        # No flag is left out of every subcommand's help.
        self.assertEqual(covered, ALL_FLAGS)

    def test_output_formats(self):
        request = os.path.join(EXAMPLES, "cartpole_swingup.json")
        pretty = run(["solve", "--local", "--threads=1", "--request", request])
        self.assertEqual(pretty.returncode, 0, pretty.stderr)
        compact = run(["solve", "--local", "--threads=1", "--output=compact", "--request", request])
        self.assertEqual(compact.returncode, 0, compact.stderr)
        # compact: the same JSON on one line.
        self.assertEqual(compact.stdout.count("\n"), 1)
        self.assertEqual(json.loads(compact.stdout)["solutions"],
                         json.loads(pretty.stdout)["solutions"])
        table = run(["solve", "--local", "--threads=1", "--output=table", "--request", request])
        self.assertEqual(table.returncode, 0, table.stderr)
        lines = table.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["problem", "status", "iterations", "cost", "u[0]"])
        solutions = json.loads(pretty.stdout)["solutions"]
        self.assertEqual(len(lines), 1 + len(solutions) + 1)  # header, rows, footer
        for i, (line, solution) in enumerate(zip(lines[1:], solutions)):
            cells = line.split()
            self.assertEqual(cells[:3], [str(i), solution["status"], str(solution["iterations"])])
            self.assertAlmostEqual(float(cells[3]), solution["cost"], delta=1e-8 *
                                   max(1.0, abs(solution["cost"])))
        self.assertTrue(lines[-1].startswith("backend cpu, batch "), lines[-1])
        models = run(["models", "--local", "--output=table"])
        self.assertEqual(models.returncode, 0, models.stderr)
        self.assertRegex(models.stdout, r"(?m)^cartpole +5 +1 +0\.05 +gravity=9\.8 .* -$")
        self.assertRegex(models.stdout, r"(?m)^quadrotor +12 +4 +0\.05 +mass=1 .* rk4,euler,midpoint$")
        backward = run(["backward", "--local", "--output=table", "--request",
                        os.path.join(EXAMPLES, "cartpole_backward.json")])
        self.assertEqual(backward.returncode, 0, backward.stderr)
        self.assertEqual(backward.stdout.splitlines()[0].split(),
                         ["problem", "status", "dL/dx_init"])
        bad = run(["models", "--local", "--output=yaml"])
        self.assertEqual(bad.returncode, 2)
        self.assertEqual(bad.stderr,
                         'mpcctl: output: must be json, compact or table, got "yaml"\n')

    def test_environment_variables_set_flags(self):
        env = dict(os.environ, MPCCTL_FLAG_LOCAL="true", MPCCTL_FLAG_THREADS="1",
                   MPCCTL_FLAG_REQUEST=os.path.join(EXAMPLES, "lqr_box.json"))
        result = subprocess.run([MPCCTL, "solve"], capture_output=True, text=True, timeout=120,
                                env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(json.loads(result.stdout)["solutions"]),
                         len(load_example("lqr_box.json")["problems"]))
        # The command line wins: --request=- reads stdin instead of the file.
        result = subprocess.run([MPCCTL, "solve", "--request=-"], input="{nope",
                                capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(result.returncode, 2)
        self.assertIn("stdin", result.stderr)
        env["MPCCTL_FLAG_THREADS"] = "many"
        result = subprocess.run([MPCCTL, "solve"], capture_output=True, text=True, timeout=120,
                                env=env)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr.count("\n"), 1)
        self.assertIn('MPCCTL_FLAG_THREADS="many"', result.stderr)

    def test_help_after_other_flags_and_version(self):
        result = run(["bench", "--target=localhost:1", "--help"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--concurrency=1", result.stdout)
        result = run(["--version"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^mpcctl \d+\.\d+\.\d+ \(revision ([0-9a-f]{7,}|unknown)\)\n$")


def main():
    global MPCCTL, EXAMPLES
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcctl", required=True)
    parser.add_argument("--examples", required=True)
    args, rest = parser.parse_known_args()
    MPCCTL = os.path.abspath(args.mpcctl)
    EXAMPLES = os.path.abspath(args.examples)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
