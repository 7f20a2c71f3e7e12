"""mpcd.torch.MPC: a drop-in for mpc.pytorch's `mpc.MPC` whose solver is an mpcd server.

    from mpcd.torch import MPC, QuadCost, LinDx, PendulumDx
    x, u, costs = MPC(n_state, n_ctrl, T, u_lower=-2.0, u_upper=2.0, lqr_iter=50,
                      target="localhost:50051")(x_init, QuadCost(C, c), PendulumDx(params))

Layouts are mpc.pytorch's (time first, then batch): x_init (B, n); C (T, B, n+m, n+m), or shared by
the batch (T, n+m, n+m) or (n+m, n+m); c (T, B, n+m), (T, n+m) or (n+m); F (T-1, B, n, n+m) (a T-th
entry is ignored, as mpc.pytorch does), or shared by the batch (T-1, n, n+m) or (n, n+m); f
(T-1, B, n), (T-1, n) or (n); bounds a float or (T, B, m) (or (m)); u_init (T, B, m) or (T, m);
model params (p) shared by the batch or (B, p). Returns x (T, B, n), u (T, B, m) and costs (B).

Forward is one Solve call for the whole batch, backward one Backward call (a vector-Jacobian
product); gradients flow to x_init, C, c, F, f and the model's params, each shaped like its input
(an input shared by the batch gets the sum over it). gradient_mode picks the derivative: "DEFAULT"
(mpc.pytorch's), "EXACT" (the true derivative of the solution map) or "FULL_CHAIN" (see
docs/gradients.md). costs carry no gradient, as in mpc.pytorch.
"""

import collections
import enum
import os

import numpy as np
import torch

from mpcd.client import Client, Linear, Model, Problem

QuadCost = collections.namedtuple("QuadCost", "C c")
LinDx = collections.namedtuple("LinDx", "F f")
QuadCost.__new__.__defaults__ = (None, None)
LinDx.__new__.__defaults__ = (None, None)

DEFAULT_TARGET = "localhost:50051"


class GradMethods(enum.Enum):
    """mpc.pytorch's grad_method values, accepted for compatibility: mpcd always linearises the
    built-in models by forward-mode automatic differentiation."""
    AUTO_DIFF = 1
    FINITE_DIFF = 2
    ANALYTIC = 3
    ANALYTIC_CHECK = 4


class NotConvergedError(AssertionError):
    """Some problem did not converge and exit_unconverged=True (mpc.pytorch asserts False)."""


class ModelDx:
    """A built-in mpcd model used as MPC's dynamics (mpc.pytorch passes an nn.Module there).
    params: a tensor (p) shared by the batch or (B, p), or None for the model's defaults; dt=0 and
    integrator="" mean the model's defaults (Client.models())."""

    def __init__(self, name, params=None, dt=0.0, integrator=""):
        self.name = name
        self.params = params
        self.dt = dt
        self.integrator = integrator


class PendulumDx(ModelDx):
    """mpc.pytorch's env_dx PendulumDx(simple=True): state [cos th, sin th, dth], params [g, m, l],
    torque clamped to [-2, 2] inside the dynamics, dt 0.05. The cost data (goal_state,
    goal_weights, ctrl_penalty) and get_true_obj() are mpc.pytorch's."""

    def __init__(self, params=None, simple=True):
        if not simple:
            raise NotImplementedError("mpcd's pendulum is PendulumDx(simple=True) (params g, m, l)")
        super().__init__("pendulum", params)
        self.n_state, self.n_ctrl = 3, 1
        self.goal_state = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        self.goal_weights = torch.tensor([1.0, 1.0, 0.1], dtype=torch.float64)
        self.ctrl_penalty = 0.001
        self.lower, self.upper = -2.0, 2.0

    def get_true_obj(self):
        return _true_obj(self)


class CartpoleDx(ModelDx):
    """mpc.pytorch's env_dx CartpoleDx: state [x, dx, cos th, sin th, dth], params [gravity,
    masscart, masspole, length], force clamped to [-100, 100] inside the dynamics, dt 0.05."""

    def __init__(self, params=None):
        super().__init__("cartpole", params)
        self.n_state, self.n_ctrl = 5, 1
        self.goal_state = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
        self.goal_weights = torch.tensor([0.1, 0.1, 1.0, 1.0, 0.1], dtype=torch.float64)
        self.ctrl_penalty = 0.001
        self.lower, self.upper = -100.0, 100.0

    def get_true_obj(self):
        return _true_obj(self)


