"""Max-min landmarks against the plain-numpy reference; covering radius."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from particledyn.topology import covering_radius, maxmin_landmarks, maxmin_landmarks_reference


@pytest.mark.parametrize(
    "n, dim, count",
    [(1, 3, 1), (5, 2, 5), (2000, 3, 300), (3000, 2, 1000), (700, 7, 120), (400, 50, 60), (10000, 3, 50)],
)
def test_fast_equals_reference(n, dim, count):
    X = np.random.default_rng(n + dim).normal(size=(n, dim))
    fast_idx, fast_cover = maxmin_landmarks(X, count)
    ref_idx, ref_cover = maxmin_landmarks_reference(X, count)
    assert np.array_equal(fast_idx, ref_idx)
    assert fast_cover == ref_cover


def test_reference_is_farthest_point_sampling():
    # Brute force with full distance matrices: each pick maximises the distance to the set so far.
    X = np.random.default_rng(3).uniform(size=(300, 3))
    idx, cover = maxmin_landmarks_reference(X, 40, first=5)
    assert idx[0] == 5
    for m in range(1, len(idx)):
        to_set = cdist(X, X[idx[:m]]).min(axis=1)
        assert to_set[idx[m]] == pytest.approx(to_set.max(), rel=1e-12)
    assert cover == pytest.approx(cdist(X, X[idx]).min(axis=1).max(), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(1, 300),
    dim=st.integers(1, 6),
    count=st.integers(1, 80),
    first=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_fast_equals_reference_random(seed, n, dim, count, first):
    X = np.random.default_rng(seed).normal(size=(n, dim))
    first = None if first is None else first % n
    a = maxmin_landmarks(X, count, first)
    b = maxmin_landmarks_reference(X, count, first)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert a[1] == pytest.approx(covering_radius(X, a[0]), rel=1e-12, abs=0)
    assert len(np.unique(a[0])) == len(a[0]) == min(count, n)


def test_ties_go_to_the_lowest_index_like_numpy():
    # A grid has many equal distances: the order must still match the reference.
    g = np.arange(12.0)
    X = np.stack(np.meshgrid(g, g, g), axis=-1).reshape(-1, 3)
    a = maxmin_landmarks(X, 200, first=0)
    b = maxmin_landmarks_reference(X, 200, first=0)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(3, 200))  # n = 2: both points tie as "first"
def test_landmarks_are_permutation_equivariant(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    perm = rng.permutation(n)
    a, ca = maxmin_landmarks(X, 20)
    b, cb = maxmin_landmarks(X[perm], 20)
    assert np.array_equal(perm[b], a)
    assert ca == pytest.approx(cb, rel=1e-12)


def test_covering_radius_of_kept_indices():
    X = np.random.default_rng(0).normal(size=(500, 3))
    idx = np.array([3, 10, 400])
    assert covering_radius(X, idx) == pytest.approx(cdist(X, X[idx]).min(axis=1).max(), rel=1e-12)
    assert covering_radius(X, np.arange(500)) == 0.0


@pytest.mark.parametrize(
    "args, err",
    [
        ((np.zeros((0, 3)), 3), ValueError),
        ((np.zeros((4, 3)), 0), ValueError),
        ((np.zeros((4, 3)), 2.5), ValueError),
        ((np.array([["a", "b"]]), 1), TypeError),
    ],
)
def test_bad_input(args, err):
    with pytest.raises(err):
        maxmin_landmarks(*args)
    with pytest.raises(ValueError):
        covering_radius(np.zeros((4, 3)), np.array([7]))
