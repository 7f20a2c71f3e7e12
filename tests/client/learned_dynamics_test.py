#!/usr/bin/python3
"""examples/learned_dynamics.py, short, against a real mpcd process.

The imitation loss of the MPC whose dynamics is the MLP module is differentiated through mpcd
into every one of the module's parameters (each gets a finite, non-zero .grad); a small step
against that gradient lowers the loss (it is a descent direction); a few imitation iterations
lower it from its start; and the example's own --quick run writes its results and plot.

Usage: learned_dynamics_test.py --mpcd build/bin/mpcd --package-dir client/python
         --stubs-dir build/python --source-dir . [unittest args]
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import client_test_args, module_server  # noqa: E402

ARGS = None
SERVER = None


setUpModule, tearDownModule = module_server(globals(), "--backend=cpu")


def load_example():
    path = os.path.join(ARGS.source_dir, "examples", "learned_dynamics.py")
    spec = importlib.util.spec_from_file_location("learned_dynamics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LearnedDynamicsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.client = mpcd.Client(SERVER.target, timeout=120)
        cls.example = load_example()
        cls.setting = cls.example.QUICK
        cls.task = cls.example.Pendulum(cls.client, cls.setting)
        rng = np.random.default_rng(0)
        cls.x_init = cls.example.initial_states(cls.setting.n_train, cls.setting.max_angle, rng)
        with torch.no_grad():
            cls.x_star, cls.u_star = cls.task.plan(cls.x_init, cls.task.env)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def model(self):
        return self.example.MlpDx(self.task.n, self.task.m, self.setting.hidden, seed=0)

    def loss(self, model):
        return self.example.imitation_loss(self.task, model, self.x_init, self.u_star)

    def test_gradients_reach_every_parameter_and_descend(self):
        model = self.model()
        loss = self.loss(model)
        loss.backward()
        parameters = list(model.parameters())
        self.assertEqual(len(parameters), 6)
        for name, p in model.named_parameters():
            self.assertIsNotNone(p.grad, name)
            self.assertTrue(torch.isfinite(p.grad).all(), name)
            self.assertGreater(p.grad.abs().max().item(), 0.0, name)
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in parameters))
        with torch.no_grad():
            for p in parameters:
                p -= 1e-3 * p.grad / norm
        after = self.loss(model).item()
        self.assertLess(after, loss.item())

    def test_imitation_lowers_the_control_loss(self):
        history = self.example.learn_by_imitation(self.task, self.model(), self.x_init,
                                                  self.u_star, iterations=4, lr=1e-3, log=None)
        self.assertEqual(len(history), 5)
        self.assertLess(min(history[1:]), history[0])

    def test_quick_run_writes_results_and_plot(self):
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([ARGS.package_dir, ARGS.stubs_dir]))
            subprocess.run([sys.executable,
                            os.path.join(ARGS.source_dir, "examples", "learned_dynamics.py"),
                            "--target=" + SERVER.target, "--out=" + out, "--quick"],
                           check=True, env=env, timeout=300, capture_output=True)
            with open(os.path.join(out, "learned_dynamics.json")) as f:
                results = json.load(f)
            self.assertEqual(set(results["scores"]),
                             {"expert", "imitation", "regression", "regression+imitation"})
            for name in ("imitation", "regression", "regression+imitation"):
                for value in results["scores"][name].values():
                    self.assertTrue(np.isfinite(value), name)
            self.assertGreater(os.path.getsize(os.path.join(out, "learned_dynamics.png")), 1000)


def main():
    global ARGS, mpcd, np, torch
    ARGS, argv = client_test_args("--source-dir")
    import mpcd
    import numpy as np
    import torch
    torch.set_default_dtype(torch.float64)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
