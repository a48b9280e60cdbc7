"""Plain-numpy two-layer networks with exact gradients and Hessian-vector products.

These are the small reference losses the geometry diagnostics are tested and
benchmarked on, independent of the engine's kernels. A neuron is a particle
``x_i = (w_i, a_i)`` in R^(d+1): input weights then output weight. The network
is ``f(z) = c * sum_i a_i sigma(w_i . z)`` (``c = 1/N`` by default, the
mean-field scale) and the loss ``L = 1/(2B) sum_b (f(z_b) - y_b)^2``.
"""

from __future__ import annotations

import numpy as np


def _activation(name: str):
    if name == "sigmoid":

        def sigma(z):
            s = 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), overflow-free
            return s, s * (1.0 - s), s * (1.0 - s) * (1.0 - 2.0 * s)
    elif name == "relu":

        def sigma(z):
            step = (z > 0).astype(np.float64)
            return z * step, step, np.zeros_like(z)
    elif name == "tanh":

        def sigma(z):
            t = np.tanh(z)
            return t, 1.0 - t * t, -2.0 * t * (1.0 - t * t)
    else:
        raise ValueError(f"activation={name!r}: expected 'sigmoid', 'relu' or 'tanh'")
    return sigma


class TwoLayerNet:
    """Squared loss of a two-layer net on a fixed batch, as a function of its neurons.

    Parameters
    ----------
    inputs : ndarray, shape (B, d)
    targets : ndarray, shape (B,)
    activation : {'sigmoid', 'relu', 'tanh'}
    output_scale : float, optional
        The factor c; default ``1 / N`` at each call (mean-field scale).

    Notes
    -----
    All methods take the neurons as an (N, d+1) array; ``*_flat`` variants take
    and return flat vectors of length N (d+1), the layout Lanczos works on.
    """

    def __init__(self, inputs, targets, activation: str = "sigmoid", output_scale: float | None = None):
        self.inputs = np.asarray(inputs, dtype=np.float64)
        self.targets = np.asarray(targets, dtype=np.float64)
        if self.inputs.ndim != 2 or self.targets.shape != (self.inputs.shape[0],):
            raise ValueError(
                f"inputs {self.inputs.shape} and targets {self.targets.shape}: expected (B, d) and (B,)"
            )
        self.sigma = _activation(activation)
        self.activation = activation
        self.output_scale = output_scale
        self.dim = self.inputs.shape[1] + 1

    def _forward(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"neurons have shape {X.shape}: expected (N, {self.dim})")
        c = 1.0 / len(X) if self.output_scale is None else self.output_scale
        W, a = X[:, :-1], X[:, -1]
        s, ds, d2s = self.sigma(W @ self.inputs.T)
        residual = c * (a @ s) - self.targets
        return c, W, a, s, ds, d2s, residual

    def loss(self, X) -> float:
        """L(X)."""
        residual = self._forward(X)[-1]
        return 0.5 * float(residual @ residual) / len(residual)

    def grad(self, X) -> np.ndarray:
        """dL/dX, shape (N, d+1)."""
        c, W, a, s, ds, _, r = self._forward(X)
        B = len(r)
        g = np.empty_like(np.asarray(X, dtype=np.float64))
        g[:, -1] = (c / B) * (s @ r)
        g[:, :-1] = (c / B) * ((a[:, None] * ds * r) @ self.inputs)
        return g

    def hvp(self, X, V, _forward=None) -> np.ndarray:
        """Hessian of L at X applied to V, both (N, d+1)."""
        c, W, a, s, ds, d2s, r = self._forward(X) if _forward is None else _forward
        V = np.asarray(V, dtype=np.float64).reshape(np.shape(X))
        B = len(r)
        dW, da = V[:, :-1], V[:, -1]
        dZ = dW @ self.inputs.T
        df = c * (da @ s + (a[:, None] * ds * dZ).sum(axis=0))
        out = np.empty_like(V)
        out[:, -1] = (c / B) * (s @ df + (ds * dZ) @ r)
        inner = (a[:, None] * ds) * df + (da[:, None] * ds + a[:, None] * d2s * dZ) * r
        out[:, :-1] = (c / B) * (inner @ self.inputs)
        return out

    def hessian(self, X) -> np.ndarray:
        """Dense Hessian, shape (N(d+1), N(d+1)), from HVPs on the unit vectors."""
        X = np.asarray(X, dtype=np.float64)
        n = X.size
        H = np.column_stack([self.hvp(X, e.reshape(X.shape)).ravel() for e in np.eye(n)])
        return 0.5 * (H + H.T)

    def grad_flat(self, X):
        """Flat gradient callable ``x -> dL/dx`` for neurons shaped like X."""
        shape = np.shape(X)
        return lambda x: self.grad(np.reshape(x, shape)).ravel()

    def hvp_flat(self, X):
        """Flat HVP callable ``v -> H(X) v`` (the forward pass is done once)."""
        X = np.asarray(X, dtype=np.float64)
        forward = self._forward(X)
        return lambda v: self.hvp(X, np.reshape(v, X.shape), forward).ravel()


def teacher_student(
    n_student: int,
    d: int = 2,
    batch: int = 256,
    n_teacher: int = 4,
    activation: str = "sigmoid",
    seed: int = 0,
):
    """A teacher-student problem: targets from a random teacher net.

    Returns
    -------
    net : TwoLayerNet
        The loss of the student on the teacher's outputs.
    X0 : ndarray, shape (n_student, d + 1)
        A random student initialisation.
    teacher : ndarray, shape (n_teacher, d + 1)
    """
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((batch, d))
    teacher = rng.standard_normal((n_teacher, d + 1)) * np.r_[np.ones(d), 3.0]
    targets = TwoLayerNet(inputs, np.zeros(batch), activation)._forward(teacher)[-1]
    net = TwoLayerNet(inputs, targets, activation)
    X0 = rng.standard_normal((n_student, d + 1))
    return net, X0, teacher
