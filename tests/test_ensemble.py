"""Ensemble: every replica bit-identical to its run alone; divergence freezes one replica only."""

import numpy as np
import pytest

from particledyn import GD, Adam, Momentum, Simulation
from particledyn.divergence import GrowthRule
from particledyn.ensemble import Ensemble
from particledyn.kernels import TwoLayerNet
from particledyn.observers import LossObserver
from particledyn.schedules import StepDecay


def teacher(n=96, d=2, seed=0, **options):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    return TwoLayerNet(z, np.tanh(z @ np.linspace(1.0, -0.5, d)), **options)


def starts(r, n=40, dim=3, seed=1):
    return np.random.default_rng(seed).normal(size=(r, n, dim))


def alone(kernel, x, steps, **options):
    sim = Simulation(kernel, x, observers=[LossObserver(every=3)], **options)
    sim.run(steps, progress=False)
    return sim


def assert_replica_matches(ens, r, sim):
    member = ens.replica(r)
    np.testing.assert_array_equal(member.state.positions, sim.state.positions)
    for key, value in sim.state.optimizer_state.items():
        np.testing.assert_array_equal(member.state.optimizer_state[key], value)
    assert member.state.step == sim.state.step and member.state.time == sim.state.time
    assert ens.sink.series(f"loss@r{r}", "loss")[1].tolist() == sim.sink.series("loss", "loss")[1].tolist()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", [GD, lambda: Momentum(0.8, weight_decay=1e-3), Adam])
@pytest.mark.parametrize("replicas", [1, 3])
def test_replicas_bit_identical_to_single_runs(dtype, optimizer, replicas):
    kernel = teacher(scaling="mean_field")
    x = starts(replicas)
    lrs = [0.05 * (r + 1) for r in range(replicas)]
    seeds = [7 + 11 * r for r in range(replicas)]
    ens = Ensemble(
        kernel,
        x,
        optimizer=optimizer(),
        lr=lrs,
        seed=seeds,
        batch_size=30,
        observers=[LossObserver(every=3)],
        dtype=dtype,
    )
    ens.run(9, progress=False)
    assert ens.fields.fused
    for r in range(replicas):
        assert_replica_matches(
            ens,
            r,
            alone(
                kernel, x[r], 9, optimizer=optimizer(), lr=lrs[r], seed=seeds[r], batch_size=30, dtype=dtype
            ),
        )


def test_sixteen_replicas_standard_scaling_schedules_and_data_draws():
    kernels = [teacher(seed=r % 4, activation="sigmoid") for r in range(16)]
    x = starts(16, n=24, seed=3)
    schedules = [StepDecay(0.01 * (1 + r % 5), every=3) for r in range(16)]
    ens = Ensemble(
        kernels,
        x,
        optimizer=Adam(),
        lr=schedules,
        seed=list(range(16)),
        batch_size=16,
        observers=[LossObserver(every=3)],
    )
    ens.run(7, progress=False)
    for r in (0, 5, 15):
        schedule = StepDecay(0.01 * (1 + r % 5), every=3)
        assert_replica_matches(
            ens, r, alone(kernels[r], x[r], 7, optimizer=Adam(), lr=schedule, seed=r, batch_size=16)
        )


def test_cross_entropy_and_several_outputs():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(64, 2))
    kernel = TwoLayerNet(
        z, (z[:, 0] > 0).astype(int) + (z[:, 1] > 0), activation="tanh", loss="cross_entropy"
    )
    x = starts(2, n=20, dim=5, seed=5)
    ens = Ensemble(kernel, x, lr=[0.1, 0.3], seed=[1, 2], batch_size=10, observers=[LossObserver(every=3)])
    ens.run(6, progress=False)
    assert ens.fields.fused
    for r in range(2):
        single = alone(kernel, x[r], 6, lr=[0.1, 0.3][r], seed=[1, 2][r], batch_size=10)
        assert_replica_matches(ens, r, single)


def test_a_diverging_replica_freezes_and_the_others_go_on():
    kernel = teacher(activation="relu")
    x = starts(3)
    lrs = [0.001, 1e6, 0.002]
    ens = Ensemble(kernel, x, lr=lrs, seed=[1, 2, 3], observers=[LossObserver(every=3)])
    ens.run(12, progress=False)
    assert list(ens.diverged) == [1] and ens.live == [0, 2]
    with pytest.raises(Exception) as caught:
        alone(kernel, x[1], 12, lr=lrs[1], seed=2)
    assert ens.diverged[1] == caught.value.record()
    assert ens.replica(1).state.step == caught.value.step < 12
    for r in (0, 2):
        assert_replica_matches(ens, r, alone(kernel, x[r], 12, lr=lrs[r], seed=r + 1))


