"""Atoms, merges and merged mass on constructed point sets, against plain references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn.geometry import (
    NeighbourPairs,
    atom_masses,
    connected_atoms,
    mass_histogram,
    merge_statistics,
)


def reference_atoms(X, eps):
    """Union-find over every pair within eps (plain Python)."""
    parent = list(range(len(X)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    for i, j in zip(*np.nonzero(np.triu(D <= eps, 1))):
        parent[find(i)] = find(j)
    roots = [find(a) for a in range(len(X))]
    return frozenset(frozenset(np.flatnonzero(np.array(roots) == r).tolist()) for r in set(roots))


def partition(labels):
    return frozenset(frozenset(np.flatnonzero(labels == lab).tolist()) for lab in np.unique(labels))


def reference_merges(before, after, masses):
    """Merges/splits/merged mass straight from the definitions."""
    merges = sum(
        len({before[p] for p in range(len(after)) if after[p] == b}) - 1 for b in set(after.tolist())
    )
    splits = sum(
        len({after[p] for p in range(len(before)) if before[p] == a}) - 1 for a in set(before.tolist())
    )
    merged = [
        p
        for p in range(len(after))
        if any(before[q] != before[p] for q in range(len(after)) if after[q] == after[p])
    ]
    return merges, splits, float(masses[merged].sum()), len(merged)


def clusters(rng, sizes, spread, dim=3, separation=10.0):
    """Tight clusters of given sizes, far apart; returns points and true cluster ids."""
    centres = separation * np.arange(len(sizes))[:, None] * np.ones(dim)
    points = [c + spread * rng.uniform(-1, 1, (s, dim)) for c, s in zip(centres, sizes)]
    return np.concatenate(points), np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("mode", ["all_pairs", "knn"])
def test_known_clusters_give_known_atoms_and_masses(mode):
    rng = np.random.default_rng(0)
    sizes = [1, 2, 5, 30, 1, 12]
    X, truth = clusters(rng, sizes, spread=0.001)
    perm = rng.permutation(len(X))
    X, truth = X[perm], truth[perm]
    masses = rng.uniform(0.5, 1.5, len(X))
    pairs = NeighbourPairs(X, k=3, all_pairs_max_n=5000 if mode == "all_pairs" else 0)
    n_atoms, labels = pairs.atoms(0.01)
    assert n_atoms == len(sizes)
    assert partition(labels) == partition(truth)
    got = np.sort(atom_masses(labels, masses))
    want = np.sort(np.bincount(truth, weights=masses))
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_chains_link_below_eps_and_break_above():
    line = lambda spacing: np.c_[spacing * np.arange(50), np.zeros(50)]  # noqa: E731
    for mode in (5000, 0):
        assert NeighbourPairs(line(0.009), k=2, all_pairs_max_n=mode).atoms(0.01)[0] == 1
        assert NeighbourPairs(line(0.011), k=2, all_pairs_max_n=mode).atoms(0.01)[0] == 50


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("eps", [0.05, 0.15, 0.4])
def test_atoms_and_close_pairs_match_brute_force(seed, eps):
    rng = np.random.default_rng(seed)
    X = rng.random((250, 2))
    X[:40] = X[0] + 0.01 * rng.random((40, 2))  # a dense blob saturates k
    pairs = NeighbourPairs(X, k=4, all_pairs_max_n=0)
    assert partition(pairs.atoms(eps)[1]) == reference_atoms(X, eps)
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    want = set(zip(*np.nonzero(np.triu(D <= eps, 1))))
    i, j = pairs.close_pairs(eps)
    assert set(zip(i.tolist(), j.tolist())) == {(int(a), int(b)) for a, b in want}


def test_merge_statistics_on_a_constructed_step():
    # atoms at t: {0,1} {2} {3} {4,5} {6};  at t+1: {0,1,2} {3} {4} {5,6}
    before = np.array([0, 0, 1, 2, 3, 3, 4])
    after = np.array([7, 7, 7, 8, 9, 5, 5])
    masses = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
    stats = merge_statistics(before, after, masses)
    assert (stats.n_atoms_before, stats.n_atoms_after) == (5, 4)
    assert stats.n_merges == 2  # {0,1}+{2}, {5}+{6}
    assert stats.n_splits == 1  # {4,5} -> {4}, {5}
    assert stats.merged_mass == 1 + 2 + 4 + 32 + 64 and stats.n_merged_particles == 5
    assert stats.n_atoms_before - stats.n_atoms_after == stats.n_merges - stats.n_splits


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=30),
    st.integers(0, 2**32 - 1),
)
def test_merge_statistics_match_the_definition(labels, seed):
    before, after = (np.array(column) for column in zip(*labels))
    masses = np.random.default_rng(seed).random(len(before))
    stats = merge_statistics(before, after, masses)
    merges, splits, merged_mass, n_merged = reference_merges(before, after, masses)
    assert (stats.n_merges, stats.n_splits, stats.n_merged_particles) == (merges, splits, n_merged)
    assert stats.merged_mass == pytest.approx(merged_mass, rel=1e-12, abs=1e-15)
    assert stats.n_atoms_before - stats.n_atoms_after == stats.n_merges - stats.n_splits


def test_merges_from_a_contracting_cloud():
    rng = np.random.default_rng(1)
    X, truth = clusters(rng, [4, 4, 4], spread=0.05, dim=2)
    masses = np.full(len(X), 1 / len(X))
    centres = np.array([np.mean(X[truth == c], axis=0) for c in range(3)])
    Y = centres[truth] + 0.01 * (X - centres[truth])  # every cluster collapses
    _, a = NeighbourPairs(X).atoms(0.01)
    _, b = NeighbourPairs(Y).atoms(0.01)
    stats = merge_statistics(a, b, masses)
    assert (stats.n_atoms_before, stats.n_atoms_after) == (12, 3)
    assert stats.n_merges == 9 and stats.merged_mass == pytest.approx(1.0)


def test_mass_histogram_counts_and_out_of_range():
    edges = np.logspace(-3, 0, 4)
    counts, under, over = mass_histogram(np.array([1e-4, 2e-3, 5e-3, 0.5, 1.0, 3.0, 0.0]), edges)
    assert counts.tolist() == [2, 0, 2] and (under, over) == (2, 1)
    with pytest.raises(ValueError, match="strictly increasing"):
        mass_histogram(np.ones(2), np.array([1.0, 1.0]))


def test_connected_atoms_isolated_and_duplicate_edges():
    n, labels = connected_atoms(5, np.array([0, 1, 1, 0]), np.array([1, 0, 2, 1]))
    assert n == 3 and partition(labels) == frozenset({frozenset({0, 1, 2}), frozenset({3}), frozenset({4})})


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="masses has shape"):
        atom_masses(np.array([0, 1]), np.ones(3))
    with pytest.raises(ValueError, match="negative"):
        atom_masses(np.array([0, 1]), np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="labels_after has 2 entries"):
        merge_statistics(np.array([0, 1, 2]), np.array([0, 1]), np.ones(3))
    with pytest.raises(ValueError, match="integer array"):
        merge_statistics(np.array([0.5]), np.array([0]), np.ones(1))
    with pytest.raises(ValueError, match="eps="):
        NeighbourPairs(np.zeros((3, 2))).atoms(-1.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80), knn=st.booleans())
def test_atoms_permute_with_particles(seed, n, knn):
    rng = np.random.default_rng(seed)
    X = np.round(rng.random((n, 2)), 2)  # a coarse grid: ties and coincident points
    Y = X + 0.02 * rng.standard_normal((n, 2))
    masses = rng.random(n)
    perm = rng.permutation(n)
    limit = 0 if knn else 5000
    _, a0 = NeighbourPairs(X, k=3, all_pairs_max_n=limit).atoms(0.05)
    _, p0 = NeighbourPairs(X[perm], k=3, all_pairs_max_n=limit).atoms(0.05)
    _, a1 = NeighbourPairs(Y, k=3, all_pairs_max_n=limit).atoms(0.05)
    _, p1 = NeighbourPairs(Y[perm], k=3, all_pairs_max_n=limit).atoms(0.05)
    # the atoms of the permuted cloud are the permuted atoms
    assert partition(p0) == frozenset(
        frozenset(np.flatnonzero(np.isin(perm, list(s))).tolist()) for s in partition(a0)
    )
    assert partition(a0) == reference_atoms(X, 0.05)
    s, t = merge_statistics(a0, a1, masses), merge_statistics(p0, p1, masses[perm])
    assert (s.n_merges, s.n_splits, s.n_merged_particles) == (t.n_merges, t.n_splits, t.n_merged_particles)
    assert s.merged_mass == pytest.approx(t.merged_mass, rel=1e-12, abs=1e-15)
