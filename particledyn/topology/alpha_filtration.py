"""The alpha filtration of a 3-D cloud from scipy's Delaunay (qhull), its values in numpy.

gudhi's ``AlphaComplex`` builds its filtration through CGAL's dimension-generic kernel; in 3-D
at N = 1024 that is ~5x the Delaunay triangulation itself. This module takes the triangulation
from qhull, computes every simplex's alpha value (squared radius) vectorised, as gudhi defines
it, and hands the truncated filtration to a gudhi simplex tree for the same persistence:

* a tetrahedron's value is its squared circumradius;
* a lower simplex's value is its own smallest circumsphere's squared radius when it is Gabriel
  (no opposite vertex of a coface strictly inside that sphere), else the smallest value of its
  cofaces (processed from the top dimension down).

qhull decides in floating point where CGAL's predicates are exact, so the two may triangulate a
(near-)degenerate set differently (cospherical points); the alpha values of the simplices that
differ tie there, so the diagrams agree up to rounding. Inputs qhull would not triangulate with
every point as a vertex (coplanar or repeated points, fewer than 5 points) return None: the
caller then uses gudhi. In 2-D qhull is slower than gudhi's own triangulation (measured in
``benchmarks/README.md``), so only 3-D takes this path.
"""

from __future__ import annotations

import gudhi
import numba
import numpy as np
from scipy.spatial import Delaunay
from scipy.spatial import QhullError

__all__ = ["delaunay_alpha_tree", "circumspheres"]

_FACETS = {  # the facets of a k-simplex (columns kept) and the vertex each leaves out
    4: (((1, 2, 3), 0), ((0, 2, 3), 1), ((0, 1, 3), 2), ((0, 1, 2), 3)),
    3: (((1, 2), 0), ((0, 2), 1), ((0, 1), 2)),
}


@numba.njit(cache=True)
def _spheres(points, simplices):
    """Centres and squared radii of the smallest circumspheres of edges, triangles or
    tetrahedra: ``c = p0 + sum_k lam_k e_k`` with ``2 (E E^T) lam = diag(E E^T)``, solved by
    Cramer's rule (E: the edge vectors from p0)."""
    m, k1 = simplices.shape
    dim = points.shape[1]
    centres = np.empty((m, dim))
    radii = np.empty(m)
    for s in range(m):
        p0 = simplices[s, 0]
        if k1 == 2:
            lam1, lam2, lam3 = 0.5, 0.0, 0.0
        else:
            g = np.zeros((3, 3))
            for a in range(k1 - 1):
                for b in range(a, k1 - 1):
                    t = 0.0
                    for d in range(dim):
                        t += (points[simplices[s, a + 1], d] - points[p0, d]) * (
                            points[simplices[s, b + 1], d] - points[p0, d]
                        )
                    g[a, b] = t
                    g[b, a] = t
            if k1 == 3:
                det = g[0, 0] * g[1, 1] - g[0, 1] * g[0, 1]
                lam1 = 0.5 * (g[0, 0] * g[1, 1] - g[0, 1] * g[1, 1]) / det
                lam2 = 0.5 * (g[0, 0] * g[1, 1] - g[0, 1] * g[0, 0]) / det
                lam3 = 0.0
            else:
                r0, r1, r2 = 0.5 * g[0, 0], 0.5 * g[1, 1], 0.5 * g[2, 2]
                det = (
                    g[0, 0] * (g[1, 1] * g[2, 2] - g[1, 2] * g[2, 1])
                    - g[0, 1] * (g[1, 0] * g[2, 2] - g[1, 2] * g[2, 0])
                    + g[0, 2] * (g[1, 0] * g[2, 1] - g[1, 1] * g[2, 0])
                )
                lam1 = (
                    r0 * (g[1, 1] * g[2, 2] - g[1, 2] * g[2, 1])
                    - g[0, 1] * (r1 * g[2, 2] - g[1, 2] * r2)
                    + g[0, 2] * (r1 * g[2, 1] - g[1, 1] * r2)
                ) / det
                lam2 = (
                    g[0, 0] * (r1 * g[2, 2] - g[1, 2] * r2)
                    - r0 * (g[1, 0] * g[2, 2] - g[1, 2] * g[2, 0])
                    + g[0, 2] * (g[1, 0] * r2 - r1 * g[2, 0])
                ) / det
                lam3 = (
                    g[0, 0] * (g[1, 1] * r2 - r1 * g[2, 1])
                    - g[0, 1] * (g[1, 0] * r2 - r1 * g[2, 0])
                    + r0 * (g[1, 0] * g[2, 1] - g[1, 1] * g[2, 0])
                ) / det
        lam = (lam1, lam2, lam3)
        r = 0.0
        for d in range(dim):
            o = 0.0
            for a in range(k1 - 1):
                o += lam[a] * (points[simplices[s, a + 1], d] - points[p0, d])
            centres[s, d] = points[p0, d] + o
            r += o * o
        radii[s] = r
    return centres, radii