def test_the_growth_test_freezes_an_exploding_replica_as_its_single_run_stops():
    kernel = teacher(scaling="mean_field")
    x = starts(3)
    lrs, seeds, rule = [0.05, 5.0, 0.1], [1, 2, 3], GrowthRule(growth=10, window=3, threshold=100)
    observers = [LossObserver(every=1)]
    ens = Ensemble(kernel, x, lr=lrs, seed=seeds, observers=observers, divergence=rule)
    ens.run(30, progress=False)
    assert list(ens.diverged) == [1] and ens.live == [0, 2]
    assert "growth" in ens.diverged[1] and np.all(np.isfinite(ens.positions[1]))

    def single(r, steps, rule):
        sim = Simulation(
            kernel, x[r], lr=lrs[r], seed=seeds[r], observers=[LossObserver(every=1)], divergence=rule
        )
        sim.run(steps, progress=False)
        return sim

    with pytest.raises(Exception) as caught:
        single(1, 30, GrowthRule(growth=10, window=3, threshold=100))
    assert caught.value.growth is not None and ens.diverged[1] == caught.value.record()
    assert ens.replica(1).state.step == caught.value.step < 30
    for r in (0, 2):
        sim = single(r, 30, GrowthRule(growth=10, window=3, threshold=100))
        np.testing.assert_array_equal(ens.replica(r).state.positions, sim.state.positions)
    # without the growth test (growth = 0) the same replica runs on: the test is what froze it
    off = Ensemble(kernel, x, lr=lrs, seed=seeds, observers=observers, divergence=GrowthRule(0))
    off.run(12, progress=False)
    assert 1 not in off.diverged


def test_growth_test_state_survives_checkpoint_and_restore():
    kernel = teacher(scaling="mean_field")
    x, lrs, seeds = starts(2), [0.05, 5.0], [1, 2]

    def make():
        rules = [GrowthRule(10, 3, 100), GrowthRule(10, 3, 100)]
        return Ensemble(kernel, x, lr=lrs, seed=seeds, observers=[LossObserver(every=1)], divergence=rules)

    whole = make()
    whole.run(30, progress=False)
    first = make()
    first.run(5, progress=False)
    saved = first.checkpoint()
    assert [len(h["history"]["loss"]) for h in saved["ensemble"]["divergence"]] == [3, 3]
    resumed = make().restore(saved)
    resumed.run(25, progress=False)
    assert resumed.diverged == whole.diverged and list(whole.diverged) == [1]
    np.testing.assert_array_equal(resumed.positions, whole.positions)


def test_generic_path_for_other_optimizers_matches():
    class Halved(GD):
        def direction(self, positions, field, state, step):
            return super().direction(positions, field, state, step) * 0.5

    kernel = teacher()
    x = starts(2)
    ens = Ensemble(
        kernel, x, optimizer=Halved(), lr=[0.1, 0.2], seed=[0, 1], observers=[LossObserver(every=3)]
    )
    ens.run(6, progress=False)
    for r in range(2):
        assert_replica_matches(ens, r, alone(kernel, x[r], 6, optimizer=Halved(), lr=[0.1, 0.2][r], seed=r))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(lr=[0.1, 0.2], seed=[1, 2, 3]), "different lengths"),
        (dict(), "replicas=None and no per-replica argument"),
        (dict(replicas=0), "replicas=0: expected a positive integer"),
        (
            dict(replicas=2, masses=np.ones((3, 40))),
            r"masses of shape \(3, 40\): expected \(N,\) or \(2, N\)",
        ),
    ],
)
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        Ensemble(teacher(), starts(1)[0], **arguments)


def test_replica_index_is_checked():
    ens = Ensemble(teacher(), starts(1)[0], replicas=2)
    with pytest.raises(IndexError, match=r"replica 2: expected an integer in \[0, 2\)"):
        ens.replica(2)


def test_the_docstring_example_runs():
    import doctest

    import particledyn.ensemble.ensemble as module

    assert doctest.testmod(module).failed == 0


def test_the_readme_example_runs(tmp_path, monkeypatch):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("### Ensembles: many seeds and rates as one run")
    code = text[start:].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code.replace("ens.run(200)", "ens.run(20, progress=False)"), "README.md", "exec"), namespace)
    assert namespace["ens"].fields.fused and len(namespace["loss"]) == 3
    assert namespace["replica"].positions(20).shape == (500, 2)
