"""The closest pair by sort-and-sweep against the k-d tree reference (float64, to the bit)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn.geometry.closest import closest_pair_reference, closest_pair_sweep
from particledyn.geometry.observers import ClosestApproachObserver
from particledyn.observers import StepInfo


def _brute(X):
    """Every pair, in plain numpy: the smallest distance and every pair attaining it."""
    i, j = np.triu_indices(len(X), 1)
    d = np.sqrt(((X[i] - X[j]) ** 2).sum(axis=1))
    best = d.min()
    return best, {(int(a), int(b)) for a, b in zip(i[d == best], j[d == best])}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dim", [1, 2, 3, 7])
def test_sweep_equals_the_reference_to_the_bit(seed, dim):
    rng = np.random.default_rng([seed, dim])
    X = rng.standard_normal((int(rng.integers(2, 500)), dim)) * rng.uniform(1e-6, 1e3, size=dim)
    assert closest_pair_sweep(X) == closest_pair_reference(X)
    best, pairs = _brute(X)
    d, i, j = closest_pair_sweep(X)
    assert d == pytest.approx(best, rel=1e-15, abs=0) and (i, j) in pairs


def test_any_hint_gives_the_same_pair():
    X = np.random.default_rng(3).standard_normal((300, 2))
    exact = closest_pair_sweep(X)
    for hint in [(-1, -1), (0, 1), (299, 5), exact[1:], (7, 7)]:
        assert closest_pair_sweep(X, hint) == exact


def test_ties_and_coincident_particles():
    # a grid: many pairs at the same distance; the sweep takes the smallest (i, j)
    X = np.array([[x, y] for x in range(5) for y in range(4)], dtype=float)
    d, i, j = closest_pair_sweep(X)
    best, pairs = _brute(X)
    assert d == best == 1.0 and (i, j) == min(pairs)
    X[[3, 11, 17]] = X[8]  # coincident particles: distance 0, the same smaller index as the tree
    d, i, j = closest_pair_sweep(X)
    ref = closest_pair_reference(X)
    assert d == ref[0] == 0.0 and i == ref[1] == 3 and (i, j) == (3, 8)
    # every particle at one coordinate of the sweep axis: the quadratic worst case, still exact
    flat = np.c_[np.zeros(50), np.random.default_rng(0).permutation(50) * 0.5]
    assert closest_pair_sweep(flat[:, ::-1].copy()) == closest_pair_reference(flat[:, ::-1])
    assert closest_pair_sweep(np.zeros((1, 2))) == (float("inf"), -1, -1)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 80), dim=st.integers(1, 4))
def test_the_closest_pair_is_permutation_equivariant(seed, n, dim):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim))
    perm = rng.permutation(n)
    d, i, j = closest_pair_sweep(X)
    dp, ip, jp = closest_pair_sweep(X[perm])
    assert dp == d
    # without ties (continuous draws) the pair is the same particles, relabelled
    assert {int(perm[ip]), int(perm[jp])} == {i, j}


def test_the_observer_records_what_the_reference_finds_at_every_step():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((400, 2))
    observer = ClosestApproachObserver()
    for step in range(20):
        X = X + 0.05 * rng.standard_normal(X.shape)  # the pair changes from step to step
        out = observer.observe(StepInfo(step, 0.0, X, np.ones(len(X)), 0.1))
        d, i, j = closest_pair_reference(X)
        assert (out["min_distance"], out["i"], out["j"]) == (d, i, j)


def test_min_separation_is_the_tree_distance_of_the_distinct_points():
    from particledyn.topology import min_separation

    X = np.random.default_rng(8).standard_normal((300, 2))
    X[7] = X[3]  # a merged pair is one point of the set S(t)
    assert min_separation(X) == closest_pair_reference(np.unique(X, axis=0))[0] > 0
