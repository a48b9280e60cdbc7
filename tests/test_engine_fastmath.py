"""The vectorisable activations of particledyn.kernels.fastmath against the plain-numpy references.

The activations are called from small ``njit(error_model="numpy")`` wrappers, as the kernels
call them. Accuracy is checked over the representable range: where the true value (or derivative)
is a normal float of the working dtype. The implementation clamps the argument of exp(-a) at
a = 708 (float64) or 87 (float32), a little before the end of the normal range (708.4, 87.3), so
results below exp(-clamp) (< 4e-308, < 2e-38) are only bounded, not accurate: checked apart.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from particledyn.kernels import fastmath
from particledyn.kernels.activations_reference import activation_reference

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
RTOL = {F64: 1e-12, F32: 1e-6}
CLAMP = {F64: 708.0, F32: 87.0}


def _activation_runner(tag):
    @numba.njit(error_model="numpy")
    def run(t):
        value = np.empty_like(t)
        deriv = np.empty_like(t)
        fastmath.activation_batch(tag, t, value, deriv, t.size)
        return value, deriv

    return run


def _exp_runner(function):
    @numba.njit(error_model="numpy")
    def run(a):
        out = np.empty_like(a)
        for b in range(a.size):
            out[b] = function(a[b])
        return out

    return run


RUNNERS = {
    (name, dtype): _activation_runner(fastmath.ACTIVATION_TAGS[name])
    for name in ("sigmoid", "tanh", "relu")
    for dtype in (F32, F64)
}
EXP_NEG = {F64: _exp_runner(fastmath.exp_neg_f64), F32: _exp_runner(fastmath.exp_neg_f32)}


def sample_points(dtype, limit, rng):
    """Points of one dtype covering [-limit, limit]: a dense grid, random values on every scale,
    zero, tiny and huge magnitudes, and odd lengths (the loops have no remainder special cases)."""
    grid = np.linspace(-limit, limit, 20001)
    scales = 10.0 ** rng.uniform(-30, np.log10(limit), size=20000)
    random = scales * rng.choice([-1.0, 1.0], size=scales.size)
    special = np.array([0.0, -0.0, 1e-300, -1e-300, 0.5, -0.5, 1.0, -1.0, 20.0, -20.0, 40.0, -40.0])
    t = np.concatenate([grid, random, special]).astype(dtype)
    return t[np.abs(t) >= np.finfo(dtype).tiny] if dtype == F32 else t


def rel_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.abs(actual - expected) / np.abs(expected)


def normal_in(dtype, values):
    """Mask of entries whose true value is a normal float of ``dtype``."""
    return np.abs(values) >= np.finfo(dtype).tiny


@pytest.mark.parametrize("dtype", [F64, F32])
def test_exp_neg_accuracy(dtype, rng):
    limit = 708.0 if dtype == F64 else 87.0  # exp(-limit) is still normal
    a = np.concatenate([np.linspace(0.0, limit, 50001), rng.uniform(0, 1, 10001), [0.0, 1e-20, limit]])
    a = a.astype(dtype)
    out = EXP_NEG[dtype](a)
    assert out.dtype == dtype
    assert np.max(rel_error(out, np.exp(-a.astype(np.float64)))) <= RTOL[dtype]


@pytest.mark.parametrize("dtype", [F64, F32])
def test_sigmoid_accuracy(dtype, rng):
    t = sample_points(dtype, 745.0 if dtype == F64 else 104.0, rng)
    value, deriv = RUNNERS["sigmoid", dtype](t)
    assert value.dtype == dtype and deriv.dtype == dtype
    t64 = t.astype(np.float64)
    expected, _, _ = activation_reference("sigmoid", t64)
    ok = normal_in(dtype, expected) & (np.abs(t64) <= CLAMP[dtype])
    assert ok.sum() > 0.9 * t.size
    assert np.max(rel_error(value[ok], expected[ok])) <= RTOL[dtype]
    # the reference's s (1 - s) cancels for t >> 1; sigmoid(t) sigmoid(-t) is the same function, accurately
    expected_deriv = expit(t64) * expit(-t64)
    ok = normal_in(dtype, expected_deriv) & (np.abs(t64) <= CLAMP[dtype])
    assert np.max(rel_error(deriv[ok], expected_deriv[ok])) <= RTOL[dtype]
    moderate = np.abs(t64) < 5
    _, reference_deriv, _ = activation_reference("sigmoid", t64[moderate])
    assert np.max(rel_error(deriv[moderate], reference_deriv)) <= 10 * RTOL[dtype]
    # beyond the clamp: tiny (at most exp(-clamp)), never NaN, and exact where it saturates to 1
    beyond = np.abs(t64) > CLAMP[dtype]
    bound = 1.01 * np.exp(-CLAMP[dtype])
    assert np.all(np.isfinite(value)) and np.all((value >= 0) & (value <= 1)) and np.all(deriv >= 0)
    assert np.all(value[beyond & (t64 < 0)] <= bound) and np.all(value[beyond & (t64 > 0)] == 1)
    assert np.all(deriv[beyond] <= bound)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_tanh_accuracy(dtype, rng):
    t = sample_points(dtype, 400.0 if dtype == F64 else 60.0, rng)
    value, deriv = RUNNERS["tanh", dtype](t)
    t64 = t.astype(np.float64)
    expected, _, _ = activation_reference("tanh", t64)
    ok = normal_in(dtype, expected)  # tanh saturates to +-1 exactly: the clamp does not matter
    assert np.max(rel_error(value[ok], expected[ok])) <= RTOL[dtype]
    # 1 - tanh^2 cancels for |t| >> 1; 4 e / (1 + e)^2 with e = exp(-2|t|) does not
    e = np.exp(-2.0 * np.abs(t64))
    expected_deriv = 4.0 * e / (1.0 + e) ** 2
    ok = normal_in(dtype, expected_deriv) & (2 * np.abs(t64) <= CLAMP[dtype])
    assert np.max(rel_error(deriv[ok], expected_deriv[ok])) <= RTOL[dtype]
    beyond = 2 * np.abs(t64) > CLAMP[dtype]
    assert np.all(np.abs(value) <= 1) and np.all(np.abs(value[beyond]) == 1)
    assert np.all((deriv[beyond] >= 0) & (deriv[beyond] <= 4.01 * np.exp(-CLAMP[dtype])))


@pytest.mark.parametrize("dtype", [F64, F32])
def test_relu_exact(dtype, rng):
    t = sample_points(dtype, 1e6, rng)
    value, deriv = RUNNERS["relu", dtype](t)
    expected, expected_deriv, _ = activation_reference("relu", t)
    assert np.array_equal(value, expected) and np.array_equal(deriv, expected_deriv)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(-700.0, 700.0, allow_nan=False), min_size=1, max_size=40),
    name=st.sampled_from(["sigmoid", "tanh"]),
)
def test_activations_on_arbitrary_floats_float64(values, name):
    t = np.array(values, dtype=np.float64)
    value, _ = RUNNERS[name, F64](t)
    expected, _, _ = activation_reference(name, t)
    ok = expected != 0
    assert np.all(value[~ok] == 0)  # tanh(0) = 0 exactly
    assert np.all(rel_error(value[ok], expected[ok]) <= 1e-12)
