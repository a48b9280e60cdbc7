"""Fused numba loops of the multi-layer network kernel, one block (hidden layer) per call.

Every neuron is (w_i, a_i) in R^2 and every block maps a scalar h_{l-1}(z) to a
scalar h_l(z), so per block two passes over its neurons suffice, never forming
an N x B matrix:

1. forward: h_l[b] = sum_i coef_i a_i sigma(w_i h_{l-1}[b]) and, for blocks after
   the first, the chain factor J_l[b] = dh_l/dh_{l-1} = sum_i coef_i a_i w_i
   sigma'(w_i h_{l-1}[b]), accumulated in float64 per fixed-size chunk of
   neurons and summed over chunks in order (results independent of the thread
   count);
2. field: per neuron, recompute sigma and sigma' on the batch and reduce against
   G_l = dL/dh_l: U_i = -[a_i sum_b G_lb h_{l-1,b} sigma'_ib, sum_b G_lb sigma_ib].

Batches are zero-padded to a multiple of ``LANES`` with G = 0 on the padding, so
padded entries never reach a reduction. Compiled with ``LOOP_OPTIONS``
(see :mod:`particledyn.kernels.fastmath`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..serial_twins import parallel_loop
from .fastmath import LOOP_OPTIONS, activation_batch, activation_tag
from .two_layer_wide_numba import CHUNK, LANES, tree_dot

__all__ = ["CHUNK", "LANES", "compiled_loops", "pad_vector"]


@parallel_loop(**LOOP_OPTIONS)
def forward(act, positions, coef, layer_input, with_jacobian):
    """h = sum_i c_i a_i sigma(w_i h_in) and (optionally) dh/dh_in, float64, chunk-ordered."""
    n = positions.shape[0]
    batch = layer_input.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    partial_h = np.zeros((n_chunks, batch), dtype=np.float64)
    partial_j = np.zeros((n_chunks, batch), dtype=np.float64)
    for chunk in prange(n_chunks):
        pre = np.empty(batch, dtype=positions.dtype)
        value = np.empty(batch, dtype=positions.dtype)
        deriv = np.empty(batch, dtype=positions.dtype)
        wide = np.empty(batch, dtype=np.float64)
        acc_h = partial_h[chunk]
        acc_j = partial_j[chunk]
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            w = positions[i, 0]
            for b in range(batch):
                pre[b] = w * layer_input[b]
            activation_batch(act, pre, value, deriv, batch)
            weight = np.float64(coef[i] * positions[i, 1])
            for b in range(batch):
                wide[b] = value[b]
            for b in range(batch):
                acc_h[b] += weight * wide[b]
            if with_jacobian:
                weight_w = weight * np.float64(w)
                for b in range(batch):
                    wide[b] = deriv[b]
                for b in range(batch):
                    acc_j[b] += weight_w * wide[b]
    h = np.zeros(batch, dtype=np.float64)
    jacobian = np.zeros(batch, dtype=np.float64)
    for chunk in range(n_chunks):
        h += partial_h[chunk]
        jacobian += partial_j[chunk]
    return h, jacobian


@parallel_loop(**LOOP_OPTIONS)
def field(act, positions, layer_input, grad, grad_times_input, out):
    """The block's field: -(a_i-part, w_i-part) against the backpropagated gradient."""
    n = positions.shape[0]
    batch = layer_input.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for chunk in prange(n_chunks):
        pre = np.empty(batch, dtype=positions.dtype)
        value = np.empty(batch, dtype=positions.dtype)
        deriv = np.empty(batch, dtype=positions.dtype)
        products = np.empty(batch, dtype=positions.dtype)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            w = positions[i, 0]
            for b in range(batch):
                pre[b] = w * layer_input[b]
            activation_batch(act, pre, value, deriv, batch)
            out[i, 1] = -tree_dot(grad, value, products, batch)
            out[i, 0] = -positions[i, 1] * tree_dot(grad_times_input, deriv, products, batch)


def compiled_loops(activation: str, dtype) -> tuple:
    """(forward, field) of one block for an activation name and dtype, as functions of the arrays.

    ``forward(positions, coef, layer_input, with_jacobian) -> (h, jacobian)``, both float64
    of the padded batch length; ``field(positions, layer_input, grad, grad_times_input, out)``
    writes the block's field into ``out``.
    """
    act = activation_tag(activation, dtype)
    return (
        lambda positions, coef, layer_input, with_jacobian: forward(
            act, positions, coef, layer_input, with_jacobian
        ),
        lambda positions, layer_input, grad, grad_times_input, out: field(
            act, positions, layer_input, grad, grad_times_input, out
        ),
    )


def pad_vector(values: np.ndarray, dtype) -> np.ndarray:
    """A batch vector (B,) as a contiguous array of ``dtype``, zero-padded to a multiple of LANES."""
    batch = values.shape[0]
    out = np.zeros(max(LANES, -(-batch // LANES) * LANES), dtype=dtype)
    out[:batch] = values
    return out
