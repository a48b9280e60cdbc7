"""Fused numba loops of the two-layer network kernel for wide neurons (many inputs or outputs).

:mod:`.two_layer_numba` runs over particles with the sums over inputs and outputs unrolled;
past ``WIDE_DIMS`` inputs + outputs that stops paying (measured: at d = 64, C = 10 its field is
8x slower than this one), and this layout takes over: per particle, loops over the batch.
Two passes over the particles, never forming an N x B matrix:

1. forward: F[c, b] = sum_i coef_i a_ic sigma(<w_i, z_b>), accumulated in float64
   per fixed-size chunk of particles and summed over chunks in order, so the
   result does not depend on the number of threads; the batch is worked in tiles
   that stay in cache (an evaluation on a whole data set, 60000 MNIST rows, is
   otherwise memory-bound), with the same bits for every tile size;
2. field: per particle, recompute sigma and sigma' on the batch and reduce
   against G = dL/dF.

Inner loops run over the batch with contiguous (d, B) inputs so that LLVM
vectorises them; reductions over the batch are pairwise trees of elementwise
loops (the batch is zero-padded to a multiple of eight) because strict IEEE
order forbids the compiler from vectorising a running sum. Activations come from
:mod:`particledyn.kernels.fastmath` (see there why loops compile with its
``LOOP_OPTIONS``); the loops are module-level and cached on disk, so a new
process does not recompile them.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..serial_twins import parallel_loop
from .fastmath import LOOP_OPTIONS, activation_batch, activation_tag

CHUNK = 2048
"""Particles per forward chunk: fixes the summation order (deterministic results)."""
LANES = 8
"""Batch padding: the batch is a multiple of LANES, the width of the reduction trees."""
SUB = 32
"""Particles summed in the working dtype before a float64 add, in the forward pass."""
TILE = 256
"""Batch entries per tile of the forward pass (a multiple of LANES)."""
NEURONS = 4
"""Particles whose preactivations the forward pass computes together (one load of each input;
the loop body, :func:`_preactivation4`, is written for four)."""


@numba.njit(inline="always")
def tree_dot(x, y, buf, n):
    """sum_b x[b] y[b] for n a multiple of LANES, by pairwise halving in ``buf``.

    Every step is an elementwise loop, so it vectorises without reassociation
    (a running sum cannot: strict IEEE order), and the order is fixed.
    """
    if n % (2 * LANES) == 0:  # the first halving fused with the products
        m = n // 2
        for b in range(m):
            buf[b] = x[b] * y[b] + x[b + m] * y[b + m]
    else:
        m = n
        for b in range(n):
            buf[b] = x[b] * y[b]
    while m > LANES and m % (2 * LANES) == 0:
        half = m // 2
        for b in range(half):
            buf[b] += buf[b + half]
        m = half
    while m > LANES:
        m -= LANES
        for b in range(LANES):
            buf[b] += buf[m + b]
    return ((buf[0] + buf[1]) + (buf[2] + buf[3])) + ((buf[4] + buf[5]) + (buf[6] + buf[7]))


@numba.njit(inline="always")
def _preactivation(positions, i, inputs_t, pre, d, batch):
    """pre[b] = <w_i, z_b> for b < batch, summed over the inputs in order."""
    w0 = positions[i, 0]
    for b in range(batch):
        pre[b] = w0 * inputs_t[0, b]
    for k in range(1, d):
        wk = positions[i, k]
        for b in range(batch):
            pre[b] += wk * inputs_t[k, b]


@numba.njit(inline="always")
def _preactivation4(positions, i, inputs_t, p0, p1, p2, p3, d, batch):
    """:func:`_preactivation` of particles i..i+3 into p0..p3 (each sum in the same order, so the
    same bits), with one load of each input for the four."""
    w0, w1, w2, w3 = positions[i, 0], positions[i + 1, 0], positions[i + 2, 0], positions[i + 3, 0]
    for b in range(batch):
        z = inputs_t[0, b]
        p0[b] = w0 * z
        p1[b] = w1 * z
        p2[b] = w2 * z
        p3[b] = w3 * z
    for k in range(1, d):
        w0, w1, w2, w3 = positions[i, k], positions[i + 1, k], positions[i + 2, k], positions[i + 3, k]
        for b in range(batch):
            z = inputs_t[k, b]
            p0[b] += w0 * z
            p1[b] += w1 * z
            p2[b] += w2 * z
            p3[b] += w3 * z


@parallel_loop(**LOOP_OPTIONS)
def forward(act, positions, coef, inputs_t, tile=TILE):
    """F.T, shape (C, B): sum_i coef_i a_i sigma(<w_i, z_b>), float64, chunk-ordered sum.

    Within a chunk, SUB particles at a time are summed in the working dtype (a full-width
    vector FMA in float32), then added to the chunk's float64 sum. The batch is worked through in
    tiles of ``tile`` entries, each copied once, so that a tile's inputs stay in cache for all the
    chunk's particles (measured here at d = 784: one pass over a 16384-entry batch per particle ran
    at 2.7 GFLOP/s, memory-bound); each entry's arithmetic is the same for every ``tile``, so the
    result is too (bit for bit). The (chunk, tile) pairs are the parallel work items.
    """
    n, dim = positions.shape
    d, batch = inputs_t.shape
    n_out = dim - d
    n_chunks = (n + CHUNK - 1) // CHUNK
    n_tiles = (batch + tile - 1) // tile
    partial = np.zeros((n_chunks, n_out, batch), dtype=np.float64)
    for item in prange(n_chunks * n_tiles):
        chunk, lo = item // n_tiles, (item % n_tiles) * tile
        width = min(batch, lo + tile) - lo
        z = np.empty((d, width), dtype=positions.dtype)
        for k in range(d):
            for b in range(width):
                z[k, b] = inputs_t[k, lo + b]
        p0 = np.empty(width, dtype=positions.dtype)
        p1 = np.empty(width, dtype=positions.dtype)
        p2 = np.empty(width, dtype=positions.dtype)
        p3 = np.empty(width, dtype=positions.dtype)
        value = np.empty(width, dtype=positions.dtype)
        deriv = np.empty(width, dtype=positions.dtype)
        local = np.zeros((n_out, width), dtype=positions.dtype)
        acc = partial[chunk]
        stop = min(n, (chunk + 1) * CHUNK)
        for start in range(chunk * CHUNK, stop, SUB):
            end = min(stop, start + SUB)
            i = start
            while i < end:
                block = NEURONS if i + NEURONS <= end else 1
                if block == NEURONS:
                    _preactivation4(positions, i, z, p0, p1, p2, p3, d, width)
                else:
                    _preactivation(positions, i, z, p0, d, width)
                for j in range(block):
                    pre = p0 if j == 0 else (p1 if j == 1 else (p2 if j == 2 else p3))
                    activation_batch(act, pre, value, deriv, width)
                    for c in range(n_out):
                        weight = coef[i + j] * positions[i + j, d + c]
                        row = local[c]
                        for b in range(width):
                            row[b] += weight * value[b]
                i += block
            for c in range(n_out):
                row, wide = local[c], acc[c]
                for b in range(width):
                    wide[lo + b] += row[b]
                    row[b] = 0
    out = np.zeros((n_out, batch), dtype=np.float64)
    for chunk in range(n_chunks):
        out += partial[chunk]
    return out


@parallel_loop(**LOOP_OPTIONS)
def field(act, positions, inputs_t, grad_out, out):
    """out[i] = -(sum_b G_b sigma_ib, sum_b (G_b . a_i) sigma'_ib z_b), G = grad_out (C, B)."""
    n, dim = positions.shape
    d, batch = inputs_t.shape
    n_out = dim - d
    n_chunks = (n + CHUNK - 1) // CHUNK
    for chunk in prange(n_chunks):
        pre = np.empty(batch, dtype=positions.dtype)
        value = np.empty(batch, dtype=positions.dtype)
        deriv = np.empty(batch, dtype=positions.dtype)
        weighted = np.empty(batch, dtype=positions.dtype)
        products = np.empty(batch, dtype=positions.dtype)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            _preactivation(positions, i, inputs_t, pre, d, batch)
            activation_batch(act, pre, value, deriv, batch)
            a0 = positions[i, d]
            for b in range(batch):
                weighted[b] = grad_out[0, b] * a0
            for c in range(1, n_out):
                ac = positions[i, d + c]
                for b in range(batch):
                    weighted[b] += grad_out[c, b] * ac
            for b in range(batch):
                weighted[b] *= deriv[b]
            for c in range(n_out):
                out[i, d + c] = -tree_dot(grad_out[c], value, products, batch)
            for k in range(d):
                out[i, k] = -tree_dot(inputs_t[k], weighted, products, batch)


def compiled_loops(activation: str, dtype) -> tuple:
    """(forward, field) for an activation name and dtype, as functions of the arrays only."""
    act = activation_tag(activation, dtype)
    return (
        lambda positions, coef, inputs_t: forward(act, positions, coef, inputs_t),
        lambda positions, inputs_t, grad_out, out: field(act, positions, inputs_t, grad_out, out),
    )


def pad_batch(inputs: np.ndarray, dtype) -> np.ndarray:
    """Inputs (B, d) as a (d, B_padded) contiguous array, zero-padded to a multiple of LANES."""
    batch, d = inputs.shape
    padded = max(LANES, -(-batch // LANES) * LANES)
    out = np.zeros((d, padded), dtype=dtype)
    out[:, :batch] = inputs.T
    return out
