"""Theorem 2 of the paper, measured: r-expansions of S(t) and S(t+1).

Theorem 2 states: if eta*K < 1, then for every r < delta_t (the smallest
distance between two distinct points of S(t)) the union of open balls of
radius r around S(t) is homeomorphic to the union of balls of radius
(1 - eta*K) r around S(t+1). **As stated it is false for delta_t / 2 < r <
delta_t**, even for U = 0: two points at distance delta have open balls of
radius r that meet, while balls of radius (1 - eta*K) r around the same points
need not. Its proof assumes pairwise disjoint balls, i.e. the corrected range
**r <= delta_t / 2**, where it holds (and says little: the union is then N
disjoint balls, kept disjoint by Lemma 2's lower bound). This module computes
both sides and reports, per r, whether they agree, whether r is in the
corrected range (``disjoint``) and whether it lies in the stated-only range
(``misstatement``: a disagreement there is the misstatement, not a finding).

Balls are **open**, as in the theorem: at r = delta_t / 2 the closest pair's
balls are tangent, and tangency is not contact (closed balls would report a
false change there). A simplex of filtration value v is in the open union at r
exactly when v < r; values within ``TANGENCY_RTOL`` of r count as tangent.

A disagreement flags a contradiction (``contradicts_theorem``) only with a
certified K (an upper bound on the update's Lipschitz constant, e.g. the
a-priori bound of :mod:`particledyn.geometry.apriori`): with the step's own
neighbour ratio (:func:`empirical_lipschitz`, a lower bound on K) a
disagreement proves nothing.

Models of the union of balls (Betti numbers):

* ``"alpha"`` (default for D <= 3): the alpha complex at alpha^2 = r^2 is
  homotopy equivalent to the union of balls of radius r -- exact.
* ``"rips"`` (default for D > 3): with Cech(r) the nerve of the radius-r balls
  and R(r) the Rips complex with edges < 2r (balls meeting pairwise),
  Cech(r) ⊆ R(r) ⊆ Cech(c r), c = sqrt(2D/(D+1)) <= sqrt(2) (Jung's theorem).
  The reported Betti numbers are those of R(r), a proxy; ``lower_bound``
  holds rank H_k(R(r/c)) -> H_k(R(r)), which factors through H_k(Cech(r)) and
  is therefore a certified lower bound on the union's b_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.spatial import cKDTree

from ..geometry.closest import closest_pair_sweep
from .betti import _check_max_dim, alpha_diagram, rips_diagram
from .diagrams import betti_from_diagram
from .landmarks import _check_cloud

__all__ = [
    "ExpansionResult",
    "min_separation",
    "union_of_balls_betti",
    "expansion_check",
    "empirical_lipschitz",
    "MODELS",
    "TANGENCY_RTOL",
]

MODELS = ("auto", "alpha", "rips")
#: Filtration values within this relative distance of a radius count as tangent (not in the open union).
TANGENCY_RTOL = 1e-9


def _distinct(X: np.ndarray) -> np.ndarray:
    """The distinct rows of ``X`` in lexicographic order, as ``np.unique(X, axis=0)`` gives them
    (S(t) is a set: merged particles are one point of it), by a lexsort: ~7x faster at N = 1024
    than ``np.unique``'s sort of a structured view."""
    if len(X) < 2:
        return X.copy()
    rows = X[np.lexsort(X.T[::-1])]
    keep = np.empty(len(rows), dtype=bool)
    keep[0] = True
    keep[1:] = np.any(rows[1:] != rows[:-1], axis=1)
    return rows[keep]


def min_separation(points) -> float:
    """Smallest distance between two distinct positions, inf if < 2 of them.

    An exact sort-and-sweep (:func:`particledyn.geometry.closest.closest_pair_sweep`: the
    distance a k-d tree's nearest-neighbour query gives, to the bit, in a fraction of its time).

    Parameters
    ----------
    points : array_like, shape (N, D)

    Returns
    -------
    float
    """
    P = _distinct(_check_cloud(points))
    if len(P) < 2:
        return float("inf")
    return closest_pair_sweep(P)[0]


def _resolve_model(model: str, dim: int) -> str:
    if model not in MODELS:
        raise ValueError(f"model={model!r}: expected one of {MODELS}")
    if model == "auto":
        return "alpha" if dim <= 3 else "rips"
    return model


def _open_betti(diagram: np.ndarray, scales: np.ndarray, max_dim: int) -> np.ndarray:
    """Betti numbers of the open sublevel sets: features with birth < s <= death (tangency-tolerant)."""
    cut = scales * (1.0 - TANGENCY_RTOL)
    out = np.zeros((scales.size, max_dim + 1), dtype=np.int64)
    for k in range(max_dim + 1):
        rows = diagram[diagram[:, 0] == k]
        out[:, k] = ((rows[None, :, 1] < cut[:, None]) & (rows[None, :, 2] >= cut[:, None])).sum(axis=1)
    return out


