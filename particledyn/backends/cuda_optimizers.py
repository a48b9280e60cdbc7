"""GPU versions of the optimizers of :mod:`particledyn.optimizers` and of ``apply_step``.

Each update is one element-wise ``numba.cuda`` kernel over the N * D entries
(grid-stride), with the same formulas, constants cast to the working dtype,
and the optimizer state arrays on the device. :class:`DeviceOptimizer` wraps a
host optimizer (its hyperparameters and ``init_state``) and has the same
``direction(positions, field, state, step)`` signature.

CUDA compilers contract ``a * b + c`` into one fused multiply-add, which the
CPU loops do not, so the last bit of an update can differ from the numba
backend's (relative 1e-16 per step).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from particledyn.optimizers import GD, Adam, Momentum, Optimizer

from . import get_backend
from .cuda_common import THREADS, blocks_for


@cuda.jit
def _gd(x, u, wd, out):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, x.size, stride):
        out[j] = u[j] - wd * x[j]


@cuda.jit
def _momentum(x, u, wd, beta, buf, out):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, x.size, stride):
        buf[j] = beta * buf[j] + (wd * x[j] - u[j])
        out[j] = -buf[j]


@cuda.jit
def _adam(x, u, wd, beta1, beta2, c1, c2, eps, m, v, out):
    one = beta1 - beta1 + 1
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, x.size, stride):
        g = wd * x[j] - u[j]
        m[j] = beta1 * m[j] + (one - beta1) * g
        v[j] = beta2 * v[j] + (one - beta2) * g * g
        out[j] = -(m[j] / c1) / (math.sqrt(v[j] / c2) + eps)


@cuda.jit
def _apply_step(x, direction, lr, bad):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    count = 0
    for j in range(start, x.size, stride):
        value = x[j] + lr * direction[j]
        x[j] = value
        if not math.isfinite(value):
            count += 1
    if count:
        cuda.atomic.add(bad, 0, count)  # an integer count: the order of atomic adds does not matter


def apply_step(backend, positions, direction, lr) -> int:
    """positions += lr * direction in place on the device; returns the number of non-finite entries."""
    backend = get_backend(backend)
    x, s = positions.reshape(-1), direction.reshape(-1)
    bad = backend.xp.zeros(1, dtype=np.int64)
    view = backend.launch_view
    _apply_step[blocks_for(x.size), THREADS](view(x), view(s), positions.dtype.type(lr), view(bad))
    return int(backend.asnumpy(bad)[0])


class DeviceOptimizer(Optimizer):
    """A host optimizer (GD, SGD, Momentum, Adam) stepping device arrays.

    Parameters
    ----------
    optimizer : Optimizer
        Supplies the rule and its hyperparameters.
    backend : {'cupy', 'cudasim'} or Backend
    """

    def __init__(self, optimizer: Optimizer, backend="cupy"):
        if not isinstance(optimizer, (GD, Momentum, Adam)):
            raise TypeError(f"optimizer={optimizer!r}: expected GD, SGD, Momentum or Adam for a GPU backend")
        self.host = optimizer
        self.backend = get_backend(backend)
        self.name, self.state_names = optimizer.name, optimizer.state_names
        self.weight_decay = optimizer.weight_decay

    def init_state(self, positions) -> dict:
        """Zero state arrays on the device."""
        return {name: self.backend.xp.zeros_like(positions) for name in self.state_names}

    def direction(self, positions, field, state, step):
        """Step direction S (a device array) at update ``step``, updating ``state`` in place."""
        xp, view = self.backend.xp, self.backend.launch_view
        host, t = self.host, positions.dtype.type
        out = xp.empty_like(positions)
        x, u, o = view(positions.reshape(-1)), view(field.reshape(-1)), view(out.reshape(-1))
        launch = (blocks_for(positions.size), THREADS)
        if isinstance(host, Adam):
            c1 = 1.0 - host.beta1 ** (step + 1)
            c2 = 1.0 - host.beta2 ** (step + 1)
            _adam[launch](x, u, t(host.weight_decay), t(host.beta1), t(host.beta2), t(c1), t(c2), t(host.eps),
                          view(state["adam_m"].reshape(-1)), view(state["adam_v"].reshape(-1)), o)
        elif isinstance(host, Momentum):
            _momentum[launch](x, u, t(host.weight_decay), t(host.beta), view(state["velocity"].reshape(-1)), o)
        else:
            _gd[launch](x, u, t(host.weight_decay), o)
        return out

    def preconditioner(self, state, step):
        """Adam's diagonal preconditioner on a host copy of the state."""
        return self.host.preconditioner({k: self.backend.asnumpy(v) for k, v in state.items()}, step)

    def describe(self):
        return self.host.describe()
