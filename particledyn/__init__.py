"""particledyn: permutation-equivariant particle dynamics (neurons as particles).

The public API: build a kernel (``particledyn.kernels``), an optimizer and a
:class:`Simulation`, add observers, run, and read the results from the sink or
from the HDF5 file with :func:`open_run`.
"""

from . import threads as _threads  # noqa: F401  first: sets numba's threading layer before anything starts it
from ._version import __version__
from .blackbox import BlackBoxKernel, NotEquivariantError
from .deepsets import DeepSetsKernel, UserKernelError
from .kernel import Kernel
from .observers import Observer, StepInfo
from .optimizers import GD, SGD, Adam, Momentum, Optimizer, make_optimizer
from .schedules import Constant, Cosine, Schedule, StepDecay
from .simulation import DivergenceError, Simulation, make_simulation, simulate
from .sinks import MemorySink, Sink
from .state import ParticleState

__all__ = [
    "__version__",
    "Adam",
    "Ensemble",
    "BlackBoxKernel",
    "Constant",
    "Cosine",
    "DeepSetsKernel",
    "DivergenceError",
    "GD",
    "Kernel",
    "MemorySink",
    "Momentum",
    "NotEquivariantError",
    "Observer",
    "Optimizer",
    "ParticleState",
    "SGD",
    "Schedule",
    "Simulation",
    "Sink",
    "StepDecay",
    "StepInfo",
    "make_optimizer",
    "simulate",
    "make_simulation",
    "open_run",
    "UserKernelError",
]


def open_run(path, **options):
    """Open a run file (finished, running or killed); see :func:`particledyn.io.open_run`."""
    from .io import open_run as _open_run

    return _open_run(path, **options)


def __getattr__(name):
    # Ensemble imports the two-layer kernel modules: only when asked for
    if name == "Ensemble":
        from .ensemble import Ensemble

        return Ensemble
    raise AttributeError(f"module 'particledyn' has no attribute {name!r}")
