"""Sharpness: top Hessian eigenvalues by Lanczos on Hessian-vector products.

``scipy.sparse.linalg.eigsh`` (ARPACK's implicitly restarted Lanczos) runs on a
``LinearOperator`` whose matvec is the user's Hessian-vector product, counted.
ARPACK stops when the Ritz estimate of every wanted pair satisfies
``||H v - lambda v|| <= tol * |lambda|``; we then recompute that residual
explicitly (one more HVP per pair) and restart from the best vector when it
does not hold. Warm start: pass the previous step's eigenvector as ``v0``.

What K means here: for gradient descent U = -grad L, so the Lipschitz constant
of U is ``||H||_2``; ``lambda_max`` (``which='LA'``, the default) is the
sharpness of the edge-of-stability literature, and ``which='LM'`` gives the
eigenvalue of largest magnitude (= ``||H||_2`` up to sign).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

HVP = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SharpnessResult:
    """Result of :func:`top_eigenpairs`.

    Attributes
    ----------
    lambda_max : float
        The top eigenvalue found (largest algebraic for ``which='LA'``).
    eigenvector : ndarray, shape (n,)
        Its unit eigenvector (use as ``v0`` next time).
    n_hvp : int
        Hessian-vector products spent, residual checks included.
    residual : float
        ``||H v - lambda v||`` of the top pair, computed explicitly.
    eigenvalues : ndarray, shape (k,)
        All k eigenvalues, descending.
    eigenvectors : ndarray, shape (n, k)
    residuals : ndarray, shape (k,)
    converged : bool
        Whether every residual is <= ``tol * |lambda|`` (or the dense path ran).
    """

    lambda_max: float
    eigenvector: np.ndarray
    n_hvp: int
    residual: float
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    converged: bool


class CountedOperator(LinearOperator):
    """A symmetric ``LinearOperator`` from a flat HVP callable, counting its calls."""

    def __init__(self, hvp: HVP, n: int):
        if not callable(hvp):
            raise TypeError(f"hvp is {type(hvp).__name__}: expected a callable v -> H v")
        super().__init__(dtype=np.float64, shape=(n, n))
        self.hvp = hvp
        self.count = 0

    def _matvec(self, v):
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        out = np.asarray(self.hvp(v), dtype=np.float64).reshape(-1)
        if out.shape != v.shape:
            raise ValueError(f"hvp returned {out.size} numbers: expected {v.size}, one per parameter")
        self.count += 1
        return out

    def _rmatvec(self, v):
        return self._matvec(v)


def _check_n(n) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"n={n!r}: expected a positive integer number of parameters")
    return int(n)


def check_eigenpair_count(k, n: int) -> int:
    """Check a number of eigenpairs against the number of parameters.

    Parameters
    ----------
    k : int
        Number of eigenpairs asked for.
    n : int
        Number of parameters (N * D).

    Returns
    -------
    int
        ``k``, if it is an integer with 1 <= k <= n.

    Raises
    ------
    ValueError
        ``k`` is not such an integer.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer, float)) or int(k) != k or not 1 <= k <= n:
        raise ValueError(
            f"k={k!r}: expected an integer number of eigenpairs in 1..{n} "
            f"(at most the number of parameters N * D = {n})"
        )
    return int(k)


