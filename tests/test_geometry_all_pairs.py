"""The fused all-pairs loops against the array code they replace (float64, to the bit)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist

from particledyn.geometry import all_pairs
from particledyn.geometry.lemmas import bounds_check, bounds_check_all_pairs
from particledyn.geometry.lipschitz import pairwise_lipschitz
from particledyn.geometry.neighbours import NeighbourCache, NeighbourPairs
from particledyn.geometry.observers import LemmaObserver, MergeObserver, PairwiseLipschitzObserver
from particledyn.observers import StepInfo


def _arrays(X):
    """NeighbourPairs with its pair arrays built: every query then takes the array code."""
    pairs = NeighbourPairs(X)
    pairs.pairs, pairs.distances  # noqa: B018 - built for their side effect
    assert not pairs.fused
    return pairs


def _cloud(seed, n=300, dim=2, coincident=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim)) * rng.uniform(0.1, 10, size=dim)
    if coincident:
        X[5] = X[7]  # an exact merge
        X[[20, 21, 22]] = X[30] + 1e-9  # a tight cluster
    return X


@pytest.mark.parametrize("dim", [1, 2, 3, 9])
def test_distances_are_pdists_to_the_bit(dim):
    X = _cloud(dim, 200, dim)
    i, j = np.triu_indices(len(X), 1)
    d = pdist(X)
    eps = float(np.quantile(d, 0.01))
    src, dst = all_pairs.pairs_within(X, eps)
    close = d <= eps
    assert np.array_equal(src, i[close]) and np.array_equal(dst, j[close])
    assert all_pairs.count_within(X, eps) == np.count_nonzero(close)
    best = int(np.argmin(d))
    assert all_pairs.closest(X) == (d[best], (i[best], j[best]))


@pytest.mark.parametrize("seed", range(4))
def test_pairwise_K_equals_the_array_code(seed):
    X = _cloud(seed)
    U = np.random.default_rng(seed + 9).standard_normal(X.shape)
    fast = pairwise_lipschitz(NeighbourPairs(X), U)
    assert fast == pairwise_lipschitz(_arrays(X), U)
    # 5 = 7, and 20 = 21 = 22: four coincident pairs
    assert fast.n_coincident == 4 and fast.n_pairs == len(X) * (len(X) - 1) // 2 - 4
    # without a positive distance: K = 0 as the array code says
    same = np.zeros((4, 2))
    assert pairwise_lipschitz(NeighbourPairs(same), U[:4]) == pairwise_lipschitz(_arrays(same), U[:4])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("K", [0.0, 0.5, 3.0])
def test_lemma_bounds_equal_the_array_code(seed, K):
    X0 = _cloud(seed)
    X1 = X0 + 0.05 * np.random.default_rng(seed).standard_normal(X0.shape)
    X1[21] = X1[20] + 1.0  # a split of the tight cluster
    tolerances = dict(rtol=1e-12, atol=1e-8)
    fast = bounds_check_all_pairs(X0, X1, 0.1, K, **tolerances)
    assert fast == bounds_check(pdist(X0), pdist(X1), 0.1, K, **tolerances)
    assert fast.n_split >= 1 and fast.n_equal >= 1
    assert bounds_check_all_pairs(X0, X1, 0.1, K, equal_tol=1e-3, split_tol=1e-2, **tolerances) == (
        bounds_check(pdist(X0), pdist(X1), 0.1, K, equal_tol=1e-3, split_tol=1e-2, **tolerances)
    )
    with pytest.raises(ValueError, match="K=-1"):
        bounds_check_all_pairs(X0, X1, 0.1, -1.0, **tolerances)


def test_atoms_counts_and_closest_pair_equal_the_array_code():
    X = _cloud(3)
    for eps in (0.0, 1e-9, 2e-9, 0.05, 0.3):
        fast, slow = NeighbourPairs(X), _arrays(X)
        assert fast.fused
        n, labels = fast.atoms(eps)
        assert n == slow.atoms(eps)[0] and np.array_equal(labels, slow.atoms(eps)[1])
        for e in (eps, eps / 2, 1e-12, 2 * eps + 1e-3):  # below, at and above the scanned scale
            assert fast.count_close_pairs(e) == slow.count_close_pairs(e)
        assert fast.closest_pair() == slow.closest_pair()
        ci, cj = fast.close_edges(eps)
        si, sj = slow.close_edges(eps)
        assert np.array_equal(ci, si) and np.array_equal(cj, sj) and ci.dtype == si.dtype
    assert NeighbourPairs(X).closest_pair() == _arrays(X).closest_pair()  # without a scan


class _ArrayCache(NeighbourCache):
    """A cache whose entries have their arrays built: the observers' array code runs."""

    def get(self, step, positions):
        pairs = super().get(step, positions)
        pairs.pairs, pairs.distances  # noqa: B018
        return pairs


