#!/usr/bin/python3
"""Writes the ONNX graphs the graph tests read (tests/solver/graph/*_test.cc).

For every supported op, a small torch module x_next = f(x, u; theta) that uses it, exported by
torch.onnx.export (float64, no constant folding) to <name>.onnx, and beside it <name>.json with a
random (x, u) and PyTorch's own forward output at that point: the oracle the C++ evaluator is
compared with. The export is checked to contain the op it is named after, so every op is really
covered. Ops torch never emits alone (Identity) are written with onnx.helper and their oracle is
still a torch forward of the same computation. Then one graph per malformed class, with the
substring the compiler's error must contain (bad_graphs.json).

Usage: export_test_graphs.py --out DIR
"""

import argparse
import io
import json
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

torch.manual_seed(0)
# The exporter types 0-d tensors (x[0], scalar parameters) by the default dtype: float32 would add
# Casts to float32 that the module's own float64 forward does not do.
torch.set_default_dtype(torch.float64)
N, M = 4, 2


class Case(torch.nn.Module):
    """x_next = x + 0.1 * body(x, u, w): every case has a parameter w (n)."""

    def __init__(self, body, n=N):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n, dtype=torch.float64))
        self.body = body

    def forward(self, x, u):
        return x + 0.1 * self.body(self, x, u)


def ux(u):
    """u spread over n elements (Concat and Mul: every case depends on u)."""
    return torch.cat([u, u]) * 0.5


class Mlp(torch.nn.Module):
    """A small MLP on (1, n+m) rows: Gemm, Tanh, Sigmoid."""

    def __init__(self, dtype=torch.float64, n=N):
        super().__init__()
        self.l1 = torch.nn.Linear(n + M, 8).to(dtype)
        self.l2 = torch.nn.Linear(8, n).to(dtype)

    def forward(self, x, u):
        h = torch.tanh(self.l1(torch.cat([x, u], -1)))
        return x + 0.1 * self.l2(torch.sigmoid(h))


class MatMulCase(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(N, N, dtype=torch.float64) * 0.3)
        self.V = torch.nn.Parameter(torch.randn(M, N, dtype=torch.float64) * 0.3)

    def forward(self, x, u):
        return x + torch.matmul(x, self.W) + torch.matmul(u, self.V)


class CartpoleGraph(torch.nn.Module):
    """mpc.pytorch's cartpole (solver/models/cartpole.h) written as a module: atan2 (no graph op)
    replaced by the angle-addition formulas, equal to rounding; the parameters by the model's
    names."""

    def __init__(self):
        super().__init__()
        for name, value in (("gravity", 9.8), ("masscart", 1.0), ("masspole", 0.1),
                            ("length", 0.5)):
            setattr(self, name, torch.nn.Parameter(torch.tensor(value, dtype=torch.float64)))

    def accelerations(self, force, c, s, dth):
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        cart_in = (force + polemass_length * dth * dth * s) / total_mass
        th_acc = (self.gravity * s - c * cart_in) / (
            self.length * (4.0 / 3.0 - self.masspole * c * c / total_mass))
        return cart_in - polemass_length * th_acc * c / total_mass, th_acc

    def forward(self, x, u):
        dt = 0.05
        force = torch.clamp(u[0], -100.0, 100.0)
        pos, vel, c, s, dth = x[0], x[1], x[2], x[3], x[4]
        x_acc, th_acc = self.accelerations(force, c, s, dth)
        r = torch.sqrt(c * c + s * s)
        a = dt * dth
        cos_a, sin_a = torch.cos(a), torch.sin(a)
        return torch.stack([pos + dt * vel, vel + dt * x_acc, (c * cos_a - s * sin_a) / r,
                            (s * cos_a + c * sin_a) / r, dth + dt * th_acc])


class CartpoleOdeGraph(CartpoleGraph):
    """The continuous-time cartpole (solver/models/cartpole_continuous.h) written as a module: its
    output is dx/dt, which the request's integrator discretises."""

    def forward(self, x, u):
        vel, th, dth = x[1], x[2], x[3]
        x_acc, th_acc = self.accelerations(u[0], torch.cos(th), torch.sin(th), dth)
        return torch.stack([vel, x_acc, dth, th_acc])


def write_cartpole(out):
    x = torch.tensor([0.1, -0.2, 0.8, 0.6, 0.3], dtype=torch.float64)
    u = torch.tensor([1.5], dtype=torch.float64)
    export(CartpoleGraph(), x, u, os.path.join(out, "cartpole_graph.onnx"), 13)
    export(CartpoleOdeGraph(), x[:4], u, os.path.join(out, "cartpole_ode_graph.onnx"), 13)


