"""Betti numbers b0..b2 of a neuron cloud at one or several scales.

Two complexes, named explicitly:

* ``"rips"`` (default, as in the paper): the Vietoris-Rips complex; the scale
  ``r`` is an **edge length** -- Rips(r) holds every simplex whose edges all
  have length ``<= r``. Computed with giotto-ph (ripser) truncated at the
  largest scale asked for, after a k-d tree has listed the edges ``<= r`` and
  with edge collapse on.
* ``"alpha"``: the alpha complex, which has the homotopy type of the union of
  closed balls; the scale ``r`` is a **ball radius** (filtration values are
  squared radii; they are converted back). In 2-D and 3-D: qhull's Delaunay
  triangulation and numba kernels (:func:`alpha_diagram`), gudhi where those
  cannot decide; above, gudhi's (exponential in D).

Balls of radius ``r`` meet pairwise exactly when Rips(2r) has the edge, so the
paper's adaptive scale "1/4 of the diameter" (a Rips edge length) is the ball
radius ``diameter / 8`` for ``"alpha"``.

``b_k(r)`` is the number of dimension-``k`` persistence pairs with
``birth <= r < death``. The full diagram up to the largest scale is returned
too; classes still alive there have ``death = inf``. Like every ripser,
giotto-ph stores filtration values in float32, so a distance within ~1e-7
(relative) of ``r`` may fall on either side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gudhi
import numba
import numpy as np
from gph import ripser_parallel
from scipy import sparse
from scipy.spatial import cKDTree

from .alpha_filtration import DegenerateCloud
from .alpha_persistence import numba_alpha_diagram
from .diagrams import betti_from_diagram, bottleneck_distances, pack_diagrams
from .landmarks import _check_cloud, covering_radius, maxmin_landmarks

__all__ = [
    "BettiResult",
    "betti_numbers",
    "betti_series",
    "rips_diagram",
    "alpha_diagram",
    "ALPHA_ENGINES",
    "cloud_diameter",
    "resolve_scales",
    "COMPLEXES",
    "ADAPTIVE_FRACTION",
    "DEFAULT_SCALE_RELATIVE",
    "check_fractions",
    "ALPHA_MAX_DIMENSION",
    "check_alpha_dimension",
]

COMPLEXES = ("rips", "alpha")
ADAPTIVE_FRACTION = 0.25
#: Default Betti scale of the observer: this fraction of the *start's* diameter, held fixed.
DEFAULT_SCALE_RELATIVE = ADAPTIVE_FRACTION
#: Largest cloud dimension an alpha complex is built in. Its Delaunay triangulation grows about
#: tenfold per dimension (1024 Gaussian points: 0.05 s in 3-D, 0.8 s in 4-D, 8.7 s in 5-D), so
#: above this a run would not finish; a neuron cloud of MNIST's net (794-D) never would.
ALPHA_MAX_DIMENSION = 6
_KDTREE_MAX_DIM = 8  # beyond this a k-d tree is no faster than giotto-ph's own distances


def default_threads() -> int:
    """Number of CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _check_max_dim(max_dim) -> int:
    if isinstance(max_dim, bool) or int(max_dim) != max_dim or not 0 <= max_dim <= 3:
        raise ValueError(f"max_dim={max_dim!r}: expected an integer in 0..3")
    return int(max_dim)


@numba.njit(cache=True, parallel=True)
def _max_sq_distance(X):
    n, dim = X.shape
    best = np.zeros(n)
    for i in numba.prange(n):
        b = 0.0
        for j in range(i + 1, n):
            d = 0.0
            for k in range(dim):
                t = X[i, k] - X[j, k]
                d += t * t
            if d > b:
                b = d
        best[i] = b
    return best.max()


