"""Reproducibility: same seed, same trajectory bit for bit, whatever the number of numba threads.

The kernels sum over fixed-size chunks of particles in a fixed order and the optimizers are
elementwise, so the thread count must not change a single bit; the particle counts here span
several chunks so that two threads really split the work.
"""

import numpy as np
import pytest

from particledyn import Adam, DeepSetsKernel, Momentum, Simulation
from particledyn.deepsets import CHUNK as DEEPSETS_CHUNK
from particledyn.kernels import TwoLayerNet, two_layer_numba

N_TWO_LAYER = 3 * two_layer_numba.CHUNK + 17
N_DEEPSETS = 2 * DEEPSETS_CHUNK + 3


def _phi(x, ctx, out):
    out[0] = x[0] * x[1]
    out[1] = np.sin(x[0])


def _psi(x, summary, ctx, out):
    out[0] = summary[0] * x[1] - summary[1] + ctx[0][0]
    out[1] = -x[1] * summary[1] + ctx[0][1]


def _noise(step, rng, batch_size):
    return (0.01 * rng.standard_normal(2),)


@pytest.fixture(scope="module")
def two_layer():
    from particledyn.data import teacher_student

    data = teacher_student(2, n=400, seed=1)
    return TwoLayerNet(data.z_train[:200], data.y_train[:200], "sigmoid", "mse", "mean_field")


@pytest.fixture(scope="module")
def deepsets():
    return DeepSetsKernel(_phi, _psi, dim=2, agg_dim=2, context=_noise)


def _run(kernel, n, batch_size, seed=5, steps=6, optimizer=None, dtype="float64"):
    x0 = np.random.default_rng(0).standard_normal((n, kernel.dim))
    sim = Simulation(
        kernel,
        x0,
        optimizer=optimizer or Adam(weight_decay=0.01),
        lr=0.05,
        seed=seed,
        batch_size=batch_size,
        frame_every=2,
        dtype=dtype,
    )
    sim.run(steps, progress=False)
    return sim


def _assert_identical(a, b):
    assert a.sink.steps == b.sink.steps
    for fa, fb in zip(a.sink.frames, b.sink.frames):
        assert np.array_equal(fa, fb)
    for key in a.state.optimizer_state:
        assert np.array_equal(a.state.optimizer_state[key], b.state.optimizer_state[key])


@pytest.mark.parametrize("batch_size", [None, 32])
def test_same_seed_gives_bit_identical_runs(two_layer, batch_size):
    first, second = _run(two_layer, 500, batch_size), _run(two_layer, 500, batch_size)
    _assert_identical(first, second)
    other_seed = _run(two_layer, 500, batch_size, seed=6)
    assert np.array_equal(other_seed.positions, first.positions) == (batch_size is None)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_size", [None, 64])
def test_two_layer_run_does_not_depend_on_thread_count(two_layer, numba_threads, batch_size, dtype):
    numba_threads(1)
    single = _run(two_layer, N_TWO_LAYER, batch_size, dtype=dtype)
    numba_threads(2)
    double = _run(two_layer, N_TWO_LAYER, batch_size, dtype=dtype)
    _assert_identical(single, double)


def test_deepsets_run_does_not_depend_on_thread_count(deepsets, numba_threads):
    numba_threads(1)
    single = _run(deepsets, N_DEEPSETS, None, optimizer=Momentum(beta=0.9))
    numba_threads(2)
    double = _run(deepsets, N_DEEPSETS, None, optimizer=Momentum(beta=0.9))
    _assert_identical(single, double)


def test_restored_checkpoint_continues_bit_identically(two_layer):
    straight = _run(two_layer, 300, 16, steps=8)
    first_half = _run(two_layer, 300, 16, steps=4)
    resumed = Simulation(
        two_layer,
        np.zeros((300, two_layer.dim)),
        optimizer=Adam(weight_decay=0.01),
        lr=0.05,
        batch_size=16,
        frame_every=2,
    )
    resumed.restore(first_half.checkpoint())
    resumed.run(4, progress=False)
    assert resumed.state.step == 8 and resumed.state.time == pytest.approx(straight.state.time, rel=1e-15)
    assert np.array_equal(resumed.positions, straight.positions)
    for key in straight.state.optimizer_state:
        assert np.array_equal(resumed.state.optimizer_state[key], straight.state.optimizer_state[key])