def top_eigenpairs(
    hvp: HVP,
    n: int,
    k: int = 1,
    *,
    v0=None,
    tol: float = 1e-6,
    ncv: int | None = None,
    which: str = "LA",
    maxiter: int | None = None,
    max_restarts: int = 2,
    seed: int = 0,
) -> SharpnessResult:
    """Top-k eigenpairs of a symmetric operator given by Hessian-vector products.

    Parameters
    ----------
    hvp : callable
        ``hvp(v) -> H v`` on flat float64 vectors of length ``n``.
    n : int
        Number of parameters.
    k : int
        Number of eigenpairs.
    v0 : ndarray, shape (n,), optional
        Starting vector (warm start: the previous eigenvector). Default: a
        normal random vector from ``seed``. With k = 1 a given v0 is first
        grown into a Krylov space one HVP at a time, the residual tested after each
        (:func:`_warm_lanczos`, at most ``ncv`` HVPs): a start that is still an
        eigenvector to ``tol`` costs one HVP, one that moved a little a few; ARPACK
        (which tests only after ``ncv`` HVPs) runs from the best Ritz vector otherwise.
    tol : float
        Ritz-residual tolerance: stop when ``||H v - lambda v|| <= tol * |lambda|``.
    ncv : int, optional
        Lanczos basis size (>= max(3, k + 2)); default ``max(2k + 1, 12)``
        from a random start, ``max(2k + 1, 8)`` from a given ``v0``.
    which : {'LA', 'LM'}
        Largest algebraic or largest magnitude eigenvalues.
    maxiter : int, optional
        ARPACK restart limit.
    max_restarts : int
        Extra eigsh runs, each warm-started, when the explicit residual misses ``tol``.
    seed : int
        Seed of the default starting vector.

    Returns
    -------
    SharpnessResult
    """
    n = _check_n(n)
    k = check_eigenpair_count(k, n)
    if which not in ("LA", "LM"):
        raise ValueError(f"which={which!r}: expected 'LA' (largest algebraic) or 'LM' (magnitude)")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol={tol!r}: expected a positive relative residual tolerance")
    op = CountedOperator(hvp, n)
    if k >= n - 1 or n <= 3:
        return _dense_eigenpairs(op, k, which)
    if ncv is None:
        # ARPACK spends ncv HVPs before its first convergence test: a warm
        # start converges in few Lanczos steps, so it gets a smaller basis.
        ncv = max(2 * k + 1, 8 if v0 is not None else 12)
    ncv = int(ncv)
    if ncv < max(3, k + 2):
        raise ValueError(f"ncv={ncv!r}: expected at least max(3, k + 2) = {max(3, k + 2)}")
    ncv = min(ncv, n)
    warm = v0 is not None
    if v0 is None:
        v0 = np.random.default_rng(seed).standard_normal(n)
    v0 = np.asarray(v0, dtype=np.float64).reshape(-1)
    if v0.shape != (n,) or not np.isfinite(v0).all() or not v0.any():
        raise ValueError(f"v0 of size {v0.size}: expected a finite nonzero vector of length {n}")
    if warm and k == 1:
        # A warm start is close to the answer: Lanczos from it with the residual tested after
        # every product converges in a few HVPs, where ARPACK tests only after ncv of them.
        found, v0 = _warm_lanczos(op, v0, tol, which, max(ncv, 3))
        if found is not None:
            return found  # else ARPACK from the best Ritz vector so far
    for _ in range(max_restarts + 1):
        try:
            values, vectors = eigsh(op, k=k, which=which, v0=v0, ncv=ncv, tol=tol, maxiter=maxiter)
        except ArpackNoConvergence as err:
            values, vectors = err.eigenvalues, err.eigenvectors
            if len(values) == 0:
                raise RuntimeError(
                    f"eigsh found no eigenpair within maxiter={maxiter} ({op.count} HVPs)"
                ) from err
        order = np.argsort(values)[::-1] if which == "LA" else np.argsort(-np.abs(values))
        values, vectors = values[order], vectors[:, order]
        residuals = np.array(
            [
                np.linalg.norm(op.matvec(vectors[:, c]) - values[c] * vectors[:, c])
                for c in range(vectors.shape[1])
            ]
        )
        converged = bool(len(values) == k and (residuals <= tol * np.abs(values)).all())
        if converged:
            break
        v0 = vectors[:, 0]
    return SharpnessResult(
        float(values[0]),
        vectors[:, 0].copy(),
        op.count,
        float(residuals[0]),
        values,
        vectors,
        residuals,
        converged,
    )


def _warm_lanczos(
    op: CountedOperator, v0: np.ndarray, tol: float, which: str, steps: int
) -> tuple[SharpnessResult | None, np.ndarray]:
    """Top Ritz pair of the Krylov space of ``v0``, grown one HVP at a time (full
    reorthogonalisation) until ``||H x - theta x|| <= tol |theta|``: (the result, its vector),
    or (None, the best Ritz vector) after ``steps`` HVPs without it.

    The residual is explicit: ``H x`` is the combination of the stored products ``H v_j``
    with the Ritz vector's coefficients, so it costs no further HVP."""
    basis = [v0 / np.linalg.norm(v0)]
    products: list[np.ndarray] = []
    best = basis[0]
    for j in range(steps):
        products.append(op.matvec(basis[j]))
        V, W = np.column_stack(basis), np.column_stack(products)
        T = V.T @ W
        values, vectors = np.linalg.eigh(0.5 * (T + T.T))
        c = int(np.argmax(values) if which == "LA" else np.argmax(np.abs(values)))
        theta, y = float(values[c]), vectors[:, c]
        x, hx = V @ y, W @ y
        norm = float(np.linalg.norm(x))
        x, hx = x / norm, hx / norm
        residual = float(np.linalg.norm(hx - theta * x))
        best = x
        if residual <= tol * abs(theta):
            result = SharpnessResult(
                theta, x, op.count, residual, np.array([theta]), x[:, None], np.array([residual]), True
            )
            return result, x
        w = products[j].copy()
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            w -= V @ (V.T @ w)
        length = float(np.linalg.norm(w))
        if length <= 1e-12 * float(np.linalg.norm(products[j])):
            break  # an invariant subspace that misses tol: leave it to ARPACK
        basis.append(w / length)
    return None, best


