"""User kernels in the (phi, rho, psi) form, compiled for the GPU from the same Python source
(the GPU twin of :class:`particledyn.DeepSetsKernel`, from ``DeepSetsKernel.to_device``).

The user's ``phi(x, ctx, out)`` and ``psi(x, summary, ctx, out)`` (the functions
given to :class:`particledyn.DeepSetsKernel`) become ``numba.cuda`` device
functions. The aggregate ``sum_j m_j phi(x_j)`` is summed in float64: block
``j`` covers a fixed range of particles, each thread a fixed stride of it, then
a shared-memory tree of fixed shape and :func:`sum_rows` over the blocks, so the
result is the same on every run (no float atomics). ``rho`` runs on the host on
the M-vector, as on the CPU.

phi and psi compile for the GPU when they only index arrays, loop and do scalar
math (``math`` functions); numpy calls that allocate (``np.dot``, ``np.empty``)
exist in numba's CPU mode only.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .backends import get_backend
from .backends.cuda_common import THREADS, block_tree_sum, numba_type, sum_rows
from .deepsets import DeepSetsKernel
from .kernel import Kernel

CHUNK = 4096
"""Particles per aggregate block: fixes the summation order."""


def _build(phi, psi, dtype, agg_dim):
    phi_dev = cuda.jit(device=True)(phi)
    psi_dev = cuda.jit(device=True)(psi)
    ftype = numba_type(dtype)
    f64 = numba_type(np.float64)

    @cuda.jit
    def aggregate(positions, masses, context, partial):
        n = positions.shape[0]
        block = cuda.blockIdx.x
        t = cuda.threadIdx.x
        buf = cuda.local.array(agg_dim, ftype)
        acc = cuda.local.array(agg_dim, f64)
        shared = cuda.shared.array(THREADS, f64)
        for q in range(agg_dim):
            acc[q] = 0.0
        for i in range(block * CHUNK + t, min(n, (block + 1) * CHUNK), THREADS):
            phi_dev(positions[i], context, buf)
            for q in range(agg_dim):
                acc[q] += masses[i] * buf[q]
        for q in range(agg_dim):
            shared[t] = acc[q]
            total = block_tree_sum(shared, t)
            if t == 0:
                partial[q, block] = total
            cuda.syncthreads()

    @cuda.jit
    def apply(positions, summary, context, out):
        i = cuda.grid(1)
        if i < positions.shape[0]:
            psi_dev(positions[i], summary, context, out[i])

    return aggregate, apply


class CudaDeepSetsKernel(Kernel):
    """A :class:`~particledyn.DeepSetsKernel` whose phi and psi run as ``numba.cuda`` device functions.

    Parameters
    ----------
    kernel : DeepSetsKernel
        The user kernel (phi, psi, rho, context, loss).
    backend : {'cupy', 'cudasim'} or Backend

    Notes
    -----
    Context arrays are copied to the device at every step (they are small);
    :meth:`loss` runs the user's loss on host copies.
    """

    def __init__(self, kernel: DeepSetsKernel, backend="cupy"):
        if not isinstance(kernel, DeepSetsKernel):
            raise TypeError(f"kernel={kernel!r}: expected a particledyn.DeepSetsKernel")
        self.host = kernel
        self.backend = get_backend(backend)
        if not self.backend.on_device:
            raise ValueError(
                f"backend={self.backend.name!r}: expected a device backend ('cupy' or 'cudasim')"
            )
        self.dim, self.agg_dim, self.name = kernel.dim, kernel.agg_dim, kernel.name
        self.is_gradient, self.groups = kernel.is_gradient, None
        self._compiled: dict = {}

    def _kernels(self, dtype):
        key = np.dtype(dtype)
        if key not in self._compiled:
            self._compiled[key] = _build(self.host.phi, self.host.psi, key.type, self.agg_dim)
        return self._compiled[key]

    def context(self, step, rng, batch_size):
        return self.host.context(step, rng, batch_size)

    def summary(self, positions, masses, context) -> np.ndarray:
        """rho(sum_j m_j phi(x_j)) as a host array of the positions' dtype."""
        xp, view = self.backend.xp, self.backend.launch_view
        aggregate, _ = self._kernels(positions.dtype)
        n_blocks = -(-positions.shape[0] // CHUNK)
        partial = xp.empty((self.agg_dim, n_blocks), dtype=np.float64)
        weights = xp.asarray(masses, dtype=np.float64)
        aggregate[n_blocks, THREADS](
            view(positions), view(weights), self.backend.context_to_device(context), view(partial)
        )
        total = self.backend.asnumpy(sum_rows(self.backend, partial))
        rho = self.host.rho
        out = total if rho is None else np.asarray(rho(total, context), dtype=np.float64)
        return out.astype(positions.dtype)

    def field(self, positions, masses, context):
        _, apply = self._kernels(positions.dtype)
        summary = self.backend.asarray(self.summary(positions, masses, context))
        out = self.backend.xp.empty_like(positions)
        view = self.backend.launch_view
        apply[-(-positions.shape[0] // THREADS), THREADS](
            view(positions), view(summary), self.backend.context_to_device(context), view(out)
        )
        return out

    def loss(self, positions, masses, context):
        to_host = self.backend.asnumpy
        return self.host.loss(to_host(positions), to_host(masses), context)
