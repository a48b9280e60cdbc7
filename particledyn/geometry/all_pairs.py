"""Fused loops over every pair i < j, for clouds small enough to use all pairs (N <= 5000).

The pair observers at N = 1024 spent most of their time materialising the 523,776 pairs: the
index arrays (``np.triu_indices``, ~9 ms), the distance arrays (``pdist``, ~1.5 ms each), the
masks and ratios over them. These loops visit the pairs in ``pdist``'s order (row-major,
i < j), compute each distance as ``pdist`` does (square root of the sum of squared coordinate
differences, in coordinate order: equal to the bit, tested), and keep only what the
observers record. Most pairs are decided on their squared distance alone (far from every
threshold and inside the extremes found so far, by a relative margin of 1e-9 that dwarfs the
roundings); only pairs near a threshold take the square roots, so each decision is the one the
exact distances give: a maximum ratio and its pair, counts under thresholds, the few pairs within
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


#: Relative margin of the screens on squared distances: a pair whose squared distance is farther
#: than this from a threshold is decided without its square root (the roundings of the squares,
#: the products and the root are a few 1e-16); only the pairs near a threshold take the exact
#: path, so every comparison decides as the exact distance would.
_MARGIN = 1e-9


@numba.njit(cache=True, inline="always")
def _sq(X, i, j):
    if X.shape[1] == 2:  # the low-dim nets' neurons: unrolled, the same sum (0 + a = a)
        t0, t1 = X[i, 0] - X[j, 0], X[i, 1] - X[j, 1]
        return t0 * t0 + t1 * t1
    s = 0.0
    for k in range(X.shape[1]):
        t = X[i, k] - X[j, k]
        s += t * t
    return s


@numba.njit(cache=True, inline="always")
def _above(s, r):
    """Squared distance ``s`` surely above distance ``r >= 0`` (its root would exceed r)."""
    return r < 0 or (s > r * r * (1.0 + _MARGIN) and r * r < np.inf)


@numba.njit(cache=True, inline="always")
def _below(s, r):
    """Squared distance ``s`` surely below distance ``r >= 0``."""
    return r >= 0 and s < r * r * (1.0 - _MARGIN)


@numba.njit(cache=True)
def _ratio_max(X, V):
    n = X.shape[0]
    best, bi, bj, positive = -np.inf, -1, -1, 0
    screen = -1.0  # (best^2 (1 - margin)): a ratio^2 at or below it is surely not above the best
    for i in range(n):
        for j in range(i + 1, n):
            b = _sq(X, i, j)
            if b > 0:
                positive += 1
                a = _sq(V, i, j)
                bound = screen * b
                if a <= bound and bound < np.inf:
                    continue  # surely not above the best so far: no roots needed
                r = math.sqrt(a) / math.sqrt(b)
                if r > best:
                    best, bi, bj = r, i, j
                    screen = best * best * (1.0 - _MARGIN)
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
    low_violation = lower - rtol  # ratios surely above it are no lower violation (slack >= rtol d0)
    high_violation = upper + rtol
    a2, b2 = np.inf, -1.0  # squared ratio window, see below; empty until two extremes are known
    for i in range(n):
        for j in range(i + 1, n):
            s0 = _sq(X0, i, j)
            s1 = _sq(X1, i, j)
            if _above(s0, equal_tol):
                # the pair counts as unequal; skipped (no roots) when its ratio surely lies inside
                # the extremes so far and surely inside both bounds
                top = b2 * s0
                if s1 >= a2 * s0 and s1 <= top and top < np.inf:
                    n_used += 1
                    continue
            d0 = math.sqrt(s0)
            d1 = math.sqrt(s1)
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
            if ratio < lo or ratio > hi:
                lo = min(lo, ratio)
                hi = max(hi, ratio)
                a = max(lo, low_violation, 0.0) * (1.0 + _MARGIN) + _MARGIN
                b = min(hi, high_violation) * (1.0 - _MARGIN) - _MARGIN
                a2, b2 = a * a, (b * b if b > 0 else -1.0)
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
            s = _sq(X, i, j)
            if _below(s, eps) or (not _above(s, eps) and math.sqrt(s) <= eps):
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
            s = _sq(X, i, j)
            if _above(s, best) and _above(s, eps):
                continue  # neither closer than the best so far nor within eps
            d = math.sqrt(s)
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
            s = _sq(X, i, j)
            if _above(s, best):
                continue
            d = math.sqrt(s)
            if d < best:
                best, bi, bj = d, i, j
    return best, bi, bj


def closest(X: np.ndarray) -> tuple[float, tuple[int, int]]:
    """The smallest pair distance and the first pair (in ``pdist`` order) attaining it."""
    best, i, j = _closest(_f64(X))
    return float(best), (int(i), int(j))


def _f64(X) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=np.float64)
