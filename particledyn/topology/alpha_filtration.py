"""Alpha values of every Delaunay simplex of a 2-D or 3-D cloud (numba), from qhull's triangulation.

The alpha value (squared radius) of a top cell is its squared circumradius. A lower simplex
``tau`` is *Gabriel* when no vertex opposite it in a coface lies strictly inside its smallest
circumsphere; then its value is its own smallest-circumsphere radius squared, otherwise the
minimum of its cofaces' values (processed top-down, as gudhi/CGAL do; the minimising coface is
always one ``tau`` is attached to, so the minimum over all cofaces is the same). Vertices are 0.

Qhull's triangulation is checked, not trusted: every cell must have a clearly non-zero volume,
every interior facet must be locally Delaunay, and every Gabriel test must be clear, each by a
floating-point filter with a margin of ``_TOL`` relative to the absolute sum of its terms (some
300 times the rounding bounds of Shewchuk's predicates). A tie (grid points, co-circular or co-spherical sets, a right
angle against a Gabriel sphere) is not decided in floating point: the kernels return a status
and the caller answers with an exact triangulation instead (gudhi's). Points that are exact
duplicates of a vertex are left out, as gudhi does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.spatial import Delaunay, QhullError

__all__ = ["AlphaFiltration", "alpha_filtration", "DegenerateCloud"]

_TOL = 1e-12
OK, FLAT, NOT_DELAUNAY, GABRIEL_TIE = 0, 1, 2, 3
_WHY = {
    FLAT: "a Delaunay cell of (numerically) zero volume",
    NOT_DELAUNAY: "co-circular / co-spherical points (a Delaunay test within rounding)",
    GABRIEL_TIE: "a point on the smallest circumsphere of a simplex (a Gabriel test within rounding)",
}
# local edges of a tetrahedron and their index by (p, q)
_TET_EDGES = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]], dtype=np.int64)
_TET_EDGE_OF = np.full((4, 4), -1, dtype=np.int64)
for _k, (_p, _q) in enumerate(_TET_EDGES):
    _TET_EDGE_OF[_p, _q] = _TET_EDGE_OF[_q, _p] = _k


class DegenerateCloud(ValueError):
    """The cloud is outside what the floating-point path decides (ties, flat, too few points)."""


@dataclass
class AlphaFiltration:
    """The alpha filtration of a 2-D or 3-D cloud on its Delaunay triangulation.

    Attributes
    ----------
    dim : int
        2 or 3.
    n_points : int
        Points given (vertex indices run below it).
    n_vertices : int
        Points that are vertices of the triangulation (exact duplicates are not).
    cell_value : ndarray, shape (M,)
        Squared circumradius of each top cell.
    cells : ndarray of int64, shape (M, dim + 1)
    facet_vertices : ndarray of int64, shape (F, dim)
        Codimension-1 simplices (edges in 2-D, triangles in 3-D), vertices ascending.
    facet_cells : ndarray of int64, shape (F, 2)
        Their two cofaces; -1 for the outer (unbounded) cell.
    facet_value : ndarray, shape (F,)
    edge_vertices, edge_value : ndarray
        Edges (in 2-D the facets themselves).
    facet_edges, facet_signs : ndarray of int64, shape (F, 3)
        3-D only: each triangle's edges (opposite its vertices 2, 1, 0) and the signs of its
        boundary ``[v1, v2] - [v0, v2] + [v0, v1]``.
    """

    dim: int
    n_points: int
    n_vertices: int
    cells: np.ndarray
    cell_value: np.ndarray
    facet_vertices: np.ndarray
    facet_cells: np.ndarray
    facet_value: np.ndarray
    edge_vertices: np.ndarray
    edge_value: np.ndarray
    facet_edges: np.ndarray | None = None
    facet_signs: np.ndarray | None = None


@numba.njit(cache=True, inline="always")
def _edge_side(X, a, b, w):
    """+1: w outside the diametral sphere of ab, -1: strictly inside, 0: within rounding."""
    dot = 0.0
    mag = 0.0
    for k in range(X.shape[1]):
        p = X[a, k] - X[w, k]
        q = X[b, k] - X[w, k]
        dot += p * q
        mag += abs(p * q)
    if abs(dot) <= _TOL * mag:
        return 0
    return 1 if dot > 0 else -1


@numba.njit(cache=True)
def _values_2d(X, S, Nb):
    M = S.shape[0]
    cellv = np.empty(M)
    orient = np.empty(M)
    for i in range(M):
        a, b, c = S[i, 0], S[i, 1], S[i, 2]
        ux, uy = X[b, 0] - X[a, 0], X[b, 1] - X[a, 1]
        vx, vy = X[c, 0] - X[a, 0], X[c, 1] - X[a, 1]
        cr = ux * vy - uy * vx
        if abs(cr) <= _TOL * (abs(ux * vy) + abs(uy * vx)):
            return FLAT, cellv, np.empty((0, 2), np.int64), np.empty((0, 2), np.int64), np.empty(0)
        wx, wy = vx - ux, vy - uy
        cellv[i] = (ux * ux + uy * uy) * (vx * vx + vy * vy) * (wx * wx + wy * wy) / (4.0 * cr * cr)
        orient[i] = 1.0 if cr > 0 else -1.0
    ev = np.empty(3 * M)
    evert = np.empty((3 * M, 2), np.int64)
    ecell = np.empty((3 * M, 2), np.int64)
    E = 0
    for i in range(M):
        for k in range(3):
            j = Nb[i, k]
            if j != -1 and j < i:
                continue
            a, b, w = S[i, (k + 1) % 3], S[i, (k + 2) % 3], S[i, k]
            inside = False
            g = _edge_side(X, a, b, w)
            if g == 0:
                return GABRIEL_TIE, cellv, evert[:0], ecell[:0], ev[:0]
            inside = g < 0
            best = cellv[i]
            if j != -1:
                w2 = -1
                for m in range(3):
                    if Nb[j, m] == i:
                        w2 = S[j, m]
                if w2 < 0:
                    return NOT_DELAUNAY, cellv, evert[:0], ecell[:0], ev[:0]
                # local Delaunay: w2 outside the circumcircle of cell i
                c = w
                adx, ady = X[a, 0] - X[w2, 0], X[a, 1] - X[w2, 1]
                bdx, bdy = X[b, 0] - X[w2, 0], X[b, 1] - X[w2, 1]
                cdx, cdy = X[c, 0] - X[w2, 0], X[c, 1] - X[w2, 1]
                al, bl, cl = adx * adx + ady * ady, bdx * bdx + bdy * bdy, cdx * cdx + cdy * cdy
                det = (
                    al * (bdx * cdy - cdx * bdy) + bl * (cdx * ady - adx * cdy) + cl * (adx * bdy - bdx * ady)
                )
                perm = (
                    al * (abs(bdx * cdy) + abs(cdx * bdy))
                    + bl * (abs(cdx * ady) + abs(adx * cdy))
                    + cl * (abs(adx * bdy) + abs(bdx * ady))
                )
                # (a, b, c) is cell i's order rotated, so its orientation is cell i's
                if abs(det) <= _TOL * perm or det * orient[i] > 0:
                    return NOT_DELAUNAY, cellv, evert[:0], ecell[:0], ev[:0]
                g2 = _edge_side(X, a, b, w2)
                if g2 == 0:
                    return GABRIEL_TIE, cellv, evert[:0], ecell[:0], ev[:0]
                inside = inside or g2 < 0
                best = min(best, cellv[j])
            if inside:
                ev[E] = best
            else:
                dx, dy = X[b, 0] - X[a, 0], X[b, 1] - X[a, 1]
                ev[E] = 0.25 * (dx * dx + dy * dy)
            evert[E, 0], evert[E, 1] = min(a, b), max(a, b)
            ecell[E, 0], ecell[E, 1] = i, j
            E += 1
    return OK, cellv, evert[:E].copy(), ecell[:E].copy(), ev[:E].copy()


@numba.njit(cache=True, inline="always")
def _cross(ux, uy, uz, vx, vy, vz):
    return uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx


@numba.njit(cache=True)
def _tet_values(X, S):
    M = S.shape[0]
    cellv = np.empty(M)
    orient = np.empty(M)
    for i in range(M):
        a, b, c, d = S[i, 0], S[i, 1], S[i, 2], S[i, 3]
        u0, u1, u2 = X[b, 0] - X[a, 0], X[b, 1] - X[a, 1], X[b, 2] - X[a, 2]
        v0, v1, v2 = X[c, 0] - X[a, 0], X[c, 1] - X[a, 1], X[c, 2] - X[a, 2]
        w0, w1, w2 = X[d, 0] - X[a, 0], X[d, 1] - X[a, 1], X[d, 2] - X[a, 2]
        p0, p1, p2 = _cross(v0, v1, v2, w0, w1, w2)
        q0, q1, q2 = _cross(w0, w1, w2, u0, u1, u2)
        r0, r1, r2 = _cross(u0, u1, u2, v0, v1, v2)
        det = u0 * p0 + u1 * p1 + u2 * p2
        perm = (
            abs(u0) * (abs(v1 * w2) + abs(v2 * w1))
            + abs(u1) * (abs(v2 * w0) + abs(v0 * w2))
            + abs(u2) * (abs(v0 * w1) + abs(v1 * w0))
        )
        if abs(det) <= _TOL * perm:
            return FLAT, cellv, orient
        uu = u0 * u0 + u1 * u1 + u2 * u2
        vv = v0 * v0 + v1 * v1 + v2 * v2
        ww = w0 * w0 + w1 * w1 + w2 * w2
        h = 0.5 / det
        o0 = (uu * p0 + vv * q0 + ww * r0) * h
        o1 = (uu * p1 + vv * q1 + ww * r1) * h
        o2 = (uu * p2 + vv * q2 + ww * r2) * h
        cellv[i] = o0 * o0 + o1 * o1 + o2 * o2
        orient[i] = 1.0 if det > 0 else -1.0
    return OK, cellv, orient


@numba.njit(cache=True, inline="always")
def _minor3(m, p0, p1, p2):
    val = (
        m[p0, 0] * (m[p1, 1] * m[p2, 2] - m[p1, 2] * m[p2, 1])
        - m[p0, 1] * (m[p1, 0] * m[p2, 2] - m[p1, 2] * m[p2, 0])
        + m[p0, 2] * (m[p1, 0] * m[p2, 1] - m[p1, 1] * m[p2, 0])
    )
    mag = (
        abs(m[p0, 0]) * (abs(m[p1, 1] * m[p2, 2]) + abs(m[p1, 2] * m[p2, 1]))
        + abs(m[p0, 1]) * (abs(m[p1, 0] * m[p2, 2]) + abs(m[p1, 2] * m[p2, 0]))
        + abs(m[p0, 2]) * (abs(m[p1, 0] * m[p2, 1]) + abs(m[p1, 1] * m[p2, 0]))
    )
    return val, mag


@numba.njit(cache=True)
def _insphere_side(X, S, i, e, orient, m):
    """+1: point e outside the circumsphere of cell i (orientation ``orient``), -1 inside, 0 tie."""
    for r in range(4):
        s = 0.0
        for k in range(3):
            t = X[S[i, r], k] - X[e, k]
            m[r, k] = t
            s += t * t
        m[r, 3] = s
    d0, g0 = _minor3(m, 1, 2, 3)
    d1, g1 = _minor3(m, 0, 2, 3)
    d2, g2 = _minor3(m, 0, 1, 3)
    d3, g3 = _minor3(m, 0, 1, 2)
    det = -m[0, 3] * d0 + m[1, 3] * d1 - m[2, 3] * d2 + m[3, 3] * d3
    perm = m[0, 3] * g0 + m[1, 3] * g1 + m[2, 3] * g2 + m[3, 3] * g3
    if abs(det) <= _TOL * perm:
        return 0
    return 1 if det * orient > 0 else -1


@numba.njit(cache=True)
def _triangle_side(X, a, b, c, w):
    """+1: w outside the smallest sphere through a, b, c; -1 strictly inside; 0 within rounding.

    With u = b - a, v = c - a, q = w - a and G = |u|^2 |v|^2 - (u.v)^2 > 0, w is inside when
    G |q|^2 < (q.u) |v|^2 (|u|^2 - u.v) + (q.v) |u|^2 (|v|^2 - u.v).
    """
    uu = vv = uv = qq = qu = qv = 0.0
    uva = qua = qva = 0.0
    for k in range(3):
        u = X[b, k] - X[a, k]
        v = X[c, k] - X[a, k]
        q = X[w, k] - X[a, k]
        uu += u * u
        vv += v * v
        uv += u * v
        qq += q * q
        qu += q * u
        qv += q * v
        uva += abs(u * v)
        qua += abs(q * u)
        qva += abs(q * v)
    G = uu * vv - uv * uv
    f = G * qq - qu * vv * (uu - uv) - qv * uu * (vv - uv)
    mag = (uu * vv + uva * uva) * qq + qua * vv * (uu + uva) + qva * uu * (vv + uva)
    if abs(f) <= _TOL * mag:
        return 0
    return 1 if f > 0 else -1


@numba.njit(cache=True)
def _failed(status, cellv):
    e3 = np.empty((0, 3), np.int64)
    e2 = np.empty((0, 2), np.int64)
    return status, cellv, e3, e2, np.empty(0), e2, np.empty(0), e3, e3


@numba.njit(cache=True)
def _values_3d(X, S, Nb, TE, TEOF, max_value):
    n = X.shape[0]
    M = S.shape[0]
    status, cellv, orient = _tet_values(X, S)
    if status != OK:
        return _failed(status, cellv)
    cellv[cellv > max_value] = np.inf  # above the cut only "above" matters
    # edges: one id per vertex pair, through each vertex's star (no sort)
    deg = np.zeros(n + 1, np.int64)
    for i in range(M):
        for k in range(4):
            deg[S[i, k] + 1] += 1
    for v in range(n):
        deg[v + 1] += deg[v]
    star = np.empty(4 * M, np.int64)
    fill = deg[:n].copy()
    for i in range(M):
        for k in range(4):
            v = S[i, k]
            star[fill[v]] = i
            fill[v] += 1
    cell_edge = np.empty((M, 6), np.int64)
    mark = np.full(n, -1, np.int64)
    slot = np.empty(n, np.int64)
    everts = np.empty((6 * M, 2), np.int64)
    E = 0
    for a in range(n):
        for s in range(deg[a], deg[a + 1]):
            i = star[s]
            la = 0
            for k in range(4):
                if S[i, k] == a:
                    la = k
            for k in range(4):
                b = S[i, k]
                if b <= a:
                    continue
                if mark[b] != a:
                    mark[b] = a
                    slot[b] = E
                    everts[E, 0], everts[E, 1] = a, b
                    E += 1
                cell_edge[i, TEOF[la, k]] = slot[b]
    everts = everts[:E].copy()
    # triangles: one per (cell, opposite vertex) with the neighbour's index above it
    tverts = np.empty((4 * M, 3), np.int64)
    tcell = np.empty((4 * M, 2), np.int64)
    tv = np.empty(4 * M)
    tedge = np.empty((4 * M, 3), np.int64)
    tsign = np.empty((4 * M, 3), np.int64)
    emin = np.full(E, np.inf)
    einside = np.zeros(E, np.bool_)
    T = 0
    loc = np.empty(3, np.int64)
    work = np.empty((4, 4))
    for i in range(M):
        for k in range(4):
            j = Nb[i, k]
            if j != -1 and j < i:
                continue
            # the triangle's local vertices in cell i, sorted by global index
            m = 0
            for p in range(4):
                if p != k:
                    loc[m] = p
                    m += 1
            for p in range(2):
                for q in range(2 - p):
                    if S[i, loc[q]] > S[i, loc[q + 1]]:
                        loc[q], loc[q + 1] = loc[q + 1], loc[q]
            a, b, c = S[i, loc[0]], S[i, loc[1]], S[i, loc[2]]
            w = S[i, k]
            best = cellv[i]
            w2 = -1
            if j != -1:
                for p in range(4):
                    if Nb[j, p] == i:
                        w2 = S[j, p]
                if w2 < 0 or _insphere_side(X, S, i, w2, orient[i], work) <= 0:
                    return _failed(NOT_DELAUNAY, cellv)
                best = min(best, cellv[j])
            u0, u1, u2 = X[b, 0] - X[a, 0], X[b, 1] - X[a, 1], X[b, 2] - X[a, 2]
            v0, v1, v2 = X[c, 0] - X[a, 0], X[c, 1] - X[a, 1], X[c, 2] - X[a, 2]
            cx, cy, cz = _cross(u0, u1, u2, v0, v1, v2)
            w0, w1, w2_ = v0 - u0, v1 - u1, v2 - u2
            uu = u0 * u0 + u1 * u1 + u2 * u2
            vv = v0 * v0 + v1 * v1 + v2 * v2
            ww = w0 * w0 + w1 * w1 + w2_ * w2_
            own = uu * vv * ww / (4.0 * (cx * cx + cy * cy + cz * cz))
            if own > max_value and best > max_value:
                tv[T] = np.inf  # above the cut whether it is Gabriel or not
            else:
                g = _triangle_side(X, a, b, c, w)
                g2 = _triangle_side(X, a, b, c, w2) if w2 >= 0 else 1
                if g == 0 or g2 == 0:
                    return _failed(GABRIEL_TIE, cellv)
                tv[T] = best if (g < 0 or g2 < 0) else own
            tverts[T, 0], tverts[T, 1], tverts[T, 2] = a, b, c
            tcell[T, 0], tcell[T, 1] = i, j
            # boundary [b, c] - [a, c] + [a, b]; slot r holds the edge opposite local vertex 2 - r
            tedge[T, 0] = cell_edge[i, TEOF[loc[0], loc[1]]]
            tedge[T, 1] = cell_edge[i, TEOF[loc[0], loc[2]]]
            tedge[T, 2] = cell_edge[i, TEOF[loc[1], loc[2]]]
            tsign[T, 0], tsign[T, 1], tsign[T, 2] = 1, -1, 1
            T += 1
    # edges: Gabriel against the third vertex of every triangle through them, top-down
    ev = np.empty(E)
    for e in range(E):
        a, b = everts[e, 0], everts[e, 1]
        s = 0.0
        for k in range(3):
            d = X[b, k] - X[a, k]
            s += d * d
        ev[e] = 0.25 * s
    for t in range(T):
        a, b, c = tverts[t, 0], tverts[t, 1], tverts[t, 2]
        for r in range(3):
            e = tedge[t, r]
            if tv[t] > max_value and ev[e] > max_value:
                continue  # above the cut either way
            opp = c if r == 0 else (b if r == 1 else a)
            g = _edge_side(X, everts[e, 0], everts[e, 1], opp)
            if g == 0:
                return _failed(GABRIEL_TIE, cellv)
            if g < 0:
                einside[e] = True
            emin[e] = min(emin[e], tv[t])
    for e in range(E):
        if einside[e]:
            ev[e] = emin[e]
        elif ev[e] > max_value:
            ev[e] = np.inf
    return (
        OK,
        cellv,
        tverts[:T].copy(),
        tcell[:T].copy(),
        tv[:T].copy(),
        everts,
        ev,
        tedge[:T].copy(),
        tsign[:T].copy(),
    )


def _triangulate(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    n, dim = X.shape
    if n < dim + 2:
        raise DegenerateCloud(f"{n} points in {dim}-D: expected at least {dim + 2}")
    try:
        tri = Delaunay(X)
    except QhullError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "QhullError"
        raise DegenerateCloud(f"qhull could not triangulate the cloud (flat?): {first}") from None
    dropped = np.asarray(tri.coplanar).reshape(-1, 3)
    if len(dropped) and not np.array_equal(X[dropped[:, 0]], X[dropped[:, 2]]):
        raise DegenerateCloud("qhull left out a point that is not a duplicate (co-spherical points)")
    used = n - len(np.unique(dropped[:, 0]))
    S = np.ascontiguousarray(tri.simplices, dtype=np.int64)
    Nb = np.ascontiguousarray(tri.neighbors, dtype=np.int64)
    return S, Nb, used


def alpha_filtration(points, max_value: float = np.inf) -> AlphaFiltration:
    """Delaunay triangulation (qhull) and alpha values (squared radii) of a 2-D or 3-D cloud.

    Parameters
    ----------
    points : ndarray of float64, shape (N, 2) or (N, 3)
        Finite coordinates (as checked by the caller).
    max_value : float
        Squared radius of interest: in 3-D every value above it is inf (those simplices'
        Gabriel tests are skipped; a truncated diagram needs no more).

    Returns
    -------
    AlphaFiltration

    Raises
    ------
    DegenerateCloud
        Fewer than D + 2 points, a flat cloud, or a tie the floating-point tests cannot decide
        (the message says which).
    """
    X = np.ascontiguousarray(points, dtype=np.float64)
    dim = X.shape[1]
    if dim not in (2, 3):
        raise DegenerateCloud(f"a {dim}-D cloud: expected 2-D or 3-D")
    S, Nb, used = _triangulate(X)
    if dim == 2:
        status, cellv, ev_, ec, ev = _values_2d(X, S, Nb)
        if status != OK:
            raise DegenerateCloud(_WHY[status])
        return AlphaFiltration(2, len(X), used, S, cellv, ev_, ec, ev, ev_, ev)
    status, cellv, tvt, tc, tv, evt, ev, te, ts = _values_3d(
        X, S, Nb, _TET_EDGES, _TET_EDGE_OF, float(max_value)
    )
    if status != OK:
        raise DegenerateCloud(_WHY[status])
    return AlphaFiltration(3, len(X), used, S, cellv, tvt, tc, tv, evt, ev, te, ts)
