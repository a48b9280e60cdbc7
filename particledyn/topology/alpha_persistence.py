"""Persistence diagram of a 2-D or 3-D alpha filtration without a simplex tree (numba).

The total order is gudhi's: filtration value, then dimension, then a fixed key (the simplex's
index in :class:`~particledyn.topology.alpha_filtration.AlphaFiltration`), so the result is
deterministic; the diagram itself (pairs of positive persistence) does not depend on how ties
are broken.

* H0: union-find over the edges, ascending.
* Top dimension (H1 in 2-D, H2 in 3-D): by Alexander duality, union-find over the top cells and
  the outer (unbounded) cell through the facets, descending. A facet that joins two dual
  components creates a class that the younger component's oldest cell kills; the outer cell
  never dies.
* H1 in 3-D: column reduction over Z/p, in ascending order, of the triangles that do not create
  an H2 class (the others would reduce to zero: clearing), restricted to the rows of the edges
  that create a cycle (an H0-merging edge is never a pivot, and a cycle is determined by its
  cycle-creating edges, so the pivots are unchanged).
"""

from __future__ import annotations

import numba
import numpy as np

from ..union_find import find
from .alpha_filtration import AlphaFiltration, alpha_filtration

__all__ = ["alpha_pairs", "numba_alpha_diagram"]


@numba.njit(cache=True)
def _order_ties_by_index(values, order):
    # numpy's quicksort is 5x faster than its stable sort here; equal values then get index order
    n = len(order)
    s = 0
    while s < n:
        t = s + 1
        while t < n and values[order[t]] == values[order[s]]:
            t += 1
        if t - s > 1:
            order[s:t] = np.sort(order[s:t])
        s = t
    return order


def _order(values: np.ndarray, max_value: float = np.inf) -> np.ndarray:
    """Indices sorting ``values`` ascending, equal values by index (what a stable sort gives).

    Values above ``max_value`` come last in index order, unsorted (a truncated diagram does not
    depend on their order).
    """
    if max_value < np.inf:
        low = values <= max_value
        if not low.all():
            below = np.flatnonzero(low)
            head = _order_ties_by_index(values, below[np.argsort(values[below])])
            return np.concatenate([head, np.flatnonzero(~low)])
    return _order_ties_by_index(values, np.argsort(values))


@numba.njit(cache=True)
def _h0(n, everts, ev, order):
    """Union-find over the edges in ``order``; returns the merging edges' values and a flag per edge."""
    parent = np.arange(n)
    merged = np.zeros(len(ev), np.bool_)
    deaths = np.empty(len(ev))
    k = 0
    for e in order:
        ra = find(parent, everts[e, 0])
        rb = find(parent, everts[e, 1])
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
            merged[e] = True
            deaths[k] = ev[e]
            k += 1
    return deaths[:k].copy(), merged


@numba.njit(cache=True)
def _dual(n_cells, cellv, corder, facet_cells, fv, forder):
    """Dual union-find, facets descending; returns (birth, death) pairs and a flag per facet."""
    crank = np.empty(n_cells + 1, np.int64)
    for r in range(n_cells):
        crank[corder[r]] = r
    crank[n_cells] = n_cells  # the outer cell is the oldest of all
    parent = np.arange(n_cells + 1)
    top = np.arange(n_cells + 1)  # each root's oldest cell (largest rank)
    creates = np.zeros(len(fv), np.bool_)
    pairs = np.empty((len(fv), 2))
    k = 0
    for s in range(len(forder) - 1, -1, -1):
        f = forder[s]
        c0 = facet_cells[f, 0]
        c1 = facet_cells[f, 1]
        if c1 < 0:
            c1 = n_cells
        r0 = find(parent, c0)
        r1 = find(parent, c1)
        if r0 == r1:
            continue
        t0, t1 = top[r0], top[r1]
        if crank[t0] < crank[t1]:
            young = t0
            parent[r0] = r1
        else:
            young = t1
            parent[r1] = r0
        creates[f] = True
        pairs[k, 0] = fv[f]
        pairs[k, 1] = cellv[young]
        k += 1
    return pairs[:k].copy(), creates


