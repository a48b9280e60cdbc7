"""Persistence diagrams as flat arrays: Betti numbers, packing, bottleneck distance.

A diagram is an ``(n_pairs, 3)`` float64 array of rows ``[dim, birth, death]``;
``death = inf`` for a class still alive at the largest scale computed. Several
diagrams (one per frame) are stored as one flat ``pairs`` array plus a
``[start, stop)`` row index per frame.

Convention: at scale ``r`` the complex holds every simplex whose filtration
value is ``<= r``, so ``b_k(r)`` counts the pairs of dimension ``k`` with
``birth <= r < death``.
"""

from __future__ import annotations

import gudhi
import numpy as np

__all__ = ["as_diagram", "betti_from_diagram", "pack_diagrams", "unpack_diagrams", "bottleneck_distances"]


def as_diagram(diagram) -> np.ndarray:
    """Validate and return a diagram as a float64 ``(n_pairs, 3)`` array."""
    D = np.asarray(diagram, dtype=np.float64)
    if D.size == 0:
        return np.zeros((0, 3))
    if D.ndim != 2 or D.shape[1] != 3:
        raise ValueError(f"diagram has shape {D.shape}: expected (n_pairs, 3) rows [dim, birth, death]")
    if np.any(D[:, 0] < 0) or np.any(D[:, 0] != np.round(D[:, 0])):
        raise ValueError("diagram column 0 must hold non-negative integer dimensions")
    if np.any(np.isnan(D[:, 1:])) or np.any(D[:, 2] < D[:, 1]):
        raise ValueError("diagram rows must satisfy birth <= death (no NaN)")
    return D


def betti_from_diagram(diagram, scales, max_dim: int) -> np.ndarray:
    """Betti numbers at each scale, read off a diagram.

    Parameters
    ----------
    diagram : array_like, shape (n_pairs, 3)
        Rows ``[dim, birth, death]``.
    scales : float or array_like of float
        Scales ``r`` (in the diagram's filtration units).
    max_dim : int
        Highest homology dimension reported.

    Returns
    -------
    ndarray of int64, shape (n_scales, max_dim + 1)
        ``b[s, k]`` = number of dimension-``k`` pairs with ``birth <= r_s < death``.
    """
    D = as_diagram(diagram)
    r = np.atleast_1d(np.asarray(scales, dtype=np.float64))
    alive = (D[None, :, 1] <= r[:, None]) & (r[:, None] < D[None, :, 2])
    out = np.zeros((r.size, max_dim + 1), dtype=np.int64)
    for k in range(max_dim + 1):
        out[:, k] = alive[:, D[:, 0] == k].sum(axis=1)
    return out


def pack_diagrams(diagrams):
    """Concatenate diagrams into ``(pairs, index)``.

    Parameters
    ----------
    diagrams : sequence of array_like, each (n_i, 3)

    Returns
    -------
    pairs : ndarray, shape (sum n_i, 3)
    index : ndarray of int64, shape (n_frames, 2)
        Row ``f`` is ``[start, stop)`` of frame ``f`` in ``pairs``.
    """
    ds = [as_diagram(d) for d in diagrams]
    sizes = np.array([len(d) for d in ds], dtype=np.int64)
    stop = np.cumsum(sizes)
    index = np.stack([stop - sizes, stop], axis=1) if len(ds) else np.zeros((0, 2), np.int64)
    pairs = np.concatenate(ds, axis=0) if ds else np.zeros((0, 3))
    return pairs, index


def unpack_diagrams(pairs, index) -> list[np.ndarray]:
    """Inverse of :func:`pack_diagrams`: the list of per-frame diagrams."""
    P = as_diagram(pairs)
    I = np.asarray(index, dtype=np.int64).reshape(-1, 2)
    if I.size and (I.min() < 0 or I.max() > len(P) or np.any(I[:, 1] < I[:, 0])):
        raise ValueError(f"index does not describe [start, stop) ranges inside {len(P)} pairs")
    return [P[a:b] for a, b in I]


def _truncate(D: np.ndarray, dim: int, cap: float) -> np.ndarray:
    rows = D[(D[:, 0] == dim) & (D[:, 1] <= cap)][:, 1:].copy()
    rows[:, 1] = np.minimum(rows[:, 1], cap)
    return rows


def bottleneck_distances(diagram_a, diagram_b, max_dim: int, cap: float = np.inf) -> np.ndarray:
    """Bottleneck distance per homology dimension (gudhi; exact up to the last float bits).

    Parameters
    ----------
    diagram_a, diagram_b : array_like, shape (n, 3)
    max_dim : int
    cap : float
        Both diagrams are truncated at ``cap``: pairs born after it are
        dropped and deaths beyond it set to it. Use the smaller of the two
        thresholds the diagrams were computed to, so that a bar that dies
        just past one threshold and just before the other counts as close
        (without it, a changed count of infinite bars gives ``inf``).

    Returns
    -------
    ndarray, shape (max_dim + 1,)
    """
    A, B = as_diagram(diagram_a), as_diagram(diagram_b)
    out = np.empty(max_dim + 1)
    for k in range(max_dim + 1):
        a, b = _truncate(A, k, cap), _truncate(B, k, cap)
        births = np.concatenate([a[:, 0], b[:, 0]])
        if len(births) and np.all(births == births[0]) and np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
            out[k] = same_birth_bottleneck(a[:, 1], b[:, 1], births[0])  # H0 of Rips and alpha
        else:
            out[k] = gudhi.bottleneck_distance(a, b)
    return out


def same_birth_bottleneck(deaths_a, deaths_b, birth: float) -> float:
    """Exact bottleneck distance between two diagrams whose pairs all have the same birth.

    Sorted by death, largest first, the k largest of each side matched in order and the rest sent
    to the diagonal cost max(max_{i<k} |a_i - b_i|, (a_k - birth) / 2, (b_k - birth) / 2); the
    distance is the least of these over k. (If a matching of cost delta exists, let k be the larger
    number of pairs on either side farther than 2 delta from the diagonal, which every matching
    must pair: counting the partners within delta shows |a_i - b_i| <= delta for i < k, so the
    k-th sorted matching costs <= delta too.) O(n log n), where a general bottleneck matching on
    the ~N pairs of H_0 costs ~5x more than the whole Betti computation.
    """
    a = np.sort(np.asarray(deaths_a, dtype=np.float64))[::-1]
    b = np.sort(np.asarray(deaths_b, dtype=np.float64))[::-1]
    pairs = min(len(a), len(b))
    matched = np.concatenate([[0.0], np.maximum.accumulate(np.abs(a[:pairs] - b[:pairs]))])
    rest_a = np.concatenate([(a - birth) / 2, np.zeros(pairs + 1 - len(a) if len(a) <= pairs else 0)])
    rest_b = np.concatenate([(b - birth) / 2, np.zeros(pairs + 1 - len(b) if len(b) <= pairs else 0)])
    return float(np.min(np.maximum(matched, np.maximum(rest_a[: pairs + 1], rest_b[: pairs + 1]))))
