"""Fused numba loops of the two-layer network kernel over an ensemble of R replicas.

The same two passes as :mod:`.two_layer_numba`, over positions of shape (R, N, D): one
parallel loop over (replica, chunk) tasks, so R small runs fill the cores that one of them
cannot (at N <= ``CHUNK`` a single run is one task). Each task runs the single-run loop body
unchanged (same helpers, same array types, same chunks): replica r's outputs are its
per-chunk float64 sums added in chunk order, and its field is accumulated per particle in
the same batch order, so every replica is bit-identical to the single-run loops at any
thread count. Only the replicas listed in ``replicas`` are computed (a diverged one is
frozen). Neurons of more than ``WIDE_DIMS`` coordinates are not covered here.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..serial_twins import parallel_loop
from .fastmath import LOOP_OPTIONS, activation, activation_tag
from .llvm_ops import add_reassoc
from .two_layer_numba import (
    BLOCK,
    CHUNK,
    WIDE_DIMS,
    _load_chunk,
    accumulate_pair,
    column,
    dot,
    sum_chunks_into,
)

__all__ = ["forward", "field", "compiled_loops", "WIDE_DIMS"]


@parallel_loop(**LOOP_OPTIONS)
def forward(act, inputs_dims, output_dims, positions, coef, inputs_t, replicas):
    """F.T per listed replica, shape (len(replicas), C, B): positions (R, N, D), coef (R, N),
    inputs_t (R, d, B); row q is replica ``replicas[q]``, summed as the single-run forward."""
    n = positions.shape[1]
    n_out = len(output_dims)
    batch = inputs_t.shape[2]
    n_chunks = (n + CHUNK - 1) // CHUNK
    zero = positions.dtype.type(0)
    partial = np.empty((len(replicas), n_chunks, n_out, batch), dtype=np.float64)  # all written
    for task in prange(len(replicas) * n_chunks):
        q = task // n_chunks
        chunk = task - q * n_chunks
        x = positions[replicas[q]]
        z_all = inputs_t[replicas[q]]
        c_all = coef[replicas[q]]
        w = np.empty((len(inputs_dims), CHUNK), dtype=positions.dtype)
        weight = np.empty((n_out, CHUNK), dtype=positions.dtype)
        value = np.empty(CHUNK, dtype=positions.dtype)
        start = chunk * CHUNK
        stop = min(n, start + CHUNK)
        _load_chunk(x, start, stop, inputs_dims, w, weight)
        for c in range(n_out):
            for j in range(stop - start):
                weight[c, j] *= c_all[start + j]
        for b in range(batch):
            z = column(z_all, b, inputs_dims)
            if len(output_dims) == 1:
                total = zero
                for j in range(stop - start):
                    v, _ = activation(act, dot(w, j, z, inputs_dims))
                    total = add_reassoc(total, weight[0, j] * v)
                partial[q, chunk, 0, b] = total
            else:
                for j in range(stop - start):
                    value[j], _ = activation(act, dot(w, j, z, inputs_dims))
                for c in range(n_out):
                    total = zero
                    for j in range(stop - start):
                        total = add_reassoc(total, weight[c, j] * value[j])
                    partial[q, chunk, c, b] = total
    out = np.empty((len(replicas), n_out, batch), dtype=np.float64)
    for q in range(len(replicas)):
        sum_chunks_into(partial[q], out[q])
    return out


@parallel_loop(**LOOP_OPTIONS)
def field(act, inputs_dims, output_dims, positions, inputs_t, grad_out, replicas, out):
    """out[r] = the single-run field of replica r for each r in ``replicas``: positions and out
    (R, N, D), inputs_t (R, d, B), grad_out (R, C, B) (B even, zero gradients on the padding)."""
    n = positions.shape[1]
    d = len(inputs_dims)
    n_out = len(output_dims)
    batch = inputs_t.shape[2]
    n_chunks = (n + CHUNK - 1) // CHUNK
    grad_inputs = np.empty_like(inputs_t)  # G_b z_b: with one output, a_i factors out of the sum
    for q in range(len(replicas)):
        r = replicas[q]
        for k in range(d):
            for b in range(batch):
                grad_inputs[r, k, b] = grad_out[r, 0, b] * inputs_t[r, k, b]
    for task in prange(len(replicas) * n_chunks):
        q = task // n_chunks
        chunk = task - q * n_chunks
        r = replicas[q]
        x, z_all, g_all, gz_all, u = positions[r], inputs_t[r], grad_out[r], grad_inputs[r], out[r]
        w = np.empty((d, BLOCK), dtype=positions.dtype)
        a = np.empty((n_out, BLOCK), dtype=positions.dtype)
        acc_w = np.empty((d, BLOCK), dtype=positions.dtype)
        acc_a = np.empty((n_out, BLOCK), dtype=positions.dtype)
        for start in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK), BLOCK):
            stop = min(n, start + BLOCK)
            m = stop - start
            _load_chunk(x, start, stop, inputs_dims, w, a)
            for j in range(m):
                for k in range(d):
                    acc_w[k, j] = 0
                for c in range(n_out):
                    acc_a[c, j] = 0
            for b in range(0, batch, 2):
                z0 = column(z_all, b, inputs_dims)
                z1 = column(z_all, b + 1, inputs_dims)
                g0 = column(g_all, b, output_dims)
                g1 = column(g_all, b + 1, output_dims)
                if len(output_dims) == 1:
                    gz0 = column(gz_all, b, inputs_dims)
                    gz1 = column(gz_all, b + 1, inputs_dims)
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
                        mixed0 = dot(a, j, g0, output_dims) * dv0
                        mixed1 = dot(a, j, g1, output_dims) * dv1
                        accumulate_pair(acc_w, j, z0, z1, mixed0, mixed1, inputs_dims)
            for j in range(m):
                scale = a[0, j] if len(output_dims) == 1 else positions.dtype.type(1)
                for k in range(d):
                    u[start + j, k] = -(scale * acc_w[k, j])
                for c in range(n_out):
                    u[start + j, d + c] = -acc_a[c, j]


def compiled_loops(activation_name: str, dtype, d: int, n_outputs: int) -> tuple:
    """(forward, field) for an activation, dtype, input dimension d and C outputs, as functions
    of the arrays and the int64 array of replicas to compute.

    Raises
    ------
    ValueError
        d + C above ``WIDE_DIMS`` (the single run uses the wide loops there, not covered).
    """
    if d + n_outputs > WIDE_DIMS:
        raise ValueError(
            f"neurons of d + C = {d + n_outputs} coordinates: the fused ensemble loops "
            f"cover at most {WIDE_DIMS}"
        )
    act = activation_tag(activation_name, dtype)
    inputs_dims, output_dims = (0,) * d, (0,) * n_outputs

    def forward_pass(positions, coef, inputs_t, replicas):
        return forward(act, inputs_dims, output_dims, positions, coef, inputs_t, replicas)

    def field_pass(positions, inputs_t, grad_out, replicas, out):
        field(act, inputs_dims, output_dims, positions, inputs_t, grad_out, replicas, out)

    return forward_pass, field_pass
