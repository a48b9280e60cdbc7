"""Bad input is refused at once with a one-line error naming the bad value and what was expected."""

import re

import numpy as np
import pytest

from particledyn import (
    GD,
    Adam,
    BlackBoxKernel,
    Cosine,
    DeepSetsKernel,
    Momentum,
    Simulation,
    StepDecay,
    make_optimizer,
)
from particledyn.kernels import TwoLayerNet
from particledyn.observers import ObserverError


def _contraction(positions, masses, context):
    return -positions


KERNEL = BlackBoxKernel(_contraction, dim=2)
GOOD = np.random.default_rng(0).standard_normal((4, 2))


def raises(error, text):
    """pytest.raises with a literal (not regex) fragment of the message."""
    return pytest.raises(error, match=re.escape(text))


def _with(positions, row, col, value):
    out = np.array(positions, dtype=np.float64)
    out[row, col] = value
    return out


@pytest.mark.parametrize(
    "positions, error, text",
    [
        (np.zeros(5), ValueError, "positions of shape (5,): expected a 2-D array"),
        (np.zeros((2, 3, 2)), ValueError, "positions of shape (2, 3, 2)"),
        (np.zeros((0, 2)), ValueError, "N = 0 particles: expected at least one particle"),
        (np.zeros((4, 3)), ValueError, "positions of shape (4, 3): expected (N, 2)"),
        (_with(GOOD, 1, 0, np.nan), ValueError, "positions[1, 0] = nan: expected finite"),
        (_with(GOOD, 3, 1, -np.inf), ValueError, "positions[3, 1] = -inf: expected finite"),
        (GOOD.astype(complex), ValueError, "positions of dtype complex128: expected real numbers"),
        (np.array([["a", "b"]]), ValueError, "positions of dtype <U1: expected real numbers"),
    ],
)
def test_bad_positions(positions, error, text):
    with raises(error, text):
        Simulation(KERNEL, positions)


def test_bad_dtype_and_zero_dimension():
    with raises(ValueError, "dtype=float16: expected float32 or float64"):
        Simulation(KERNEL, GOOD, dtype="float16")
    with raises(ValueError, "D = 0"):
        Simulation(BlackBoxKernel(_contraction, dim=1), np.zeros((3, 0)))


@pytest.mark.parametrize(
    "lr, error, text",
    [
        (0.0, ValueError, "lr=0.0: expected a positive finite learning rate"),
        (-0.1, ValueError, "lr=-0.1"),
        (float("nan"), ValueError, "lr=nan"),
        (float("inf"), ValueError, "lr=inf"),
        ("fast", TypeError, "lr='fast': expected a positive number"),
        (True, TypeError, "lr=True"),
    ],
)
def test_bad_learning_rate(lr, error, text):
    with raises(error, text):
        Simulation(KERNEL, GOOD, lr=lr)


def test_learning_rate_function_checked_at_every_step():
    sim = Simulation(KERNEL, GOOD, lr=lambda step: 0.1 - 0.05 * step)
    with raises(ValueError, "lr at step 2=0.0: expected a positive finite learning rate"):
        sim.run(5, progress=False)
    assert sim.state.step == 2


@pytest.mark.parametrize(
    "masses, text",
    [
        (np.ones(3), "masses of shape (3,): expected (4,)"),
        (np.ones((4, 1)), "masses of shape (4, 1): expected (4,)"),
        ([0.5, 0.5, -1.0, 1.0], "masses with min -1.0: expected positive finite masses"),
        ([0.5, 0.5, 0.0, 1.0], "masses with min 0.0"),
        ([0.5, np.nan, 0.5, 1.0], "masses with min nan"),
    ],
)
def test_bad_masses(masses, text):
    with raises(ValueError, text):
        Simulation(KERNEL, GOOD, masses=masses)


@pytest.mark.parametrize(
    "batch_size, text",
    [
        (0, "batch_size=0: expected a positive integer or None"),
        (-3, "batch_size=-3"),
        (2.5, "batch_size=2.5"),
    ],
)
def test_bad_batch_size(batch_size, text):
    with raises(ValueError, text):
        Simulation(KERNEL, GOOD, batch_size=batch_size)


@pytest.mark.parametrize(
    "build, text",
    [
        (lambda: Momentum(beta=1.0), "beta=1.0: expected 0 <= beta < 1"),
        (lambda: Momentum(beta=-0.1), "beta=-0.1"),
        (lambda: Momentum(beta=float("nan")), "beta=nan"),
        (lambda: Adam(beta1=1.5), "beta1=1.5: expected 0 <= beta1 < 1"),
        (lambda: Adam(beta2=-0.5), "beta2=-0.5: expected 0 <= beta2 < 1"),
        (lambda: Adam(eps=0.0), "eps=0.0: expected a positive finite number"),
        (lambda: Adam(eps=float("inf")), "eps=inf"),
        (lambda: GD(weight_decay=-1.0), "weight_decay=-1.0: expected a finite number >= 0"),
        (lambda: Adam(weight_decay=float("inf")), "weight_decay=inf"),
        (lambda: make_optimizer("rmsprop"), "optimizer='rmsprop': expected one of"),
    ],
)
def test_bad_optimizer_hyperparameters(build, text):
    with raises(ValueError, text):
        build()


