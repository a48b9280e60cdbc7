"""The numba alpha engine (qhull + alpha values + persistence) against gudhi's AlphaComplex."""

from __future__ import annotations

import gudhi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn.topology.alpha_filtration import DegenerateCloud, alpha_filtration
from particledyn.topology.betti import alpha_diagram, betti_numbers
from particledyn.topology.diagrams import betti_from_diagram

RTOL = 1e-12
# gudhi's "fast" radius of a short edge goes through its midpoint: a few ulps of the coordinates
# (measured: 6e-12 relative on a 5e-5 edge of a unit cloud; ours was the exact value's neighbour)
ATOL_ULPS = 8 * np.finfo(float).eps


def _rows(D, k, rounding=0.0):
    a = D[D[:, 0] == k][:, 1:]
    death = np.where(np.isfinite(a[:, 1]), a[:, 1], 0.0)
    a = a[~(np.isfinite(a[:, 1]) & (a[:, 1] - a[:, 0] <= rounding * death))]
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def assert_same_diagram(A, B, rtol=RTOL, scale=4.0, rounding=0.0):
    """Per dimension, pairs sorted by (birth, death), equal to ``rtol`` (inf equal to inf) and a
    few ulps of the coordinates' ``scale``; pairs of relative persistence <= ``rounding`` are
    left out of both."""
    for k in range(4):
        a, b = _rows(A, k, rounding), _rows(B, k, rounding)
        assert a.shape == b.shape, f"H{k}: {len(a)} pairs against {len(b)}"
        assert np.array_equal(np.isinf(a), np.isinf(b)), f"H{k}: deaths inf differ"
        fin = np.isfinite(a)
        np.testing.assert_allclose(a[fin], b[fin], rtol=rtol, atol=ATOL_ULPS * scale, err_msg=f"H{k}")


def gaussian(seed, n, dim):
    return np.random.default_rng(seed).standard_normal((n, dim))