class BenchMlp(torch.nn.Module):
    """The benchmark's learned dynamics (bench/graph_bench.cc): n=4, m=1, two hidden layers of 64,
    tanh, x' = x + 0.05 MLP([x, u])."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.net = torch.nn.Sequential(torch.nn.Linear(5, 64), torch.nn.Tanh(),
                                       torch.nn.Linear(64, 64), torch.nn.Tanh(),
                                       torch.nn.Linear(64, 4))

    def forward(self, x, u):
        return x + 0.05 * self.net(torch.cat([x, u], -1))


def mask():
    return torch.tensor([True, False, True, False])


CASES = {
    # name: (module, ops that must appear)
    "add": (Case(lambda s, x, u: s.w + x + ux(u)), ["Add"]),
    "sub": (Case(lambda s, x, u: s.w - x - ux(u)), ["Sub"]),
    "mul": (Case(lambda s, x, u: s.w * x * ux(u)), ["Mul"]),
    "div": (Case(lambda s, x, u: (s.w + x) / (2.0 + ux(u) ** 2)), ["Div"]),
    "neg": (Case(lambda s, x, u: -(s.w * x + ux(u))), ["Neg"]),
    "pow": (Case(lambda s, x, u: (s.w * x + ux(u)) ** 3 + (1.0 + x * x) ** (0.5 + 0.1 * s.w)),
            ["Pow"]),
    "sqrt": (Case(lambda s, x, u: torch.sqrt(1.0 + (s.w * x + ux(u)) ** 2)), ["Sqrt"]),
    "exp": (Case(lambda s, x, u: torch.exp(s.w * x + ux(u))), ["Exp"]),
    "log": (Case(lambda s, x, u: torch.log(1.0 + (s.w * x + ux(u)) ** 2)), ["Log"]),
    "abs": (Case(lambda s, x, u: torch.abs(s.w * x + ux(u))), ["Abs"]),
    "sin": (Case(lambda s, x, u: torch.sin(s.w * x + ux(u))), ["Sin"]),
    "cos": (Case(lambda s, x, u: torch.cos(s.w * x + ux(u))), ["Cos"]),
    "tan": (Case(lambda s, x, u: torch.tan(0.3 * (s.w * x + ux(u)))), ["Tan"]),
    "atan": (Case(lambda s, x, u: torch.atan(s.w * x + ux(u))), ["Atan"]),
    "tanh": (Case(lambda s, x, u: torch.tanh(s.w * x + ux(u))), ["Tanh"]),
    "sigmoid": (Case(lambda s, x, u: torch.sigmoid(s.w * x + ux(u))), ["Sigmoid"]),
    "relu": (Case(lambda s, x, u: torch.relu(s.w * x + ux(u))), ["Relu"]),
    "leaky_relu": (Case(lambda s, x, u: torch.nn.functional.leaky_relu(s.w * x + ux(u), 0.2)),
                   ["LeakyRelu"]),
    "elu": (Case(lambda s, x, u: torch.nn.functional.elu(s.w * x + ux(u), 0.7)), ["Elu"]),
    "softplus": (Case(lambda s, x, u: torch.nn.functional.softplus(s.w * x + ux(u))),
                 ["Softplus"]),
    "clip": (Case(lambda s, x, u: torch.clamp(s.w * x + ux(u), -0.5, 0.6)), ["Clip"]),
    "min": (Case(lambda s, x, u: torch.minimum(s.w * x, ux(u))), ["Min"]),
    "max": (Case(lambda s, x, u: torch.maximum(s.w * x, ux(u))), ["Max"]),
    "concat": (Case(lambda s, x, u: torch.cat([x[:2] * s.w[:2], u * s.w[2:]])), ["Concat"]),
    "slice": (Case(lambda s, x, u: torch.cat([x[1:3], x[::3]]) * s.w + ux(u)), ["Slice"]),
    "gather": (Case(lambda s, x, u: torch.stack([x[2], x[0], u[1], x[3]]) * s.w), ["Gather"]),
    "split": (Case(lambda s, x, u: torch.cat(torch.split(s.w * x, [1, 3])[::-1]) + ux(u)),
              ["Split"]),
    "squeeze_unsqueeze": (Case(lambda s, x, u: (s.w * x + ux(u)).unsqueeze(0).squeeze(0)),
                          ["Squeeze", "Unsqueeze"]),
    "reshape_transpose": (Case(lambda s, x, u: (s.w * x + ux(u)).reshape(2, 2).t().reshape(4)),
                          ["Reshape", "Transpose"]),
    "flatten": (Case(lambda s, x, u: torch.flatten((s.w * x).reshape(1, 2, 2), 1).reshape(4)
                     + ux(u)), ["Flatten"]),
    "reduce_sum": (Case(lambda s, x, u: (s.w * x).sum() + (x * x).sum(0, keepdim=True) + ux(u)),
                   ["ReduceSum"]),
    "where": (Case(lambda s, x, u: torch.where(mask(), s.w * x, ux(u))), ["Where"]),
    "cast": (Case(lambda s, x, u: (s.w * x + ux(u)).float().double()), ["Cast"]),
    "constant": (Case(lambda s, x, u: s.w * x + torch.tensor([1.0, -2.0, 0.5, 3.0],
                                                              dtype=torch.float64) * ux(u)),
                 ["Constant"]),
    "matmul": (MatMulCase(), ["MatMul"]),
    "gemm_mlp": (Mlp(), ["Gemm", "Tanh", "Sigmoid"]),
}

# Cases exported with x and u as (1, n) and (1, m) rows, and at the other end of the opset range.
ROW_INPUTS = {"gemm_mlp"}
OPSETS = {"gemm_mlp": 13, "slice": 17, "reduce_sum": 17, "split": 17}


def export(module, x, u, path, opset):
    buffer = io.BytesIO()
    torch.onnx.export(module, (x, u), buffer, input_names=["x", "u"], output_names=["x_next"],
                      opset_version=opset, do_constant_folding=False)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    return onnx.load_from_string(buffer.getvalue())


def write_case(out, name, module, ops, dtype=torch.float64, tolerance=1e-12, n=N):
    x = torch.randn(n, dtype=dtype) * 0.7
    u = torch.randn(M, dtype=dtype) * 0.7
    if name in ROW_INPUTS:
        x, u = x.unsqueeze(0), u.unsqueeze(0)
    module = module.to(dtype)
    with torch.no_grad():
        x_next = module(x, u).reshape(-1)
    model = export(module, x, u, os.path.join(out, name + ".onnx"), OPSETS.get(name, 15))
    found = {node.op_type for node in model.graph.node}
    missing = [op for op in ops if op not in found]
    assert not missing, f"{name}: the export has no {missing} (it has {sorted(found)})"
    params = {k: v.detach().double().reshape(-1).tolist() for k, v in module.named_parameters()}
    return {
        "name": name,
        "ops": ops,
        "x": x.double().reshape(-1).tolist(),
        "u": u.double().reshape(-1).tolist(),
        "x_next": x_next.double().tolist(),
        "params": params,
        "tolerance": tolerance,
    }


def write_identity_case(out):
    """Identity, which torch elides: built with onnx.helper, checked against torch's forward."""
    w = np.random.RandomState(1).randn(N)
    nodes = [
        helper.make_node("Identity", ["x"], ["xi"]),
        helper.make_node("Mul", ["xi", "w"], ["xw"]),
        helper.make_node("Concat", ["u", "u"], ["uu"], axis=0),
        helper.make_node("Add", ["xw", "uu"], ["x_next"]),
    ]
    graph = helper.make_graph(
        nodes, "identity",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [N]),
         helper.make_tensor_value_info("u", TensorProto.DOUBLE, [M])],
        [helper.make_tensor_value_info("x_next", TensorProto.DOUBLE, [N])],
        [helper.make_tensor("w", TensorProto.DOUBLE, [N], w.tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "identity.onnx"))
    x, u = torch.randn(N, dtype=torch.float64), torch.randn(M, dtype=torch.float64)
    x_next = x * torch.tensor(w) + torch.cat([u, u])
    return {"name": "identity", "ops": ["Identity"], "x": x.tolist(), "u": u.tolist(),
            "x_next": x_next.tolist(), "params": {"w": w.tolist()}, "tolerance": 1e-12}


