"""Fused loops over every pair i < j, for clouds small enough to use all pairs (N <= 5000).

The pair observers at N = 1024 spent most of their time materialising the 523,776 pairs: the
index arrays (``np.triu_indices``, ~9 ms), the distance arrays (``pdist``, ~1.5 ms each), the
masks and ratios over them. These loops visit the pairs in ``pdist``'s order (row-major,
i < j), compute each distance as ``pdist`` does (square root of the sum of squared coordinate
differences, in coordinate order: equal to the bit, tested), and keep only what the
observers record: a maximum ratio and its pair, counts under thresholds, the few pairs within
a merge scale, the closest pair. Ties go to the first pair in that order, as ``np.argmax``
and ``np.argmin`` over the ``pdist`` arrays do, so every result equals the array code's
(:mod:`particledyn.geometry.lipschitz`, :func:`particledyn.geometry.lemmas.bounds_check`,
:class:`particledyn.geometry.neighbours.NeighbourPairs`), which stays as the reference.

The loops are serial: their maxima, first indices and counts are then the same at every
thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["ratio_max", "bounds_counts", "pairs_within", "count_within", "closest", "scan"]


@numba.njit(cache=True, inline="always")
def _dist(X, i, j):
    s = 0.0
    for k in range(X.shape[1]):
        t = X[i, k] - X[j, k]
        s += t * t
    return math.sqrt(s)


@numba.njit(cache=True)
def _ratio_max(X, V):
    n = X.shape[0]
    best, bi, bj, positive = -np.inf, -1, -1, 0
    for i in range(n):
        for j in range(i + 1, n):
            d = _dist(X, i, j)
            if d > 0:
                positive += 1
                r = _dist(V, i, j) / d
                if r > best:
                    best, bi, bj = r, i, j
    return best, bi, bj, positive


def ratio_max(X: np.ndarray, V: np.ndarray) -> tuple[float, int, int, int, int]:
    """``max ||V_i - V_j|| / ||X_i - X_j||`` over pairs with ``X_i != X_j``.

    Returns
    -------
    (K, i, j, n_positive, n_coincident)
        K is -inf and (i, j) = (-1, -1) when no pair has a positive distance.
    """
    X, V = _f64(X), _f64(V)
    n = len(X)
    best, i, j, positive = _ratio_max(X, V)
    return float(best), int(i), int(j), int(positive), n * (n - 1) // 2 - int(positive)


@numba.njit(cache=True)
def _bounds(X0, X1, lower, upper, rtol, atol, equal_tol, split_tol):
    n = X0.shape[0]
    n_equal, n_split, n_low, n_high, n_used = 0, 0, 0, 0, 0
    lo, hi = np.inf, -np.inf
    for i in range(n):
        for j in range(i + 1, n):
            d0 = _dist(X0, i, j)
            d1 = _dist(X1, i, j)
            if d0 <= equal_tol:
                n_equal += 1
                if d1 > split_tol:
                    n_split += 1
                continue
            n_used += 1
            slack = rtol * d0 + atol
            if d1 < lower * d0 - slack:
                n_low += 1
            if d1 > upper * d0 + slack:
                n_high += 1
            ratio = d1 / d0
            lo = min(lo, ratio)
            hi = max(hi, ratio)
    return n_equal, n_split, n_low, n_high, n_used, lo, hi


def bounds_counts(X0, X1, lower, upper, rtol, atol, equal_tol, split_tol):
    """The counts and ratio extremes of :func:`particledyn.geometry.lemmas.bounds_check` over
    every pair, from the two configurations: ``(n_equal, n_split, n_low, n_high, n_used, lo,
    hi)`` (lo = inf, hi = -inf without a pair above ``equal_tol``)."""
    out = _bounds(_f64(X0), _f64(X1), *(float(v) for v in (lower, upper, rtol, atol, equal_tol, split_tol)))
    return tuple(int(v) for v in out[:5]) + (float(out[5]), float(out[6]))


@numba.njit(cache=True)
def _within(X, eps, src, dst):
    n = X.shape[0]
    count = 0
    for i in range(n):
        for j in range(i + 1, n):
            if _dist(X, i, j) <= eps:
                if count < len(src):
                    src[count], dst[count] = i, j
                count += 1
    return count


def pairs_within(X: np.ndarray, eps: float, dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``i < j`` with ``||X_i - X_j|| <= eps``, in ``pdist`` order."""
    X = _f64(X)
    capacity = 4 * len(X)
    src, dst = np.empty(capacity, dtype=dtype), np.empty(capacity, dtype=dtype)
    count = _within(X, float(eps), src, dst)
    if count > capacity:  # a dense cloud: once more with room for all
        src, dst = np.empty(count, dtype=dtype), np.empty(count, dtype=dtype)
        _within(X, float(eps), src, dst)
    return src[:count].copy(), dst[:count].copy()


def count_within(X: np.ndarray, eps: float) -> int:
    """Number of pairs ``i < j`` with ``||X_i - X_j|| <= eps``."""
    empty = np.empty(0, dtype=np.int32)
    return int(_within(_f64(X), float(eps), empty, empty))


@numba.njit(cache=True)
def _scan(X, eps, src, dst):
    n = X.shape[0]
    count, best, bi, bj = 0, np.inf, -1, -1
    for i in range(n):
        for j in range(i + 1, n):
            d = _dist(X, i, j)
            if d < best:
                best, bi, bj = d, i, j
            if d <= eps:
                if count < len(src):
                    src[count], dst[count] = i, j
                count += 1
    return count, best, bi, bj


def scan(X: np.ndarray, eps: float, dtype=np.int32):
    """One pass over the pairs: every pair within ``eps`` (as :func:`pairs_within`) and the
    closest pair (as :func:`closest`): ``(i, j, (distance, (a, b)))``."""
    X = _f64(X)
    capacity = 4 * len(X)
    src, dst = np.empty(capacity, dtype=dtype), np.empty(capacity, dtype=dtype)
    count, best, bi, bj = _scan(X, float(eps), src, dst)
    if count > capacity:  # a dense cloud: once more with room for all
        src, dst = np.empty(count, dtype=dtype), np.empty(count, dtype=dtype)
        _scan(X, float(eps), src, dst)
    return src[:count].copy(), dst[:count].copy(), (float(best), (int(bi), int(bj)))


@numba.njit(cache=True)
def _closest(X):
    n = X.shape[0]
    best, bi, bj = np.inf, -1, -1
    for i in range(n):
        for j in range(i + 1, n):
            d = _dist(X, i, j)
            if d < best:
                best, bi, bj = d, i, j
    return best, bi, bj


def closest(X: np.ndarray) -> tuple[float, tuple[int, int]]:
    """The smallest pair distance and the first pair (in ``pdist`` order) attaining it."""
    best, i, j = _closest(_f64(X))
    return float(best), (int(i), int(j))


def _f64(X) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=np.float64)
