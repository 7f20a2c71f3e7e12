#!/usr/bin/python3
"""One training step through mpcd.torch.MPC, as a PyTorch user runs it (issue 14).

The step: forward solve and backward of L = sum(Wx * x) + sum(Wu * u) with x_init, C, c and the
model's parameters requiring grad, exactly the 'fwd+bwd' setting of mpc.pytorch's timings
(tests/data/mpc_pytorch/TIMINGS.md): pendulum T=20 and cartpole T=25 with get_true_obj() costs,
env bounds and line-search settings, the notebooks' initial-state distributions (seed 0),
float64; 'fixed10' (lqr_iter=10, eps=0, not_improved_lim=10**9: exactly 10 iterations) and
'converged' (lqr_iter=500, eps=1e-4, not_improved_lim=5).

Three figures per configuration, all from one run:
  - step:    wall time of forward + backward through mpcd.torch.MPC (a real mpcd over gRPC on
             loopback; median of --repeats after one warm-up);
  - solver:  the server's backend time for that step (Solve + Backward launches, their
             Timing.solve_seconds): the solver alone, in the server process;
  - mpc.pytorch: the same step through locuslab/mpc.pytorch, measured in this process when
             `from mpc import mpc` works (e.g. PYTHONPATH=/path/to/mpc.pytorch; it is imported,
             never vendored): its own env_dx PendulumDx(simple=True) / CartpoleDx with params
             requiring grad, GradMethods.AUTO_DIFF, C and c repeated over (T, B), the same
             settings, x_init, loss weights and float64, torch.set_num_threads(1), median of
             --mpc-pytorch-repeats after one warm-up, as TIMINGS.md measured it (there each
             configuration in a process of its own; here in one thread with a 1 GiB stack, which
             the long autograd chains of 'converged' at large batches need). Otherwise (or with
             --mpc-pytorch=recorded) TIMINGS.md's float64 fwd+bwd rows (batches 1..256),
             labelled "recorded, <date>" with the date the file gives, or "recorded, undated".
             Each row's mpc_pytorch_source and the first line's mpc_pytorch say which.
client + transport = step - solver - queue (the batcher's wait, Timing.queue_seconds, reported),
split into transport_s = rpc - solver - queue (the server's conversion, gRPC and both ends' copies:
the Solve and Backward calls' wall time, rpc_s, beside the server's launches) and python_s =
step - rpc_s (the Python client and autograd outside the two calls).

Layouts: 'batched' sends C (T, B, n+m, n+m) and c (T, B, n+m), as the mpc.pytorch harness does
(every problem its own cost); 'shared' sends C (n+m, n+m) and c (n+m) once (problem_template).

Usage (after `make build`; PYTHONPATH=/path/to/mpc.pytorch for the side-by-side measurement):
  PYTHONPATH=/path/to/mpc.pytorch /usr/bin/python3 bench/training_step.py --mpcd build/bin/mpcd \
      --threads 2 --server-flags=--max_batch_size=1024 --repeats 5 \
      --out bench/results/training_step.jsonl --plot docs/training_step.png
--stubs-dir names the generated Python stubs (default build/python) when the build is elsewhere.
mpc.pytorch 'converged' at batch 1024 takes minutes per step: --mpc-pytorch-batches limits it.
"""

import argparse
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# --client-dir DIR (read before the imports): time another copy of the Python client, e.g. an
# older commit's, against the same server (docs/benchmarks.md §5 measures the baseline so).
_CLIENT_DIR = os.path.join(REPO, "client", "python")
if "--client-dir" in sys.argv:
    _CLIENT_DIR = os.path.abspath(sys.argv[sys.argv.index("--client-dir") + 1])
# --stubs-dir DIR (read before the imports too): the generated stubs (mpcd/v1/mpcd_pb2.py, ...) of
# a build outside this checkout, e.g. a worktree's.
_STUBS_DIR = os.path.join(REPO, "build", "python")
if "--stubs-dir" in sys.argv:
    _STUBS_DIR = os.path.abspath(sys.argv[sys.argv.index("--stubs-dir") + 1])
sys.path[:0] = [_CLIENT_DIR, _STUBS_DIR, os.path.join(REPO, "tests", "testing")]

import torch  # noqa: E402

import mpcd.torch  # noqa: E402
from mpcd.torch import MPC, CartpoleDx, PendulumDx, QuadCost  # noqa: E402

