"""Fused numba loops of the two-layer network's exact Hessian-vector product (float64).

H v = J^T (L'' J v) + sum_cb G_cb (d^2 F_cb) v, in two passes over the particles with the
layout of :mod:`.two_layer_numba` (structure-of-arrays chunks, activation inline, d and C as
argument types):

1. ``directional_outputs``: J v, the directional derivative of the outputs, (C, B):
   sum_i coef_i (sigma_ib va_i + sigma'_ib <vw_i, z_b> a_i), summed per chunk and then over
   chunks in order, so the result does not depend on the number of threads;
2. ``curvature``: per particle, with u = L'' J v and G the output gradient,
   h_a = sum_b sigma_ib u_b + sigma'_ib <vw_i, z_b> G_b and
   h_w = sum_b [sigma'_ib (a_i.u_b + va_i.G_b) + sigma''_ib <vw_i, z_b> (a_i.G_b)] z_b.

The plain-numpy reference is ``kernels.two_layer_reference.hessian_vector_reference``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .fastmath import LOOP_OPTIONS, activation, activation_curvature, activation_tag
from .llvm_ops import add_reassoc
from .two_layer_numba import BLOCK, CHUNK, _load_chunk, accumulate_pair, column, dot, sum_chunks


@numba.njit(**LOOP_OPTIONS)
def directional_outputs(act, inputs_dims, output_dims, positions, vector, coef, inputs_t):
    """J v, shape (C, B'): the change of the outputs along ``vector``, chunk-ordered sums."""
    n = positions.shape[0]
    d = len(inputs_dims)
    n_out = len(output_dims)
    batch = inputs_t.shape[1]
    n_chunks = (n + CHUNK - 1) // CHUNK
    partial = np.zeros((n_chunks, n_out, batch))
    for chunk in prange(n_chunks):
        w = np.empty((d, CHUNK))
        a = np.empty((n_out, CHUNK))
        vw = np.empty((d, CHUNK))
        va = np.empty((n_out, CHUNK))
        value = np.empty(CHUNK)
        slope = np.empty(CHUNK)
        start = chunk * CHUNK
        stop = min(n, start + CHUNK)
        _load_chunk(positions, start, stop, inputs_dims, w, a)
        _load_chunk(vector, start, stop, inputs_dims, vw, va)
        for c in range(n_out):
            for j in range(stop - start):
                a[c, j] *= coef[start + j]
                va[c, j] *= coef[start + j]
        for b in range(batch):
            z = column(inputs_t, b, inputs_dims)
            for j in range(stop - start):
                s, ds = activation(act, dot(w, j, z, inputs_dims))
                value[j] = s
                slope[j] = ds * dot(vw, j, z, inputs_dims)
            for c in range(n_out):
                total = 0.0
                for j in range(stop - start):
                    total = add_reassoc(total, va[c, j] * value[j] + a[c, j] * slope[j])
                partial[chunk, c, b] = total
    return sum_chunks(partial)


@numba.njit(**LOOP_OPTIONS)
def curvature(act, inputs_dims, output_dims, positions, vector, inputs_t, u, grad_out, out):
    """out[i] = (h_w, h_a) of the module docstring; u, grad_out (C, B'), B' even, zero on the padding."""
    n = positions.shape[0]
    d = len(inputs_dims)
    n_out = len(output_dims)
    batch = inputs_t.shape[1]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for chunk in prange(n_chunks):
        w = np.empty((d, BLOCK))
        a = np.empty((n_out, BLOCK))
        vw = np.empty((d, BLOCK))
        va = np.empty((n_out, BLOCK))
        acc_w = np.empty((d, BLOCK))
        acc_a = np.empty((n_out, BLOCK))
        for start in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK), BLOCK):
            stop = min(n, start + BLOCK)
            m = stop - start
            _load_chunk(positions, start, stop, inputs_dims, w, a)
            _load_chunk(vector, start, stop, inputs_dims, vw, va)
            acc_w[:, :m] = 0.0
            acc_a[:, :m] = 0.0
            for b in range(0, batch, 2):  # two batch entries per pass, as in the field
                z0 = column(inputs_t, b, inputs_dims)
                z1 = column(inputs_t, b + 1, inputs_dims)
                u0 = column(u, b, output_dims)
                u1 = column(u, b + 1, output_dims)
                g0 = column(grad_out, b, output_dims)
                g1 = column(grad_out, b + 1, output_dims)
                for j in range(m):
                    s0, ds0 = activation(act, dot(w, j, z0, inputs_dims))
                    s1, ds1 = activation(act, dot(w, j, z1, inputs_dims))
                    tv0 = dot(vw, j, z0, inputs_dims)
                    tv1 = dot(vw, j, z1, inputs_dims)
                    mixed0 = ds0 * (
                        dot(a, j, u0, output_dims) + dot(va, j, g0, output_dims)
                    ) + activation_curvature(act, s0, ds0) * tv0 * dot(a, j, g0, output_dims)
                    mixed1 = ds1 * (
                        dot(a, j, u1, output_dims) + dot(va, j, g1, output_dims)
                    ) + activation_curvature(act, s1, ds1) * tv1 * dot(a, j, g1, output_dims)
                    accumulate_pair(acc_a, j, u0, u1, s0, s1, output_dims)
                    accumulate_pair(acc_a, j, g0, g1, ds0 * tv0, ds1 * tv1, output_dims)
                    accumulate_pair(acc_w, j, z0, z1, mixed0, mixed1, inputs_dims)
            for j in range(m):
                for k in range(d):
                    out[start + j, k] = acc_w[k, j]
                for c in range(n_out):
                    out[start + j, d + c] = acc_a[c, j]


def compiled_hvp(activation_name: str):
    """(directional_outputs, curvature) for an activation, as functions of the arrays only."""
    act = activation_tag(activation_name, np.float64)

    def directional_pass(positions, vector, coef, inputs_t):
        d = inputs_t.shape[0]
        dims, outs = (0,) * d, (0,) * (positions.shape[1] - d)
        return directional_outputs(act, dims, outs, positions, vector, coef, inputs_t)

    def curvature_pass(positions, vector, inputs_t, u, grad_out, out):
        d = inputs_t.shape[0]
        dims, outs = (0,) * d, (0,) * (positions.shape[1] - d)
        curvature(act, dims, outs, positions, vector, inputs_t, u, grad_out, out)

    return directional_pass, curvature_pass