def simple_graph(nodes, inputs=None, outputs=None, initializers=(), opset=13):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [N]),
                        helper.make_tensor_value_info("u", TensorProto.DOUBLE, [M])]
    outputs = outputs or [helper.make_tensor_value_info("x_next", TensorProto.DOUBLE, [N])]
    graph = helper.make_graph(nodes, "bad", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def write_bad_graphs(out):
    """One graph per malformed class and the error substring each must produce."""
    uu = helper.make_node("Concat", ["u", "u"], ["uu"], axis=0)
    cases = {
        "unsupported_op": (simple_graph(
            [uu, helper.make_node("Erf", ["x"], ["e"]), helper.make_node("Add", ["e", "uu"],
                                                                         ["x_next"])]),
            ["node 1", "(op Erf)", "is not supported", "supported ops: Abs, Add"]),
        "wrong_input_name": (simple_graph(
            [helper.make_node("Identity", ["state"], ["x_next"])],
            inputs=[helper.make_tensor_value_info("state", TensorProto.DOUBLE, [N]),
                    helper.make_tensor_value_info("u", TensorProto.DOUBLE, [M])]),
            ["graph input 'state'", "exactly 'x' and 'u'"]),
        "dynamic_shape": (simple_graph(
            [helper.make_node("Identity", ["x"], ["x_next"])],
            inputs=[helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch", N]),
                    helper.make_tensor_value_info("u", TensorProto.DOUBLE, [M])]),
            ["graph input 'x'", "'batch' is not static"]),
        "cycle": (simple_graph(
            [uu, helper.make_node("Add", ["x", "b"], ["a"]),
             helper.make_node("Mul", ["a", "uu"], ["b"]),
             helper.make_node("Identity", ["b"], ["x_next"])]),
            ["node 1", "is on a cycle"]),
        "missing_initializer": (simple_graph(
            [uu, helper.make_node("Mul", ["x", "weight"], ["xw"]),
             helper.make_node("Add", ["xw", "uu"], ["x_next"])]),
            ["node 1", "input 'weight'", "missing initializer"]),
        "nan_weight": (simple_graph(
            [uu, helper.make_node("Mul", ["x", "w"], ["xw"]),
             helper.make_node("Add", ["xw", "uu"], ["x_next"])],
            initializers=[helper.make_tensor("w", TensorProto.DOUBLE, [N],
                                             [1.0, float("nan"), 3.0, 4.0])]),
            ["initializer 'w'", "element 1 is not finite"]),
        "wrong_output_size": (simple_graph(
            [helper.make_node("Concat", ["x", "u"], ["x_next"], axis=0)],
            outputs=[helper.make_tensor_value_info("x_next", TensorProto.DOUBLE, [N + M])]),
            ["graph output 'x_next'", "has 6 elements, expected n = 4"]),
        "old_opset": (simple_graph([uu, helper.make_node("Add", ["x", "uu"], ["x_next"])],
                                   opset=9),
                      ["opset 9", "supported opsets are 13 to 17"]),
        "variable_reshape_shape": (simple_graph(
            [uu, helper.make_node("Cast", ["x"], ["s"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["uu", "s"], ["x_next"])]),
            ["node 1", "(op Cast)", "integer or boolean result that depends on x"]),
        # A float constant with NaN where Reshape reads integers (found by the graph fuzzer: the
        # conversion of NaN to an index was undefined behaviour).
        "nan_reshape_shape": (simple_graph(
            [uu, helper.make_node("Constant", [], ["s"], value=helper.make_tensor(
                "s", TensorProto.DOUBLE, [2], [float("nan"), 1.0])),
             helper.make_node("Reshape", ["uu", "s"], ["x_next"])]),
            ["node 2", "(op Reshape)"]),
        "not_onnx": (None, ["not a serialized ONNX ModelProto"]),
        # Dimensions whose product overflows int64 in a tensor with no element.
        "overflowing_dimensions": (simple_graph(
            [helper.make_node("Constant", [], ["c"], value=helper.make_tensor(
                "c", TensorProto.DOUBLE, [2**40, 2**40, 0], [])),
             uu, helper.make_node("Add", ["x", "uu"], ["x_next"])]),
            ["node 0", "(op Constant)", "exceeds the limit of 4194304 elements"]),
        # Two empty parameters whose matmul batch broadcasts to 9e6 matrices with no element.
        "empty_matmul_broadcast": (simple_graph(
            [helper.make_node("MatMul", ["a", "b"], ["ab"]),
             uu, helper.make_node("Add", ["x", "uu"], ["x_next"])],
            initializers=[helper.make_tensor("a", TensorProto.DOUBLE, [3000, 1, 0, 1], []),
                          helper.make_tensor("b", TensorProto.DOUBLE, [1, 3000, 1, 0], [])]),
            ["node 0", "(op MatMul)", "exceeds the limit of 4194304 elements"]),
    }
    manifest = []
    for name, (model, messages) in cases.items():
        path = os.path.join(out, "bad_" + name + ".onnx")
        with open(path, "wb") as f:
            f.write(b"\x08\x07 this is not protobuf \xff\xff" if model is None
                    else model.SerializeToString())
        manifest.append({"name": name, "file": "bad_" + name + ".onnx", "messages": messages})
    # A graph that compiles but produces NaN at run time (log of a negative number).
    model = simple_graph([uu, helper.make_node("Log", ["x"], ["l"]),
                          helper.make_node("Add", ["l", "uu"], ["x_next"])])
    with open(os.path.join(out, "nan_at_run_time.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    return manifest


class QuadraticCostGraph(torch.nn.Module):
    """The quadratic cost 0.5 tau' C tau + c' tau written as a cost graph (C, c its parameters)."""

    def __init__(self, nt):
        super().__init__()
        self.C = torch.nn.Parameter(torch.eye(nt) * 1.5 + 0.1)
        self.c = torch.nn.Parameter(torch.full((nt,), 0.1))

    def forward(self, tau):
        return 0.5 * (tau * torch.matmul(self.C, tau)).sum() + (self.c * tau).sum()


class LogCoshCost(torch.nn.Module):
    """sum_i w_i log cosh(tau_i - goal_i): a smooth-abs tracking cost (cosh by its exponentials)."""

    def __init__(self, w, goal):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))
        self.goal = torch.nn.Parameter(torch.tensor(goal))

    def forward(self, tau):
        z = tau - self.goal
        return (self.w * torch.log(0.5 * (torch.exp(z) + torch.exp(-z)))).sum()


class WavyCost(torch.nn.Module):
    """A quadratic tracking cost plus a * cos(k tau_2): not convex near the goal, so its Hessian
    needs the projection to positive semi-definite."""

    def __init__(self, w, goal):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))
        self.goal = torch.nn.Parameter(torch.tensor(goal))
        self.a = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, tau):
        z = tau - self.goal
        return 0.5 * (self.w * z * z).sum() + self.a * torch.cos(2.0 * tau[2])


