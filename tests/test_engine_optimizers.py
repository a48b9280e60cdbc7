"""Optimizers and schedules against plain-numpy references (PyTorch conventions).

* GD:        x <- x - lr g
* Momentum:  b <- beta b + g, x <- x - lr b                      (torch.optim.SGD, dampening 0)
* Adam:      m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,
             x <- x - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)   (torch.optim.Adam)
with g = -U + weight_decay x (coupled L2, PyTorch's ``weight_decay``).
"""

import math

import numpy as np
import pytest

from particledyn import GD, SGD, Adam, Constant, Cosine, Momentum, Simulation, StepDecay, make_optimizer
from particledyn.kernels import TwoLayerNet
from particledyn.kernels.two_layer_reference import field_reference


class NumpyOptimizer:
    """Reference update rules, written for clarity."""

    def __init__(self, name, weight_decay=0.0, beta=0.9, beta1=0.9, beta2=0.999, eps=1e-8):
        self.name, self.wd = name, weight_decay
        self.beta, self.beta1, self.beta2, self.eps = beta, beta1, beta2, eps
        self.buffer = self.m = self.v = None
        self.t = 0

    def step(self, x, field, lr):
        g = -field + self.wd * x
        self.t += 1
        if self.name in ("gd", "sgd"):
            return x - lr * g
        if self.name == "momentum":
            self.buffer = g.copy() if self.buffer is None else self.beta * self.buffer + g
            return x - lr * self.buffer
        if self.m is None:
            self.m, self.v = np.zeros_like(x), np.zeros_like(x)
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g * g
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return x - lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state(self):
        if self.name == "momentum":
            return {"velocity": self.buffer}
        if self.name == "adam":
            return {"adam_m": self.m, "adam_v": self.v}
        return {}


CONFIGS = [
    ("gd", {}),
    ("gd", {"weight_decay": 0.05}),
    ("sgd", {"weight_decay": 0.01}),
    ("momentum", {"beta": 0.9}),
    ("momentum", {"beta": 0.5, "weight_decay": 0.05}),
    ("adam", {}),
    ("adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.05}),
]


def rel_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("name, options", CONFIGS)
def test_direction_matches_reference_on_random_fields(name, options, rng):
    """Direct calls of ``direction`` with arbitrary fields, several steps, state compared too."""
    optimizer = make_optimizer(name, **options)
    reference = NumpyOptimizer(name, **options)
    x = rng.standard_normal((37, 5))
    expected = x.copy()
    state = optimizer.init_state(x)
    assert set(state) == set(optimizer.state_names)
    lr = 0.03
    for step in range(6):
        field = rng.standard_normal(x.shape) * 10.0 ** rng.uniform(-3, 1)
        x = x + lr * optimizer.direction(x, field, state, step)
        expected = reference.step(expected, field, lr)
        assert rel_error(x, expected) <= 1e-14
    for key, value in reference.state().items():
        assert rel_error(state[key], value) <= 1e-14


@pytest.mark.parametrize("name, options", CONFIGS)
def test_simulation_matches_reference_loop(name, options, teacher_student_small):
    """A whole run of the two-layer net (mini-batches for 'sgd') against a numpy loop over the
    reference field: positions and optimizer state, step counter and integrated time."""
    data = teacher_student_small
    kernel = TwoLayerNet(data.z_train[:60], data.y_train[:60], "sigmoid", "mse", "mean_field")
    x0 = np.random.default_rng(1).standard_normal((50, kernel.dim))
    masses = np.full(50, 1.0 / 50)
    batch_size = 16 if name == "sgd" else None
    schedule = StepDecay(0.5, every=3, factor=0.5)
    sim = Simulation(
        kernel,
        x0,
        optimizer=make_optimizer(name, **options),
        lr=schedule,
        seed=11,
        batch_size=batch_size,
        frame_every=0,
    )
    sim.run(8, progress=False)

    reference = NumpyOptimizer(name, **options)
    x = x0.copy()
    for step in range(8):
        inputs, targets = sim.context(step)
        assert (inputs.shape[0] == 16) if batch_size else (inputs.shape[0] == 60)
        field = field_reference(x, masses, inputs, targets, "sigmoid", "mean_field", "mse")
        x = reference.step(x, field, schedule(step))
    assert np.max(np.abs(x - x0)) > 1e-2
    assert rel_error(sim.positions, x) <= 1e-12
    for key, value in reference.state().items():
        assert rel_error(sim.state.optimizer_state[key], value) <= 1e-12
    assert sim.state.step == 8
    assert sim.state.time == pytest.approx(sum(schedule(t) for t in range(8)), rel=1e-15)


def test_weight_decay_alone_shrinks_geometrically(rng):
    """With a zero field, GD with weight decay is x <- (1 - lr wd) x exactly (up to rounding)."""
    x = rng.standard_normal((10, 3))
    optimizer = GD(weight_decay=0.1)
    y = x.copy()
    for step in range(5):
        y = y + 0.5 * optimizer.direction(y, np.zeros_like(y), {}, step)
    np.testing.assert_allclose(y, x * 0.95**5, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizers_keep_dtype(dtype, rng):
    x = rng.standard_normal((8, 3)).astype(dtype)
    for optimizer in (GD(), SGD(), Momentum(), Adam(weight_decay=0.1)):
        state = optimizer.init_state(x)
        out = optimizer.direction(x, np.ones_like(x), state, 0)
        assert out.dtype == dtype and all(v.dtype == dtype for v in state.values())


def test_adam_float32_close_to_reference(rng):
    x = rng.standard_normal((64, 4))
    reference = NumpyOptimizer("adam")
    optimizer = Adam()
    x32 = x.astype(np.float32)
    state = optimizer.init_state(x32)
    for step in range(5):
        field = rng.standard_normal(x.shape)
        x32 = x32 + np.float32(0.01) * optimizer.direction(x32, field.astype(np.float32), state, step)
        x = reference.step(x, field, 0.01)
    assert rel_error(x32, x) <= 1e-6


def test_adam_preconditioner_is_last_bias_corrected_second_moment(rng):
    optimizer = Adam(beta2=0.9)
    x = rng.standard_normal((6, 2))
    state = optimizer.init_state(x)
    reference = NumpyOptimizer("adam", beta2=0.9)
    for step in range(3):
        field = rng.standard_normal(x.shape)
        optimizer.direction(x, field, state, step)
        reference.step(x, field, 0.1)
    expected = np.sqrt(reference.v / (1 - 0.9**3)) + 1e-8
    np.testing.assert_allclose(optimizer.preconditioner(state, 3), expected, rtol=1e-14)


def test_schedules_match_their_formulas():
    constant = Constant(0.2)
    assert [constant(t) for t in (0, 7, 10**6)] == [0.2, 0.2, 0.2]
    decay = StepDecay(1.0, every=4, factor=0.5)
    assert [decay(t) for t in range(9)] == [1.0] * 4 + [0.5] * 4 + [0.25]
    cosine = Cosine(1.0, steps=10, lr_min=0.1, warmup=2)
    assert [cosine(0), cosine(1)] == [0.5, 1.0]
    for t in range(2, 14):
        progress = min(1.0, (t - 2) / 8)
        assert cosine(t) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * progress)), rel=1e-15)
    assert cosine(10) == pytest.approx(0.1) and cosine(13) == pytest.approx(0.1)