def moebius_cloud(seed, n_edge=600, n_inner=80, w=0.4):
    """Points dense on a Moebius band's boundary, sparse inside: its H1 depends on the field."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, 4 * np.pi, n_edge)
    u = np.concatenate([s % (2 * np.pi), rng.uniform(0, 2 * np.pi, n_inner)])
    t = np.concatenate([np.where(s < 2 * np.pi, w, -w), rng.uniform(-0.8 * w, 0.8 * w, n_inner)])
    r = 1.0 + t * np.cos(u / 2)
    X = np.stack([r * np.cos(u), r * np.sin(u), t * np.sin(u / 2)], -1)
    return X + 1e-3 * rng.standard_normal(X.shape)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    dim=st.sampled_from([2, 3]),
    n=st.integers(5, 300),
    max_dim=st.integers(0, 2),
    coeff=st.sampled_from([2, 3, 11]),
    cut=st.sampled_from([None, 0.1, 0.5, 0.9]),
    uniform=st.booleans(),
)
def test_random_clouds_match_gudhi(seed, dim, n, max_dim, coeff, cut, uniform):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, dim)) if uniform else rng.standard_normal((n, dim))
    radius = np.inf
    if cut is not None:  # prune between two values near a quantile (not on one: rounding)
        full = alpha_diagram(X, 2, engine="gudhi")[:, 1:]
        values = np.unique(full[np.isfinite(full)])
        i = int(cut * (len(values) - 2))
        radius = float(values[i] + values[i + 1]) / 2
    ours = alpha_diagram(X, max_dim, radius, coeff=coeff, engine="numba")
    ref = alpha_diagram(X, max_dim, radius, coeff=coeff, engine="gudhi")
    # gudhi's "fast" values can split an edge from the triangle it is attached to by an ulp: a
    # pair of persistence 2e-16 that its "safe" and "exact" values do not have (seen at N = 1433)
    assert_same_diagram(ours, ref, scale=np.abs(X).max(), rounding=RTOL)
    assert np.all(ours[:, 2] > ours[:, 1]) and np.all(ours[:, 1] <= radius)


@pytest.mark.parametrize("dim", [2, 3])
def test_every_simplex_value_is_gudhis(dim):
    X = gaussian(4, 400, dim)
    f = alpha_filtration(X)
    tree = gudhi.AlphaComplex(points=X, precision="fast").create_simplex_tree()
    ref = {tuple(s): v for s, v in tree.get_simplices()}
    ours = {tuple(c): v for c, v in zip(np.sort(f.cells, axis=1).tolist(), f.cell_value)}
    ours |= {tuple(e): v for e, v in zip(f.edge_vertices.tolist(), f.edge_value)}
    ours |= {tuple(t): v for t, v in zip(f.facet_vertices.tolist(), f.facet_value)}
    ours |= {(v,): 0.0 for v in range(len(X))}
    assert ours.keys() == ref.keys()
    keys = sorted(ref)
    np.testing.assert_allclose([ours[k] for k in keys], [ref[k] for k in keys], rtol=RTOL, atol=0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dim=st.sampled_from([2, 3]), n=st.integers(6, 200))
def test_diagram_does_not_depend_on_the_order_of_the_points(seed, dim, n):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim))
    perm = rng.permutation(n)
    assert_same_diagram(alpha_diagram(X[perm], 2, engine="numba"), alpha_diagram(X, 2, engine="numba"))


def test_a_rounding_pair_of_gudhis_fast_values_is_not_ours():
    rng = np.random.default_rng(93)
    X = rng.uniform(-1, 1, (int(rng.integers(5, 1500)), 3))  # 1433 points
    ours, fast = alpha_diagram(X, 2, engine="numba"), alpha_diagram(X, 2, engine="gudhi")
    exact = alpha_diagram(X, 2, engine="gudhi", precision="exact")
    assert len(_rows(fast, 1)) == len(_rows(ours, 1)) + 1 == len(_rows(exact, 1)) + 1
    assert_same_diagram(ours, exact, rtol=1e-11, scale=np.abs(X).max())


def test_same_bits_for_the_same_cloud():
    X = gaussian(7, 500, 3)
    a, b = alpha_diagram(X, 2, 0.4, engine="numba"), alpha_diagram(X, 2, 0.4, engine="numba")
    assert a.tobytes() == b.tobytes()


def test_h1_in_3d_depends_on_the_field_as_gudhis():
    X = moebius_cloud(0)
    z2, z3 = alpha_diagram(X, 1, coeff=2, engine="numba"), alpha_diagram(X, 1, coeff=3, engine="numba")
    assert not np.array_equal(_rows(z2, 1), _rows(z3, 1))  # the case is one where the field matters
    assert_same_diagram(z2, alpha_diagram(X, 1, coeff=2, engine="gudhi"))
    assert_same_diagram(z3, alpha_diagram(X, 1, coeff=3, engine="gudhi"))


@pytest.mark.parametrize("dim", [2, 3])
def test_betti_numbers_at_scales_equal_gudhis(dim):
    X = gaussian(11, 1024, dim)
    res = betti_numbers(X, scale=[0.05, 0.1, 0.2, 0.3], max_dim=2, complex="alpha")
    ref = alpha_diagram(X, 2, 0.3, engine="gudhi")
    assert np.array_equal(res.betti, betti_from_diagram(ref, res.scales, 2))
    assert_same_diagram(res.diagram, ref)


def test_exact_duplicates_are_one_vertex_as_in_gudhi():
    X = gaussian(3, 60, 3)
    X = np.concatenate([X, X[[0, 5, 5, 17]]])
    assert_same_diagram(alpha_diagram(X, 2, engine="numba"), alpha_diagram(X, 2, engine="gudhi"))
    Y = gaussian(3, 60, 2)
    Y = np.concatenate([Y, Y[:3]])
    assert_same_diagram(alpha_diagram(Y, 1, engine="numba"), alpha_diagram(Y, 1, engine="gudhi"))


def test_symmetric_but_decidable_cloud():
    # a regular 12-gon and its centre: every Delaunay test is clear (no four points co-circular)
    X = np.concatenate([np.stack([np.cos(a), np.sin(a)], -1) for a in [2 * np.pi * np.arange(12) / 12]])
    X = np.concatenate([X, [[0.0, 0.0]]])
    assert_same_diagram(alpha_diagram(X, 1, engine="numba"), alpha_diagram(X, 1, engine="gudhi"))


def _grid(dim, k):
    return np.stack(np.meshgrid(*[np.arange(k, dtype=float)] * dim), -1).reshape(-1, dim)


def _polygon(m):
    a = 2 * np.pi * np.arange(m) / m
    return np.concatenate([np.stack([np.cos(a), np.sin(a)], -1), [[0.0, 0.0]]])


DEGENERATE = {
    "grid 2-D": _grid(2, 6),
    "grid 3-D": _grid(3, 4) * 0.1,
    "co-circular": _polygon(12)[:-1],
    "co-spherical": np.concatenate([np.eye(3), -np.eye(3), [[0.0, 0.0, 0.0]]]),
    "collinear 2-D": np.stack([np.arange(8.0), 2 * np.arange(8.0)], -1),
    "coplanar 3-D": np.column_stack([gaussian(1, 20, 2), np.zeros(20)]),
    "3 points 2-D": gaussian(2, 3, 2),
    "4 points 3-D": gaussian(2, 4, 3),
    "one point": np.zeros((1, 3)),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_clouds_fall_back_to_gudhi_and_numba_refuses_them(name):
    X = DEGENERATE[name]
    with pytest.raises(ValueError, match="engine='numba' cannot decide this cloud") as err:
        alpha_diagram(X, 2, engine="numba")
    assert "\n" not in str(err.value)
    with pytest.raises(DegenerateCloud):
        alpha_filtration(X)
    assert_same_diagram(alpha_diagram(X, 2), alpha_diagram(X, 2, engine="gudhi"))


def test_engine_is_checked():
    X = gaussian(0, 20, 2)
    with pytest.raises(ValueError, match=r"engine='cgal': expected one of \('auto', 'numba', 'gudhi'\)"):
        alpha_diagram(X, engine="cgal")
    with pytest.raises(ValueError, match="expected precision='fast' and a 2-D or 3-D cloud"):
        alpha_diagram(gaussian(0, 20, 4), engine="numba")
    with pytest.raises(ValueError, match="expected precision='fast'"):
        alpha_diagram(X, precision="exact", engine="numba")
    assert_same_diagram(
        alpha_diagram(gaussian(0, 40, 4), 2), alpha_diagram(gaussian(0, 40, 4), 2, engine="gudhi")
    )