def _true_obj(env):
    """mpc.pytorch's get_true_obj: q = [goal_weights, ctrl_penalty], p = [-sqrt(w) * goal, 0];
    the cost is C = diag(q), c = p."""
    q = torch.cat((env.goal_weights, env.ctrl_penalty * torch.ones(env.n_ctrl, dtype=torch.float64)))
    p = torch.cat((-torch.sqrt(env.goal_weights) * env.goal_state,
                   torch.zeros(env.n_ctrl, dtype=torch.float64)))
    return q, p


# ---------------------------------------------------------------------------------------------
# How each input is laid out: which axis is the batch (None: shared by the batch) and which the
# time (None: one slice for every step, cut to `steps` entries).


class _Layout:

    def __init__(self, shape, batch_axis, time_axis=None, steps=None):
        self.shape = tuple(shape)
        self.batch_axis = batch_axis
        self.time_axis = time_axis
        self.steps = steps

    def per_problem(self, array, b):
        if self.time_axis is not None:
            array = np.take(array, np.arange(self.steps), axis=self.time_axis)
        return array if self.batch_axis is None else np.take(array, b, axis=self.batch_axis)

    def assemble(self, grads, dtype):
        """The input's gradient from the per-problem ones (summed where the input is shared)."""
        if self.batch_axis is None:
            grad = np.sum(grads, axis=0)
        else:
            grad = np.stack(grads, axis=self.batch_axis)
        if self.time_axis is not None and self.shape[self.time_axis] > self.steps:
            pad = [(0, 0)] * grad.ndim
            pad[self.time_axis] = (0, self.shape[self.time_axis] - self.steps)
            grad = np.pad(grad, pad)
        return torch.as_tensor(grad.reshape(self.shape), dtype=dtype)


def _check_dims(name, tensor, allowed):
    if tensor.dim() not in allowed:
        raise ValueError("MPC: %s has shape %s; expected %s" % (
            name, tuple(tensor.shape), " or ".join(allowed[d] for d in sorted(allowed))))


def _numpy(tensor):
    return None if tensor is None else tensor.detach().cpu().double().numpy()


class _Spec:
    """Everything about one MPC call that is not a differentiable tensor."""


class _MpcFunction(torch.autograd.Function):
    """Forward: one Solve for the batch. Backward: one Backward (vector-Jacobian product)."""

    @staticmethod
    def forward(ctx, spec, x_init, C, c, F, f, params):
        arrays = {name: _numpy(t) for name, t in
                  (("x_init", x_init), ("C", C), ("c", c), ("F", F), ("f", f),
                   ("params", params))}
        problems = []
        for b in range(spec.n_batch):
            def part(name):
                array = arrays[name]
                return None if array is None else spec.layouts[name].per_problem(array, b)
            if spec.model is None:
                dynamics = Linear(part("F"), part("f"))
            else:
                dynamics = Model(spec.model.name, part("params"), spec.model.dt,
                                 spec.model.integrator)
            problems.append(Problem(
                x_init=part("x_init"), C=part("C"), c=part("c"), dynamics=dynamics,
                u_lower=spec.bounds[0][b] if spec.bounds else None,
                u_upper=spec.bounds[1][b] if spec.bounds else None,
                u_init=spec.u_init[b] if spec.u_init is not None else None))
        result = spec.client.solve(spec.T, problems, options=spec.options, timeout=spec.timeout)
        solutions = result.solutions
        statuses = [s.status for s in solutions]
        if spec.verbose > 0:
            print("mpcd: %s, iterations %s" % (statuses, [s.iterations for s in solutions]))
        unconverged = [b for b, s in enumerate(statuses) if s != "CONVERGED"]
        if unconverged and spec.detach_unconverged and spec.exit_unconverged:
            raise NotConvergedError(
                "MPC: problems %s did not converge (statuses %s); pass exit_unconverged=False to "
                "return them (detached) anyway, or raise lqr_iter" %
                (unconverged, [statuses[b] for b in unconverged]))
        if unconverged and spec.verbose >= 0:
            print("mpcd.torch.MPC warning: problems %s did not converge" % unconverged)

        spec.statuses[:] = statuses
        ctx.spec, ctx.problems, ctx.solutions = spec, problems, solutions
        ctx.detached = set(unconverged) if spec.detach_unconverged else set()
        dtype, device = x_init.dtype, x_init.device
        x = torch.as_tensor(np.stack([s.x for s in solutions], axis=1), dtype=dtype, device=device)
        u = torch.as_tensor(np.stack([s.u for s in solutions], axis=1), dtype=dtype, device=device)
        costs = torch.as_tensor([s.cost for s in solutions], dtype=dtype, device=device)
        ctx.mark_non_differentiable(costs)
        return x, u, costs

    @staticmethod
    def backward(ctx, grad_x, grad_u, _grad_costs):
        spec = ctx.spec
        names = ("x_init", "C", "c", "F", "f", "params")
        wanted = [name for name, needs in zip(names, ctx.needs_input_grad[1:])
                  if needs and name in spec.layouts]
        if not wanted:
            return (None,) * 7
        grad_x, grad_u = _numpy(grad_x), _numpy(grad_u)
        cotangents = [(None, None) if b in ctx.detached else (grad_x[:, b], grad_u[:, b])
                      for b in range(spec.n_batch)]
        result = spec.client.backward(spec.T, ctx.problems, ctx.solutions, cotangents,
                                      mode=spec.gradient_mode, timeout=spec.timeout)
        grads = {}
        for name in wanted:
            per_problem = [getattr(g, name) for g in result.gradients]
            grads[name] = spec.layouts[name].assemble(per_problem, spec.dtypes[name]).to(
                spec.device)
        return (None,) + tuple(grads.get(name) for name in names)


