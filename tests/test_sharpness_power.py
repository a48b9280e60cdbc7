"""The authors' sharpness recipe (power iteration on mini-batch Hessians) against exact spectra."""

import numpy as np
import pytest
from test_engine_kernels import make_problem

from particledyn import Simulation
from particledyn.data import make_dataset
from particledyn.geometry import kernel_sharpness
from particledyn.geometry.sharpness import top_eigenpairs
from particledyn.geometry.sharpness_power import consecutive_batches, power_iteration
from particledyn.kernels import TwoLayerNet
from particledyn.observers import ObserverError
from particledyn.optimizers import make_optimizer


def _symmetric(rng, n, top):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    values = np.concatenate([[top], rng.uniform(-1.0, 1.0, n - 1)])
    return (q * values) @ q.T


def test_many_steps_converge_to_the_dominant_eigenvalue_and_twenty_stay_below_it():
    rng = np.random.default_rng(0)
    matrix = _symmetric(rng, 60, 1.3)  # gap 1.3 / 1: slow on purpose
    exact = np.linalg.eigvalsh(matrix)[-1]
    long = power_iteration([lambda v: matrix @ v], 60, iterations=5000, tol=0.0)
    assert abs(long.lambda_max - exact) <= 1e-10 * exact
    short = power_iteration([lambda v: matrix @ v], 60, iterations=20, tol=1e-4)
    # a Rayleigh quotient never exceeds lambda_max; 20 steps at this gap are visibly short of it
    assert short.lambda_max <= exact * (1 + 1e-12)
    assert exact - short.lambda_max > 1e-4 * exact
    assert short.n_hvp == 20 and not short.converged


def test_the_relative_change_stops_the_iteration_early():
    rng = np.random.default_rng(1)
    matrix = _symmetric(rng, 40, 50.0)  # a wide gap: converged in a few steps
    result = power_iteration([lambda v: matrix @ v], 40, iterations=20, tol=1e-4)
    assert result.converged and result.n_hvp < 20
    assert abs(result.lambda_max - 50.0) <= 1e-3 * 50.0


def test_step_i_uses_batch_i_mod_b_and_the_result_is_the_last_batchs_estimate():
    rng = np.random.default_rng(2)
    batches = [_symmetric(rng, 30, top) for top in (3.0, 5.0, 4.0)]
    used = []

    def on(b):
        return lambda v: used.append(b) or batches[b] @ v

    result = power_iteration([on(0), on(1), on(2)], 30, iterations=7, tol=0.0, rng=np.random.default_rng(3))
    assert used == [0, 1, 2, 0, 1, 2, 0]
    # the estimate is v . H_0 v for the unit vector v after six steps, on batch 0
    v = np.random.default_rng(3).random(30)
    for b in (0, 1, 2, 0, 1, 2):
        v = batches[b] @ v
        v /= np.linalg.norm(v)
    assert result.lambda_max == pytest.approx(v @ batches[0] @ v, rel=1e-13)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="hvps is empty"):
        power_iteration([], 3)
    with pytest.raises(ValueError, match="iterations=0: expected a positive integer"):
        power_iteration([lambda v: v], 3, iterations=0)
    with pytest.raises(ValueError, match="batch_size=0: expected a positive integer or None"):
        consecutive_batches(np.zeros((4, 2)), np.zeros(4), 0)


def test_consecutive_batches_split_like_a_dataloader_without_shuffle():
    rows = np.arange(10)
    batches = consecutive_batches(rows[:, None], rows, 4)
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(consecutive_batches(rows[:, None], rows, None)) == 1


def _digits_simulation(observer, batch_size=100, seed=5):
    data = make_dataset({"name": "digits", "seed": 0, "normalize": [0.1307, 0.3081]})
    kernel = TwoLayerNet(
        data.z_train,
        data.y_train,
        loss="cross_entropy",
        n_outputs=10,
        test_inputs=data.z_test,
        test_targets=data.y_test,
    )
    start = np.random.default_rng(4).standard_normal((24, 74)) * 0.3
    sim = Simulation(
        kernel, start, make_optimizer("sgd"), lr=0.1, seed=seed, batch_size=batch_size, observers=[observer]
    )
    return sim, kernel, data


def test_the_observer_on_one_test_batch_converges_to_lanczos_on_the_test_set():
    """With one batch (batch_size = "all") and many steps, the authors' recipe is the exact top
    eigenvalue of the test-set Hessian, which Lanczos on the same data gives independently."""
    sim, kernel, data = _digits_simulation(
        kernel_sharpness(method="power_iter", on="test", iterations=3000, batch_size=None)
    )
    sim.observers[0].power_tol = 0.0
    sim.run(0, progress=False)
    ours = sim.sink.observables["sharpness"]["lambda_max"][0]
    x, m = sim.positions, np.ones(len(sim.positions))
    product = kernel.hvp_operator(x, m, (data.z_test, data.y_test))
    exact = top_eigenpairs(lambda v: product(v).ravel(), x.size, which="LM", tol=1e-10).lambda_max
    assert abs(ours - exact) <= 1e-8 * abs(exact)
    train = top_eigenpairs(
        lambda v: kernel.hvp_operator(x, m, kernel.evaluation_context())(v).ravel(),
        x.size,
        which="LM",
        tol=1e-10,
    ).lambda_max
    assert abs(train - exact) > 1e-3 * abs(exact)  # the test set's Hessian is another operator


def test_the_observer_is_reproducible_from_seed_and_step_and_needs_no_state():
    values = []
    for _ in range(2):
        sim, _, _ = _digits_simulation(kernel_sharpness(method="power_iter", on="test"))
        sim.run(1, progress=False)
        values.append(sim.sink.observables["sharpness"]["lambda_max"])
        assert sim.observers[0].state_dict() == {}
    assert values[0] == values[1]
    other, _, _ = _digits_simulation(kernel_sharpness(method="power_iter", on="test"), seed=6)
    other.run(1, progress=False)
    assert other.sink.observables["sharpness"]["lambda_max"] != values[0]


def test_a_kernel_without_test_data_and_power_iteration_with_k_above_one_are_refused():
    kernel, x, m, _ = make_problem("sigmoid", "mse", "standard", 2, 1, 16, 10, seed=7)
    sim = Simulation(kernel, x, observers=[kernel_sharpness(on="test")])
    with pytest.raises(
        ObserverError,
        match="step 0: ValueError: sharpness on = 'test' with kernel .*: expected a kernel with held-out data",
    ):
        sim.run(0, progress=False)
    with pytest.raises(ValueError, match="k=2 with method='power_iter': expected k = 1"):
        kernel_sharpness(k=2, method="power_iter")
    with pytest.raises(ValueError, match="on='validation': expected 'train' or 'test'"):
        kernel_sharpness(on="validation")
