"""Pair diagnostics that stay linear in N: atoms chained over an eps-grid, pairs counted without
listing them, also when one cluster holds most of the cloud."""

import numpy as np
import pytest

from particledyn.geometry import MergeObserver, NeighbourCache
from particledyn.geometry.neighbours import NeighbourPairs, connected_atoms, grid_count, grid_links
from particledyn.observers import StepInfo


def _clustered(n, dim, seed):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, (15, dim))
    return centres[rng.integers(0, 15, n)] + 0.02 * rng.standard_normal((n, dim))


def _same_partition(a, b):
    return a[0] == b[0] and len(set(zip(a[1].tolist(), b[1].tolist()))) == a[0]


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_grid_chains_the_same_atoms_as_every_close_pair(dim):
    X = _clustered(2000, dim, dim)
    pairs = NeighbourPairs(X, k=4, all_pairs_max_n=0)
    for eps in (0.004, 0.02, 0.08):
        i, j = pairs.close_edges(eps, spanning=True)
        assert np.all(np.linalg.norm(X[i] - X[j], axis=1) <= eps)
        every = pairs.close_edges(eps)
        assert len(i) < len(every[0]) or eps == 0.004  # a spanning set, not the list of pairs
        assert _same_partition(connected_atoms(len(X), i, j), connected_atoms(len(X), *every))
        assert pairs.count_close_pairs(eps) == len(pairs.close_pairs(eps)[0])


def test_grid_reaches_cells_floor_sqrt_d_plus_one_apart():
    # a pair 0.99 eps apart along an axis whose cells (side eps / sqrt(3)) are 2 apart
    eps = 1.0
    side = eps / np.sqrt(3)
    X = np.array([[-10 * side, 0.0, 0.0], [0.99 * side, 0, 0], [0.99 * side + 0.99 * eps, 0, 0]])
    i, j = grid_links(X, eps)
    assert sorted(zip(i.tolist(), j.tolist())) in ([(1, 2)], [(2, 1)]) and grid_count(X, eps) == 1
    assert grid_count(X, 0.98 * eps) == 0


def test_grid_is_refused_above_its_dimension_and_the_tree_takes_over():
    X = _clustered(600, 5, 0)
    assert grid_links(X, 0.05) is None and grid_count(X, 0.05) is None
    pairs = NeighbourPairs(X, k=3, all_pairs_max_n=0)
    assert pairs.count_close_pairs(0.05) == len(pairs.close_pairs(0.05)[0])
    assert _same_partition(pairs.atoms(0.05), connected_atoms(600, *pairs.close_edges(0.05)))


def test_a_collapsed_cloud_is_counted_not_listed():
    # 2 x 10^5 particles within 1e-4: 2e10 close pairs, more than memory would hold as a list
    n = 200_000
    X = 1e-5 * np.random.default_rng(1).standard_normal((n, 3))
    X[: n // 2] = X[0]  # half of them exactly coincident
    cache = NeighbourCache(k=6)
    merges = MergeObserver(eps=0.01, cache=cache, allow_close_start=True)
    masses = np.full(n, 1.0 / n)
    values = merges.observe(
        StepInfo(
            step=0,
            time=0.0,
            positions=X,
            masses=masses,
            lr=0.1,
            previous_positions=None,
            update=None,
            field=None,
        )
    )
    assert values["n_atoms"] == 1 and values["n_close_pairs"] == n * (n - 1) // 2
    assert values["n_exact_pairs"] >= (n // 2) * (n // 2 - 1) // 2
    assert values["mass_in_multi_atoms"] == pytest.approx(1.0)


def test_merge_pair_found_among_the_chaining_edges():
    rng = np.random.default_rng(3)
    before = rng.uniform(0, 10, (8000, 2))
    before[:50] = 5.0 + 1e-4 * rng.standard_normal((50, 2))  # a dense atom (saturated lists)
    before[50:100] = 5.02 + 1e-4 * rng.standard_normal((50, 2))  # another, 0.028 away
    after = before.copy()
    after[50:100] -= 0.015  # now 0.0071 apart: the two atoms merge at eps = 0.01
    cache = NeighbourCache(k=4, all_pairs_max_n=0)
    merges = MergeObserver(eps=0.01, cache=cache, allow_close_start=True)
    masses = np.full(len(before), 1.0 / len(before))
    merges.observe(
        StepInfo(
            step=0,
            time=0.0,
            positions=before,
            masses=masses,
            lr=0.1,
            previous_positions=None,
            update=None,
            field=None,
        )
    )
    values = merges.observe(
        StepInfo(
            step=1,
            time=0.1,
            positions=after,
            masses=masses,
            lr=0.1,
            previous_positions=before,
            update=after - before,
            field=None,
        )
    )
    assert values["n_merges"] >= 1 and values["n_merged_particles"] >= 100
    i, j = sorted((values["merge_i"], values["merge_j"]))
    assert i < 50 <= j < 100 and values["merge_distance"] <= 0.01
