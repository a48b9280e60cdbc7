"""Theorem 2 of the paper, measured: r-expansions of S(t) and S(t+1).

Theorem 2 states: if eta*K < 1, then for every r < delta_t (the smallest
distance between two distinct points of S(t)) the union of open balls of
radius r around S(t) is homeomorphic to the union of balls of radius
(1 - eta*K) r around S(t+1). Its proof assumes the balls are pairwise
disjoint, which holds only for r <= delta_t / 2; for delta_t / 2 < r < delta_t
balls overlap and the statement can fail (two points at distance delta pushed
apart to (1 + eta*K) delta: joined at r, split at (1 - eta*K) r). This module
computes both sides and says, per r, whether they agree and whether r was in
the range the theorem covers, so such cases are reported rather than hidden.

Models of the union of balls (Betti numbers, closed balls; the open balls of
the theorem differ only at exact tangencies):

* ``"alpha"`` (default for D <= 3): the alpha complex at alpha^2 = r^2 is
  homotopy equivalent to the union of balls of radius r -- exact.
* ``"rips"`` (default for D > 3): with Cech(r) the nerve of the radius-r balls
  and R(r) the Rips complex with edges <= 2r (balls meeting pairwise),
  Cech(r) ⊆ R(r) ⊆ Cech(c r), c = sqrt(2D/(D+1)) <= sqrt(2) (Jung's theorem).
  The reported Betti numbers are those of R(r), a proxy; ``lower_bound``
  holds rank H_k(R(r/c)) -> H_k(R(r)), which factors through H_k(Cech(r)) and
  is therefore a certified lower bound on the union's b_k.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .betti import alpha_diagram, rips_diagram, _check_max_dim
from .diagrams import betti_from_diagram
from .landmarks import _check_cloud

__all__ = ["ExpansionResult", "min_separation", "union_of_balls_betti", "expansion_check",
           "empirical_lipschitz", "MODELS"]

MODELS = ("auto", "alpha", "rips")


def _distinct(X: np.ndarray) -> np.ndarray:
    # S(t) is a set: merged particles are one point of it.
    return np.unique(X, axis=0)


def min_separation(points) -> float:
    """Smallest distance between two distinct positions (k-d tree), inf if < 2 of them.

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
    dist, _ = cKDTree(P).query(P, k=2)
    return float(dist[:, 1].min())


def _resolve_model(model: str, dim: int) -> str:
    if model not in MODELS:
        raise ValueError(f"model={model!r}: expected one of {MODELS}")
    if model == "auto":
        return "alpha" if dim <= 3 else "rips"
    return model


def union_of_balls_betti(points, radii, max_dim: int = 2, model: str = "auto"):
    """Betti numbers of the union of balls of each radius around the distinct points.

    Parameters
    ----------
    points : array_like, shape (N, D)
    radii : array_like of float, shape (n_r,)
        Ball radii (> 0).
    max_dim : int
    model : {"auto", "alpha", "rips"}
        See the module notes.

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
    if model == "alpha":
        betti = betti_from_diagram(alpha_diagram(P, max_dim, r.max()), r, max_dim)
        return betti, betti.copy(), model
    c = np.sqrt(2.0 * dim / (dim + 1.0))
    diagram = rips_diagram(P, max_dim, 2.0 * r.max())
    betti = betti_from_diagram(diagram, 2.0 * r, max_dim)
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
        r <= delta_t / 2: the balls are disjoint, the case the proof covers.
    contradicts_theorem : ndarray of bool
        eta K < 1 and r < delta_t but the Betti numbers differ (so the unions
        are not homeomorphic).
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
    delta: float
    eta_K: float
    model: str


def expansion_check(before, after, radii, lr: float, K: float, max_dim: int = 2,
                    model: str = "auto") -> ExpansionResult:
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
    return ExpansionResult(
        radii=r, radii_after=r_after, betti_before=before_b, betti_after=after_b,
        lower_before=before_lb, lower_after=after_lb, equal=equal, below_separation=below,
        disjoint=r <= delta / 2.0, contradicts_theorem=(eta_K < 1.0) & below & ~equal,
        delta=delta, eta_K=eta_K, model=used)
