"""The 3-D alpha filtration from qhull with numpy alpha values, against gudhi's AlphaComplex."""

import gudhi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn.topology import alpha_diagram, betti_from_diagram, betti_numbers
from particledyn.topology import betti as betti_module
from particledyn.topology.alpha_filtration import circumspheres, delaunay_alpha_tree


def clouds():
    rng = np.random.default_rng(7)
    sphere = rng.normal(size=(300, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    grid = np.stack(np.meshgrid(*[np.arange(5.0)] * 3), -1).reshape(-1, 3)
    return {
        "gauss": rng.normal(size=(400, 3)),
        "cube": rng.uniform(size=(400, 3)),
        "clusters": np.concatenate([rng.normal(c, 0.05, size=(100, 3)) for c in ((0, 0, 0), (1, 0, 0), (0, 1, 1))]),
        "sphere_noise": sphere + 0.01 * rng.normal(size=sphere.shape),
        "jittered_grid": grid + 1e-3 * rng.normal(size=grid.shape),
        "flat_slab": rng.uniform(size=(300, 3)) * [1.0, 1.0, 1e-3],
    }


def gudhi_values(X, max_alpha_square=np.inf):
    tree = gudhi.AlphaComplex(points=X, precision="safe").create_simplex_tree(max_alpha_square=max_alpha_square)
    return {tuple(s): f for s, f in tree.get_simplices()}


def gudhi_diagram(X, max_dim, max_radius, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(betti_module, "delaunay_alpha_tree", lambda *args: None)
        return alpha_diagram(X, max_dim, max_radius)


def same_diagram(a, b):
    if a.shape != b.shape:
        return False
    a, b = a[np.lexsort(a.T[::-1])], b[np.lexsort(b.T[::-1])]
    return np.array_equal(a[:, 0], b[:, 0]) and np.allclose(a[:, 1:], b[:, 1:], rtol=1e-9, atol=1e-14)


# --- circumspheres: known answers and the defining properties ----------------------------------


def test_circumspheres_known_answers():
    P = np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2]])
    for simplex, centre, r2 in (([0, 1], [1, 0, 0], 1), ([0, 1, 2], [1, 1, 0], 2), ([0, 1, 2, 3], [1, 1, 1], 3)):
        c, s2 = circumspheres(P, np.array([simplex]))  # right angles at vertex 0
        np.testing.assert_allclose(c, [centre], atol=1e-15)
        assert s2[0] == pytest.approx(r2, rel=1e-15)
    a = np.sqrt(8.0)  # a regular tetrahedron of edge a: the centroid, R^2 = 3 a^2 / 8
    T = np.array([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    c, r2 = circumspheres(T, np.array([[0, 1, 2, 3]]))
    np.testing.assert_allclose(c, [[0, 0, 0]], atol=1e-15)
    assert r2[0] == pytest.approx(3 * a * a / 8, rel=1e-15)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_circumspheres_are_equidistant_and_in_the_affine_hull(k):
    rng = np.random.default_rng(k)
    P = rng.normal(size=(60, 3))
    S = np.array([rng.choice(60, k + 1, replace=False) for _ in range(200)])
    c, r2 = circumspheres(P, S)
    d2 = ((P[S] - c[:, None, :]) ** 2).sum(axis=2)  # plain numpy: every vertex at distance R
    np.testing.assert_allclose(d2, np.repeat(r2[:, None], k + 1, axis=1), rtol=1e-9)
    E = P[S[:, 1:]] - P[S[:, :1]]
    for i in range(len(S)):  # c - p0 in the span of the edge vectors
        lam, *_ = np.linalg.lstsq(E[i].T, c[i] - P[S[i, 0]], rcond=None)
        np.testing.assert_allclose(E[i].T @ lam, c[i] - P[S[i, 0]], atol=1e-9)


# --- the filtration, simplex by simplex, against gudhi -------------------------------------------


@pytest.mark.parametrize("name", list(clouds()))
def test_every_alpha_value_equals_gudhis(name):
    X = clouds()[name]
    tree = delaunay_alpha_tree(X, np.inf, 2)
    assert tree is not None
    ours = {tuple(s): f for s, f in tree.get_simplices()}
    theirs = gudhi_values(X)
    assert set(ours) == set(theirs)
    keys = sorted(theirs)
    np.testing.assert_allclose([ours[s] for s in keys], [theirs[s] for s in keys], rtol=1e-9, atol=1e-15)


def test_the_truncation_keeps_gudhis_simplices():
    X = clouds()["clusters"]
    tree = delaunay_alpha_tree(X, 0.05**2, 2)
    assert {tuple(s) for s, _ in tree.get_simplices()} == set(gudhi_values(X, 0.05**2))


def test_own_radii_alone_are_not_the_alpha_values():
    """The comparison can fail: the Gabriel rule changes edge values on a random cloud."""
    X = clouds()["gauss"]
    theirs = gudhi_values(X)
    edges = np.array([s for s in theirs if len(s) == 2])
    _, own = circumspheres(X, edges)
    assert not np.allclose(own, [theirs[tuple(e)] for e in edges], rtol=1e-9)


@pytest.mark.parametrize("name", list(clouds()))
@pytest.mark.parametrize("max_radius", [0.03, 0.1, np.inf])
def test_diagrams_and_betti_numbers_equal_gudhis(name, max_radius, monkeypatch):
    X = clouds()[name]
    ours = alpha_diagram(X, 2, max_radius)
    theirs = gudhi_diagram(X, 2, max_radius, monkeypatch)
    assert same_diagram(ours, theirs)
    scales = np.array([0.01, 0.03, 0.05]) if np.isfinite(max_radius) else np.array([0.05, 0.2, 0.5])
    scales = scales[scales <= max_radius]
    assert np.array_equal(betti_from_diagram(ours, scales, 2), betti_from_diagram(theirs, scales, 2))


def test_max_dim_one_leaves_out_tetrahedra(monkeypatch):
    X = clouds()["cube"]
    assert delaunay_alpha_tree(X, np.inf, 1).dimension() == 2
    assert same_diagram(alpha_diagram(X, 1, 0.2), gudhi_diagram(X, 1, 0.2, monkeypatch))


@pytest.mark.parametrize(
    "X",
    [
        np.random.default_rng(0).normal(size=(40, 2)),  # 2-D: gudhi's triangulation is the faster
        np.c_[np.random.default_rng(1).normal(size=(40, 2)), np.zeros(40)],  # coplanar
        np.random.default_rng(2).normal(size=(40, 3))[[*range(40), 3]],  # a repeated point
        np.random.default_rng(3).normal(size=(4, 3)),  # too few for a tetrahedralisation
    ],
)
def test_gudhi_takes_what_qhull_would_not_triangulate(X, monkeypatch):
    assert delaunay_alpha_tree(X, np.inf, 2) is None
    assert same_diagram(alpha_diagram(X, 2), gudhi_diagram(X, 2, np.inf, monkeypatch))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(5, 80), r=st.floats(0.05, 2.0))
def test_random_clouds_match_gudhi(seed, n, r):
    X = np.random.default_rng(seed).normal(size=(n, 3))
    ours = alpha_diagram(X, 2, r)
    tree = gudhi.AlphaComplex(points=X, precision="safe").create_simplex_tree(max_alpha_square=r * r)
    tree.compute_persistence(homology_coeff_field=2, persistence_dim_max=False)
    for k in range(3):
        iv = np.asarray(tree.persistence_intervals_in_dimension(k)).reshape(-1, 2)
        iv = np.sqrt(iv[iv[:, 1] > iv[:, 0]])
        mine = ours[ours[:, 0] == k, 1:]
        assert len(mine) == len(iv)
        np.testing.assert_allclose(np.sort(mine, axis=0), np.sort(iv, axis=0), rtol=1e-9, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(5, 120))
def test_a_permutation_of_the_particles_permutes_the_filtration(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    perm = rng.permutation(n)
    a = {tuple(s): f for s, f in delaunay_alpha_tree(X, np.inf, 2).get_simplices()}
    b = {tuple(sorted(perm[list(s)])): f for s, f in delaunay_alpha_tree(X[perm], np.inf, 2).get_simplices()}
    assert set(a) == set(b)
    np.testing.assert_allclose([b[s] for s in sorted(a)], [a[s] for s in sorted(a)], rtol=1e-12)
    assert np.array_equal(
        betti_numbers(X, [0.3, 0.6], 2, "alpha").betti, betti_numbers(X[perm], [0.3, 0.6], 2, "alpha").betti
    )
