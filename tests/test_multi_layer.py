"""The multi-layer network kernel: numba field vs the numpy reference, reference vs finite
differences, exact HVP, per-group permutation equivariance, Simulation runs, bad inputs."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn import GD, Simulation
from particledyn.clouds import genus_region
from particledyn.data import teacher_student
from particledyn.kernel import finite_difference_jvp
from particledyn.kernels import MultiLayerNet
from particledyn.kernels import two_layer_reference as two_layer
from particledyn.kernels.multi_layer_numba import CHUNK
from particledyn.kernels.multi_layer_reference import (
    field_reference,
    hessian_vector_reference,
    loss_reference,
)
from particledyn.state import default_masses

ACTIVATIONS = ("sigmoid", "tanh", "relu")
SCALINGS = ("standard", "mean_field")


def _problem(groups, batch=37, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    positions = rng.normal(size=(sum(groups), 2)) * scale
    inputs = 2.0 * rng.normal(size=(batch, 1))
    targets = np.sin(inputs[:, 0]) + 0.1 * rng.normal(size=batch)
    return positions, default_masses(len(positions), groups), inputs, targets


def _rel(actual, expected):
    return np.abs(actual - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("groups, seed", [((7,), 0), ((5, 4, 3), 0), ((3, 9, 1, 6), 2)])
def test_field_and_loss_match_reference(activation, scaling, groups, seed):
    # seeds chosen so that no block is dead under ReLU (else the field is trivially zero)
    x, m, z, y = _problem(groups, seed=seed)
    kernel = MultiLayerNet(z, y, groups, activation, scaling)
    expected = field_reference(x, m, groups, z, y, activation, scaling)
    offsets = np.cumsum((0,) + groups)
    assert all(np.abs(expected[lo:hi]).max() > 1e-8 for lo, hi in zip(offsets[:-1], offsets[1:]))
    assert _rel(kernel.field(x, m, (z, y)), expected) < 1e-12
    assert kernel.loss(x, m, (z, y)) == pytest.approx(
        loss_reference(x, m, groups, z, y, activation, scaling), rel=1e-12
    )


def test_field_matches_reference_across_chunks():
    # a block larger than one numba chunk, and batch sizes that are not multiples of the lanes
    groups = (CHUNK + 77, 5, CHUNK // 2 + 3)
    for batch in (1, 13):
        x, m, z, y = _problem(groups, batch=batch, seed=batch, scale=0.3)
        for scaling in SCALINGS:
            kernel = MultiLayerNet(z, y, groups, "sigmoid", scaling)
            expected = field_reference(x, m, groups, z, y, "sigmoid", scaling)
            assert _rel(kernel.field(x, m, (z, y)), expected) < 1e-12


def test_field_does_not_depend_on_thread_count():
    groups = (3 * CHUNK + 5, 2 * CHUNK)
    x, m, z, y = _problem(groups, seed=3, scale=0.2)
    kernel = MultiLayerNet(z, y, groups, "tanh", "mean_field")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = kernel.field(x, m, (z, y))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        parallel = kernel.field(x, m, (z, y))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(serial, parallel)


@pytest.mark.parametrize("activation", ("sigmoid", "tanh"))
@pytest.mark.parametrize("scaling", SCALINGS)
def test_reference_field_is_negative_gradient(activation, scaling):
    groups = (4, 3, 2)
    x, m, z, y = _problem(groups, batch=15, seed=5)
    per_unit = m if scaling == "mean_field" else np.ones_like(m)
    field = field_reference(x, m, groups, z, y, activation, scaling)
    h = 1e-6
    grad = np.empty_like(x)
    for i in range(x.shape[0]):
        for k in range(2):
            e = np.zeros_like(x)
            e[i, k] = h
            grad[i, k] = (
                loss_reference(x + e, m, groups, z, y, activation, scaling)
                - loss_reference(x - e, m, groups, z, y, activation, scaling)
            ) / (2 * h)
    assert _rel(field, -grad / per_unit[:, None]) < 1e-7


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("scaling", SCALINGS)
def test_reference_hvp_matches_dense_hessian(activation, scaling):
    # dense Hessian (in the mass metric) by central differences of the exact gradient, column by column
    groups = (4, 3, 2)
    x, m, z, y = _problem(groups, batch=15, seed=6)
    n = x.size
    h = 1e-6
    hessian = np.empty((n, n))
    for col in range(n):
        e = np.zeros(n)
        e[col] = h
        e = e.reshape(x.shape)
        hessian[:, col] = -(
            field_reference(x + e, m, groups, z, y, activation, scaling)
            - field_reference(x - e, m, groups, z, y, activation, scaling)
        ).ravel() / (2 * h)
    per_unit = np.repeat(m if scaling == "mean_field" else np.ones_like(m), 2)
    symmetric = per_unit[:, None] * hessian  # the plain loss Hessian
    assert np.abs(symmetric - symmetric.T).max() < 1e-6 * np.abs(symmetric).max()
    rng = np.random.default_rng(7)
    for _ in range(3):
        v = rng.normal(size=x.shape)
        exact = hessian_vector_reference(x, m, groups, z, y, activation, scaling, v)
        assert _rel(exact.ravel(), hessian @ v.ravel()) < 1e-6


@pytest.mark.parametrize("scaling", SCALINGS)
def test_kernel_hvp_matches_reference_and_finite_differences(scaling):
    groups = (9, 6, 5)
    x, m, z, y = _problem(groups, batch=20, seed=8)
    kernel = MultiLayerNet(z, y, groups, "sigmoid", scaling)
    v = np.random.default_rng(9).normal(size=x.shape)
    expected = hessian_vector_reference(x, m, groups, z, y, "sigmoid", scaling, v)
    for chunk in (2, 4096):
        assert _rel(kernel.hvp(x, m, (z, y), v, chunk=chunk), expected) < 1e-12
    assert _rel(finite_difference_jvp(kernel, x, m, (z, y), v), expected) < 1e-7


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("scaling", SCALINGS)
def test_one_block_is_the_two_layer_network(activation, scaling):
    x, m, z, y = _problem((11,), seed=10)
    multi = MultiLayerNet(z, y, (11,), activation, scaling)
    expected = two_layer.field_reference(x, m, z, y, activation, scaling, "mse")
    assert _rel(multi.field(x, m, (z, y)), expected) < 1e-12
    v = np.random.default_rng(11).normal(size=x.shape)
    expected = two_layer.hessian_vector_reference(x, m, z, y, activation, scaling, "mse", v)
    assert _rel(multi.hvp(x, m, (z, y), v), expected) < 1e-12


def test_float32_close_to_float64():
    groups = (300, 200, 100)
    x, m, z, y = _problem(groups, batch=128, seed=12, scale=0.5)
    for scaling in SCALINGS:
        kernel = MultiLayerNet(z, y, groups, "sigmoid", scaling)
        f64 = kernel.field(x, m, (z, y))
        f32 = kernel.field(x.astype(np.float32), m, (z, y))
        assert f32.dtype == np.float32
        assert _rel(f32.astype(np.float64), f64) < 1e-4
        assert kernel.loss(x.astype(np.float32), m, (z, y)) == pytest.approx(
            kernel.loss(x, m, (z, y)), rel=1e-5
        )


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 8), min_size=1, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    scaling=st.sampled_from(SCALINGS),
)
def test_equivariant_within_each_group(sizes, seed, scaling):
    groups = tuple(sizes)
    x, m, z, y = _problem(groups, batch=11, seed=seed)
    m = m * np.random.default_rng(seed).uniform(0.5, 1.5, size=m.shape)  # unequal masses travel along
    kernel = MultiLayerNet(z, y, groups, "tanh", scaling)
    rng = np.random.default_rng(seed + 1)
    offsets = np.concatenate([[0], np.cumsum(groups)])
    perm = np.concatenate([lo + rng.permutation(size) for lo, size in zip(offsets[:-1], groups)])
    field = kernel.field(x, m, (z, y))
    permuted = kernel.field(x[perm], m[perm], (z, y))
    np.testing.assert_allclose(permuted, field[perm], rtol=1e-12, atol=1e-14 * np.abs(field).max())
    assert kernel.loss(x[perm], m[perm], (z, y)) == pytest.approx(kernel.loss(x, m, (z, y)), rel=1e-12)


def test_swapping_neurons_across_groups_changes_the_network():
    # the groups are distinct sets: a cross-block swap is not a symmetry of the loss
    groups = (3, 3)
    x, m, z, y = _problem(groups, seed=13)
    kernel = MultiLayerNet(z, y, groups, "sigmoid")
    swap = np.array([3, 1, 2, 0, 4, 5])
    assert abs(kernel.loss(x[swap], m, (z, y)) - kernel.loss(x, m, (z, y))) > 1e-6


def test_context_draws_minibatches_from_rng():
    data = teacher_student(d=1, n=400, seed=1)
    kernel = MultiLayerNet(data.z_train, data.y_train, (4, 4))
    z1, y1 = kernel.context(3, np.random.default_rng(5), 32)
    z2, y2 = kernel.context(3, np.random.default_rng(5), 32)
    assert z1.shape == (32, 1) and y1.shape == (32,)
    np.testing.assert_array_equal(z1, z2)
    z_full, _ = kernel.context(0, np.random.default_rng(0), None)
    assert z_full.shape[0] == data.n_train


@pytest.mark.parametrize("scaling", SCALINGS)
def test_simulation_runs_and_learns(scaling):
    data = teacher_student(d=1, n=1000, seed=2)
    groups = (60, 40, 20)
    positions = np.concatenate([genus_region(size, genus=2, seed=g) for g, size in enumerate(groups)])
    kernel = MultiLayerNet(
        data.z_train,
        data.y_train,
        groups,
        "sigmoid",
        scaling,
        test_inputs=data.z_test,
        test_targets=data.y_test,
    )
    lr = 0.01 if scaling == "standard" else 0.5
    sim = Simulation(kernel, positions, GD(), lr=lr, batch_size=128, seed=3, frame_every=0)
    np.testing.assert_array_equal(sim.state.masses, default_masses(sum(groups), groups))
    np.testing.assert_allclose([sim.state.masses[sl].sum() for sl in kernel.slices], 1.0)
    before = kernel.loss(sim.positions, sim.state.masses, kernel.evaluation_context())
    sim.run(60, progress=False)
    after = kernel.loss(sim.positions, sim.state.masses, kernel.evaluation_context())
    assert sim.positions.shape == (sum(groups), 2) and np.all(np.isfinite(sim.positions))
    assert after < before
    assert np.isfinite(kernel.test_loss(sim.positions, sim.state.masses))
    assert kernel.describe()["groups"] == list(groups) and kernel.describe()["scaling"] == scaling


def test_simulation_float32():
    data = teacher_student(d=1, n=500, seed=4)
    groups = (30, 20)
    positions = np.concatenate([genus_region(size, genus=2, seed=g) for g, size in enumerate(groups)])
    kernel = MultiLayerNet(data.z_train, data.y_train, groups)
    sim = Simulation(kernel, positions, lr=0.01, dtype="float32", frame_every=0).run(5, progress=False)
    assert sim.positions.dtype == np.float32 and sim.last_field.dtype == np.float32


def test_bad_inputs_raise_clear_errors():
    z, y = np.ones((10, 1)), np.zeros(10)
    with pytest.raises(ValueError, match=r"d = 1 only"):
        MultiLayerNet(np.ones((10, 2)), y, (3, 3))
    with pytest.raises(ValueError, match=r"groups="):
        MultiLayerNet(z, y, ())
    with pytest.raises(ValueError, match=r"groups="):
        MultiLayerNet(z, y, 5)
    with pytest.raises(ValueError, match=r"integer >= 1, got 0"):
        MultiLayerNet(z, y, (3, 0))
    with pytest.raises(ValueError, match=r"integer >= 1, got 2.5"):
        MultiLayerNet(z, y, (3, 2.5))
    with pytest.raises(ValueError, match=r"targets of shape \(9,\)"):
        MultiLayerNet(z, np.zeros(9), (3,))
    with pytest.raises(ValueError, match=r"NaN or inf"):
        MultiLayerNet(np.full((10, 1), np.nan), y, (3,))
    with pytest.raises(ValueError, match=r"activation="):
        MultiLayerNet(z, y, (3,), activation="gelu")
    with pytest.raises(ValueError, match=r"scaling="):
        MultiLayerNet(z, y, (3,), scaling="ntk")
    with pytest.raises(ValueError, match=r"both or neither"):
        MultiLayerNet(z, y, (3,), test_inputs=z)
    kernel = MultiLayerNet(z, y, (3, 4))
    with pytest.raises(ValueError, match=r"6 particles: expected 7"):
        kernel.field(np.zeros((6, 2)), np.ones(6), (z, y))
    with pytest.raises(ValueError, match=r"masses of shape \(6,\): expected \(7,\)"):
        kernel.field(np.zeros((7, 2)), np.ones(6), (z, y))
    with pytest.raises(ValueError, match=r"expected \(N, 2\)"):
        kernel.field(np.zeros((7, 3)), np.ones(7), (z, y))
    with pytest.raises(ValueError, match=r"6 particles: expected 7"):
        Simulation(kernel, np.zeros((6, 2)))
