"""A kernel with no GPU code, stepping device arrays through host copies."""

from __future__ import annotations

from particledyn.kernel import Kernel


class HostFallbackKernel(Kernel):
    """Runs ``kernel`` on host copies of the device arrays, returning a device field.

    Parameters
    ----------
    kernel : Kernel
        The host kernel (its ``field`` and ``loss`` run on the host at every step).
    backend : Backend
        The device backend whose arrays are stepped.
    """

    def __init__(self, kernel: Kernel, backend):
        self.host, self.backend = kernel, backend
        self.dim, self.groups, self.is_gradient, self.name = (
            kernel.dim,
            kernel.groups,
            kernel.is_gradient,
            kernel.name,
        )

    def context(self, step, rng, batch_size):
        return self.host.context(step, rng, batch_size)

    def field(self, positions, masses, context):
        to_host = self.backend.asnumpy
        return self.backend.asarray(self.host.field(to_host(positions), to_host(masses), context))

    def loss(self, positions, masses, context):
        to_host = self.backend.asnumpy
        return self.host.loss(to_host(positions), to_host(masses), context)
