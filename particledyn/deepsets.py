"""User kernels in the equivariant-by-construction form, compiled with numba.

    U_i = psi(x_i, rho(sum_j m_j phi(x_j, ctx), ctx), ctx)

Every permutation-equivariant map can be written this way (DeepSets); a kernel
written as (phi, rho, psi) cannot break equivariance. ``phi`` and ``psi`` are
plain Python functions on one particle that write into an output vector; they
are compiled with ``numba.njit`` and called inside parallel loops over the
particles. ``rho`` runs once per step on the M-vector aggregate, in Python.
The aggregate is summed in float64 over fixed chunks of particles, in order,
so results do not depend on the number of threads.
"""
from __future__ import annotations

from typing import Any, Callable

import numba
import numpy as np
from numba import prange

from .kernel import Kernel

CHUNK = 4096


def _compile(phi, psi):
    phi_jit = numba.njit(phi)
    psi_jit = numba.njit(psi)

    @numba.njit(parallel=True, error_model="numpy")
    def aggregate(positions, masses, context, agg_dim):
        n = positions.shape[0]
        n_chunks = (n + CHUNK - 1) // CHUNK
        partial = np.zeros((n_chunks, agg_dim), dtype=np.float64)
        for chunk in prange(n_chunks):
            buf = np.empty(agg_dim, dtype=positions.dtype)
            for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
                phi_jit(positions[i], context, buf)
                for q in range(agg_dim):
                    partial[chunk, q] += masses[i] * buf[q]
        total = np.zeros(agg_dim, dtype=np.float64)
        for chunk in range(n_chunks):
            total += partial[chunk]
        return total

    @numba.njit(parallel=True, error_model="numpy")
    def apply(positions, summary, context, out):
        n = positions.shape[0]
        for i in prange(n):
            psi_jit(positions[i], summary, context, out[i])

    return aggregate, apply


class DeepSetsKernel(Kernel):
    """A user kernel U_i = psi(x_i, rho(sum_j m_j phi(x_j, ctx), ctx), ctx), numba-compiled.

    Parameters
    ----------
    phi : function (x, ctx, out) -> None
        Writes the M-vector phi(x) of one particle ``x`` (a length-D array) into ``out``.
    psi : function (x, summary, ctx, out) -> None
        Writes the update U of one particle into ``out`` (length D), given the
        summary vector returned by ``rho``.
    dim : int
        Particle dimension D.
    agg_dim : int
        Length M of phi's output.
    rho : function (aggregate, ctx) -> ndarray, optional
        Runs once per step in Python on the float64 aggregate; identity by default.
    context : function (step, rng, batch_size) -> tuple of arrays, or a tuple, optional
        The per-step context handed to phi, rho and psi (a tuple of numpy arrays,
        possibly empty). ``rng`` depends only on (seed, step).
    loss : function (positions, masses, ctx) -> float, optional
        Declares a gradient kernel: ``psi`` must then give -dL/dx_i (per unit mass).
    name : str

    Notes
    -----
    phi and psi are compiled at the first call for the dtypes seen (a few seconds).
    They must use only what numba supports; cast constants to the particle dtype
    in float32 code to keep it float32.
    """

    def __init__(self, phi: Callable, psi: Callable, dim: int, agg_dim: int, rho: Callable | None = None,
                 context: Any = (), loss: Callable | None = None, name: str = "deepsets"):
        for label, value in (("dim", dim), ("agg_dim", agg_dim)):
            if int(value) != value or value < 1:
                raise ValueError(f"{label}={value!r}: expected a positive integer")
        for label, fn in (("phi", phi), ("psi", psi)):
            if not callable(fn):
                raise TypeError(f"{label}={fn!r}: expected a function")
        self.phi, self.psi, self.rho = phi, psi, rho
        self.dim, self.agg_dim = int(dim), int(agg_dim)
        self._context = context
        self._loss = loss
        self.is_gradient = loss is not None
        self.name = name
        self._aggregate, self._apply = _compile(phi, psi)

    def context(self, step, rng, batch_size):
        ctx = self._context(step, rng, batch_size) if callable(self._context) else self._context
        return tuple(ctx) if isinstance(ctx, (tuple, list)) else (ctx,)

    def summary(self, positions, masses, context) -> np.ndarray:
        """rho(sum_j m_j phi(x_j)), the vector every particle's psi sees."""
        total = self._aggregate(positions, np.asarray(masses, dtype=np.float64), context, self.agg_dim)
        out = total if self.rho is None else np.asarray(self.rho(total, context), dtype=np.float64)
        return out.astype(positions.dtype)

    def field(self, positions, masses, context):
        out = np.empty_like(positions)
        self._apply(positions, self.summary(positions, masses, context), context, out)
        return out

    def loss(self, positions, masses, context):
        if self._loss is None:
            raise NotImplementedError(f"{self.name} was built without a loss")
        return float(self._loss(positions, masses, context))


def deepsets_reference(kernel: DeepSetsKernel, positions, masses, context) -> np.ndarray:
    """The same field by plain Python loops over the uncompiled phi and psi (for tests)."""
    n, _ = positions.shape
    total = np.zeros(kernel.agg_dim)
    buf = np.empty(kernel.agg_dim, dtype=positions.dtype)
    for i in range(n):
        kernel.phi(positions[i], context, buf)
        total += masses[i] * buf
    summary = total if kernel.rho is None else np.asarray(kernel.rho(total, context), dtype=np.float64)
    summary = summary.astype(positions.dtype)
    out = np.empty_like(positions)
    for i in range(n):
        kernel.psi(positions[i], summary, context, out[i])
    return out
