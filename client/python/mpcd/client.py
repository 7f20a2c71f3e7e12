"""mpcd.Client: the MpcService over gRPC with numpy arrays in and out.

Arrays follow proto/mpcd/v1/mpcd.proto (mpc.pytorch's conventions, one problem at a time): x_init
(n), C (n+m, n+m) or (T, n+m, n+m), c (n+m) or (T, n+m), F (n, n+m) or (T-1, n, n+m), f (n) or
(T-1, n), bounds (m) or (T, m), u_init (T, m). Results are numpy arrays (float64, or float32 for
float32 inputs): x (T, n), u (T, m). Arrays travel as raw little-endian bytes (Tensor.raw_data).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import threading
from typing import (Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar,
                    Union, cast)

import grpc
import numpy as np
import numpy.typing as npt

from mpcd.google.rpc import error_details_pb2, status_pb2
from mpcd.grpc.health.v1 import health_pb2
from mpcd.v1 import mpcd_pb2, mpcd_pb2_grpc

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


# ---------------------------------------------------------------------------------------------
# Errors


@dataclasses.dataclass(frozen=True)
class FieldViolation:
    """One broken field of a refused request (google.rpc.BadRequest.FieldViolation): `field`, the
    proto field path (e.g. "problems[2].x_init"), and `description`, what is wrong with it (e.g.
    "expected shape (3), got (4)")."""
    field: str
    description: str


class MpcdError(Exception):
    """A failed call. `code` is the grpc.StatusCode, `details` the server's message (for
    INVALID_ARGUMENT it names the field, e.g. "problems[0].x_init: expected shape (3), got (4)").

    From the error's google.rpc.Status (gRPC's rich error model), when the server sent one:
    `violations`, every broken field of an INVALID_ARGUMENT request (a list of FieldViolation; up
    to 16, also for problems after the first broken one); `retry_delay`, the seconds an
    UNAVAILABLE server asks to wait before retrying (0: retry elsewhere at once; None: not said).
    `request_id` is the id the server logged the call under (its x-request-id), or None."""

    def __init__(self, code: grpc.StatusCode, details: str,
                 violations: Iterable[FieldViolation] = (), retry_delay: Optional[float] = None,
                 request_id: Optional[str] = None) -> None:
        super().__init__("%s: %s" % (code.name, details))
        self.code: grpc.StatusCode = code
        self.details: str = details
        self.violations: List[FieldViolation] = list(violations)
        self.retry_delay: Optional[float] = retry_delay
        self.request_id: Optional[str] = request_id


class InvalidArgumentError(MpcdError, ValueError):
    """INVALID_ARGUMENT: the request is malformed; the message names the field."""


class DeadlineExceededError(MpcdError, TimeoutError):
    """DEADLINE_EXCEEDED: the call's deadline (timeout) passed."""


class UnavailableError(MpcdError):
    """UNAVAILABLE: no server, queue full or server stopping; retry with backoff."""


_STATUS_CODES: Dict[int, grpc.StatusCode] = {
    code.value[0]: code for code in grpc.StatusCode}  # google.rpc.Code -> grpc

