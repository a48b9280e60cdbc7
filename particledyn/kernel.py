"""The update-kernel protocol.

A kernel maps particle positions X (N x D) and a per-step context (a mini-batch,
a task) to the update field U (N x D); the optimizer turns U into a step.
For a gradient kernel U = -dL/dX, the negative per-particle gradient (for
mean-field scaling, per unit mass). Every kernel must be permutation
equivariant: U(PX) = P U(X) for every permutation P of the particles (of each
particle group, for kernels with several groups).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


class Kernel:
    """Base class of update kernels.

    Subclasses set ``dim`` (D) and implement :meth:`field`; gradient kernels
    also implement :meth:`loss` and may implement :meth:`hvp` (otherwise the
    diagnostics fall back to finite differences of :meth:`field`).

    Attributes
    ----------
    dim : int
        Dimension D of one particle.
    groups : tuple of int or None
        Sizes of the particle groups, in order, when the particles form several
        independently permutable sets (one per hidden layer); None for one set.
    is_gradient : bool
        True when ``field`` is the negative gradient of ``loss``.
    thread_invariant : bool
        True when ``field`` is bit-identical at every numba thread count (sums over fixed
        chunks in a fixed order, as the built-in kernels do); then each step may run at 1 thread
        or at numba's count, whichever is faster (:mod:`particledyn.thread_governor`). False
        (the default for a new kernel): every step runs at numba's count.
    """

    dim: int
    groups: tuple[int, ...] | None = None
    is_gradient: bool = True
    thread_invariant: bool = False
    name: str = "kernel"

    def context(self, step: int, rng: np.random.Generator | None, batch_size: int | None) -> Any:
        """Per-step context (e.g. the mini-batch shared by all particles).

        ``rng`` is derived from (seed, step) only, so a resumed run draws the
        same batches; it is None when :meth:`draws_context` says nothing is drawn.
        The default is no context.
        """
        return None

    def evaluation_context(self) -> Any:
        """Fixed context for diagnostics (sharpness, loss curves): the full training set."""
        return self.context(0, np.random.default_rng(0), None)

    def draws_context(self, batch_size: int | None) -> bool:
        """Whether :meth:`context` reads its ``rng`` (else the simulation passes None and saves
        building a generator, ~50 us, every step). Default: True."""
        return True

    def field(self, positions: np.ndarray, masses: np.ndarray, context: Any) -> np.ndarray:
        """Update field U, shape (N, D), same dtype as ``positions``."""
        raise NotImplementedError

    def loss(self, positions: np.ndarray, masses: np.ndarray, context: Any) -> float:
        """Loss whose negative gradient is the field (gradient kernels only)."""
        raise NotImplementedError(f"{type(self).__name__} defines no loss")

    def hvp(self, positions: np.ndarray, masses: np.ndarray, context: Any, vector: np.ndarray) -> np.ndarray:
        """Jacobian of ``-field`` applied to ``vector`` (N x D); the loss Hessian-vector
        product, in the mass metric for mean-field kernels. Default: central differences."""
        return finite_difference_jvp(self, positions, masses, context, vector)

    def hvp_operator(self, positions: np.ndarray, masses: np.ndarray, context: Any):
        """``v -> hvp(positions, masses, context, v)`` for many products at the same positions
        (a Lanczos solve); kernels override it to compute what every product shares once."""
        return lambda vector: self.hvp(positions, masses, context, vector)

    def check_positions(self, positions: np.ndarray) -> None:
        """Raise ValueError if ``positions`` do not fit this kernel."""
        if positions.ndim != 2 or positions.shape[1] != self.dim:
            raise ValueError(
                f"positions of shape {positions.shape}: expected (N, {self.dim}) for {self.name}"
            )
        if self.groups is not None and sum(self.groups) != positions.shape[0]:
            raise ValueError(
                f"{positions.shape[0]} particles: expected {sum(self.groups)} "
                f"(groups {self.groups}) for {self.name}"
            )

    def describe(self) -> dict:
        """Parameters of this kernel, for run metadata."""
        return {"name": self.name, "dim": self.dim}

    def to_device(self, backend) -> Kernel:
        """This kernel stepping the device arrays of ``backend`` (a device backend).

        Kernels with GPU code return their ``numba.cuda`` twin; this default runs
        :meth:`field` on host copies of the positions at every step, with a RuntimeWarning.
        """
        from .backends.host_fallback import HostFallbackKernel

        warnings.warn(
            f"kernel {self.name!r} has no GPU implementation: its field runs on host copies of the "
            "positions at every step",
            RuntimeWarning,
            stacklevel=4,
        )
        return HostFallbackKernel(self, backend)


class SupervisedKernel(Kernel):
    """A kernel trained on a fixed data set (``inputs``, ``targets``) with an output
    ``scaling``: the per-step context is a mini-batch shared by all particles."""

    inputs: np.ndarray
    targets: np.ndarray
    scaling: str
    #: None (a fresh draw every step) or a particledyn.sampling.EpochBatches
    batches = None

    def sample_by_epoch(self, batch_size: int, seed: int) -> None:
        """Draw batches epoch by epoch from now on, as a shuffling DataLoader does
        (:class:`particledyn.sampling.EpochBatches` of the training rows)."""
        from .sampling import EpochBatches

        self.batches = EpochBatches(self.inputs.shape[0], batch_size, seed)

    def context(self, step, rng, batch_size):
        """The batch (inputs, targets) shared by all particles at this step: ``batch_size``
        rows drawn without replacement by ``rng`` (in data order), or the full data set;
        after :meth:`sample_by_epoch`, the rows of the epoch's permutation for this step."""
        n = self.inputs.shape[0]
        if self.batches is not None:
            if batch_size != self.batches.batch_size:
                raise ValueError(
                    f"batch_size={batch_size!r}: expected {self.batches.batch_size}, the "
                    "batch size the epoch sampling was set up with"
                )
            index = self.batches.indices(step)
            return self.inputs[index], self.targets[index]
        if batch_size is None or batch_size >= n:
            return self.inputs, self.targets
        index = np.sort(rng.choice(n, size=batch_size, replace=False))
        return self.inputs[index], self.targets[index]

    def evaluation_context(self):
        return self.inputs, self.targets

    def draws_context(self, batch_size):
        # the full batch and the epoch permutation (seeded at sample_by_epoch) draw nothing per step
        return self.batches is None and batch_size is not None and batch_size < self.inputs.shape[0]

    def _coefficients(self, masses, dtype):
        """Per-neuron output coefficients: m_i in mean-field scaling, 1 in standard scaling."""
        if self.scaling == "mean_field":
            return np.asarray(masses, dtype=dtype)
        return np.ones(len(masses), dtype=dtype)


def finite_difference_jvp(kernel: Kernel, positions, masses, context, vector) -> np.ndarray:
    """-(U(X + hV) - U(X - hV)) / 2h: the Jacobian of -U along V by central differences.

    The step h is scaled to the size of X and V so that truncation and rounding
    errors balance (relative error ~1e-10 in float64).
    """
    x = np.asarray(positions, dtype=np.float64)
    v = np.asarray(vector, dtype=np.float64)
    vnorm = np.linalg.norm(v)
    if vnorm == 0.0:
        return np.zeros_like(x)
    h = (
        np.cbrt(np.finfo(np.float64).eps)
        * max(1.0, np.linalg.norm(x) / np.sqrt(x.size))
        / (vnorm / np.sqrt(v.size))
    )
    plus = kernel.field(x + h * v, masses, context)
    minus = kernel.field(x - h * v, masses, context)
    return -(plus - minus) / (2.0 * h)
