"""Sharpness by Lanczos against dense eigendecompositions of exact Hessians."""

import numpy as np
import pytest

from particledyn.geometry import (
    adam_preconditioner,
    finite_difference_hvp,
    gradient_fraction,
    preconditioned_hvp,
    stability_thresholds,
    top_eigenpairs,
)
from particledyn.geometry.reference_nets import TwoLayerNet, teacher_student


def _central_jacobian(f, x, h=1e-5):
    """Dense Jacobian of f by central differences (a check independent of the analytic code)."""
    columns = []
    for e in np.eye(x.size):
        columns.append((np.atleast_1d(f(x + h * e)) - np.atleast_1d(f(x - h * e))) / (2 * h))
    return np.column_stack(columns)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_reference_net_derivatives_match_finite_differences(activation):
    net, X, _ = teacher_student(6, d=3, batch=15, activation=activation, seed=3)
    x = X.ravel()
    grad_fd = _central_jacobian(lambda y: net.loss(y.reshape(X.shape)), x).ravel()
    np.testing.assert_allclose(net.grad(X).ravel(), grad_fd, rtol=1e-6, atol=1e-11)
    hess_fd = _central_jacobian(net.grad_flat(X), x)
    H = net.hessian(X)
    assert np.abs(H - hess_fd).max() <= 1e-7 * np.abs(H).max()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_lanczos_matches_dense_eigvalsh(seed, activation):
    net, X, _ = teacher_student(10, d=3, batch=25, activation=activation, seed=seed)
    exact = np.linalg.eigvalsh(net.hessian(X))
    result = top_eigenpairs(net.hvp_flat(X), X.size, tol=1e-10)
    assert result.converged
    assert abs(result.lambda_max - exact[-1]) <= 1e-8 * abs(exact[-1])
    residual = np.linalg.norm(net.hvp_flat(X)(result.eigenvector) - result.lambda_max * result.eigenvector)
    # the residual from the stored products is the explicit one up to rounding (eps ||H||)
    np.testing.assert_allclose(result.residual, residual, rtol=1e-6, atol=1e-15 * abs(result.lambda_max))
    assert result.residual <= 1e-10 * abs(result.lambda_max)
    assert result.n_hvp > 0


def test_finite_difference_hvp_is_accurate_and_gives_the_same_lambda():
    net, X, _ = teacher_student(10, d=3, batch=25, seed=4)
    H = net.hessian(X)
    fd = finite_difference_hvp(net.grad_flat(X), X.ravel())
    v = np.random.default_rng(0).standard_normal(X.size)
    assert np.linalg.norm(fd(v) - H @ v) <= 1e-8 * np.linalg.norm(H @ v)
    fd.n_grad = 0
    result = top_eigenpairs(fd, X.size, tol=1e-8)
    exact = np.linalg.eigvalsh(H)[-1]
    assert abs(result.lambda_max - exact) <= 1e-7 * abs(exact)
    assert fd.n_grad == 2 * result.n_hvp


def test_top_k_eigenpairs_and_gradient_fraction():
    net, X, _ = teacher_student(8, d=3, batch=30, seed=5)
    values, vectors = np.linalg.eigh(net.hessian(X))
    result = top_eigenpairs(net.hvp_flat(X), X.size, k=3, tol=1e-10)
    np.testing.assert_allclose(result.eigenvalues, values[::-1][:3], rtol=1e-8)
    g = net.grad(X).ravel()
    top = vectors[:, ::-1][:, :3]
    expected = np.sum((top.T @ g) ** 2) / (g @ g)
    np.testing.assert_allclose(gradient_fraction(g, result.eigenvectors), expected, rtol=1e-6)
    assert 0.0 <= expected <= 1.0
    np.testing.assert_allclose(gradient_fraction(g, vectors), 1.0, rtol=1e-12)


def test_warm_start_from_the_eigenvector_needs_fewer_hvps():
    net, X, _ = teacher_student(40, d=2, batch=64, seed=6)
    cold = top_eigenpairs(net.hvp_flat(X), X.size, tol=1e-8)
    same = top_eigenpairs(net.hvp_flat(X), X.size, tol=1e-8, v0=cold.eigenvector)
    assert same.converged and same.n_hvp == 1
    np.testing.assert_allclose(same.lambda_max, cold.lambda_max, rtol=1e-12)
    # A nearby vector (the previous step's) beats a random start when the top
    # of the spectrum is crowded and a cold start needs several restarts.
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((400, 400)))
    A = Q @ np.diag(np.r_[1.0, np.linspace(0.97, 0.0, 399)]) @ Q.T
    nearby = Q[:, 0] + 1e-3 * rng.standard_normal(400)
    cold = top_eigenpairs(lambda v: A @ v, 400, tol=1e-8)
    warm = top_eigenpairs(lambda v: A @ v, 400, tol=1e-8, v0=nearby)
    assert cold.converged and warm.converged and warm.n_hvp < cold.n_hvp
    np.testing.assert_allclose([cold.lambda_max, warm.lambda_max], 1.0, rtol=1e-12)


def test_preconditioned_operator_matches_dense():
    net, X, _ = teacher_student(8, d=3, batch=30, seed=7)
    H = net.hessian(X)
    second_moment = np.random.default_rng(1).random(X.size) * 1e-3
    P = adam_preconditioner(second_moment, step=5, beta2=0.99, eps=1e-8)
    np.testing.assert_allclose(P, np.sqrt(second_moment / (1 - 0.99**5)) + 1e-8)
    scale = 1 / np.sqrt(P)
    exact = np.linalg.eigvalsh(scale[:, None] * H * scale[None, :])[-1]
    result = top_eigenpairs(preconditioned_hvp(net.hvp_flat(X), P), X.size, tol=1e-10)
    assert abs(result.lambda_max - exact) <= 1e-8 * abs(exact)


