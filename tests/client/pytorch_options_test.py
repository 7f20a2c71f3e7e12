#!/usr/bin/python3
"""mpc.pytorch's delta_u, slew_rate_penalty (with prev_ctrl) and u_zero_I through mpcd.torch.MPC
and a real mpcd.

The situations of mpc.pytorch's own tests test_lqr_linear_bounded_delta and test_lqr_slew_rate
(rewritten here, with LinDx dynamics), solutions against a dense condensed QP in numpy, and
torch.autograd.gradcheck through the server with the slew-rate term and with pinned controls.

Usage: pytorch_options_test.py --mpcd build/bin/mpcd --package-dir client/python
         --stubs-dir build/python [unittest args]
"""

import os
import sys
import unittest

import numpy as np
import numpy.random as npr

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from mpcd_harness import class_client, client_test_args, module_server  # noqa: E402

ARGS = None
SERVER = None


setUpModule, tearDownModule = module_server(globals(), "--backend=cpu")


def condensed_qp(C, c, F, f, x_init, gamma=0.0, prev=None, pinned=None):
    """The controls (T, m) minimising one problem's cost plus 0.5 gamma sum_t ||u_t - u_{t-1}||^2
    (u_{-1} = prev) over its linear dynamics, with the controls where `pinned` (T, m) is true held
    at zero: the states are affine in the stacked controls U, so the cost is a quadratic in U."""
    T, nt = c.shape
    n = x_init.shape[0]
    m = nt - n
    X, a = np.zeros((n, T * m)), x_init.copy()
    H, g = np.zeros((T * m, T * m)), np.zeros(T * m)
    for t in range(T):
        E = np.zeros((m, T * m))
        E[:, t * m:(t + 1) * m] = np.eye(m)
        M = np.vstack([X, E])
        Cs = 0.5 * (C[t] + C[t].T)
        H += M.T @ Cs @ M
        g += M.T @ (Cs @ np.concatenate([a, np.zeros(m)]) + c[t])
        D = E.copy()
        if t > 0:
            D[:, (t - 1) * m:t * m] -= np.eye(m)
        elif prev is not None:
            g -= gamma * E.T @ prev
        H += gamma * D.T @ D
        if t + 1 < T:
            A, B = F[t][:, :n], F[t][:, n:]
            X, a = A @ X + B @ E, A @ a + f[t]
    free = np.ones(T * m, dtype=bool) if pinned is None else ~pinned.reshape(-1)
    U = np.zeros(T * m)
    U[free] = np.linalg.solve(H[np.ix_(free, free)], -g[free])
    return U.reshape(T, m)


