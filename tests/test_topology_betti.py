"""Betti numbers of known clouds, agreement with ripser, landmarks on dense samples."""

import warnings

import gudhi
import numpy as np
import pytest
import ripser
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist, squareform

from particledyn.topology import (
    alpha_diagram,
    betti_from_diagram,
    betti_numbers,
    cloud_diameter,
    resolve_scales,
    rips_diagram,
)

# --- samplers (the tests' own; the project's cloud generators live elsewhere) ---------------


def circle(n, rng, center=(0.0, 0.0), radius=1.0):
    t = rng.uniform(0, 2 * np.pi, n)
    return np.c_[center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)]


def sphere(n, rng):
    x = rng.normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def torus(n_major, n_minor, rng, R=2.0, r=0.7):
    """Jittered angle grid on a torus of radii R, r in R^3."""
    u, v = np.meshgrid(
        np.linspace(0, 2 * np.pi, n_major, endpoint=False), np.linspace(0, 2 * np.pi, n_minor, endpoint=False)
    )
    u = u.ravel() + rng.uniform(-0.02, 0.02, u.size)
    v = v.ravel() + rng.uniform(-0.02, 0.02, v.size)
    return np.c_[(R + r * np.cos(v)) * np.cos(u), (R + r * np.cos(v)) * np.sin(u), r * np.sin(v)]


def genus2_region(spacing, rng):
    """Jittered grid on the disk of radius 3 minus two disks of radius 0.8 at (+-1.3, 0)."""
    g = np.arange(-3, 3 + spacing / 2, spacing)
    x, y = np.meshgrid(g, g)
    P = np.c_[x.ravel(), y.ravel()] + rng.uniform(-0.1, 0.1, (x.size, 2)) * spacing
    keep = (
        (np.hypot(P[:, 0], P[:, 1]) <= 3)
        & (np.hypot(P[:, 0] - 1.3, P[:, 1]) >= 0.8)
        & (np.hypot(P[:, 0] + 1.3, P[:, 1]) >= 0.8)
    )
    return P[keep]


def ripser_betti(X, r, max_dim):
    """Independent computation: ripser.py (dense, own distances), b_k = #{birth <= r < death}."""
    with warnings.catch_warnings():  # ripser warns about square or wide point clouds
        warnings.simplefilter("ignore", UserWarning)
        dgms = ripser.ripser(X, maxdim=max_dim, thresh=1.01 * r)["dgms"]
    return np.array([np.count_nonzero((d[:, 0] <= r) & (d[:, 1] > r)) for d in dgms])


