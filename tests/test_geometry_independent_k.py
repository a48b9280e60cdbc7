"""Lemma 2/4 with a K obtained outside the checked pairs and step: a-priori (per-neuron Jacobian),
the previous step, held-out pairs. Each check holds on the two-layer net under GD and fails on a
rule that breaks it."""

import numpy as np
import pytest

from particledyn import GD, BlackBoxKernel, Momentum, Simulation
from particledyn.geometry import LemmaObserver, NeighbourCache, NeighbourPairs, lemma_check
from particledyn.geometry.apriori import jacobian_sup, lipschitz_bound, output_gradient, per_neuron_jacobians
from particledyn.geometry.lemmas import bounds_check, extreme_pairs, lemma_tolerances
from particledyn.geometry.lipschitz import pairwise_lipschitz
from particledyn.kernels import TwoLayerNet
from particledyn.observers import ObserverError


def problem(n=60, activation="sigmoid", scaling="mean_field", seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((150, 2))
    y = np.sin(2 * Z[:, 0]) * np.cos(Z[:, 1])
    return TwoLayerNet(Z, y, activation=activation, scaling=scaling), rng.standard_normal((n, 3))


class SqrtKick(TwoLayerNet):
    """The two-layer field plus a non-Lipschitz term sign(w_0) sqrt|w_0| on w_0."""

    def field(self, positions, masses, context):
        out = super().field(positions, masses, context)
        out[:, 0] -= 0.5 * np.sign(positions[:, 0]) * np.sqrt(np.abs(positions[:, 0]))
        return out


def lemma_series(kernel, X, lr, steps, K, optimizer=None, **options):
    observer = LemmaObserver(K, cache=NeighbourCache(**options.pop("cache", {})), **options)
    sim = Simulation(kernel, X, optimizer=optimizer or GD(), lr=lr, observers=[observer])
    sim.run(steps, progress=False)
    table = sim.sink.observables["lemmas"]
    return {key: np.asarray(values[1:]) for key, values in table.items()}


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("scaling", ["standard", "mean_field"])
def test_per_neuron_jacobian_is_the_derivative_of_the_field_at_fixed_outputs(activation, scaling):
    kernel, X = problem(20, activation, scaling)
    m = np.full(len(X), 1 / len(X))
    Z, y = kernel.inputs, kernel.targets
    J = per_neuron_jacobians(X, Z, output_gradient(kernel, X, m, (Z, y)), activation)
    frozen = kernel.outputs(X, m, Z)
    h = 1e-6
    for c in range(3):
        Xp, Xm = X.copy(), X.copy()
        Xp[:, c] += h
        Xm[:, c] -= h
        column = (
            kernel.field_given_outputs(Xp, Z, y, frozen) - kernel.field_given_outputs(Xm, Z, y, frozen)
        ) / (2 * h)
        np.testing.assert_allclose(-column, J[:, :, c], atol=1e-7 * np.abs(J).max())


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_bound_dominates_the_sup_over_the_cloud_and_every_pair(activation):
    kernel, X = problem(80, activation, "standard", seed=3)
    m = np.full(len(X), 1 / len(X))
    G = output_gradient(kernel, X, m, (kernel.inputs, kernel.targets))
    bound = lipschitz_bound(X, kernel.inputs, G, activation)
    sup, _ = jacobian_sup(X, kernel.inputs, G, activation)
    U = kernel.field(X, m, (kernel.inputs, kernel.targets))
    measured = pairwise_lipschitz(NeighbourPairs(X), U).K  # all pairs at N = 80
    assert measured <= bound and sup <= bound and measured > 0.1 * bound  # not vacuous


def test_relu_has_no_bound_and_the_a_priori_kinds_refuse_other_rules():
    kernel, X = problem(10, "relu")
    G = output_gradient(kernel, X, np.full(10, 0.1), (kernel.inputs, kernel.targets))
    assert lipschitz_bound(X, kernel.inputs, G, "relu") == np.inf
    with pytest.raises(ObserverError, match="activation 'relu': expected a smooth activation"):
        lemma_series(kernel, X, 0.1, 1, "apriori")
    with pytest.raises(ObserverError, match="optimizer 'momentum': expected 'gd' or 'sgd'"):
        lemma_series(problem(10)[0], X, 0.1, 1, "apriori", optimizer=Momentum(0.9))
    rule = BlackBoxKernel(lambda x, m, c: -x, dim=3)
    with pytest.raises(ObserverError, match="expected the built-in two-layer net"):
        lemma_series(rule, X, 0.1, 1, "jacobian_sup")


@pytest.mark.parametrize("K", ["apriori", "jacobian_sup", "previous"])
def test_independent_k_holds_on_gd_and_is_violated_by_a_non_lipschitz_rule(K):
    kernel, X = problem(60)
    good = lemma_series(kernel, X, 2.0, 15, K)
    assert good["n_violations"].sum() == 0 and np.nanmax(good["fraction_used"]) <= 1.0
    assert np.nanmin(good["fraction_used"]) > 0.01  # the check is not vacuous
    bad_kernel = SqrtKick(kernel.inputs, kernel.targets, scaling="mean_field")
    Y = X.copy()
    Y[:30, 0] = np.linspace(-1e-3, 1e-3, 30)  # particles near the kink at w_0 = 0
    bad = lemma_series(bad_kernel, Y, 0.2, 15, K)
    assert bad["n_violations"].sum() > 0 and np.nanmax(bad["fraction_used"]) > 1.0


def test_held_out_pairs_use_about_the_whole_bound_on_gd_and_far_more_on_a_kink():
    kernel, X = problem(60)
    good = lemma_series(kernel, X, 2.0, 15, "held_out")
    assert np.nanmax(good["fraction_used"]) < 1.1
    Y = X.copy()
    Y[:30, 0] = np.linspace(-1e-3, 1e-3, 30)
    bad = lemma_series(SqrtKick(kernel.inputs, kernel.targets, scaling="mean_field"), Y, 0.2, 15, "held_out")
    assert np.nanmax(bad["fraction_used"]) > 1.5 and bad["n_violations"].sum() > 0


def test_the_same_step_pairwise_k_never_fails_even_on_a_kink():
    kernel, X = problem(60)
    Y = X.copy()
    Y[:30, 0] = np.linspace(-1e-3, 1e-3, 30)
    bad = lemma_series(SqrtKick(kernel.inputs, kernel.targets, scaling="mean_field"), Y, 0.2, 15, "pairwise")
    assert bad["n_violations"].sum() == 0 and np.nanmax(bad["fraction_used"]) <= 1.0 + 1e-9


def test_sampled_extreme_pairs_catch_a_contraction_beyond_the_neighbour_lists():
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 10, (400, 2))
    a, b = 0, int(np.argmax(np.linalg.norm(X - X[0], axis=1)))  # far apart: not neighbours
    Y = X.copy()
    Y[a] = X[b] + 0.5 * (X[a] - X[b])  # the pair halves its distance; all else still
    pairs = NeighbourPairs(X, k=6, all_pairs_max_n=0)
    assert lemma_check(pairs, Y, 1.0, 0.1).n_lower_violations == 0  # kNN pairs miss it
    extra = extreme_pairs(X, Y, 400, np.random.default_rng(0))
    assert lemma_check(pairs, Y, 1.0, 0.1, extra_pairs=extra).n_lower_violations >= 1
    kick = BlackBoxKernel(
        lambda x, m, c: np.where(np.arange(len(x))[:, None] == a, 0.5 * (X[b] - x), 0.0),
        dim=2,
        tolerance=np.inf,
    )
    obs = LemmaObserver(0.1, cache=NeighbourCache(all_pairs_max_n=0), n_sample=400)
    sim = Simulation(kick, X, lr=1.0, observers=[obs])
    sim.run(1, progress=False)
    record = sim.sink.observables["lemmas"]
    assert record["n_sampled"][1] > 0 and record["n_lower_violations"][1] >= 1