def _dense_eigenpairs(op: CountedOperator, k: int, which: str) -> SharpnessResult:
    """Tiny problems (ARPACK needs k < n - 1): build H from n HVPs."""
    n = op.shape[0]
    dense = np.column_stack([op.matvec(e) for e in np.eye(n)])
    values, vectors = np.linalg.eigh(0.5 * (dense + dense.T))
    order = np.argsort(values)[::-1] if which == "LA" else np.argsort(-np.abs(values))
    values, vectors = values[order][:k], vectors[:, order][:, :k]
    residuals = np.linalg.norm(dense @ vectors - vectors * values, axis=0)
    return SharpnessResult(
        float(values[0]),
        vectors[:, 0].copy(),
        op.count,
        float(residuals[0]),
        values,
        vectors,
        residuals,
        True,
    )


class FiniteDifferenceHVP:
    """``H v`` by central differences of ``grad`` at ``x`` (see :func:`finite_difference_hvp`).

    Attributes
    ----------
    n_grad : int
        Gradient calls made so far (two per nonzero ``v``).
    h : float
        Step length along the unit direction.
    """

    def __init__(self, grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, h: float):
        self.grad = grad
        self.x = x
        self.h = h
        self.n_grad = 0

    def __call__(self, v) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            return np.zeros_like(v)
        u = v / norm
        self.n_grad += 2
        forward = np.asarray(self.grad(self.x + self.h * u), dtype=np.float64).reshape(-1)
        backward = np.asarray(self.grad(self.x - self.h * u), dtype=np.float64).reshape(-1)
        return (forward - backward) * (norm / (2.0 * self.h))


def finite_difference_hvp(
    grad: Callable[[np.ndarray], np.ndarray], x, h: float | None = None
) -> FiniteDifferenceHVP:
    """Hessian-vector products by central differences of a gradient.

    ``H v ~ ||v|| (g(x + h u) - g(x - h u)) / (2 h)`` with ``u = v / ||v||``.
    The error is ``O(h^2)`` (truncation) plus ``O(eps / h)`` (round-off), so the
    best step is ``h ~ eps^(1/3)`` times the length scale of x; the default is
    ``h = eps^(1/3) * max(1, rms(x))`` (about 6e-6 for unit-scale parameters),
    which gave relative errors of 1e-10 .. 1e-9 in float64 on the test nets.

    Parameters
    ----------
    grad : callable
        ``grad(x) -> dL/dx`` on flat float64 vectors.
    x : array_like, shape (n,)
        Point at which the Hessian is taken.
    h : float, optional
        Step length along the unit direction.

    Returns
    -------
    FiniteDifferenceHVP
        ``hvp(v) -> H v``; its attribute ``n_grad`` counts gradient calls.
    """
    if not callable(grad):
        raise TypeError(f"grad is {type(grad).__name__}: expected a callable x -> dL/dx")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if h is None:
        h = np.cbrt(np.finfo(np.float64).eps) * max(1.0, float(np.sqrt(np.mean(x * x))))
    h = float(h)
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h={h!r}: expected a positive finite step")

    return FiniteDifferenceHVP(grad, x, h)


def preconditioned_hvp(hvp: HVP, diagonal) -> HVP:
    """The symmetric operator ``P^{-1/2} H P^{-1/2}`` for a diagonal preconditioner P.

    For Adam, ``P = diag(sqrt(v_hat) + eps)`` (see :func:`adam_preconditioner`);
    the top eigenvalue of this operator is the preconditioned sharpness.

    Parameters
    ----------
    hvp : callable
        ``v -> H v``.
    diagonal : array_like, shape (n,) or (N, D)
        The positive diagonal of P (flattened in the same order as the HVP).

    Returns
    -------
    callable
    """
    if not callable(hvp):
        raise TypeError(f"hvp is {type(hvp).__name__}: expected a callable v -> H v")
    diagonal = np.asarray(diagonal, dtype=np.float64).reshape(-1)
    if not np.isfinite(diagonal).all() or (diagonal <= 0).any():
        raise ValueError("diagonal has a non-positive or non-finite entry: expected P > 0")
    scale = 1.0 / np.sqrt(diagonal)

    def scaled(v):
        return scale * np.asarray(
            hvp(scale * np.asarray(v, dtype=np.float64).reshape(-1)), dtype=np.float64
        ).reshape(-1)

    return scaled