def _trajectory(n=250, steps=4):
    rng = np.random.default_rng(11)
    X = _cloud(4, n)
    out = [X]
    for _ in range(steps):
        X = X + 0.02 * rng.standard_normal(X.shape)
        X[40] = X[41]  # pairs that merge along the way
        out.append(X.copy())
    return out


@pytest.mark.parametrize(
    "make",
    [
        lambda cache: PairwiseLipschitzObserver(cache=cache),
        lambda cache: LemmaObserver("pairwise", cache=cache),
        lambda cache: LemmaObserver("previous", cache=cache),
        lambda cache: LemmaObserver(2.0, cache=cache, equal_tol=1e-6),
        lambda cache: LemmaObserver("held_out", cache=cache),
        lambda cache: MergeObserver(0.05, cache=cache, allow_close_start=True),
        lambda cache: MergeObserver(eps_relative=0.5, cache=cache, allow_close_start=True),
    ],
)
def test_observers_record_the_same_on_the_fused_and_the_array_path(make):
    fast, slow = make(NeighbourCache()), make(_ArrayCache())
    frames = _trajectory()
    rng = np.random.default_rng(2)
    for step, X in enumerate(frames):
        previous = frames[step - 1] if step else None
        U = None if previous is None else (X - previous) / 0.1
        field = None if U is None else U + rng.normal(size=X.shape)
        info = StepInfo(step, 0.1 * step, X, np.ones(len(X)), 0.1, previous, U, field)
        a, b = fast.observe(info), slow.observe(info)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 60), dim=st.integers(1, 4))
def test_the_loops_are_permutation_equivariant(seed, n, dim):
    rng = np.random.default_rng(seed)
    X, Y, U = (rng.standard_normal((n, dim)) for _ in range(3))
    perm = rng.permutation(n)
    K, i, j, positive, coincident = all_pairs.ratio_max(X, U)
    Kp, ip, jp, positive_p, coincident_p = all_pairs.ratio_max(X[perm], U[perm])
    assert Kp == K and (positive_p, coincident_p) == (positive, coincident)
    assert {int(perm[ip]), int(perm[jp])} == {i, j}  # the same particles, relabelled (no ties)
    counts = all_pairs.bounds_counts(X, Y, 0.9, 1.1, 1e-12, 1e-9, 1e-9, 2e-9)
    assert all_pairs.bounds_counts(X[perm], Y[perm], 0.9, 1.1, 1e-12, 1e-9, 1e-9, 2e-9) == counts
    eps = float(np.median(pdist(X))) if n > 1 else 1.0
    assert all_pairs.count_within(X[perm], eps) == all_pairs.count_within(X, eps)
    src, dst = all_pairs.pairs_within(X[perm], eps)
    listed = {tuple(sorted((int(perm[a]), int(perm[b])))) for a, b in zip(src, dst)}
    s0, d0 = all_pairs.pairs_within(X, eps)
    assert listed == {(int(a), int(b)) for a, b in zip(s0, d0)}
    assert all_pairs.closest(X[perm])[0] == all_pairs.closest(X)[0]


def test_thresholds_met_exactly_decide_as_the_exact_distances():
    # a lattice: many pairs exactly at 1, sqrt(2), 2 ...; the screens on squared distances must
    # send them to the exact comparison
    X = np.array([[x, y] for x in range(12) for y in range(9)], dtype=float)
    d = pdist(X)
    for eps in (1.0, np.nextafter(1.0, 0), np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 3), 2.0, 0.0):
        assert all_pairs.count_within(X, eps) == np.count_nonzero(d <= eps), eps
        i, j, (best, pair) = all_pairs.scan(X, eps)
        assert len(i) == np.count_nonzero(d <= eps) and best == d.min() and pair == (0, 1)
    # every ratio exactly 1.5 and 1.0: bounds met with equality, as the arrays say
    Y = X.copy()
    Y[: len(X) // 2] *= 1.5
    for K in (0.0, 5.0, 10.0 / 3.0, np.nextafter(5.0, 0)):
        for rtol, atol in ((0.0, 0.0), (1e-12, 0.0), (1e-12, 1e-9)):
            tolerances = dict(rtol=rtol, atol=atol)
            assert bounds_check_all_pairs(X, Y, 0.1, K, **tolerances) == bounds_check(
                pdist(X), pdist(Y), 0.1, K, **tolerances
            ), (K, rtol, atol)
    U = np.zeros_like(X)
    U[5] = 1.0
    assert pairwise_lipschitz(NeighbourPairs(X), U) == pairwise_lipschitz(_arrays(X), U)