# mpc.pytorch's recorded timings, vendored (the same content as the shared reference copy).
TIMINGS = os.path.join(REPO, "tests", "data", "mpc_pytorch", "TIMINGS.md")

PROBLEMS = {
    # name: (env class, T, linesearch decay, max linesearch iterations)
    "pendulum": (PendulumDx, 20, 0.2, 5),
    "cartpole": (CartpoleDx, 25, 0.5, 2),
}
SETTINGS = {
    "fixed10": dict(lqr_iter=10, eps=0.0, not_improved_lim=10**9),
    "converged": dict(lqr_iter=500, eps=1e-4, not_improved_lim=5),
}


def initial_states(name, B, seed=0):
    rng = np.random.default_rng(seed)
    if name == "pendulum":
        th = rng.uniform(-np.pi, np.pi, B)
        thdot = rng.uniform(-1, 1, B)
        return np.stack([np.cos(th), np.sin(th), thdot], axis=1)
    th = rng.uniform(-2 * np.pi, 2 * np.pi, B)
    x, dx, dth = (rng.uniform(-0.5, 0.5, B) for _ in range(3))
    return np.stack([x, dx, np.cos(th), np.sin(th), dth], axis=1)


def recorded_mpc_pytorch(path=TIMINGS):
    """{(problem, setting, B): median seconds} of TIMINGS.md's float64 fwd+bwd rows."""
    rows = {}
    if not os.path.isfile(path):
        return rows
    problem = None
    with open(path) as f:
        for line in f:
            header = re.match(r"##+ (\w+)(?:, T=(\d+))?", line)
            if header:
                # Only the tables of our horizons (pendulum T=20, cartpole T=25).
                name, T = header.group(1), header.group(2)
                problem = name if name in PROBLEMS and T == str(PROBLEMS[name][1]) else None
                continue
            cells = [c.strip() for c in line.split("|")]
            if problem and len(cells) > 8 and cells[1] == "float64" and cells[3] == "fwd+bwd":
                rows[(problem, cells[2], int(cells[4]))] = float(cells[7])
    return rows


_DATE = r"(\d{4}-\d{2}-\d{2})"


def recorded_provenance(path=TIMINGS):
    """Where the recorded numbers come from: the file, the date it gives for its measurement (a
    "- date: `YYYY-MM-DD`"-like entry of TIMINGS.md, or a line of the README beside it that names
    TIMINGS.md with a date; None if neither says) and the versions TIMINGS.md lists."""
    info = dict(file=os.path.relpath(path, REPO), date=None)
    if not os.path.isfile(path):
        return info
    with open(path) as f:
        text = f.read()
    for key in ("mpc_pytorch_commit", "torch_version", "repeats"):
        found = re.search(r"^- %s: `([^`]*)`" % key, text, re.M)
        if found:
            info[key] = found.group(1)
    found = re.search(r"^- (?:date|measured|measured_on|run_date|timestamp)\w*: `?" + _DATE, text,
                      re.M | re.I)
    readme = os.path.join(os.path.dirname(path), "README.md")
    if not found and os.path.isfile(readme):
        with open(readme) as f:
            found = next((m for m in (re.search(_DATE, line) for line in f
                                      if "TIMINGS.md" in line) if m), None)
    if found:
        info["date"] = found.group(1)
    return info


def recorded_label(provenance):
    """How rows taken from TIMINGS.md are labelled: "recorded, <date>" or "recorded, undated"."""
    return "recorded, %s" % (provenance["date"] or "undated")


def mpc_pytorch_module():
    """locuslab/mpc.pytorch's `mpc` module and its env_dx models, or None when not importable."""
    try:
        from mpc import mpc
        from mpc.env_dx import cartpole, pendulum
    except ImportError:
        return None
    # Its uint8 masks warn on every torch since 1.2; the timing is not affected.
    warnings.filterwarnings("ignore", message=".*dtype torch.uint8", category=UserWarning)
    return mpc, pendulum, cartpole


# mpc.pytorch keeps a chain of autograd nodes ~ iterations x batch long ('converged' at large
# batches) whose release overflows the default 8 MiB C stack (TIMINGS.md, "Crashes"): its steps
# run in a thread with this stack.
_MPC_PYTORCH_STACK_BYTES = 1 << 30


