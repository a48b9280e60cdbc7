"""Neighbour pairs, pairwise K (Lemma 4) and the Lemma 1/2 checks against brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn.geometry import NeighbourCache, NeighbourPairs, lemma_check, pairwise_lipschitz
from particledyn.geometry.reference_nets import teacher_student


def brute_knn_pairs(X, k):
    """Unordered pairs {i, j} with j among i's k nearest others, by a full distance matrix."""
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    np.fill_diagonal(D, np.inf)
    nearest = np.argsort(D, axis=1, kind="stable")[:, :k]
    return {(min(i, j), max(i, j)) for i in range(len(X)) for j in nearest[i]}


def brute_pairwise_k(X, U, pairs):
    best = 0.0
    for i, j in pairs:
        d = np.linalg.norm(X[i] - X[j])
        if d > 0:
            best = max(best, np.linalg.norm(U[i] - U[j]) / d)
    return best


def linear_rule(A, B, masses):
    """An equivariant linear update U_i = -A x_i + sum_j m_j B x_j: U_i - U_j = -A (x_i - x_j)."""
    return lambda X: -X @ A.T + (masses @ X) @ B.T


def random_symmetric(rng, D, top):
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    spectrum = np.r_[top, rng.uniform(0.1, 1.0, D - 1)]
    return Q @ np.diag(spectrum) @ Q.T


@pytest.mark.parametrize("k", [1, 3, 6])
def test_knn_pairs_match_brute_force(k):
    X = np.random.default_rng(k).standard_normal((300, 3))
    pairs = NeighbourPairs(X, k=k, all_pairs_max_n=0)
    assert not pairs.all_pairs
    i, j = pairs.pairs
    assert (i < j).all()
    got = set(zip(i.tolist(), j.tolist()))
    assert len(got) == len(i)  # each pair once
    assert got == brute_knn_pairs(X, k)
    np.testing.assert_allclose(pairs.distances, np.linalg.norm(X[i] - X[j], axis=1), rtol=1e-15)


def test_all_pairs_mode_and_high_dimension():
    X = np.random.default_rng(0).standard_normal((40, 50))
    pairs = NeighbourPairs(X)
    assert pairs.all_pairs and pairs.n_pairs == 40 * 39 // 2
    i, j = pairs.pairs
    np.testing.assert_allclose(pairs.distances, np.linalg.norm(X[i] - X[j], axis=1), rtol=1e-12)
    U = np.random.default_rng(1).standard_normal((40, 50))
    np.testing.assert_allclose(pairs.norms(U), np.linalg.norm(U[i] - U[j], axis=1), rtol=1e-12)


def test_many_coincident_particles_drop_themselves_or_the_farthest():
    X = np.zeros((12, 2))
    X[8:] = [[5, 5], [5, 6], [6, 5], [9, 9]]
    pairs = NeighbourPairs(X, k=3, all_pairs_max_n=0)
    dist, idx = pairs.knn
    assert dist.shape == (12, 3) and (idx != np.arange(12)[:, None]).all()
    assert (dist[:8] == 0).all()


def test_pairwise_k_matches_brute_force_and_excludes_coincident_pairs():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 3))
    X[5] = X[7]  # one coincident pair
    U = np.tanh(X @ rng.standard_normal((3, 3)))
    for pairs in (NeighbourPairs(X), NeighbourPairs(X, k=4, all_pairs_max_n=0)):
        result = pairwise_lipschitz(pairs, U)
        expected = brute_pairwise_k(X, U, zip(*pairs.pairs))
        assert result.K == pytest.approx(expected, rel=1e-13)
        assert result.n_coincident == 1 and result.n_pairs == pairs.n_pairs - 1
        i, j = result.pair
        assert np.linalg.norm(U[i] - U[j]) / np.linalg.norm(X[i] - X[j]) == pytest.approx(result.K)


def test_pairwise_k_of_a_linear_rule_is_bounded_by_the_operator_norm():
    rng = np.random.default_rng(4)
    A = random_symmetric(rng, 3, 4.0)
    B = rng.standard_normal((3, 3))
    X = rng.standard_normal((2000, 3))
    U = linear_rule(A, B, np.full(2000, 1 / 2000))(X)
    K = pairwise_lipschitz(NeighbourPairs(X), U).K
    assert K <= 4.0 * (1 + 1e-12)
    assert K >= 4.0 * 0.99  # with 2 million pair directions the top one is nearly hit


@pytest.mark.parametrize("seed", range(4))
def test_lemma_2_holds_on_every_gd_step_with_the_exact_k_and_fails_when_underestimated(seed):
    rng = np.random.default_rng(seed)
    N, D = 400, 3
    A = random_symmetric(rng, D, rng.uniform(2.0, 8.0))
    K = np.linalg.norm(A, 2)
    rule = linear_rule(A, rng.standard_normal((D, D)), rng.dirichlet(np.ones(N)))
    X = rng.standard_normal((N, D))
    lr = rng.uniform(0.05, 1.5) / K  # both sides of eta* = 1/K
    caught = 0
    for _ in range(15):
        nxt = X + lr * rule(X)
        pairs = NeighbourPairs(X, k=6, all_pairs_max_n=0 if seed % 2 else 5000)
        check = lemma_check(pairs, nxt, lr, K)
        assert check.n_violations == 0 and check.n_split == 0
        assert check.lower_bound - 1e-12 <= check.min_ratio
        assert check.max_ratio <= check.upper_bound + 1e-12
        caught += lemma_check(pairs, nxt, lr, 0.25 * K).n_violations
        X = nxt
    assert caught > 0


