"""Zigzag persistence of the Rips complexes of a run's frames (dionysus).

With particles identified by index across frames, the zigzag

    Rips(X_0) ⊂ Rips(X_0) ∪ Rips(X_1) ⊃ Rips(X_1) ⊂ ... ⊃ Rips(X_{T-1})

at one edge length r follows each loop and void through training: a bar says
from which frame to which frame a class lives. Zigzag time 2t is frame t and
2t + 1 the union of frames t and t + 1; bars are reported in frame units
(zigzag time / 2): a bar ``[b, d)`` lives in frames ``ceil(b) .. ceil(d) - 1``;
a half-integer ``b`` means the class is born in a union (seen in no frame
before); ``d = inf`` means it is alive in the last frame.

The bars are computed by dionysus: ``fast_zigzag`` (default) or the standard
``zigzag_homology_persistence``, which the tests hold it equal to.
"""

from __future__ import annotations

from collections import defaultdict

import gudhi
import numpy as np

from .betti import _check_max_dim
from .landmarks import _check_cloud

__all__ = ["zigzag_barcode", "frame_simplices"]


def frame_simplices(points, scale: float, max_simplex_dim: int) -> list[tuple[int, ...]]:
    """Simplices (sorted vertex tuples) of Rips(points) with edges <= ``scale``.

    Parameters
    ----------
    points : array_like, shape (N, D)
    scale : float
        Edge length r.
    max_simplex_dim : int
        Largest simplex dimension (k + 1 for homology up to H_k).

    Returns
    -------
    list of tuple of int
    """
    X = _check_cloud(points)
    rips = gudhi.RipsComplex(points=X, max_edge_length=float(scale))
    tree = rips.create_simplex_tree(max_dimension=int(max_simplex_dim))
    return [tuple(s) for s, _ in tree.get_simplices()]


def _toggle_times(present: np.ndarray) -> list[float]:
    """Zigzag entry/exit times of a simplex given its presence per zigzag time."""
    times = []
    previous = False
    for s, now in enumerate(present):
        if now != previous:
            times.append(float(s))
            previous = now
    return times


def zigzag_barcode(frames, scale: float, max_dim: int = 1, method: str = "fast") -> np.ndarray:
    """Zigzag barcode of Rips(frame t) ⊂ union ⊃ Rips(frame t+1) at edge length ``scale``.

    Parameters
    ----------
    frames : sequence of array_like, each (N, D)
        Positions per frame, particle ``i`` the same neuron in every frame.
    scale : float
        Rips edge length r (edges ``<= r``).
    max_dim : int
        Highest homology dimension; simplices up to dimension ``max_dim + 1``
        are built (H2 needs the tetrahedra).
    method : {"fast", "standard"}
        ``"standard"``: ``dionysus.zigzag_homology_persistence`` (the
        reference). ``"fast"``: ``dionysus.fast_zigzag``, Dey and Hou's cone
        construction reduced by ordinary persistence; same bars, measured
        ~100x faster on a 10-frame, 200-point run with H2.

    Returns
    -------
    ndarray, shape (n_bars, 3)
        Rows ``[dim, birth, death]`` in frame units (see module notes); death
        ``inf`` for classes alive in the last frame. Sorted by dim, birth, death.
    """
    import dionysus as d  # optional dependency (extras "topology"), imported on use

    max_dim = _check_max_dim(max_dim)
    if method not in ("fast", "standard"):
        raise ValueError(f"method={method!r}: expected 'fast' or 'standard'")
    scale = float(scale)
    if not (np.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale={scale!r}: expected a finite non-negative edge length")
    clouds = [_check_cloud(f, f"frames[{t}]") for t, f in enumerate(frames)]
    if not clouds:
        raise ValueError("frames is empty: expected at least one (N, D) array")
    if any(c.shape != clouds[0].shape for c in clouds):
        raise ValueError(
            f"frames have shapes {sorted({c.shape for c in clouds})}: "
            "expected one (N, D) shape for all (same particles)"
        )
    n_frames = len(clouds)
    in_frame: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for t, X in enumerate(clouds):
        for s in frame_simplices(X, scale, max_dim + 1):
            in_frame[s].append(t)
    n_times = 2 * n_frames - 1
    simplices = sorted(in_frame, key=lambda s: (len(s), s))
    times = []
    for s in simplices:
        present = np.zeros(n_times, dtype=bool)
        seen = np.asarray(in_frame[s])  # the frames holding s
        present[2 * seen] = True
        present[np.clip(2 * seen - 1, 0, None)] |= seen > 0  # union (t-1, t)
        present[np.clip(2 * seen + 1, None, n_times - 1)] |= seen < n_frames - 1  # union (t, t+1)
        times.append(_toggle_times(present))
    if method == "fast":
        cone = d.fast_zigzag([list(s) for s in simplices], times)
        diagrams = d.init_zigzag_diagrams(d.homology_persistence(cone), cone)
        # Bars come sorted by type (closed/open ends); the numbers are the event
        # times, as in the standard algorithm.
        points = [
            (k, p.birth, p.death)
            for k, by_type in enumerate(diagrams)
            for dgm in by_type.values()
            for p in dgm
        ]
    else:
        filtration = d.Filtration([d.Simplex(list(s), 0.0) for s in simplices])
        # d.Filtration sorts by (data, dim, vertices): realign the times with it.
        order = {s: i for i, s in enumerate(simplices)}
        times_sorted = [times[order[tuple(sorted(fs))]] for fs in filtration]
        _, diagrams, _ = d.zigzag_homology_persistence(filtration, times_sorted)
        points = [(k, p.birth, p.death) for k, dgm in enumerate(diagrams) for p in dgm]
    bars = [(k, b / 2.0, np.inf if np.isinf(e) else e / 2.0) for k, b, e in points if k <= max_dim]
    out = np.array(bars, dtype=np.float64).reshape(-1, 3)
    return out[np.lexsort((out[:, 2], out[:, 1], out[:, 0]))]