def test_bad_simulation_arguments():
    with raises(TypeError, "kernel='two_layer': expected a particledyn Kernel"):
        Simulation("two_layer", GOOD)
    with raises(TypeError, "optimizer='adam': expected a particledyn Optimizer"):
        Simulation(KERNEL, GOOD, optimizer="adam")
    with raises(ValueError, "frame_every=-1: expected an integer >= 0"):
        Simulation(KERNEL, GOOD, frame_every=-1)
    with raises(TypeError, "observer 3: expected a particledyn Observer"):
        Simulation(KERNEL, GOOD, observers=[3])
    sim = Simulation(KERNEL, GOOD)
    with raises(ValueError, "steps=-1: expected an integer >= 0"):
        sim.run(-1)
    with raises(ValueError, "checkpoint positions of shape (3, 2): expected (4, 2)"):
        sim.restore({**sim.checkpoint(), "positions": np.zeros((3, 2))})


@pytest.mark.parametrize(
    "build, text",
    [
        (lambda: StepDecay(0.1, every=0), "every=0: expected a positive integer"),
        (lambda: StepDecay(0.1, every=5, factor=1.5), "factor=1.5: expected 0 < factor <= 1"),
        (lambda: StepDecay(-0.1, every=5), "lr=-0.1"),
        (lambda: Cosine(0.1, steps=0), "steps=0: expected a positive integer"),
        (lambda: Cosine(0.1, steps=10, lr_min=0.2), "lr_min=0.2: expected 0 <= lr_min <= lr"),
        (lambda: Cosine(0.1, steps=10, warmup=10), "warmup=10: expected an integer in [0, steps)"),
    ],
)
def test_bad_schedules(build, text):
    with raises(ValueError, text):
        build()


Z = np.random.default_rng(1).standard_normal((6, 2))
Y = np.arange(6) % 3


@pytest.mark.parametrize(
    "options, text",
    [
        ({"activation": "softplus"}, "activation='softplus': expected one of 'sigmoid', 'tanh', 'relu'"),
        ({"loss": "hinge"}, "loss='hinge': expected one of"),
        ({"scaling": "ntk"}, "scaling='ntk': expected one of"),
        ({"inputs": np.zeros(6)}, "inputs of shape (6,): expected (n, d) with n >= 1"),
        ({"inputs": np.zeros((0, 2)), "targets": np.zeros(0)}, "inputs of shape (0, 2)"),
        ({"inputs": _with(Z, 2, 1, np.inf)}, "inputs[2, 1] = inf: expected finite values"),
        ({"targets": np.zeros(5)}, "targets with 5 rows: expected 6 (one per input)"),
        ({"targets": np.full(6, np.nan)}, "targets[0] = nan: expected finite values"),
        (
            {"loss": "cross_entropy", "targets": Y + 0.5},
            "dtype float64 (min 0.5) for cross_entropy: expected a 1-D array of non-negative integer",
        ),
        ({"loss": "cross_entropy", "targets": Y - 1}, "(min -1) for cross_entropy"),
        (
            {"loss": "cross_entropy", "targets": Y, "n_outputs": 2},
            "label 2 with n_outputs=2: expected labels < n_outputs",
        ),
    ],
)
def test_bad_two_layer_arguments(options, text):
    arguments = {"inputs": Z, "targets": Z[:, 0], **options}
    with raises(ValueError, text):
        TwoLayerNet(**arguments)


def _phi(x, ctx, out):
    out[0] = x[0]


def test_bad_user_kernels():
    with raises(ValueError, "dim=0: expected a positive integer"):
        DeepSetsKernel(_phi, _phi, dim=0, agg_dim=1)
    with raises(ValueError, "agg_dim=1.5: expected a positive integer"):
        DeepSetsKernel(_phi, _phi, dim=1, agg_dim=1.5)
    with raises(TypeError, "psi=3: expected a function"):
        DeepSetsKernel(_phi, 3, dim=1, agg_dim=1)
    with raises(TypeError, "update=None: expected a function"):
        BlackBoxKernel(None, dim=2)
    with raises(ValueError, "dim=-1: expected a positive integer"):
        BlackBoxKernel(_contraction, dim=-1)
    flat = BlackBoxKernel(lambda x, m, c: x.sum(axis=1), dim=2, name="flat")
    with raises(ValueError, "flat returned shape (4,): expected (4, 2)"):
        Simulation(flat, GOOD).step()


def test_sharpness_k_above_the_parameter_count_is_refused_before_the_first_frame():
    from particledyn.geometry import kernel_sharpness

    net = TwoLayerNet(Z[:, :1], Z[:, 1])  # D = 2: three particles have 6 parameters
    sim = Simulation(net, GOOD[:3], observers=[kernel_sharpness(k=7)])
    with raises(
        ObserverError,
        "observer 'sharpness' failed at step 0: ValueError: k=7: expected an integer number of "
        "eigenpairs in 1..6 (at most the number of parameters N * D = 6)",
    ):
        sim.run(1, progress=False)
    assert sim.sink.steps == [] and sim.state.step == 0
