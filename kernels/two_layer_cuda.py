"""GPU kernels of the two-layer network, ``F(z) = sum_i coef_i a_i sigma(<w_i, z>)``.

The GPU twin of :class:`~particledyn.kernels.TwoLayerNet` (``TwoLayerNet.to_device``): the
same two passes as the CPU loops of ``particledyn.kernels.two_layer_numba``,
never forming an N x B matrix:

1. forward: block ``(j, tile)`` covers the fixed particle range
   ``[j CHUNK, (j+1) CHUNK)`` and one tile of ``THREADS`` batch entries; thread
   ``b`` adds ``coef_i a_ic sigma(<w_i, z_b>)`` over the range in particle order,
   in float64, reading particle rows from shared memory. The per-block partial
   sums go to an (C B, n_chunks) array that
   :func:`~particledyn.backends.cuda_common.sum_rows` adds in a fixed order (no
   float atomics: the same inputs give the same bits on every run);
2. field: one thread per particle; the batch (inputs and G = dL/dF) is staged
   through shared memory in tiles and every thread reduces over it in order.

G (B x C) is computed on the host from F by the reference formulas
(``loss_and_output_gradient``): a copy of C B numbers per step.
Kernels are compiled per (activation, dtype, d, C): the per-thread arrays
need compile-time sizes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from particledyn.backends import get_backend
from particledyn.backends.cuda_common import THREADS, numba_type, sum_rows
from particledyn.kernel import Kernel

from .two_layer import TwoLayerNet
from .two_layer_reference import loss_and_output_gradient

CHUNK = 2048
"""Particles per forward block: fixes the summation order of the network output."""
SHARED_BYTES = 16384
"""Shared memory per staged tile (particle rows in forward, batch columns in field)."""


def activation_device(name: str, dtype):
    """A ``numba.cuda`` device function t -> (sigma(t), sigma'(t)) in ``dtype``.

    Same formulas as :mod:`particledyn.kernels.fastmath` (exp of -|t|, so nothing overflows),
    with CUDA's libdevice ``exp``/``tanh``; constants carry the dtype so float32 code
    stays float32.
    """
    one, zero, two, four = (dtype(v) for v in (1, 0, 2, 4))
    if name == "sigmoid":

        @cuda.jit(device=True)
        def sigmoid(t):
            e = math.exp(-abs(t))
            inv = one / (one + e)
            value = inv if t >= zero else e * inv
            return value, e * inv * inv

        return sigmoid
    if name == "tanh":

        @cuda.jit(device=True)
        def tanh(t):
            e = math.exp(-two * abs(t))
            inv = one / (one + e)
            return math.tanh(t), four * e * inv * inv

        return tanh
    if name == "relu":

        @cuda.jit(device=True)
        def relu(t):
            if t > zero:
                return t, one
            return zero, zero

        return relu
    raise ValueError(f"activation={name!r}: expected one of 'sigmoid', 'tanh', 'relu'")


def _build(activation: str, dtype, d: int, n_out: int):
    dtype = np.dtype(dtype).type
    act = activation_device(activation, dtype)
    ftype = numba_type(dtype)
    f64 = numba_type(np.float64)
    dim = d + n_out
    itemsize = np.dtype(dtype).itemsize
    tile = max(1, min(THREADS, SHARED_BYTES // (dim * itemsize)))
    batch_tile = max(1, min(THREADS, SHARED_BYTES // (dim * itemsize)))

    @cuda.jit
    def forward(positions, coef, inputs_t, partial):
        n = positions.shape[0]
        batch = inputs_t.shape[1]
        chunk = cuda.blockIdx.x
        t = cuda.threadIdx.x
        b = cuda.blockIdx.y * THREADS + t
        rows = cuda.shared.array((tile, dim), ftype)
        coefs = cuda.shared.array(tile, ftype)
        z = cuda.local.array(d, ftype)
        acc = cuda.local.array(n_out, f64)
        active = b < batch
        if active:
            for k in range(d):
                z[k] = inputs_t[k, b]
        for c in range(n_out):
            acc[c] = 0.0
        start = chunk * CHUNK
        stop = min(n, start + CHUNK)
        for base in range(start, stop, tile):
            count = min(tile, stop - base)
            cuda.syncthreads()
            for e in range(t, count * dim, THREADS):
                rows[e // dim, e % dim] = positions[base + e // dim, e % dim]
            for r in range(t, count, THREADS):
                coefs[r] = coef[base + r]
            cuda.syncthreads()
            if active:
                for r in range(count):
                    pre = rows[r, 0] * z[0]
                    for k in range(1, d):
                        pre += rows[r, k] * z[k]
                    value, _ = act(pre)
                    wide = f64(value)
                    for c in range(n_out):
                        acc[c] += f64(coefs[r] * rows[r, d + c]) * wide
        if active:
            for c in range(n_out):
                partial[c * batch + b, chunk] = acc[c]

    @cuda.jit
    def field(positions, inputs_t, grad_t, out):
        n = positions.shape[0]
        batch = inputs_t.shape[1]
        i = cuda.grid(1)
        t = cuda.threadIdx.x
        zs = cuda.shared.array((d, batch_tile), ftype)
        gs = cuda.shared.array((n_out, batch_tile), ftype)
        w = cuda.local.array(d, ftype)
        a = cuda.local.array(n_out, ftype)
        acc_w = cuda.local.array(d, ftype)
        acc_a = cuda.local.array(n_out, ftype)
        active = i < n
        if active:
            for k in range(d):
                w[k] = positions[i, k]
                acc_w[k] = 0
            for c in range(n_out):
                a[c] = positions[i, d + c]
                acc_a[c] = 0
        for base in range(0, batch, batch_tile):
            count = min(batch_tile, batch - base)
            cuda.syncthreads()
            for e in range(t, d * count, THREADS):
                zs[e // count, e % count] = inputs_t[e // count, base + e % count]
            for e in range(t, n_out * count, THREADS):
                gs[e // count, e % count] = grad_t[e // count, base + e % count]
            cuda.syncthreads()
            if active:
                for bb in range(count):
                    pre = w[0] * zs[0, bb]
                    for k in range(1, d):
                        pre += w[k] * zs[k, bb]
                    value, deriv = act(pre)
                    weighted = gs[0, bb] * a[0]
                    for c in range(1, n_out):
                        weighted += gs[c, bb] * a[c]
                    weighted *= deriv
                    for c in range(n_out):
                        acc_a[c] += gs[c, bb] * value
                    for k in range(d):
                        acc_w[k] += zs[k, bb] * weighted
        if active:
            for k in range(d):
                out[i, k] = -acc_w[k]
            for c in range(n_out):
                out[i, d + c] = -acc_a[c]

    return forward, field


_COMPILED: dict = {}


def compiled_kernels(activation: str, dtype, d: int, n_out: int):
    """(forward, field) ``numba.cuda`` kernels for one activation, dtype and shape (built once)."""
    key = (activation, np.dtype(dtype), int(d), int(n_out))
    if key not in _COMPILED:
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype={np.dtype(dtype)}: expected float32 or float64")
        _COMPILED[key] = _build(*key)
    return _COMPILED[key]


class CudaTwoLayerNet(Kernel):
    """A :class:`~particledyn.kernels.TwoLayerNet` whose field runs on the GPU.

    Positions, masses and the returned field are device arrays of ``backend``
    (cupy arrays; numpy arrays for 'cudasim'). Contexts are the host kernel's
    (the batch is copied to the device, cached while the same batch object comes
    back, as the full batch does). :meth:`hvp` runs on host copies (a diagnostic).

    Parameters
    ----------
    net : TwoLayerNet
        The kernel to run (data, activation, loss, scaling).
    backend : {'cupy', 'cudasim'} or Backend
    """

    def __init__(self, net: TwoLayerNet, backend="cupy"):
        if not isinstance(net, TwoLayerNet):
            raise TypeError(f"net={net!r}: expected a particledyn.kernels.TwoLayerNet")
        self.net = net
        self.backend = get_backend(backend)
        if not self.backend.on_device:
            raise ValueError(
                f"backend={self.backend.name!r}: expected a device backend ('cupy' or 'cudasim')"
            )
        self.dim, self.groups, self.is_gradient = net.dim, None, True
        self.name = net.name
        self._batch_cache = (None, None, None)
        self._coef_cache = (None, None, None)

    def context(self, step, rng, batch_size):
        return self.net.context(step, rng, batch_size)

    def evaluation_context(self):
        return self.net.evaluation_context()

    def describe(self):
        return {**self.net.describe(), "backend": self.backend.name}

    # -- device helpers ---------------------------------------------------------
    def _inputs_t(self, inputs, dtype):
        cached_inputs, cached_dtype, device = self._batch_cache
        if cached_inputs is not inputs or cached_dtype != dtype:
            device = self.backend.asarray(np.ascontiguousarray(np.asarray(inputs).T), dtype=dtype)
            self._batch_cache = (inputs, dtype, device)
        return device

    def _coefficients(self, masses, dtype):
        cached_masses, cached_dtype, device = self._coef_cache
        if cached_masses is not masses or cached_dtype != dtype:
            if self.net.scaling == "mean_field":
                device = self.backend.xp.asarray(masses).astype(dtype)
            else:
                device = self.backend.xp.ones(masses.shape[0], dtype=dtype)
            self._coef_cache = (masses, dtype, device)
        return device

    def outputs_device(self, positions, masses, inputs):
        """Network outputs F as a (C, B) float64 device array."""
        xp, view = self.backend.xp, self.backend.launch_view
        n = positions.shape[0]
        inputs_t = self._inputs_t(inputs, positions.dtype)
        batch = inputs_t.shape[1]
        n_out = self.net.n_outputs
        forward, _ = compiled_kernels(self.net.activation, positions.dtype, self.net.d_in, n_out)
        n_chunks = -(-n // CHUNK)
        partial = xp.empty((n_out * batch, n_chunks), dtype=np.float64)
        grid = (n_chunks, -(-batch // THREADS))
        forward[grid, THREADS](
            view(positions), view(self._coefficients(masses, positions.dtype)), view(inputs_t), view(partial)
        )
        return sum_rows(self.backend, partial).reshape(n_out, batch)

    def outputs(self, positions, masses, inputs):
        """Network outputs F, shape (B, C), on the host (float64)."""
        return self.backend.asnumpy(self.outputs_device(positions, masses, inputs)).T

    # -- the kernel protocol ----------------------------------------------------
    def field(self, positions, masses, context):
        inputs, targets = context
        outputs = self.outputs(positions, masses, inputs)
        _, grad_out = loss_and_output_gradient(outputs, targets, self.net.loss_name)
        grad_t = self.backend.asarray(np.ascontiguousarray(grad_out.T), dtype=positions.dtype)
        inputs_t = self._inputs_t(inputs, positions.dtype)
        _, field = compiled_kernels(self.net.activation, positions.dtype, self.net.d_in, self.net.n_outputs)
        out = self.backend.xp.empty_like(positions)
        view = self.backend.launch_view
        field[-(-positions.shape[0] // THREADS), THREADS](
            view(positions), view(inputs_t), view(grad_t), view(out)
        )
        return out

    def loss(self, positions, masses, context):
        inputs, targets = context
        return loss_and_output_gradient(self.outputs(positions, masses, inputs), targets, self.net.loss_name)[
            0
        ]

    def hvp(self, positions, masses, context, vector):
        """Exact Hessian-vector product on host copies (float64, a host array)."""
        to_host = self.backend.asnumpy
        return self.net.hvp(to_host(positions), to_host(masses), context, to_host(vector))

    def check_positions(self, positions):
        self.net.check_positions(positions)
