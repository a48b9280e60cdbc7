"""Wasserstein distances between replicas (exact and sliced) and the infinite-width study."""
import itertools
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from particledyn.sweep.width import (plot_width_study, replica_distances, sliced_wasserstein,
                                     wasserstein_exact, width_study)
from run_files import png_is_drawn

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
    w = [replica_distances(rng.uniform(size=(n, 2)), rng.uniform(size=(n, 2)), exact_max=1000)
         for n in (50, 800, 12800)]
    assert w[2]["exact"] is None and w[1]["exact"] is not None
    assert w[0]["exact"] > 2 * w[1]["exact"]                 # 16x the points: ~N^(-1/2) in 2-D
    assert w[0]["sliced"] > w[1]["sliced"] > w[2]["sliced"]


@pytest.mark.parametrize("args, message", [
    ((np.zeros((3, 2)), np.zeros((4, 2))), "same shape"),
    ((np.zeros((0, 2)), np.zeros((0, 2))), "non-empty"),
    ((np.full((2, 2), np.nan), np.zeros((2, 2))), "NaN"),
])
def test_bad_samples_raise_clear_errors(args, message):
    with pytest.raises(ValueError, match=message):
        wasserstein_exact(*args)


def test_width_study_runs_two_replicas_per_N_and_plots(tmp_path):
    from particledyn.scenario import load_scenario

    resolved = load_scenario(BASE).resolved
    study = width_study(resolved, [16, 64], steps=5, n_projections=50)
    assert study.sizes == [16, 64] and study.dim == 2
    for i in range(2):
        assert study.loss[i][0][-1] == 5 and study.sharpness[i] is not None
        assert study.W_initial[i]["exact"] > 0 and study.W_final[i]["exact"] > 0
    assert study.W_initial[1]["exact"] < study.W_initial[0]["exact"]
    # the loss is an N -> infinity limit: replicas of 64 agree better than the 16 and 64 runs differ
    assert png_is_drawn(plot_width_study(study, tmp_path / "w.png"))
    assert '"W_final"' in study.to_json()
    with pytest.raises(ValueError, match="mean_field"):
        width_study({**resolved, "kernel": {**resolved["kernel"], "scaling": "standard"}}, [8])
