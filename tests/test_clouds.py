"""Tests of particledyn.clouds: topology (Betti numbers), geometry, placement, registry."""

import gudhi
import numpy as np
import pytest
from gph import ripser_parallel
from hypothesis import given, settings
from hypothesis import strategies as st
from ripser import ripser

from particledyn import clouds


def rips_betti(points, r, maxdim=1):
    """Rips Betti numbers at edge length r: pairs with birth <= r < death (ripser)."""
    dgms = ripser(points, maxdim=maxdim, thresh=1.01 * r)["dgms"]
    return tuple(int(np.sum((d[:, 0] <= r) & (d[:, 1] > r))) for d in dgms)


def alpha_betti(points, r):
    """Betti numbers b0..b2 of the union of balls of radius r (alpha complex, gudhi)."""
    tree = gudhi.AlphaComplex(points=points).create_simplex_tree(max_alpha_square=1.01 * r * r)
    tree.compute_persistence(persistence_dim_max=True)
    return tuple(
        sum(1 for b, d in tree.persistence_intervals_in_dimension(k) if b <= r * r < d) for k in range(3)
    )


# ---------------------------------------------------------------------------
# Betti numbers of every generator, at a stated scale, on two seeds each
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("genus", [0, 1, 2, 3])
def test_genus_region_betti_rips(genus, seed):
    # 500 points, size 1: holes of radius >= 1/6, so Rips at edge 0.3 sees every hole
    pts = clouds.genus_region(500, genus=genus, seed=seed)
    assert rips_betti(pts, 0.3) == clouds.known_betti({"shape": "genus_region", "n": 500, "genus": genus})[:2]
    assert clouds.known_betti({"shape": "genus_region", "n": 500, "genus": genus}) == (1, genus, 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_disjoint_regions_betti(seed):
    pts = clouds.disjoint_regions(500, genus=1, count=2, seed=seed)
    assert rips_betti(pts, 0.3) == (2, 2)
    assert alpha_betti(pts, 0.12) == (2, 2, 0)
    assert clouds.known_betti({"shape": "disjoint_regions", "n": 500}) == (2, 2, 0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("genus,radius", [(1, 0.2), (2, 0.15), (3, 0.12)])
def test_genus_surface_betti_alpha(genus, radius, seed):
    pts = clouds.genus_surface(1500, genus=genus, seed=seed)
    assert alpha_betti(pts, radius) == (1, 2 * genus, 1)
    assert clouds.known_betti({"shape": "genus_surface", "n": 1500, "genus": genus}) == (1, 2 * genus, 1)


def test_genus_surface_zero_is_sphere():
    np.testing.assert_array_equal(clouds.genus_surface(50, genus=0, seed=4), clouds.sphere(50, k=2, seed=4))


@pytest.mark.parametrize("seed", [0, 1])
def test_torus_betti_alpha_and_rips(seed):
    assert alpha_betti(clouds.torus(1000, seed=seed), 0.2) == (1, 2, 1)
    # the same with Rips (giotto-ph, simplices up to dimension 3), edge length 0.42
    pts = clouds.torus(600, seed=seed)
    dgms = ripser_parallel(pts, maxdim=2, thresh=0.43, n_threads=2)["dgms"]
    assert tuple(int(np.sum((d[:, 0] <= 0.42) & (d[:, 1] > 0.42))) for d in dgms) == (1, 2, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_sphere_betti(seed):
    assert alpha_betti(clouds.sphere(1000, k=2, seed=seed), 0.25) == (1, 0, 1)
    assert rips_betti(clouds.sphere(200, k=1, seed=seed), 0.4) == (1, 1)
    assert rips_betti(clouds.sphere(40, k=0, seed=seed), 0.5) == (2, 0)
    assert clouds.known_betti({"shape": "sphere", "n": 1, "k": 0}) == (2, 0, 0)
    assert clouds.known_betti({"shape": "sphere", "n": 1, "k": 1}) == (1, 1, 0)
    assert clouds.known_betti({"shape": "sphere", "n": 1}) == (1, 0, 1)


def test_three_sphere_betti():
    # S^3 in R^4: no 2-cycle (unlike S^2), one component, no loop
    assert alpha_betti(clouds.sphere(1200, k=3, seed=0), 0.45) == (1, 0, 0)
    assert clouds.known_betti({"shape": "sphere", "n": 1, "k": 3}) == (1, 0, 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_circle_and_gaussian_betti(seed):
    assert rips_betti(clouds.circle(200, seed=seed), 0.4) == (1, 1)
    assert rips_betti(clouds.gaussian(300, dim=2, seed=seed), 2.5) == (1, 0)
    assert clouds.known_betti({"shape": "circle", "n": 1}) == (1, 1, 0)
    assert clouds.known_betti({"shape": "gaussian", "n": 1}) == (1, 0, 0)


def test_union_betti_is_sum():
    spec = {
        "shape": "union",
        "parts": [
            {"shape": "circle", "n": 200, "center": [-3.0, 0.0]},
            {"shape": "genus_region", "n": 500, "genus": 2, "center": [3.0, 0.0]},
        ],
    }
    assert clouds.known_betti(spec) == (2, 3, 0)
    assert rips_betti(clouds.make_cloud(spec), 0.3) == (2, 3)


# ---------------------------------------------------------------------------
# geometry: points lie on the documented shape, uniformly
# ---------------------------------------------------------------------------


def test_genus_region_matches_documented_geometry():
    # genus 2, size 1: stadium of half-length 1, half-height 1/2 (radius 1/2 around the
    # segment [-1/2, 1/2]), holes of radius 1/4 centred at (+-1/2, 0)
    pts = clouds.genus_region(3000, genus=2, size=1.0, seed=3)
    dist_spine = np.hypot(np.maximum(np.abs(pts[:, 0]) - 0.5, 0), pts[:, 1])
    assert np.all(dist_spine <= 0.5 + 1e-12)
    for hx in (-0.5, 0.5):
        assert np.all(np.hypot(pts[:, 0] - hx, pts[:, 1]) > 0.25)
    # the bound is attained along the long axis
    assert np.linalg.norm(pts, axis=1).max() == pytest.approx(1.0, abs=0.03)
    # genus 1 is the annulus 1/2 <= |x| <= 1
    radii = np.linalg.norm(clouds.genus_region(500, genus=1, seed=0), axis=1)
    assert radii.min() > 0.5 and radii.max() <= 1.0


def test_disk_is_uniform_in_area():
    radii = np.linalg.norm(clouds.genus_region(4000, genus=0, size=2.0, seed=5), axis=1)
    assert radii.max() <= 2.0
    # P(|x| < size/2) = 1/4 for a uniform disk; binomial std ~0.007
    assert np.mean(radii < 1.0) == pytest.approx(0.25, abs=0.03)


def test_torus_is_uniform_in_area():
    size, ratio = 1.0, 0.4
    big = size / (1 + ratio)
    small = ratio * big
    pts = clouds.torus(6000, size=size, minor_ratio=ratio, seed=2)
    rho = np.hypot(pts[:, 0], pts[:, 1])
    np.testing.assert_allclose((rho - big) ** 2 + pts[:, 2] ** 2, small**2, atol=1e-12)
    # outer half (rho > R) holds (pi R + 2 r) / (2 pi R) of the area, not 1/2
    assert np.mean(rho > big) == pytest.approx(0.5 + small / (np.pi * big), abs=0.025)


def test_genus_surface_points_on_boundary_of_union_of_tori():
    genus, size = 2, 1.0
    scale = size / (genus + 0.5)  # documented: half-length (genus - 1) + 1 + 0.5 in unit frame
    pts = clouds.genus_surface(2000, genus=genus, size=size, seed=1) / scale
    centres = np.array([-1.0, 1.0])
    level = np.stack(
        [(np.hypot(pts[:, 0] - c, pts[:, 1]) - 1.0) ** 2 + pts[:, 2] ** 2 - 0.25 for c in centres]
    )
    on_some = np.min(np.abs(level), axis=0) < 1e-9
    inside_other = np.sum(level < -1e-9, axis=0) > 0
    assert np.all(on_some) and not np.any(inside_other)
    # both tori carry points, equally by symmetry
    assert np.mean(pts[:, 0] > 0) == pytest.approx(0.5, abs=0.04)
    assert np.linalg.norm(pts * scale, axis=1).max() <= size + 1e-12


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_sphere_radius_and_mean(k):
    pts = clouds.sphere(3000, k=k, size=1.5, seed=0)
    assert pts.shape == (3000, k + 1)
    np.testing.assert_allclose(np.linalg.norm(pts, axis=1), 1.5, rtol=1e-12)
    assert np.all(np.abs(pts.mean(axis=0)) < 0.1)


def test_gaussian_moments():
    pts = clouds.gaussian(20000, dim=3, size=0.5, center=[1.0, -2.0, 0.0], seed=1)
    np.testing.assert_allclose(pts.mean(axis=0), [1.0, -2.0, 0.0], atol=0.02)
    np.testing.assert_allclose(np.cov(pts.T), 0.25 * np.eye(3), atol=0.01)


@pytest.mark.parametrize(
    "gen",
    [
        clouds.genus_region,
        clouds.genus_surface,
        clouds.torus,
        clouds.sphere,
        clouds.circle,
        clouds.disjoint_regions,
    ],
)
def test_bounded_by_size(gen):
    center = np.arange(10, dtype=float)
    pts = gen(
        400, size=0.7, center=center, rotation="random", dim=10, embed_rule="random_orthonormal", seed=9
    )
    assert pts.shape == (400, 10) and pts.dtype == np.float64
    assert np.linalg.norm(pts - center, axis=1).max() <= 0.7 + 1e-12


# ---------------------------------------------------------------------------
# placement: rotation, embedding, centre
# ---------------------------------------------------------------------------


def pairwise(x):
    return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)


def test_embed_first_layout():
    native = clouds.sphere(30, k=2, seed=0)
    out = clouds.sphere(30, k=2, dim=794, seed=0)
    assert out.shape == (30, 794)
    np.testing.assert_array_equal(out[:, :3], native)
    assert not np.any(out[:, 3:])


def test_embed_random_orthonormal_is_isometry_and_generic():
    native = clouds.genus_surface(200, genus=2, seed=0)
    out = clouds.genus_surface(200, genus=2, dim=74, embed_rule="random_orthonormal", seed=0)
    np.testing.assert_allclose(pairwise(out), pairwise(native), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(native, axis=1), atol=1e-12)
    assert np.linalg.matrix_rank(out) == 3
    assert np.all(np.abs(out).max(axis=0) > 0)  # every coordinate used
    # same Rips diagrams in R^74 as in R^3
    assert rips_betti(out[:150], 0.4) == rips_betti(native[:150], 0.4)


def test_embedding_subspace_independent_of_n():
    a = clouds.sphere(10, k=2, dim=20, embed_rule="random_orthonormal", seed=3)
    b = clouds.sphere(25, k=2, dim=20, embed_rule="random_orthonormal", seed=3)
    basis = np.linalg.svd(b, full_matrices=False)[2][:3]  # span of b's points
    np.testing.assert_allclose(a - (a @ basis.T) @ basis, 0, atol=1e-12)


def test_embed_function_direct():
    pts = np.random.default_rng(0).standard_normal((5, 2))
    np.testing.assert_array_equal(clouds.embed(pts, 2), pts)
    q = clouds.embed(np.eye(3), 7, rule="random_orthonormal", seed=1)  # rows are the basis vectors
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)
    np.testing.assert_array_equal(q, clouds.embed(np.eye(3), 7, rule="random_orthonormal", seed=1))
    with pytest.raises(ValueError, match="rule"):
        clouds.embed(pts, 4, rule="last")
    with pytest.raises(ValueError, match="dim"):
        clouds.embed(pts, 1)
    with pytest.raises(ValueError, match="2-D"):
        clouds.embed(np.zeros(3), 4)


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(6))), st.sampled_from(["first", "random_orthonormal"]))
def test_embed_is_permutation_equivariant(perm, rule):
    pts = np.random.default_rng(1).standard_normal((6, 3))
    perm = np.array(perm)
    np.testing.assert_array_equal(
        clouds.embed(pts[perm], 8, rule, seed=2), clouds.embed(pts, 8, rule, seed=2)[perm]
    )


