"""The thick-restart Lanczos of ``top_eigenpairs`` on the wide two-layer kernel's cached HVP,
against dense Hessians from torch autograd (an independent code path), raw and preconditioned."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_kernels import make_problem

from particledyn.geometry import kernel_sharpness, preconditioned_hvp, top_eigenpairs
from particledyn.geometry import observers as geometry_observers
from particledyn.kernels import two_layer_numba

WIDE = two_layer_numba.WIDE_DIMS  # d = WIDE inputs: D = d + C > WIDE_DIMS, the cached path


def torch_hessian(x, inputs, targets, activation, loss):
    """Dense d^2 L / dx^2 of the standard-scaling network by torch autograd, float64."""
    d = inputs.shape[1]
    z = torch.tensor(inputs, dtype=torch.float64)
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}[activation]

    def total(flat):
        p = flat.reshape(x.shape)
        out = act(p[:, :d] @ z.T).T @ p[:, d:]  # (B, C)
        if loss == "mse":
            return torch.mean((out - torch.tensor(targets).reshape(out.shape)) ** 2)
        return torch.nn.functional.cross_entropy(out, torch.tensor(targets, dtype=torch.int64))

    flat = torch.tensor(x.ravel(), dtype=torch.float64)
    return torch.autograd.functional.hessian(total, flat).numpy()


def problem(loss="cross_entropy", activation="sigmoid", n=10, batch=40, seed=0):
    kernel, x, m, (z, y) = make_problem(activation, loss, "standard", WIDE, 3, batch, n, seed=seed)
    operator = kernel.hvp_operator(x, m, kernel.evaluation_context())  # N <= chunk: cached
    assert x.shape[1] > WIDE and x.shape[0] <= 4096

    def hvp(v):
        return operator(v).ravel()

    return hvp, torch_hessian(x, z, y, activation, loss), x


def adam_like_diagonal(size, seed):
    """A positive diagonal spanning three decades, so that a wrong power of P shows."""
    return 10.0 ** np.random.default_rng(seed).uniform(-3, 0, size)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("preconditioned", [False, True])
def test_lanczos_on_the_kernel_matches_the_torch_hessian(loss, preconditioned):
    hvp, H, x = problem(loss, "tanh" if loss == "mse" else "sigmoid", seed=1)
    np.testing.assert_allclose(hvp(np.eye(x.size)[3]), H[:, 3], rtol=1e-10, atol=1e-12 * np.abs(H).max())
    if preconditioned:
        P = adam_like_diagonal(x.size, 2)
        hvp = preconditioned_hvp(hvp, P)
        H = H / np.sqrt(np.outer(P, P))  # P^-1/2 H P^-1/2
    exact = np.linalg.eigvalsh(H)[-1]
    result = top_eigenpairs(hvp, x.size, tol=1e-10)
    assert result.converged and result.residual <= 1e-10 * abs(result.lambda_max)
    assert abs(result.lambda_max - exact) <= 1e-9 * abs(exact)
    explicit = np.linalg.norm(H @ result.eigenvector - result.lambda_max * result.eigenvector)
    assert explicit <= 2e-10 * abs(exact)


def test_a_warm_start_gives_the_cold_answer_to_the_tolerance_even_from_another_operator():
    """From a slightly moved eigenvector, and from the raw Hessian's eigenvector for the
    preconditioned operator (another operator's vector), Lanczos finds the same top eigenvalue
    as a cold start: a solver that trusted v0 (its Rayleigh quotient, or too few products)
    fails here."""
    hvp, H, x = problem(seed=3)
    P = adam_like_diagonal(x.size, 4)
    pre = preconditioned_hvp(hvp, P)
    exact = np.linalg.eigvalsh(H / np.sqrt(np.outer(P, P)))[-1]
    tol = 1e-8
    cold = top_eigenpairs(pre, x.size, tol=tol)
    raw = top_eigenpairs(hvp, x.size, tol=tol)
    stale = top_eigenpairs(pre, x.size, tol=tol, v0=raw.eigenvector)
    moved = cold.eigenvector + 1e-4 * np.random.default_rng(5).standard_normal(x.size)
    warm = top_eigenpairs(pre, x.size, tol=tol, v0=moved)
    for result in (cold, stale, warm):
        assert result.converged
        assert abs(result.lambda_max - exact) <= tol * abs(exact)
    assert warm.n_hvp < cold.n_hvp
    assert abs(stale.lambda_max - raw.lambda_max) > 1e-2 * abs(exact)  # the operators differ
    again = top_eigenpairs(pre, x.size, tol=tol, v0=cold.eigenvector)
    assert again.n_hvp == 1 and again.lambda_max == pytest.approx(cold.lambda_max, rel=1e-12)


def test_thick_restarts_find_the_top_pairs_of_a_crowded_spectrum():
    """A basis of 6 vectors on a spectrum whose top gap is 1 %: many restarts, the right
    pairs (k = 1 and k = 2, largest algebraic and largest magnitude)."""
    rng = np.random.default_rng(7)
    Q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    spectrum = np.r_[1.0, 0.99, np.linspace(0.95, -0.5, 197), -1.2]
    A = Q @ np.diag(spectrum) @ Q.T
    one = top_eigenpairs(lambda v: A @ v, 200, tol=1e-9, ncv=6)
    assert one.converged and one.n_hvp > 6 and abs(one.lambda_max - 1.0) <= 1e-9
    two = top_eigenpairs(lambda v: A @ v, 200, k=2, tol=1e-9, ncv=6)
    assert two.converged and np.allclose(two.eigenvalues, [1.0, 0.99], rtol=1e-9, atol=0)
    np.testing.assert_allclose(np.abs(two.eigenvectors.T @ Q[:, :2]), np.eye(2), atol=1e-6)
    mag = top_eigenpairs(lambda v: A @ v, 200, tol=1e-9, ncv=6, which="LM")
    assert mag.converged and abs(mag.lambda_max + 1.2) <= 1e-9 * 1.2


def test_the_same_call_gives_the_same_bits():
    hvp, _, x = problem(seed=8)
    first, second = (top_eigenpairs(hvp, x.size, tol=1e-8, seed=3) for _ in range(2))
    assert first.lambda_max == second.lambda_max and first.n_hvp == second.n_hvp
    np.testing.assert_array_equal(first.eigenvector, second.eigenvector)


def test_max_hvp_stops_an_unconverged_solve_and_says_so():
    rng = np.random.default_rng(9)
    Q, _ = np.linalg.qr(rng.standard_normal((100, 100)))
    A = Q @ np.diag(np.linspace(1.0, 0.0, 100)) @ Q.T
    result = top_eigenpairs(lambda v: A @ v, 100, tol=1e-12, ncv=4, max_hvp=5)
    assert not result.converged and result.n_hvp == 5
    with pytest.raises(ValueError, match="max_hvp=0"):
        top_eigenpairs(lambda v: A @ v, 100, max_hvp=0)


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_lambda_max_is_invariant_under_permutations_of_the_particles(data):
    """Relabelling the neurons (and their preconditioner entries) permutes H's rows and columns
    together: lambda_max does not move."""
    kernel, x, m, _ = make_problem("sigmoid", "cross_entropy", "standard", WIDE, 3, 30, 8, seed=10)
    perm = np.array(data.draw(st.permutations(range(x.shape[0]))), dtype=np.int64)
    P = adam_like_diagonal(x.size, 11).reshape(x.shape)
    values = []
    for order in (np.arange(x.shape[0]), perm):
        operator = kernel.hvp_operator(x[order], m[order], kernel.evaluation_context())
        hvp = preconditioned_hvp(lambda v, op=operator: op(v).ravel(), P[order])
        values.append(top_eigenpairs(hvp, x.size, tol=1e-11).lambda_max)
    assert values[1] == pytest.approx(values[0], rel=1e-10)


def test_the_observer_carries_its_warm_start_across_preconditioners(monkeypatch):
    """Adam: step 0 has no second moments, so the observer measures H there and
    P^-1/2 H P^-1/2 after. Each warm start keeps the previous eigenvector's direction in
    parameter space, x = P^-1/2 y: v0 = y_prev sqrt(P / P_prev) (P = 1 for the plain H), not
    the stale y_prev of another operator; the raw observer passes y_prev as it is."""
    from particledyn import simulate
    from particledyn.clouds import make_cloud
    from particledyn.data import teacher_student
    from particledyn.kernels import TwoLayerNet
    from particledyn.optimizers import make_optimizer

    calls: dict[str, list] = {"sharpness": [], "raw": []}
    solve = geometry_observers.top_eigenpairs
    current = ["sharpness"]

    def spy(hvp, n, k, **options):
        result = solve(hvp, n, k, **options)
        calls[current[0]][-1].update(v0=options["v0"], vector=result.eigenvector)
        return result

    monkeypatch.setattr(geometry_observers, "top_eigenpairs", spy)
    data = teacher_student(1, n=60, seed=0)
    kernel = TwoLayerNet(data.z_train, data.y_train)
    pre, raw = kernel_sharpness(2), kernel_sharpness(2, preconditioned=False)
    raw.name = "raw"
    for observer in (pre, raw):
        operators = observer._operators

        def recorded(info, operators=operators, name=observer.name):
            current[0] = name
            ops, diagonal = operators(info)
            calls[name].append({"diagonal": np.ones(info.positions.size) if diagonal is None else diagonal})
            return ops, diagonal

        monkeypatch.setattr(observer, "_operators", recorded)
    sim = simulate(
        kernel,
        make_cloud({"shape": "two_circles", "n": 16}),
        6,
        optimizer=make_optimizer("adam"),
        lr=0.01,
        observers=[pre, raw],
        progress=False,
    )
    for name in calls:
        assert len(calls[name]) == 4 and calls[name][0]["v0"] is None
        for before, after in zip(calls[name], calls[name][1:]):
            expected = before["vector"] * np.sqrt(after["diagonal"] / before["diagonal"])
            np.testing.assert_allclose(after["v0"], expected, rtol=1e-14, atol=0)
    assert not np.allclose(calls["sharpness"][1]["diagonal"], 1.0)
    for before, after in zip(calls["raw"], calls["raw"][1:]):
        np.testing.assert_array_equal(after["v0"], before["vector"])
    assert all(sim.sink.series("sharpness", "converged")[1])