def test_lemma_2_with_the_same_steps_pairwise_k_is_a_tautology():
    # |d' - d| <= eta |U_i - U_j| by the triangle inequality: with K measured on the same pairs and
    # step the check passes for ANY update, here a sigmoid net's and an arbitrary random one (not
    # equivariant, not Lipschitz). It tests nothing; see test_geometry_independent_k.py for checks
    # with a K from elsewhere.
    net, X, _ = teacher_student(300, d=2, batch=40, seed=1)
    rng = np.random.default_rng(0)
    lr = 2.0
    for step in range(10):
        U = -len(X) * net.grad(X) if step % 2 else rng.standard_normal(X.shape) ** 3
        nxt = X + lr * U
        pairs = NeighbourPairs(X, k=8, all_pairs_max_n=0)
        K = pairwise_lipschitz(pairs, U).K
        check = lemma_check(pairs, nxt, lr, K)
        assert check.n_violations == 0 and check.fraction_used <= 1.0 + 1e-12
        assert lemma_check(pairs, nxt, lr, 0.3 * K).n_violations > 0
        X = nxt


def test_lemma_1_equal_particles_stay_equal_and_a_split_is_counted():
    rng = np.random.default_rng(5)
    A = random_symmetric(rng, 2, 3.0)
    X = rng.standard_normal((50, 2))
    X[10:14] = X[3]  # five coincident particles: 10 equal pairs
    rule = linear_rule(A, np.eye(2), np.full(50, 0.02))
    nxt = X + 0.1 * rule(X)
    pairs = NeighbourPairs(X)
    check = lemma_check(pairs, nxt, 0.1, 3.0)
    assert check.n_equal == 10 and check.n_split == 0 and check.n_violations == 0
    nxt[12] += 1e-6
    assert lemma_check(pairs, nxt, 0.1, 3.0).n_split == 4


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="expected a 2-D array"):
        NeighbourPairs(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        NeighbourPairs(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="k=0"):
        NeighbourPairs(np.zeros((3, 2)), k=0)
    pairs = NeighbourPairs(np.random.default_rng(0).random((5, 2)))
    with pytest.raises(ValueError, match="update has shape"):
        pairwise_lipschitz(pairs, np.zeros((5, 3)))
    with pytest.raises(TypeError, match="expected a NeighbourPairs"):
        pairwise_lipschitz(np.zeros((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="K=-1"):
        lemma_check(pairs, np.zeros((5, 2)), 0.1, -1.0)
    with pytest.raises(ValueError, match="next_positions has shape"):
        lemma_check(pairs, np.zeros((4, 2)), 0.1, 1.0)


def test_cache_reuses_by_step_and_checks_positions():
    X = np.random.default_rng(0).random((30, 2))
    cache = NeighbourCache(k=3)
    first = cache.get(0, X)
    assert cache.get(0, X.copy()) is first
    assert cache.get(0, X + 1.0) is not first  # same step, other positions: rebuilt
    cache.get(1, X)
    cache.get(2, X)
    assert cache.n_built == 4 and sorted(cache._entries) == [1, 2]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 60), all_pairs=st.booleans())
def test_pairwise_k_and_lemma_check_are_permutation_invariant(seed, n, all_pairs):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    U = np.sin(X) @ rng.standard_normal((3, 3))
    nxt = X + 0.1 * U
    perm = rng.permutation(n)
    limit = 5000 if all_pairs else 0
    a = pairwise_lipschitz(NeighbourPairs(X, k=3, all_pairs_max_n=limit), U)
    b = pairwise_lipschitz(NeighbourPairs(X[perm], k=3, all_pairs_max_n=limit), U[perm])
    assert a.K == b.K and a.n_pairs == b.n_pairs
    ca = lemma_check(NeighbourPairs(X, k=3, all_pairs_max_n=limit), nxt, 0.1, a.K)
    cb = lemma_check(NeighbourPairs(X[perm], k=3, all_pairs_max_n=limit), nxt[perm], 0.1, a.K)
    assert (ca.min_ratio, ca.max_ratio, ca.n_violations) == (cb.min_ratio, cb.max_ratio, cb.n_violations)


@pytest.mark.parametrize("dim", [1, 3, 50])
def test_numba_pair_norms_match_the_numpy_reference(dim):
    from particledyn.geometry.neighbours import pair_norms, pair_norms_reference

    rng = np.random.default_rng(dim)
    values = rng.standard_normal((500, dim))
    i, j = rng.integers(0, 500, 3000), rng.integers(0, 500, 3000)
    np.testing.assert_allclose(
        pair_norms(values, i, j), pair_norms_reference(values, i, j), rtol=1e-14, atol=0
    )
    i32, j32 = i.astype(np.int32), j.astype(np.int32)
    np.testing.assert_array_equal(pair_norms(values, i32, j32), pair_norms(values, i, j))


def test_cache_is_safe_against_in_place_updates():
    X = np.random.default_rng(1).random((30, 2))
    cache = NeighbourCache(k=3)
    first = cache.get(5, X)
    X += 1.0  # the caller reuses its buffer
    again = cache.get(5, X)
    assert again is not first and np.array_equal(again.positions, X)
