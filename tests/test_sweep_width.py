"""Wasserstein distances between replicas (exact and sliced) and the infinite-width study."""

import itertools
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from run_files import png_is_drawn

from particledyn.sweep.density import density_check, step_map
from particledyn.sweep.width import (
    fit_rate,
    plot_width_study,
    replica_distances,
    sliced_wasserstein,
    wasserstein_exact,
    wasserstein_pot,
    width_main,
    width_study,
)

BASE = os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps", "teacher_student_base.toml")


def _brute_force_W2(x, y):
    """min over all permutations of the mean squared distance: the definition, for tiny N."""
    best = min(np.mean(np.sum((x - y[list(p)]) ** 2, axis=1)) for p in itertools.permutations(range(len(x))))
    return np.sqrt(best)


@pytest.mark.parametrize("n, d", [(1, 2), (4, 1), (6, 3), (5, 2)])
def test_exact_W2_equals_the_minimum_over_permutations(n, d):
    rng = np.random.default_rng(n + d)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    assert wasserstein_exact(x, y) == pytest.approx(_brute_force_W2(x, y), rel=1e-12)


def test_sliced_W2_is_exact_in_one_dimension_and_a_lower_bound_above():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 1)), rng.normal(1.0, 2.0, size=(300, 1))
    reference = np.sqrt(np.mean((np.sort(x[:, 0]) - np.sort(y[:, 0])) ** 2))
    assert sliced_wasserstein(x, y, n_projections=7) == pytest.approx(reference, rel=1e-12)
    assert wasserstein_exact(x, y) == pytest.approx(reference, rel=1e-12)
    x, y = rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 0.3
    assert sliced_wasserstein(x, y) <= wasserstein_exact(x, y)
    # a shift s of the whole cloud: W2 = |s|, SW2 = |s| / sqrt(D) in expectation
    shift = np.array([0.0, 0.0, 5.0])
    assert wasserstein_exact(x, x + shift) == pytest.approx(5.0, rel=1e-12)
    assert sliced_wasserstein(x, x + shift, n_projections=4000) == pytest.approx(5 / np.sqrt(3), rel=0.03)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_distances_do_not_depend_on_the_order_of_particles(n, d, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    px, py = x[rng.permutation(n)], y[rng.permutation(n)]
    assert wasserstein_exact(px, py) == pytest.approx(wasserstein_exact(x, y), rel=1e-12, abs=1e-15)
    assert sliced_wasserstein(px, py) == pytest.approx(sliced_wasserstein(x, y), rel=1e-12, abs=1e-15)


def test_replica_distance_falls_with_N_for_samples_of_one_measure():
    rng = np.random.default_rng(1)
    w = [
        replica_distances(rng.uniform(size=(n, 2)), rng.uniform(size=(n, 2)), exact_max=1000)
        for n in (50, 800, 2000)
    ]
    assert w[2]["exact"] is None and w[1]["exact"] is not None
    assert w[0]["exact"] > 2 * w[1]["exact"]  # 16x the points: ~N^(-1/2) in 2-D
    assert w[0]["sliced"] > w[1]["sliced"] > w[2]["sliced"]


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.zeros((3, 2)), np.zeros((4, 2))), "same shape"),
        ((np.zeros((0, 2)), np.zeros((0, 2))), "non-empty"),
        ((np.full((2, 2), np.nan), np.zeros((2, 2))), "NaN"),
    ],
)
def test_bad_samples_raise_clear_errors(args, message):
    with pytest.raises(ValueError, match=message):
        wasserstein_exact(*args)


def test_pot_W2_equals_the_assignment_and_takes_unequal_sizes():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 0.2
    assert wasserstein_pot(x, y) == pytest.approx(wasserstein_exact(x, y), rel=1e-9)
    # a cloud against itself doubled: the same measure
    assert wasserstein_pot(x, np.concatenate([x, x])) == pytest.approx(0.0, abs=1e-7)
    big = rng.normal(size=(900, 2))
    exact = wasserstein_pot(x, big)
    sliced = sliced_wasserstein(x, big, n_projections=400)
    assert 0 < sliced <= exact * 1.05  # SW2 <= W2 (up to the projections' sampling)


