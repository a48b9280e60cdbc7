"""Merges of particles into atoms, and the mass they carry (Theorems 1 and 3).

An *atom* at scale eps is a cluster of particles chained by pairs at distance
<= eps (see :meth:`NeighbourPairs.atoms`); the paper's Figure 14 counts pairs
closer than 0.01. Across one step the atoms at t and at t+1 form a bipartite
"overlap" graph: atom A(t) and atom B(t+1) are linked when they share a
particle. With E its number of links,

* ``n_merges = E - n_atoms(t+1)``: each atom at t+1 that gathers particles from
  m atoms of t counts m - 1 merges;
* ``n_splits = E - n_atoms(t)``: the same the other way round;

so ``n_atoms(t) - n_atoms(t+1) = n_merges - n_splits``. The *merged mass* is the
total mass of the particles whose atom at t+1 gathers particles from two or
more atoms of t, i.e. whose atom at t+1 contains a particle that was not in
their atom at t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix

#: Default atom scale, as the paper's Figure 14.
DEFAULT_EPS = 0.01


@dataclass(frozen=True)
class MergeStatistics:
    """Result of :func:`merge_statistics`.

    Attributes
    ----------
    n_atoms_before, n_atoms_after : int
    n_merges, n_splits : int
        See the module notes.
    merged_mass : float
        Mass of the particles in atoms at t+1 formed by a merge.
    n_merged_particles : int
        Number of those particles.
    """

    n_atoms_before: int
    n_atoms_after: int
    n_merges: int
    n_splits: int
    merged_mass: float
    n_merged_particles: int


def _check_labels(labels, n: int | None, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} has shape {labels.shape} and dtype {labels.dtype}: expected a "
            "1-D integer array of atom labels"
        )
    if n is not None and len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} entries: expected one per particle ({n})")
    if len(labels) and labels.min() < 0:
        raise ValueError(f"{name} has a negative label: expected labels 0 .. n_atoms - 1")
    return labels.astype(np.int64, copy=False)


def check_masses(masses, n: int) -> np.ndarray:
    """Validate per-particle masses: shape (n,), finite, non-negative; float64."""
    masses = np.asarray(masses, dtype=np.float64)
    if masses.shape != (n,):
        raise ValueError(f"masses has shape {masses.shape}: expected ({n},), one per particle")
    if not np.isfinite(masses).all() or (masses < 0).any():
        raise ValueError("masses contains a negative or non-finite value: expected masses >= 0")
    return masses


def atom_masses(labels, masses) -> np.ndarray:
    """Total mass of each atom.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Atom label of each particle, ``0 .. n_atoms - 1``.
    masses : ndarray, shape (N,)

    Returns
    -------
    ndarray, shape (n_atoms,)
    """
    labels = _check_labels(labels, None, "labels")
    masses = check_masses(masses, len(labels))
    return np.bincount(labels, weights=masses) if len(labels) else np.empty(0)


def merge_statistics(labels_before, labels_after, masses) -> MergeStatistics:
    """Merges, splits and merged mass between the atoms of x(t) and x(t+1).

    Parameters
    ----------
    labels_before, labels_after : ndarray of int, shape (N,)
        Atom labels of each particle at t and at t+1 (any labelling).
    masses : ndarray, shape (N,)

    Returns
    -------
    MergeStatistics
    """
    before = _check_labels(labels_before, None, "labels_before")
    after = _check_labels(labels_after, len(before), "labels_after")
    masses = check_masses(masses, len(before))
    if len(before) == 0:
        return MergeStatistics(0, 0, 0, 0, 0.0, 0)
    before, after = _compact(before), _compact(after)
    n_before, n_after = int(before.max()) + 1, int(after.max()) + 1
    # The overlap graph as a sparse matrix: converting to CSR sums duplicate
    # (after, before) entries with a counting sort, cheaper than np.unique.
    links = coo_matrix(
        (np.ones(len(after), dtype=np.int32), (after, before)), shape=(n_after, n_before)
    ).tocsr()
    links.sum_duplicates()
    n_links = int(links.nnz)
    merged = np.diff(links.indptr)[after] >= 2
    return MergeStatistics(
        n_before,
        n_after,
        n_links - n_after,
        n_links - n_before,
        float(masses[merged].sum()),
        int(np.count_nonzero(merged)),
    )


def _compact(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0 .. n_used - 1 without sorting (labels may skip values)."""
    used = np.bincount(labels) > 0
    return (np.cumsum(used) - 1)[labels]


def default_mass_bins() -> np.ndarray:
    """Fixed log-spaced edges for atom-mass histograms: 10^-9 .. 10, 4 bins per decade."""
    return np.logspace(-9.0, 1.0, 41)


def mass_histogram(masses_of_atoms, edges) -> tuple[np.ndarray, int, int]:
    """Histogram of atom masses over fixed edges, with out-of-range counts.

    Parameters
    ----------
    masses_of_atoms : ndarray
        One mass per atom.
    edges : ndarray, increasing, length B+1

    Returns
    -------
    counts : ndarray of int, shape (B,)
        Atoms with ``edges[b] <= mass < edges[b+1]`` (the last bin includes its
        right edge, as ``numpy.histogram``).
    underflow, overflow : int
        Atoms below ``edges[0]`` (zero-mass atoms included) and above ``edges[-1]``.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not (np.diff(edges) > 0).all():
        raise ValueError(
            f"edges of shape {edges.shape}: expected a strictly increasing 1-D array of at least 2 bin edges"
        )
    values = np.asarray(masses_of_atoms, dtype=np.float64)
    counts, _ = np.histogram(values, bins=edges)
    under = int(np.count_nonzero(values < edges[0]))
    return counts, under, int(np.count_nonzero(values > edges[-1]))