@numba.njit(cache=True, inline="always")
def _inverse(a, p):
    # extended Euclid: a^-1 mod p
    t, newt, r, newr = 0, 1, p, a
    while newr != 0:
        q = r // newr
        t, newt = newt, t - q * newt
        r, newr = newr, r - q * newr
    return t % p


@numba.njit(cache=True)
def _h1_3d(ev, eorder, merged, tv, torder, creates, tedge, tsign, p, max_value):
    """H1 pairs of a 3-D alpha filtration by column reduction over Z/p (see the module's text).

    Triangles above ``max_value`` are not reduced: the classes they would kill are alive there
    and come back with death inf, as in the filtration truncated there.
    """
    E = len(ev)
    erank = np.empty(E, np.int64)
    for r in range(E):
        erank[eorder[r]] = r
    pivot_col = np.full(E, -1, np.int64)  # by edge rank: the stored column with that pivot
    start = np.zeros(len(tv) + 1, np.int64)
    n_stored = 0
    cap = 4 * len(tv) + 16
    pool_r = np.empty(cap, np.int64)
    pool_c = np.empty(cap, np.int64)
    used = 0
    col_r = np.empty(16, np.int64)
    col_c = np.empty(16, np.int64)
    tmp_r = np.empty(16, np.int64)
    tmp_c = np.empty(16, np.int64)
    pairs = np.empty((len(tv), 2))
    k = 0
    for t in torder:
        if tv[t] > max_value:
            break
        if creates[t]:
            continue
        m = 0
        for j in range(3):
            e = tedge[t, j]
            if not merged[e]:
                col_r[m] = erank[e]
                col_c[m] = tsign[t, j] % p
                m += 1
        for a in range(1, m):  # insertion sort by row
            j = a
            while j > 0 and col_r[j - 1] > col_r[j]:
                col_r[j - 1], col_r[j] = col_r[j], col_r[j - 1]
                col_c[j - 1], col_c[j] = col_c[j], col_c[j - 1]
                j -= 1
        while m > 0:
            s = pivot_col[col_r[m - 1]]
            if s < 0:
                break
            b0, b1 = start[s], start[s + 1]
            factor = (col_c[m - 1] * _inverse(pool_c[b1 - 1], p)) % p
            need = m + (b1 - b0)
            if need > len(tmp_r):
                size = 2 * need
                tmp_r = np.empty(size, np.int64)
                tmp_c = np.empty(size, np.int64)
                nr = np.empty(size, np.int64)
                nc = np.empty(size, np.int64)
                nr[:m] = col_r[:m]
                nc[:m] = col_c[:m]
                col_r, col_c = nr, nc
            # col - factor * stored, merged by row
            x, y, z = 0, b0, 0
            while x < m or y < b1:
                if y >= b1 or (x < m and col_r[x] < pool_r[y]):
                    tmp_r[z] = col_r[x]
                    tmp_c[z] = col_c[x]
                    x += 1
                    z += 1
                elif x >= m or pool_r[y] < col_r[x]:
                    tmp_r[z] = pool_r[y]
                    tmp_c[z] = (p - (factor * pool_c[y]) % p) % p
                    y += 1
                    z += 1
                else:
                    c = (col_c[x] - factor * pool_c[y]) % p
                    if c != 0:
                        tmp_r[z] = col_r[x]
                        tmp_c[z] = c
                        z += 1
                    x += 1
                    y += 1
            col_r, tmp_r = tmp_r, col_r
            col_c, tmp_c = tmp_c, col_c
            m = z
        if m == 0:
            # a triangle the duality called negative reduced to zero: the filtration is inconsistent
            return pairs[:0], np.empty(0), False
        if used + m > cap:
            cap = 2 * (used + m)
            nr = np.empty(cap, np.int64)
            nc = np.empty(cap, np.int64)
            nr[:used] = pool_r[:used]
            nc[:used] = pool_c[:used]
            pool_r, pool_c = nr, nc
        pool_r[used : used + m] = col_r[:m]
        pool_c[used : used + m] = col_c[:m]
        used += m
        start[n_stored + 1] = used
        pivot_col[col_r[m - 1]] = n_stored
        n_stored += 1
        pairs[k, 0] = ev[eorder[col_r[m - 1]]]
        pairs[k, 1] = tv[t]
        k += 1
    essential = np.empty(E)
    q = 0
    for r in range(E):
        e = eorder[r]
        if not merged[e] and pivot_col[r] < 0:
            essential[q] = ev[e]
            q += 1
    return pairs[:k].copy(), essential[:q].copy(), True