def test_sliced_W2_of_unequal_sizes_matches_the_quantile_integral():
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [0.5], [1.0]])
    # F_x^-1 = 0 on (0, 1/2], 1 on (1/2, 1]; F_y^-1 = 0, 0.5, 1 on thirds: squared gaps 0.25 on (1/3, 2/3)
    assert sliced_wasserstein(x, y, n_projections=3) == pytest.approx(np.sqrt(0.25 / 3), rel=1e-12)
    assert sliced_wasserstein(x, np.concatenate([x, x]), n_projections=5) == pytest.approx(0.0, abs=1e-15)


def test_fit_rate_recovers_a_power_law_and_its_uncertainty():
    sizes = np.array([100, 300, 1000, 3000, 10000])
    fit = fit_rate(sizes, 2.0 * sizes**-0.5)
    assert fit["slope"] == pytest.approx(-0.5, abs=1e-9) and fit["slope_se"] < 1e-9
    noisy = fit_rate(sizes, 2.0 * sizes**-0.5 * np.exp([0.1, -0.1, 0.1, -0.1, 0.1]))
    assert abs(noisy["slope"] + 0.5) < 0.05 and noisy["slope_se"] > 0.005
    assert np.isnan(fit_rate(sizes[:2], sizes[:2] ** -0.5)["slope"])


def _triangular_map(x):
    return x + 0.5 * np.tanh(x) + 0.2 * np.stack([x[:, 1] ** 2, np.zeros(len(x))], axis=1)


def _triangular_log_det(x):
    a = 1 + 0.5 / np.cosh(x) ** 2
    return np.log(a[:, 0] * a[:, 1])


def test_density_check_holds_for_the_map_and_fails_for_a_wrong_jacobian_or_resampling():
    rng = np.random.default_rng(0)
    n = 16000
    source, probe = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    right = density_check(source, probe, _triangular_map, _triangular_log_det)
    assert not right.violated and right.worst_bin < 0.1 and right.mean_abs_log_det > 0.4
    wrong = density_check(source, probe, _triangular_map, lambda x: np.zeros(len(x)))
    assert wrong.violated and wrong.worst_bin > 0.4
    # the map applied to a resample tilted towards x_0 > 0: not the measure's pushforward
    weights = 1 + 0.8 * np.tanh(probe[:, 0])
    tilted = probe[rng.choice(n, n, p=weights / weights.sum())] + 1e-9 * rng.standard_normal((n, 2))
    resampled = density_check(
        source, probe, _triangular_map, _triangular_log_det, image=_triangular_map(tilted)
    )
    assert resampled.violated and resampled.worst_bin > 0.4
    # an honest image passed explicitly agrees too
    fresh = rng.standard_normal((n, 2))
    assert not density_check(
        source, probe, _triangular_map, _triangular_log_det, image=_triangular_map(fresh)
    ).violated


def test_density_residual_shrinks_with_N():
    rng = np.random.default_rng(5)
    worst = [
        density_check(
            rng.standard_normal((n, 2)), rng.standard_normal((n, 2)), _triangular_map, _triangular_log_det
        ).worst_bin
        for n in (1000, 30000)
    ]
    assert worst[1] < worst[0]


def test_step_map_of_a_kernel_is_its_gd_step_and_jacobian():
    from particledyn.kernels import TwoLayerNet

    rng = np.random.default_rng(1)
    z = rng.standard_normal((50, 1))
    kernel = TwoLayerNet(z, np.sin(z[:, 0]), scaling="mean_field")
    cloud = rng.standard_normal((200, 2))
    masses = np.full(200, 1 / 200)
    f, log_det = step_map(kernel, cloud, masses, lr=0.3)
    field = kernel.field(cloud, masses, kernel.evaluation_context())
    # a zero-mass probe at a particle moves as the particle does
    assert np.allclose(f(cloud[:5]), cloud[:5] + 0.3 * field[:5], rtol=1e-12, atol=1e-14)
    h = 1e-6
    x = cloud[:1]
    J = np.stack([(f(x + h * e) - f(x - h * e))[0] / (2 * h) for e in np.eye(2)], axis=1)
    assert log_det(x)[0] == pytest.approx(np.log(abs(np.linalg.det(J))), rel=1e-5)