def mpc_pytorch_step(name, setting, B, repeats, modules):
    """The same training step through locuslab/mpc.pytorch in this process: dict(s=median seconds
    of `repeats` after one warm-up, min_s, repeats); None without mpc.pytorch (modules None)."""
    if modules is None:
        return None
    result = {}

    def run():
        try:
            result["times"] = [_mpc_pytorch_once(name, setting, B, modules)
                               for _ in range(repeats + 1)][1:]
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e

    previous = threading.stack_size(_MPC_PYTORCH_STACK_BYTES)
    try:
        worker = threading.Thread(target=run, name="mpc.pytorch")
        worker.start()
    finally:
        threading.stack_size(previous)
    worker.join()
    if "error" in result:
        raise result["error"]
    times = result["times"]
    return dict(s=statistics.median(times), min_s=min(times), repeats=len(times))


def _mpc_pytorch_once(name, setting, B, modules, keep=None):
    """One timed step through mpc.pytorch, built as TIMINGS.md's harness builds it (float64, one
    intra-op thread); the problem, settings and loss weights are one_step's. keep (a dict), when
    given, receives x, u and the gradients of x_init, C, c and params (to check the problem)."""
    mpc, pendulum, cartpole = modules
    torch.set_num_threads(1)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the envs build their cost data by default dtype
    try:
        _, T, decay, ls_iters = PROBLEMS[name]
        make = {"pendulum": lambda params=None: pendulum.PendulumDx(params, simple=True),
                "cartpole": lambda params=None: cartpole.CartpoleDx(params)}[name]
        env = make()
        n, m = env.n_state, env.n_ctrl
        q, p = (t.to(torch.float64) for t in env.get_true_obj())
        x_init = torch.tensor(initial_states(name, B)).requires_grad_(True)
        C = torch.diag(q).repeat(T, B, 1, 1).requires_grad_(True)
        c = p.repeat(T, B, 1).requires_grad_(True)
        params = env.params.detach().to(torch.float64).clone().requires_grad_(True)
        rng = np.random.default_rng(1)
        wx = torch.tensor(rng.standard_normal((T, B, n)))
        wu = torch.tensor(rng.standard_normal((T, B, m)))
        options = SETTINGS[setting]
        controller = mpc.MPC(
            n, m, T, u_lower=float(env.lower), u_upper=float(env.upper),
            lqr_iter=options["lqr_iter"], eps=options["eps"],
            not_improved_lim=options["not_improved_lim"], linesearch_decay=decay,
            max_linesearch_iter=ls_iters, grad_method=mpc.GradMethods.AUTO_DIFF,
            exit_unconverged=False, detach_unconverged=False, verbose=-1, back_eps=1e-7,
            best_cost_eps=1e-4, n_batch=B)
        dx = make(params)
        start = time.perf_counter()
        x, u, _ = controller(x_init, mpc.QuadCost(C, c), dx)
        ((wx * x).sum() + (wu * u).sum()).backward()
        elapsed = time.perf_counter() - start
        if keep is not None:
            keep.update(x=x.detach(), u=u.detach(),
                        grads=[t.grad for t in (x_init, C, c, params)])
        return elapsed
    finally:
        torch.set_default_dtype(default_dtype)


class _RpcClock:
    """While active, the wall time of every call the client makes (the step's Solve and Backward):
    what of a step is its two RPCs and what is the Python around them."""

    def __init__(self, client):
        self.client, self.seconds = client, []

    def __enter__(self):
        call = self.client._call

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - start)

        self.client._call = timed  # an instance attribute over the class's method
        return self

    def __exit__(self, *exc):
        del self.client._call


