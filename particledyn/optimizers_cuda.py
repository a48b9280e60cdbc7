"""GPU twins of the optimizers of :mod:`particledyn.optimizers` and of ``apply_step``.

Each update is one element-wise ``numba.cuda`` kernel over the N * D entries
(grid-stride), with the same formulas, constants cast to the working dtype,
and the optimizer state arrays on the device. A host optimizer's ``to_device``
returns its twin here (:class:`DeviceGD`, :class:`DeviceMomentum`,
:class:`DeviceAdam`): it wraps the host optimizer (its hyperparameters) and has
the same ``direction(positions, field, state, step)`` signature.

CUDA compilers contract ``a * b + c`` into one fused multiply-add, which the
CPU loops do not, so the last bit of an update can differ from the numba
backend's (relative 1e-16 per step).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from particledyn.backends import get_backend
from particledyn.backends.cuda_common import THREADS, blocks_for
from particledyn.optimizers import GD, Adam, Momentum, Optimizer


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
    """Base of the GPU twins: a host optimizer's rule stepping device arrays.

    Parameters
    ----------
    optimizer : Optimizer
        Supplies the hyperparameters; an instance of the twin's ``rule`` whose
        ``direction`` is that rule's own.
    backend : {'cupy', 'cudasim'} or Backend
    """

    #: the host class whose update this twin computes
    rule: type[Optimizer] = Optimizer

    def __init__(self, optimizer: Optimizer, backend="cupy"):
        own = isinstance(optimizer, self.rule) and type(optimizer).direction is self.rule.direction
        if not own:
            raise TypeError(
                f"optimizer={optimizer!r}: expected a {self.rule.__name__} whose direction is "
                f"{self.rule.__name__}'s own for {type(self).__name__} (a GPU twin computes "
                "that rule only)"
            )
        self.host = optimizer
        self.backend = get_backend(backend)
        self.name, self.state_names = optimizer.name, optimizer.state_names
        self.weight_decay = optimizer.weight_decay

    def init_state(self, positions) -> dict:
        """Zero state arrays on the device."""
        return {name: self.backend.xp.zeros_like(positions) for name in self.state_names}

    def direction(self, positions, field, state, step):
        """Step direction S (a device array) at update ``step``, updating ``state`` in place."""
        out = self.backend.xp.empty_like(positions)
        view = self.backend.launch_view
        flat = {name: view(array.reshape(-1)) for name, array in state.items()}
        self._launch(
            (blocks_for(positions.size), THREADS),
            view(positions.reshape(-1)),
            view(field.reshape(-1)),
            flat,
            view(out.reshape(-1)),
            positions.dtype.type,
            step,
        )
        return out

    def _launch(self, launch, x, u, state, out, t, step):
        """Launch the rule's kernel on flat views; ``t`` casts constants to the working dtype."""
        raise NotImplementedError

    def describe(self):
        return self.host.describe()


class DeviceGD(DeviceOptimizer):
    """:class:`~particledyn.optimizers.GD` (and SGD) on the device."""

    rule = GD

    def _launch(self, launch, x, u, state, out, t, step):
        _gd[launch](x, u, t(self.host.weight_decay), out)


class DeviceMomentum(DeviceOptimizer):
    """:class:`~particledyn.optimizers.Momentum` on the device."""

    rule = Momentum

    def _launch(self, launch, x, u, state, out, t, step):
        host = self.host
        _momentum[launch](x, u, t(host.weight_decay), t(host.beta), state["velocity"], out)


class DeviceAdam(DeviceOptimizer):
    """:class:`~particledyn.optimizers.Adam` on the device."""

    rule = Adam

    def _launch(self, launch, x, u, state, out, t, step):
        host = self.host
        c1 = 1.0 - host.beta1 ** (step + 1)
        c2 = 1.0 - host.beta2 ** (step + 1)
        _adam[launch](
            x,
            u,
            t(host.weight_decay),
            t(host.beta1),
            t(host.beta2),
            t(c1),
            t(c2),
            t(host.eps),
            state["adam_m"],
            state["adam_v"],
            out,
        )

    def preconditioner(self, state, step):
        """Adam's diagonal preconditioner on a host copy of the state."""
        return self.host.preconditioner({k: self.backend.asnumpy(v) for k, v in state.items()}, step)