def alpha_pairs(
    filt: AlphaFiltration, max_dim: int, coeff: int, max_value: float = np.inf
) -> list[np.ndarray]:
    """Persistence pairs per dimension 0..min(max_dim, D - 1), in squared radii.

    Parameters
    ----------
    filt : AlphaFiltration
    max_dim : int
        Highest homology dimension wanted.
    coeff : int
        Prime p of the field Z/p (used by the 3-D H1 reduction; the other dimensions do not
        depend on the field).
    max_value : float
        Only the pairs born at or below this squared radius are exact (in the 3-D H1, a
        class alive there may get death inf).

    Returns
    -------
    list of ndarray, each (n_k, 2)
        ``[birth, death]`` of every pair, zero-persistence ones included; ``death = inf`` for
        classes that never die.
    """
    eorder = _order(filt.edge_value, max_value)
    h0, merged = _h0(filt.n_points, filt.edge_vertices, filt.edge_value, eorder)
    n_essential = filt.n_vertices - len(h0)
    out = [
        np.concatenate([np.column_stack([np.zeros(len(h0)), h0]), np.tile([0.0, np.inf], (n_essential, 1))])
    ]
    if max_dim < 1:
        return out
    forder = eorder if filt.dim == 2 else _order(filt.facet_value, max_value)
    corder = _order(filt.cell_value, max_value)
    top, creates = _dual(
        len(filt.cell_value), filt.cell_value, corder, filt.facet_cells, filt.facet_value, forder
    )
    if filt.dim == 2:
        out.append(top)
        return out
    h1, essential, ok = _h1_3d(
        filt.edge_value,
        eorder,
        merged,
        filt.facet_value,
        forder,
        creates,
        filt.facet_edges,
        filt.facet_signs,
        coeff,
        max_value,
    )
    if not ok:
        raise RuntimeError("alpha persistence: a triangle's column reduced to zero against the duality")
    out.append(np.concatenate([h1, np.column_stack([essential, np.full(len(essential), np.inf)])]))
    if max_dim >= 2:
        out.append(top)
    return out


def numba_alpha_diagram(points: np.ndarray, max_dim: int, max_radius: float, coeff: int) -> np.ndarray:
    """:func:`particledyn.topology.betti.alpha_diagram` on qhull and the numba kernels.

    Parameters
    ----------
    points : ndarray of float64, shape (N, 2) or (N, 3)
        Checked by the caller (finite, contiguous).
    max_dim : int
    max_radius : float
        Largest ball radius; classes alive there get death inf.
    coeff : int
        A prime (checked by the caller).

    Returns
    -------
    ndarray, shape (n_pairs, 3)
        Rows ``[dim, birth, death]`` in radius units, by dimension, then birth, then death;
        zero-persistence pairs left out.

    Raises
    ------
    DegenerateCloud
        Where the floating-point path cannot decide (the caller falls back to gudhi).
    """
    m2 = max_radius * max_radius
    pairs = alpha_pairs(alpha_filtration(points, m2), max_dim, coeff, m2)
    rows = []
    for k in range(max_dim + 1):
        iv = pairs[k] if k < len(pairs) else np.empty((0, 2))
        iv = iv[iv[:, 0] <= m2]
        iv[:, 1] = np.where(iv[:, 1] > m2, np.inf, iv[:, 1])
        iv = np.sqrt(np.maximum(iv[iv[:, 1] > iv[:, 0]], 0.0))
        iv = iv[np.lexsort((iv[:, 1], iv[:, 0]))]
        rows.append(np.column_stack([np.full(len(iv), k, float), iv]))
    return np.concatenate(rows, axis=0)
