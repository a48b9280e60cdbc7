"""Sharpness: top Hessian eigenvalues by Lanczos on Hessian-vector products.

A thick-restart Lanczos (:func:`top_eigenpairs`) runs on the user's Hessian-vector product,
counted: full reorthogonalisation, the Ritz residual ``||H x - theta x||`` tested after every
product (explicit: a combination of the stored products, no extra HVP), stop when it is
``<= tol * |theta|``. Warm start: pass the previous step's eigenvector as ``v0``; a start that
is still an eigenvector to ``tol`` costs one HVP. (ARPACK, used before, tested only after
``ncv`` products and threw its basis away at each restart and at each warm start that missed.)

What K means here: for gradient descent U = -grad L, so the Lipschitz constant
of U is ``||H||_2``; ``lambda_max`` (``which='LA'``, the default) is the
sharpness of the edge-of-stability literature, and ``which='LM'`` gives the
eigenvalue of largest magnitude (= ``||H||_2`` up to sign).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator

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
    max_hvp: int | None = None,
    seed: int = 0,
) -> SharpnessResult:
    """Top-k eigenpairs of a symmetric operator given by Hessian-vector products.

    Thick-restart Lanczos (:func:`_thick_restart_lanczos`): the Krylov space of ``v0`` grows
    one HVP at a time, with full reorthogonalisation, and the Ritz residuals are tested after
    every product, so a start that is still an eigenvector to ``tol`` costs one HVP and a
    cold start stops at the first product that meets ``tol``.

    Parameters
    ----------
    hvp : callable
        ``hvp(v) -> H v`` on flat float64 vectors of length ``n``.
    n : int
        Number of parameters.
    k : int
        Number of eigenpairs.
    v0 : ndarray, shape (n,), optional
        Starting vector (warm start: the previous eigenvector). Default: a normal random
        vector from ``seed``.
    tol : float
        Ritz-residual tolerance: stop when ``||H x - theta x|| <= tol * |theta|`` for each of
        the k pairs (then ``|lambda - theta| <= tol |theta|``, and far less when the top
        eigenvalue is separated: ``residual^2 / gap``).
    ncv : int, optional
        Lanczos basis size before a thick restart (>= max(3, k + 2)); default
        ``max(2k + 1, 30)``, at most ``n`` and at most what fits in 1 GiB for V and H V.
    which : {'LA', 'LM'}
        Largest algebraic or largest magnitude eigenvalues.
    max_hvp : int, optional
        Most HVPs before giving up (``converged`` False); default ``max(100 ncv, 1000)``.
    seed : int
        Seed of the default starting vector (and of a fresh direction if the Krylov space of
        ``v0`` is an invariant subspace).

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
        ncv = max(2 * k + 1, min(30, _BASIS_BYTES // (16 * n)))
    ncv = int(ncv)
    if ncv < max(3, k + 2):
        raise ValueError(f"ncv={ncv!r}: expected at least max(3, k + 2) = {max(3, k + 2)}")
    ncv = min(ncv, n)
    if max_hvp is None:
        max_hvp = max(100 * ncv, 1000)
    if int(max_hvp) != max_hvp or max_hvp < 1:
        raise ValueError(f"max_hvp={max_hvp!r}: expected a positive integer number of HVPs")
    rng = np.random.default_rng(seed)
    if v0 is None:
        v0 = rng.standard_normal(n)
    v0 = np.asarray(v0, dtype=np.float64).reshape(-1)
    if v0.shape != (n,) or not np.isfinite(v0).all() or not v0.any():
        raise ValueError(f"v0 of size {v0.size}: expected a finite nonzero vector of length {n}")
    return _thick_restart_lanczos(op, v0, k, tol, which, ncv, int(max_hvp), rng)


_BASIS_BYTES = 1 << 30
"""Memory for the Lanczos basis V and its products H V together (bounds the default ncv)."""


def _top(values: np.ndarray, which: str, k: int) -> np.ndarray:
    """Indices of the k wanted Ritz values, best first (ties: the lower index, stable)."""
    key = -values if which == "LA" else -np.abs(values)
    return np.argsort(key, kind="stable")[:k]


def _thick_restart_lanczos(
    op: CountedOperator,
    v0: np.ndarray,
    k: int,
    tol: float,
    which: str,
    ncv: int,
    max_hvp: int,
    rng: np.random.Generator,
) -> SharpnessResult:
    """Lanczos with full reorthogonalisation and thick restarts, in Rayleigh-Ritz form.

    The basis V (rows, orthonormal) and the products W = H V are kept; T = V W^T is the
    projected operator, its top eigenpairs (theta, y) give Ritz pairs x = y V, H x = y W, so
    every residual ``||H x - theta x||`` is explicit (a combination of actual products) and
    costs no further HVP. The next basis vector is a Ritz residual orthogonalised against V:
    in a Krylov space every Ritz residual is parallel to the next Lanczos vector, so this is
    Lanczos, with the better-conditioned direction. When V holds ``ncv`` vectors it is
    replaced by its ``max(k + 1, ncv // 2)`` top Ritz vectors (and W by their products):
    the thick restart of Wu and Simon (2000), still a Krylov space.
    """
    n = v0.size
    V = np.empty((ncv, n))
    W = np.empty((ncv, n))
    T = np.zeros((ncv, ncv))
    keep = min(max(k + 1, ncv // 2), ncv - 1)
    q = v0 / np.linalg.norm(v0)
    size = 0
    while True:
        V[size] = q
        W[size] = op.matvec(q)
        column = V[: size + 1] @ W[size]
        T[: size + 1, size] = column
        T[size, : size + 1] = column
        size += 1
        values, vectors = np.linalg.eigh(T[:size, :size])
        chosen = _top(values, which, min(k, size))
        theta, Y = values[chosen], vectors[:, chosen]
        X, HX = Y.T @ V[:size], Y.T @ W[:size]
        R = HX - theta[:, None] * X
        residuals = np.linalg.norm(R, axis=1)
        done = residuals <= tol * np.abs(theta)
        if (size >= k and done.all()) or op.count >= max_hvp or size == n:
            break  # (at size n the Ritz pairs are exact to rounding)
        r = R[int(np.argmin(done))] if size >= k else W[size - 1].copy()
        scale = float(np.linalg.norm(r))
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            r -= (V[:size] @ r) @ V[:size]
        length = float(np.linalg.norm(r))
        if not length > 1e-10 * max(scale, 1e-300):
            # the Krylov space of v0 is invariant: go on in a fresh random direction
            r = rng.standard_normal(n)
            for _ in range(2):
                r -= (V[:size] @ r) @ V[:size]
            length = float(np.linalg.norm(r))
        if size == ncv:
            order = _top(values, which, keep)
            Yk = vectors[:, order]
            V[:keep], W[:keep] = Yk.T @ V[:size], Yk.T @ W[:size]
            T[:] = 0.0
            T[np.arange(keep), np.arange(keep)] = values[order]
            size = keep
        q = r / length
    converged = bool(size >= k and done.all())
    return SharpnessResult(
        float(theta[0]),
        X[0].copy(),
        op.count,
        float(residuals[0]),
        theta,
        np.ascontiguousarray(X.T),
        residuals,
        converged,
    )


def _dense_eigenpairs(op: CountedOperator, k: int, which: str) -> SharpnessResult:
    """Tiny problems (k >= n - 1 or n <= 3): build H from n HVPs."""
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
