"""Geometry observers driven by a small hand-written GD loop (no engine needed)."""

import numpy as np
import pytest

from particledyn.geometry import (
    BalanceObserver,
    LemmaObserver,
    MergeObserver,
    NeighbourPairs,
    PairwiseLipschitzObserver,
    SharpnessObserver,
    geometry_observers,
    lemma_check,
    pairwise_lipschitz,
    top_eigenpairs,
)
from particledyn.geometry.reference_nets import TwoLayerNet, teacher_student
from particledyn.observers import Observer, StepInfo
from particledyn.simulation import DivergenceError


def run(observers, net, X, lr, steps, scale=1.0):
    """A minimal GD loop that calls observers the way the engine's loop does."""
    masses = np.full(len(X), 1.0 / len(X))
    records = {obs.name: [] for obs in observers}
    records.update({index: [] for index in range(len(observers))})
    previous = update = None
    for step in range(steps + 1):
        if step > 0:
            update = -scale * net.grad(X)
            previous, X = X, X + lr * update
        info = StepInfo(
            step=step,
            time=step * lr,
            positions=X,
            masses=masses,
            lr=lr,
            previous_positions=previous,
            update=update,
            field=update,
        )
        for index, obs in enumerate(observers):
            if obs.wants(step):
                values = dict(obs.observe(info))
                records[obs.name].append((info, values))
                records[index].append((info, values))
    return records


def test_shared_cache_builds_one_neighbour_list_per_configuration():
    net, X, _ = teacher_student(200, d=2, batch=30, seed=0)
    observers = geometry_observers(K="pairwise", eps=0.05, k=6)
    assert all(isinstance(o, Observer) and o.needs_previous for o in observers)
    records = run(observers, net, X, lr=1.0, steps=5, scale=len(X))
    assert observers[0].cache is observers[1].cache is observers[2].cache
    assert observers[0].cache.n_built == 6
    for (info, k), (_, lem), (_, mer) in zip(*(records[o.name] for o in observers)):
        if info.step == 0:
            assert np.isnan(k["K"]) and lem["n_pairs"] == 0 and mer["n_merges"] == 0
            continue
        pairs = NeighbourPairs(info.previous_positions, k=6)
        expected = pairwise_lipschitz(pairs, info.update)
        assert k["K"] == expected.K and k["eta_K"] == pytest.approx(info.lr * expected.K)
        check = lemma_check(pairs, info.positions, info.lr, expected.K)
        assert lem["n_violations"] == 0 == check.n_violations
        assert (lem["min_ratio"], lem["max_ratio"]) == (check.min_ratio, check.max_ratio)
        binned = mer["mass_histogram"].sum() + mer["mass_underflow"] + mer["mass_overflow"]
        assert binned == mer["n_atoms"]
        assert mer["n_atoms"] == NeighbourPairs(info.positions).atoms(0.05)[0]


def test_lemma_observer_accepts_a_number_or_a_callable():
    net, X, _ = teacher_student(50, d=2, batch=20, seed=1)
    small = LemmaObserver(K=1e-6)
    rule = LemmaObserver(K=lambda info: 1e6, every=2)
    records = run([small, rule], net, X, lr=1.0, steps=4, scale=len(X))
    assert [r["n_violations"] > 0 for _, r in records[0]] == [False] + [True] * 4
    assert [info.step for info, _ in records[1]] == [0, 2, 4]
    assert all(r["n_violations"] == 0 and r["K"] == 1e6 for _, r in records[1][1:])


def test_merge_observer_sees_a_collapse():
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 10, axis=0)
    X += 0.1 * np.random.default_rng(0).standard_normal(X.shape)
    centres = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 10, axis=0)

    class Contract:  # a toy "net": update pulls every particle to its centre
        def grad(self, Y):
            return Y - centres

    observer = MergeObserver(eps=0.01, mass_bins=np.logspace(-3, 1, 9))
    records = run([observer], Contract(), X, lr=0.9, steps=4)["merges"]
    final = records[-1][1]
    assert records[0][1]["n_atoms"] == 20 and final["n_atoms"] == 2
    assert sum(r["n_merges"] for _, r in records) == 18
    assert final["largest_atom_mass"] == pytest.approx(0.5)
    assert final["mass_in_multi_atoms"] == pytest.approx(1.0)


