"""Theorem 3's continuum content, tested: the change of variables p_{t+1}(f(x)) = p_t(x) / |det Df(x)|.

For a finite cloud the pushforward of the empirical measure under the step map f is, by
definition, the next empirical measure: nothing to test. What the theorem says beyond that is
a statement about densities of the underlying measure. :func:`density_check` tests it with
independent samples, so that it can fail:

- sample S ~ p_t estimates p_t (a k-nearest-neighbour density);
- sample B ~ p_t, independent of S, is mapped by f: T = f(B) ~ p_{t+1} if f transports the
  measure; its density is estimated at f(b) for each evaluation point b of B, leaving f(b)
  itself out;
- the residual r(b) = log p_{t+1}(f(b)) + log |det Df(b)| - log p_t(b) is 0 under the theorem,
  up to the estimators' noise (variance about 2/k) and bias (which shrinks as N grows).

The verdict compares, in ``n_bins`` slabs of the evaluation points along the first coordinate,
the median residual with ``tol``: a Jacobian that is not f's, or a resampling of f(B) that does
not preserve the measure, shifts the medians by the log of the density error and is reported
as a violation. ``mean_abs_log_det`` says how much the check can discriminate: a step whose
|det Df| is close to 1 everywhere cannot tell a wrong Jacobian of 1 from the right one.

:func:`step_map` is the GD step of a kernel, x -> x + lr * V(x; mu), with the field of the
cloud's measure mu evaluated at zero-mass probes (so probing does not move mu), and its
Jacobian determinant by central differences at the probes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["DensityCheck", "knn_log_density", "density_check", "step_map"]


def knn_log_density(sample: np.ndarray, points: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """log of the k-nearest-neighbour density estimate k / (n V_D r_k^D) of ``sample`` at ``points``.

    Parameters
    ----------
    sample : ndarray, shape (n, D)
    points : ndarray, shape (M, D)
    k : int
    exclude_self : bool
        ``points`` are members of ``sample``: their own zero distance is skipped (n - 1 used).
    """
    n, dim = sample.shape
    if int(k) != k or not 1 <= k < n:
        raise ValueError(f"k={k!r}: expected an integer in [1, {n - 1}] for a sample of {n}")
    query = k + 1 if exclude_self else k
    distance, _ = cKDTree(sample).query(points, k=query)
    radius = distance[:, -1] if query > 1 else distance
    if np.any(radius <= 0):
        raise ValueError("sample has more than k coincident points: a density estimate needs spread points")
    log_ball = dim / 2 * math.log(math.pi) - math.lgamma(dim / 2 + 1)
    size = n - 1 if exclude_self else n
    return math.log(k) - math.log(size) - log_ball - dim * np.log(radius)


@dataclass(frozen=True)
class DensityCheck:
    """Result of :func:`density_check`.

    Attributes
    ----------
    n, k, n_eval : int
        Sample size, neighbours of the density estimate, evaluation points.
    median_residual : float
        Median of r = log p_{t+1}(f(x)) + log|det Df(x)| - log p_t(x) over all evaluation points.
    bin_medians : list of float
        Median residual in each slab along the first coordinate.
    worst_bin : float
        Largest |bin median|: the statistic of the verdict.
    mean_abs_log_det : float
        Mean |log |det Df||: how far from volume-preserving the map is.
    tol : float
    violated : bool
        ``worst_bin > tol``.
    """

    n: int
    k: int
    n_eval: int
    median_residual: float
    bin_medians: list
    worst_bin: float
    mean_abs_log_det: float
    tol: float
    violated: bool


def density_check(
    source: np.ndarray,
    probe: np.ndarray,
    f: Callable,
    log_det: Callable,
    *,
    image: np.ndarray | None = None,
    k: int | None = None,
    n_eval: int = 2000,
    n_bins: int = 8,
    tol: float = 0.15,
) -> DensityCheck:
    """Test p_{t+1}(f(x)) = p_t(x) / |det Df(x)| with two independent samples of p_t.

    Parameters
    ----------
    source, probe : ndarray, shape (N, D)
        Independent samples of p_t: ``source`` estimates p_t, ``probe`` is mapped by f.
    f : callable
        ``f(X) -> Y`` row by row: the step map.
    log_det : callable
        ``log_det(X) -> log |det Df(X)|`` row by row (the Jacobian under test).
    image : ndarray, optional
        The sample claimed to be f(probe) (default: ``f(probe)``); pass a resampled or otherwise
        altered cloud to test what a simulation produced instead of the map itself.
    k : int, optional
        Neighbours of the density estimates (default max(10, round(sqrt(N) / 2))).
    n_eval : int
        Evaluation points (the first of ``probe``).
    n_bins : int
        Slabs along the first coordinate (quantiles of the evaluation points).
    tol : float
        Largest |median residual| in a slab counted as agreement (0.15: a 16 % density error).

    Returns
    -------
    DensityCheck
    """
    source = np.asarray(source, dtype=np.float64)
    probe = np.asarray(probe, dtype=np.float64)
    if source.ndim != 2 or probe.ndim != 2 or source.shape[1] != probe.shape[1] or len(source) < 20:
        raise ValueError(
            f"samples of shapes {source.shape} and {probe.shape}: expected two (N, D) "
            "samples of the same D with N >= 20"
        )
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins={n_bins!r}: expected a positive integer")
    n = min(len(source), len(probe))
    k = int(k if k is not None else max(10, round(math.sqrt(n) / 2)))
    mapped = np.asarray(f(probe) if image is None else image, dtype=np.float64)
    if mapped.shape != probe.shape:
        raise ValueError(f"image of shape {mapped.shape}: expected the probe's shape {probe.shape}")
    m = min(int(n_eval), len(probe))
    points = probe[:m]
    targets = mapped[:m] if image is None else np.asarray(f(points), dtype=np.float64)
    after = knn_log_density(mapped, targets, k, exclude_self=image is None)
    before = knn_log_density(source, points, k)
    dets = np.asarray(log_det(points), dtype=np.float64)
    residual = after + dets - before
    edges = np.quantile(points[:, 0], np.linspace(0, 1, int(n_bins) + 1))
    slab = np.clip(np.searchsorted(edges, points[:, 0], side="right") - 1, 0, int(n_bins) - 1)
    medians = [float(np.median(residual[slab == b])) for b in range(int(n_bins)) if np.any(slab == b)]
    worst = float(max(abs(v) for v in medians))
    return DensityCheck(
        n,
        k,
        m,
        float(np.median(residual)),
        medians,
        worst,
        float(np.mean(np.abs(dets))),
        float(tol),
        worst > tol,
    )


def step_map(kernel, cloud: np.ndarray, masses: np.ndarray, lr: float, h: float = 1e-5):
    """The GD step x -> x + lr V(x; mu) of ``kernel`` in the measure mu of ``cloud`` (with ``masses``),
    and log |det| of its Jacobian by central differences of step ``h``.

    The field at a point x is that of a zero-mass particle at x added to the cloud, so evaluating
    it leaves mu as it is (the field is per unit mass).

    Returns
    -------
    f, log_det : callables of an (M, D) array
    """
    cloud = np.asarray(cloud, dtype=np.float64)
    masses = np.asarray(masses, dtype=np.float64)
    context = kernel.evaluation_context()

    def velocity(points):
        both = np.concatenate([cloud, points])
        weights = np.concatenate([masses, np.zeros(len(points))])
        return kernel.field(both, weights, context)[len(cloud) :]

    def f(points):
        points = np.asarray(points, dtype=np.float64)
        return points + lr * velocity(points)

    def log_det(points):
        points = np.asarray(points, dtype=np.float64)
        m, dim = points.shape
        shifts = [points + s * h * np.eye(dim)[d] for d in range(dim) for s in (1, -1)]
        moved = f(np.concatenate(shifts)).reshape(dim, 2, m, dim)
        jacobian = ((moved[:, 0] - moved[:, 1]) / (2 * h)).transpose(1, 2, 0)  # (m, out, in)
        return np.linalg.slogdet(jacobian)[1]

    return f, log_det
