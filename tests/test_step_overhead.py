"""The per-step context draw: a generator is built only for kernels that read it."""

import numpy as np
import pytest

import particledyn.simulation as simulation
from particledyn import GD, Simulation
from particledyn.kernels import TwoLayerNet


def _sim(batch_size=None, epoch=False):
    rng = np.random.default_rng(0)
    kernel = TwoLayerNet(rng.normal(size=(40, 2)), rng.normal(size=40))
    if epoch:
        kernel.sample_by_epoch(8, seed=1)
    return Simulation(
        kernel, rng.normal(size=(16, 3)), GD(), lr=0.05, seed=3, batch_size=batch_size, frame_every=0
    )


@pytest.mark.parametrize(
    "batch_size,epoch,built", [(None, False, 0), (40, False, 0), (8, True, 0), (8, False, 5)]
)
def test_a_generator_is_built_only_when_the_batch_is_drawn(monkeypatch, batch_size, epoch, built):
    calls = []
    real = simulation.step_rng
    monkeypatch.setattr(simulation, "step_rng", lambda *a: calls.append(a) or real(*a))
    _sim(batch_size, epoch).run(5, progress=False)
    assert len(calls) == built


@pytest.mark.parametrize("batch_size,epoch", [(None, False), (8, True)])
def test_skipping_the_generator_changes_no_bit(monkeypatch, batch_size, epoch):
    fast = _sim(batch_size, epoch).run(6, progress=False).positions
    monkeypatch.setattr(TwoLayerNet, "draws_context", lambda self, b: True)
    np.testing.assert_array_equal(_sim(batch_size, epoch).run(6, progress=False).positions, fast)