def adam_preconditioner(second_moment, step: int, beta2: float = 0.999, eps: float = 1e-8) -> np.ndarray:
    """Adam's diagonal ``sqrt(v / (1 - beta2^step)) + eps``.

    Parameters
    ----------
    second_moment : array_like
        Adam's running average v of squared gradients.
    step : int
        Number of Adam updates taken so far (>= 1), for the bias correction.
    beta2, eps : float
        Adam's hyper-parameters.

    Returns
    -------
    ndarray, same shape as ``second_moment``
    """
    v = np.asarray(second_moment, dtype=np.float64)
    if int(step) != step or step < 1:
        raise ValueError(f"step={step!r}: expected the number of Adam updates taken (>= 1)")
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"beta2={beta2!r}: expected 0 <= beta2 < 1")
    if (v < 0).any():
        raise ValueError("second_moment has a negative entry: expected squared-gradient averages")
    return np.sqrt(v / (1.0 - beta2 ** int(step))) + eps


def stability_thresholds(
    lambda_max: float, lr: float, momentum: float = 0.0, adam_beta1: float | None = None
) -> dict[str, float]:
    """The edge-of-stability picture for one sharpness value.

    Parameters
    ----------
    lambda_max : float
        The K being reported (sharpness, or preconditioned sharpness).
    lr : float
        Learning rate eta.
    momentum : float
        Heavy-ball beta (0 for plain GD).
    adam_beta1 : float, optional
        For Adam's preconditioned sharpness: its beta1. The edge is then the adaptive
        edge of stability (2 + 2 beta1) / ((1 - beta1) eta), 38 / eta at beta1 = 0.9
        (Cohen et al. 2022), not 2 / eta.

    Returns
    -------
    dict
        ``K``; ``eta_star = 1 / K`` (the topological critical point, inf for
        K <= 0); ``eta_K = eta K``; ``two_over_eta = 2 / eta`` (GD stability
        threshold for the sharpness); ``stability_threshold = (2 + 2 beta) / eta``,
        or (2 + 2 beta1) / ((1 - beta1) eta) with ``adam_beta1``.
    """
    K, lr, momentum = float(lambda_max), float(lr), float(momentum)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r}: expected a positive learning rate")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum!r}: expected 0 <= beta < 1")
    if adam_beta1 is None:
        edge = (2.0 + 2.0 * momentum) / lr
    elif momentum != 0.0 or not 0.0 <= float(adam_beta1) < 1.0:
        raise ValueError(
            f"adam_beta1={adam_beta1!r} with momentum={momentum!r}: expected 0 <= beta1 < 1 "
            "and no heavy-ball momentum"
        )
    else:
        edge = (2.0 + 2.0 * float(adam_beta1)) / ((1.0 - float(adam_beta1)) * lr)
    return {
        "K": K,
        "eta_star": 1.0 / K if K > 0 else float("inf"),
        "eta_K": lr * K,
        "two_over_eta": 2.0 / lr,
        "stability_threshold": edge,
    }


def gradient_fraction(gradient, eigenvectors) -> float:
    """Fraction of the gradient in the span of orthonormal eigenvectors: ``||P_k g||^2 / ||g||^2``.

    Parameters
    ----------
    gradient : array_like, shape (n,)
    eigenvectors : ndarray, shape (n, k), orthonormal columns

    Returns
    -------
    float
        In [0, 1]; NaN for a zero gradient.
    """
    g = np.asarray(gradient, dtype=np.float64).reshape(-1)
    V = np.asarray(eigenvectors, dtype=np.float64)
    if V.ndim == 1:
        V = V[:, None]
    if V.shape[0] != g.size:
        raise ValueError(f"eigenvectors have {V.shape[0]} rows: expected {g.size}, the gradient's size")
    total = float(g @ g)
    if total == 0.0:
        return float("nan")
    projection = V.T @ g
    return float(projection @ projection) / total
