"""Neighbour pairs of a particle cloud, computed once per step and shared.

Every per-pair diagnostic (the pairwise K of Lemma 4, the distance ratios of
Lemmas 1 and 2, the atoms of Theorems 1 and 3) runs over the same set of
pairs. :class:`NeighbourPairs` builds it once: all pairs when N is small, the k
nearest neighbours from a k-d tree otherwise, and keeps the tree for the
eps-close pairs that define atoms. :class:`NeighbourCache` hands the same
object to several observers, and the one built for x(t+1) at step t+1 is the
one reused as "pairs at time t" one step later.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from ..union_find import find
from . import all_pairs

#: N at or below which every pair is used instead of k nearest neighbours.
ALL_PAIRS_MAX_N = 5000

# Row-difference norms are computed in blocks of about this many floats, so a
# D = 800 cloud never materialises an (n_pairs, D) array.
_BLOCK_FLOATS = 1 << 22


def as_positions(positions, name: str = "positions") -> np.ndarray:
    """Validate a particle array: 2-D, finite, returned as float64.

    Parameters
    ----------
    positions : array_like, shape (N, D)
        Particle coordinates.
    name : str
        Name used in the error message.

    Returns
    -------
    ndarray, shape (N, D), float64
    """
    array = np.asarray(positions)
    if array.ndim != 2:
        raise ValueError(f"{name} has shape {array.shape}: expected a 2-D array (N, D)")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise TypeError(f"{name} has dtype {array.dtype}: expected real floating-point numbers")
    array = np.asarray(array, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinity: expected finite coordinates")
    return array


def pair_norms_reference(values: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Plain-numpy ``||values[i] - values[j]||`` row by row, in blocks (the reference)."""
    out = np.empty(len(i), dtype=np.float64)
    step = max(1, _BLOCK_FLOATS // max(1, values.shape[1]))
    for start in range(0, len(i), step):
        stop = min(start + step, len(i))
        diff = values[i[start:stop]] - values[j[start:stop]]
        out[start:stop] = np.sqrt(np.einsum("pd,pd->p", diff, diff))
    return out


@numba.njit(parallel=True, cache=True)
def _pair_norms_kernel(values, i, j, out):
    for p in numba.prange(len(i)):
        a, b = i[p], j[p]
        total = 0.0
        for d in range(values.shape[1]):
            t = values[a, d] - values[b, d]
            total += t * t
        out[p] = math.sqrt(total)


def pair_norms(values: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Euclidean norms ``||values[i] - values[j]||`` row by row (fused numba loop).

    Parameters
    ----------
    values : ndarray, shape (N, D), float64
    i, j : ndarray of int, shape (P,)

    Returns
    -------
    ndarray, shape (P,), float64

    Notes
    -----
    Equal to :func:`pair_norms_reference` up to the order of the D-term sum
    (a few ulps); it avoids the two (P, D) gathers that dominate the numpy version.
    """
    out = np.empty(len(i), dtype=np.float64)
    if len(i):
        _pair_norms_kernel(np.ascontiguousarray(values, dtype=np.float64), i, j, out)
    return out


#: Largest dimension for which the eps-grid links dense clusters (its (2r+1)^D neighbour cells,
#: r = floor(sqrt(D)) + 1, grow fast); above it a tree's ``query_pairs`` does (quadratic in a cluster).
GRID_MAX_DIM = 3


@numba.njit(cache=True)
def _cell_index(cells, target):
    """Row of ``target`` in the lexicographically sorted ``cells``, or -1."""
    lo, hi, dim = 0, cells.shape[0], cells.shape[1]
    while lo < hi:
        mid = (lo + hi) // 2
        order = 0
        for d in range(dim):
            if cells[mid, d] != target[d]:
                order = -1 if cells[mid, d] < target[d] else 1
                break
        if order == 0:
            return mid
        if order < 0:
            lo = mid + 1
        else:
            hi = mid
    return -1


@numba.njit(cache=True)
def _box_distances(boxes, c, t):
    """Smallest and largest squared distance between points of the boxes of cells c and t."""
    near, far = 0.0, 0.0
    for d in range(boxes.shape[2]):
        gap = max(boxes[t, 0, d] - boxes[c, 1, d], boxes[c, 0, d] - boxes[t, 1, d], 0.0)
        span = max(boxes[t, 1, d] - boxes[c, 0, d], boxes[c, 1, d] - boxes[t, 0, d])
        near += gap * gap
        far += span * span
    return near, far


@numba.njit(cache=True)
def _grid_walk(points, cells, boxes, starts, order, offsets, eps2, count_only):
    """Over cells of side eps / sqrt(D): the pairs within eps counted (``count_only``), or a
    spanning set of eps-edges: consecutive members of a cell (all within eps of each other),
    and for each pair of neighbouring cells in different components the first pair within eps."""
    m, n_cells, dim = points.shape[0], cells.shape[0], points.shape[1]
    parent = np.arange(m)
    size = 0 if count_only else m + n_cells * len(offsets)
    src = np.empty(size, dtype=np.int64)
    dst = np.empty_like(src)
    n_edges, total = 0, 0
    target = np.empty(dim, dtype=np.int64)
    for c in range(n_cells):
        members = starts[c + 1] - starts[c]
        if count_only:
            total += members * (members - 1) // 2
            continue
        for a in range(starts[c], starts[c + 1] - 1):
            src[n_edges], dst[n_edges] = order[a], order[a + 1]
            parent[find(parent, order[a + 1])] = find(parent, order[a])
            n_edges += 1
    for c in range(n_cells):
        for o in range(len(offsets)):
            for d in range(dim):
                target[d] = cells[c, d] + offsets[o, d]
            t = _cell_index(cells, target)
            if t < 0:
                continue
            near, far = _box_distances(boxes, c, t)
            if near > eps2:
                continue
            if count_only:
                if far <= eps2:
                    total += (starts[c + 1] - starts[c]) * (starts[t + 1] - starts[t])
                    continue
            elif find(parent, order[starts[c]]) == find(parent, order[starts[t]]):
                continue
            found = False
            for a in range(starts[c], starts[c + 1]):
                p = order[a]
                for b in range(starts[t], starts[t + 1]):
                    q = order[b]
                    dist2 = 0.0
                    for d in range(dim):
                        diff = points[p, d] - points[q, d]
                        dist2 += diff * diff
                    if dist2 <= eps2:
                        if count_only:
                            total += 1
                        else:
                            src[n_edges], dst[n_edges] = p, q
                            parent[find(parent, q)] = find(parent, p)
                            n_edges += 1
                            found = True
                            break
                if found:
                    break
    return src[:n_edges], dst[:n_edges], total


def _grid(points: np.ndarray, eps: float, count_only: bool):
    m, dim = points.shape
    if dim > GRID_MAX_DIM or eps <= 0 or m < 2:
        return None
    side = eps / math.sqrt(dim)
    low = points.min(axis=0)
    reach = (points.max(axis=0) - low) / side
    if not np.all(reach < 2.0**60):
        return None
    cells = np.floor((points - low) / side).astype(np.int64)
    order = np.lexsort(cells.T[::-1])
    cells = cells[order]
    new = np.r_[True, np.any(cells[1:] != cells[:-1], axis=1)]
    first = np.flatnonzero(new)
    starts = np.r_[first, m].astype(np.int64)
    sorted_points = points[order]
    boxes = np.stack(
        [
            np.minimum.reduceat(sorted_points, first, axis=0),
            np.maximum.reduceat(sorted_points, first, axis=0),
        ],
        axis=1,
    )
    r = int(math.floor(math.sqrt(dim))) + 1
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * dim, indexing="ij"), -1).reshape(-1, dim)
    # each unordered cell pair once: offsets lexicographically after zero
    later = np.array([tuple(o) > (0,) * dim for o in grid])
    return _grid_walk(
        points,
        np.ascontiguousarray(cells[first]),
        boxes,
        starts,
        order.astype(np.int64),
        np.ascontiguousarray(grid[later], dtype=np.int64),
        float(eps) ** 2,
        count_only,
    )


def grid_links(points: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Edges within ``eps`` that chain every eps-connected set of ``points`` (a spanning set,
    not every close pair), in time linear in the points for clustered clouds; None when the
    dimension exceeds :data:`GRID_MAX_DIM`, eps is 0 or the grid has more than 2^60 cells a side.

    Parameters
    ----------
    points : ndarray, shape (m, D), float64
    eps : float

    Returns
    -------
    (i, j) : ndarrays of int64, indices into ``points``, or None

    Notes
    -----
    Cells have side eps / sqrt(D), so two points in one cell are within eps; a pair within eps
    lies in cells at most floor(sqrt(D)) + 1 apart per axis. Two neighbouring cells are
    compared point by point only while they are in different components and their points'
    boxes come within eps, and only until a pair within eps is found: a collapsed cluster
    costs O(m log m), two dense clusters just over eps apart the product of their sizes.
    """
    found = _grid(points, eps, False)
    return None if found is None else (found[0], found[1])


def grid_count(points: np.ndarray, eps: float) -> int | None:
    """Number of unordered pairs of ``points`` within ``eps``, by the grid of :func:`grid_links`
    (pairs of cells whose boxes lie within eps counted whole); None where that grid is refused."""
    found = _grid(points, eps, True)
    return None if found is None else int(found[2])


def connected_atoms(n: int, i: np.ndarray, j: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the graph on ``n`` particles with edges (i, j).

    Parameters
    ----------
    n : int
        Number of particles (isolated particles are components of size 1).
    i, j : ndarray of int
        Edge end points; duplicates and both orientations are allowed.

    Returns
    -------
    n_atoms : int
    labels : ndarray of int, shape (n,)
        Component label of each particle, in ``0 .. n_atoms - 1``.
    """
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    n_atoms, labels = connected_components(graph, directed=False)
    return int(n_atoms), labels.astype(np.int64, copy=False)


class NeighbourPairs:
    """The pairs over which one configuration's pairwise diagnostics run.

    Parameters
    ----------
    positions : array_like, shape (N, D)
        The configuration x(t).
    k : int
        Number of nearest neighbours per particle (kNN mode). Each unordered
        pair is kept once even when both particles list each other.
    all_pairs_max_n : int
        If N is at most this, every pair i < j is used (no tree is needed).
    leafsize : int
        Leaf size of the ``cKDTree``.
    workers : int
        Threads for tree queries (-1: all cores).

    Attributes
    ----------
    n, dim : int
        Number of particles and their dimension.
    all_pairs : bool
        Whether every pair is used.

    Notes
    -----
    In kNN mode the tree is queried with the particles in the tree's own order
    (``tree.indices``): neighbouring queries then touch neighbouring memory,
    which made the 10^6-point query about 3x faster here.
    """

    def __init__(
        self,
        positions,
        k: int = 6,
        all_pairs_max_n: int = ALL_PAIRS_MAX_N,
        leafsize: int = 16,
        workers: int = -1,
    ):
        if int(k) != k or k < 1:
            raise ValueError(f"k={k!r}: expected a positive integer number of neighbours")
        if int(all_pairs_max_n) != all_pairs_max_n or all_pairs_max_n < 0:
            raise ValueError(f"all_pairs_max_n={all_pairs_max_n!r}: expected a non-negative integer")
        # A private copy: the engine may reuse its position buffer in place.
        self.positions = np.array(as_positions(positions), dtype=np.float64, copy=True)
        self.n, self.dim = self.positions.shape
        self.k = int(min(k, max(self.n - 1, 1)))
        self.all_pairs = self.n <= all_pairs_max_n
        self.leafsize = int(leafsize)
        self.workers = int(workers)
        self._tree = None
        self._knn: tuple[np.ndarray, np.ndarray] | None = None
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None
        self._distances: np.ndarray | None = None
        self._atoms: dict[float, tuple[int, np.ndarray]] = {}
        self._spanning: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._scans: dict[float, tuple] = {}  # all-pairs scans (pairs within eps, closest pair)
        self._ratio: tuple[np.ndarray, tuple] | None = None  # the last ratio_max, with its values

    # -- construction -------------------------------------------------------
    @property
    def tree(self) -> cKDTree:
        """The k-d tree of the positions (built on first use)."""
        if self._tree is None:
            self._tree = cKDTree(self.positions, leafsize=self.leafsize)
        return self._tree

    @property
    def knn(self) -> tuple[np.ndarray, np.ndarray]:
        """Distances and indices of each particle's k nearest other particles.

        Returns
        -------
        distances : ndarray, shape (N, k), ascending along rows
        indices : ndarray of int, shape (N, k)
        """
        if self._knn is None:
            tree = self.tree
            order = tree.indices
            dist = np.empty((self.n, self.k + 1))
            idx = np.empty((self.n, self.k + 1), dtype=np.intp)
            dist[order], idx[order] = tree.query(self.positions[order], k=self.k + 1, workers=self.workers)
            # Drop the particle itself; if more than k+1 particles coincide the
            # query may not return it, and then the farthest column goes.
            is_self = idx == np.arange(self.n)[:, None]
            missing = ~is_self.any(axis=1)
            is_self[missing, -1] = True
            keep = ~is_self
            idx = idx[keep].reshape(self.n, self.k).astype(_index_dtype(self.n))
            self._knn = (dist[keep].reshape(self.n, self.k), idx)
        return self._knn

    @property
    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Unordered neighbour pairs ``(i, j)`` with ``i < j``, each once.

        Integer arrays (int32 while N < 2^31, to halve the memory traffic).
        """
        if self._pairs is None:
            if self.n < 2:
                empty = np.empty(0, dtype=np.int64)
                self._pairs = (empty, empty.copy())
            elif self.all_pairs:
                i, j = np.triu_indices(self.n, 1)
                dtype = _index_dtype(self.n)
                self._pairs = (i.astype(dtype), j.astype(dtype))
            else:
                self._pairs = self._dedupe_knn()
        return self._pairs

    def _dedupe_knn(self) -> tuple[np.ndarray, np.ndarray]:
        dist, idx = self.knn
        src = np.repeat(np.arange(self.n, dtype=idx.dtype), self.k)
        dst = idx.ravel()
        # (src, dst) with src > dst is a duplicate exactly when src is in dst's
        # own list, where it was already kept as (dst, src). src is in that
        # list if it is nearer than dst's k-th neighbour and not if farther;
        # only exact ties with the k-th distance need a look at the list.
        backward = np.flatnonzero(src > dst)
        d_pair = dist.ravel()[backward]
        kth = dist[dst[backward], -1]
        duplicate = d_pair < kth
        tie = np.flatnonzero(d_pair == kth)
        duplicate[tie] = (idx[dst[backward[tie]]] == src[backward[tie], None]).any(axis=1)
        keep = np.ones(len(src), dtype=bool)
        keep[backward[duplicate]] = False
        i, j = src[keep], dst[keep]
        return np.minimum(i, j), np.maximum(i, j)

    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return len(self.pairs[0])

    @property
    def distances(self) -> np.ndarray:
        """``||x_i - x_j||`` over :attr:`pairs` (computed as :meth:`norms` does,
        so that ratios against another time round the same way)."""
        if self._distances is None:
            self._distances = self.norms(self.positions)
        return self._distances

    def norms(self, values) -> np.ndarray:
        """``||values_i - values_j||`` over :attr:`pairs` for another (N, D') array.

        Parameters
        ----------
        values : array_like, shape (N, D')
            A per-particle array: an update U, or positions at another time.

        Returns
        -------
        ndarray, shape (n_pairs,)
        """
        values = as_positions(values, "values")
        if values.shape[0] != self.n:
            raise ValueError(f"values has {values.shape[0]} rows: expected one per particle ({self.n})")
        if self.n < 2:
            return np.empty(0)
        if self.all_pairs:
            return pdist(values)
        i, j = self.pairs
        return pair_norms(values, i, j)

    # -- atoms ----------------------------------------------------------------
    def close_edges(self, eps: float, spanning: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Edges within ``eps`` that connect every pair closer than ``eps`` (with duplicates).

        With ``spanning = False`` the edge set contains every unordered pair with distance
        <= eps at least once (possibly twice, in either orientation); use :meth:`close_pairs`
        for each pair once. With ``spanning = True`` it only chains them: every edge is within
        eps and two particles joined by a chain of close pairs are joined by a chain of
        edges (the atoms are the same), at a cost linear in N also for dense clusters.

        Notes
        -----
        In kNN mode the close pairs are read off the neighbour lists; only the
        particles whose k-th neighbour is itself within eps ("saturated") can
        have more close partners, and a pair missing from the lists joins two
        saturated particles, found by ``query_pairs`` on a tree of those alone
        (a cluster of m particles within eps of each other costs O(m^2), as any
        exact enumeration of close pairs does), or, spanning, by :func:`grid_links`.
        """
        eps = _check_eps(eps)
        if spanning:
            if eps not in self._spanning:
                self._spanning[eps] = self._close_edges(eps, True)
            return self._spanning[eps]
        return self._close_edges(eps, False)

    def _close_edges(self, eps: float, spanning: bool) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy()
        if self.fused:
            return self._scan(eps)[:2]
        i, j = self.pairs
        close = self.distances <= eps
        i, j = i[close], j[close]
        if self.all_pairs:
            return i, j
        kth = self.knn[0][:, -1]
        saturated = np.flatnonzero(kth <= eps)
        if len(saturated) < 2:
            return i, j
        # A particle whose k-th neighbour is farther than eps has all its close
        # partners in its list, so a close pair missing from the lists joins
        # two saturated particles: one tree over those alone finds them all.
        links = grid_links(self.positions[saturated], eps) if spanning else None
        if links is not None:
            return (
                np.concatenate([i.astype(np.int64), saturated[links[0]]]),
                np.concatenate([j.astype(np.int64), saturated[links[1]]]),
            )
        extra = cKDTree(self.positions[saturated], leafsize=self.leafsize).query_pairs(
            eps, output_type="ndarray"
        )
        return (
            np.concatenate([i.astype(np.int64), saturated[extra[:, 0]]]),
            np.concatenate([j.astype(np.int64), saturated[extra[:, 1]]]),
        )

    def close_pairs(self, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Unordered pairs ``(i, j)``, ``i < j``, with ``||x_i - x_j|| <= eps``, each once."""
        i, j = self.close_edges(eps)
        low = np.minimum(i, j).astype(np.int64)
        high = np.maximum(i, j).astype(np.int64)
        key = np.unique(low[low != high] * np.int64(self.n) + high[low != high])
        return key // self.n, key % self.n

    def count_close_pairs(self, eps: float) -> int:
        """Number of unordered pairs within ``eps``, without listing them: :func:`grid_count`
        up to :data:`GRID_MAX_DIM`, else a dual-tree count (node pairs within eps counted whole)."""
        eps = _check_eps(eps)
        if self.n < 2:
            return 0
        if self.fused:
            wider = [e for e in self._scans if e >= eps]
            if not wider:
                return all_pairs.count_within(self.positions, eps)
            i, j, _ = self._scans[min(wider)]  # every pair within eps is listed there
            return int(np.count_nonzero(pair_norms(self.positions, i, j) <= eps))
        if self.all_pairs:
            return int(np.count_nonzero(self.distances <= eps))
        # a close pair with an unsaturated end is in that end's list; the others join two
        # saturated particles and are counted among those alone
        saturated = self.knn[0][:, -1] <= eps
        i, j = self.pairs
        listed = int(np.count_nonzero((self.distances <= eps) & ~(saturated[i] & saturated[j])))
        points = self.positions[saturated]
        if len(points) < 2:
            return listed
        counted = grid_count(points, eps)
        if counted is None:
            tree = cKDTree(points, leafsize=self.leafsize)
            counted = int((tree.count_neighbors(tree, eps) - len(points)) // 2)
        return listed + counted

    # -- all pairs without arrays ----------------------------------------------
    @property
    def fused(self) -> bool:
        """All-pairs mode with no pair array built yet: the pair queries then run as fused loops
        (:mod:`particledyn.geometry.all_pairs`), equal to the array code's results, without
        materialising N (N - 1) / 2 indices and distances."""
        return self.all_pairs and self._pairs is None and self._distances is None and self.n >= 2

    def _scan(self, eps: float):
        if eps not in self._scans:
            self._scans[eps] = all_pairs.scan(self.positions, eps, _index_dtype(self.n))
        return self._scans[eps]

    def ratio_max(self, values: np.ndarray) -> tuple[float, int, int, int, int]:
        """:func:`particledyn.geometry.all_pairs.ratio_max` of ``values`` over every pair,
        kept for the last ``values`` (pairwise K and the Lemma check of one step share it)."""
        values = as_positions(values, "values")
        cached = self._ratio
        if cached is not None and cached[0].shape == values.shape and np.array_equal(cached[0], values):
            return cached[1]
        result = all_pairs.ratio_max(self.positions, values)
        self._ratio = (values.copy(), result)
        return result

    def closest_pair(self) -> tuple[float, tuple[int, int]]:
        """Smallest distance over the pairs and the first pair attaining it, (inf, (-1, -1))
        without any. In kNN mode the nearest neighbours hold the closest pair, so this is exact
        in both modes."""
        if self.n < 2:
            return float("inf"), (-1, -1)
        if self.fused:
            if self._scans:
                return next(iter(self._scans.values()))[2]
            return all_pairs.closest(self.positions)
        if self.all_pairs:
            d = self.distances
            best = int(np.argmin(d))
            i, j = self.pairs
            return float(d[best]), (int(i[best]), int(j[best]))
        dist, idx = self.knn
        best = int(np.argmin(dist[:, 0]))
        return float(dist[best, 0]), tuple(sorted((best, int(idx[best, 0]))))  # type: ignore[return-value]

    def atoms(self, eps: float) -> tuple[int, np.ndarray]:
        """Atoms at scale ``eps``: clusters of particles chained by pairs within eps.

        Two particles are in the same atom when a chain of particles joins them
        with every link at distance <= eps (single linkage). An isolated
        particle is an atom of size 1.

        Returns
        -------
        n_atoms : int
        labels : ndarray of int, shape (N,)
        """
        eps = _check_eps(eps)
        if eps not in self._atoms:
            i, j = self.close_edges(eps, spanning=True)
            self._atoms[eps] = connected_atoms(self.n, i, j)
        return self._atoms[eps]


def _index_dtype(n: int):
    return np.int32 if n < 2**31 - 1 else np.int64


def _check_eps(eps) -> float:
    eps = float(eps)
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps={eps!r}: expected a finite non-negative distance")
    return eps


class NeighbourCache:
    """Shares :class:`NeighbourPairs` between observers and consecutive steps.

    Parameters
    ----------
    k, all_pairs_max_n, leafsize, workers
        Passed to :class:`NeighbourPairs`.

    Notes
    -----
    Entries are keyed by step and checked against the positions (exact
    equality with the copy the entry was built from), so a stale entry is
    never returned, even when the caller reuses its position buffer. The two most recent
    steps are kept: the configuration x(t+1) built at step t+1 serves as x(t)
    at step t+2.
    """

    def __init__(
        self, k: int = 6, all_pairs_max_n: int = ALL_PAIRS_MAX_N, leafsize: int = 16, workers: int = -1
    ):
        self.options = dict(k=k, all_pairs_max_n=all_pairs_max_n, leafsize=leafsize, workers=workers)
        NeighbourPairs(np.zeros((1, 1)), **self.options)  # validate the options now
        self._entries: dict[int, tuple[np.ndarray, NeighbourPairs]] = {}
        self.n_built = 0

    def get(self, step: int, positions) -> NeighbourPairs:
        """The neighbour pairs of ``positions``, taken at ``step``."""
        step = int(step)
        entry = self._entries.get(step)
        if entry is not None:
            stored, pairs = entry
            if np.shape(stored) == np.shape(positions) and np.array_equal(stored, positions):
                return pairs
        pairs = NeighbourPairs(positions, **self.options)
        self.n_built += 1
        self._entries[step] = (pairs.positions, pairs)
        for old in sorted(self._entries)[:-2]:
            del self._entries[old]
        return pairs
