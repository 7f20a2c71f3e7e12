"""Linear-quadratic problems with stage constraints as dense QPs (the oracle of the tests of state
bounds, stage constraints and their gradients): random LQR data, the QP over the free variables
with cvxopt, and its solution polished on its active set."""

import numpy as np


# The solver options the constrained tests solve with: converged far below their tolerances.
OPTIONS = {"max_iterations": 100, "tolerance": 1e-12, "constraint_tolerance": 1e-10,
           "max_constraint_iterations": 40}


def random_lqr_grid(seeds):
    """(seed, unstable, varying, control_bounds) for every case of the random LQR grid."""
    return [(seed, unstable, varying, control_bounds) for seed in range(seeds)
            for unstable in (False, True) for varying in (False, True)
            for control_bounds in (False, True)]


def random_lqr(rng, n, m, T, unstable=False, varying=False):
    """C (T, n+m, n+m) positive definite, c (T, n+m), F (T-1, n, n+m), f (T-1, n), x_init (n)."""
    nt = n + m
    L = rng.randn(T if varying else 1, nt, nt) / np.sqrt(nt)
    C = np.broadcast_to(L @ L.transpose(0, 2, 1) + 0.1 * np.eye(nt), (T, nt, nt)).copy()
    c = np.broadcast_to(rng.randn(T if varying else 1, nt), (T, nt)).copy()
    A = (1.1 if unstable else 0.9) * np.eye(n) + 0.1 * rng.randn(n, n) / np.sqrt(n)
    B = rng.randn(n, m) / np.sqrt(n)
    F = np.tile(np.hstack([A, B]), (T - 1, 1, 1))
    f = np.tile(0.1 * rng.randn(n), (T - 1, 1))
    x_init = rng.randn(n)
    return C, c, F, f, x_init


def stacked_lqr(problems):
    """B problems of random_lqr stacked in mpc.pytorch's layout: C (T, B, n+m, n+m),
    c (T, B, n+m), F (T-1, B, n, n+m), f (T-1, B, n), x_init (B, n)."""
    return tuple(np.stack([p[i] for p in problems], axis=1) for i in range(4)) + (
        np.stack([p[4] for p in problems]),)


def cutting_bounds(free_x, n, T, varying):
    """State bounds that cut the free trajectory free_x (T, n): coordinate 0 from above at 60% of
    its range, coordinate 1 from below (time-varying: a ramp from 50% to 70%), the rest unbounded;
    never tighter than the free trajectory in its first three steps, which the controls cannot
    move far. Returns (lower, upper), each (T, n) if varying else (n)."""
    span = np.ptp(free_x[1:, :2], axis=0) + 1e-3
    upper = np.full((T, n) if varying else n, np.inf)
    lower = np.full((T, n) if varying else n, -np.inf)
    reach_up = free_x[1:4, 0].max() + 0.1 * span[0]
    reach_down = free_x[1:4, 1].min() - 0.1 * span[1]
    if varying:
        ramp = np.linspace(0.5, 0.7, T)
        upper[:, 0] = np.maximum(free_x[1:, 0].min() + ramp * span[0], reach_up)
        lower[:, 1] = np.minimum(free_x[1:, 1].max() - ramp * span[1], reach_down)
    else:
        upper[0] = max(free_x[1:, 0].min() + 0.6 * span[0], reach_up)
        lower[1] = min(free_x[1:, 1].max() - 0.6 * span[1], reach_down)
    return lower, upper


def cutting_rows(rng, free_x, free_u):
    """Two random stage-constraint rows from step 3 on (zero rows before: the first steps cannot
    move far), each 5% of its free range below the free trajectory's maximum: G (T, 2, n+m),
    h (T, 2)."""
    T, nt = free_x.shape[0], free_x.shape[1] + free_u.shape[1]
    rows = rng.randn(2, nt)
    values = np.hstack([free_x, free_u])[3:] @ rows.T
    G, h = np.zeros((T, 2, nt)), np.zeros((T, 2))
    G[3:] = rows
    h[3:] = values.max(axis=0) - 0.05 * np.ptp(values, axis=0)
    return G, h