class PytorchOptionsTest(unittest.TestCase):

    setUpClass, tearDownClass = class_client(globals(), timeout=60)

    def mpc(self, n, m, T, **kwargs):
        return MPC(n, m, T, client=self.client, **kwargs)

    def test_lqr_linear_bounded_delta(self):
        # mpc.pytorch's situation: n 3, m 4, T 5, batch 2, B = 0.01 randn, random bounds, one
        # iteration from u = 0 with delta_u = 0.1: no control moves further than 0.1.
        npr.seed(1)
        n_batch, n, m, T = 2, 3, 4, 5
        C = npr.randn(T, n_batch, n + m, n + m)
        C = np.matmul(C.transpose(0, 1, 3, 2), C)
        c = npr.randn(T, n_batch, n + m)
        R = np.tile(np.eye(n) + 0.2 * npr.randn(n, n), (T - 1, n_batch, 1, 1))
        S = 0.01 * np.tile(npr.randn(n, m), (T - 1, n_batch, 1, 1))
        F = np.concatenate((R, S), axis=3)
        f = np.tile(npr.randn(n), (T - 1, n_batch, 1))
        x_init = npr.randn(n_batch, n)
        u_lower = -npr.random((T, n_batch, m))
        u_upper = npr.random((T, n_batch, m))
        tensors = [torch.tensor(v) for v in (C, c, F, f, x_init, u_lower, u_upper)]
        C, c, F, f, x_init, u_lower, u_upper = tensors
        for delta_u in (None, 0.1):
            _, u, _ = self.mpc(n, m, T, u_lower=u_lower, u_upper=u_upper, lqr_iter=1,
                               delta_u=delta_u, backprop=False, exit_unconverged=False,
                               verbose=-1)(x_init, QuadCost(C, c), LinDx(F, f))
            if delta_u is None:
                self.assertGreater(u.abs().max().item(), 0.1)  # the trust region binds below
            else:
                self.assertLessEqual(u.abs().max().item(), delta_u)
        # Without bounds too (mpc.pytorch asserts bounds with delta_u; mpcd does not need them).
        _, u, _ = self.mpc(n, m, T, lqr_iter=1, delta_u=0.1, backprop=False,
                           exit_unconverged=False, verbose=-1)(x_init, QuadCost(C, c), LinDx(F, f))
        self.assertLessEqual(u.abs().max().item(), 0.1)

    def slew_problem(self, seed):
        # mpc.pytorch's test_lqr_slew_rate situation: n 3, m 4, T 5, batch 2, C = C'C random,
        # affine dynamics R = I + 0.2 randn, S randn, f randn (as LinDx).
        rng = np.random.RandomState(seed)
        n_batch, n, m, T = 2, 3, 4, 5
        C = rng.randn(T, n_batch, n + m, n + m)
        C = np.matmul(C.transpose(0, 1, 3, 2), C)
        c = rng.randn(T, n_batch, n + m)
        x_init = rng.randn(n_batch, n)
        F = np.concatenate((np.eye(n) + 0.2 * rng.randn(n, n), rng.randn(n, m)), axis=1)
        f = rng.randn(n)
        return n, m, T, C, c, x_init, F, f

    def solve_slew(self, problem, gamma, prev_ctrl=None):
        n, m, T, C, c, x_init, F, f = problem
        T_F = np.tile(F, (T - 1, 1, 1))
        T_f = np.tile(f, (T - 1, 1))
        return self.mpc(n, m, T, lqr_iter=10, eps=1e-4, backprop=False, exit_unconverged=False,
                        slew_rate_penalty=gamma, prev_ctrl=prev_ctrl, verbose=-1)(
            torch.tensor(x_init), QuadCost(torch.tensor(C), torch.tensor(c)),
            LinDx(torch.tensor(T_F), torch.tensor(T_f)))

    def test_lqr_slew_rate(self):
        problem = self.slew_problem(1)
        x, u, objs = self.solve_slew(problem, None)
        # A vanishing penalty gives the unpenalised solution.
        x_eps, u_eps, _ = self.solve_slew(problem, 1e-6)
        np.testing.assert_allclose(x.numpy(), x_eps.numpy(), atol=1e-3)
        np.testing.assert_allclose(u.numpy(), u_eps.numpy(), atol=1e-3)
        # A real one costs more (the cost includes the term) and smooths the controls.
        x_slew, u_slew, objs_slew = self.solve_slew(problem, 1.0)
        self.assertTrue(bool(torch.all(objs < objs_slew)))
        self.assertLess(torch.norm(u_slew[:-1] - u_slew[1:]).item(),
                        torch.norm(u[:-1] - u[1:]).item())
        self.assertEqual(tuple(x_slew.shape), tuple(x.shape))

    def test_lqr_slew_rate_with_module_dynamics(self):
        # mpc.pytorch's own test gives the dynamics as a module (its AffineDynamics): mpcd
        # exports it to a graph and solves the slew-rate problem with the graph's pass-through.
        problem = self.slew_problem(1)
        n, m, T, C, c, x_init, F, f = problem

        class AffineDynamics(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.R = torch.nn.Parameter(torch.tensor(F[:, :n]))
                self.S = torch.nn.Parameter(torch.tensor(F[:, n:]))
                self.f = torch.nn.Parameter(torch.tensor(f))

            def forward(self, x, u):
                return x @ self.R.T + u @ self.S.T + self.f

        for gamma in (1e-6, 1.0):
            x_module, u_module, objs_module = self.mpc(
                n, m, T, lqr_iter=10, eps=1e-4, backprop=False, exit_unconverged=False,
                slew_rate_penalty=gamma, verbose=-1)(
                torch.tensor(x_init), QuadCost(torch.tensor(C), torch.tensor(c)), AffineDynamics())
            x_lin, u_lin, objs_lin = self.solve_slew(problem, gamma)
            np.testing.assert_allclose(u_module.numpy(), u_lin.numpy(), rtol=0, atol=1e-8)
            np.testing.assert_allclose(x_module.numpy(), x_lin.numpy(), rtol=0, atol=1e-8)
            np.testing.assert_allclose(objs_module.numpy(), objs_lin.numpy(), rtol=1e-10)

        # dL/dtheta of the module (FULL_CHAIN: DEFAULT is mpc.pytorch's f_only approximation)
        # equals dL/dF, dL/df of the same LinDx (gradcheck checks those).
        rng = np.random.RandomState(7)
        wx, wu = torch.tensor(rng.randn(T, 2, n)), torch.tensor(rng.randn(T, 2, m))
        dx = AffineDynamics()
        x, u, _ = self.mpc(n, m, T, lqr_iter=30, eps=1e-12, slew_rate_penalty=0.5, verbose=-1,
                           gradient_mode="FULL_CHAIN")(
            torch.tensor(x_init), QuadCost(torch.tensor(C), torch.tensor(c)), dx)
        ((x * wx).sum() + (u * wu).sum()).backward()
        F_t = torch.tensor(F, requires_grad=True)
        f_t = torch.tensor(f, requires_grad=True)
        x, u, _ = self.mpc(n, m, T, lqr_iter=30, eps=1e-12, slew_rate_penalty=0.5, verbose=-1)(
            torch.tensor(x_init), QuadCost(torch.tensor(C), torch.tensor(c)),
            LinDx(F_t.expand(T - 1, 2, n, n + m), f_t.expand(T - 1, 2, n)))
        ((x * wx).sum() + (u * wu).sum()).backward()
        np.testing.assert_allclose(dx.R.grad.numpy(), F_t.grad[:, :n].numpy(), rtol=1e-8,
                                   atol=1e-10)
        np.testing.assert_allclose(dx.S.grad.numpy(), F_t.grad[:, n:].numpy(), rtol=1e-8,
                                   atol=1e-10)
        np.testing.assert_allclose(dx.f.grad.numpy(), f_t.grad.numpy(), rtol=1e-8, atol=1e-10)

    def test_slew_rate_is_the_condensed_qp_optimum(self):
        problem = self.slew_problem(2)
        n, m, T, C, c, x_init, F, f = problem
        prev = np.random.RandomState(3).randn(2, m)
        for gamma, prev_ctrl in ((0.5, None), (2.0, torch.tensor(prev))):
            _, u, _ = self.solve_slew(problem, gamma, prev_ctrl)
            for b in range(2):
                want = condensed_qp(C[:, b], c[:, b], np.tile(F, (T - 1, 1, 1)),
                                    np.tile(f, (T - 1, 1)), x_init[b], gamma,
                                    None if prev_ctrl is None else prev[b])
                np.testing.assert_allclose(u[:, b].numpy(), want, rtol=0, atol=1e-6)

    def small_problem(self, seed, n=2, m=2, T=4, n_batch=2):
        rng = np.random.RandomState(seed)
        L = rng.randn(T, n_batch, n + m, n + m)
        C = np.matmul(L.transpose(0, 1, 3, 2), L) + np.eye(n + m)
        c = rng.randn(T, n_batch, n + m)
        F = np.concatenate((np.eye(n) + 0.2 * rng.randn(T - 1, n_batch, n, n),
                            rng.randn(T - 1, n_batch, n, m)), axis=3)
        f = rng.randn(T - 1, n_batch, n)
        x_init = rng.randn(n_batch, n)
        return [torch.tensor(v, requires_grad=True) for v in (x_init, C, c, F, f)]

    def gradcheck(self, n, m, T, inputs, **kwargs):
        def solve(x_init, C, c, F, f):
            x, u, _ = self.mpc(n, m, T, lqr_iter=30, eps=1e-12, verbose=-1, **kwargs)(
                x_init, QuadCost(0.5 * (C + C.transpose(-1, -2)), c), LinDx(F, f))
            return x, u
        self.assertTrue(torch.autograd.gradcheck(solve, inputs, eps=1e-6, atol=1e-6, rtol=1e-5))

    def test_slew_rate_gradients(self):
        inputs = self.small_problem(4)
        self.gradcheck(2, 2, 4, inputs, slew_rate_penalty=0.8,
                       prev_ctrl=torch.tensor([[0.5, -0.2], [0.1, 0.3]]))

    def test_u_zero_I(self):
        n, m, T = 2, 2, 4
        inputs = self.small_problem(5, n, m, T)
        pinned = np.zeros((T, 2, m), dtype=bool)
        pinned[0, 0, 1] = pinned[2, 1, 0] = pinned[3, 0, 0] = True
        x_init, C, c, F, f = inputs
        _, u, _ = self.mpc(n, m, T, lqr_iter=30, eps=1e-12, verbose=-1,
                           u_zero_I=torch.tensor(pinned))(
            x_init, QuadCost(C, c), LinDx(F, f))
        for b in range(2):
            want = condensed_qp(C[:, b].detach().numpy(), c[:, b].detach().numpy(),
                                F[:, b].detach().numpy(), f[:, b].detach().numpy(),
                                x_init[b].detach().numpy(), pinned=pinned[:, b])
            np.testing.assert_allclose(u[:, b].detach().numpy(), want, rtol=0, atol=1e-8)
        self.assertTrue(bool(torch.all(u[torch.tensor(pinned)] == 0)))
        # Pinned controls get no gradient: the derivative of the problem with them held at zero.
        self.gradcheck(n, m, T, inputs, u_zero_I=torch.tensor(pinned))


def main():
    global ARGS, mpcd, torch, MPC, QuadCost, LinDx
    ARGS, argv = client_test_args()
    import mpcd
    import mpcd.torch
    import torch
    from mpcd.torch import MPC, QuadCost, LinDx
    torch.set_default_dtype(torch.float64)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