SHAPES = {
    # name: (sampler(rng), Rips edge length, expected (b0, b1, b2))
    "circle": (lambda rng: circle(200, rng), 0.5, (1, 1, 0)),
    "two circles": (lambda rng: np.r_[circle(150, rng), circle(150, rng, (5.0, 0.0))], 0.5, (2, 2, 0)),
    "sphere": (lambda rng: sphere(800, rng), 0.5, (1, 0, 1)),
    "torus": (lambda rng: torus(60, 20, rng), 0.5, (1, 2, 1)),
    "genus-2 region": (lambda rng: genus2_region(0.15, rng), 0.35, (1, 2, 0)),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_known_clouds_rips(name):
    sample, r, expected = SHAPES[name]
    X = sample(np.random.default_rng(7))
    res = betti_numbers(X, scale=r, max_dim=2)
    assert res.betti.tolist() == [list(expected)]
    assert res.betti.tolist() == [ripser_betti(X, r, 2).tolist()]


@pytest.mark.parametrize("name", ["circle", "two circles", "sphere", "torus"])
def test_known_clouds_alpha(name):
    # Union of balls of radius r/2 = balls meeting pairwise where Rips(r) has an edge.
    sample, r, expected = SHAPES[name]
    X = sample(np.random.default_rng(8))
    assert betti_numbers(X, scale=r / 2, complex="alpha").betti.tolist() == [list(expected)]


def test_adaptive_scale_is_quarter_diameter_and_half_that_for_alpha():
    X = sphere(800, np.random.default_rng(1))
    diam = pdist(X).max()
    assert cloud_diameter(X) == pytest.approx(diam, rel=1e-12)
    res = betti_numbers(X)  # the paper's setting: Rips at diam / 4
    assert res.scales == pytest.approx([diam / 4], rel=1e-12)
    assert res.betti.tolist() == [[1, 0, 1]]
    assert resolve_scales("adaptive", 2.0, "alpha")[0] == pytest.approx(0.25)


def test_several_scales_read_one_diagram():
    X = circle(120, np.random.default_rng(2))
    scales = [0.01, 0.5, 2.5]
    res = betti_numbers(X, scale=scales, max_dim=1)
    assert res.betti.shape == (3, 2)
    assert res.betti[1].tolist() == [1, 1]
    assert res.betti[2].tolist() == [1, 0]
    assert res.betti[0, 0] > 1
    assert res.threshold == 2.5
    for s, r in enumerate(scales):
        assert res.betti[s].tolist() == ripser_betti(X, r, 1).tolist()


def test_diagram_is_truncated_at_the_threshold():
    X = circle(100, np.random.default_rng(3))
    D = rips_diagram(X, max_dim=1, thresh=0.5)
    finite = np.isfinite(D[:, 2])
    assert np.all(D[finite, 2] <= 0.5) and np.all(D[:, 1] <= 0.5)
    assert np.count_nonzero(~finite & (D[:, 0] == 1)) == 1  # the circle's loop, alive at 0.5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(2, 35),
    dim=st.sampled_from([2, 3, 4, 12]),
    r=st.floats(0.05, 2.0),
)
def test_rips_betti_agree_with_ripser_on_random_clouds(seed, n, dim, r):
    X = np.random.default_rng(seed).normal(size=(n, dim))
    # float32 filtration values in both: keep r away from every edge length.
    assume(np.min(np.abs(pdist(X) - r)) > 1e-5)
    res = betti_numbers(X, scale=r, max_dim=2)
    assert res.betti[0].tolist() == ripser_betti(X, r, 2).tolist()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 40), r=st.floats(0.05, 1.5))
