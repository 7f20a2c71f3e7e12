"""Python client for mpcd, differentiable model-predictive control as a service.

    import mpcd
    client = mpcd.Client("localhost:50051")
    result = client.solve(horizon=20, problems=[mpcd.Problem(
        x_init=[1.0, 0.0, 0.0], C=np.diag([1, 1, 0.1, 0.001]), c=[-1, 0, 0, 0],
        dynamics=mpcd.Model("pendulum"), u_lower=[-2.0], u_upper=[2.0])])
    result.solutions[0].u          # numpy (T, m)

`mpcd.torch.MPC` is a drop-in for mpc.pytorch's `mpc.MPC` (import it as `import mpcd.torch`).

Installed (`pip install --no-build-isolation --no-index ./client/python`, see pyproject.toml), the
package carries its generated stubs (mpcd/v1/mpcd_pb2*.py). From a checkout without installing, the
stubs are build outputs (build/python/ after `make build`) that join this package through
pkgutil.extend_path when build/python is on sys.path (PYTHONPATH=client/python:build/python);
without it, the repository's build/python is tried.

The package is typed (PEP 561: mpcd/py.typed).
"""

import os as _os
import pkgutil as _pkgutil

__path__ = _pkgutil.extend_path(__path__, __name__)


def _add_default_stubs_dir() -> None:
    """Adds <repo>/build/python (where `make build` writes the stubs) when no sys.path entry has
    them."""
    for entry in __path__:
        if _os.path.isfile(_os.path.join(entry, "v1", "mpcd_pb2.py")):
            return
    package_dir = _os.path.dirname(_os.path.abspath(__file__))  # <repo>/client/python/mpcd
    repo = _os.path.dirname(_os.path.dirname(_os.path.dirname(package_dir)))
    generated = _os.path.join(repo, "build", "python", "mpcd")
    if _os.path.isfile(_os.path.join(generated, "v1", "mpcd_pb2.py")):
        __path__.append(generated)
        return
    raise ImportError(
        "mpcd: the generated stubs mpcd/v1/mpcd_pb2.py were not found on sys.path. Build them "
        "(`make build`, or `cmake --build build --target mpcd_python_stubs`) and put the build's "
        "python/ folder on PYTHONPATH, e.g. PYTHONPATH=client/python:build/python")


_add_default_stubs_dir()

from mpcd.client import (  # noqa: E402
    BackwardResult,
    Batch,
    Client,
    ControlSession,
    ControlStep,
    ConstraintGraph,
    CostGraph,
    DeadlineExceededError,
    FieldViolation,
    Gradient,
    InvalidArgumentError,
    Linear,
    Model,
    ModelInfo,
    MpcdError,
    Problem,
    Solution,
    SolveResult,
    StackedGradients,
    StackedSolveResult,
    Tracking,
    UnavailableError,
    tune_malloc,
)

__all__ = [
    "BackwardResult", "Client", "ControlSession", "ControlStep", "ConstraintGraph", "CostGraph",
    "DeadlineExceededError",
    "FieldViolation", "Gradient", "InvalidArgumentError",
    "Linear", "Model", "ModelInfo", "MpcdError", "Problem", "Solution", "SolveResult",
    "UnavailableError", "Batch", "StackedSolveResult", "StackedGradients", "Tracking",
    "tune_malloc",
]
