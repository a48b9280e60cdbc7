"""The two-layer kernel against a loss written from scratch (tests/two_layer_oracle.py), not the
reference module the production kernel shares its loss with."""

import numpy as np
import pytest
from test_engine_kernels import ACTIVATIONS, LOSSES, SCALINGS, make_problem, unit_mass_weights
from two_layer_oracle import oracle_loss

from particledyn.kernels.two_layer_reference import loss_reference


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_loss_matches_the_oracle(activation, loss, scaling):
    kernel, x, m, (z, y) = make_problem(activation, loss, scaling, 2, 3, 13, 7, seed=5)
    expected = oracle_loss(x, m, z, y, activation, scaling, loss)
    assert kernel.loss(x, m, kernel.evaluation_context()) == pytest.approx(expected, rel=1e-12)
    assert loss_reference(x, m, z, y, activation, scaling, loss) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ("sigmoid", "tanh"))
def test_the_field_is_minus_the_gradient_of_the_oracle_loss(activation, loss, scaling):
    kernel, x, m, (z, y) = make_problem(activation, loss, scaling, 2, 2, 9, 4, seed=6)
    gradient = -kernel.field(x, m, kernel.evaluation_context()) * unit_mass_weights(kernel, m)[:, None]
    h = 1e-6
    numeric = np.empty_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (
            oracle_loss(plus, m, z, y, activation, scaling, loss)
            - oracle_loss(minus, m, z, y, activation, scaling, loss)
        ) / (2 * h)
    scale = np.max(np.abs(numeric))
    assert np.max(np.abs(gradient - numeric)) <= 1e-7 * scale