def write_cost_graphs(out):
    """Cost graphs on the pendulum's tau (n+m = 4), with PyTorch's value, gradient and Hessian at a
    random tau (cost_graphs.json): the oracles of cost_graph_test.cc."""
    nt = 4
    goal = [1.0, 0.0, 0.0, 0.0]
    cases = {
        "quadratic_cost_graph": QuadraticCostGraph(nt),
        "logcosh_cost_graph": LogCoshCost([1.0, 1.0, 0.3, 0.5], goal),
        "wavy_cost_graph": WavyCost([1.0, 1.0, 0.3, 0.5], goal),
    }
    manifest = []
    for name, module in cases.items():
        tau = torch.randn(nt) * 0.5
        buffer = io.BytesIO()
        torch.onnx.export(module, (tau,), buffer, input_names=["tau"], output_names=["cost"],
                          opset_version=13, do_constant_folding=False)
        with open(os.path.join(out, name + ".onnx"), "wb") as f:
            f.write(buffer.getvalue())
        value = module(tau)
        gradient = torch.autograd.functional.jacobian(module, tau)
        hessian = torch.autograd.functional.hessian(module, tau)
        manifest.append({
            "name": name,
            "tau": tau.tolist(),
            "cost": value.item(),
            "gradient": gradient.reshape(-1).tolist(),
            "hessian": hessian.reshape(-1).tolist(),
            "params": {k: v.detach().reshape(-1).tolist() for k, v in module.named_parameters()},
        })
    with open(os.path.join(out, "cost_graphs.json"), "w") as f:
        json.dump(manifest, f, indent=1)