class DenseQp:
    """One problem as a QP over z = [x_1 .. x_{T-1}, u_0 .. u_{T-1}] (x_0 = x_init given):
    min 0.5 z'Pz + q'z s.t. Az = b (the dynamics), Gz <= h (every row of the stage constraints,
    state bounds and control bounds)."""

    def __init__(self, C, c, F, f, x_init, rows):
        T, nt, _ = C.shape
        n = x_init.shape[0]
        m = nt - n
        self.n, self.m, self.T = n, m, T
        size = (T - 1) * n + T * m
        self.P, self.q, self.r = np.zeros((size, size)), np.zeros(size), 0.0
        self.A, self.b = np.zeros(((T - 1) * n, size)), np.zeros((T - 1) * n)
        G, h = [], []
        for t in range(T):
            S, s0 = self.tau(t, x_init)  # tau_t = S z + s0
            Cs = 0.5 * (C[t] + C[t].T)
            self.P += S.T @ Cs @ S
            self.q += S.T @ (Cs @ s0 + c[t])
            if t + 1 < T:
                X, x0 = self.tau(t + 1, x_init)
                self.A[t * n:(t + 1) * n] = X[:n] - F[t] @ S
                self.b[t * n:(t + 1) * n] = F[t] @ s0 + f[t] - x0[:n]
            for g, hv in rows(t):
                G.append(g @ S)
                h.append(hv - g @ s0)
        self.G, self.h = np.array(G), np.array(h)

    def tau(self, t, x_init):
        n, m, T = self.n, self.m, self.T
        size = (T - 1) * n + T * m
        S, s0 = np.zeros((n + m, size)), np.zeros(n + m)
        if t == 0:
            s0[:n] = x_init
        else:
            S[:n, (t - 1) * n:t * n] = np.eye(n)
        S[n:, (T - 1) * n + t * m:(T - 1) * n + (t + 1) * m] = np.eye(m)
        return S, s0

    def solve(self):
        """cvxopt's interior point, then the KKT system with its active rows as equalities (the
        rows whose multiplier is positive, kept in self.active); returns (z, active rows)."""
        from cvxopt import matrix, solvers
        solvers.options.update({"show_progress": False, "abstol": 1e-10, "reltol": 1e-10,
                                "feastol": 1e-10, "maxiters": 200})
        sol = solvers.qp(matrix(self.P), matrix(self.q), matrix(self.G), matrix(self.h),
                         matrix(self.A), matrix(self.b))
        assert sol["status"] == "optimal", sol["status"]
        multipliers = np.array(sol["z"]).ravel()
        self.active = multipliers > 1e-6 * max(1.0, multipliers.max(initial=0.0))
        polished = self.polish(self.active)
        assert np.max(self.G @ polished - self.h) < 1e-9, "the active set was misread"
        return polished, int(self.active.sum())

    def kkt(self, active):
        """The KKT matrix with the dynamics and the `active` rows as equalities, and its
        right-hand side: K [z; multipliers] = rhs."""
        E = np.vstack([self.A, self.G[active]])
        e = np.concatenate([self.b, self.h[active]])
        rows = E.shape[0]
        K = np.block([[self.P, E.T], [E, np.zeros((rows, rows))]])
        return K, np.concatenate([-self.q, e])

    def polish(self, active):
        """The solution with the `active` rows held as equalities (the QP on that active set)."""
        K, rhs = self.kkt(active)
        return np.linalg.solve(K, rhs)[:self.P.shape[0]]

    def trajectories(self, z, x_init):
        n, m, T = self.n, self.m, self.T
        x = np.vstack([x_init, z[:(T - 1) * n].reshape(T - 1, n)])
        return x, z[(T - 1) * n:].reshape(T, m)


def stage_rows(n, m, T, x_lower=None, x_upper=None, u_lower=None, u_upper=None, G=None, h=None):
    """rows(t): the (g, h) pairs of step t in the QP's terms (the state bounds from t = 1)."""
    def at(array, t):
        return None if array is None else (array[t] if np.ndim(array) == 2 else array)

    def rows(t):
        out = []
        for bound, sign, offset in ((x_upper, 1, 0), (x_lower, -1, 0), (u_upper, 1, n),
                                    (u_lower, -1, n)):
            values = at(bound, t)
            if values is None or (offset == 0 and t == 0):
                continue
            for i, v in enumerate(values):
                if np.isfinite(v):
                    g = np.zeros(n + m)
                    g[offset + i] = sign
                    out.append((g, sign * v))
        if G is not None:
            Gt = G[t] if G.ndim == 3 else G
            ht = h[t] if h.ndim == 2 else h
            out.extend((g, hv) for g, hv in zip(Gt, ht) if np.any(g != 0))
        return out
    return rows
