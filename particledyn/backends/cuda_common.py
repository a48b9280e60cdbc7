"""Launch sizes and the deterministic reduction shared by the ``numba.cuda`` kernels.

Determinism: no kernel adds floats with atomics. A sum over particles is
written as per-block partial sums into an (M, n_blocks) array, where block
``j`` always covers the same fixed range of particles in the same order, and
:func:`sum_rows` adds each row in a fixed order (a strided loop per thread,
then a shared-memory tree of fixed shape). Every constant that shapes the
order is a module constant here, not a property of the GPU, so the same seed
gives the same trajectory run after run (and across GPU models, up to their
libdevice ``exp``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda

THREADS = 128
"""Threads per block of every particle kernel."""
REDUCE_THREADS = 256
"""Threads per block of :func:`sum_rows` (a power of two)."""
SEQUENTIAL_ROWS = 64
"""Rows of at most this many partial sums are added by one thread, in order."""
MAX_BLOCKS = 65535
"""Cap on the grid of element-wise kernels (they loop grid-stride beyond it)."""

_F64 = numba.float64


def numba_type(dtype):
    """The numba scalar type of a numpy float dtype."""
    return numba.from_dtype(np.dtype(dtype))


def blocks_for(count: int, threads: int = THREADS) -> int:
    """Blocks to cover ``count`` items with ``threads`` per block (at least 1, at most MAX_BLOCKS)."""
    return max(1, min(MAX_BLOCKS, -(-int(count) // threads)))


@cuda.jit
def _sum_rows_sequential(partial, out):
    row = cuda.grid(1)
    if row < partial.shape[0]:
        acc = 0.0
        for j in range(partial.shape[1]):
            acc += partial[row, j]
        out[row] = acc


@cuda.jit(device=True)
def block_tree_sum(shared, t):
    """Sum of a block's shared array (length a power of two, one entry per thread ``t``)
    by a fixed pairwise tree; every thread of the block must call it."""
    cuda.syncthreads()
    step = shared.shape[0] // 2
    while step > 0:
        if t < step:
            shared[t] += shared[t + step]
        cuda.syncthreads()
        step //= 2
    return shared[0]


@cuda.jit
def _sum_rows_tree(partial, out):
    row = cuda.blockIdx.x
    t = cuda.threadIdx.x
    shared = cuda.shared.array(REDUCE_THREADS, _F64)
    acc = 0.0
    for j in range(t, partial.shape[1], REDUCE_THREADS):
        acc += partial[row, j]
    shared[t] = acc
    total = block_tree_sum(shared, t)
    if t == 0:
        out[row] = total


def sum_rows(backend, partial):
    """Row sums of a float64 (M, K) device array in a fixed order: an (M,) device array.

    K <= SEQUENTIAL_ROWS: one thread per row adds it left to right; otherwise one
    block per row (strided partial sums, then a tree). The choice depends on K only.
    """
    rows, width = partial.shape
    out = backend.xp.empty(rows, dtype=np.float64)
    view = backend.launch_view
    if width <= SEQUENTIAL_ROWS:
        _sum_rows_sequential[blocks_for(rows), THREADS](view(partial), view(out))
    else:
        _sum_rows_tree[rows, REDUCE_THREADS](view(partial), view(out))
    return out