def test_float32_rounding_is_not_a_violation_but_a_real_contraction_is():
    rng = np.random.default_rng(4)
    X = (rng.standard_normal((200, 2)) * 30).astype(np.float32)
    shifted = (X + np.float32(0.37)).astype(np.float32)  # a translation: d' = d exactly
    pairs = NeighbourPairs(X)
    assert lemma_check(pairs, shifted, 1.0, 0.0).n_violations == 0
    f64_rtol, f64_atol = lemma_tolerances(np.float64, X, shifted)
    assert lemma_check(pairs, shifted, 1.0, 0.0, rtol=f64_rtol, atol=f64_atol).n_violations > 0
    shrunk = (0.999 * X).astype(np.float32)
    assert lemma_check(pairs, shrunk, 1.0, 0.0).n_lower_violations > 0


def test_lemma_1_tolerance_sees_equal_pairs_at_float_precision_and_counts_splits():
    X = np.random.default_rng(6).standard_normal((40, 2))
    X[5] = X[4] + 1e-16  # equal up to rounding: zero tolerance would call them distinct
    pairs = NeighbourPairs(X)
    smooth = X + 0.1 * np.tanh(X)
    assert lemma_check(pairs, smooth, 0.1, 1.0).n_equal == 1
    assert lemma_check(pairs, smooth, 0.1, 1.0, equal_tol=0.0).n_equal == 0
    split = smooth.copy()
    split[5] += 1e-6  # an index-dependent kick: not equivariant
    assert lemma_check(pairs, split, 0.1, 1.0).n_split == 1


