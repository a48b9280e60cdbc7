"""Per-step checks of Lemma 1 (equal particles stay equal) and Lemma 2
(``(1 - eta K) d_ij <= d'_ij <= (1 + eta K) d_ij``) over pairs of particles.

Which K: with the pairwise K of the *same* step and pairs the check cannot fail (the triangle
inequality gives ``|d' - d| <= eta |U_i - U_j|`` for any dynamics). A check that can fail takes K
from elsewhere: an a-priori bound (:mod:`.apriori`), the previous step, or held-out pairs (see
:class:`~particledyn.geometry.observers.LemmaObserver`). ``fraction_used`` reports how much of
the bound the step used, ``max |d'/d - 1| / (eta K)``: above 1 exactly when a pair violates it.

Rounding: positions are stored in floating point of the run's dtype (float32 or float64), so a
computed distance at t+1 carries an absolute error of a few ulps of the coordinates whatever the
pair. A pair violates a bound only when it misses it by more than ``rtol * d_ij(t) + atol``
(:func:`lemma_tolerances`: ``rtol = max(1e-12, 16 eps)``, ``atol = 8 eps max |x|`` over both
configurations, eps the machine epsilon of the dtype). Lemma 1 calls a pair *equal* when
``d_ij(t) <= equal_tol`` (default ``atol``: indistinguishable at the dtype's precision) and *split*
when such a pair has ``d_ij(t+1) > split_tol`` (default ``(1 + eta K) equal_tol + atol``: more than
Lemma 2 and rounding allow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from . import all_pairs
from .neighbours import NeighbourPairs, as_positions, pair_norms

#: Smallest relative slack of the Lemma 2 bounds (float64 round-off).
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
    fraction_used : float
        ``max |d'/d - 1| / (eta K)`` over the pairs (NaN without pairs; inf when eta K = 0 and a
        distance changed).
    equal_tol : float
        The Lemma 1 threshold used.
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
    fraction_used: float = float("nan")
    equal_tol: float = 0.0

    @property
    def n_violations(self) -> int:
        """Lemma 2 violations, both sides."""
        return self.n_lower_violations + self.n_upper_violations


def _eps(dtype) -> float:
    dtype = np.dtype(np.float64 if dtype is None else dtype)
    return float(np.finfo(dtype if dtype.kind == "f" else np.float64).eps)


def rounding_atol(*configurations, dtype=None) -> float:
    """Default absolute slack: 8 ulps (of ``dtype``, float64 by default) of the largest coordinate."""
    largest = max(float(np.abs(c).max()) if np.size(c) else 0.0 for c in configurations)
    return 8.0 * _eps(dtype) * largest


def lemma_tolerances(dtype, *configurations) -> tuple[float, float]:
    """``(rtol, atol)`` of the Lemma 2 checks for positions stored in ``dtype``.

    Parameters
    ----------
    dtype : numpy dtype
        The working precision of the run (float32 or float64).
    *configurations : ndarray
        The positions the distances come from.

    Returns
    -------
    rtol, atol : float
        ``max(1e-12, 16 eps)`` and ``8 eps max |x|``.
    """
    return max(LEMMA_RTOL, 16.0 * _eps(dtype)), rounding_atol(*configurations, dtype=dtype)


def bounds_check(
    before,
    after,
    lr: float,
    K: float,
    *,
    rtol: float,
    atol: float,
    equal_tol: float | None = None,
    split_tol: float | None = None,
) -> LemmaCheck:
    """Lemmas 1 and 2 on given pair distances ``d_ij(t)`` (``before``) and ``d_ij(t+1)``.

    Parameters
    ----------
    before, after : ndarray, shape (P,)
    lr, K : float
    rtol, atol, equal_tol, split_tol : float
        See the module notes (``None``: the defaults there).

    Returns
    -------
    LemmaCheck
    """
    eta_K, lower, upper, equal_tol, split_tol = _bounds_setup(lr, K, atol, equal_tol, split_tol)
    equal = before <= equal_tol
    n_equal = int(np.count_nonzero(equal))
    n_split = int(np.count_nonzero(after[equal] > split_tol))
    d0, d1 = before[~equal], after[~equal]
    slack = rtol * d0 + atol
    n_low = int(np.count_nonzero(d1 < lower * d0 - slack))
    n_high = int(np.count_nonzero(d1 > upper * d0 + slack))
    if len(d0):
        ratio = d1 / d0
        lo, hi = float(ratio.min()), float(ratio.max())
    else:
        lo = hi = float("nan")
    return _bounds_result(
        eta_K, lower, upper, equal_tol, atol, len(d0), n_low, n_high, n_equal, n_split, lo, hi
    )


def bounds_check_all_pairs(
    X0,
    X1,
    lr: float,
    K: float,
    *,
    rtol: float,
    atol: float,
    equal_tol: float | None = None,
    split_tol: float | None = None,
) -> LemmaCheck:
    """:func:`bounds_check` over every pair i < j of the configurations ``X0`` (x(t)) and
    ``X1`` (x(t+1)), in one fused loop (:func:`particledyn.geometry.all_pairs.bounds_counts`)
    instead of the two ``pdist`` arrays; the same result (tested)."""
    eta_K, lower, upper, equal_tol, split_tol = _bounds_setup(lr, K, atol, equal_tol, split_tol)
    n_equal, n_split, n_low, n_high, n_used, lo, hi = all_pairs.bounds_counts(
        X0, X1, lower, upper, rtol, atol, equal_tol, split_tol
    )
    if not n_used:
        lo = hi = float("nan")
    return _bounds_result(
        eta_K, lower, upper, equal_tol, atol, n_used, n_low, n_high, n_equal, n_split, lo, hi
    )


def _bounds_setup(lr, K, atol, equal_tol, split_tol):
    lr, K = float(lr), float(K)
    if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"lr={lr!r}: expected a finite non-negative learning rate")
    if not np.isfinite(K) or K < 0:
        raise ValueError(f"K={K!r}: expected a finite non-negative Lipschitz constant")
    eta_K = lr * K
    equal_tol = float(atol) if equal_tol is None else float(equal_tol)
    split_tol = (1.0 + eta_K) * equal_tol + atol if split_tol is None else float(split_tol)
    return eta_K, 1.0 - eta_K, 1.0 + eta_K, equal_tol, split_tol


def _bounds_result(eta_K, lower, upper, equal_tol, atol, n_used, n_low, n_high, n_equal, n_split, lo, hi):
    if n_used:
        change = max(hi - 1.0, 1.0 - lo)
        used = change / eta_K if eta_K > 0 else (0.0 if change == 0 else float("inf"))
    else:
        used = float("nan")
    return LemmaCheck(
        lo,
        hi,
        lower,
        upper,
        int(n_used),
        n_low,
        n_high,
        n_equal,
        n_split,
        float(atol),
        float(used),
        equal_tol,
    )


def lemma_check(
    pairs: NeighbourPairs,
    next_positions,
    lr: float,
    K: float,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    equal_tol: float | None = None,
    split_tol: float | None = None,
    dtype=None,
    extra_pairs=None,
) -> LemmaCheck:
    """Check Lemmas 1 and 2 on one step x(t) -> x(t+1) over pairs of x(t).

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
    rtol, atol : float, optional
        Slack of the bounds; None picks :func:`lemma_tolerances` of ``dtype``.
    equal_tol, split_tol : float, optional
        Lemma 1 thresholds, see the module notes.
    dtype : numpy dtype, optional
        Working precision of the run; default the dtype of ``next_positions``.
    extra_pairs : tuple of int arrays, optional
        More pairs ``(i, j)`` to check beside ``pairs`` (e.g. :func:`extreme_pairs`).

    Returns
    -------
    LemmaCheck
    """
    if not isinstance(pairs, NeighbourPairs):
        raise TypeError(f"pairs is {type(pairs).__name__}: expected a NeighbourPairs")
    if dtype is None:
        dtype = getattr(next_positions, "dtype", np.float64)
    next_positions = as_positions(next_positions, "next_positions")
    if next_positions.shape != pairs.positions.shape:
        raise ValueError(
            f"next_positions has shape {next_positions.shape}: expected {pairs.positions.shape} like x(t)"
        )
    default_rtol, default_atol = lemma_tolerances(dtype, pairs.positions, next_positions)
    before, after = pairs.distances, pairs.norms(next_positions)
    if extra_pairs is not None:
        i, j = extra_pairs
        before = np.concatenate([before, pair_norms(pairs.positions, i, j)])
        after = np.concatenate([after, pair_norms(next_positions, i, j)])
    return bounds_check(
        before,
        after,
        lr,
        K,
        rtol=default_rtol if rtol is None else rtol,
        atol=default_atol if atol is None else atol,
        equal_tol=equal_tol,
        split_tol=split_tol,
    )


def extreme_pairs(before, after, n_sample: int, rng: np.random.Generator):
    """The most contracted and the most expanded partner of ``n_sample`` random particles.

    Over *all* partners j of each sampled particle i, the pairs with the smallest and largest
    ``d_ij(t+1) / d_ij(t)`` (pairs with ``d_ij(t) = 0`` skipped): pairs that nearly collide are
    often far down each other's neighbour lists, where a kNN check never looks. Cost
    O(n_sample N D).

    Parameters
    ----------
    before, after : ndarray, shape (N, D)
        x(t) and x(t+1).
    n_sample : int
    rng : numpy.random.Generator

    Returns
    -------
    i, j : ndarray of int64
        Up to ``2 n_sample`` pairs, ``i < j``, duplicates removed.
    """
    X, Y = as_positions(before, "before"), as_positions(after, "after")
    n = len(X)
    if n < 2 or n_sample <= 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    chosen = rng.choice(n, size=min(int(n_sample), n), replace=False).astype(np.int64)
    low, high = _extreme_partners(X, Y, chosen)
    keep = low >= 0
    pairs = np.concatenate([np.c_[chosen[keep], low[keep]], np.c_[chosen[keep], high[keep]]])
    if not len(pairs):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


@numba.njit(parallel=True, cache=True)
def _extreme_partners(X, Y, chosen):
    """Per sampled particle, the partner with the smallest and largest d(t+1)^2 / d(t)^2 (-1: none)."""
    n, dim = X.shape
    low = np.full(len(chosen), -1, dtype=np.int64)
    high = np.full(len(chosen), -1, dtype=np.int64)
    for s in numba.prange(len(chosen)):
        i = chosen[s]
        best_low, best_high = np.inf, -np.inf
        for j in range(n):
            d0 = 0.0
            d1 = 0.0
            for k in range(dim):
                a = X[j, k] - X[i, k]
                b = Y[j, k] - Y[i, k]
                d0 += a * a
                d1 += b * b
            if d0 > 0.0:
                ratio = d1 / d0
                if ratio < best_low:
                    best_low, low[s] = ratio, j
                if ratio > best_high:
                    best_high, high[s] = ratio, j
    return low, high