def circumspheres(points: np.ndarray, simplices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and squared radii of the smallest circumspheres of simplices.

    The centre lies in the simplex's affine hull: ``c = p0 + E^T lam`` with ``E`` the edge
    vectors from ``p0`` and ``2 (E E^T) lam = diag(E E^T)``.

    Parameters
    ----------
    points : ndarray of float64, shape (N, D)
    simplices : ndarray of int, shape (m, k + 1), 1 <= k <= 3

    Returns
    -------
    centres : ndarray, shape (m, D)
    squared_radii : ndarray, shape (m,)
    """
    simplices = np.ascontiguousarray(simplices, dtype=np.int64)
    if simplices.ndim != 2 or not 2 <= simplices.shape[1] <= 4:
        raise ValueError(f"simplices of shape {simplices.shape}: expected (m, 2..4) vertex indices")
    return _spheres(np.ascontiguousarray(points, dtype=np.float64), simplices)


def _faces(top: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct facets of the simplices ``top`` (rows sorted), each facet occurrence's index
    into them, and the vertex of ``top`` it leaves out."""
    m, k = top.shape
    opposite = np.concatenate([top[:, left] for _, left in _FACETS[k]])
    key = np.zeros(m * k, dtype=np.int64)
    for c in range(k - 1):
        key = key * n + np.concatenate([top[:, cols[c]] for cols, _ in _FACETS[k]])
    unique, inverse = np.unique(key, return_inverse=True)
    facets = np.empty((len(unique), k - 1), dtype=np.int64)
    for c in range(k - 2, -1, -1):
        unique, facets[:, c] = np.divmod(unique, n)
    return facets, inverse.ravel(), opposite


@numba.njit(cache=True)
def _attach(points, centres, own, inverse, opposite, coface_values):
    attached = np.zeros(len(own), dtype=np.bool_)
    smallest = np.full(len(own), np.inf)
    for q in range(len(inverse)):
        f = inverse[q]
        d2 = 0.0
        for d in range(points.shape[1]):
            t = points[opposite[q], d] - centres[f, d]
            d2 += t * t
        if d2 < own[f]:
            attached[f] = True
        if coface_values[q] < smallest[f]:
            smallest[f] = coface_values[q]
    return np.where(attached, smallest, own)


def _propagate(points, faces, inverse, opposite, coface_values) -> np.ndarray:
    """gudhi's alpha values of ``faces`` from their cofaces' values (see the module notes)."""
    centre, own = _spheres(points, faces)
    return _attach(points, centre, own, inverse, opposite, coface_values)


def delaunay_alpha_tree(points: np.ndarray, max_alpha_square: float, max_dim: int):
    """The alpha complex of a 3-D cloud up to ``max_alpha_square``, as a gudhi simplex tree.

    Parameters
    ----------
    points : ndarray of float64, shape (N, 3)
    max_alpha_square : float
        Simplices with a larger alpha value (squared radius) are left out, as gudhi's
        ``create_simplex_tree(max_alpha_square=...)`` does.
    max_dim : int
        Highest homology dimension wanted: simplices above dimension ``max_dim + 1`` are not
        inserted.

    Returns
    -------
    gudhi.SimplexTree or None
        None where qhull does not triangulate the cloud with every point as a vertex
        (degenerate or repeated points, N < 5): use gudhi's ``AlphaComplex`` then.
    """
    n, dim = points.shape
    if dim != 3 or n < 5:
        return None
    try:
        tri = Delaunay(points)
    except QhullError:
        return None
    if len(tri.coplanar) or len(np.unique(tri.simplices)) != n:
        return None
    tets = np.sort(tri.simplices.astype(np.int64), axis=1)
    try:
        _, tet_sq = _spheres(points, tets)
        triangles, inverse, opposite = _faces(tets, n)
        tri_sq = _propagate(points, triangles, inverse, opposite, tet_sq[np.tile(np.arange(len(tets)), 4)])
        edges, inverse, opposite = _faces(triangles, n)
        edge_sq = _propagate(points, edges, inverse, opposite, tri_sq[np.tile(np.arange(len(triangles)), 3)])
    except ZeroDivisionError:  # a flat simplex qhull's triangulation kept
        return None
    if not (np.all(np.isfinite(tet_sq)) and np.all(np.isfinite(tri_sq))):
        return None
    tree = gudhi.SimplexTree()
    for i in range(n):  # insert_batch gives a batch of vertices the value inf (gudhi 3.13)
        tree.insert([i], 0.0)
    levels = [(edges, edge_sq), (triangles, tri_sq), (tets, tet_sq)][: max_dim + 1]
    for simplices, values in levels:
        keep = values <= max_alpha_square
        if np.any(keep):
            tree.insert_batch(np.ascontiguousarray(simplices[keep].T, dtype=np.int32), values[keep])
    # faces go in first: insert_batch gives new faces a coface's value and leaves present ones
    tree.make_filtration_non_decreasing()  # rounding may put a face 1 ulp above a coface
    return tree
