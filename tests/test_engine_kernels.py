"""The fused numba two-layer kernel against its plain-numpy reference and against finite differences.

Compilation dominates the cost of these tests: each (activation, dtype) pair is compiled once per
process (``two_layer_numba.compiled_loops`` caches it), so only float64 × {sigmoid, tanh, relu} and
float32 × sigmoid are used here.
"""

import numpy as np
import pytest

from particledyn import GD, Simulation
from particledyn.kernel import finite_difference_jvp
from particledyn.kernels import TwoLayerNet, two_layer_numba
from particledyn.kernels.two_layer_reference import (
    field_reference,
    forward_reference,
    hessian_vector_reference,
    loss_reference,
)

ACTIVATIONS = ("sigmoid", "tanh", "relu")
LOSSES = ("mse", "cross_entropy")
SCALINGS = ("standard", "mean_field")
CHUNK = two_layer_numba.CHUNK
# (d, C, B, N): B never a multiple of the 8 lanes; N = 1, N below a chunk, N = 2 chunks + 5;
# the last shape is past WIDE_DIMS, so it runs the per-particle loops of two_layer_wide_numba
SHAPES = ((1, 1, 5, 1), (2, 3, 37, 100), (3, 2, 13, 2 * CHUNK + 5), (two_layer_numba.WIDE_DIMS, 3, 11, 300))