def union_of_balls_betti(points, radii, max_dim: int = 2, model: str = "auto", open_balls: bool = True):
    """Betti numbers of the union of balls of each radius around the distinct points.

    Parameters
    ----------
    points : array_like, shape (N, D)
    radii : array_like of float, shape (n_r,)
        Ball radii (> 0).
    max_dim : int
    model : {"auto", "alpha", "rips"}
        See the module notes.
    open_balls : bool
        Open balls (the theorem's; default) or closed balls (tangent balls touch).

    Returns
    -------
    betti : ndarray of int64, shape (n_r, max_dim + 1)
    lower_bound : ndarray of int64, shape (n_r, max_dim + 1)
        Equal to ``betti`` for ``"alpha"`` (exact); the Jung lower bound for
        ``"rips"``.
    model : str
        The model used.
    """
    P = _distinct(_check_cloud(points))
    max_dim = _check_max_dim(max_dim)
    r = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    if r.ndim != 1 or np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"radii={radii!r}: expected positive finite ball radii")
    dim = P.shape[1]
    model = _resolve_model(model, dim)
    read = _open_betti if open_balls else betti_from_diagram
    if model == "alpha":
        betti = read(alpha_diagram(P, max_dim, r.max()), r, max_dim)
        return betti, betti.copy(), model
    c = np.sqrt(2.0 * dim / (dim + 1.0))
    diagram = rips_diagram(P, max_dim, 2.0 * r.max())
    betti = read(diagram, 2.0 * r, max_dim)
    lower = np.zeros_like(betti)
    for s, rs in enumerate(r):
        for k in range(max_dim + 1):
            rows = diagram[diagram[:, 0] == k]
            lower[s, k] = np.count_nonzero((rows[:, 1] <= 2.0 * rs / c) & (rows[:, 2] > 2.0 * rs))
    return betti, lower, model


def empirical_lipschitz(before, after, lr: float, k: int = 8) -> float:
    """Largest ||U_i - U_j|| / ||x_i - x_j|| over k-nearest-neighbour pairs of ``before``.

    ``U = (after - before) / lr``. A lower bound on the Lipschitz constant K of
    the update (Lemma 4), measured from one step.
    """
    X, Y = _check_cloud(before, "before"), _check_cloud(after, "after")
    if X.shape != Y.shape:
        raise ValueError(f"after has shape {Y.shape}: expected the shape of before {X.shape}")
    if not lr > 0:
        raise ValueError(f"lr={lr!r}: expected a positive learning rate")
    n = len(X)
    if n < 2:
        return 0.0
    _, nb = cKDTree(X).query(X, k=min(k + 1, n))
    if X.shape[1] < _PAIRWISE_SUM_MIN:
        return _max_neighbour_ratio(X, Y, nb, float(lr))
    return _neighbour_ratio_reference(X, Y, nb, lr)


_PAIRWISE_SUM_MIN = 8
"""numpy sums rows of fewer than 8 coordinates left to right, as the loop does (bit for bit);
longer rows it sums pairwise, so those take the array code."""


@numba.njit(cache=True)
def _max_neighbour_ratio(X, Y, nb, lr):
    best, found = 0.0, False
    for a in range(nb.shape[0]):
        for c in range(1, nb.shape[1]):
            b = nb[a, c]
            dx2, du2 = 0.0, 0.0
            for d in range(X.shape[1]):
                t = X[a, d] - X[b, d]
                dx2 += t * t
                u = (Y[a, d] - X[a, d]) - (Y[b, d] - X[b, d])
                du2 += u * u
            dx = np.sqrt(dx2)
            if dx > 0:
                ratio = (np.sqrt(du2) / lr) / dx
                if not found or ratio > best:
                    best, found = ratio, True
    return best


def _neighbour_ratio_reference(X, Y, nb, lr) -> float:
    """The array code of :func:`empirical_lipschitz`'s ratio (and its reference in the tests)."""
    n = len(X)
    i = np.repeat(np.arange(n), nb.shape[1] - 1)
    j = nb[:, 1:].ravel()
    dx = np.linalg.norm(X[i] - X[j], axis=1)
    du = np.linalg.norm((Y[i] - X[i]) - (Y[j] - X[j]), axis=1) / lr
    ok = dx > 0
    return float((du[ok] / dx[ok]).max()) if np.any(ok) else 0.0


