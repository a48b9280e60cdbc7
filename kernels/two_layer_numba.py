"""Fused numba loops of the two-layer network kernel.

Two passes over the particles, never forming an N x B matrix:

1. forward: F[c, b] = sum_i coef_i a_ic sigma(<w_i, z_b>), summed per fixed-size chunk of
   particles and then over chunks in order (float64), so the result does not depend on the number
   of threads;
2. field: per particle, sum G[c, b] sigma_ib and (sum_c a_ic G[c, b]) sigma'_ib z_b over the batch.

Both inner loops run over particles, which sit in a structure-of-arrays copy of the chunk, and
evaluate the activation inline (:func:`particledyn.kernels.fastmath.activation`), so LLVM turns each into
one vector loop with every intermediate in registers. The forward's sum over particles is a
running sum marked reassociable (:func:`particledyn.kernels.llvm_ops.add_reassoc`) so that it splits
into vector lanes; the field accumulates per particle in memory that stays in L1. The input
dimension d, the number of outputs C and the activation reach the loops as argument *types*
(``(0,) * d``, ``(0,) * C`` and :data:`particledyn.kernels.fastmath.ACTIVATION_TAGS`): each combination
compiles once (cached on disk), with its sums over d and C unrolled. Neurons with more than
``WIDE_DIMS`` coordinates go to :mod:`.two_layer_wide_numba` instead.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..serial_twins import parallel_loop
from . import two_layer_wide_numba as wide
from .fastmath import LOOP_OPTIONS, activation, activation_tag
from .llvm_ops import add_reassoc
from .two_layer_wide_numba import pad_batch  # noqa: F401  (the batch layout of both loop sets)

CHUNK = 2048
"""Particles per chunk: fixes the summation order of the forward pass (deterministic results)."""
BLOCK = 256
"""Particles whose accumulators the field updates together (their arrays stay in L1)."""
WIDE_DIMS = 16
"""Above this many inputs + outputs per neuron, :mod:`.two_layer_wide_numba` runs instead
(measured here: this layout is 1.4x faster at d + C = 26, as fast at 42, 8x slower at 74)."""


# -- sums over d and C, unrolled at compile time from the length of a tuple type ------------------


def _generated(name, arguments, body):
    scope = {}
    exec(f"def {name}({arguments}):\n    {body}\n", scope)
    return scope[name]


def column(z, b, dims):
    """The tuple (z[0, b], ..., z[len(dims) - 1, b]), from numba code (loaded once, kept in registers)."""
    raise NotImplementedError("callable from numba-compiled code only")


def dot(w, j, col, dims):
    """sum_k w[k, j] col[k] over k < len(dims), from numba code."""
    raise NotImplementedError("callable from numba-compiled code only")


def accumulate_pair(acc, j, col0, col1, x0, x1, dims):
    """acc[k, j] += col0[k] x0 + col1[k] x1 for k < len(dims), from numba code."""
    raise NotImplementedError("callable from numba-compiled code only")


@numba.extending.overload(column, inline="always")
def _column(z, b, dims):
    entries = "".join(f"z[{k}, b], " for k in range(len(dims)))
    return _generated("column", "z, b, dims", f"return ({entries})")


@numba.extending.overload(dot, inline="always")
def _dot(w, j, col, dims):
    terms = " + ".join(f"w[{k}, j] * col[{k}]" for k in range(len(dims)))
    return _generated("dot", "w, j, col, dims", f"return {terms}")


@numba.extending.overload(accumulate_pair, inline="always")
def _accumulate_pair(acc, j, col0, col1, x0, x1, dims):
    lines = "\n    ".join(f"acc[{k}, j] += col0[{k}] * x0 + col1[{k}] * x1" for k in range(len(dims)))
    return _generated("accumulate_pair", "acc, j, col0, col1, x0, x1, dims", lines)


# -- the two passes ---------------------------------------------------------------------------------


@numba.njit(inline="always")
def _load_chunk(positions, start, stop, inputs_dims, w, a):
    """w[k, j] = positions[start + j, k] and a[c, j] = positions[start + j, d + c]."""
    d = len(inputs_dims)
    for j in range(stop - start):
        for k in range(d):
            w[k, j] = positions[start + j, k]
        for c in range(a.shape[0]):
            a[c, j] = positions[start + j, d + c]


@numba.njit(inline="always")
def sum_chunks_into(partial, out):
    """out[c, b] = sum over the first axis of per-chunk sums (n_chunks, C, B), in chunk order
    (0 + p_0 + p_1 + ..., float64).

    Plain loops and ``np.empty`` only, here and in the callers' setup: in a ``parallel=True``
    function numba turns ``np.zeros`` and whole-array assignments into parallel regions of their
    own, each a launch and a barrier (measured: 33 regions per ensemble forward of 16 replicas,
    ~180 us CPU per call at 2 threads, against one region now).
    """
    for c in range(partial.shape[1]):
        for b in range(partial.shape[2]):
            total = 0.0
            for chunk in range(partial.shape[0]):
                total += partial[chunk, c, b]
            out[c, b] = total


@numba.njit(inline="always")
def sum_chunks(partial):
    """sum over the first axis of per-chunk sums (n_chunks, C, B), in chunk order (float64)."""
    out = np.empty(partial.shape[1:], dtype=np.float64)
    sum_chunks_into(partial, out)
    return out


@parallel_loop(**LOOP_OPTIONS)
def forward(act, inputs_dims, output_dims, positions, coef, inputs_t):
    """F.T, shape (C, B): sum_i coef_i a_i sigma(<w_i, z_b>), float64, chunk-ordered sum."""
    n = positions.shape[0]
    n_out = len(output_dims)
    batch = inputs_t.shape[1]
    n_chunks = (n + CHUNK - 1) // CHUNK
    zero = positions.dtype.type(0)
    partial = np.empty((n_chunks, n_out, batch), dtype=np.float64)  # every entry written below
    for chunk in prange(n_chunks):
        w = np.empty((len(inputs_dims), CHUNK), dtype=positions.dtype)
        weight = np.empty((n_out, CHUNK), dtype=positions.dtype)
        value = np.empty(CHUNK, dtype=positions.dtype)
        start = chunk * CHUNK
        stop = min(n, start + CHUNK)
        _load_chunk(positions, start, stop, inputs_dims, w, weight)
        for c in range(n_out):
            for j in range(stop - start):
                weight[c, j] *= coef[start + j]
        for b in range(batch):
            z = column(inputs_t, b, inputs_dims)
            if len(output_dims) == 1:
                total = zero
                for j in range(stop - start):
                    v, _ = activation(act, dot(w, j, z, inputs_dims))
                    total = add_reassoc(total, weight[0, j] * v)
                partial[chunk, 0, b] = total
            else:
                for j in range(stop - start):
                    value[j], _ = activation(act, dot(w, j, z, inputs_dims))
                for c in range(n_out):
                    total = zero
                    for j in range(stop - start):
                        total = add_reassoc(total, weight[c, j] * value[j])
                    partial[chunk, c, b] = total
    return sum_chunks(partial)


@parallel_loop(**LOOP_OPTIONS)
def field(act, inputs_dims, output_dims, positions, inputs_t, grad_out, out):
    """out[i] = -(sum_b (G_b . a_i) sigma'_ib z_b, sum_b G_b sigma_ib), G = grad_out (C, B), B even."""
    n = positions.shape[0]
    d = len(inputs_dims)
    n_out = len(output_dims)
    batch = inputs_t.shape[1]
    n_chunks = (n + CHUNK - 1) // CHUNK
    grad_inputs = np.empty_like(inputs_t)  # G_b z_b: with one output, a_i factors out of the sum
    for k in range(d):
        for b in range(batch):
            grad_inputs[k, b] = grad_out[0, b] * inputs_t[k, b]
    for chunk in prange(n_chunks):
        w = np.empty((d, BLOCK), dtype=positions.dtype)
        a = np.empty((n_out, BLOCK), dtype=positions.dtype)
        acc_w = np.empty((d, BLOCK), dtype=positions.dtype)
        acc_a = np.empty((n_out, BLOCK), dtype=positions.dtype)
        for start in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK), BLOCK):
            stop = min(n, start + BLOCK)
            m = stop - start
            _load_chunk(positions, start, stop, inputs_dims, w, a)
            for j in range(m):
                for k in range(d):
                    acc_w[k, j] = 0
                for c in range(n_out):
                    acc_a[c, j] = 0
            for b in range(0, batch, 2):  # two batch entries per pass: half the accumulator traffic
                z0 = column(inputs_t, b, inputs_dims)
                z1 = column(inputs_t, b + 1, inputs_dims)
                g0 = column(grad_out, b, output_dims)
                g1 = column(grad_out, b + 1, output_dims)
                if len(output_dims) == 1:
                    gz0 = column(grad_inputs, b, inputs_dims)
                    gz1 = column(grad_inputs, b + 1, inputs_dims)
                    for j in range(m):
                        v0, dv0 = activation(act, dot(w, j, z0, inputs_dims))
                        v1, dv1 = activation(act, dot(w, j, z1, inputs_dims))
                        acc_a[0, j] += g0[0] * v0 + g1[0] * v1
                        accumulate_pair(acc_w, j, gz0, gz1, dv0, dv1, inputs_dims)
                else:
                    for j in range(m):
                        v0, dv0 = activation(act, dot(w, j, z0, inputs_dims))
                        v1, dv1 = activation(act, dot(w, j, z1, inputs_dims))
                        accumulate_pair(acc_a, j, g0, g1, v0, v1, output_dims)
                        mixed0 = dot(a, j, g0, output_dims) * dv0  # sum_c a_jc G_cb sigma'
                        mixed1 = dot(a, j, g1, output_dims) * dv1
                        accumulate_pair(acc_w, j, z0, z1, mixed0, mixed1, inputs_dims)
            for j in range(m):
                scale = a[0, j] if len(output_dims) == 1 else positions.dtype.type(1)
                for k in range(d):
                    out[start + j, k] = -(scale * acc_w[k, j])
                for c in range(n_out):
                    out[start + j, d + c] = -acc_a[c, j]


def compiled_loops(activation_name: str, dtype) -> tuple:
    """(forward, field) for an activation name and dtype, as functions of the arrays only.

    The batch layout is :func:`pad_batch` (inputs (d, B') and output gradients (C, B'), B' a
    multiple of ``LANES`` with zero gradients on the padding).
    """
    act = activation_tag(activation_name, dtype)
    wide_forward, wide_field = wide.compiled_loops(activation_name, dtype)

    def forward_pass(positions, coef, inputs_t):
        d = inputs_t.shape[0]
        if positions.shape[1] > WIDE_DIMS:
            return wide_forward(positions, coef, inputs_t)
        return forward(act, (0,) * d, (0,) * (positions.shape[1] - d), positions, coef, inputs_t)

    def field_pass(positions, inputs_t, grad_out, out):
        d = inputs_t.shape[0]
        if positions.shape[1] > WIDE_DIMS:
            return wide_field(positions, inputs_t, grad_out, out)
        field(act, (0,) * d, (0,) * (positions.shape[1] - d), positions, inputs_t, grad_out, out)

    return forward_pass, field_pass
