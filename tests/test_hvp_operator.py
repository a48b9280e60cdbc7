"""One Lanczos solve's HVPs share the forward pass: ``hvp_operator`` gives the products of ``hvp``."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_kernels import LOSSES, SCALINGS, SHAPES, assert_rel_close, make_problem

from particledyn.geometry import kernel_sharpness
from particledyn.kernels.two_layer_reference import hessian_vector_reference
from particledyn.observers import StepInfo


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("d, n_out, batch, n", SHAPES)
def test_operator_products_match_the_reference_for_every_vector(loss, scaling, d, n_out, batch, n):
    kernel, x, m, (z, y) = make_problem("tanh", loss, scaling, d, n_out, batch, n, seed=5)
    operator = kernel.hvp_operator(x, m, kernel.evaluation_context(), chunk=64)
    rng = np.random.default_rng(6)
    for _ in range(3):  # the shared forward pass must not leak one product into the next
        v = rng.standard_normal(x.shape)
        expected = hessian_vector_reference(x, m, z, y, "tanh", scaling, loss, v)
        assert_rel_close(operator(v), expected, 1e-12, "operator hvp")
        np.testing.assert_array_equal(
            operator(v.ravel()), kernel.hvp(x, m, kernel.evaluation_context(), v, chunk=64)
        )


def test_the_sharpness_observer_builds_one_forward_pass_per_solve(monkeypatch):
    kernel, x, m, _ = make_problem("sigmoid", "mse", "standard", 2, 1, 16, 30, seed=7)
    calls = []
    outputs = kernel.outputs
    monkeypatch.setattr(kernel, "outputs", lambda *a: calls.append(1) or outputs(*a))

    class Sim:  # what the observer reads of a simulation
        pass

    sim = Sim()
    sim.kernel = kernel
    info = StepInfo(
        step=0,
        time=0.0,
        positions=x,
        masses=m,
        lr=0.1,
        previous_positions=None,
        update=None,
        field=None,
        simulation=sim,
    )
    observer = kernel_sharpness()
    observer.preconditioner = None
    values = observer.observe(info)
    assert values["n_hvp"] > 3 and len(calls) == 1
    dense = np.column_stack(
        [kernel.hvp(x, m, kernel.evaluation_context(), e.reshape(x.shape)).ravel() for e in np.eye(x.size)]
    )
    assert abs(values["lambda_max"] - np.linalg.eigvalsh(dense)[-1]) <= 1e-8 * np.linalg.eigvalsh(dense)[-1]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("loss", LOSSES)
def test_wide_neurons_below_the_chunk_reuse_the_activations_and_match_the_reference(
    activation, loss, scaling
):
    """Wide neurons (D > WIDE_DIMS) with N <= chunk: the operator that computes the activations
    once (``_hvp_cached``) gives the reference's products, vector after vector."""
    from particledyn.kernels import two_layer_numba

    kernel, x, m, (z, y) = make_problem(
        activation, loss, scaling, two_layer_numba.WIDE_DIMS, 3, 11, 40, seed=8
    )
    operator = kernel.hvp_operator(x, m, kernel.evaluation_context())  # chunk 4096 > 40: cached
    rng = np.random.default_rng(9)
    for _ in range(3):
        v = rng.standard_normal(x.shape)
        expected = hessian_vector_reference(x, m, z, y, activation, scaling, loss, v)
        assert_rel_close(operator(v), expected, 1e-12, "cached hvp")


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 30), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_the_wide_cached_hvp_is_permutation_equivariant(n, seed, data):
    """H(PX) (PV) = P H(X) V on the wide path (D > WIDE_DIMS, N <= chunk)."""
    from particledyn.kernels import two_layer_numba

    kernel, _, m, _ = make_problem(
        "sigmoid", "cross_entropy", "mean_field", two_layer_numba.WIDE_DIMS, 4, 9, 2
    )
    perm = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, kernel.dim))
    m = rng.uniform(0.2, 1.0, n)
    v = rng.standard_normal(x.shape)
    product = kernel.hvp(x, m, kernel.evaluation_context(), v)
    permuted = kernel.hvp(x[perm], m[perm], kernel.evaluation_context(), v[perm])
    assert_rel_close(permuted, product[perm], 1e-12, "H(PX) PV vs P H(X) V")