def test_largest_magnitude_mode_finds_a_negative_dominant_eigenvalue():
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    spectrum = np.r_[-5.0, 3.0, np.linspace(-1, 1, 28)]
    A = Q @ np.diag(spectrum) @ Q.T
    assert np.isclose(top_eigenpairs(lambda v: A @ v, 30, which="LM", tol=1e-10).lambda_max, -5.0)
    assert np.isclose(top_eigenpairs(lambda v: A @ v, 30, which="LA", tol=1e-10).lambda_max, 3.0)


def test_tiny_problem_uses_the_dense_path():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    result = top_eigenpairs(lambda v: A @ v, 2)
    assert np.isclose(result.lambda_max, np.linalg.eigvalsh(A)[-1]) and result.n_hvp == 2


def test_stability_thresholds():
    out = stability_thresholds(4.0, lr=0.1, momentum=0.9)
    assert out == pytest.approx(
        {"K": 4.0, "eta_star": 0.25, "eta_K": 0.4, "two_over_eta": 20.0, "stability_threshold": 38.0}
    )
    assert stability_thresholds(0.0, lr=0.1)["eta_star"] == np.inf


def test_bad_inputs_raise_clear_errors():
    hvp = lambda v: v  # noqa: E731
    with pytest.raises(ValueError, match="n=0"):
        top_eigenpairs(hvp, 0)
    with pytest.raises(ValueError, match="k=11"):
        top_eigenpairs(hvp, 10, k=11)
    with pytest.raises(ValueError, match="which="):
        top_eigenpairs(hvp, 10, which="SM")
    with pytest.raises(ValueError, match="tol="):
        top_eigenpairs(hvp, 10, tol=0)
    with pytest.raises(ValueError, match="hvp returned 3 numbers"):
        top_eigenpairs(lambda v: v[:3], 10)
    with pytest.raises(TypeError, match="hvp is int"):
        top_eigenpairs(3, 10)
    with pytest.raises(ValueError, match="diagonal"):
        preconditioned_hvp(hvp, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="lr="):
        stability_thresholds(1.0, lr=0.0)
    with pytest.raises(ValueError, match="inputs"):
        TwoLayerNet(np.zeros((3, 2)), np.zeros(4))


def test_adam_edge_of_stability_is_38_over_eta():
    out = stability_thresholds(4.0, lr=0.1, adam_beta1=0.9)
    assert out["stability_threshold"] == pytest.approx(380.0) and out["two_over_eta"] == pytest.approx(20.0)
    assert stability_thresholds(1.0, lr=1.0, adam_beta1=0.5)["stability_threshold"] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="adam_beta1=1.0"):
        stability_thresholds(1.0, lr=0.1, adam_beta1=1.0)


def test_kernel_sharpness_uses_adams_edge_for_the_preconditioned_operator():
    from particledyn import simulate
    from particledyn.clouds import make_cloud
    from particledyn.data import teacher_student
    from particledyn.geometry import kernel_sharpness
    from particledyn.kernels import TwoLayerNet
    from particledyn.optimizers import make_optimizer

    data = teacher_student(1, n=60, seed=0)
    kernel = TwoLayerNet(data.z_train, data.y_train)
    x = make_cloud({"shape": "two_circles", "n": 16})
    pre, raw = kernel_sharpness(2), kernel_sharpness(2, preconditioned=False)
    raw.name = "raw"
    sim = simulate(
        kernel, x, 4, optimizer=make_optimizer("adam"), lr=0.01, observers=[pre, raw], progress=False
    )
    steps, edge = sim.sink.series("sharpness", "stability_threshold")
    assert list(steps) == [0, 2, 4] and np.allclose(edge, 38 / 0.01)
    np.testing.assert_allclose(sim.sink.series("raw", "stability_threshold")[1], 2 / 0.01)
    # after step 0 the two operators differ: P^-1/2 H P^-1/2 is not H
    pre_k, raw_k = sim.sink.series("sharpness", "lambda_max")[1], sim.sink.series("raw", "lambda_max")[1]
    assert pre_k[0] == pytest.approx(raw_k[0], rel=1e-6) and abs(pre_k[-1] / raw_k[-1] - 1) > 1e-2


def test_a_warm_start_that_moved_a_little_converges_in_a_few_products_to_the_cold_answer():
    """The residual is tested after every HVP, on a crowded spectrum: a start ~2e-5 off the
    top eigenvector is done in a few HVPs at tol 1e-6 (ARPACK, before, spent ncv = 8 first) and
    agrees with a cold solve to the tolerance; a start further off at tol 1e-9 needs more than
    8 products and still finds the top."""
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((300, 300)))
    A = Q @ np.diag(np.r_[2.0, np.linspace(1.6, -1.0, 299)]) @ Q.T
    near = top_eigenpairs(lambda v: A @ v, 300, tol=1e-6, v0=Q[:, 0] + 1e-6 * rng.standard_normal(300))
    assert near.converged and near.n_hvp <= 5
    assert abs(near.lambda_max - 2.0) <= 1e-6 * 2.0
    explicit = np.linalg.norm(A @ near.eigenvector - near.lambda_max * near.eigenvector)
    np.testing.assert_allclose(explicit, near.residual, rtol=1e-6)
    assert near.residual <= 1e-6 * near.lambda_max
    far = top_eigenpairs(lambda v: A @ v, 300, tol=1e-9, v0=Q[:, 0] + 1e-4 * rng.standard_normal(300))
    assert far.converged and far.n_hvp > 8 and abs(far.lambda_max - 2.0) <= 1e-9 * 2.0
