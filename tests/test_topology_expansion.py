"""Theorem 2, measured: expansions of S(t) and S(t+1) side by side."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist

from particledyn.topology import empirical_lipschitz, expansion_check, min_separation, union_of_balls_betti


def spread_step(X, c):
    """U_i = c (x_i - mean): equivariant, ||U_i - U_j|| = c ||x_i - x_j|| (K = c)."""
    return c * (X - X.mean(axis=0))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 60), dim=st.integers(1, 6))
def test_min_separation_matches_pdist(seed, n, dim):
    X = np.random.default_rng(seed).normal(size=(n, dim))
    assert min_separation(X) == pytest.approx(pdist(X).min(), rel=1e-12)
    # merged particles are one point of S(t): duplicates do not make delta zero
    assert min_separation(np.r_[X, X[:1]]) == pytest.approx(pdist(X).min(), rel=1e-12)


def test_min_separation_of_a_single_point_is_infinite():
    assert min_separation(np.ones((4, 3))) == np.inf


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_separated_points_small_step_topology_equal(dim):
    rng = np.random.default_rng(dim)
    X = rng.uniform(-5, 5, size=(40, dim))
    lr, K = 0.01, 0.5
    Y = X + lr * spread_step(X, K)
    delta = min_separation(X)
    radii = np.array([0.1, 0.3, 0.49]) * delta
    res = expansion_check(X, Y, radii, lr=lr, K=K)
    assert res.model == ("alpha" if dim <= 3 else "rips")
    assert res.delta == pytest.approx(delta)
    assert np.all(res.disjoint) and np.all(res.below_separation)
    assert np.all(res.equal) and not np.any(res.contradicts_theorem)
    assert res.betti_before.tolist() == [[40, 0, 0]] * 3
    assert np.allclose(res.radii_after, (1 - lr * K) * radii)


@pytest.mark.parametrize("dim", [3, 5])
def test_overlapping_balls_below_delta_can_split_and_it_is_reported(dim):
    # Two points at distance 1 (delta = 1), pushed apart to 1 + eta K = 1.09.
    X = np.zeros((2, dim))
    X[1, 0] = 1.0
    lr, K = 0.1, 0.9
    Y = X + lr * spread_step(X, K)
    assert np.linalg.norm(Y[1] - Y[0]) == pytest.approx(1.09)
    res = expansion_check(X, Y, radii=[0.3, 0.52], lr=lr, K=K, max_dim=1)
    # r = 0.3: disjoint balls, as the proof assumes -> equal.
    assert res.equal[0] and res.disjoint[0]
    # r = 0.52 < delta: balls of radius 0.52 meet (b0 = 1), balls of radius 0.4732 around
    # points 1.09 apart do not (b0 = 2): the theorem's statement fails here.
    assert res.below_separation[1] and not res.disjoint[1]
    assert res.betti_before[1].tolist() == [1, 0]
    assert res.betti_after[1].tolist() == [2, 0]
    assert not res.equal[1]
    # the statement as printed fails there for any dynamics: the misstatement, not a contradiction
    assert res.misstatement.tolist() == [False, True]
    assert res.contradicts_theorem.tolist() == [False, False]


def test_ring_of_points_loop_breaks_below_delta():
    # 12 points on a circle, spacing delta; at r = 0.6 delta their balls form an annulus (b1 = 1).
    n = 12
    t = 2 * np.pi * np.arange(n) / n
    X = np.c_[np.cos(t), np.sin(t), np.zeros(n)]
    lr, K = 0.1, 1.0
    Y = X + lr * spread_step(X, K)  # the ring grows by 10 %
    delta = min_separation(X)
    res = expansion_check(X, Y, [0.6 * delta], lr=lr, K=K)
    assert res.betti_before.tolist() == [[1, 1, 0]]
    assert res.betti_after.tolist() == [[n, 0, 0]]
    assert res.misstatement.tolist() == [True] and res.contradicts_theorem.tolist() == [False]


def test_tangent_balls_at_half_delta_are_disjoint_open_balls_even_for_u_zero():
    # U = 0: nothing moves, yet closed balls of radius delta/2 touch and shrunk ones do not.
    X = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.5]])
    res = expansion_check(X, X, [0.5], lr=0.1, K=1.0, max_dim=1)
    assert res.disjoint.tolist() == [True] and res.equal.tolist() == [True]
    assert not res.contradicts_theorem.any()
    closed, _, _ = union_of_balls_betti(X, [0.5], 1, open_balls=False)
    opened, _, _ = union_of_balls_betti(X, [0.5], 1)
    assert closed.tolist() == [[2, 0]] and opened.tolist() == [[3, 0]]
    assert union_of_balls_betti(X, [0.5], 1, model="rips")[0].tolist() == [[3, 0]]


@pytest.mark.parametrize("certified", [True, False])
def test_a_contraction_beyond_the_certified_k_contradicts_only_when_k_is_certified(certified):
    # Two points contract by 40 % while the declared K allows 10 %: balls of radius 0.45 around
    # S(t) are disjoint, balls of radius 0.9 * 0.45 around S(t+1) overlap.
    X = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    Y = X + 0.1 * (-2.0) * (X - X.mean(axis=0))
    res = expansion_check(X, Y, [0.45], lr=0.1, K=1.0, certified=certified)
    assert res.disjoint.tolist() == [True] and res.equal.tolist() == [False]
    assert res.contradicts_theorem.tolist() == [certified]


def test_eta_K_at_least_one_is_not_applicable():
    X = np.random.default_rng(0).normal(size=(10, 3))
    res = expansion_check(X, X, [0.01], lr=1.0, K=1.5)
    assert res.eta_K == 1.5
    assert np.isnan(res.radii_after).all() and (res.betti_after == -1).all()
    assert not res.equal.any() and not res.contradicts_theorem.any()


def test_alpha_and_rips_models_agree_on_b0_and_rips_bound_holds():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 3))
    radii = [0.2, 0.4, 0.7]
    exact, exact_lb, m1 = union_of_balls_betti(X, radii, 2, "alpha")
    proxy, lower, m2 = union_of_balls_betti(X, radii, 2, "rips")
    assert (m1, m2) == ("alpha", "rips")
    assert np.array_equal(exact, exact_lb)
    assert np.array_equal(exact[:, 0], proxy[:, 0])  # balls meet pairwise <=> Rips(2r) edge
    assert np.all(lower <= exact)  # certified lower bound on the union's Betti numbers


def test_empirical_lipschitz_of_a_linear_spread_is_its_rate():
    X = np.random.default_rng(5).normal(size=(200, 4))
    lr = 0.05
    assert empirical_lipschitz(X, X + lr * spread_step(X, 0.7), lr) == pytest.approx(0.7, rel=1e-9)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(before=np.zeros((3, 2)), after=np.zeros((4, 2)), radii=[0.1], lr=0.1, K=1.0), ValueError),
        (dict(before=np.eye(3), after=np.eye(3), radii=[-0.1], lr=0.1, K=1.0), ValueError),
        (dict(before=np.eye(3), after=np.eye(3), radii=[0.1], lr=0.0, K=1.0), ValueError),
        (dict(before=np.eye(3), after=np.eye(3), radii=[0.1], lr=0.1, K=-1.0), ValueError),
        (dict(before=np.eye(3), after=np.eye(3), radii=[0.1], lr=0.1, K=1.0, model="cech"), ValueError),
    ],
)
def test_bad_input(kwargs, err):
    with pytest.raises(err):
        expansion_check(**kwargs)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(0, 80),
    dim=st.integers(1, 4),
    grid=st.sampled_from([None, 1, 2]),
    zeros=st.booleans(),
)
def test_distinct_rows_are_numpys_unique_rows(seed, n, dim, grid, zeros):
    """The lexsort gives np.unique(axis=0)'s rows in its order (the plain-numpy reference), with
    repeated rows (a coarse grid), -0.0 beside 0.0, and under any permutation of the particles."""
    from particledyn.topology.expansion import _distinct

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    if grid is not None:
        X = np.round(X, grid)  # many repeated rows
    if zeros and n:
        X[rng.random(n) < 0.3, 0] = -0.0
    want = np.unique(X, axis=0)
    got = _distinct(X)
    assert got.shape == want.shape and np.array_equal(got, want)
    assert np.array_equal(_distinct(X[rng.permutation(n)]), want)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(2, 200),
    dim=st.integers(1, 10),
    k=st.integers(1, 12),
    lr=st.floats(1e-4, 10.0),
    merged=st.booleans(),
)
def test_empirical_lipschitz_loop_equals_the_array_code(seed, n, dim, k, lr, merged):
    """Bit for bit the plain-numpy ratio (float64), merged particles (dx = 0) included, and the
    same K under any permutation of the particles."""
    from scipy.spatial import cKDTree

    from particledyn.topology.expansion import _neighbour_ratio_reference

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    if merged:
        X[rng.random(n) < 0.3] = X[0]
    Y = X + lr * rng.normal(size=X.shape)
    _, nb = cKDTree(X).query(X, k=min(k + 1, n))
    want = _neighbour_ratio_reference(X, Y, nb, lr)
    got = empirical_lipschitz(X, Y, lr, k)
    assert got == want
    if not merged:  # distinct points: the neighbour pairs are the same set after a permutation
        perm = rng.permutation(n)
        assert empirical_lipschitz(X[perm], Y[perm], lr, k) == want


def test_empirical_lipschitz_loop_finds_a_planted_ratio():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    Y = X.copy()
    Y[1, 0] += 0.3  # U_1 - U_0 = 0.3 / lr over a distance of 1
    assert empirical_lipschitz(X, Y, 0.1, k=1) == pytest.approx(3.0, rel=1e-15)
    assert empirical_lipschitz(X, X, 0.1, k=1) == 0.0
