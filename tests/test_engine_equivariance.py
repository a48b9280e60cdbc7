"""Permutation equivariance (property P1) of every kernel and every optimizer, with random permutations.

U(PX) = P U(X) for the field, and a run started from PX (masses permuted alike, same seed) is the
permuted run, optimizer state included. Summing the forward pass over particles in another order
changes the rounding, so "equal" means equal to 1e-12 relative.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn import BlackBoxKernel, DeepSetsKernel, Simulation, make_optimizer
from particledyn.kernels import TwoLayerNet


def _shared_shift(step, rng, batch_size):
    """A context drawn from (seed, step): one random vector shared by all particles."""
    scale = 0.1 if batch_size is None else 0.1 + 0.01 * batch_size
    return (scale * rng.standard_normal(3),)


def _phi(x, ctx, out):
    for k in range(3):
        out[k] = x[k]
        out[3 + k] = np.tanh(x[k])


def _psi(x, summary, ctx, out):
    shift = ctx[0]
    for k in range(3):
        out[k] = -(x[k] - summary[k]) + 0.5 * summary[3 + k] * np.tanh(x[k]) + shift[k]


def _pairwise_attraction(positions, masses, context):
    """sum_j m_j (x_j - x_i) exp(-|x_i - x_j|^2) plus a shared drift: equivariant, but a black box."""
    diff = positions[None, :, :] - positions[:, None, :]
    weight = masses[None, :] * np.exp(-np.sum(diff**2, axis=2))
    return np.einsum("ij,ijk->ik", weight, diff) + context[0]


def _teacher_student(rows=40):
    from particledyn.data import teacher_student

    data = teacher_student(2, n=100, seed=3)
    return data.z_train[:rows], data.y_train[:rows]


def _classification(rows=30, classes=3):
    rng = np.random.default_rng(4)
    return rng.standard_normal((rows, 2)), rng.integers(0, classes, size=rows)


# name -> (kernel, lr, scale of the initial positions); built once per module (numba compiles once)
KERNELS = {
    "two_layer_sigmoid_mse_standard": (
        TwoLayerNet(*_teacher_student(), "sigmoid", "mse", "standard"),
        0.02,
        1.0,
    ),
    "two_layer_tanh_ce_mean_field": (
        TwoLayerNet(*_classification(), "tanh", "cross_entropy", "mean_field"),
        0.5,
        1.0,
    ),
    "two_layer_relu_mse2_mean_field": (
        TwoLayerNet(
            _teacher_student()[0],
            np.stack([_teacher_student()[1], -_teacher_student()[1]], axis=1),
            "relu",
            "mse",
            "mean_field",
        ),
        0.2,
        1.0,
    ),
    "deepsets_example": (DeepSetsKernel(_phi, _psi, dim=3, agg_dim=6, context=_shared_shift), 0.1, 1.0),
    "blackbox_pairwise": (BlackBoxKernel(_pairwise_attraction, dim=3, context=_shared_shift), 0.1, 1.0),
}

OPTIMIZERS = [
    ("gd", {}, None),
    ("gd", {"weight_decay": 0.1}, None),
    ("sgd", {}, 8),
    ("sgd", {"weight_decay": 0.1}, 8),
    ("momentum", {"beta": 0.9}, None),
    ("momentum", {"beta": 0.8, "weight_decay": 0.1}, None),
    ("adam", {}, None),
    ("adam", {"weight_decay": 0.1}, 8),
]


def _instance(seed, n, dim, scale):
    rng = np.random.default_rng(seed)
    positions = scale * rng.standard_normal((n, dim))
    masses = rng.uniform(0.2, 1.0, size=n)
    return positions, masses / masses.sum()


def _assert_permuted(actual, expected, what):
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    error = float(np.max(np.abs(actual - expected)))
    assert error <= 1e-12 * scale, f"{what}: relative deviation {error / scale:.3g} from the permuted run"


@pytest.mark.parametrize("name", KERNELS)
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_field_is_permutation_equivariant(name, n, seed, data):
    kernel, _, scale = KERNELS[name]
    perm = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    x, m = _instance(seed, n, kernel.dim, scale)
    context = kernel.context(0, np.random.default_rng(seed), None)
    field = kernel.field(x, m, context)
    _assert_permuted(kernel.field(x[perm], m[perm], context), field[perm], "U(PX) vs P U(X)")
    if kernel.is_gradient:
        assert kernel.loss(x[perm], m[perm], context) == pytest.approx(kernel.loss(x, m, context), rel=1e-12)


@pytest.mark.parametrize("name", [name for name in KERNELS if name.startswith("two_layer")])
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_hessian_vector_product_is_permutation_equivariant(name, n, seed, data):
    """H(PX) (PV) = P H(X) V: the curvature the sharpness observer measures."""
    kernel, _, scale = KERNELS[name]
    perm = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    x, m = _instance(seed, n, kernel.dim, scale)
    v = np.random.default_rng(seed + 1).standard_normal(x.shape)
    context = kernel.evaluation_context()
    product = kernel.hvp(x, m, context, v)
    _assert_permuted(kernel.hvp(x[perm], m[perm], context, v[perm]), product[perm], "H(PX) PV vs P H(X) V")


@pytest.mark.parametrize(
    "optimizer, options, batch_size",
    OPTIMIZERS,
    ids=[f"{o}-{'wd' if p.get('weight_decay') else 'nowd'}-{b}" for o, p, b in OPTIMIZERS],
)
@pytest.mark.parametrize("name", KERNELS)
@settings(max_examples=6, deadline=None)
@given(n=st.integers(1, 30), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_trajectory_from_permuted_start_is_permuted_trajectory(
    name, optimizer, options, batch_size, n, seed, data
):
    kernel, lr, scale = KERNELS[name]
    perm = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    x, m = _instance(seed, n, kernel.dim, scale)
    runs = []
    for start, masses in ((x, m), (x[perm], m[perm])):
        sim = Simulation(
            kernel,
            start,
            optimizer=make_optimizer(optimizer, **options),
            lr=lr,
            masses=masses,
            seed=seed,
            batch_size=batch_size,
            frame_every=2,
        )
        sim.run(5, progress=False)
        runs.append(sim)
    plain, permuted = runs
    for frame, permuted_frame in zip(plain.sink.frames, permuted.sink.frames):
        _assert_permuted(permuted_frame, frame[perm], "positions")
    assert np.max(np.abs(plain.positions - x)) > 0, "the run must move the particles"
    for key, value in plain.state.optimizer_state.items():
        _assert_permuted(permuted.state.optimizer_state[key], value[perm], f"optimizer state {key}")
    assert np.array_equal(permuted.state.masses, plain.state.masses[perm])