def one_step(name, setting, B, layout, client):
    """One timed training step: (step, solver, queue, rpc) seconds, rpc the wall time of its two
    calls (so step - rpc is the Python client and autograd around them)."""
    env_class, T, decay, ls_iters = PROBLEMS[name]
    env = env_class()
    n, m = env.n_state, env.n_ctrl
    q, p = env.get_true_obj()
    if layout == "batched":
        C = torch.diag(q).expand(T, B, n + m, n + m).clone()
        c = p.expand(T, B, n + m).clone()
    else:
        C, c = torch.diag(q), p.clone()
    x_init = torch.tensor(initial_states(name, B))
    params = torch.tensor(client.models_by_name[env.name].default_params)
    leaves = [t.requires_grad_(True) for t in (x_init, C, c, params)]
    rng = np.random.default_rng(1)
    wx = torch.tensor(rng.standard_normal((T, B, n)))
    wu = torch.tensor(rng.standard_normal((T, B, m)))
    mpc = MPC(n, m, T, u_lower=env.lower, u_upper=env.upper, linesearch_decay=decay,
              max_linesearch_iter=ls_iters, exit_unconverged=False, detach_unconverged=False,
              verbose=-1, client=client, **SETTINGS[setting])
    with _RpcClock(client) as rpcs:
        start = time.perf_counter()
        x, u, _ = mpc(leaves[0], QuadCost(leaves[1], leaves[2]), env_class(leaves[3]))
        ((wx * x).sum() + (wu * u).sum()).backward()
        elapsed = time.perf_counter() - start
    timing = mpc.last_timing
    solver = timing["forward"][1] + timing["backward"][1]
    queue = timing["forward"][0] + timing["backward"][0]
    return elapsed, solver, queue, sum(rpcs.seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpcd", default=os.path.join(REPO, "build", "bin", "mpcd"))
    parser.add_argument("--target", help="use a running server instead of starting --mpcd")
    parser.add_argument("--threads", type=int, default=2)
    # One backend launch per call even at batch 1024 (the default 256 splits it, and the
    # launches' queue and solve times then overlap in Timing).
    parser.add_argument("--server-flags", default="--max_batch_size=1024")
    parser.add_argument("--problems", default="cartpole,pendulum")
    parser.add_argument("--settings", default="fixed10,converged")
    parser.add_argument("--layouts", default="batched,shared")
    parser.add_argument("--batches", default="1,16,64,256,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "training_step.jsonl"))
    parser.add_argument("--plot", default=os.path.join(REPO, "docs", "training_step.png"))
    parser.add_argument("--client-dir", default=_CLIENT_DIR,
                        help="the mpcd Python package's parent directory to time")
    parser.add_argument("--stubs-dir", default=_STUBS_DIR,
                        help="the generated Python stubs' directory (default: build/python)")
    parser.add_argument("--mpc-pytorch", choices=("auto", "recorded"), default="auto",
                        help="auto: measure mpc.pytorch in this process when `mpc` is "
                        "importable, else its recorded numbers; recorded: the recorded numbers")
    parser.add_argument("--mpc-pytorch-batches",
                        help="the batches to measure mpc.pytorch at (default: --batches); the "
                        "others take the recorded numbers where TIMINGS.md has them")
    parser.add_argument("--mpc-pytorch-repeats", type=int,
                        help="mpc.pytorch's repeats after its warm-up (default: --repeats)")
    parser.add_argument("--timings", default=TIMINGS,
                        help="mpc.pytorch's recorded timings (default: the vendored TIMINGS.md)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    recorded = recorded_mpc_pytorch(args.timings)
    provenance = recorded_provenance(args.timings)
    recorded_source = recorded_label(provenance)
    modules = mpc_pytorch_module() if args.mpc_pytorch == "auto" else None
    measure_batches = {int(b) for b in (args.mpc_pytorch_batches or args.batches).split(",")}
    mpc_pytorch_repeats = args.mpc_pytorch_repeats or args.repeats
    if modules is not None:
        mpc_pytorch = dict(source="measured", module=os.path.dirname(modules[0].__file__),
                           batches=sorted(measure_batches), repeats=mpc_pytorch_repeats,
                           torch_num_threads=1)
        print("mpc.pytorch: measured in this process (%s), batches %s; other rows: %s (%s)" % (
            mpc_pytorch["module"], mpc_pytorch["batches"], recorded_source, provenance["file"]),
            file=sys.stderr, flush=True)
    else:
        mpc_pytorch = dict(source=recorded_source)
        print("mpc.pytorch: %s; comparing with its %s numbers of %s (mpc.pytorch %s, torch %s)" % (
            "not importable" if args.mpc_pytorch == "auto" else "not measured (--mpc-pytorch="
            "recorded)", recorded_source, provenance["file"],
            provenance.get("mpc_pytorch_commit", "?")[:12], provenance.get("torch_version", "?")),
            file=sys.stderr, flush=True)
    mpc_pytorch["recorded"] = dict(provenance, label=recorded_source)

    server = None
    if args.target is None:
        from mpcd_harness import Mpcd
        server = Mpcd(args.mpcd, "--backend=cpu", "--threads=%d" % args.threads,
                      *args.server_flags.split())
        args.target = server.target
    client = mpcd.Client(args.target, timeout=600)
    client.models_by_name = {model.name: model for model in client.models()}
    results = []
    measured = {}  # (problem, setting, B): mpc_pytorch_step's dict, shared by the layouts
    try:
        for name in args.problems.split(","):
            for setting in args.settings.split(","):
                for layout in args.layouts.split(","):
                    for B in (int(b) for b in args.batches.split(",")):
                        one_step(name, setting, B, layout, client)  # warm-up
                        runs = [one_step(name, setting, B, layout, client)
                                for _ in range(args.repeats)]
                        step = statistics.median(r[0] for r in runs)
                        solver = statistics.median(r[1] for r in runs)
                        queue = statistics.median(r[2] for r in runs)
                        rpc = statistics.median(r[3] for r in runs)
                        key = (name, setting, B)
                        if key not in measured and B in measure_batches:
                            measured[key] = mpc_pytorch_step(name, setting, B,
                                                             mpc_pytorch_repeats, modules)
                        ours = measured.get(key)
                        if ours is not None:
                            reference, source = ours["s"], "measured"
                        else:
                            reference = recorded.get(key)
                            source = recorded_source if reference else None
                        row = dict(problem=name, setting=setting, layout=layout, batch=B,
                                   step_s=step, solver_s=solver, queue_s=queue,
                                   client_transport_share=(step - solver - queue) / step,
                                   # The two calls' wall time beside the server's launches
                                   # (conversion, gRPC, both ends' copies) and the Python client
                                   # and autograd outside the calls.
                                   rpc_s=rpc, transport_s=rpc - solver - queue,
                                   python_s=step - rpc,
                                   mpc_pytorch_s=reference, mpc_pytorch_source=source,
                                   mpc_pytorch_min_s=ours["min_s"] if ours else None,
                                   speedup=(reference / step) if reference else None,
                                   solver_speedup=(reference / solver) if reference else None,
                                   load_average=round(os.getloadavg()[0], 2))
                        results.append(row)
                        print(json.dumps(row), flush=True)
    finally:
        client.close()
        if server is not None:
            server.stop()

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(json.dumps(dict(machine=platform.node(), threads=args.threads,
                                server_flags=args.server_flags, client_dir=args.client_dir,
                                load_average=os.getloadavg(),
                                cpu_count=os.cpu_count(), date=time.strftime("%Y-%m-%d"),
                                torch=torch.__version__, mpc_pytorch=mpc_pytorch)) + "\n")
        for row in results:
            f.write(json.dumps(row) + "\n")
    if args.plot:
        plot(results, args.plot)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    # mpc.env_dx sets matplotlib's 'bmh' style when it is imported; the plot keeps the default.
    with plt.style.context("default"):
        _plot(plt, results, path)


def _plot(plt, results, path):
    keys = sorted({(r["problem"], r["setting"]) for r in results})
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, (name, setting) in zip(axes[0], keys):
        rows = [r for r in results if r["problem"] == name and r["setting"] == setting]
        for layout, style in (("batched", "-"), ("shared", "--")):
            sel = sorted((r for r in rows if r["layout"] == layout), key=lambda r: r["batch"])
            if not sel:
                continue
            b = [r["batch"] for r in sel]
            ax.plot(b, [r["step_s"] for r in sel], "o" + style, color="C0",
                    label="mpcd step (%s)" % layout)
            ax.plot(b, [r["solver_s"] for r in sel], "s" + style, color="C2",
                    label="solver alone (%s)" % layout)
        # Measured and recorded numbers as separate lines, each labelled with its source.
        for source in sorted({r["mpc_pytorch_source"] for r in rows if r["mpc_pytorch_s"]}):
            ref = sorted({(r["batch"], r["mpc_pytorch_s"]) for r in rows
                          if r["mpc_pytorch_s"] and r["mpc_pytorch_source"] == source})
            ax.plot([b for b, _ in ref], [t for _, t in ref],
                    "^-" if source == "measured" else "v:", color="C3",
                    label="mpc.pytorch (%s)" % source)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch")
        ax.set_ylabel("seconds per training step")
        ax.set_title("%s, %s" % (name, setting))
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
