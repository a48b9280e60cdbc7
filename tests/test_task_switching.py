"""The task-switching kernel (loss of plasticity, Appendix C.3)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn import GD, Simulation
from particledyn.data import linear_teacher_task
from particledyn.kernels.task_switching import TaskSwitchingNet
from particledyn.kernels.two_layer_reference import field_reference

D_IN, D_OUT = 3, 2


@pytest.fixture(scope="module")
def kernel():
    return TaskSwitchingNet(epoch_steps=4, d_in=D_IN, d_out=D_OUT, n_train=64, n_eval=16, seed=5)


def test_task_changes_every_epoch_and_regenerates_exactly(kernel):
    assert [kernel.task_of_step(s) for s in range(9)] == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    rng = np.random.default_rng(0)
    z4, y4 = kernel.context(4, rng, None)
    task1 = linear_teacher_task(1, d_in=D_IN, d_out=D_OUT, n_train=64, n_eval=16, seed=5)
    np.testing.assert_array_equal(z4, task1.z_train)
    np.testing.assert_array_equal(y4, task1.y_train)
    z0, _ = kernel.context(0, rng, None)
    assert not np.array_equal(z0, z4)


def test_field_equals_numpy_reference(kernel):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, D_IN + D_OUT))
    m = np.full(50, 1 / 50)
    context = kernel.context(5, rng, None)
    expected = field_reference(x, m, context[0], context[1], "sigmoid", "standard", "mse")
    np.testing.assert_allclose(kernel.field(x, m, context), expected, rtol=1e-12, atol=1e-14)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_field_is_permutation_equivariant(kernel, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(23, D_IN + D_OUT))
    m = rng.random(23) + 0.1
    perm = rng.permutation(23)
    context = kernel.context(int(rng.integers(0, 12)), rng, None)
    np.testing.assert_allclose(
        kernel.field(x[perm], m[perm], context), kernel.field(x, m, context)[perm], rtol=1e-12, atol=1e-14
    )


def test_runs_in_a_simulation_across_task_switches(kernel):
    x0 = np.random.default_rng(2).normal(size=(40, D_IN + D_OUT))
    sim = Simulation(kernel, x0, optimizer=GD(weight_decay=0.01), lr=0.05, batch_size=16)
    sim.run(10, progress=False)
    assert kernel.current_task == kernel.task_of_step(9) == 2
    assert np.all(np.isfinite(sim.positions))


@pytest.mark.parametrize(
    "options, text",
    [
        ({"epoch_steps": 0}, "epoch_steps=0: expected an integer >= 1"),
        ({"epoch_steps": 2, "d_in": 0}, "d_in=0"),
        ({"epoch_steps": 2, "seed": -1}, "seed=-1"),
        ({"epoch_steps": 2, "activation": "gelu"}, "gelu"),
    ],
)
def test_bad_options_are_named(options, text):
    with pytest.raises(ValueError, match=None) as error:
        TaskSwitchingNet(**options).task_network(0) if "activation" in options else TaskSwitchingNet(
            **options
        )
    assert text in str(error.value)


def test_hidden_bias_is_a_constant_input_the_teacher_does_not_see():
    net = TaskSwitchingNet(
        epoch_steps=4, d_in=D_IN, d_out=D_OUT, n_train=64, n_eval=16, seed=5, hidden_bias=True
    )
    assert net.dim == D_IN + 1 + D_OUT
    rng = np.random.default_rng(2)
    z, y = net.context(0, rng, None)
    task0 = linear_teacher_task(0, d_in=D_IN, d_out=D_OUT, n_train=64, n_eval=16, seed=5)
    np.testing.assert_array_equal(z[:, :D_IN], task0.z_train)
    np.testing.assert_array_equal(z[:, D_IN], 1.0)
    np.testing.assert_array_equal(y, task0.y_train)
    x = rng.normal(size=(30, net.dim))
    m = np.full(30, 1 / 30)
    expected = field_reference(x, m, z, y, "sigmoid", "standard", "mse")
    np.testing.assert_allclose(net.field(x, m, (z, y)), expected, rtol=1e-12, atol=1e-14)