@dataclass
class ExpansionResult:
    """Per radius: topology of S(t)^r beside S(t+1)^((1 - eta K) r).

    Attributes
    ----------
    radii : ndarray, shape (n_r,)
        r, radius of the balls around S(t).
    radii_after : ndarray, shape (n_r,)
        (1 - eta K) r, radius around S(t+1) (nan where eta K >= 1).
    betti_before, betti_after : ndarray of int64, shape (n_r, max_dim + 1)
        Betti numbers of the two unions (-1 where not defined: eta K >= 1).
    lower_before, lower_after : ndarray of int64
        Certified lower bounds (equal to the Betti numbers for the alpha model).
    equal : ndarray of bool, shape (n_r,)
        Same Betti numbers on both sides.
    below_separation : ndarray of bool
        r < delta_t: the theorem's hypothesis.
    disjoint : ndarray of bool
        r <= delta_t / 2: the balls are disjoint, the corrected range (the case the proof covers).
    contradicts_theorem : ndarray of bool
        K certified, eta K < 1 and r <= delta_t / 2, but the Betti numbers differ (so the unions
        are not homeomorphic): a real contradiction of the corrected statement.
    misstatement : ndarray of bool
        eta K < 1 and delta_t / 2 < r < delta_t with different Betti numbers: the statement as
        printed fails there for any dynamics; not a finding about this one.
    certified : bool
        Whether K was declared an upper bound on the Lipschitz constant.
    delta : float
        delta_t, the minimum separation of S(t).
    eta_K : float
    model : str
    """

    radii: np.ndarray
    radii_after: np.ndarray
    betti_before: np.ndarray
    betti_after: np.ndarray
    lower_before: np.ndarray
    lower_after: np.ndarray
    equal: np.ndarray
    below_separation: np.ndarray
    disjoint: np.ndarray
    contradicts_theorem: np.ndarray
    misstatement: np.ndarray
    certified: bool
    delta: float
    eta_K: float
    model: str


def expansion_check(
    before, after, radii, lr: float, K: float, max_dim: int = 2, model: str = "auto", certified: bool = True
) -> ExpansionResult:
    """Compare the r-expansion of S(t) with the (1 - eta K) r-expansion of S(t+1).

    Parameters
    ----------
    before : array_like, shape (N, D)
        Positions x(t).
    after : array_like, shape (N, D)
        Positions x(t+1) (same particles, same order).
    radii : float or array_like of float
        Radii r (> 0) of the balls around S(t).
    lr : float
        eta, the learning rate of the step.
    K : float
        Lipschitz constant of the update used in the theorem.
    max_dim : int
    model : {"auto", "alpha", "rips"}
    certified : bool
        Whether K is an upper bound on the Lipschitz constant (only then can a disagreement
        contradict the theorem); False for a measured lower bound such as
        :func:`empirical_lipschitz`.

    Returns
    -------
    ExpansionResult
    """
    X, Y = _check_cloud(before, "before"), _check_cloud(after, "after")
    if X.shape != Y.shape:
        raise ValueError(f"after has shape {Y.shape}: expected the shape of before {X.shape}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r}: expected a positive learning rate")
    if not (np.isfinite(K) and K >= 0):
        raise ValueError(f"K={K!r}: expected a non-negative Lipschitz constant")
    max_dim = _check_max_dim(max_dim)
    r = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    if r.ndim != 1 or r.size == 0 or np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"radii={radii!r}: expected positive finite ball radii")
    eta_K = float(lr) * float(K)
    delta = min_separation(X)
    before_b, before_lb, used = union_of_balls_betti(X, r, max_dim, model)
    shape = (r.size, max_dim + 1)
    if eta_K < 1.0:
        r_after = (1.0 - eta_K) * r
        after_b, after_lb, _ = union_of_balls_betti(Y, r_after, max_dim, model)
        equal = np.all(before_b == after_b, axis=1)
    else:
        r_after = np.full(r.size, np.nan)
        after_b = np.full(shape, -1, dtype=np.int64)
        after_lb = after_b.copy()
        equal = np.zeros(r.size, dtype=bool)
    below = r < delta
    disjoint = r <= delta / 2.0 * (1.0 + TANGENCY_RTOL)
    differ = (eta_K < 1.0) & ~equal
    return ExpansionResult(
        radii=r,
        radii_after=r_after,
        betti_before=before_b,
        betti_after=after_b,
        lower_before=before_lb,
        lower_after=after_lb,
        equal=equal,
        below_separation=below,
        disjoint=disjoint,
        contradicts_theorem=differ & disjoint & bool(certified),
        misstatement=differ & below & ~disjoint,
        certified=bool(certified),
        delta=delta,
        eta_K=eta_K,
        model=used,
    )
