"""mpcd.torch.MPC: a drop-in for mpc.pytorch's `mpc.MPC` whose solver is an mpcd server.

    from mpcd.torch import MPC, QuadCost, LinDx, PendulumDx
    x, u, costs = MPC(n_state, n_ctrl, T, u_lower=-2.0, u_upper=2.0, lqr_iter=50,
                      target="localhost:50051")(x_init, QuadCost(C, c), PendulumDx(params))

Layouts are mpc.pytorch's (time first, then batch): x_init (B, n); C (T, B, n+m, n+m), or shared by
the batch (T, n+m, n+m) or (n+m, n+m); c (T, B, n+m), (T, n+m) or (n+m); F (T-1, B, n, n+m) (a T-th
entry is ignored, as mpc.pytorch does), or shared by the batch (T-1, n, n+m) or (n, n+m); f
(T-1, B, n), (T-1, n) or (n); bounds a float or (T, B, m) (or (m)); u_init (T, B, m) or (T, m);
model params (p) shared by the batch or (B, p). Returns x (T, B, n), u (T, B, m) and costs (B).

dx may also be any torch.nn.Module with mpc.pytorch's convention, dx(x (B, n), u (B, m)) -> x_next
(B, n): it is exported to ONNX once per module structure and solved as a dynamics graph, its
parameters sent by name in every request and their gradients returned to module.parameters()
(docs/graphs.md). So may cost, cost(tau (B, n+m)) -> (B,), the same at every step: it is sent as a
cost graph (docs/graphs.md "Costs as graphs") and its parameters get their gradients too.

Forward is one Solve call for the whole batch, backward one Backward call (a vector-Jacobian
product); gradients flow to x_init, C, c, F, f and the model's params, each shaped like its input
(an input shared by the batch gets the sum over it). gradient_mode picks the derivative: "DEFAULT"
(mpc.pytorch's), "EXACT" (the true derivative of the solution map) or "FULL_CHAIN" (see
docs/gradients.md). costs carry no gradient, as in mpc.pytorch.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import io
import os
import threading
import weakref
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Protocol, Tuple, Union

import grpc
import numpy as np
import numpy.typing as npt
import torch

from mpcd.client import (BATCH_FIELDS, SOLVE_STATUS_NAMES, Client, MpcdError, from_tensor,
                          to_tensor)
from mpcd.v1 import mpcd_pb2


class QuadCost(NamedTuple):
    """mpc.pytorch's QuadCost: the cost sum_t 0.5 tau_t' C_t tau_t + c_t' tau_t, tau_t = [x_t; u_t],
    with C (T, B, n+m, n+m), (T, n+m, n+m) or (n+m, n+m) and c (T, B, n+m), (T, n+m) or (n+m)."""
    C: Optional[torch.Tensor] = None
    c: Optional[torch.Tensor] = None


class LinDx(NamedTuple):
    """mpc.pytorch's LinDx: x_{t+1} = F_t [x_t; u_t] + f_t, with F (T-1, B, n, n+m), (T-1, n, n+m)
    or (n, n+m) and f (T-1, B, n), (T-1, n), (n) or None."""
    F: Optional[torch.Tensor] = None
    f: Optional[torch.Tensor] = None


class QuadCostLike(Protocol):
    """What MPC accepts as a quadratic cost: anything with tensors .C and .c (QuadCost, or
    mpc.pytorch's own QuadCost)."""

    @property
    def C(self) -> Optional[torch.Tensor]: ...

    @property
    def c(self) -> Optional[torch.Tensor]: ...


class LinDxLike(Protocol):
    """What MPC accepts as linear dynamics: anything with tensors .F and .f (LinDx, or
    mpc.pytorch's own LinDx)."""

    @property
    def F(self) -> Optional[torch.Tensor]: ...

    @property
    def f(self) -> Optional[torch.Tensor]: ...


# The target MPC connects to without client= or target= (and without $MPCD_TARGET).
DEFAULT_TARGET: str = "localhost:50051"

_CLIENTS: Dict[str, Client] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_client(target: str) -> Client:
    """The process-wide mpcd.Client for `target` (one gRPC channel per target, created on first
    use; thread-safe). MPC uses it unless given client=."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(target)
        if client is None:
            client = _CLIENTS[target] = Client(target)
        return client


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

    def __init__(self, name: str, params: Optional[Union[torch.Tensor, npt.ArrayLike]] = None,
                 dt: float = 0.0, integrator: str = "") -> None:
        self.name: str = name
        self.params: Optional[Union[torch.Tensor, npt.ArrayLike]] = params
        self.dt: float = dt
        self.integrator: str = integrator


class PendulumDx(ModelDx):
    """mpc.pytorch's env_dx PendulumDx(simple=True): state [cos th, sin th, dth], params [g, m, l],
    torque clamped to [-2, 2] inside the dynamics, dt 0.05. The cost data (goal_state,
    goal_weights, ctrl_penalty) and get_true_obj() are mpc.pytorch's."""

    def __init__(self, params: Optional[Union[torch.Tensor, npt.ArrayLike]] = None,
                 simple: bool = True) -> None:
        if not simple:
            raise NotImplementedError("mpcd's pendulum is PendulumDx(simple=True) (params g, m, l)")
        super().__init__("pendulum", params)
        self.n_state, self.n_ctrl = 3, 1
        self.goal_state = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        self.goal_weights = torch.tensor([1.0, 1.0, 0.1], dtype=torch.float64)
        self.ctrl_penalty = 0.001
        self.lower, self.upper = -2.0, 2.0

    def get_true_obj(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """mpc.pytorch's (q, p): the cost C = diag(q), c = p (float64)."""
        return _true_obj(self)


class CartpoleDx(ModelDx):
    """mpc.pytorch's env_dx CartpoleDx: state [x, dx, cos th, sin th, dth], params [gravity,
    masscart, masspole, length], force clamped to [-100, 100] inside the dynamics, dt 0.05."""

    def __init__(self, params: Optional[Union[torch.Tensor, npt.ArrayLike]] = None) -> None:
        super().__init__("cartpole", params)
        self.n_state, self.n_ctrl = 5, 1
        self.goal_state = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
        self.goal_weights = torch.tensor([0.1, 0.1, 1.0, 1.0, 0.1], dtype=torch.float64)
        self.ctrl_penalty = 0.001
        self.lower, self.upper = -100.0, 100.0

    def get_true_obj(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """mpc.pytorch's (q, p): the cost C = diag(q), c = p (float64)."""
        return _true_obj(self)


class ContinuousDx(torch.nn.Module):
    """Continuous-time module dynamics for MPC: ode(x (B, n), u (B, m)) -> dx/dt (B, n),
    discretised over dt seconds by integrator ("euler", "midpoint" or "rk4"). MPC sends the ODE's
    graph with GraphDynamics.continuous, so mpcd integrates it and differentiates the integrated
    step (docs/graphs.md); gradients reach ode's parameters. Calling it takes the same step in
    PyTorch."""

    # Butcher tableaux: stage s (from 1) evaluates ode at x + dt sum_j a[s-1][j] k_j; the step is
    # x + dt sum_s b[s] k_s (solver/models/integrators.h).
    _TABLEAUX = {"euler": ([], [1.0]),
                 "midpoint": ([[0.5]], [0.0, 1.0]),
                 "rk4": ([[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6])}

    def __init__(self, ode: torch.nn.Module, dt: float, integrator: str = "rk4") -> None:
        super().__init__()
        if integrator not in self._TABLEAUX:
            raise ValueError("ContinuousDx: integrator must be one of %s, got %r"
                             % (", ".join(self._TABLEAUX), integrator))
        if not (float(dt) > 0 and np.isfinite(dt)):
            raise ValueError("ContinuousDx: dt must be > 0 and finite, got %r" % (dt,))
        self.ode, self.dt, self.integrator = ode, float(dt), integrator

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One integrator step of ode from x (B, n) under u (B, m): x_next (B, n)."""
        a, b = self._TABLEAUX[self.integrator]
        k = []
        for s in range(len(b)):
            y = x
            for j, a_sj in enumerate(a[s - 1] if s else []):
                if a_sj:
                    y = y + self.dt * a_sj * k[j]
            k.append(self.ode(y, u))
        return x + sum(self.dt * b_s * k_s for b_s, k_s in zip(b, k) if b_s)


# What a module stands for, and how it is exported: the example inputs' names and shapes (batch
# first, batch 1) and the output's name.
_GRAPH_KINDS = {
    "dynamics": (("x", "n"), ("u", "m"), "x_next"),   # dx(x, u) -> x_next
    "cost": (("tau", "n+m"), "cost"),                 # cost(tau) -> (1,)
    "constraint": (("x", "n"), ("u", "m"), "g"),      # g(x, u) -> (1, k) <= 0
}


class _ModuleGraph:
    """A torch.nn.Module exported as a graph of one of _GRAPH_KINDS: the ONNX bytes, their SHA-256
    and the module's parameters that are graph initializers, by name, in the order theta
    concatenates them."""

    def __init__(self, module, n, m, kind):
        # Exported from a float64 copy whose parameters hold distinct placeholder values:
        # torch.onnx.export can merge parameters of equal value into one initializer, and every
        # parameter object must keep its own (the request sends the real values by name).
        clone = copy.deepcopy(module).double()
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in clone.parameters():
                parameter.copy_(torch.rand(parameter.shape, generator=generator,
                                           dtype=torch.float64) + 0.5)
        *signature, output_name = _GRAPH_KINDS[kind]
        sizes = {"n": n, "m": m, "n+m": n + m}
        inputs = tuple(torch.zeros(1, sizes[size], dtype=torch.float64) for _, size in signature)
        input_names, output_names = [name for name, _ in signature], [output_name]
        buffer = io.BytesIO()
        # The exporter types 0-d tensors (x[:, 0], scalar parameters) by the default dtype: under
        # float32 it would add Casts to float32 that the module's float64 forward does not do.
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            # Without constant folding, which renames or folds parameters away.
            torch.onnx.export(clone, inputs, buffer, input_names=input_names,
                              output_names=output_names, opset_version=13,
                              do_constant_folding=False)
        except Exception as e:  # the exporter names the op it cannot handle
            raise TypeError("MPC: %s cannot be exported to ONNX: %s" % (
                {"dynamics": "dx"}.get(kind, kind), e)) from e
        finally:
            torch.set_default_dtype(default_dtype)
        self.onnx = buffer.getvalue()
        self.sha256 = hashlib.sha256(self.onnx).hexdigest()
        import onnx  # python3-onnx: only module dynamics need it
        initializers = {t.name for t in onnx.load_from_string(self.onnx).graph.initializer}
        self.names = [name for name, _ in module.named_parameters() if name in initializers]
        self.shapes = [tuple(p.shape) for name, p in module.named_parameters()
                       if name in initializers]
        self.registered = weakref.WeakSet()  # clients known to hold the graph

    def theta(self, module):
        """The parameters the graph uses, flattened and concatenated (differentiable)."""
        parameters = dict(module.named_parameters())
        if not self.names:
            return torch.zeros(0, dtype=torch.float64)
        return torch.cat([parameters[name].reshape(-1) for name in self.names])

    def write(self, theta, client, graph):
        """Fills a GraphDynamics, CostGraph or ConstraintGraph: the hash once the client registered
        the graph, else the bytes; every parameter by name."""
        if client in self.registered:
            graph.sha256 = self.sha256
        else:
            graph.onnx = self.onnx
        offset = 0
        for name, shape in zip(self.names, self.shapes):
            size = int(np.prod(shape))
            to_tensor(theta[offset:offset + size].reshape(shape), graph.parameters[name])
            offset += size

    def stacked_gradient(self, parameters, B):
        """dL/dtheta (B, p) from stacked gradients' graph_parameters (name: (B, shape))."""
        return np.concatenate([np.zeros((B, 0))] +
                              [from_tensor(parameters[name], copy=False).reshape(B, -1)
                               for name in self.names], axis=1)


_MODULE_GRAPHS = weakref.WeakKeyDictionary()
_MODULE_GRAPHS_LOCK = threading.Lock()


def _module_graph(module, n, m, kind="dynamics"):
    """The module's export, made again only when its structure (repr, parameter names, shapes,
    n, m, kind) changed."""
    key = (repr(module), tuple((name, tuple(p.shape)) for name, p in module.named_parameters()),
           n, m, kind)
    with _MODULE_GRAPHS_LOCK:
        cached = _MODULE_GRAPHS.get(module)
        if cached is not None and cached[0] == key:
            return cached[1]
    graph = _ModuleGraph(module, n, m, kind)
    with _MODULE_GRAPHS_LOCK:
        _MODULE_GRAPHS[module] = (key, graph)
    return graph


def _template_graphs(spec, template):
    """The module graphs of a call and the template message each travels in."""
    return [(graph, message) for graph, message in
            ((spec.graph, template.dynamics.graph), (spec.cost_graph, template.cost_graph),
             (spec.constraint_graph, template.constraint_graph),
             (spec.terminal_cost_graph, template.terminal_cost_graph)) if graph is not None]


def _call(spec, method, request):
    """A Solve or Backward; for module graphs, their bytes are sent again when the server does not
    know a hash (FAILED_PRECONDITION: a restart, another replica, an eviction)."""
    graphs = _template_graphs(spec, request.problem_template)
    try:
        response = spec.client._call(method, request, spec.timeout)
    except MpcdError as e:
        if not graphs or e.code != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        for graph, message in graphs:
            message.onnx = graph.onnx
        response = spec.client._call(method, request, spec.timeout)
    for graph, _ in graphs:
        graph.registered.add(spec.client)
    return response


def _true_obj(env: Union[PendulumDx, CartpoleDx]) -> Tuple[torch.Tensor, torch.Tensor]:
    """mpc.pytorch's get_true_obj: q = [goal_weights, ctrl_penalty], p = [-sqrt(w) * goal, 0];
    the cost is C = diag(q), c = p."""
    q = torch.cat((env.goal_weights,
                   env.ctrl_penalty * torch.ones(env.n_ctrl, dtype=torch.float64)))
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

    def wire_array(self, array, contiguous=True):
        """The input as it travels: cut to `steps` along its time axis and, when it is per
        problem, with the batch axis first (B, ...), contiguous (else a view where it can be)."""
        if self.time_axis is not None:
            index = [slice(None)] * array.ndim
            index[self.time_axis] = slice(0, self.steps)
            array = array[tuple(index)]
        if self.batch_axis is not None:
            array = np.moveaxis(array, self.batch_axis, 0)
        return np.ascontiguousarray(array) if contiguous else array

    def assemble(self, grads, dtype, device):
        """The input's gradient from the per-problem ones stacked as (B, ...) (summed where the
        input is shared)."""
        if self.batch_axis is None:
            grad = np.sum(grads, axis=0)
        else:
            grad = np.moveaxis(grads, 0, self.batch_axis)
        if self.time_axis is not None and self.shape[self.time_axis] > self.steps:
            pad = [(0, 0)] * grad.ndim
            pad[self.time_axis] = (0, self.shape[self.time_axis] - self.steps)
            grad = np.pad(grad, pad)
        return _torch(grad.reshape(self.shape), dtype, device)


def _torch(array, dtype, device):
    """A torch tensor of a numpy array (copied only if it is not contiguous and writable, e.g. a
    view of a response's bytes)."""
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = np.array(array, order="C")
    return torch.from_numpy(array).to(dtype=dtype, device=device)


def _check_dims(name, tensor, allowed):
    if tensor.dim() not in allowed:
        raise ValueError("MPC: %s has shape %s; expected %s" % (
            name, tuple(tensor.shape), " or ".join(allowed[d] for d in sorted(allowed))))


def _add_input(spec, wire_name, value, name, allowed, batch_axis):
    """A non-differentiable per-problem input: shared by the batch, or per problem along
    `batch_axis` when it has the most dimensions `allowed` lists."""
    array = _numpy(torch.as_tensor(value)).astype(np.float64)
    if array.ndim not in allowed:
        raise ValueError("MPC: %s has shape %s; expected %s" % (
            name, array.shape, " or ".join(allowed.values())))
    spec.extra[wire_name] = array
    batched = array.ndim == max(allowed)
    spec.layouts[wire_name] = _Layout(array.shape, batch_axis if batched else None)


def _numpy(tensor):
    """A host numpy array of a tensor (float32 stays float32, everything else float64)."""
    if tensor is None:
        return None
    tensor = tensor.detach()
    if tensor.dtype != torch.float32:
        tensor = tensor.double()
    return tensor.cpu().numpy()


class _Spec:
    """Everything about one MPC call that is not a differentiable tensor."""


# The inputs that travel as a graph's parameters by name, not as tensors of their own.
_GRAPH_PARAMS = ("params", "cost_params", "constraint_params", "terminal_cost_params")


# Where each input travels: per problem as one stacked (B, ...) tensor in request.batched
# (BATCH_FIELDS), shared by the batch once in request.problem_template (mpcd.proto's merge rule).
_TEMPLATE_FIELDS = {
    "x_init": lambda p: p.x_init, "C": lambda p: p.cost.quadratic, "c": lambda p: p.cost.linear,
    "F": lambda p: p.dynamics.linear.transition, "f": lambda p: p.dynamics.linear.offset,
    "u_lower": lambda p: p.u_lower, "u_upper": lambda p: p.u_upper, "u_init": lambda p: p.u_init,
    "prev_ctrl": lambda p: p.prev_ctrl, "u_zero_mask": lambda p: p.u_zero_mask,
    "x_lower": lambda p: p.x_lower, "x_upper": lambda p: p.x_upper,
}


def _slices_alike(array):
    """Whether every slice along the first axis holds the first slice's bits (e.g. a cost the
    caller repeated over the batch, or over time): it can then travel once, and each problem (each
    step) still gets the gradient of its own copy. The second slice decides most cases at once."""
    if array.shape[0] < 2 or not np.all(np.isfinite(array[0])):
        return False
    if array.ndim < 2 or array.strides[-1] != array.itemsize:
        array = np.ascontiguousarray(array).reshape(array.shape[0], -1)
    bits = array.view(np.uint8)  # a view of any layout whose last axis is contiguous
    return bool(np.array_equal(bits[1], bits[0]) and (bits[2:] == bits[:1]).all())


def _solve_request(spec, arrays):
    """The SolveRequest of a batch: every per-problem input as one (B, ...) tensor in `batched`
    (one tobytes each), the shared ones (and per-problem ones whose slices are all alike) once in
    problem_template; answers stacked."""
    # The batch is whole: waiting in the server's queue for other requests would only add latency.
    request = mpcd_pb2.SolveRequest(horizon=spec.T, options=mpcd_pb2.SolverOptions(**spec.options),
                                    response_encoding=mpcd_pb2.RAW_FLOAT64,
                                    stacked_response=True, launch_immediately=True)
    # Part of the problem (Backward re-sends the template), so not an option.
    request.problem_template.slew_rate_penalty = spec.slew_rate_penalty
    B = spec.n_batch
    request.batched.count = B
    wire = {name: spec.layouts[name].wire_array(array, contiguous=False)
            for name, array in arrays.items() if array is not None and name not in _GRAPH_PARAMS}
    per_problem = {name for name in wire if spec.layouts[name].batch_axis is not None}
    for name in list(per_problem):
        if _slices_alike(wire[name]):
            wire[name] = wire[name][0]
            per_problem.discard(name)
    # A per-step C whose steps are all alike (mpc.pytorch's harness expands one C over (T, B))
    # travels as one (n_tau, n_tau) matrix: the server then neither copies nor packs it for every
    # problem and step. Its gradient still comes per step, formed from the per-step dL/dc
    # (_quadratic_cost_gradient; float64 C, so Backward forms it whenever C needs it).
    if ("C" in wire and "C" not in per_problem and spec.cost_per_step and
            spec.dtypes["C"] == torch.float64 and wire["C"].ndim == 3 and
            _slices_alike(wire["C"])):
        wire["C"] = wire["C"][0]
    wire = {name: np.ascontiguousarray(array) for name, array in wire.items()}
    # Linear dynamics travel whole (one oneof): F and f both stacked when either is per problem.
    if per_problem & {"F", "f"}:
        for name in {"F", "f"} & set(wire) - per_problem:
            wire[name] = np.broadcast_to(wire[name], (B,) + wire[name].shape)
            per_problem.add(name)
    for name, array in wire.items():
        if name in per_problem:
            to_tensor(array, getattr(request.batched, BATCH_FIELDS[name]))
        else:
            to_tensor(array, _TEMPLATE_FIELDS[name](request.problem_template))
    params = arrays.get("params")
    shared = request.problem_template
    if spec.cost_graph is not None:
        spec.cost_graph.write(arrays["cost_params"], spec.client, shared.cost_graph)
    if spec.constraint_graph is not None:
        spec.constraint_graph.write(arrays["constraint_params"], spec.client,
                                    shared.constraint_graph)
    if spec.terminal_cost_graph is not None:
        spec.terminal_cost_graph.write(arrays["terminal_cost_params"], spec.client,
                                       shared.terminal_cost_graph)
    if spec.graph is not None:
        spec.graph.write(params, spec.client, shared.dynamics.graph)
        if spec.continuous is not None:
            graph = shared.dynamics.graph
            graph.continuous = True
            graph.dt, graph.integrator = spec.continuous.dt, spec.continuous.integrator
    elif spec.model is not None:
        model = shared.dynamics.model
        model.name, model.dt, model.integrator = (spec.model.name, spec.model.dt,
                                                  spec.model.integrator)
        if params is not None and params.ndim == 1:
            model.params.extend(params.astype(np.float64).tolist())
        elif params is not None:
            to_tensor(params, request.batched.model_params)
    return request


# The BatchedProblems field that carries each input's gradient (BackwardRequest.gradient_fields).
_GRADIENT_FIELDS = {
    "x_init": lambda spec: "x_init", "C": lambda spec: "cost_quadratic",
    "c": lambda spec: "cost_linear", "F": lambda spec: "transition", "f": lambda spec: "offset",
    "params": lambda spec: "graph_parameters" if spec.graph is not None else "model_params",
    "cost_params": lambda spec: "cost_graph_parameters",
    "terminal_cost_params": lambda spec: "terminal_cost_graph_parameters",
    "constraint_params": lambda spec: "constraint_graph_parameters",
    "x_lower": lambda spec: "x_lower", "x_upper": lambda spec: "x_upper",
}


def _quadratic_cost_gradient(dc, solutions, time_major=False):
    """dL/dC (B, T, n_tau, n_tau), or (T, B, n_tau, n_tau) when `time_major` (mpc.pytorch's
    layout, so that it needs no copy), from dL/dc (B, T, n_tau) at the solution tau_t = [x_t; u_t]:
    (dc tau' + tau dc') / 2, the server's own formula (docs/gradients.md) in its order of
    operations, so bit for bit its answer (the + 0.0 gives its zeros their sign), without
    8 (n+m)^2 T B bytes on the wire. One entry pair (i, j), (j, i) at a time over all B T steps
    (3x faster than broadcasting over the small trailing axes)."""
    tau = np.concatenate((_stacked(solutions.x), _stacked(solutions.u)), axis=2)
    order = (2, 1, 0) if time_major else (2, 0, 1)  # entry first, then the output's axes
    dc_by_entry = np.ascontiguousarray(dc.transpose(order))
    tau_by_entry = np.ascontiguousarray(tau.transpose(order))
    n_tau = tau.shape[-1]
    gradient = np.empty(dc_by_entry.shape[1:] + (n_tau, n_tau))
    for i in range(n_tau):
        for j in range(i, n_tau):
            entry = dc_by_entry[i] * tau_by_entry[j]
            entry += tau_by_entry[i] * dc_by_entry[j]
            entry *= 0.5
            entry += 0.0
            gradient[..., i, j] = entry
            gradient[..., j, i] = entry
    return gradient


def _stacked(tensor):
    """A stacked response Tensor as a read-only numpy view of its bytes (no copy)."""
    return from_tensor(tensor, copy=False)


def _backward_call(spec, request, solve_request, solve_response):
    """The Backward of `request` (cotangents and options) at the problems of `solve_request` and
    the solutions of `solve_response`: by the name of the server's retained copy when it kept
    one, else with the problems and solutions sent again; also when the server has given the copy
    up since, or a graph it names (both FAILED_PRECONDITION)."""
    if solve_response.retained_solve:
        request.retained_solve = solve_response.retained_solve
        try:
            return spec.client._call(spec.client.stub.Backward, request, spec.timeout)
        except MpcdError as e:
            if e.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
        request.ClearField("retained_solve")
    request.horizon = solve_request.horizon
    request.problem_template.CopyFrom(solve_request.problem_template)
    for graph, message in _template_graphs(spec, request.problem_template):
        message.sha256 = graph.sha256  # the Solve registered it
    request.batched.CopyFrom(solve_request.batched)
    solutions = solve_response.stacked
    request.stacked_solutions.x.CopyFrom(solutions.x)
    request.stacked_solutions.u.CopyFrom(solutions.u)
    request.stacked_solutions.method = solutions.method
    return _call(spec, spec.client.stub.Backward, request)


class _MpcFunction(torch.autograd.Function):
    """Forward: one Solve for the batch. Backward: one Backward (vector-Jacobian product)."""

    @staticmethod
    def forward(ctx, spec, x_init, C, c, F, f, params, cost_params, constraint_params,
                terminal_cost_params, x_lower, x_upper):
        arrays = {name: _numpy(t) for name, t in
                  (("x_init", x_init), ("C", C), ("c", c), ("F", F), ("f", f),
                   ("params", params), ("cost_params", cost_params),
                   ("constraint_params", constraint_params),
                   ("terminal_cost_params", terminal_cost_params))}
        arrays.update(spec.extra)
        request = _solve_request(spec, arrays)
        # The server keeps the problems and solutions for the Backward, which then sends only
        # the cotangents (and everything again if the server gave them up).
        request.retain_for_backward = any(ctx.needs_input_grad[1:])
        response = _call(spec, spec.client.stub.Solve, request)
        stacked = response.stacked
        status_values = np.array(stacked.status, dtype=np.int64)
        statuses = SOLVE_STATUS_NAMES[status_values].tolist()
        if spec.verbose > 0:
            print("mpcd: %s, iterations %s" % (statuses, list(stacked.iterations)))
        unconverged = np.flatnonzero(status_values != mpcd_pb2.CONVERGED).tolist()
        if unconverged and spec.detach_unconverged and spec.exit_unconverged:
            raise NotConvergedError(
                "MPC: problems %s did not converge (statuses %s); pass exit_unconverged=False to "
                "return them (detached) anyway, or raise lqr_iter" %
                (unconverged, [statuses[b] for b in unconverged]))
        if unconverged and spec.verbose >= 0:
            print("mpcd.torch.MPC warning: problems %s did not converge" % unconverged)

        spec.statuses[:] = statuses
        spec.timing["forward"] = (response.timing.queue_seconds, response.timing.solve_seconds)
        # Backward names the server's retained copy of the problems and solutions, or sends them
        # back as they are.
        ctx.spec, ctx.request, ctx.response = spec, request, response
        ctx.detached = unconverged if spec.detach_unconverged else []
        dtype, device = x_init.dtype, x_init.device
        x = _torch(_stacked(stacked.x).transpose(1, 0, 2), dtype, device)
        u = _torch(_stacked(stacked.u).transpose(1, 0, 2), dtype, device)
        costs = torch.from_numpy(np.array(stacked.cost, dtype=np.float64)).to(dtype=dtype,
                                                                              device=device)
        ctx.mark_non_differentiable(costs)
        return x, u, costs

    @staticmethod
    def backward(ctx, grad_x, grad_u, _grad_costs):
        spec = ctx.spec
        names = ("x_init", "C", "c", "F", "f", "params", "cost_params", "constraint_params",
                 "terminal_cost_params", "x_lower", "x_upper")
        wanted = [name for name, needs in zip(names, ctx.needs_input_grad[1:])
                  if needs and name in spec.layouts]
        if not wanted:
            return (None,) * (len(names) + 1)
        B = spec.n_batch
        # float32 inputs get float32 gradients (rounded once by the server).
        float32 = all(spec.dtypes[name] == torch.float32 for name in wanted)
        request = mpcd_pb2.BackwardRequest(
            mode=mpcd_pb2.BackwardMode.Value(spec.gradient_mode)
            if isinstance(spec.gradient_mode, str) else spec.gradient_mode,
            response_encoding=mpcd_pb2.RAW_FLOAT32 if float32 else mpcd_pb2.RAW_FLOAT64,
            stacked_response=True, launch_immediately=True)
        solutions = ctx.response.stacked
        request.stacked_cotangents.SetInParent()  # stacked, even when both are absent (zero)
        # Only the gradients autograd asked for travel; a per-step C's is formed here from c's.
        C_from_c = "C" in wanted and spec.cost_per_step and not float32
        request.gradient_fields.extend(sorted(
            {_GRADIENT_FIELDS[name](spec) for name in wanted if not (name == "C" and C_from_c)} |
            ({"cost_linear"} if C_from_c else set())))
        for grad, target in ((grad_x, request.stacked_cotangents.x),
                             (grad_u, request.stacked_cotangents.u)):
            if grad is None:
                continue  # absent: zero
            array = np.moveaxis(_numpy(grad), 1, 0)  # (B, T, dim)
            if ctx.detached:
                array = array.copy()
                array[ctx.detached] = 0.0
            to_tensor(np.ascontiguousarray(array), target)
        response = _backward_call(spec, request, ctx.request, ctx.response)
        spec.timing["backward"] = (response.timing.queue_seconds, response.timing.solve_seconds)
        stacked = response.stacked_gradients
        fields = {
            "x_init": stacked.x_init, "C": stacked.cost_quadratic, "c": stacked.cost_linear,
            "F": stacked.transition, "f": stacked.offset,
            "x_lower": stacked.x_lower, "x_upper": stacked.x_upper,
        }
        grads = {}
        for name in wanted:
            if name == "C" and C_from_c and spec.layouts["C"].batch_axis == 1:
                # (T, B, n_tau, n_tau) as given: formed in place, nothing to move or sum.
                grads[name] = _torch(_quadratic_cost_gradient(
                    _stacked(stacked.cost_linear), solutions, time_major=True),
                    spec.dtypes[name], spec.devices[name])
                continue
            if name == "C" and C_from_c:
                grad = _quadratic_cost_gradient(_stacked(stacked.cost_linear), solutions)
            elif name == "cost_params":
                grad = spec.cost_graph.stacked_gradient(stacked.cost_graph_parameters, B)
            elif name == "terminal_cost_params":
                grad = spec.terminal_cost_graph.stacked_gradient(
                    stacked.terminal_cost_graph_parameters, B)
            elif name == "constraint_params":
                grad = spec.constraint_graph.stacked_gradient(stacked.constraint_graph_parameters,
                                                              B)
            elif name == "params" and spec.graph is not None:
                grad = spec.graph.stacked_gradient(stacked.graph_parameters, B)
            elif name == "params":
                grad = _stacked(stacked.model_params)
            else:
                grad = _stacked(fields[name])
            grads[name] = spec.layouts[name].assemble(grad, spec.dtypes[name], spec.devices[name])
            if name in spec.bound_shapes and grads[name].shape != spec.bound_shapes[name]:
                # A bound given as one number for every state.
                grads[name] = grads[name].sum().reshape(spec.bound_shapes[name])
        return (None,) + tuple(grads.get(name) for name in names)


class MPC(torch.nn.Module):
    """mpc.pytorch's MPC(n_state, n_ctrl, T, u_lower, u_upper, u_zero_I, u_init, lqr_iter,
    grad_method, delta_u, verbose, eps, back_eps, n_batch, linesearch_decay, max_linesearch_iter,
    exit_unconverged, detach_unconverged, backprop, slew_rate_penalty, prev_ctrl,
    not_improved_lim, best_cost_eps), solved by an mpcd server.

    mpcd's own keyword arguments: client (an mpcd.Client) or target ("host:port"; default
    $MPCD_TARGET or localhost:50051; every MPC for one target shares one channel, see
    shared_client), gradient_mode ("DEFAULT", "EXACT", "FULL_CHAIN"), timeout
    (seconds per call), method ("ILQR", the default; "CEM", "MPPI", "CEM_THEN_ILQR",
    "MPPI_THEN_ILQR": sampling-based MPC, alone or as the iLQR's warm start) and sampling (a dict
    of the sampling options: samples, elites, sampling_iterations, initial_std, min_std,
    temperature, momentum, seed). Backward through CEM or MPPI alone raises mpcd.MpcdError with
    code FAILED_PRECONDITION (a sampled plan has no implicit gradient); through the *_THEN_ILQR
    chains it is the iLQR's. grad_method and back_eps are accepted and unused (the server
    linearises by automatic differentiation). delta_u, slew_rate_penalty (with prev_ctrl, (n_ctrl)
    or (n_batch, n_ctrl)) and u_zero_I ((T, n_batch, n_ctrl) or (T, n_ctrl), true = pinned to 0)
    have mpc.pytorch's meaning; slew_rate_penalty needs LinDx or torch.nn.Module dynamics (not the
    built-in models yet), and u_zero_I's pinned controls get no gradient (mpc.pytorch's backward
    ignores u_zero_I without bounds: docs/gradients.md). x_lower and x_upper (mpcd's: a float,
    (n_state) or (T, n_state), shared by the batch, +-inf unbounded) bound x_1 .. x_{T-1}
    (mpcd.proto's Problem.x_lower); a bound given as a tensor that requires grad gets dL/d(bound)
    (the active rows as equalities: docs/gradients.md). constraint: a torch.nn.Module g(x (B,
    n_state), u (B, n_ctrl)) -> (B, k), the stage constraints g(x_t, u_t) <= 0 at every t (sent as
    a constraint graph, docs/graphs.md "Constraints as graphs"; its parameters get .grad like a
    module's dynamics). terminal_cost: a torch.nn.Module cost(tau (B, n_state + n_ctrl)) -> (B,),
    the cost of the last step t = T-1 in place of `cost` there (sent as a terminal cost graph,
    docs/graphs.md "Terminal cost graphs"; its parameters get .grad). options: further mpcd
    SolverOptions fields by name (e.g. max_constraint_iterations, constraint_tolerance).
    Each problem iterates on its own (mpc.pytorch couples the stopping test across the batch), so
    "converged" is per problem.
    """

    def __init__(self, n_state: int, n_ctrl: int, T: int,
                 u_lower: Optional[Union[float, torch.Tensor]] = None,
                 u_upper: Optional[Union[float, torch.Tensor]] = None,
                 u_zero_I: Optional[torch.Tensor] = None, u_init: Optional[torch.Tensor] = None,
                 lqr_iter: int = 10, grad_method: Any = None, delta_u: Optional[float] = None,
                 verbose: int = 0, eps: float = 1e-7, back_eps: float = 1e-7,
                 n_batch: Optional[int] = None, linesearch_decay: float = 0.2,
                 max_linesearch_iter: int = 10, exit_unconverged: bool = True,
                 detach_unconverged: bool = True, backprop: bool = True,
                 slew_rate_penalty: Optional[float] = None,
                 prev_ctrl: Optional[torch.Tensor] = None, not_improved_lim: int = 5,
                 best_cost_eps: float = 1e-4, *, client: Optional[Client] = None,
                 target: Optional[str] = None, gradient_mode: Union[str, int] = "DEFAULT",
                 timeout: Optional[float] = None, method: str = "ILQR",
                 sampling: Optional[Mapping[str, Any]] = None,
                 x_lower: Optional[Union[float, torch.Tensor]] = None,
                 x_upper: Optional[Union[float, torch.Tensor]] = None,
                 constraint: Optional[torch.nn.Module] = None,
                 terminal_cost: Optional[torch.nn.Module] = None,
                 options: Optional[Mapping[str, Any]] = None) -> None:
        """The arguments are described in the class docstring (mpc.pytorch's first, then
        mpcd's keyword-only ones)."""
        super().__init__()
        if (u_lower is None) != (u_upper is None):
            raise ValueError("MPC: give both u_lower and u_upper or neither")
        self.u_zero_I, self.prev_ctrl = u_zero_I, prev_ctrl
        self.slew_rate_penalty = float(slew_rate_penalty or 0.0)
        self.n_state, self.n_ctrl, self.T = n_state, n_ctrl, T
        self.u_lower, self.u_upper, self.u_init = u_lower, u_upper, u_init
        self.x_lower, self.x_upper = x_lower, x_upper
        if constraint is not None and not isinstance(constraint, torch.nn.Module):
            raise TypeError("MPC: constraint must be a torch.nn.Module g(x (B, n_state), "
                            "u (B, n_ctrl)) -> (B, k), feasible where g <= 0")
        self.constraint = constraint
        if terminal_cost is not None and not isinstance(terminal_cost, torch.nn.Module):
            raise TypeError("MPC: terminal_cost must be a torch.nn.Module cost(tau (B, n_state + "
                            "n_ctrl)) -> (B,), the cost of t = T-1")
        self.terminal_cost = terminal_cost
        self.n_batch = n_batch
        self.verbose = verbose
        self.exit_unconverged = exit_unconverged
        self.detach_unconverged = detach_unconverged
        self.backprop = backprop
        self.grad_method, self.back_eps = grad_method, back_eps
        self.options: Dict[str, Any] = dict(max_iterations=lqr_iter, tolerance=eps,
                            linesearch_decay=linesearch_decay,
                            max_linesearch_iterations=max_linesearch_iter,
                            best_cost_eps=best_cost_eps, not_improved_limit=not_improved_lim)
        if delta_u is not None:
            self.options["delta_u"] = float(delta_u)
        self.options["method"] = method
        self.options.update(sampling or {})
        self.options.update(options or {})
        if client is None:
            client = shared_client(target or os.environ.get("MPCD_TARGET", DEFAULT_TARGET))
        self.client: Client = client
        self.gradient_mode = gradient_mode
        self.timeout = timeout
        # mpcd's per-problem SolveStatus names of the last forward ("CONVERGED", ...).
        self.last_statuses: List[str] = []
        # The server's (queue_seconds, solve_seconds) of the last call's "forward" (Solve) and,
        # once it ran, "backward" (Backward): the solver's share of a training step.
        self.last_timing: Dict[str, Tuple[float, float]] = {}

    def forward(self, x_init: torch.Tensor, cost: Union[QuadCostLike, torch.nn.Module],
                dx: Union[LinDxLike, ModelDx, torch.nn.Module]
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Solves the batch: x_init (B, n_state); cost a QuadCost(C, c) or a module cost(tau);
        dx a LinDx(F, f), a ModelDx (PendulumDx, CartpoleDx, ...) or a module dx(x, u) (shapes in
        the module docstring). Returns x (T, B, n_state), u (T, B, n_ctrl) and costs (B); x and u
        are differentiable with respect to every input that requires grad, costs are not.
        Raises NotConvergedError for unconverged problems with exit_unconverged and
        detach_unconverged, MpcdError (or a subclass) when the server refuses the call."""
        # Duck-typed, so that mpc.pytorch's own QuadCost and LinDx namedtuples work too.
        module_cost = isinstance(cost, torch.nn.Module) and not (hasattr(cost, "C") and
                                                                 hasattr(cost, "c"))
        if not (module_cost or (hasattr(cost, "C") and hasattr(cost, "c"))):
            raise TypeError("MPC: cost must be a QuadCost(C, c) or a torch.nn.Module "
                            "cost(tau (B, n_state + n_ctrl)) -> (B,)")
        module = isinstance(dx, torch.nn.Module) and not (hasattr(dx, "F") and hasattr(dx, "f"))
        if not (module or isinstance(dx, ModelDx) or (hasattr(dx, "F") and hasattr(dx, "f"))):
            raise TypeError("MPC: dx must be LinDx(F, f), a built-in model (mpcd.torch.ModelDx, "
                            "PendulumDx, CartpoleDx) or a torch.nn.Module dx(x, u) -> x_next")
        n, m, T = self.n_state, self.n_ctrl, self.T
        _check_dims("x_init", x_init, {2: "(n_batch, n_state)"})
        B = x_init.shape[0]
        if self.n_batch is not None and self.n_batch != B:
            raise ValueError("MPC: n_batch=%d but x_init has %d rows" % (self.n_batch, B))

        spec = _Spec()
        spec.statuses = self.last_statuses = []
        spec.timing = self.last_timing = {}
        spec.client, spec.T, spec.n_batch = self.client, T, B
        spec.options, spec.timeout, spec.verbose = self.options, self.timeout, self.verbose
        spec.gradient_mode = self.gradient_mode
        spec.exit_unconverged = self.exit_unconverged
        spec.detach_unconverged = self.detach_unconverged
        spec.layouts = {"x_init": _Layout(x_init.shape, 0)}

        C = c = cost_params = spec.cost_graph = None
        if module_cost:
            # Sent as a cost graph (docs/graphs.md "Costs as graphs"), its weights by name.
            spec.cost_graph = _module_graph(cost, n, m, "cost")
            cost_params = spec.cost_graph.theta(cost)
            spec.layouts["cost_params"] = _Layout(cost_params.shape, None)
        else:
            C, c = cost.C, cost.c
            _check_dims("C", C, {2: "(n_tau, n_tau)", 3: "(T, n_tau, n_tau)",
                                 4: "(T, B, n_tau, n_tau)"})
            spec.layouts["C"] = _Layout(C.shape, 1 if C.dim() == 4 else None)
        if c is not None:
            _check_dims("c", c, {1: "(n_tau)", 2: "(T, n_tau)", 3: "(T, B, n_tau)"})
            spec.layouts["c"] = _Layout(c.shape, 1 if c.dim() == 3 else None)
        # C and c with a time axis: the server's dL/dc is per step and dL/dC follows from it
        # (_quadratic_cost_gradient), so dL/dC need not travel.
        spec.cost_per_step = C is not None and C.dim() >= 3 and c is not None and c.dim() >= 2

        F = f = params = None
        spec.model = spec.graph = spec.continuous = None
        if module:
            # A ContinuousDx sends its ODE's graph and the time step beside it.
            spec.continuous = dx if isinstance(dx, ContinuousDx) else None
            graph_module = dx.ode if spec.continuous is not None else dx
            spec.graph = _module_graph(graph_module, n, m)
            params = spec.graph.theta(graph_module)
            spec.layouts["params"] = _Layout(params.shape, None)
        elif not isinstance(dx, ModelDx):
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

        constraint_params = spec.constraint_graph = None
        if self.constraint is not None:
            spec.constraint_graph = _module_graph(self.constraint, n, m, "constraint")
            constraint_params = spec.constraint_graph.theta(self.constraint)
            spec.layouts["constraint_params"] = _Layout(constraint_params.shape, None)

        terminal_cost_params = spec.terminal_cost_graph = None
        if self.terminal_cost is not None:
            # The cost of t = T-1 in place of cost's (docs/graphs.md "Terminal cost graphs").
            spec.terminal_cost_graph = _module_graph(self.terminal_cost, n, m, "cost")
            terminal_cost_params = spec.terminal_cost_graph.theta(self.terminal_cost)
            spec.layouts["terminal_cost_params"] = _Layout(terminal_cost_params.shape, None)

        inputs = (("x_init", x_init), ("C", C), ("c", c), ("F", F), ("f", f),
                  ("params", params), ("cost_params", cost_params),
                  ("constraint_params", constraint_params),
                  ("terminal_cost_params", terminal_cost_params))
        spec.dtypes = {name: t.dtype for name, t in inputs if t is not None}
        spec.devices = {name: t.device for name, t in inputs if t is not None}
        spec.n, spec.m = n, m
        # Bounds and the warm start: not differentiated, sent like the other inputs.
        spec.extra = {}
        if self.u_lower is not None:
            for name, bound in (("u_lower", self.u_lower), ("u_upper", self.u_upper)):
                spec.extra[name], spec.layouts[name] = self._controls(name, bound)
        if self.u_init is not None:
            u_init = _numpy(torch.as_tensor(self.u_init))
            if u_init.ndim not in (2, 3):
                raise ValueError("MPC: u_init must be (T, n_ctrl) or (T, n_batch, n_ctrl); got "
                                 "shape %s" % (u_init.shape,))
            spec.extra["u_init"] = u_init
            spec.layouts["u_init"] = _Layout(u_init.shape, 1 if u_init.ndim == 3 else None)
        # State bounds: sent in the template; a tensor that requires grad gets dL/d(bound).
        spec.bound_shapes = {}
        bound_tensors = {}
        for name, bound in (("x_lower", self.x_lower), ("x_upper", self.x_upper)):
            if bound is not None:
                spec.extra[name], spec.layouts[name] = self._states(name, bound)
            if torch.is_tensor(bound):
                bound_tensors[name] = bound
                spec.bound_shapes[name] = bound.shape
                spec.dtypes[name], spec.devices[name] = bound.dtype, bound.device
        x_lower, x_upper = bound_tensors.get("x_lower"), bound_tensors.get("x_upper")
        spec.slew_rate_penalty = self.slew_rate_penalty
        if self.prev_ctrl is not None:
            _add_input(spec, "prev_ctrl", self.prev_ctrl, "prev_ctrl",
                       {1: "(n_ctrl)", 2: "(n_batch, n_ctrl)"}, batch_axis=0)
        if self.u_zero_I is not None:
            _add_input(spec, "u_zero_mask", self.u_zero_I, "u_zero_I",
                       {2: "(T, n_ctrl)", 3: "(T, n_batch, n_ctrl)"}, batch_axis=1)

        if not self.backprop:
            with torch.no_grad():
                return _MpcFunction.apply(spec, x_init, C, c, F, f, params, cost_params,
                                          constraint_params, terminal_cost_params, x_lower,
                                          x_upper)
        return _MpcFunction.apply(spec, x_init, C, c, F, f, params, cost_params, constraint_params,
                                  terminal_cost_params, x_lower, x_upper)

    def _controls(self, name: str, bound: Union[float, torch.Tensor]
                  ) -> Tuple[np.ndarray, _Layout]:
        """A bound as an array and its layout: (m) shared by the batch, or (T, B, m)."""
        if isinstance(bound, (int, float)):
            array = np.full(self.n_ctrl, float(bound))
        else:
            array = _numpy(torch.as_tensor(bound))
            if array.ndim <= 1:
                array = np.broadcast_to(array, (self.n_ctrl,))
            elif array.ndim != 3:
                raise ValueError("MPC: %s must be a float, (n_ctrl) or (T, n_batch, n_ctrl); got "
                                 "shape %s" % (name, array.shape))
        return array, _Layout(array.shape, 1 if array.ndim == 3 else None)

    def _states(self, name: str, bound: Union[float, torch.Tensor]
                ) -> Tuple[np.ndarray, _Layout]:
        """A state bound shared by the batch: a float, (n_state) or (T, n_state), +-inf
        unbounded."""
        if isinstance(bound, (int, float)):
            array = np.full(self.n_state, float(bound))
        else:
            array = _numpy(torch.as_tensor(bound)).astype(np.float64)
            if array.ndim <= 1:
                array = np.broadcast_to(array, (self.n_state,))
            elif array.shape != (self.T, self.n_state):
                raise ValueError("MPC: %s must be a float, (n_state) or (T, n_state) (shared by "
                                 "the batch); got shape %s" % (name, array.shape))
        return np.ascontiguousarray(array), _Layout(array.shape, None)


__all__ = ["MPC", "QuadCost", "LinDx", "GradMethods", "ModelDx", "PendulumDx", "CartpoleDx",
           "ContinuousDx", "NotConvergedError", "shared_client"]