def cloud_diameter(points, block: int = 2048) -> float:
    """Exact diameter (largest pairwise distance) of a cloud.

    Low D: a parallel O(N^2 D) loop. D > 8: squared distances from BLAS Gram
    blocks (|x|^2 + |y|^2 - 2 x.y) of the centred cloud, then every pair within
    the rounding margin of the largest is recomputed exactly, so the result is
    exact (if too many pairs tie within the margin, the exact loop is used).
    """
    X = _check_cloud(points)
    n, dim = X.shape
    if dim <= _KDTREE_MAX_DIM or n < 3:
        return float(np.sqrt(_max_sq_distance(X)))
    Xc = X - X.mean(axis=0)
    sq = (Xc**2).sum(axis=1)
    margin = 16 * np.finfo(float).eps * (dim + 3) * 4 * sq.max()  # > twice the Gram rounding error
    best, rows, cols = 0.0, [], []
    budget = 16 * n
    for a in range(0, n, block):
        G = sq[a : a + block, None] + sq[None, :] - 2.0 * (Xc[a : a + block] @ Xc.T)
        best = max(best, float(G.max()))
        i, j = np.nonzero(G >= best - margin)
        rows.append(i + a)
        cols.append(j)
        budget -= len(i)
        if budget < 0 or best <= margin:
            return float(np.sqrt(_max_sq_distance(X)))
    i, j = np.concatenate(rows), np.concatenate(cols)
    keep = i < j
    i, j = i[keep], j[keep]
    return float(np.sqrt(((X[i] - X[j]) ** 2).sum(axis=1).max()))


def resolve_scales(
    scale,
    diameter: float | None = None,
    complex: str = "rips",
    fraction: float | list[float] | np.ndarray = ADAPTIVE_FRACTION,
) -> np.ndarray:
    """Turn a scale rule into an array of scales.

    Parameters
    ----------
    scale : "adaptive", float or sequence of float
        ``"adaptive"``: ``fraction * diameter`` as a Rips edge length (the
        paper's rule), i.e. ``fraction * diameter / 2`` as an alpha radius.
    diameter : float, optional
        Needed for ``"adaptive"``.
    complex : {"rips", "alpha"}
    fraction : float or sequence of float
        One scale per fraction.

    Returns
    -------
    ndarray of float64, shape (n_scales,)
    """
    if complex not in COMPLEXES:
        raise ValueError(f"complex={complex!r}: expected one of {COMPLEXES}")
    if isinstance(scale, str):
        if scale != "adaptive":
            raise ValueError(f"scale={scale!r}: expected 'adaptive', a float or a list of floats")
        if diameter is None:
            raise ValueError("scale='adaptive' needs the cloud's diameter")
        fractions = check_fractions(fraction)
        edge = fractions * float(diameter)
        return edge if complex == "rips" else edge / 2.0
    try:
        r = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"scale={scale!r}: expected 'adaptive', a float or a list of floats") from None
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"scale={scale!r}: expected finite non-negative scales")
    return r