def test_rotation_forms():
    base = clouds.genus_region(100, genus=2, seed=0)
    rot = clouds.genus_region(100, genus=2, rotation=np.pi / 2, seed=0)
    np.testing.assert_allclose(rot, np.column_stack([-base[:, 1], base[:, 0]]), atol=1e-12)
    mat = clouds.random_rotation(3, seed=5)
    np.testing.assert_allclose(mat @ mat.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(mat) == pytest.approx(1.0)
    surf = clouds.genus_surface(100, seed=0)
    np.testing.assert_allclose(clouds.genus_surface(100, rotation=mat, seed=0), surf @ mat.T, atol=1e-12)
    rnd = clouds.genus_surface(100, rotation="random", seed=0)
    np.testing.assert_allclose(pairwise(rnd), pairwise(surf), atol=1e-12)
    assert not np.allclose(rnd, surf)
    with pytest.raises(ValueError, match="angle"):
        clouds.genus_surface(10, rotation=0.3)
    with pytest.raises(ValueError, match="orthogonal"):
        clouds.genus_region(10, rotation=[[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        clouds.torus(10, rotation=np.eye(2))
    with pytest.raises(ValueError, match="rotation"):
        clouds.torus(10, rotation="spin")


def test_center_and_size_scale():
    a = clouds.genus_region(200, genus=2, size=1.0, seed=4)
    b = clouds.genus_region(200, genus=2, size=3.0, center=[1.0, 2.0], seed=4)
    np.testing.assert_allclose(b, 3.0 * a + [1.0, 2.0], atol=1e-12)
    with pytest.raises(ValueError, match="center"):
        clouds.genus_region(10, center=[0.0, 0.0, 0.0])


# ---------------------------------------------------------------------------
# determinism and bad inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"shape": "genus_region", "n": 300, "genus": 2},
        {"shape": "disjoint_regions", "n": 301, "genus": 1, "count": 3},
        {"shape": "genus_surface", "n": 300, "genus": 2, "rotation": "random"},
        {"shape": "torus", "n": 300, "dim": 5, "embed": "random_orthonormal"},
        {"shape": "sphere", "n": 300, "k": 3},
        {"shape": "circle", "n": 300},
        {"shape": "gaussian", "n": 300, "dim": 4},
    ],
)
def test_deterministic_per_seed(spec):
    a = clouds.make_cloud({**spec, "seed": 7})
    b = clouds.make_cloud({**spec, "seed": 7})
    c = clouds.make_cloud({**spec, "seed": 8})
    assert a.shape[0] == spec["n"] and a.dtype == np.float64 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_make_cloud_matches_functions():
    spec = {
        "shape": "genus_surface",
        "n": 123,
        "genus": 3,
        "size": 2.0,
        "center": [0, 0, 0, 0, 1.0],
        "rotation": "random",
        "dim": 5,
        "embed": "random_orthonormal",
        "seed": [4, 2],
    }
    direct = clouds.genus_surface(
        123,
        genus=3,
        size=2.0,
        center=[0, 0, 0, 0, 1.0],
        rotation="random",
        dim=5,
        embed_rule="random_orthonormal",
        seed=[4, 2],
    )
    np.testing.assert_array_equal(clouds.make_cloud(spec), direct)
    parts = clouds.make_cloud(
        {"shape": "union", "parts": [{"shape": "circle", "n": 5}, {"shape": "circle", "n": 6}]}
    )
    assert parts.shape == (11, 2)
    assert not np.allclose(parts[:5], parts[5:10])  # parts without seed get different seeds
    spec = {"shape": "union", "parts": [{"shape": "circle", "n": 5}, {"shape": "circle", "n": 5, "seed": 1}]}
    seeded = clouds.make_cloud({**spec, "seed": 3})
    np.testing.assert_array_equal(seeded[:5], clouds.circle(5, seed=[3, 0]))
    np.testing.assert_array_equal(seeded[5:], clouds.circle(5, seed=1))


def test_disjoint_regions_counts():
    pts = clouds.disjoint_regions(301, genus=0, count=3, size=1.0, gap=1.0, seed=0)
    w = 1.0 / (3 + 2 * 0.5)
    # copies centred at -3w, 0, 3w with 101, 100, 100 points, in that order
    np.testing.assert_allclose(
        [pts[:101, 0].mean(), pts[101:201, 0].mean(), pts[201:, 0].mean()], [-3 * w, 0, 3 * w], atol=0.05
    )
    assert np.all(np.abs(pts[:101, 0] + 3 * w) <= w)


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"shape": "blob", "n": 3}, "'shape'"),
        ({"n": 3}, "'shape'"),
        ({"shape": "genus_region"}, "'n'"),
        ({"shape": "genus_region", "n": 3, "radius": 1.0}, "'radius'"),
        ({"shape": "torus", "n": 3, "genus": 1}, "'genus'"),
        ({"shape": "gaussian", "n": 3, "rotation": "random"}, "'rotation'"),
        ({"shape": "genus_region", "n": 0}, "n must be"),
        ({"shape": "genus_region", "n": 10, "genus": -1}, "genus must be"),
        ({"shape": "genus_region", "n": 10, "genus": 1.5}, "genus must be"),
        ({"shape": "genus_region", "n": 10, "size": -1.0}, "size must be"),
        ({"shape": "genus_region", "n": 10, "size": float("nan")}, "size must be"),
        ({"shape": "genus_region", "n": 10, "embed": "last", "dim": 3}, "'embed'"),
        ({"shape": "genus_region", "n": 10, "dim": 1}, "dim must be"),
        ({"shape": "genus_region", "n": 10, "seed": -1}, "seed"),
        ({"shape": "genus_region", "n": 10, "seed": 1.5}, "seed"),
        ({"shape": "torus", "n": 10, "minor_ratio": 1.5}, "minor_ratio"),
        ({"shape": "disjoint_regions", "n": 1, "count": 2}, "count"),
        ({"shape": "disjoint_regions", "n": 10, "gap": 0}, "gap"),
        ({"shape": "sphere", "n": 10, "k": -1}, "k must be"),
        ({"shape": "union", "parts": []}, "'parts'"),
        (
            {"shape": "union", "parts": [{"shape": "circle", "n": 3}, {"shape": "torus", "n": 3}]},
            "equal dimension",
        ),
        ({"shape": "union", "parts": [{"shape": "circle", "n": 3}], "dim": 3}, "'dim'"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        clouds.make_cloud(spec)


def test_bad_spec_type_and_known_betti_validation():
    with pytest.raises(TypeError, match="dict"):
        clouds.make_cloud([("shape", "circle")])
    with pytest.raises(ValueError, match="'radius'"):
        clouds.known_betti({"shape": "circle", "n": 3, "radius": 1})
    with pytest.raises(ValueError, match="genus"):
        clouds.known_betti({"shape": "genus_surface", "n": 3, "genus": -2})


# ---------------------------------------------------------------------------
# the authors' starts (GitHub YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning,
# low-dim/models/initializations.py) and the affine placement of their code
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_figure_eight_betti_and_curve(seed):
    pts = clouds.figure_eight(500, seed=seed)
    assert rips_betti(pts, 0.3) == (1, 2)
    assert clouds.known_betti({"shape": "figure_eight", "n": 500}) == (1, 2, 0)
    # (sin t, sin 2t): y^2 = 4 x^2 (1 - x^2)
    np.testing.assert_allclose(pts[:, 1] ** 2, 4 * pts[:, 0] ** 2 * (1 - pts[:, 0] ** 2), atol=1e-12)


def test_two_circles_betti_and_layout():
    pts = clouds.two_circles(501)
    assert rips_betti(pts, 0.3) == (2, 2)
    assert clouds.known_betti({"shape": "two_circles", "n": 501}) == (2, 2, 0)
    top, bottom = pts[:250], pts[250:]
    np.testing.assert_allclose(np.linalg.norm(top - [0, 1.2], axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(bottom - [0, -1.2], axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        top[:2], [[1.0, 1.2], [np.cos(2 * np.pi / 250), 1.2 + np.sin(2 * np.pi / 250)]]
    )
    np.testing.assert_array_equal(pts, clouds.two_circles(501, seed=5))  # evenly spaced: no randomness


@pytest.mark.parametrize("seed", [0, 1])
def test_solid_double_torus_betti(seed):
    pts = clouds.solid_double_torus(4000, seed=seed, rotation=[0.6, 0.3, 1.1])
    assert alpha_betti(pts, 0.12) == (1, 2, 0)
    assert clouds.known_betti({"shape": "solid_double_torus", "n": 10}) == (1, 2, 0)


def test_solid_double_torus_is_the_soft_min_set():
    pts = clouds.solid_double_torus(3000, seed=2)
    x, y, z = pts.T
    f = [(np.hypot(x - c, y) - 0.5) ** 2 + z**2 - 0.04 for c in (0.8, -0.8)]
    assert np.all(-np.log(np.exp(-5 * f[0]) + np.exp(-5 * f[1])) / 5 <= 0)
    assert np.all(np.abs(pts) <= [1.5, 0.7, 0.21])
    assert pts[:, 2].max() > 0.2  # the box trims the bulge at the junction, as in the authors' code
    rotated = clouds.solid_double_torus(3000, seed=2, rotation=[0.6, 0.3, 1.1])
    np.testing.assert_allclose(rotated, pts @ clouds.euler_rotation(0.6, 0.3, 1.1).T, atol=1e-15)


def test_euler_rotation():
    r = clouds.euler_rotation(0.6, 0.3, 1.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-15)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # about the fixed x axis first, then y, then z
    np.testing.assert_allclose(clouds.euler_rotation(np.pi / 2, 0, 0) @ [0, 1, 0], [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(
        clouds.euler_rotation(np.pi / 2, 0, np.pi / 2) @ [0, 1, 0], [0, 0, 1], atol=1e-15
    )
    np.testing.assert_allclose(
        clouds.euler_rotation(np.pi / 2, np.pi / 2, 0) @ [0, 1, 0], [1, 0, 0], atol=1e-15
    )
    with pytest.raises(ValueError, match="Euler angle y"):
        clouds.euler_rotation(0, float("nan"), 0)
    with pytest.raises(ValueError, match="3 Euler angles needs a 3-D shape"):
        clouds.make_cloud({"shape": "circle", "n": 5, "rotation": [0.1, 0.2, 0.3]})


def test_affine_placement_of_the_authors_start():
    native = clouds.figure_eight(50, seed=3)
    placed = clouds.make_cloud(
        {"shape": "figure_eight", "n": 50, "seed": 3, "axis_scale": [0.1, 1.0], "center": [-2.0, 0.0]}
    )
    np.testing.assert_array_equal(placed[:, 0], native[:, 0] * 0.1 - 2)
    np.testing.assert_array_equal(placed[:, 1], native[:, 1])
    matrix = [[0.0, 1.0], [2.0, 0.0]]
    mapped = clouds.make_cloud(
        {"shape": "figure_eight", "n": 50, "seed": 3, "linear_map": matrix, "center": [1.0, 1.0]}
    )
    np.testing.assert_allclose(mapped, native @ np.array(matrix).T + 1.0, atol=1e-15)
    gauss = clouds.make_cloud({"shape": "gaussian", "n": 20, "dim": 3, "axis_scale": [1, 0, 2]})
    assert np.all(gauss[:, 1] == 0)


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"shape": "figure_eight", "n": 5, "size": 2.0}, "'size'"),
        ({"shape": "two_circles", "n": 5, "separation": 2.0}, "separation must be > 2 radius"),
        ({"shape": "two_circles", "n": 1}, "n must be an integer >= 2"),
        ({"shape": "two_circles", "n": 5, "radius": 0}, "radius must be"),
        ({"shape": "solid_double_torus", "n": 5, "minor": 0.6}, "minor must be < major"),
        ({"shape": "solid_double_torus", "n": 5, "sharpness": -1}, "sharpness must be"),
        ({"shape": "figure_eight", "n": 5, "axis_scale": [1.0]}, "axis_scale must be a sequence of 2"),
        ({"shape": "figure_eight", "n": 5, "axis_scale": [1.0, float("inf")]}, "axis_scale"),
        ({"shape": "figure_eight", "n": 5, "linear_map": [[1, 0]]}, r"linear_map must be a \(2, 2\) matrix"),
        ({"shape": "figure_eight", "n": 5, "linear_map": [[1, 0], [0, 1]], "axis_scale": [1, 1]}, "not both"),
    ],
)
def test_bad_authors_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        clouds.make_cloud(spec)


# ------------------------------------------------------------------ blocks and rows
_BLOCK_SPECS = [
    {"shape": "genus_region", "n": 300, "genus": 2, "rotation": "random"},
    {"shape": "disjoint_regions", "n": 301, "count": 3},
    {"shape": "genus_surface", "n": 300, "genus": 2},
    {"shape": "genus_surface", "n": 300, "genus": 0},
    {"shape": "torus", "n": 300, "dim": 5, "embed": "random_orthonormal"},
    {"shape": "sphere", "n": 300, "k": 3},
    {"shape": "circle", "n": 300, "linear_map": [[1.0, 2.0], [3.0, 4.0]]},
    {"shape": "gaussian", "n": 300, "dim": 4, "center": [1, 2, 3, 4]},
    {"shape": "figure_eight", "n": 300, "axis_scale": [0.1, 1], "center": [-2, 0]},
    {"shape": "two_circles", "n": 301},
    {"shape": "solid_double_torus", "n": 300, "rotation": [0.6, 0.3, 1.1]},
    {"shape": "union", "parts": [{"shape": "circle", "n": 150}, {"shape": "genus_region", "n": 170}]},
]


def _one_piece_gaussian(n, dim, seed):
    """The one-piece draw of particledyn before blocks: the sample stream, n x dim normals."""
    sample_ss = np.random.SeedSequence(seed).spawn(3)[0]
    return np.random.default_rng(sample_ss).standard_normal((n, dim))


def test_a_start_of_one_block_is_the_one_piece_draw():
    n = clouds.BLOCK
    np.testing.assert_array_equal(clouds.gaussian(n, dim=3, seed=5), _one_piece_gaussian(n, 3, 5))
    t = np.random.default_rng(np.random.SeedSequence(2).spawn(3)[0]).uniform(0.0, 2.0 * np.pi, 50)
    np.testing.assert_array_equal(
        clouds.figure_eight(50, seed=2), np.column_stack([np.sin(t), np.sin(2.0 * t)])
    )


def test_a_larger_start_draws_block_b_from_child_b_of_the_sample_stream():
    n, block = clouds.BLOCK + 10, clouds.BLOCK
    x = clouds.gaussian(n, dim=2, seed=5)
    np.testing.assert_array_equal(x[:block], _one_piece_gaussian(block, 2, 5))
    sample_ss = np.random.SeedSequence(5).spawn(3)[0]
    child = sample_ss.spawn(2)[1]  # spawn key (0, 1)
    np.testing.assert_array_equal(x[block:], np.random.default_rng(child).standard_normal((10, 2)))
    assert not np.array_equal(x[block:], _one_piece_gaussian(n, 2, 5)[block:])  # not the one-piece draw


@pytest.mark.parametrize("spec", _BLOCK_SPECS, ids=lambda s: s["shape"])
def test_rows_of_a_many_block_start_equal_the_whole(spec, monkeypatch):
    monkeypatch.setattr(clouds, "BLOCK", 64)  # 5 blocks: rows cross block boundaries
    whole = clouds.make_cloud({**spec, "seed": 3})
    n = clouds.cloud_size(spec)
    assert whole.shape[0] == n
    for lo, hi in [(0, n), (0, 1), (n - 1, n), (63, 65), (n // 3, 2 * n // 3 + 1), (64, 128)]:
        np.testing.assert_array_equal(clouds.make_cloud({**spec, "seed": 3}, (lo, hi)), whole[lo:hi])
    # the blocks are drawn from their own streams: not the one-piece draw, which is block 0 only
    monkeypatch.setattr(clouds, "BLOCK", 1 << 16)
    one_piece = clouds.make_cloud({**spec, "seed": 3})
    if spec["shape"] != "two_circles":  # no draw: the same points either way
        assert not np.array_equal(whole, one_piece)
    else:
        np.testing.assert_array_equal(whole, one_piece)


def test_a_start_split_over_ranks_is_the_same_start(monkeypatch):
    """Rows cut as shard_bounds cuts them for 1, 2 and 3 ranks give one start, bit for bit."""
    from particledyn.mpi.comm import shard_bounds

    monkeypatch.setattr(clouds, "BLOCK", 100)
    spec = {"shape": "solid_double_torus", "n": 1001, "seed": 9, "dim": 6, "embed": "random_orthonormal"}
    whole = clouds.make_cloud(spec)
    for size in (2, 3, 7):
        parts = [clouds.make_cloud(spec, shard_bounds(1001, r, size)) for r in range(size)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("rows", [(0, 0), (5, 3), (-1, 4), (0, 301), "ab", None.__class__])
def test_bad_rows_are_refused(rows):
    with pytest.raises(ValueError, match="rows"):
        clouds.make_cloud({"shape": "circle", "n": 300}, rows)


@pytest.mark.parametrize("n", [40, 400])  # the union embedded whole (one block), or block by block
def test_a_scenario_start_by_rows_equals_the_whole(n, monkeypatch):
    """What an MPI rank builds (runner.start_positions with rows): a union embedded at random
    and scaled outputs, cut as the ranks cut it."""
    from particledyn.runner import prepare, start_positions, start_size
    from particledyn.scenario import default_scenario_text, parse_scenario

    monkeypatch.setattr(clouds, "BLOCK", 64)
    text = default_scenario_text().replace(
        'shape = "genus_region"\nn = 1000\ngenus = 2\nsize = 1.0',
        f'shape = "union"\nembed = "random_orthonormal"\noutput_scale = 0.5\n'
        f'parts = [{{shape = "circle", n = {n // 2}}}, {{shape = "genus_region", n = {n - n // 2 + 3}}}]',
    )
    text = text.replace("\nd = 1 ", "\nd = 4 ")  # neurons in R^5
    assert text.count("d = 4") == 1 and "union" in text
    resolved = parse_scenario(text).resolved
    init, kernel = resolved.init, prepare(resolved, positions=False).kernel
    whole = start_positions(init, kernel)
    assert start_size(init) == whole.shape[0] == n + 3 and whole.shape[1] == kernel.dim > 2
    for lo, hi in [(0, 1), (n // 2 - 1, n // 2 + 70), (n // 3, n + 3)]:
        np.testing.assert_array_equal(start_positions(init, kernel, (lo, hi)), whole[lo:hi])
