"""Max-min (farthest point) landmarks of a large cloud.

A Rips complex on 10^6 points is out of reach; one on a few hundred well
spread landmarks is not. Max-min sampling picks each new landmark as the point
farthest from the landmarks chosen so far. After ``L`` picks, every point lies
within the *covering radius* ``eps`` of some landmark, so the landmark cloud is
``eps``-close to the full cloud in Hausdorff distance: features smaller than
about ``2 * eps`` cannot be seen, and a Rips filtration of the landmarks is
interleaved with that of the cloud within ``2 * eps`` in scale.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.spatial import cKDTree

__all__ = ["maxmin_landmarks", "maxmin_landmarks_reference", "covering_radius"]


def _check_cloud(points, name="points") -> np.ndarray:
    X = np.asarray(points)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} has shape {X.shape}: expected a non-empty (N, D) array")
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"{name} has dtype {X.dtype}: expected a real floating array")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or inf: expected finite coordinates")
    return X


def _check_count(n_landmarks, n_points) -> int:
    if isinstance(n_landmarks, bool) or int(n_landmarks) != n_landmarks or n_landmarks < 1:
        raise ValueError(f"n_landmarks={n_landmarks!r}: expected a positive integer")
    return min(int(n_landmarks), n_points)


def _first_index(X: np.ndarray, first) -> int:
    if first is None:
        # The point farthest from the centroid: an equivariant choice, so the
        # landmark set permutes with the particles (unlike a fixed index 0).
        d2 = ((X - X.mean(axis=0)) ** 2).sum(axis=1)
        return int(np.argmax(d2))
    if isinstance(first, bool) or int(first) != first or not 0 <= first < X.shape[0]:
        raise ValueError(f"first={first!r}: expected None or a particle index in [0, {X.shape[0]})")
    return int(first)


_BLOCK = 128


@numba.njit(cache=True)
def _maxmin_blocked(Y, order, first_pos, count, block):
    """Max-min sampling on points ``Y`` stored in a spatially coherent ``order``.

    ``Y[p] = X[order[p]]``. Points are cut into contiguous blocks with bounding
    boxes; a block is scanned for a new landmark ``l`` only when its box is
    closer to ``l`` than the block's largest current distance, since no point
    of it can move nearer otherwise. Ties go to the lowest original index.
    Returns positions (into ``Y``) of the landmarks and the final squared
    covering radius.
    """
    n, dim = Y.shape
    n_blocks = (n + block - 1) // block
    lo = np.empty((n_blocks, dim))
    hi = np.empty((n_blocks, dim))
    for b in range(n_blocks):
        for k in range(dim):
            lo[b, k] = np.inf
            hi[b, k] = -np.inf
        for p in range(b * block, min(n, (b + 1) * block)):
            for k in range(dim):
                v = Y[p, k]
                if v < lo[b, k]:
                    lo[b, k] = v
                if v > hi[b, k]:
                    hi[b, k] = v
    mind = np.full(n, np.inf)
    bmax = np.full(n_blocks, np.inf)
    barg = np.zeros(n_blocks, dtype=np.int64)
    for b in range(n_blocks):
        barg[b] = b * block
    picked = np.empty(count, dtype=np.int64)
    nxt = first_pos
    for m in range(count):
        picked[m] = nxt
        for b in range(n_blocks):
            box = 0.0
            for k in range(dim):
                t = lo[b, k] - Y[nxt, k]
                if t > 0.0:
                    box += t * t
                else:
                    t = Y[nxt, k] - hi[b, k]
                    if t > 0.0:
                        box += t * t
            if box >= bmax[b]:
                continue
            bv = -1.0
            bi = -1
            for p in range(b * block, min(n, (b + 1) * block)):
                d = 0.0
                for k in range(dim):
                    t = Y[p, k] - Y[nxt, k]
                    d += t * t
                v = mind[p]
                if d < v:
                    v = d
                    mind[p] = d
                if v > bv or (v == bv and order[p] < order[bi]):
                    bv = v
                    bi = p
            bmax[b] = bv
            barg[b] = bi
        bv = -1.0
        bi = -1
        for b in range(n_blocks):
            p = barg[b]
            if bmax[b] > bv or (bmax[b] == bv and order[p] < order[bi]):
                bv = bmax[b]
                bi = p
        nxt = bi
    return picked, mind[nxt]


def maxmin_landmarks(points, n_landmarks: int, first: int | None = None):
    """Choose landmarks by max-min (farthest point) sampling.

    Parameters
    ----------
    points : array_like, shape (N, D)
        The cloud.
    n_landmarks : int
        How many landmarks to pick (capped at N).
    first : int or None
        Index of the first landmark; None picks the point farthest from the
        centroid, which makes the landmark set permutation-equivariant.

    Returns
    -------
    indices : ndarray of int64, shape (L,)
        Particle indices of the landmarks, in the order picked.
    covering_radius : float
        max over all points of the distance to the nearest landmark (0 when
        every point is a landmark).

    Notes
    -----
    Points are first put in k-d tree leaf order and cut into blocks with
    bounding boxes; a new landmark only rescans the blocks its ball of
    influence reaches, so the cost is far below O(N * L) in low dimension
    (it degrades gracefully to that in high dimension). Ties between equally
    far points go to the lowest index, as ``numpy.argmax`` does, so the result
    equals :func:`maxmin_landmarks_reference` exactly.
    """
    X = _check_cloud(points)
    n = X.shape[0]
    count = _check_count(n_landmarks, n)
    first_index = _first_index(X, first)
    order = cKDTree(X, leafsize=_BLOCK // 2, balanced_tree=False, compact_nodes=False).indices
    order = np.ascontiguousarray(order, dtype=np.int64)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    Y = np.ascontiguousarray(X[order])
    picked, cover2 = _maxmin_blocked(Y, order, position[first_index], count, _BLOCK)
    return order[picked], float(np.sqrt(cover2))


def maxmin_landmarks_reference(points, n_landmarks: int, first: int | None = None):
    """Plain-numpy max-min sampling, the reference for :func:`maxmin_landmarks`.

    Same parameters and returns; squared distances are summed coordinate by
    coordinate in the same order as the fast loop, so the indices agree exactly.
    """
    X = _check_cloud(points)
    n, dim = X.shape
    count = _check_count(n_landmarks, n)
    idx = [_first_index(X, first)]
    mind = np.full(n, np.inf)
    while True:
        d2 = np.zeros(n)
        for k in range(dim):
            d2 += (X[:, k] - X[idx[-1], k]) ** 2
        mind = np.minimum(mind, d2)
        nxt = int(np.argmax(mind))
        if len(idx) == count:
            return np.asarray(idx, dtype=np.int64), float(np.sqrt(mind[nxt]))
        idx.append(nxt)


def covering_radius(points, landmark_indices) -> float:
    """Largest distance from a point of the cloud to its nearest landmark.

    Parameters
    ----------
    points : array_like, shape (N, D)
    landmark_indices : array_like of int
        Indices into ``points`` (e.g. landmarks kept from an earlier frame).

    Returns
    -------
    float
    """
    X = _check_cloud(points)
    idx = np.asarray(landmark_indices)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"landmark_indices has shape {idx.shape} and dtype {idx.dtype}: "
            "expected a non-empty 1-D integer array"
        )
    if idx.min() < 0 or idx.max() >= X.shape[0]:
        raise ValueError(f"landmark_indices out of range [0, {X.shape[0]})")
    dist, _ = cKDTree(X[idx]).query(X, k=1)
    return float(dist.max())