class ObstacleConstraints(torch.nn.Module):
    """g_j(x) = r_j^2 - |x[0:2] - c_j|^2 (circular obstacles on the double integrator's position);
    u unused, so the export drops it: a constraint graph of x alone."""

    def __init__(self):
        super().__init__()
        self.centers = torch.nn.Parameter(torch.tensor([[1.5, 0.1], [3.0, -0.2]]))
        self.radii = torch.nn.Parameter(torch.tensor([0.4, 0.3]))

    def forward(self, x, u):
        d = x[0:2].unsqueeze(0) - self.centers
        return self.radii * self.radii - (d * d).sum(-1)


class MixedConstraints(torch.nn.Module):
    """Rows of x and u together: a speed-dependent control bound |u|^2 - (a + b |v|^2) and
    sin(x_0) u_1 - w."""

    def __init__(self):
        super().__init__()
        self.ab = torch.nn.Parameter(torch.tensor([1.0, 0.5]))
        self.w = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x, u):
        v = x[2:4]
        first = (u * u).sum() - self.ab[0] - self.ab[1] * (v * v).sum()
        second = torch.sin(x[0]) * u[1] - self.w
        return torch.stack([first, second])


def write_constraint_graphs(out):
    """Stage constraint graphs on the double integrator (n = 4, m = 2) with PyTorch's rows,
    Jacobian, the Hessian of nu' g and the parameter gradient of the rows' linearisation at a
    random point (constraint_graphs.json): the oracles of constraint_graph_test.cc."""
    n, m = 4, 2
    manifest = []
    for name, module in {"obstacle_constraint_graph": ObstacleConstraints(),
                         "mixed_constraint_graph": MixedConstraints()}.items():
        x, u = torch.randn(n), torch.randn(m)
        buffer = io.BytesIO()
        torch.onnx.export(module, (x, u), buffer, input_names=["x", "u"], output_names=["g"],
                          opset_version=13, do_constant_folding=False)
        with open(os.path.join(out, name + ".onnx"), "wb") as f:
            f.write(buffer.getvalue())
        tau = torch.cat([x, u])

        def g_of(tau):
            return module(tau[:n], tau[n:])

        g = g_of(tau)
        k = g.numel()
        jacobian = torch.autograd.functional.jacobian(g_of, tau)  # (k, n+m)
        nu = torch.rand(k) + 0.5
        hessian = torch.autograd.functional.hessian(lambda t: (nu * g_of(t)).sum(), tau)
        # d/dtheta of sum_r (grad_G_r . dg_r/dtau + grad_h_r (dg_r/dtau . tau - g_r)).
        grad_G, grad_h = torch.randn(k, n + m), torch.randn(k)
        tau_leaf = tau.clone().requires_grad_()
        rows = g_of(tau_leaf)
        G = torch.stack([torch.autograd.grad(rows[r], tau_leaf, create_graph=True)[0]
                         for r in range(k)])
        h = G @ tau - rows
        chained = (grad_G * G).sum() + (grad_h * h).sum()
        params = list(module.parameters())
        param_grads = torch.autograd.grad(chained, params)
        manifest.append({
            "name": name,
            "x": x.tolist(), "u": u.tolist(), "g": g.tolist(),
            "jacobian": jacobian.reshape(-1).tolist(),
            "nu": nu.tolist(), "hessian": hessian.reshape(-1).tolist(),
            "grad_G": grad_G.reshape(-1).tolist(), "grad_h": grad_h.tolist(),
            "param_gradient": {name: grad.reshape(-1).tolist() for (name, _), grad
                               in zip(module.named_parameters(), param_grads)},
            "params": {k: v.detach().reshape(-1).tolist() for k, v in module.named_parameters()},
        })
    with open(os.path.join(out, "constraint_graphs.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    manifest = [write_case(args.out, name, module, ops) for name, (module, ops) in CASES.items()]
    manifest.append(write_identity_case(args.out))
    # float32: evaluated in double, so equal to torch's float forward to float precision.
    ROW_INPUTS.add("gemm_mlp_float32")
    manifest.append(write_case(args.out, "gemm_mlp_float32", Mlp(torch.float32),
                               ["Gemm"], dtype=torch.float32, tolerance=1e-5))
    # n = 6: the Jacobian's rows take two reverse sweeps of four rows, the second with two.
    ROW_INPUTS.add("gemm_mlp_n6")
    manifest.append(write_case(args.out, "gemm_mlp_n6", Mlp(n=6), ["Gemm", "Tanh", "Sigmoid"],
                               n=6))
    write_cartpole(args.out)
    export(BenchMlp(), torch.zeros(1, 4), torch.zeros(1, 1),
           os.path.join(args.out, "mlp_n4_m1_h64.onnx"), 13)
    with open(os.path.join(args.out, "graphs.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    write_cost_graphs(args.out)
    write_constraint_graphs(args.out)
    with open(os.path.join(args.out, "bad_graphs.json"), "w") as f:
        json.dump(write_bad_graphs(args.out), f, indent=1)


if __name__ == "__main__":
    main()