_ERROR_CLASSES: Dict[grpc.StatusCode, Type[MpcdError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


_STATUS_DETAILS_KEY = "grpc-status-details-bin"  # gRPC's trailer for a google.rpc.Status


def _metadata(rpc_error: grpc.RpcError, which: str) -> Dict[str, Any]:
    method = getattr(rpc_error, which, None)
    return dict(method() or ()) if method is not None else {}


def _status_details(rpc_error: grpc.RpcError) -> Tuple[List[FieldViolation], Optional[float]]:
    """(violations, retry_delay) from the google.rpc.Status the server put in the trailer."""
    violations: List[FieldViolation] = []
    retry_delay: Optional[float] = None
    encoded = _metadata(rpc_error, "trailing_metadata").get(_STATUS_DETAILS_KEY)
    if encoded is None:
        return violations, retry_delay
    for detail in status_pb2.Status.FromString(encoded).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations += [FieldViolation(v.field, v.description)
                           for v in bad_request.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
    return violations, retry_delay


def _error_from(rpc_error: grpc.RpcError) -> MpcdError:
    """The MpcdError (or subclass, by status code) of a failed gRPC call."""
    code = rpc_error.code()
    violations, retry_delay = _status_details(rpc_error)
    return _ERROR_CLASSES.get(code, MpcdError)(
        code, rpc_error.details(), violations=violations, retry_delay=retry_delay,
        request_id=_metadata(rpc_error, "initial_metadata").get("x-request-id"))


# ---------------------------------------------------------------------------------------------
# Problems in, results out


@dataclasses.dataclass
class Linear:
    """Linear dynamics x_{t+1} = F_t [x_t; u_t] + f_t: F (n, n+m) or (T-1, n, n+m), f (n) or
    (T-1, n) (None: zero)."""
    F: npt.ArrayLike
    f: Optional[npt.ArrayLike] = None


@dataclasses.dataclass
class Model:
    """A built-in model (Client.models() lists them) by `name`. params=None means the model's
    defaults, dt=0 its default time step, integrator="" its default integrator."""
    name: str
    params: Optional[npt.ArrayLike] = None
    dt: float = 0.0
    integrator: str = ""


@dataclasses.dataclass
class Tracking:
    """The tracking cost sum_t 0.5 sum_i w_t[i] (tau_t[i] - goal_t[i])^2 (mpcd.proto's
    TrackingCost), given in place of C and c: goals and weights of the states, (n) or (T, n), and of
    the controls, (m) or (T, m); w_x_terminal (n) weighs the last state instead of w_x. None: u_goal
    zeros, w_x and w_u ones, no terminal weight. In a Gradient, dL/d(each input)."""
    x_goal: Optional[npt.ArrayLike]
    u_goal: Optional[npt.ArrayLike] = None
    w_x: Optional[npt.ArrayLike] = None
    w_u: Optional[npt.ArrayLike] = None
    w_x_terminal: Optional[npt.ArrayLike] = None


@dataclasses.dataclass
class CostGraph:
    """A stage cost l(tau_t; theta) given as an ONNX graph (mpcd.proto's CostGraph,
    docs/graphs.md "Costs as graphs"), the same at every t: onnx, a serialized ModelProto with the
    one input "tau" (n+m) or (1, n+m) and a scalar output, or the sha256 or --model_dir name of a
    graph the server holds; parameters, new initializer values by name (numpy arrays shaped like
    each). In a Gradient, parameters holds dL/d(each initializer)."""
    onnx: Optional[bytes] = None
    sha256: Optional[str] = None
    name: Optional[str] = None
    parameters: Optional[Mapping[str, npt.ArrayLike]] = None


@dataclasses.dataclass
class ConstraintGraph:
    """Stage constraints g(x_t, u_t; theta) <= 0 given as an ONNX graph (mpcd.proto's
    ConstraintGraph, docs/graphs.md "Constraints as graphs"), the same at every t: onnx, a
    serialized ModelProto with inputs "x" (n) and "u" (m) and one output of k elements, or the
    sha256 or --model_dir name of a graph the server holds; parameters, new initializer values by
    name. In a Gradient, parameters holds dL/d(each initializer)."""
    onnx: Optional[bytes] = None
    sha256: Optional[str] = None
    name: Optional[str] = None
    parameters: Optional[Mapping[str, npt.ArrayLike]] = None


@dataclasses.dataclass
class Problem:
    """One problem (shapes in the module docstring). As a request's `template`, any field may be
    None: every problem takes each template field it leaves None (mpcd.proto's merge rule). Give
    either the quadratic cost (C, c) or `tracking` (then C=None).

    x_init (n); C, c the quadratic cost; dynamics a Linear or a Model; u_lower, u_upper the control
    bounds; u_init (T, m) the warm start; slew_rate_penalty, prev_ctrl (m) and u_zero_mask (T, m)
    mpc.pytorch's slew_rate_penalty, prev_ctrl and u_zero_I; x_lower, x_upper (n) or (T, n) bounds
    on x_1 .. x_{T-1}; constraints (G, h) the stage constraints G_t [x_t; u_t] <= h_t; tracking a
    Tracking cost; cost_graph a CostGraph in place of C, c and tracking; terminal_cost_graph the
    cost of t = T-1; constraint_graph the stage constraints g(x_t, u_t) <= 0 (a ConstraintGraph)."""
    x_init: Optional[npt.ArrayLike]
    C: Optional[npt.ArrayLike] = None
    c: Optional[npt.ArrayLike] = None
    dynamics: Optional[Union[Linear, Model]] = None
    u_lower: Optional[npt.ArrayLike] = None
    u_upper: Optional[npt.ArrayLike] = None
    u_init: Optional[npt.ArrayLike] = None
    # mpc.pytorch's slew_rate_penalty (0 = none; linear dynamics), its prev_ctrl (m) and its
    # u_zero_I as a (T, m) mask of 0/1 (mpcd.proto's Problem describes each).
    slew_rate_penalty: float = 0.0
    prev_ctrl: Optional[npt.ArrayLike] = None
    u_zero_mask: Optional[npt.ArrayLike] = None
    # State bounds on x_1 .. x_{T-1}, (n) or (T, n), +-inf for unbounded entries (either alone),
    # and general stage constraints G_t [x_t; u_t] <= h_t as a pair (G, h): G (k, n+m) or
    # (T, k, n+m), h (k) or (T, k) (mpcd.proto's Problem describes them).
    x_lower: Optional[npt.ArrayLike] = None
    x_upper: Optional[npt.ArrayLike] = None
    constraints: Optional[Tuple[npt.ArrayLike, npt.ArrayLike]] = None
    tracking: Optional[Tracking] = None
    # In place of C, c and tracking: a stage cost graph.
    cost_graph: Optional[CostGraph] = None
    # The cost of the last step t = T-1 in place of the stage cost's (C, c, tracking or
    # cost_graph then apply to t = 0 .. T-2): a CostGraph of the same input tau = [x; u].
    terminal_cost_graph: Optional[CostGraph] = None
    # Nonlinear stage constraints g(x_t, u_t) <= 0 beside x_lower, x_upper and constraints.
    constraint_graph: Optional[ConstraintGraph] = None


@dataclasses.dataclass
class Solution:
    """One problem's answer: the trajectory x (T, n), u (T, m), its cost and how the solve ended
    (status, iterations, the last step_norm and regularization); the gains, Jacobians and their
    diagnostics when the call asked for them."""
    x: np.ndarray                 # (T, n)
    u: np.ndarray                 # (T, m)
    cost: float
    status: str                   # "CONVERGED", "MAX_ITERATIONS", "LINESEARCH_FAILED", ...
    iterations: int
    step_norm: float
    regularization: float
    feedback: Optional[np.ndarray] = None         # K (T, m, n), with return_gains
    feedforward: Optional[np.ndarray] = None      # k (T, m), with return_gains
    x_init_jacobian: Optional[np.ndarray] = None  # (T, n+m, n)
    params_jacobian: Optional[np.ndarray] = None  # (T, n+m, p)
    jacobian_diagnostics: Optional[Dict[str, Any]] = None
    # The SolverMethod that produced it ("ILQR", "CEM", "MPPI", "CEM_THEN_ILQR", ...); backward
    # sends it back, and the server refuses CEM and MPPI solutions (no implicit gradient).
    method: str = "ILQR"
    # max over t and constraint rows of max(0, G_t tau_t - h_t), state bounds included.
    max_constraint_violation: float = 0.0
    # A cost graph's stage quadratisations whose Hessian was projected to positive semi-definite.
    cost_hessian_projections: int = 0


@dataclasses.dataclass
class SolveResult:
    """Client.solve's answer: one Solution per problem, in order, and the call's timing (seconds
    queued in the server's batcher and solving), the server's batch size and backend."""
    solutions: List[Solution]
    queue_seconds: float
    solve_seconds: float
    batch_size: int
    backend: str


@dataclasses.dataclass
class Gradient:
    """dL/d(input) for one problem, each shaped like the input it differentiates (None where the
    problem had no such input: F, f for models, params for linear dynamics). diagnostics: the
    backward's GradientDiagnostics as a dict (status, regularization, condition_estimate, ...)."""
    x_init: Optional[np.ndarray]
    C: Optional[np.ndarray]
    c: Optional[np.ndarray]
    F: Optional[np.ndarray]
    f: Optional[np.ndarray]
    params: Optional[np.ndarray]
    diagnostics: Dict[str, Any]
    # A problem with a tracking cost: dL/d(its goals and weights) (then C and c are None).
    tracking: Optional[Tracking] = None
    # A problem with a cost graph: dL/d(its parameters) (then C and c are None).
    cost_graph: Optional[CostGraph] = None
    # A problem with a terminal cost graph: dL/d(its parameters) (C and c, when the stage cost is
    # quadratic, are zero at t = T-1).
    terminal_cost_graph: Optional[CostGraph] = None
    # A problem with a constraint graph: dL/d(its parameters).
    constraint_graph: Optional[ConstraintGraph] = None
    # A problem with stage constraints: dL/dx_lower, dL/dx_upper and dL/d(G, h), shaped as given
    # (None where the problem had no such input); nonzero only on active rows.
    x_lower: Optional[np.ndarray] = None
    x_upper: Optional[np.ndarray] = None
    constraints: Optional[Tuple[np.ndarray, np.ndarray]] = None


@dataclasses.dataclass
class BackwardResult:
    """Client.backward's answer: one Gradient per problem, in order, and the call's timing, batch
    size and backend as in SolveResult."""
    gradients: List[Gradient]
    queue_seconds: float
    solve_seconds: float
    batch_size: int
    backend: str


@dataclasses.dataclass
class Batch:
    """B problems of equal shapes, each per-problem input stacked along a leading batch axis (one
    array, one tobytes() on the wire: mpcd.proto's BatchedProblems). None takes the field from the
    call's template: x_init (B, n); C (B, n+m, n+m) or (B, T, n+m, n+m); c (B, n+m) or
    (B, T, n+m); F (B, n, n+m) or (B, T-1, n, n+m) and f (B, n) or (B, T-1, n) (linear dynamics,
    f only with F); u_lower, u_upper (B, m) or (B, T, m); u_init (B, T, m); params (B, p): the
    parameters of the template's model; prev_ctrl (B, m) and u_zero_mask (B, T, m) (the template
    gives slew_rate_penalty); tracking, a Tracking whose arrays are stacked (B, ...) (x_goal
    (B, n) or (B, T, n), ...; None entries take the template's tracking inputs). count: B
    (default: the first dimension of the first array given)."""
    x_init: Optional[npt.ArrayLike] = None
    C: Optional[npt.ArrayLike] = None
    c: Optional[npt.ArrayLike] = None
    F: Optional[npt.ArrayLike] = None
    f: Optional[npt.ArrayLike] = None
    u_lower: Optional[npt.ArrayLike] = None
    u_upper: Optional[npt.ArrayLike] = None
    u_init: Optional[npt.ArrayLike] = None
    params: Optional[npt.ArrayLike] = None
    prev_ctrl: Optional[npt.ArrayLike] = None
    u_zero_mask: Optional[npt.ArrayLike] = None
    tracking: Optional[Tracking] = None
    count: Optional[int] = None


@dataclasses.dataclass
class StackedSolveResult:
    """Every problem's solution stacked along a leading batch axis (SolveResponse.stacked), from
    Client.solve_batched: Solution's fields with a leading (B) axis, then the call's method,
    timing, batch size and backend as in SolveResult."""
    x: np.ndarray                 # (B, T, n)
    u: np.ndarray                 # (B, T, m)
    cost: np.ndarray              # (B)
    status: List[str]             # B names: "CONVERGED", "MAX_ITERATIONS", ...
    iterations: np.ndarray        # (B)
    step_norm: np.ndarray         # (B)
    regularization: np.ndarray    # (B)
    feedback: Optional[np.ndarray]         # K (B, T, m, n), with return_gains
    feedforward: Optional[np.ndarray]      # k (B, T, m), with return_gains
    x_init_jacobian: Optional[np.ndarray]  # (B, T, n+m, n)
    params_jacobian: Optional[np.ndarray]  # (B, T, n+m, p)
    method: str
    queue_seconds: float
    solve_seconds: float
    batch_size: int
    backend: str
    # The answer as it came (backward_batched sends its x, u and method back unchanged).
    message: Optional[mpcd_pb2.StackedSolutions] = None
    max_constraint_violation: Optional[np.ndarray] = None  # (B)


@dataclasses.dataclass
class StackedGradients:
    """dL/d(input) of every problem, stacked (B, <the input's shape>) (BackwardResponse.
    stacked_gradients); None where the problems have no such input."""
    x_init: Optional[np.ndarray]
    C: Optional[np.ndarray]
    c: Optional[np.ndarray]
    F: Optional[np.ndarray]
    f: Optional[np.ndarray]
    params: Optional[np.ndarray]   # (B, p): model params
    graph_parameters: Dict[str, np.ndarray]  # name: (B, <initializer shape>), graph dynamics
    diagnostics: List[Dict[str, Any]]        # one per problem, as Gradient.diagnostics
    queue_seconds: float
    solve_seconds: float
    batch_size: int
    backend: str
    # (B, <the bound's shape>): state bounds given in the template (None without).
    x_lower: Optional[np.ndarray] = None
    x_upper: Optional[np.ndarray] = None
    # (dL/dG, dL/dh), each (B, <its shape>): stage constraints (None without).
    constraints: Optional[Tuple[np.ndarray, np.ndarray]] = None
    # name: (B, <initializer shape>), the initializers of a cost graph and a constraint graph.
    cost_graph_parameters: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # A tracking cost's dL/d(goals and weights), each (B, <its shape>) (then C and c are None).
    tracking: Optional[Tracking] = None
    constraint_graph_parameters: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # name: (B, <initializer shape>), a terminal cost graph's (empty without one).
    terminal_cost_graph_parameters: Dict[str, np.ndarray] = dataclasses.field(
        default_factory=dict)


@dataclasses.dataclass
class ModelInfo:
    """A built-in dynamics model as Client.models() lists it: its name, dimensions, parameter
    names and default values, default time step dt, integrators and state and control names."""
    name: str
    state_dim: int
    control_dim: int
    param_names: List[str]
    default_params: np.ndarray
    default_dt: float
    integrators: List[str]
    state_names: List[str]
    control_names: List[str]
    # Continuous-time (integrators lists the accepted `integrator` values, the default first).
    continuous: bool = False


# ---------------------------------------------------------------------------------------------
# Tensors on the wire: raw little-endian bytes (Tensor.raw_data), one tobytes() / frombuffer() per
# tensor. float32 arrays travel as float32 (the server widens them exactly and computes in float64);
# everything else as float64.

_WIRE_DTYPES: Dict[int, np.dtype] = {
    mpcd_pb2.DATA_TYPE_FLOAT64: np.dtype("<f8"),
    mpcd_pb2.DATA_TYPE_FLOAT32: np.dtype("<f4"),
}

# Default largest message the client receives and sends (gRPC's own default receive limit, 4 MiB,
# is too small for the Backward of a batch of 128 n8 m4 T30 problems). The server has its own
# limit on requests (mpcd --max_message_bytes, 64 MiB by default).
DEFAULT_MAX_MESSAGE_BYTES: int = 1 << 30

# What the options= argument of the solving methods accepts: SolverOptions fields by name, or the
# message itself.
SolverOptionsLike = Union[Mapping[str, Any], mpcd_pb2.SolverOptions]


def wire_dtype(array: Any) -> int:
    """The Tensor.dtype an array travels as: DATA_TYPE_FLOAT32 for float32, else float64."""
    return (mpcd_pb2.DATA_TYPE_FLOAT32 if getattr(array, "dtype", None) == np.float32
            else mpcd_pb2.DATA_TYPE_FLOAT64)


def to_tensor(array: npt.ArrayLike, message: Optional[mpcd_pb2.Tensor] = None,
              raw: bool = True) -> mpcd_pb2.Tensor:
    """A row-major mpcd.v1.Tensor from anything numpy accepts. raw=True (the default) writes the
    values' little-endian bytes into raw_data (float32 stays float32, everything else becomes
    float64); raw=False writes repeated doubles into data (what JSON tools read)."""
    tensor = mpcd_pb2.Tensor() if message is None else message
    if raw:
        dtype = wire_dtype(array)
        array = np.asarray(array, dtype=_WIRE_DTYPES[dtype])
        tensor.shape[:] = array.shape
        tensor.raw_data = array.tobytes()
        tensor.dtype = dtype
        del tensor.data[:]
    else:
        array = np.asarray(array, dtype=np.float64)
        tensor.shape[:] = array.shape
        tensor.data[:] = array.ravel().tolist()
        tensor.raw_data = b""
        tensor.dtype = mpcd_pb2.DATA_TYPE_FLOAT64
    return tensor


def from_tensor(tensor: mpcd_pb2.Tensor, copy: bool = True) -> Optional[np.ndarray]:
    """The numpy array of a Tensor in either encoding (float32 for raw float32, else float64);
    None when it is absent (no shape, no values). copy=False returns a read-only view of the
    message's bytes for raw tensors (no copy at all)."""
    if tensor.raw_data:
        array = np.frombuffer(tensor.raw_data, dtype=_WIRE_DTYPES[tensor.dtype])
        array = array.reshape(tuple(tensor.shape))
        return array.copy() if copy else array
    if not tensor.shape and not tensor.data:
        return None
    return np.asarray(tensor.data, dtype=np.float64).reshape(tuple(tensor.shape))


def _present(tensor: mpcd_pb2.Tensor) -> np.ndarray:
    """from_tensor of a tensor the server always sets (typed as never None)."""
    return cast(np.ndarray, from_tensor(tensor))


def response_encoding(dtype: npt.DTypeLike) -> int:
    """The TensorEncoding that returns arrays of numpy `dtype` (float32 or float64)."""
    return mpcd_pb2.RAW_FLOAT32 if np.dtype(dtype) == np.float32 else mpcd_pb2.RAW_FLOAT64


def _result_dtype(problems: Sequence[Problem], dtype: npt.DTypeLike) -> np.dtype:
    """float32 when asked, or when not asked and every problem's x_init is a float32 array."""
    if dtype is not None:
        return np.dtype(dtype)
    if problems and all(getattr(p.x_init, "dtype", None) == np.float32 for p in problems):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _set_optional(message: mpcd_pb2.Tensor, array: Optional[npt.ArrayLike]) -> None:
    if array is not None:
        to_tensor(array, message)


def problem_to_proto(problem: Problem) -> mpcd_pb2.Problem:
    """The mpcd.v1.Problem message of a Problem (every array as a raw tensor)."""
    message = mpcd_pb2.Problem()
    _set_optional(message.x_init, problem.x_init)
    _set_optional(message.cost.quadratic, problem.C)
    _set_optional(message.cost.linear, problem.c)
    dynamics = problem.dynamics
    if isinstance(dynamics, Linear):
        to_tensor(dynamics.F, message.dynamics.linear.transition)
        _set_optional(message.dynamics.linear.offset, dynamics.f)
    elif isinstance(dynamics, Model):
        model = message.dynamics.model
        model.name = dynamics.name
        if dynamics.params is not None:
            model.params.extend(np.asarray(dynamics.params, dtype=np.float64).ravel().tolist())
        model.dt = dynamics.dt
        model.integrator = dynamics.integrator
    elif dynamics is not None:
        raise TypeError("Problem.dynamics must be mpcd.Linear or mpcd.Model, got %r" % (dynamics,))
    _set_optional(message.u_lower, problem.u_lower)
    _set_optional(message.u_upper, problem.u_upper)
    _set_optional(message.u_init, problem.u_init)
    message.slew_rate_penalty = problem.slew_rate_penalty
    _set_optional(message.prev_ctrl, problem.prev_ctrl)
    _set_optional(message.u_zero_mask, problem.u_zero_mask)
    _set_optional(message.x_lower, problem.x_lower)
    _set_optional(message.x_upper, problem.x_upper)
    if problem.constraints is not None:
        G, h = problem.constraints
        to_tensor(G, message.constraints.G)
        to_tensor(h, message.constraints.h)
    if problem.tracking is not None:
        for name in TRACKING_FIELDS:
            _set_optional(getattr(message.tracking, name), getattr(problem.tracking, name))
    if problem.cost_graph is not None:
        _graph_to_proto(problem.cost_graph, message.cost_graph)
    if problem.terminal_cost_graph is not None:
        _graph_to_proto(problem.terminal_cost_graph, message.terminal_cost_graph)
    if problem.constraint_graph is not None:
        _graph_to_proto(problem.constraint_graph, message.constraint_graph)
    return message


def _graph_to_proto(graph: Union[CostGraph, ConstraintGraph], message: Any) -> None:
    """A CostGraph or ConstraintGraph into its message (the same fields)."""
    if graph.onnx is not None:
        message.onnx = graph.onnx
    elif graph.sha256 is not None:
        message.sha256 = graph.sha256
    elif graph.name is not None:
        message.name = graph.name
    for name, value in (graph.parameters or {}).items():
        to_tensor(value, message.parameters[name])


TRACKING_FIELDS: Tuple[str, ...] = ("x_goal", "u_goal", "w_x", "w_u", "w_x_terminal")


# Each Batch input's field in BatchedProblems.
BATCH_FIELDS: Dict[str, str] = {
    "x_init": "x_init", "C": "cost_quadratic", "c": "cost_linear", "F": "transition",
    "f": "offset", "u_lower": "u_lower", "u_upper": "u_upper", "u_init": "u_init",
    "params": "model_params", "prev_ctrl": "prev_ctrl", "u_zero_mask": "u_zero_mask"}


def batch_to_proto(batch: Batch) -> mpcd_pb2.BatchedProblems:
    """The BatchedProblems of a Batch: one raw tensor per given input."""
    message = mpcd_pb2.BatchedProblems()
    count = batch.count
    for name, field in BATCH_FIELDS.items():
        array = getattr(batch, name)
        if array is not None:
            tensor = to_tensor(array, getattr(message, field))
            if count is None:
                count = tensor.shape[0] if tensor.shape else None
    if batch.tracking is not None:
        for name in TRACKING_FIELDS:
            array = getattr(batch.tracking, name)
            if array is not None:
                tensor = to_tensor(array, getattr(message.tracking, name))
                count = tensor.shape[0] if count is None else count
    if count is None:
        raise ValueError("Batch: give count or at least one stacked array")
    message.count = count
    return message


def _optional_stacked(message: Any, tensor_field: str) -> Optional[np.ndarray]:
    return from_tensor(getattr(message, tensor_field)) if message.HasField(tensor_field) else None


def _tracking_from_proto(message: Any) -> Optional[Tracking]:
    """The Tracking of a message's `tracking` (a Problem or, stacked, BatchedProblems), or None."""
    if not message.HasField("tracking"):
        return None
    return Tracking(**{name: from_tensor(getattr(message.tracking, name))
                       for name in TRACKING_FIELDS})


def _stacked_parameters(tensors: Mapping[str, mpcd_pb2.Tensor]) -> Dict[str, np.ndarray]:
    """A graph's stacked parameter gradients: name -> (B, <initializer shape>)."""
    return {name: _present(t) for name, t in tensors.items()}


# SolveStatus names indexed by value (stacked statuses travel as numbers).
SOLVE_STATUS_NAMES: np.ndarray = np.array([mpcd_pb2.SolveStatus.Name(v)
                                for v in range(max(mpcd_pb2.SolveStatus.values()) + 1)])


def _stacked_result_from_proto(response: mpcd_pb2.SolveResponse) -> StackedSolveResult:
    stacked = response.stacked
    return StackedSolveResult(
        x=_present(stacked.x), u=_present(stacked.u),
        cost=np.array(stacked.cost, dtype=np.float64),
        status=SOLVE_STATUS_NAMES[np.array(stacked.status, dtype=np.int64)].tolist(),
        iterations=np.array(stacked.iterations, dtype=np.int64),
        step_norm=np.array(stacked.step_norm, dtype=np.float64),
        regularization=np.array(stacked.regularization, dtype=np.float64),
        feedback=_optional_stacked(stacked, "feedback"),
        feedforward=_optional_stacked(stacked, "feedforward"),
        x_init_jacobian=_optional_stacked(stacked, "x_init_jacobian"),
        params_jacobian=_optional_stacked(stacked, "params_jacobian"),
        method=mpcd_pb2.SolverMethod.Name(stacked.method),
        queue_seconds=response.timing.queue_seconds,
        solve_seconds=response.timing.solve_seconds,
        batch_size=response.batch_size, backend=response.backend, message=stacked,
        max_constraint_violation=np.array(stacked.max_constraint_violation, dtype=np.float64))


def _diagnostics_to_dict(diagnostics: mpcd_pb2.GradientDiagnostics) -> Dict[str, Any]:
    return {
        "status": mpcd_pb2.GradientStatus.Name(diagnostics.status),
        "regularization": diagnostics.regularization,
        "condition_estimate": diagnostics.condition_estimate,
        "stationarity_residual": diagnostics.stationarity_residual,
        "dynamics_residual": diagnostics.dynamics_residual,
        "active_controls": diagnostics.active_controls,
        "active_constraints": diagnostics.active_constraints,
        "weakly_active_constraints": diagnostics.weakly_active_constraints,
    }


def _solution_from_proto(message: mpcd_pb2.Solution) -> Solution:
    has_jacobian = message.HasField("jacobian_diagnostics")
    return Solution(
        x=_present(message.x), u=_present(message.u), cost=message.cost,
        status=mpcd_pb2.SolveStatus.Name(message.status), iterations=message.iterations,
        step_norm=message.step_norm, regularization=message.regularization,
        feedback=from_tensor(message.feedback), feedforward=from_tensor(message.feedforward),
        x_init_jacobian=from_tensor(message.x_init_jacobian),
        params_jacobian=from_tensor(message.params_jacobian),
        jacobian_diagnostics=(_diagnostics_to_dict(message.jacobian_diagnostics)
                              if has_jacobian else None),
        method=mpcd_pb2.SolverMethod.Name(message.method),
        max_constraint_violation=message.max_constraint_violation,
        cost_hessian_projections=message.cost_hessian_projections)


_Graph = TypeVar("_Graph", CostGraph, ConstraintGraph)


def _graph_from_proto(kind: Type[_Graph], message: Any) -> _Graph:
    """A gradient's CostGraph or ConstraintGraph: the graph's sha256 and dL/d(each parameter)."""
    return kind(sha256=message.sha256,
                parameters={name: _present(t) for name, t in message.parameters.items()})


def _gradient_from_proto(message: mpcd_pb2.Problem,
                         diagnostics: mpcd_pb2.GradientDiagnostics) -> Gradient:
    linear = message.dynamics.HasField("linear")
    model = message.dynamics.HasField("model")
    return Gradient(
        cost_graph=(_graph_from_proto(CostGraph, message.cost_graph)
                    if message.HasField("cost_graph") else None),
        terminal_cost_graph=(_graph_from_proto(CostGraph, message.terminal_cost_graph)
                             if message.HasField("terminal_cost_graph") else None),
        constraint_graph=(_graph_from_proto(ConstraintGraph, message.constraint_graph)
                          if message.HasField("constraint_graph") else None),
        x_init=from_tensor(message.x_init),
        C=from_tensor(message.cost.quadratic),
        c=from_tensor(message.cost.linear),
        F=from_tensor(message.dynamics.linear.transition) if linear else None,
        f=from_tensor(message.dynamics.linear.offset) if linear else None,
        params=(np.asarray(message.dynamics.model.params, dtype=np.float64) if model else None),
        diagnostics=_diagnostics_to_dict(diagnostics),
        tracking=_tracking_from_proto(message),
        x_lower=from_tensor(message.x_lower) if message.HasField("x_lower") else None,
        x_upper=from_tensor(message.x_upper) if message.HasField("x_upper") else None,
        constraints=((_present(message.constraints.G), _present(message.constraints.h))
                     if message.HasField("constraints") else None))


def _solver_options(options: Optional[SolverOptionsLike]) -> Optional[mpcd_pb2.SolverOptions]:
    if options is None:
        return None
    if isinstance(options, mpcd_pb2.SolverOptions):
        return options
    return mpcd_pb2.SolverOptions(**options)


def _mode(mode: Union[str, int]) -> int:
    return mode if isinstance(mode, int) else mpcd_pb2.BackwardMode.Value(mode)


@dataclasses.dataclass
class ControlStep:
    """One answer of a Control session: apply u0 now; u0 + feedback0 (x_now - x) corrects it for a
    state measured later than x; plan is the whole solution from the measured state."""
    u0: np.ndarray         # (m)
    feedback0: np.ndarray  # K_0 (m, n)
    plan: Solution


class ControlSession:
    """A receding-horizon session (the Control RPC), from Client.control(). step(x) sends the
    measured state and returns a ControlStep; the server warm-starts each step from the previous
    plan shifted by one step. A step the server refuses (a state of the wrong size or not finite:
    InvalidArgumentError) or that expires while queued (DeadlineExceededError) raises, and the
    session goes on from the same warm start. Use as a context manager, or call close()."""

    def __init__(self, client: Client, first: mpcd_pb2.ControlRequest, timeout: Optional[float],
                 step_timeout: Optional[float] = None) -> None:
        """Opens the stream and sends `first` (Client.control builds it); use Client.control."""
        import queue
        self._requests: queue.Queue[Optional[mpcd_pb2.ControlRequest]] = queue.Queue()
        self._step_timeout = step_timeout
        if step_timeout:
            first.step_timeout_seconds = step_timeout
        self._requests.put(first)
        self._closed = False
        try:
            self._responses = client.stub.Control(
                iter(self._requests.get, None), timeout=timeout, metadata=client._metadata,
                wait_for_ready=client.wait_for_ready)
            self.first: ControlStep = self._next()
        except BaseException:
            self.close()
            raise

    def _next(self) -> ControlStep:
        try:
            message = next(self._responses)
        except grpc.RpcError as e:
            self._closed = True
            raise _error_from(e) from None
        if message.HasField("error"):  # this step only: the session goes on
            code = _STATUS_CODES.get(message.error.code, grpc.StatusCode.UNKNOWN)
            raise _ERROR_CLASSES.get(code, MpcdError)(code, message.error.message)
        return ControlStep(u0=_present(message.u0), feedback0=_present(message.feedback0),
                           plan=_solution_from_proto(message.plan))

    def step(self, x: npt.ArrayLike, C: Optional[npt.ArrayLike] = None,
             c: Optional[npt.ArrayLike] = None, timeout: Optional[float] = None) -> ControlStep:
        """The answer for measured state x (n); C and c (as in Problem) replace the cost from
        now on. timeout: this step's bound in seconds (None: the session's step_timeout)."""
        if self._closed:
            raise MpcdError(grpc.StatusCode.FAILED_PRECONDITION, "the Control session is closed")
        request = mpcd_pb2.ControlRequest()
        step_timeout = self._step_timeout if timeout is None else timeout
        if step_timeout:
            request.step_timeout_seconds = step_timeout
        to_tensor(x, request.x)
        if C is not None:
            to_tensor(C, request.cost.quadratic)
            _set_optional(request.cost.linear, c)
        self._requests.put(request)
        return self._next()

    def close(self) -> None:
        """Ends the session (the server sees the client close its side)."""
        if not self._closed:
            self._closed = True
            self._requests.put(None)

    def __enter__(self) -> ControlSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# The client


PathLike = Union[str, "os.PathLike[str]"]


def _read(path: PathLike) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _tls_credentials(tls_ca: Optional[PathLike], tls_cert: Optional[PathLike],
                     tls_key: Optional[PathLike]) -> grpc.ChannelCredentials:
    """TLS to mpcd: the server's CA (None: the system's roots) and, for mutual TLS, this client's
    certificate chain and key (both or neither), all PEM files."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("mpcd.Client: tls_cert and tls_key: give both or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca) if tls_ca else None,
        private_key=_read(tls_key) if tls_key else None,
        certificate_chain=_read(tls_cert) if tls_cert else None)


def _token_metadata(token: Optional[str], token_file: Optional[PathLike]
                    ) -> Optional[Tuple[Tuple[str, str], ...]]:
    """The "authorization: Bearer" metadata of every call (mpcd --auth_token_file), or None."""
    if token is not None and token_file is not None:
        raise ValueError("mpcd.Client: give token or token_file, not both")
    if token_file is not None:
        token = _read(token_file).decode().strip()
    return (("authorization", "Bearer " + token),) if token else None


# ---------------------------------------------------------------------------------------------
# The process's malloc

# glibc's malloc serves every block above a threshold (128 KiB at first, adapting to what was
# freed) with a fresh mmap and hands freed memory at the top of a heap back to the kernel. The
# buffers of a request or an answer of a few hundred KB (gRPC's, protobuf's, numpy's and torch's,
# on several threads) then come from new pages on every call, one page fault per 4 KiB: about
# 3.5 ms of a 16 ms cartpole batch-256 training step (docs/benchmarks.md §5). Fixed thresholds
# keep such blocks in the heap and reuse them.
MALLOC_MMAP_THRESHOLD = 32 << 20  # blocks up to 32 MiB from the heap (glibc's dynamic maximum)
MALLOC_TRIM_THRESHOLD = 128 << 20  # free memory kept at the top of a heap before it is returned
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
_malloc_lock = threading.Lock()
_malloc_tuned: Optional[bool] = None


def tune_malloc() -> bool:
    """Sets glibc's malloc thresholds (MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD) for this
    process, once; True where they are set (glibc), False elsewhere. Client() calls it unless
    given malloc_tuning=False or the environment has MPCD_MALLOC_TUNING=0. The process then keeps
    up to MALLOC_TRIM_THRESHOLD of freed memory per heap instead of returning it at once."""
    global _malloc_tuned
    with _malloc_lock:
        if _malloc_tuned is None:
            try:
                libc = ctypes.CDLL(None)
                mallopt = libc.mallopt
                libc.gnu_get_libc_version  # noqa: B018  (glibc's mallopt takes these parameters)
            except (AttributeError, OSError):
                _malloc_tuned = False
            else:
                mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
                _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) and
                                     mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD))
        return _malloc_tuned


def _malloc_tuning_wanted(malloc_tuning: Optional[bool]) -> bool:
    if malloc_tuning is not None:
        return malloc_tuning
    return os.environ.get("MPCD_MALLOC_TUNING", "1") != "0"


class Client:
    """A channel to one mpcd server.

    target: "host:port". timeout: default deadline in seconds for every call (None: no deadline);
    each method's timeout overrides it. wait_for_ready: queue calls while the channel connects
    instead of failing fast with UNAVAILABLE. max_message_bytes: the largest message sent or
    received (default 1 GiB; gRPC's own default receive limit is 4 MiB); `options` (gRPC channel
    arguments) override it. Errors raise MpcdError (or its subclasses InvalidArgumentError,
    DeadlineExceededError, UnavailableError) with .code and .details.

    Security (mpcd's --tls_cert, --tls_client_ca, --auth_token_file; docs/operations.md): tls=True
    or tls_ca="ca.pem" (the CA that signed the server's certificate; without it the system's
    roots) connect over TLS; tls_cert and tls_key (PEM files) add this client's certificate for
    mutual TLS; tls_server_name checks the server's certificate against that name instead of the
    target's host. token="..." or token_file="token" sends "authorization: Bearer <token>" with
    every call. credentials (a grpc.ChannelCredentials) is the general form of the tls_* options.

    malloc_tuning: set this process's malloc thresholds for large messages (tune_malloc; the
    default, None, does unless the environment has MPCD_MALLOC_TUNING=0).

    Arrays travel as raw little-endian bytes (float32 arrays as float32); results are float64
    numpy arrays, or float32 where the call's dtype (or, by default, every problem's x_init) is
    float32: the server always computes in float64 and rounds float32 results once at the end.
    """

    def __init__(self, target: str, timeout: Optional[float] = None, wait_for_ready: bool = False,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 options: Optional[Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]] = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, tls: bool = False,
                 tls_ca: Optional[PathLike] = None, tls_cert: Optional[PathLike] = None,
                 tls_key: Optional[PathLike] = None, tls_server_name: Optional[str] = None,
                 token: Optional[str] = None, token_file: Optional[PathLike] = None,
                 malloc_tuning: Optional[bool] = None) -> None:
        if _malloc_tuning_wanted(malloc_tuning):
            tune_malloc()
        self.target: str = target
        self.timeout: Optional[float] = timeout
        self.wait_for_ready: bool = wait_for_ready
        # max_message_bytes bounds both directions; explicit channel options win.
        given: Dict[str, Any] = dict(options or ())
        given.setdefault("grpc.max_receive_message_length", max_message_bytes)
        given.setdefault("grpc.max_send_message_length", max_message_bytes)
        if tls_server_name is not None:
            given.setdefault("grpc.ssl_target_name_override", tls_server_name)
        channel_options = list(given.items())
        if tls or tls_ca or tls_cert or tls_key:
            if credentials is not None:
                raise ValueError("mpcd.Client: give credentials or the tls_* arguments, not both")
            credentials = _tls_credentials(tls_ca, tls_cert, tls_key)
        self._metadata = _token_metadata(token, token_file)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        # The generated MpcService stub, for calls this class does not wrap.
        self.stub = mpcd_pb2_grpc.MpcServiceStub(self._channel)
        self._health_check = self._channel.unary_unary(
            _HEALTH_CHECK, request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)

    def close(self) -> None:
        """Closes the channel (calls in flight are cancelled)."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: Any, request: Any, timeout: Optional[float]) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout,
                          metadata=self._metadata,
                          wait_for_ready=self.wait_for_ready)
        except grpc.RpcError as e:
            raise _error_from(e) from None

    def solve(self, horizon: int, problems: Sequence[Problem],
              options: Optional[SolverOptionsLike] = None, return_gains: bool = False,
              return_x_init_jacobian: bool = False, return_params_jacobian: bool = False,
              jacobian_mode: Union[str, int] = "DEFAULT", timeout: Optional[float] = None,
              dtype: Optional[npt.DTypeLike] = None,
              template: Optional[Problem] = None) -> SolveResult:
        """Solves every Problem (one horizon for all). options: a dict of SolverOptions fields
        (max_iterations, tolerance, linesearch_decay, max_linesearch_iterations, best_cost_eps,
        not_improved_limit) or an mpcd_pb2.SolverOptions; unset fields take mpc.pytorch's defaults.
        dtype: of the result arrays (np.float32 or np.float64; None: float32 if every x_init is a
        float32 array, else float64). template: a Problem whose fields apply to every problem that
        leaves them None (sent once; e.g. a cost or dynamics shared by the batch). The jacobians
        (Solution.x_init_jacobian, params_jacobian) come with return_*_jacobian, computed as
        jacobian_mode says ("DEFAULT", "EXACT", "FULL_CHAIN"); timeout overrides the client's."""
        request = mpcd_pb2.SolveRequest(
            horizon=horizon, problems=[problem_to_proto(p) for p in problems],
            options=_solver_options(options), return_gains=return_gains,
            return_x_init_jacobian=return_x_init_jacobian,
            return_params_jacobian=return_params_jacobian, jacobian_mode=_mode(jacobian_mode),
            response_encoding=response_encoding(_result_dtype(problems, dtype)))
        if template is not None:
            request.problem_template.CopyFrom(problem_to_proto(template))
        response = self._call(self.stub.Solve, request, timeout)
        return SolveResult(
            solutions=[_solution_from_proto(s) for s in response.solutions],
            queue_seconds=response.timing.queue_seconds,
            solve_seconds=response.timing.solve_seconds,
            batch_size=response.batch_size, backend=response.backend)

    def backward(self, horizon: int, problems: Sequence[Problem],
                 solutions: Sequence[Union[Solution, Tuple[npt.ArrayLike, npt.ArrayLike]]],
                 cotangents: Iterable[Tuple[Optional[npt.ArrayLike], Optional[npt.ArrayLike]]],
                 mode: Union[str, int] = "DEFAULT", timeout: Optional[float] = None,
                 dtype: Optional[npt.DTypeLike] = None, template: Optional[Problem] = None,
                 constraint_smoothing: float = 0.0) -> BackwardResult:
        """dL/d(inputs) at the given solutions (Solution objects or (x, u) pairs) for cotangents
        [(dL/dx (T, n) or None, dL/du (T, m) or None), ...]. mode: "DEFAULT" (mpc.pytorch's
        gradient), "EXACT" (the true derivative of the solution map) or "FULL_CHAIN". dtype: of
        the gradient arrays, as in solve (params gradients are always float64). template: as in
        solve; each problem's gradient then holds its own copy of a shared input's gradient.
        constraint_smoothing: > 0 smooths the stage constraints' active set (docs/gradients.md)."""
        request = mpcd_pb2.BackwardRequest(
            horizon=horizon, problems=[problem_to_proto(p) for p in problems],
            mode=_mode(mode), response_encoding=response_encoding(_result_dtype(problems, dtype)),
            constraint_smoothing=constraint_smoothing)
        if template is not None:
            request.problem_template.CopyFrom(problem_to_proto(template))
        for solution in solutions:
            x, u = (solution.x, solution.u) if isinstance(solution, Solution) else solution
            message = request.solutions.add()
            to_tensor(x, message.x)
            to_tensor(u, message.u)
            if isinstance(solution, Solution):
                message.method = mpcd_pb2.SolverMethod.Value(solution.method)
        for dx, du in cotangents:
            message = request.cotangents.add()
            _set_optional(message.x, dx)
            _set_optional(message.u, du)
        response = self._call(self.stub.Backward, request, timeout)
        return BackwardResult(
            gradients=[_gradient_from_proto(g, d)
                       for g, d in zip(response.gradients, response.diagnostics)],
            queue_seconds=response.timing.queue_seconds,
            solve_seconds=response.timing.solve_seconds,
            batch_size=response.batch_size, backend=response.backend)

    def solve_batched(self, horizon: int, batch: Batch, template: Optional[Problem] = None,
                      options: Optional[SolverOptionsLike] = None, return_gains: bool = False,
                      return_x_init_jacobian: bool = False, return_params_jacobian: bool = False,
                      jacobian_mode: Union[str, int] = "DEFAULT", timeout: Optional[float] = None,
                      dtype: Optional[npt.DTypeLike] = None) -> StackedSolveResult:
        """Solves B problems of equal shapes given as one stacked array per per-problem input
        (a Batch) and a template for what they share (a Problem whose fields may be None), in
        one request with a constant number of Python calls; returns a StackedSolveResult (arrays
        (B, ...)). Other arguments as in solve; dtype None: float32 if batch.x_init is float32."""
        if dtype is None:
            dtype = np.float32 if getattr(batch.x_init, "dtype", None) == np.float32 else None
        request = mpcd_pb2.SolveRequest(
            horizon=horizon, batched=batch_to_proto(batch), options=_solver_options(options),
            return_gains=return_gains, return_x_init_jacobian=return_x_init_jacobian,
            return_params_jacobian=return_params_jacobian, jacobian_mode=_mode(jacobian_mode),
            response_encoding=response_encoding(dtype or np.float64), stacked_response=True)
        if template is not None:
            request.problem_template.CopyFrom(problem_to_proto(template))
        return _stacked_result_from_proto(self._call(self.stub.Solve, request, timeout))

    def backward_batched(self, horizon: int, batch: Batch,
                         solutions: Union[StackedSolveResult,
                                          Tuple[npt.ArrayLike, npt.ArrayLike]],
                         dl_dx: Optional[npt.ArrayLike] = None,
                         dl_du: Optional[npt.ArrayLike] = None,
                         template: Optional[Problem] = None, mode: Union[str, int] = "DEFAULT",
                         timeout: Optional[float] = None,
                         dtype: Optional[npt.DTypeLike] = None,
                         gradients: Optional[Sequence[str]] = None) -> StackedGradients:
        """dL/d(inputs) of B problems given as in solve_batched, at `solutions` (the
        StackedSolveResult solve_batched returned, or (x (B, T, n), u (B, T, m))), for cotangents
        dl_dx (B, T, n) and dl_du (B, T, m) (None: zero). Returns StackedGradients: each
        gradient (B, <the input's shape>) (an input in the template gets one per problem: sum
        them over the batch for the shared input's gradient). mode and dtype as in backward.
        `gradients` names the ones to answer by their wire names (BackwardRequest.gradient_fields:
        "x_init", "cost_quadratic", "cost_linear", "transition", ...); the others come back
        None. None: all of them."""
        if dtype is None:
            dtype = np.float32 if getattr(batch.x_init, "dtype", None) == np.float32 else None
        request = mpcd_pb2.BackwardRequest(
            horizon=horizon, batched=batch_to_proto(batch), mode=_mode(mode),
            response_encoding=response_encoding(dtype or np.float64), stacked_response=True,
            gradient_fields=list(gradients or ()))
        if template is not None:
            request.problem_template.CopyFrom(problem_to_proto(template))
        if isinstance(solutions, StackedSolveResult):
            message: Any = solutions.message
            request.stacked_solutions.x.CopyFrom(message.x)
            request.stacked_solutions.u.CopyFrom(message.u)
            request.stacked_solutions.method = message.method
        else:
            to_tensor(solutions[0], request.stacked_solutions.x)
            to_tensor(solutions[1], request.stacked_solutions.u)
        request.stacked_cotangents.SetInParent()
        _set_optional(request.stacked_cotangents.x, dl_dx)
        _set_optional(request.stacked_cotangents.u, dl_du)
        response = self._call(self.stub.Backward, request, timeout)
        g = response.stacked_gradients
        return StackedGradients(
            x_init=from_tensor(g.x_init), C=from_tensor(g.cost_quadratic),
            c=from_tensor(g.cost_linear), F=_optional_stacked(g, "transition"),
            f=_optional_stacked(g, "offset"), params=_optional_stacked(g, "model_params"),
            graph_parameters=_stacked_parameters(g.graph_parameters),
            diagnostics=[_diagnostics_to_dict(d) for d in response.diagnostics],
            queue_seconds=response.timing.queue_seconds,
            solve_seconds=response.timing.solve_seconds,
            batch_size=response.batch_size, backend=response.backend,
            x_lower=_optional_stacked(g, "x_lower"), x_upper=_optional_stacked(g, "x_upper"),
            constraints=(None if not g.HasField("constraint_G") else
                         (_present(g.constraint_G), _present(g.constraint_h))),
            cost_graph_parameters=_stacked_parameters(g.cost_graph_parameters),
            constraint_graph_parameters=_stacked_parameters(g.constraint_graph_parameters),
            terminal_cost_graph_parameters=_stacked_parameters(g.terminal_cost_graph_parameters),
            tracking=_tracking_from_proto(g))

    def control(self, horizon: int, problem: Problem,
                options: Optional[SolverOptionsLike] = None, timeout: Optional[float] = None,
                step_timeout: Optional[float] = None,
                real_time_iteration: bool = False) -> ControlSession:
        """Opens a Control session (receding horizon) with `problem` as the template; its x_init
        is the first measured state, whose answer is session.first (a ControlStep).

        step_timeout: the longest one step may take, in seconds (None: the client's default
        timeout; 0: no bound). The server enforces it: the step's solve stops in time and answers
        its best iterate (plan.status "DEADLINE"); a step still queued then raises
        DeadlineExceededError. Either way the session goes on. session.step(x, timeout=...)
        overrides it for one step. timeout: the deadline of the whole session (None: none; when
        it passes the session ends, so leave it None for a robot that runs indefinitely).
        real_time_iteration: every step after the first runs one iLQR iteration from the shifted
        plan (SQP-RTI), for a latency that does not depend on the state."""
        first = mpcd_pb2.ControlRequest(horizon=horizon, problem=problem_to_proto(problem),
                                        options=_solver_options(options),
                                        real_time_iteration=real_time_iteration)
        step_timeout = self.timeout if step_timeout is None else step_timeout
        return ControlSession(self, first, timeout, step_timeout)

    def models(self, timeout: Optional[float] = None) -> List[ModelInfo]:
        """The built-in dynamics models (the ListModels RPC)."""
        response = self._call(self.stub.ListModels, mpcd_pb2.ListModelsRequest(), timeout)
        return [ModelInfo(name=m.name, state_dim=m.state_dim, control_dim=m.control_dim,
                          param_names=list(m.param_names),
                          default_params=np.asarray(m.default_params, dtype=np.float64),
                          default_dt=m.default_dt, integrators=list(m.integrators),
                          state_names=list(m.state_names), control_names=list(m.control_names),
                          continuous=m.continuous)
                for m in response.models]

    def health(self, service: str = "", timeout: Optional[float] = None) -> str:
        """The standard gRPC health status: "SERVING", "NOT_SERVING", ..."""
        response = self._call(self._health_check,
                              health_pb2.HealthCheckRequest(service=service), timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
