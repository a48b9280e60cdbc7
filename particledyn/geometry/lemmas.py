"""Per-step checks of Lemma 1 (equal particles stay equal) and Lemma 2
(``(1 - eta K) d_ij <= d'_ij <= (1 + eta K) d_ij``) over neighbour pairs.

Rounding: positions are stored in floating point, so a computed distance at
t+1 carries an absolute error of a few ulps of the coordinates whatever the
pair. A pair violates a bound only when it misses it by more than
``rtol * d_ij(t) + atol``, with ``rtol = 1e-12`` and, by default,
``atol = 8 * eps_machine * max |x|`` over both configurations (eps_machine of
float64). Lemma 1 calls a pair *equal* when ``d_ij(t) <= equal_tol`` (default
0: bitwise-identical positions) and *split* when such a pair has
``d_ij(t+1) > split_tol`` (default: ``atol``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .neighbours import NeighbourPairs, as_positions

#: Default relative slack of the Lemma 2 bounds (float64 round-off).
LEMMA_RTOL = 1e-12


@dataclass(frozen=True)
class LemmaCheck:
    """Result of :func:`lemma_check`.

    Attributes
    ----------
    min_ratio, max_ratio : float
        Extremes of ``d_ij(t+1) / d_ij(t)`` over pairs with ``d_ij(t) > equal_tol``
        (NaN when there is none).
    lower_bound, upper_bound : float
        ``1 - eta K`` and ``1 + eta K``.
    n_pairs : int
        Pairs that entered the ratios.
    n_lower_violations, n_upper_violations : int
        Pairs below ``(1 - eta K) d_ij - slack`` / above ``(1 + eta K) d_ij + slack``.
    n_equal : int
        Pairs with ``d_ij(t) <= equal_tol``.
    n_split : int
        Equal pairs with ``d_ij(t+1) > split_tol`` (Lemma 1 says none).
    atol : float
        The absolute slack used.
    """

    min_ratio: float
    max_ratio: float
    lower_bound: float
    upper_bound: float
    n_pairs: int
    n_lower_violations: int
    n_upper_violations: int
    n_equal: int
    n_split: int
    atol: float

    @property
    def n_violations(self) -> int:
        """Lemma 2 violations, both sides."""
        return self.n_lower_violations + self.n_upper_violations


def rounding_atol(*configurations) -> float:
    """Default absolute slack: 8 float64 ulps of the largest coordinate."""
    largest = max(float(np.abs(c).max()) if np.size(c) else 0.0 for c in configurations)
    return 8.0 * np.finfo(np.float64).eps * largest


def lemma_check(pairs: NeighbourPairs, next_positions, lr: float, K: float, *,
                rtol: float = LEMMA_RTOL, atol: float | None = None,
                equal_tol: float = 0.0, split_tol: float | None = None) -> LemmaCheck:
    """Check Lemmas 1 and 2 on one step x(t) -> x(t+1) over neighbour pairs of x(t).

    Parameters
    ----------
    pairs : NeighbourPairs
        Pairs of x(t) (pairs are found at time t).
    next_positions : array_like, shape (N, D)
        x(t+1).
    lr : float
        The learning rate eta of the step.
    K : float
        The Lipschitz constant to test (>= 0).
    rtol, atol : float
        Slack of the bounds, see the module notes; ``atol=None`` picks
        :func:`rounding_atol`.
    equal_tol, split_tol : float
        Lemma 1 thresholds, see the module notes; ``split_tol=None`` uses ``atol``.

    Returns
    -------
    LemmaCheck
    """
    if not isinstance(pairs, NeighbourPairs):
        raise TypeError(f"pairs is {type(pairs).__name__}: expected a NeighbourPairs")
    next_positions = as_positions(next_positions, "next_positions")
    if next_positions.shape != pairs.positions.shape:
        raise ValueError(f"next_positions has shape {next_positions.shape}: expected "
                         f"{pairs.positions.shape} like x(t)")
    lr, K = float(lr), float(K)
    if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"lr={lr!r}: expected a finite non-negative learning rate")
    if not np.isfinite(K) or K < 0:
        raise ValueError(f"K={K!r}: expected a finite non-negative Lipschitz constant")
    if atol is None:
        atol = rounding_atol(pairs.positions, next_positions)
    if split_tol is None:
        split_tol = atol
    before = pairs.distances
    after = pairs.norms(next_positions)
    equal = before <= equal_tol
    n_equal = int(np.count_nonzero(equal))
    n_split = int(np.count_nonzero(after[equal] > split_tol))
    lower, upper = 1.0 - lr * K, 1.0 + lr * K
    d0, d1 = before[~equal], after[~equal]
    slack = rtol * d0 + atol
    n_low = int(np.count_nonzero(d1 < lower * d0 - slack))
    n_high = int(np.count_nonzero(d1 > upper * d0 + slack))
    if len(d0):
        ratio = d1 / d0
        lo, hi = float(ratio.min()), float(ratio.max())
    else:
        lo = hi = float("nan")
    return LemmaCheck(lo, hi, lower, upper, int(len(d0)), n_low, n_high, n_equal, n_split,
                      float(atol))