def test_balance_observer_on_relu_gd():
    rng = np.random.default_rng(2)
    inputs = rng.standard_normal((40, 2))
    net = TwoLayerNet(inputs, np.cos(inputs[:, 0]), "relu", output_scale=0.2)
    X = rng.standard_normal((25, 3))
    records = run([BalanceObserver()], net, X, lr=0.01, steps=3)["balance"]
    assert np.isnan(records[0][1]["max_drift"])
    for info, values in records[1:]:
        assert values["max_first_order"] <= 1e-13 * abs(values["c_max"])
        assert values["max_drift"] == pytest.approx(values["max_second_order"], rel=1e-6)
        c = np.sum(info.positions[:, -1:] ** 2, 1) - np.sum(info.positions[:, :-1] ** 2, 1)
        assert values["n_pathological"] == int((c > 0).sum())
        assert values["log2_components"] == values["n_pathological"]
        assert values["n_effective_components"] == values["n_pathological"] + 1


def test_sharpness_observer_warm_starts_and_resumes():
    net, X, _ = teacher_student(30, d=2, batch=40, seed=3)
    observer = SharpnessObserver(
        lambda info: net.hvp_flat(info.positions),
        k=2,
        tol=1e-9,
        momentum=0.9,
        gradient=lambda info: net.grad(info.positions).ravel(),
    )
    records = run([observer], net, X, lr=2.0, steps=3)["sharpness"]
    for info, values in records:
        exact = np.linalg.eigvalsh(net.hessian(info.positions))
        assert values["lambda_max"] == pytest.approx(exact[-1], rel=1e-8)
        np.testing.assert_allclose(values["eigenvalues"], exact[::-1][:2], rtol=1e-8)
        assert values["eta_K"] == pytest.approx(info.lr * exact[-1], rel=1e-8)
        assert values["stability_threshold"] == pytest.approx(3.8 / info.lr)
        assert values["converged"] and 0.0 <= values["grad_fraction"] <= 1.0
    state = observer.state_dict()
    fresh = SharpnessObserver(lambda info: net.hvp_flat(info.positions), tol=1e-9)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.eigenvector, observer.eigenvector)


def test_sharpness_observer_with_a_preconditioner():
    net, X, _ = teacher_student(12, d=2, batch=30, seed=4)
    diagonal = np.random.default_rng(0).uniform(0.5, 2.0, X.size)
    observer = SharpnessObserver(
        lambda info: net.hvp_flat(info.positions), preconditioner=lambda info: diagonal, tol=1e-10
    )
    info = StepInfo(step=0, time=0.0, positions=X, masses=np.ones(12) / 12, lr=0.1)
    scale = 1 / np.sqrt(diagonal)
    exact = np.linalg.eigvalsh(scale[:, None] * net.hessian(X) * scale[None])[-1]
    assert observer.observe(info)["lambda_max"] == pytest.approx(exact, rel=1e-8)
    plain = top_eigenpairs(net.hvp_flat(X), X.size, tol=1e-10).lambda_max
    assert not np.isclose(plain, exact, rtol=1e-3)


def test_sharpness_observer_reports_an_overflowing_hessian_as_divergence():
    """Positions still finite but huge (a run about to diverge): H v overflows. The observer raises
    DivergenceError naming the step, not an illegible error from the eigensolver's arithmetic on infinities."""
    net, X, _ = teacher_student(12, d=2, batch=30, seed=4)
    observer = SharpnessObserver(lambda info: lambda v: net.hvp_flat(info.positions)(v) * np.inf)
    info = StepInfo(step=7, time=0.7, positions=X, masses=np.ones(12) / 12, lr=0.1)
    with pytest.raises(DivergenceError, match="Hessian-vector products became non-finite at step 7"):
        observer.observe(info)


def test_observer_arguments_are_checked():
    with pytest.raises(ValueError, match="K='max'"):
        LemmaObserver(K="max")
    with pytest.raises(ValueError, match="K=-2"):
        LemmaObserver(K=-2.0)
    with pytest.raises(ValueError, match="eps=-1"):
        MergeObserver(eps=-1.0)
    with pytest.raises(ValueError, match="every=0"):
        MergeObserver(every=0)
    with pytest.raises(ValueError, match="source="):
        PairwiseLipschitzObserver(source="gradient")
    with pytest.raises(TypeError, match="cache is dict"):
        PairwiseLipschitzObserver(cache={})
    with pytest.raises(TypeError, match="hvp is None"):
        SharpnessObserver(None)
    info = StepInfo(
        step=1,
        time=0.1,
        positions=np.zeros((3, 2)),
        masses=np.ones(3),
        lr=0.1,
        previous_positions=np.ones((3, 2)),
    )
    with pytest.raises(ValueError, match="StepInfo.update is None"):
        PairwiseLipschitzObserver().observe(info)