def assert_rel_close(actual, expected, rtol, what=""):
    """max |actual - expected| <= rtol * max |expected| (normwise relative error)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
    error = float(np.max(np.abs(actual - expected)))
    assert error <= rtol * scale, f"{what}: relative error {error / scale:.3g} > {rtol:g}"


def make_problem(activation, loss, scaling, d, n_out, batch, n, seed=0):
    """A TwoLayerNet on random data, random positions and random positive masses."""
    rng = np.random.default_rng(seed)
    inputs = 2.0 * rng.standard_normal((batch, d))
    if loss == "mse":
        targets = rng.standard_normal(batch) if n_out == 1 else rng.standard_normal((batch, n_out))
        kernel = TwoLayerNet(inputs, targets, activation, loss, scaling)
    else:
        n_out = max(n_out, 2)
        targets = rng.integers(0, n_out, size=batch)
        kernel = TwoLayerNet(inputs, targets, activation, loss, scaling, n_outputs=n_out)
    positions = rng.standard_normal((n, d + kernel.n_outputs))
    masses = rng.uniform(0.5, 1.5, size=n)
    masses /= masses.sum()
    return kernel, positions, masses, (inputs, targets)


def unit_mass_weights(kernel, masses):
    """s_i with U_i = -(1/s_i) dL/dx_i: the masses for mean-field scaling, 1 otherwise."""
    return masses if kernel.scaling == "mean_field" else np.ones_like(masses)


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("d, n_out, batch, n", SHAPES)
def test_fused_kernel_matches_reference_float64(activation, loss, scaling, d, n_out, batch, n):
    kernel, x, m, (z, y) = make_problem(activation, loss, scaling, d, n_out, batch, n)
    context = kernel.evaluation_context()
    assert kernel.field(x, m, context).dtype == np.float64
    assert_rel_close(
        kernel.outputs(x, m, z), forward_reference(x, m, z, activation, scaling)[0], 1e-12, "outputs"
    )
    assert_rel_close(
        kernel.field(x, m, context), field_reference(x, m, z, y, activation, scaling, loss), 1e-12, "field"
    )
    expected_loss = loss_reference(x, m, z, y, activation, scaling, loss)
    assert abs(kernel.loss(x, m, context) - expected_loss) <= 1e-12 * abs(expected_loss)


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("d, n_out, batch, n", SHAPES)
def test_hvp_matches_reference(activation, loss, scaling, d, n_out, batch, n):
    """The fused loops of two_layer_hvp_numba, and for the last (wide) shape numpy in chunks."""
    kernel, x, m, (z, y) = make_problem(activation, loss, scaling, d, n_out, batch, n, seed=1)
    v = np.random.default_rng(2).standard_normal(x.shape)
    expected = hessian_vector_reference(x, m, z, y, activation, scaling, loss, v)
    assert_rel_close(kernel.hvp(x, m, kernel.evaluation_context(), v, chunk=64), expected, 1e-12, "hvp")


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_field_is_minus_loss_gradient_by_finite_differences(activation, loss, scaling):
    """Every coordinate of -s_i U_i against a central difference of the loss."""
    kernel, x, m, _ = make_problem(activation, loss, scaling, 2, 2, 11, 4, seed=3)
    context = kernel.evaluation_context()
    gradient = -kernel.field(x, m, context) * unit_mass_weights(kernel, m)[:, None]
    h = 1e-6
    numeric = np.empty_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (kernel.loss(plus, m, context) - kernel.loss(minus, m, context)) / (2 * h)
    assert_rel_close(gradient, numeric, 1e-7, "gradient vs finite differences")


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ("sigmoid", "tanh"))
def test_hvp_matches_finite_differences_of_the_field(activation, loss, scaling):
    """The exact HVP formulas (the reference) against central differences of the compiled field.
    (relu has a zero second derivative almost everywhere but kinks a difference can straddle.)"""
    kernel, x, m, _ = make_problem(activation, loss, scaling, 2, 3, 19, 40, seed=4)
    context = kernel.evaluation_context()
    v = np.random.default_rng(5).standard_normal(x.shape)
    numeric = finite_difference_jvp(kernel, x, m, context, v)
    assert_rel_close(kernel.hvp(x, m, context, v), numeric, 1e-6, "hvp vs finite differences")


@pytest.mark.parametrize("d, n_out, batch, n", SHAPES)
def test_fused_kernel_float32_close_to_reference(d, n_out, batch, n):
    kernel, x, m, (z, y) = make_problem("sigmoid", "mse", "standard", d, n_out, batch, n, seed=6)
    x32 = x.astype(np.float32)
    field = kernel.field(x32, m, kernel.evaluation_context())
    assert field.dtype == np.float32
    expected = field_reference(x32.astype(np.float64), m, z, y, "sigmoid", "standard", "mse")
    assert_rel_close(field, expected, 2e-6, "float32 field")


def test_float32_run_stays_close_to_float64(teacher_student_small):
    """20 GD steps of the teacher-student net: float32 positions within 1e-5 of float64 (relative to
    the scale of the positions)."""
    data = teacher_student_small
    kernel = TwoLayerNet(data.z_train[:128], data.y_train[:128], "sigmoid", "mse", "mean_field")
    x0 = np.random.default_rng(7).standard_normal((1000, kernel.dim))
    runs = {}
    for dtype in ("float32", "float64"):
        sim = Simulation(kernel, x0, optimizer=GD(), lr=1.0, dtype=dtype, frame_every=0)
        sim.run(20, progress=False)
        assert sim.positions.dtype == np.dtype(dtype)
        runs[dtype] = sim.positions.astype(np.float64)
    moved = np.max(np.abs(runs["float64"] - x0))
    assert moved > 1e-2, "the run must actually move the particles"
    assert_rel_close(runs["float32"], runs["float64"], 1e-5, "float32 vs float64 run")


def test_minibatch_context_is_a_sorted_subset_and_field_uses_it():
    kernel, x, m, (z, y) = make_problem("sigmoid", "mse", "standard", 2, 1, 50, 30, seed=8)
    context = kernel.context(3, np.random.default_rng(9), 16)
    zb, yb = context
    assert zb.shape == (16, 2) and yb.shape == (16,)
    rows = [int(np.flatnonzero((z == row).all(axis=1))[0]) for row in zb]
    assert rows == sorted(set(rows)) and np.array_equal(y[rows], yb)
    assert_rel_close(
        kernel.field(x, m, context),
        field_reference(x, m, zb, yb, "sigmoid", "standard", "mse"),
        1e-12,
        "mini-batch field",
    )
    assert kernel.context(3, np.random.default_rng(9), None)[0] is kernel.inputs
