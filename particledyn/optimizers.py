"""Optimizers as equivariant update rules on augmented particles (paper section 5.2).

An optimizer turns the kernel's field U (the negative gradient, for gradient
kernels) into the step direction S with x <- x + lr * S, updating its
per-particle state in place. Each rule acts on every coordinate of every
particle alike, so it is permutation equivariant whenever the field is:
the state of particle i (its moments) travels with particle i.

Weight decay adds ``weight_decay * x`` to the gradient (coupled L2, as
PyTorch's ``weight_decay``). Each update is one fused, parallel numba loop
over the N * D entries, with constants cast to the working dtype, cached on
disk (``cache=True``) so a new process does not recompile it. The GPU twin of
each rule is in :mod:`particledyn.optimizers_cuda` (``to_device``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .serial_twins import parallel_loop


@parallel_loop(error_model="numpy", cache=True)
def _gd(x, u, wd, out):
    for j in prange(x.size):
        out[j] = u[j] - wd * x[j]


@parallel_loop(error_model="numpy", cache=True)
def _momentum(x, u, wd, beta, buf, out):
    for j in prange(x.size):
        buf[j] = beta * buf[j] + (wd * x[j] - u[j])
        out[j] = -buf[j]


@parallel_loop(error_model="numpy", cache=True)
def _adam(x, u, wd, beta1, beta2, c1, c2, eps, m, v, out):
    one = beta1 - beta1 + 1
    for j in prange(x.size):
        g = wd * x[j] - u[j]
        m[j] = beta1 * m[j] + (one - beta1) * g
        v[j] = beta2 * v[j] + (one - beta2) * g * g
        out[j] = -(m[j] / c1) / (math.sqrt(v[j] / c2) + eps)


@parallel_loop(error_model="numpy", cache=True)
def apply_step(x, direction, lr):
    """x += lr * direction in place; returns the number of non-finite entries."""
    bad = 0
    for j in prange(x.size):
        value = x[j] + lr * direction[j]
        x[j] = value
        if not math.isfinite(value):
            bad += 1
    return bad


def _check_unit(name, value):
    value = float(value)
    if not (0.0 <= value < 1.0):
        raise ValueError(f"{name}={value!r}: expected 0 <= {name} < 1")
    return value


def _check_decay(weight_decay):
    weight_decay = float(weight_decay)
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay={weight_decay!r}: expected a finite number >= 0")
    return weight_decay


class Optimizer:
    """Base class: ``direction(x, field, state, step)`` -> S, updating ``state`` in place."""

    name = "optimizer"
    state_names: tuple[str, ...] = ()
    # elementwise updates are the same at every thread count (see Kernel.thread_invariant)
    thread_invariant: bool = False

    def __init__(self, weight_decay: float = 0.0):
        self.weight_decay = _check_decay(weight_decay)

    def init_state(self, positions: np.ndarray) -> dict:
        """Zero per-particle state, one (N, D) array per name in ``state_names``."""
        return {name: np.zeros_like(positions) for name in self.state_names}

    def direction(self, positions, field, state, step) -> np.ndarray:
        """Step direction S at update number ``step`` (0-based)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Parameters, for run metadata."""
        return {"name": self.name, "weight_decay": self.weight_decay}

    def to_device(self, backend) -> Optimizer:
        """This rule stepping the device arrays of ``backend`` (a device backend).

        Raises
        ------
        TypeError
            The rule has no GPU twin (GD, SGD, Momentum and Adam have one).
        """
        raise TypeError(
            f"optimizer {self.name!r} ({type(self).__name__}) has no GPU version: expected "
            "GD, SGD, Momentum or Adam for a GPU backend"
        )


class GD(Optimizer):
    """Gradient descent: S = U - weight_decay * x. With a kernel batch smaller than
    the data set this is SGD, the mini-batch shared by all particles."""

    name = "gd"
    thread_invariant = True

    def to_device(self, backend) -> Optimizer:
        from .optimizers_cuda import DeviceGD

        return DeviceGD(self, backend)

    def direction(self, positions, field, state, step):
        out = np.empty_like(positions)
        _gd(positions.ravel(), field.ravel(), positions.dtype.type(self.weight_decay), out.ravel())
        return out


class SGD(GD):
    """Stochastic gradient descent: GD on a mini-batch shared by all particles
    (set ``batch_size`` on the simulation)."""

    name = "sgd"


class Momentum(Optimizer):
    """Heavy-ball momentum (PyTorch convention): b <- beta b + g, S = -b, g = -U + wd x."""

    name = "momentum"
    thread_invariant = True
    state_names = ("velocity",)

    def __init__(self, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(weight_decay)
        self.beta = _check_unit("beta", beta)

    def to_device(self, backend) -> Optimizer:
        from .optimizers_cuda import DeviceMomentum

        return DeviceMomentum(self, backend)

    def direction(self, positions, field, state, step):
        out = np.empty_like(positions)
        t = positions.dtype.type
        _momentum(
            positions.ravel(),
            field.ravel(),
            t(self.weight_decay),
            t(self.beta),
            state["velocity"].ravel(),
            out.ravel(),
        )
        return out

    def describe(self):
        return {**super().describe(), "beta": self.beta}


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), as eq. (18) of the paper.

    m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
    S = -(m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), t = step + 1.
    """

    name = "adam"
    thread_invariant = True
    state_names = ("adam_m", "adam_v")

    def __init__(
        self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0
    ):
        super().__init__(weight_decay)
        self.beta1 = _check_unit("beta1", beta1)
        self.beta2 = _check_unit("beta2", beta2)
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"eps={eps!r}: expected a positive finite number")
        self.eps = float(eps)

    def to_device(self, backend) -> Optimizer:
        from .optimizers_cuda import DeviceAdam

        return DeviceAdam(self, backend)

    def direction(self, positions, field, state, step):
        out = np.empty_like(positions)
        t = positions.dtype.type
        c1 = 1.0 - self.beta1 ** (step + 1)
        c2 = 1.0 - self.beta2 ** (step + 1)
        _adam(
            positions.ravel(),
            field.ravel(),
            t(self.weight_decay),
            t(self.beta1),
            t(self.beta2),
            t(c1),
            t(c2),
            t(self.eps),
            state["adam_m"].ravel(),
            state["adam_v"].ravel(),
            out.ravel(),
        )
        return out

    def preconditioner(self, state, step) -> np.ndarray:
        """Diagonal P = sqrt(v_hat) + eps of the last step (for the preconditioned sharpness)."""
        c2 = 1.0 - self.beta2 ** max(step, 1)
        return np.sqrt(state["adam_v"].astype(np.float64) / c2) + self.eps

    def describe(self):
        return {**super().describe(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


OPTIMIZERS = {"gd": GD, "sgd": SGD, "momentum": Momentum, "adam": Adam}


def make_optimizer(name: str, **options) -> Optimizer:
    """Optimizer by name ('gd', 'sgd', 'momentum', 'adam') with keyword options."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"optimizer={name!r}: expected one of {sorted(OPTIMIZERS)}") from None
    return cls(**options)