def test_fraction_used_of_the_bounds():
    check = bounds_check(np.array([1.0, 2.0]), np.array([1.1, 1.9]), 0.5, 0.4, rtol=0, atol=0)
    assert check.fraction_used == pytest.approx(0.5) and check.n_violations == 0
    assert bounds_check(np.array([1.0]), np.array([1.3]), 0.5, 0.4, rtol=0, atol=0).n_upper_violations == 1


def test_scenario_with_the_certified_k_end_to_end(tmp_path):
    """The phase-transition base: lemmas with K = "apriori" and the expansion check with the same
    certified K, through the TOML schema and the runner; the verdict names the K certified."""
    import os

    import tomllib

    from particledyn.runner import start_run
    from particledyn.scenario import Scenario, validate_scenario
    from particledyn.summary import summarize_run

    base = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "scenarios",
        "sweeps",
        "phase_transition_base.toml",
    )
    with open(base, "rb") as handle:
        raw = tomllib.load(handle)
    raw["run"]["steps"], raw["init"]["n"] = 6, 40
    raw["observers"] = [o for o in raw["observers"] if o["type"] != "sharpness"]
    raw["observers"].append(
        {"type": "expansion", "K": "apriori", "radii": [0.25, 0.5], "relative": True, "max_dim": 1}
    )
    out = str(tmp_path / "apriori.h5")
    start_run(Scenario(validate_scenario(raw), "", base), out=out, overwrite=True, progress=False)
    s = summarize_run(out)
    from particledyn.io import open_run

    with open_run(out) as run:
        violations = np.asarray(run.observable("lemmas", "n_violations")[1])
        certified = np.asarray(run.observable("expansion", "certified")[1])
        contradicts = np.asarray(run.observable("expansion", "contradicts_theorem")[1])
    assert violations.sum() == 0 and certified.all() and not contradicts.any()
    assert "lemmas" in s["eta_K"]["sources"]
    from particledyn.summary import _certified

    with open_run(out) as run:
        assert _certified(run) == {"lemmas": True, "expansion": True}
    for change in s["changes"]:  # the summary reads the certified flag from the file itself
        assert change["eta_K"]["lemmas"]["name"] == "a certified bound"