class MPC(torch.nn.Module):
    """mpc.pytorch's MPC(n_state, n_ctrl, T, u_lower, u_upper, u_zero_I, u_init, lqr_iter,
    grad_method, delta_u, verbose, eps, back_eps, n_batch, linesearch_decay, max_linesearch_iter,
    exit_unconverged, detach_unconverged, backprop, slew_rate_penalty, prev_ctrl,
    not_improved_lim, best_cost_eps), solved by an mpcd server.

    mpcd's own keyword arguments: client (an mpcd.Client) or target ("host:port"; default
    $MPCD_TARGET or localhost:50051), gradient_mode ("DEFAULT", "EXACT", "FULL_CHAIN"), timeout
    (seconds per call). grad_method and back_eps are accepted and unused (the server linearises by
    automatic differentiation); u_zero_I, delta_u, slew_rate_penalty and prev_ctrl are not
    supported. Each problem iterates on its own (mpc.pytorch couples the stopping test across the
    batch), so "converged" is per problem.
    """

    def __init__(self, n_state, n_ctrl, T, u_lower=None, u_upper=None, u_zero_I=None,
                 u_init=None, lqr_iter=10, grad_method=None, delta_u=None, verbose=0, eps=1e-7,
                 back_eps=1e-7, n_batch=None, linesearch_decay=0.2, max_linesearch_iter=10,
                 exit_unconverged=True, detach_unconverged=True, backprop=True,
                 slew_rate_penalty=None, prev_ctrl=None, not_improved_lim=5, best_cost_eps=1e-4,
                 *, client=None, target=None, gradient_mode="DEFAULT", timeout=None):
        super().__init__()
        if (u_lower is None) != (u_upper is None):
            raise ValueError("MPC: give both u_lower and u_upper or neither")
        for name, value in (("u_zero_I", u_zero_I), ("delta_u", delta_u),
                            ("slew_rate_penalty", slew_rate_penalty), ("prev_ctrl", prev_ctrl)):
            if value is not None:
                raise NotImplementedError("mpcd.torch.MPC does not support %s" % name)
        self.n_state, self.n_ctrl, self.T = n_state, n_ctrl, T
        self.u_lower, self.u_upper, self.u_init = u_lower, u_upper, u_init
        self.n_batch = n_batch
        self.verbose = verbose
        self.exit_unconverged = exit_unconverged
        self.detach_unconverged = detach_unconverged
        self.backprop = backprop
        self.grad_method, self.back_eps = grad_method, back_eps
        self.options = dict(max_iterations=lqr_iter, tolerance=eps,
                            linesearch_decay=linesearch_decay,
                            max_linesearch_iterations=max_linesearch_iter,
                            best_cost_eps=best_cost_eps, not_improved_limit=not_improved_lim)
        if client is None:
            client = Client(target or os.environ.get("MPCD_TARGET", DEFAULT_TARGET))
        self.client = client
        self.gradient_mode = gradient_mode
        self.timeout = timeout
        # mpcd's per-problem SolveStatus names of the last forward ("CONVERGED", ...).
        self.last_statuses = []

    def forward(self, x_init, cost, dx):
        # Duck-typed, so that mpc.pytorch's own QuadCost and LinDx namedtuples work too.
        if not (hasattr(cost, "C") and hasattr(cost, "c")):
            raise TypeError("MPC: cost must be a QuadCost(C, c) (mpcd solves quadratic costs)")
        if not (isinstance(dx, ModelDx) or (hasattr(dx, "F") and hasattr(dx, "f"))):
            raise TypeError("MPC: dx must be LinDx(F, f) or a built-in model (mpcd.torch.ModelDx, "
                            "PendulumDx, CartpoleDx)")
        n, m, T = self.n_state, self.n_ctrl, self.T
        nt = n + m
        _check_dims("x_init", x_init, {2: "(n_batch, n_state)"})
        B = x_init.shape[0]
        if self.n_batch is not None and self.n_batch != B:
            raise ValueError("MPC: n_batch=%d but x_init has %d rows" % (self.n_batch, B))

        spec = _Spec()
        spec.statuses = self.last_statuses = []
        spec.client, spec.T, spec.n_batch = self.client, T, B
        spec.options, spec.timeout, spec.verbose = self.options, self.timeout, self.verbose
        spec.gradient_mode = self.gradient_mode
        spec.exit_unconverged, spec.detach_unconverged = self.exit_unconverged, self.detach_unconverged
        spec.device = x_init.device
        spec.layouts = {"x_init": _Layout(x_init.shape, 0)}

        C, c = cost.C, cost.c
        _check_dims("C", C, {2: "(n_tau, n_tau)", 3: "(T, n_tau, n_tau)", 4: "(T, B, n_tau, n_tau)"})
        spec.layouts["C"] = _Layout(C.shape, 1 if C.dim() == 4 else None)
        if c is not None:
            _check_dims("c", c, {1: "(n_tau)", 2: "(T, n_tau)", 3: "(T, B, n_tau)"})
            spec.layouts["c"] = _Layout(c.shape, 1 if c.dim() == 3 else None)

        F = f = params = None
        if not isinstance(dx, ModelDx):
            spec.model = None
            F, f = dx.F, dx.f
            _check_dims("F", F, {2: "(n, n_tau)", 3: "(T-1, n, n_tau)", 4: "(T-1, B, n, n_tau)"})
            time_axis = None if F.dim() == 2 else 0
            spec.layouts["F"] = _Layout(F.shape, 1 if F.dim() == 4 else None, time_axis, T - 1)
            if f is not None:
                _check_dims("f", f, {1: "(n)", 2: "(T-1, n)", 3: "(T-1, B, n)"})
                time_axis = None if f.dim() == 1 else 0
                spec.layouts["f"] = _Layout(f.shape, 1 if f.dim() == 3 else None, time_axis, T - 1)
        else:
            spec.model = dx
            params = dx.params
            if params is not None:
                params = torch.as_tensor(params)
                _check_dims("params", params, {1: "(p)", 2: "(B, p)"})
                spec.layouts["params"] = _Layout(params.shape, 0 if params.dim() == 2 else None)

        spec.dtypes = {name: t.dtype for name, t in
                       (("x_init", x_init), ("C", C), ("c", c), ("F", F), ("f", f),
                        ("params", params)) if t is not None}
        spec.bounds = None
        if self.u_lower is not None:
            spec.bounds = (self._per_problem_controls("u_lower", self.u_lower, B),
                           self._per_problem_controls("u_upper", self.u_upper, B))
        spec.u_init = None
        if self.u_init is not None:
            u_init = _numpy(torch.as_tensor(self.u_init))
            if u_init.ndim == 2:
                u_init = np.broadcast_to(u_init[:, None, :], (T, B, m))
            spec.u_init = [u_init[:, b] for b in range(B)]

        if not self.backprop:
            with torch.no_grad():
                return _MpcFunction.apply(spec, x_init, C, c, F, f, params)
        return _MpcFunction.apply(spec, x_init, C, c, F, f, params)

    def _per_problem_controls(self, name, bound, B):
        """A bound as one (m) or (T, m) array per problem."""
        if isinstance(bound, (int, float)):
            return [np.full(self.n_ctrl, float(bound))] * B
        array = _numpy(torch.as_tensor(bound))
        if array.ndim <= 1:
            return [np.broadcast_to(array, (self.n_ctrl,))] * B
        if array.ndim == 3:
            return [array[:, b] for b in range(B)]
        raise ValueError("MPC: %s must be a float, (n_ctrl) or (T, n_batch, n_ctrl); got shape %s"
                         % (name, array.shape))


__all__ = ["MPC", "QuadCost", "LinDx", "GradMethods", "ModelDx", "PendulumDx", "CartpoleDx",
           "NotConvergedError"]
