"""The wide forward pass (two_layer_wide_numba.forward): batch tiles and four-neuron blocks change
nothing (bit for bit), the values match the plain-numpy reference in float64, and the loss observer
runs one forward pass per data set."""

import numba
import numpy as np
import pytest

from particledyn import Simulation
from particledyn.kernels import TwoLayerNet
from particledyn.kernels import two_layer_wide_numba as wide
from particledyn.kernels.fastmath import activation_tag
from particledyn.kernels.two_layer_reference import forward_reference, loss_reference
from particledyn.observers import LossObserver, StepInfo

D, C = 20, 3  # past WIDE_DIMS: the wide loops


def problem(n, batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D + C)) * 0.5
    coef = rng.uniform(0.5, 1.5, size=n)
    z = rng.standard_normal((batch, D))
    return x.astype(dtype), coef.astype(dtype), z


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiles_and_threads_leave_the_bits_unchanged(dtype):
    # N = 2 chunks + 7 (blocks of four and single particles), B = 3 tiles + a part
    x, coef, z = problem(2 * wide.CHUNK + 7, 3 * wide.TILE + 40, dtype)
    act = activation_tag("sigmoid", dtype)
    inputs_t = wide.pad_batch(z, dtype)
    one_tile = wide.forward(act, x, coef, inputs_t, inputs_t.shape[1])
    threads = numba.get_num_threads()
    for tile in (wide.LANES, 24, wide.TILE):
        assert np.array_equal(wide.forward(act, x, coef, inputs_t, tile), one_tile), tile
    numba.set_num_threads(1)
    try:
        assert np.array_equal(wide.forward(act, x, coef, inputs_t), one_tile)
    finally:
        numba.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("slot", range(wide.NEURONS))
def test_a_block_of_four_gives_each_particle_the_bits_it_gets_alone(dtype, slot):
    """Particle 0 alone (the single-particle loop) and in any slot of a block of four whose other
    three particles carry zero output weights (exact zeros in every sum): the same outputs."""
    x, coef, z = problem(wide.NEURONS, 2 * wide.TILE + 8, dtype, seed=slot)
    act = activation_tag("tanh", dtype)
    inputs_t = wide.pad_batch(z, dtype)
    alone = wide.forward(act, x[:1], coef[:1], inputs_t)
    block = x.copy()
    block[:, D:] = 0
    block[slot] = x[0]
    assert np.array_equal(wide.forward(act, block, coef[[0] * wide.NEURONS], inputs_t), alone)


def test_forward_matches_the_reference_float64():
    x, coef, z = problem(2 * wide.CHUNK + 7, 3 * wide.TILE + 40, np.float64, seed=3)
    act = activation_tag("sigmoid", np.float64)
    out = wide.forward(act, x, coef, wide.pad_batch(z, np.float64))[:, : z.shape[0]].T
    expected, _ = forward_reference(x, coef, z, "sigmoid", "mean_field")
    assert np.max(np.abs(out - expected)) <= 1e-12 * np.max(np.abs(expected))


def classifier(n=37, batch=300, test=90, seed=1):
    rng = np.random.default_rng(seed)
    z, z_test = rng.standard_normal((batch, D)), rng.standard_normal((test, D))
    y, y_test = rng.integers(0, C, batch), rng.integers(0, C, test)
    kernel = TwoLayerNet(
        z, y, "sigmoid", "cross_entropy", n_outputs=C, test_inputs=z_test, test_targets=y_test
    )
    x = rng.standard_normal((n, D + C)) * 0.5
    return kernel, x, (z, y, z_test, y_test)


def test_loss_and_accuracy_are_the_two_calls():
    kernel, x, (z, y, _, _) = classifier()
    m = np.full(len(x), 1.0 / len(x))
    loss, accuracy = kernel.loss_and_accuracy(x, m, kernel.evaluation_context(), y)
    assert loss == kernel.loss(x, m, kernel.evaluation_context())
    assert accuracy == kernel.accuracy(x, m, z, y)
    assert abs(loss - loss_reference(x, m, z, y, "sigmoid", "standard", "cross_entropy")) <= 1e-12 * loss
    outputs, _ = forward_reference(x, m, z, "sigmoid", "standard")
    assert accuracy == np.mean(np.argmax(outputs, axis=1) == y)


class CountingNet(TwoLayerNet):
    """A TwoLayerNet that counts the rows its forward pass runs on."""

    rows = 0

    def outputs(self, positions, masses, inputs):
        CountingNet.rows += inputs.shape[0]
        return super().outputs(positions, masses, inputs)


def test_loss_observer_runs_one_forward_pass_per_data_set():
    kernel, x, labels = classifier()
    counting = CountingNet(
        labels[0],
        labels[1],
        "sigmoid",
        "cross_entropy",
        n_outputs=C,
        test_inputs=labels[2],
        test_targets=labels[3],
    )
    m = np.full(len(x), 1.0 / len(x))
    expected = {
        "loss": kernel.loss(x, m, kernel.evaluation_context()),
        "test_loss": kernel.test_loss(x, m),
        "accuracy": kernel.accuracy(x, m, labels[0], labels[1]),
        "test_accuracy": kernel.accuracy(x, m, labels[2], labels[3]),
    }
    info = _step_info(counting, x, m)
    CountingNet.rows = 0
    values = LossObserver(labels=labels).observe(info)
    assert values == expected
    assert CountingNet.rows == labels[0].shape[0] + labels[2].shape[0]  # the old code: twice as many
    # labels on other inputs than the kernel's: the separate calls, the same values as before
    other = (labels[0] + 1.0, labels[1], labels[2], labels[3])
    CountingNet.rows = 0
    values = LossObserver(labels=other).observe(info)
    assert values["loss"] == expected["loss"] and values["test_loss"] == expected["test_loss"]
    assert values["accuracy"] == kernel.accuracy(x, m, other[0], other[1])
    assert CountingNet.rows == 2 * (labels[0].shape[0] + labels[2].shape[0])


def _step_info(kernel, x, m):
    """The StepInfo a simulation hands its observers at step 0."""
    return StepInfo(step=0, time=0.0, positions=x, masses=m, lr=0.0, simulation=Simulation(kernel, x, lr=0.1))
