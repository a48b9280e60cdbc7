"""Black-box update rules: any function X -> U, checked for permutation equivariance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .kernel import Kernel


class NotEquivariantError(ValueError):
    """A rule gave U(PX) != P U(X) for a random permutation P."""


class BlackBoxKernel(Kernel):
    """Wrap any function ``update(positions, masses, context) -> U`` as a kernel.

    On the first call the rule is evaluated on the positions and on a random
    permutation of them (masses permuted alike); if U(PX) differs from P U(X)
    by more than ``tolerance`` (relative to ``max |U|``), it is refused with
    :class:`NotEquivariantError` naming the size of the violation. Rules with
    per-particle noise or index-dependent terms fail this check.

    Parameters
    ----------
    update : function (positions, masses, context) -> ndarray (N, D)
    dim : int
        Particle dimension D.
    context : function (step, rng, batch_size) -> Any, optional
    loss : function (positions, masses, context) -> float, optional
        Declares a gradient rule (update = -dL/dx).
    tolerance : float
        Allowed relative violation; default 1e-10 (float64) or 1e-4 (float32).
    seed : int
        Seed of the permutation used by the check.
    """

    def __init__(
        self,
        update: Callable,
        dim: int,
        context: Callable | None = None,
        loss: Callable | None = None,
        tolerance: float | None = None,
        seed: int = 12345,
        name: str = "blackbox",
    ):
        if not callable(update):
            raise TypeError(f"update={update!r}: expected a function (positions, masses, context) -> U")
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim={dim!r}: expected a positive integer")
        self.update, self.dim, self._context, self._loss = update, int(dim), context, loss
        self.tolerance, self.seed, self.name = tolerance, seed, name
        self.is_gradient = loss is not None
        self.checked = False

    def context(self, step, rng, batch_size):
        return None if self._context is None else self._context(step, rng, batch_size)

    def _evaluate(self, positions, masses, context):
        out = np.asarray(self.update(positions, masses, context))
        if out.shape != positions.shape:
            raise ValueError(f"{self.name} returned shape {out.shape}: expected {positions.shape}")
        return out.astype(positions.dtype, copy=False)

    def field(self, positions, masses, context):
        out = self._evaluate(positions, masses, context)
        if not self.checked:
            self.check_equivariance(positions, masses, context, out)
        return out

    def check_equivariance(self, positions, masses, context, out=None) -> float:
        """Relative violation max|U(PX) - P U(X)| / max|U(X)| for a random P; raises if too large."""
        if out is None:
            out = self._evaluate(positions, masses, context)
        perm = np.random.default_rng(self.seed).permutation(positions.shape[0])
        permuted = self._evaluate(positions[perm].copy(), masses[perm].copy(), context)
        scale = max(float(np.max(np.abs(out))), np.finfo(positions.dtype).tiny) if out.size else 1.0
        violation = float(np.max(np.abs(permuted - out[perm]))) / scale if out.size else 0.0
        tolerance = (
            self.tolerance
            if self.tolerance is not None
            else (1e-10 if positions.dtype == np.float64 else 1e-4)
        )
        if not violation <= tolerance:
            raise NotEquivariantError(
                f"{self.name} is not permutation equivariant: max|U(PX) - P U(X)| = "
                f"{violation:.3g} x max|U| for a random permutation (tolerance {tolerance:g}); "
                f"per-particle noise or index-dependent terms break property P1"
            )
        self.checked = True
        return violation

    def loss(self, positions, masses, context):
        if self._loss is None:
            raise NotImplementedError(f"{self.name} was built without a loss")
        return float(self._loss(positions, masses, context))
