"""The particle state: everything a simulation needs to continue exactly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class ParticleState:
    """Positions, masses and per-particle optimizer state of N particles in R^D.

    Attributes
    ----------
    positions : ndarray, shape (N, D)
        float32 or float64, C-contiguous.
    masses : ndarray, shape (N,)
        float64; 1/N per particle by default (1/N_g within each group).
    optimizer_state : dict of str to ndarray
        Per-particle optimizer state (momentum buffers, Adam moments), each (N, D):
        the augmented particle of the paper's section 5.2 is the row
        ``(positions[i], *[s[i] for s in optimizer_state.values()])``.
    step : int
        Number of updates applied so far.
    time : float
        Sum of the learning rates applied so far.
    seed : int
        Root of all randomness: the step-t context draws from (seed, t) only.
    """

    positions: np.ndarray
    masses: np.ndarray
    optimizer_state: dict = field(default_factory=dict)
    step: int = 0
    time: float = 0.0
    seed: int = 0

    @property
    def n(self) -> int:
        """Number of particles N."""
        return self.positions.shape[0]

    @property
    def dim(self) -> int:
        """Particle dimension D."""
        return self.positions.shape[1]


def validate_positions(positions, dtype=None) -> np.ndarray:
    """Check an initial state and return it as a C-contiguous float array (a copy).

    Raises
    ------
    ValueError
        Wrong number of dimensions, N = 0, D = 0, non-float dtype, NaN or inf.
    """
    array = np.asarray(positions)
    if array.ndim != 2:
        raise ValueError(
            f"positions of shape {array.shape}: expected a 2-D array (N particles, D dimensions)"
        )
    if array.shape[0] == 0:
        raise ValueError("N = 0 particles: expected at least one particle")
    if array.shape[1] == 0:
        raise ValueError("D = 0: expected particles of dimension at least 1")
    target = (
        np.dtype(dtype)
        if dtype is not None
        else (array.dtype if array.dtype in FLOAT_DTYPES else np.dtype(np.float64))
    )
    if target not in FLOAT_DTYPES:
        raise ValueError(f"dtype={target}: expected float32 or float64")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"positions of dtype {array.dtype}: expected real numbers")
    bad = ~np.isfinite(array)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"positions[{i}, {j}] = {array[i, j]}: expected finite initial positions "
            f"({int(bad.sum())} non-finite entries)"
        )
    return np.array(array, dtype=target, order="C", copy=True)


def default_masses(n: int, groups: tuple[int, ...] | None = None) -> np.ndarray:
    """1/N per particle, or 1/N_g within each group of ``groups``."""
    if groups is None:
        return np.full(n, 1.0 / n)
    return np.concatenate([np.full(size, 1.0 / size) for size in groups])


def validate_masses(masses, n: int) -> np.ndarray:
    """Check user masses: N positive finite numbers."""
    array = np.asarray(masses, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"masses of shape {array.shape}: expected ({n},), one per particle")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"masses with min {array.min()}: expected positive finite masses")
    return array.copy()


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The random generator of step ``step``: derived from (seed, step) only, so
    restarts and resumed runs draw exactly the same numbers."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(step)]))
