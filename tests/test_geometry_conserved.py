"""The ReLU balance a^2 - |w|^2: O(eta^2) drift under GD, pathological neurons, components."""

import numpy as np
import pytest

from particledyn.geometry import (
    NeighbourPairs,
    balance_drift,
    invariant_set_components,
    relu_balance,
    split_neurons,
)
from particledyn.geometry.reference_nets import TwoLayerNet


def relu_problem(seed=0, N=20, d=3, B=50, activation="relu"):
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((B, d))
    targets = np.sin(inputs @ rng.standard_normal(d))
    net = TwoLayerNet(inputs, targets, activation, output_scale=1.0 / np.sqrt(N))
    return net, rng.standard_normal((N, d + 1))


def test_balance_definition():
    X = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, -0.1]])
    np.testing.assert_allclose(relu_balance(X), [9 - 5, 0.01 - 0.25])
    w, a = split_neurons(X, output_columns=0)
    np.testing.assert_allclose(a[:, 0], [1.0, 0.5])
    np.testing.assert_allclose(relu_balance(X, output_columns=[1, 2]), [13 - 1, 0.01 - 0.25])


@pytest.mark.parametrize("seed", range(3))
def test_relu_balance_drift_is_second_order_and_shrinks_4x_when_eta_halves(seed):
    net, X = relu_problem(seed)
    drifts = []
    for lr in (0.02, 0.01, 0.005):
        U = -net.grad(X)
        drift = balance_drift(X, X + lr * U, U, lr)
        scale = np.abs(relu_balance(X)).max()
        assert drift.max_first_order <= 1e-13 * scale  # a dL/da = w . dL/dw for ReLU
        assert drift.max_mismatch <= 1e-13 * scale
        assert drift.max_drift == pytest.approx(drift.max_second_order, rel=1e-6)
        drifts.append(drift.max_drift)
    assert 3.9 < drifts[0] / drifts[1] < 4.1 and 3.9 < drifts[1] / drifts[2] < 4.1


def test_relu_balance_is_conserved_along_a_gd_run_to_order_eta():
    net, X0 = relu_problem(4)
    total = []
    for lr in (0.02, 0.01):
        X = X0.copy()
        for _ in range(int(round(0.4 / lr))):  # the same integrated time
            X = X - lr * net.grad(X)
        total.append(np.abs(relu_balance(X) - relu_balance(X0)).max())
    assert 1.8 < total[0] / total[1] < 2.2  # sum of T/eta steps of O(eta^2) each


def test_a_non_homogeneous_activation_drifts_at_first_order():
    net, X = relu_problem(1, activation="tanh")
    U = -net.grad(X)
    drift = balance_drift(X, X + 0.01 * U, U, 0.01)
    assert drift.max_first_order > 100 * drift.max_second_order


def test_components_count_pathological_neurons():
    X = np.array(
        [
            [0.1, 0.2, 1.0],  # c > 0, a > 0: pathological
            [0.3, 0.0, -2.0],  # c > 0, a < 0: pathological
            [1.0, 1.0, 0.5],  # c < 0, w in R^2: connected factor
            [0.6, 0.8, -1.0],
        ]
    )  # c = 0: the cone, connected
    parts = invariant_set_components(X)
    assert (parts.n_pathological, parts.n_pathological_positive) == (2, 1)
    assert parts.n_fixed_input_sign == 0
    assert parts.log2_components == 2 and parts.n_components == 4
    assert parts.n_effective_components == 3
    # with a scalar input weight, c < 0 fixes the sign of w instead
    Y = np.array([[0.1, 1.0], [2.0, 0.5], [-3.0, 1.0], [1.0, -1.0]])
    parts = invariant_set_components(Y)
    assert (parts.n_pathological, parts.n_fixed_input_sign) == (1, 2)
    assert parts.log2_components == 3 and parts.n_effective_components == 2 * 3
    assert invariant_set_components(X, tol=10.0).log2_components == 0


def sample_quadric(c, q, n=4000, radius=3.0, seed=0):
    """Dense samples of {|a|^2 - |w|^2 = c}, w in R^q, scalar a, inside a box."""
    rng = np.random.default_rng(seed)
    if c > 0:
        w = rng.uniform(-radius, radius, (n, q))
        a = np.sqrt(c + (w * w).sum(1)) * rng.choice([-1.0, 1.0], n)
    else:
        a = rng.uniform(-radius, radius, n)
        direction = rng.standard_normal((n, q))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        w = np.sqrt(-c + a * a)[:, None] * direction
    return np.c_[w, a]


@pytest.mark.parametrize("c, q, expected", [(1.0, 2, 2), (1.0, 1, 2), (-1.0, 2, 1), (-1.0, 1, 2)])
def test_the_component_rule_matches_sampled_quadrics(c, q, expected):
    points = sample_quadric(c, q, n=3000 if q == 2 else 1500)
    assert np.allclose(relu_balance(points), c)
    n_atoms, _ = NeighbourPairs(points, k=8, all_pairs_max_n=0).atoms(0.5)
    assert n_atoms == expected
    assert invariant_set_components(points[:1]).n_components == expected


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="out of range"):
        relu_balance(np.zeros((3, 2)), output_columns=5)
    with pytest.raises(ValueError, match="covers every column"):
        relu_balance(np.zeros((3, 2)), output_columns=[0, 1])
    with pytest.raises(TypeError, match="output_columns"):
        relu_balance(np.zeros((3, 2)), output_columns=0.5)
    with pytest.raises(ValueError, match="expected previous_positions"):
        balance_drift(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((2, 2)), 0.1)