def test_alpha_b0_is_components_of_the_ball_intersection_graph(seed, n, r):
    X = np.random.default_rng(seed).normal(size=(n, 3))
    d = squareform(pdist(X))
    assume(np.min(np.abs(pdist(X) - 2 * r)) > 1e-7)
    n_comp, _ = connected_components(d <= 2 * r, directed=False)
    assert betti_numbers(X, scale=r, complex="alpha").betti[0, 0] == n_comp


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(3, 40))
def test_betti_numbers_are_permutation_invariant(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    perm = rng.permutation(n)
    a = betti_numbers(X, scale=[0.3, 0.8, 1.5])
    b = betti_numbers(X[perm], scale=[0.3, 0.8, 1.5])
    assert np.array_equal(a.betti, b.betti)
    la = betti_numbers(X, scale=1.0, landmarks=max(2, n // 2))
    lb = betti_numbers(X[perm], scale=1.0, landmarks=max(2, n // 2))
    assert np.array_equal(perm[lb.indices], la.indices)
    assert np.array_equal(la.betti, lb.betti)


DENSE = {
    # name: (sampler(rng), Rips edge length, landmarks, expected)
    "circle": (lambda rng: circle(2000, rng), 0.5, 60, (1, 1, 0)),
    "sphere": (lambda rng: sphere(3000, rng), 0.45, 600, (1, 0, 1)),
    "torus": (lambda rng: torus(150, 40, rng), 0.45, 900, (1, 2, 1)),
    "genus-2 region": (lambda rng: genus2_region(0.08, rng), 0.5, 900, (1, 2, 0)),
}


@pytest.mark.parametrize("name", list(DENSE))
def test_landmark_betti_equal_full_cloud_betti_on_dense_samples(name):
    sample, r, n_landmarks, expected = DENSE[name]
    X = sample(np.random.default_rng(11))
    full = betti_numbers(X, scale=r)
    sub = betti_numbers(X, scale=r, landmarks=n_landmarks)
    assert full.betti.tolist() == [list(expected)]
    assert sub.betti.tolist() == full.betti.tolist()
    assert len(sub.indices) == n_landmarks
    assert 0 < sub.covering_radius < r / 2


def test_alpha_diagram_radius_units():
    # Two points at distance 2: the balls meet at radius 1, so H0 has a pair (0, 1).
    D = alpha_diagram(np.array([[0.0, 0.0], [2.0, 0.0]]), max_dim=1)
    h0 = D[D[:, 0] == 0]
    assert sorted(h0[:, 2].tolist()) == [pytest.approx(1.0), np.inf]


@pytest.mark.parametrize(
    "bad, err",
    [
        (dict(points=np.zeros((3,))), ValueError),
        (dict(points=np.array([[0.0, np.nan]])), ValueError),
        (dict(points=np.zeros((3, 2)), scale="diameter"), ValueError),
        (dict(points=np.zeros((3, 2)), scale=-1.0), ValueError),
        (dict(points=np.zeros((3, 2)), scale=object()), TypeError),
        (dict(points=np.zeros((3, 2)), complex="cech"), ValueError),
        (dict(points=np.zeros((3, 2)), max_dim=5), ValueError),
        (dict(points=np.zeros((3, 2)), landmarks=0), ValueError),
    ],
)
def test_bad_input_is_refused(bad, err):
    with pytest.raises(err):
        betti_numbers(**bad)


@pytest.mark.parametrize("n, dim", [(1, 3), (2, 2), (300, 3), (300, 20), (1500, 100), (40, 800)])
def test_cloud_diameter_matches_pdist(n, dim):
    X = np.random.default_rng(n * dim).normal(size=(n, dim)) + 3.0
    want = pdist(X).max() if n > 1 else 0.0
    assert cloud_diameter(X) == pytest.approx(want, rel=1e-12)


def test_cloud_diameter_of_a_merged_cloud_is_zero():
    assert cloud_diameter(np.full((3000, 30), 2.5)) == 0.0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 60), dim=st.sampled_from([2, 3]), r=st.floats(0.05, 1.5))
def test_alpha_fast_precision_gives_the_safe_betti_numbers(seed, n, dim, r):
    X = np.random.default_rng(seed).normal(size=(n, dim))
    fast = alpha_diagram(X, 2, precision="fast")
    safe = alpha_diagram(X, 2, precision="safe")
    assume(np.min(np.abs(safe[:, 1:][np.isfinite(safe[:, 1:])] - r), initial=1.0) > 1e-9)
    assert np.array_equal(betti_from_diagram(fast, r, 2), betti_from_diagram(safe, r, 2))


def _projective_plane(n, seed):
    from particledyn.clouds import sphere

    x, y, z = sphere(n, k=2, seed=seed).T
    return np.column_stack([x * x - y * y, x * y, x * z, y * z])  # S^2 / +-1 embedded in R^4


def test_coefficient_field_changes_the_projective_plane():
    points = _projective_plane(600, 0)
    assert tuple(betti_numbers(points, 0.4, max_dim=2).betti[0]) == (1, 1, 1)  # Z/2: H1 = H2 = Z/2
    assert tuple(betti_numbers(points, 0.4, max_dim=2, coeff=11).betti[0]) == (1, 0, 0)
    # the alpha complex takes the field too: at radius 0.25 this sample's H1, H2 differ over Z/2 and Z/3
    assert tuple(betti_numbers(points, 0.25, max_dim=2, complex="alpha").betti[0]) == (1, 2, 1)
    assert tuple(betti_numbers(points, 0.25, max_dim=2, complex="alpha", coeff=3).betti[0]) == (1, 1, 0)
    with pytest.raises(ValueError, match="coeff=4: expected a prime"):
        betti_numbers(points, 0.4, coeff=4)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_authors_recipe_equals_gudhi_rips(seed):
    """high-dim/topology.py of the paper's code: gudhi Rips at diameter/4, dimension 3, Z/11."""
    from scipy.spatial.distance import pdist

    from particledyn.clouds import sphere, torus

    for points in (_projective_plane(150, seed), torus(200, seed=seed), sphere(150, k=2, seed=seed)):
        eps = pdist(points).max() * 0.25
        tree = gudhi.RipsComplex(points=points, max_edge_length=eps).create_simplex_tree(max_dimension=3)
        tree.persistence(homology_coeff_field=11)
        theirs = tuple(tree.betti_numbers()[:3])
        ours = betti_numbers(points, "adaptive", max_dim=2, complex="rips", coeff=11).betti[0]
        assert tuple(int(b) for b in ours) == theirs + (0,) * (3 - len(theirs))