def check_fractions(fraction, name: str = "adaptive_fraction") -> np.ndarray:
    """Scale fraction(s) as a 1-D float64 array of finite positive values (or a one-line error)."""
    try:
        f = np.atleast_1d(np.asarray(fraction, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"{name}={fraction!r}: expected a positive fraction or a list of them") from None
    if f.ndim != 1 or f.size == 0 or not np.all(np.isfinite(f)) or np.any(f <= 0):
        raise ValueError(f"{name}={fraction!r}: expected finite positive fractions of the diameter")
    return f


def _check_coeff(coeff) -> int:
    c = coeff
    if (
        isinstance(c, bool)
        or not isinstance(c, (int, np.integer))
        or c < 2
        or any(c % p == 0 for p in range(2, int(c**0.5) + 1))
    ):
        raise ValueError(f"coeff={coeff!r}: expected a prime p (homology over the field Z/p)")
    return int(c)


def rips_diagram(
    points, max_dim: int = 2, thresh: float = np.inf, n_threads: int | None = None, coeff: int = 2
) -> np.ndarray:
    """Persistence diagram of the Rips filtration, truncated at ``thresh``.

    Parameters
    ----------
    points : array_like, shape (N, D)
    max_dim : int
        Highest homology dimension (H_k needs the (k+1)-simplices; ripser's
        cohomology takes care of that).
    thresh : float
        Largest edge length in the complex; classes alive there get death inf.
    n_threads : int, optional
        giotto-ph threads (default: all CPUs available).
    coeff : int
        Prime p of the coefficient field Z/p (the paper's code: gudhi's default 11).

    Returns
    -------
    ndarray, shape (n_pairs, 3)
        Rows ``[dim, birth, death]`` in edge-length units.
    """
    X = _check_cloud(points)
    max_dim = _check_max_dim(max_dim)
    coeff = _check_coeff(coeff)
    thresh = float(thresh)
    if not thresh >= 0:
        raise ValueError(f"thresh={thresh!r}: expected a non-negative edge length")
    threads = default_threads() if n_threads is None else int(n_threads)
    n, dim = X.shape
    if n == 1:
        return np.array([[0.0, 0.0, np.inf]])
    if np.isfinite(thresh) and dim <= _KDTREE_MAX_DIM:
        # Only edges <= thresh matter; listing them with a k-d tree beats the
        # O(N^2) distance matrix, and ripser's sparse mode then never looks
        # at longer edges.
        ij = cKDTree(X).query_pairs(thresh, output_type="ndarray")
        length = np.sqrt(((X[ij[:, 0]] - X[ij[:, 1]]) ** 2).sum(axis=1))
        keep = length <= thresh
        ij, length = ij[keep], length[keep]
        graph = sparse.coo_matrix((length, (ij[:, 0], ij[:, 1])), shape=(n, n))
        # Edge collapse pays off when the tetrahedra of H2 are needed (5-30x measured
        # here) and costs a little for H0/H1 alone.
        out = ripser_parallel(
            graph,
            maxdim=max_dim,
            metric="precomputed",
            collapse_edges=max_dim >= 2 and len(length) > 0,
            n_threads=threads,
            coeff=coeff,
        )
    else:
        out = ripser_parallel(
            X, maxdim=max_dim, thresh=thresh, collapse_edges=True, n_threads=threads, coeff=coeff
        )
    rows = [np.column_stack([np.full(len(d), k, float), d]) for k, d in enumerate(out["dgms"])]
    return np.concatenate(rows, axis=0).astype(np.float64)


def check_alpha_dimension(dimension: int) -> None:
    """Raise a one-line ValueError when an alpha complex cannot be built in ``dimension``.

    Parameters
    ----------
    dimension : int
        The dimension D of the cloud (of its particles, or of the landmarks).
    """
    if dimension > ALPHA_MAX_DIMENSION:
        raise ValueError(
            f"an alpha complex of a {dimension}-dimensional cloud: expected dimension <= "
            f"{ALPHA_MAX_DIMENSION} (its Delaunay triangulation grows about tenfold per "
            'dimension); use the Rips complex (complex = "rips", model = "rips")'
        )


ALPHA_ENGINES = ("auto", "numba", "gudhi")


def alpha_diagram(
    points,
    max_dim: int = 2,
    max_radius: float = np.inf,
    precision: str = "fast",
    coeff: int = 2,
    engine: str = "auto",
) -> np.ndarray:
    """Persistence diagram of the alpha complex (union of balls), in radius units.

    Parameters
    ----------
    points : array_like, shape (N, D)
        Best for D <= 3 (the Delaunay triangulation grows fast with D).
    max_dim : int
    max_radius : float
        Largest ball radius; classes alive there get death inf.
    precision : {"fast", "safe", "exact"}
        gudhi's setting. "fast" keeps CGAL's exact predicates (so the complex
        itself is right) and computes circumradii in double precision; it
        builds ~5x faster than gudhi's default "safe" here. The numba engine
        computes them in double precision too ("fast" only).
    coeff : int
        Prime p of the coefficient field Z/p. H0, the voids (H2 in 3-D) and
        every H1 of a planar cloud do not depend on the field (a subcomplex of
        R^2 or R^3 has torsion-free homology and these maps are 0/1 by
        duality); H1 in 3-D can (a Moebius band's boundary is twice its core in
        H1, zero over Z/2), so there the reduction is over Z/p.
    engine : {"auto", "numba", "gudhi"}
        ``"numba"``: qhull's Delaunay triangulation (scipy), alpha values and
        persistence by :mod:`~particledyn.topology.alpha_filtration` and
        :mod:`~particledyn.topology.alpha_persistence` (2-D and 3-D clouds,
        ``precision="fast"``); a cloud whose floating-point tests tie (grid
        points, co-circular or co-spherical sets), a flat cloud or one of
        fewer than D + 2 points is refused with the reason. ``"gudhi"``:
        gudhi's AlphaComplex (CGAL), the reference. ``"auto"`` (default):
        numba where it applies, gudhi otherwise, and for every cloud numba
        refuses.

    Returns
    -------
    ndarray, shape (n_pairs, 3)
        Rows ``[dim, birth, death]`` by dimension; births and deaths are radii
        (square roots of the alpha^2 filtration values); zero-persistence pairs
        are left out.
    """
    X = _check_cloud(points)
    max_dim = _check_max_dim(max_dim)
    max_radius = float(max_radius)
    coeff = _check_coeff(coeff)
    if not max_radius >= 0:
        raise ValueError(f"max_radius={max_radius!r}: expected a non-negative radius")
    if precision not in ("fast", "safe", "exact"):
        raise ValueError(f"precision={precision!r}: expected 'fast', 'safe' or 'exact'")
    if engine not in ALPHA_ENGINES:
        raise ValueError(f"engine={engine!r}: expected one of {ALPHA_ENGINES}")
    check_alpha_dimension(X.shape[1])
    if engine != "gudhi":
        if engine == "numba" and (precision != "fast" or X.shape[1] not in (2, 3)):
            raise ValueError(
                f"engine='numba' with precision={precision!r} on a {X.shape[1]}-D cloud: expected "
                "precision='fast' and a 2-D or 3-D cloud"
            )
        if precision == "fast" and X.shape[1] in (2, 3):
            try:
                return numba_alpha_diagram(X, max_dim, max_radius, coeff)
            except DegenerateCloud as why:
                if engine == "numba":
                    raise ValueError(f"engine='numba' cannot decide this cloud: {why}") from None
    return _gudhi_alpha_diagram(X, max_dim, max_radius, precision, coeff)


def _gudhi_alpha_diagram(X, max_dim, max_radius, precision, coeff) -> np.ndarray:
    alpha = gudhi.AlphaComplex(points=X, precision=precision)
    tree = alpha.create_simplex_tree(max_alpha_square=max_radius**2)
    tree.prune_above_dimension(max_dim + 1)  # H_k needs (k+1)-simplices, no more
    # H_k of the top dimension is only computed on request (e.g. H2 of 2-D points, 0).
    tree.compute_persistence(homology_coeff_field=coeff, persistence_dim_max=tree.dimension() <= max_dim)
    rows = []
    for k in range(max_dim + 1):
        iv = np.asarray(tree.persistence_intervals_in_dimension(k), dtype=np.float64).reshape(-1, 2)
        iv = iv[iv[:, 1] > iv[:, 0]]
        rows.append(np.column_stack([np.full(len(iv), k, float), np.sqrt(np.maximum(iv, 0.0))]))
    return np.concatenate(rows, axis=0)


@dataclass
class BettiResult:
    """Betti numbers of a cloud at given scales, with the diagram behind them.

    Attributes
    ----------
    betti : ndarray of int64, shape (n_scales, max_dim + 1)
    scales : ndarray, shape (n_scales,)
        Rips edge lengths or alpha radii, per ``complex``.
    diagram : ndarray, shape (n_pairs, 3)
        ``[dim, birth, death]`` up to ``threshold``.
    threshold : float
        ``max(scales)``: the diagram is exact below it.
    complex : str
    indices : ndarray of int64 or None
        Landmark particle indices when a landmark subset was used.
    covering_radius : float
        Every particle is within this distance of a landmark (0 without
        landmarks). Features smaller than about twice it are invisible.
    diameter : float
        Diameter of the cloud the complex was built on (the landmarks, if any;
        the full cloud's is at most ``diameter + 2 * covering_radius``); nan
        unless the scale was ``"adaptive"`` (it costs O(N^2)).
    """

    betti: np.ndarray
    scales: np.ndarray
    diagram: np.ndarray
    threshold: float
    complex: str
    indices: np.ndarray | None
    covering_radius: float
    diameter: float


def betti_numbers(
    points,
    scale="adaptive",
    max_dim: int = 2,
    complex: str = "rips",
    landmarks: int | None = None,
    landmark_indices=None,
    n_threads: int | None = None,
    adaptive_fraction: float | list[float] | np.ndarray = ADAPTIVE_FRACTION,
    coeff: int = 2,
) -> BettiResult:
    """Betti numbers b_0..b_max_dim of a cloud at a scale rule.

    Parameters
    ----------
    points : array_like, shape (N, D)
    scale : "adaptive", float or sequence of float
        ``"adaptive"`` is the paper's rule (Appendix C.2): Rips edge length
        ``adaptive_fraction * diameter`` (alpha radius half of it).
    max_dim : int
        0..3.
    complex : {"rips", "alpha"}
        ``"rips"``: scale is an edge length; ``"alpha"``: union of balls of
        radius scale (exact homotopy type).
    landmarks : int, optional
        Build the complex on this many max-min landmarks instead of all points.
    landmark_indices : array_like of int, optional
        Use these particle indices as landmarks (e.g. kept from an earlier
        frame); overrides ``landmarks``.
    n_threads : int, optional
    adaptive_fraction : float or sequence of float
        With ``"adaptive"``: one scale per fraction (default 1/4, the paper's).
    coeff : int
        Prime p of the coefficient field Z/p (default 2). The paper's code (GitHub
        YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning,
        ``high-dim/topology.py``) takes gudhi's Rips complex at edge length diameter/4,
        filled to dimension 3, over Z/11: ``scale="adaptive", complex="rips", max_dim=2,
        coeff=11`` on the full cloud gives the same numbers (tested against gudhi).

    Returns
    -------
    BettiResult
    """
    X = _check_cloud(points)
    max_dim = _check_max_dim(max_dim)
    if complex not in COMPLEXES:
        raise ValueError(f"complex={complex!r}: expected one of {COMPLEXES}")
    indices, cover = None, 0.0
    if landmark_indices is not None:
        indices = np.asarray(landmark_indices)
        cover = covering_radius(X, indices)
        indices = indices.astype(np.int64)
    elif landmarks is not None:
        indices, cover = maxmin_landmarks(X, landmarks)
    Y = X if indices is None else X[indices]
    adaptive = isinstance(scale, str)
    diameter = cloud_diameter(Y) if adaptive else float("nan")  # O(N^2): only when needed
    scales = resolve_scales(scale, diameter if adaptive else None, complex, adaptive_fraction)
    threshold = float(scales.max())
    if complex == "rips":
        diagram = rips_diagram(Y, max_dim, threshold, n_threads, coeff=coeff)
    else:
        diagram = alpha_diagram(Y, max_dim, threshold, coeff=coeff)
    return BettiResult(
        betti=betti_from_diagram(diagram, scales, max_dim),
        scales=scales,
        diagram=diagram,
        threshold=threshold,
        complex=complex,
        indices=indices,
        covering_radius=float(cover),
        diameter=diameter,
    )


def betti_series(
    frames,
    scale="adaptive",
    max_dim: int = 2,
    complex: str = "rips",
    landmarks: int | None = None,
    fixed_landmarks: bool = False,
    n_threads: int | None = None,
) -> dict:
    """Betti numbers, diagrams and bottleneck distances over a run's frames (offline).

    Parameters
    ----------
    frames : sequence of array_like, each (N, D)
    scale, max_dim, complex, landmarks, n_threads
        As in :func:`betti_numbers`.
    fixed_landmarks : bool
        Choose the landmarks on the first frame and keep those particle indices.

    Returns
    -------
    dict
        ``betti`` (n_frames, n_scales, max_dim + 1); ``scale`` (n_frames, n_scales);
        ``pairs`` (n_pairs, 3) and ``index`` (n_frames, 2): all diagrams, flat,
        frame ``f`` in rows ``index[f, 0]:index[f, 1]``; ``bottleneck``
        (n_frames, max_dim + 1), frame f against f - 1 with both truncated at the
        smaller threshold (nan for frame 0); ``covering_radius`` (n_frames,).
    """
    results, kept = [], None
    for X in frames:
        res = betti_numbers(
            X, scale, max_dim, complex, landmarks=landmarks, landmark_indices=kept, n_threads=n_threads
        )
        if fixed_landmarks and kept is None:
            kept = res.indices
        results.append(res)
    if not results:
        raise ValueError("frames is empty: expected at least one (N, D) array")
    bottleneck = np.full((len(results), max_dim + 1), np.nan)
    for f in range(1, len(results)):
        a, b = results[f - 1], results[f]
        bottleneck[f] = bottleneck_distances(a.diagram, b.diagram, max_dim, min(a.threshold, b.threshold))
    pairs, index = pack_diagrams([r.diagram for r in results])
    return {
        "betti": np.stack([r.betti for r in results]),
        "scale": np.stack([r.scales for r in results]),
        "pairs": pairs,
        "index": index,
        "bottleneck": bottleneck,
        "covering_radius": np.array([r.covering_radius for r in results]),
    }