def _small_study(tmp_path, **options):
    from particledyn.scenario import load_scenario

    resolved = load_scenario(BASE).resolved
    plan = {"replicas": 2, "reference_n": 640, "steps": 4, "n_projections": 30, "out": tmp_path / "w.h5"}
    return width_study(resolved, [40, 80, 160], **{**plan, **options})


def test_width_study_has_error_bars_a_reference_and_resumes(tmp_path):
    import h5py

    ran = []
    results = _small_study(tmp_path, progress=ran.append)
    assert len(ran) == 3 * 4 + 1 and "reference_n640" in ran
    rows = results["rows"]
    for row in rows:
        for key in ("replicas_final_sliced", "replicas_final_exact", "reference_final_sliced"):
            mean, se = row[key]
            assert mean > 0 and se > 0, (row["n"], key)
        assert row["reference_final_exact"][0] > 0  # 160 x 640 is affordable for POT
        assert "worst_bin" in row["density"]
    assert set(results["rates"]) >= {"replicas_final_sliced", "reference_final_exact"}
    assert np.isfinite(results["rates"]["replicas_initial_exact"]["slope"])
    with h5py.File(tmp_path / "w.h5", "a") as f:
        assert len(f["runs"]) == 13 and "results" in f.attrs
        before = f["runs/n80_s3/final"][()]
        del f["runs/n80_s3"]  # as if the study had been killed before this run was stored
    ran.clear()
    again = _small_study(tmp_path, progress=ran.append)
    assert ran == ["n80_s3"]
    with h5py.File(tmp_path / "w.h5") as f:
        assert np.array_equal(f["runs/n80_s3/final"][()], before)  # the same run, bit for bit
    assert again["rows"][1]["replicas_final_sliced"] == rows[1]["replicas_final_sliced"]
    assert png_is_drawn(plot_width_study(results, tmp_path / "w.png"))
    from particledyn.scenario import load_scenario

    with pytest.raises(ValueError, match="holds another width study"):
        width_study(
            load_scenario(BASE).resolved,
            [40, 80],
            replicas=2,
            reference_n=640,
            steps=4,
            out=tmp_path / "w.h5",
        )


def test_width_study_on_dask_matches_the_serial_runs(tmp_path):
    distributed = pytest.importorskip("distributed")
    import logging

    serial = _small_study(tmp_path / "serial", density=False)
    options = dict(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    )
    with distributed.LocalCluster(**options) as cluster, distributed.Client(cluster) as client:
        on_dask = _small_study(tmp_path / "dask", client=client, density=False)
    timeless = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert timeless(on_dask["rows"]) == timeless(serial["rows"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"replicas": 1}, "replicas=1: expected an integer >= 2"),
        ({"reference_n": 100}, "reference_n=100: expected more particles than the largest size 160"),
    ],
)
def test_width_study_refuses_bad_plans(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        _small_study(tmp_path, **change)


def test_width_study_refuses_standard_scaling(tmp_path):
    from particledyn.scenario import load_scenario

    resolved = load_scenario(BASE).resolved
    with pytest.raises(ValueError, match="mean_field"):
        width_study(resolved.with_changes("kernel.scaling", "standard"), [40], out=tmp_path / "x.h5")


def test_width_cli_serial(tmp_path, capsys):
    code = width_main(
        [
            BASE,
            "--sizes",
            "40",
            "80",
            "160",
            "--replicas",
            "2",
            "--reference-n",
            "400",
            "--steps",
            "3",
            "--projections",
            "20",
            "--serial",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "rate replicas_final_sliced: N^" in out and "density residual" in out
    assert png_is_drawn(tmp_path / "width_study.png")
    bad = [BASE, "--sizes", "40", "--replicas", "1", "--serial", "--out", str(tmp_path / "b")]
    assert width_main(bad) == 2
    assert "replicas=1" in capsys.readouterr().err
