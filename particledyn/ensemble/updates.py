"""The optimizer step and the in-place update of R replicas in one parallel loop.

Per entry each loop computes exactly what :mod:`particledyn.optimizers` computes (same
expressions, same order, same dtype, no fastmath) followed by ``apply_step``'s
``x + lr * S``, with replica r's own learning rate, so a replica is bit-identical to its
single run. Arrays are (R, M) views of the (R, N, D) state (M = N * D); only the listed
replicas are touched, and each gets its own count of non-finite new entries.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ..optimizers import GD, SGD, Adam, Momentum, Optimizer
from ..serial_twins import parallel_loop

SPAN = 4096
"""Entries per parallel task."""


@numba.njit(inline="always")
def _tasks(replicas, m):
    spans = (m + SPAN - 1) // SPAN
    return spans, len(replicas) * spans


@numba.njit(inline="always")
def _counts_per_replica(counts, replicas, spans, bad):
    for q in range(len(replicas)):
        total = 0
        for s in range(spans):
            total += counts[q * spans + s]
        bad[replicas[q]] = total


@parallel_loop(error_model="numpy", cache=True)
def gd_update(x, u, wd, lr, replicas, out, bad):
    """out = u - wd x; x += lr[r] out; bad[r] = non-finite new entries of replica r."""
    spans, tasks = _tasks(replicas, x.shape[1])
    counts = np.empty(tasks, dtype=np.int64)  # every task writes its count
    for task in prange(tasks):
        q = task // spans
        r = replicas[q]
        lo = (task - q * spans) * SPAN
        c = 0
        for j in range(lo, min(x.shape[1], lo + SPAN)):
            out[r, j] = u[r, j] - wd * x[r, j]
            value = x[r, j] + lr[r] * out[r, j]
            x[r, j] = value
            if not math.isfinite(value):
                c += 1
        counts[task] = c
    _counts_per_replica(counts, replicas, spans, bad)


@parallel_loop(error_model="numpy", cache=True)
def momentum_update(x, u, wd, beta, buf, lr, replicas, out, bad):
    """buf = beta buf + (wd x - u); out = -buf; x += lr[r] out."""
    spans, tasks = _tasks(replicas, x.shape[1])
    counts = np.empty(tasks, dtype=np.int64)  # every task writes its count
    for task in prange(tasks):
        q = task // spans
        r = replicas[q]
        lo = (task - q * spans) * SPAN
        c = 0
        for j in range(lo, min(x.shape[1], lo + SPAN)):
            buf[r, j] = beta * buf[r, j] + (wd * x[r, j] - u[r, j])
            out[r, j] = -buf[r, j]
            value = x[r, j] + lr[r] * out[r, j]
            x[r, j] = value
            if not math.isfinite(value):
                c += 1
        counts[task] = c
    _counts_per_replica(counts, replicas, spans, bad)


@parallel_loop(error_model="numpy", cache=True)
def adam_update(x, u, wd, beta1, beta2, c1, c2, eps, m, v, lr, replicas, out, bad):
    """Adam's moments and direction as :class:`particledyn.Adam`; x += lr[r] out."""
    one = beta1 - beta1 + 1
    spans, tasks = _tasks(replicas, x.shape[1])
    counts = np.empty(tasks, dtype=np.int64)  # every task writes its count
    for task in prange(tasks):
        q = task // spans
        r = replicas[q]
        lo = (task - q * spans) * SPAN
        c = 0
        for j in range(lo, min(x.shape[1], lo + SPAN)):
            g = wd * x[r, j] - u[r, j]
            m[r, j] = beta1 * m[r, j] + (one - beta1) * g
            v[r, j] = beta2 * v[r, j] + (one - beta2) * g * g
            out[r, j] = -(m[r, j] / c1) / (math.sqrt(v[r, j] / c2) + eps)
            value = x[r, j] + lr[r] * out[r, j]
            x[r, j] = value
            if not math.isfinite(value):
                c += 1
        counts[task] = c
    _counts_per_replica(counts, replicas, spans, bad)


def is_fused(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` is one of the rules these loops cover (not a subclass of them)."""
    return type(optimizer) in (GD, SGD, Momentum, Adam)


def fused_update(optimizer: Optimizer, x, field, state: dict, step: int, lr, replicas, out, bad) -> None:
    """Apply ``optimizer``'s step at update ``step`` to the listed replicas, in place.

    Parameters
    ----------
    optimizer : GD, SGD, Momentum or Adam
    x, field, out : ndarray, shape (R, M)
        Positions (updated), the kernel's field, the step direction (written).
    state : dict of str to ndarray (R, M)
        The optimizer's per-particle state (updated).
    step : int
        The update number, for Adam's bias correction.
    lr : ndarray, shape (R,)
        Learning rates in the working dtype.
    replicas : ndarray of int64
    bad : ndarray of int64, shape (R,)
        Receives each listed replica's number of non-finite new entries.
    """
    t = x.dtype.type
    wd = t(optimizer.weight_decay)
    if isinstance(optimizer, Adam):
        c1 = 1.0 - optimizer.beta1 ** (step + 1)
        c2 = 1.0 - optimizer.beta2 ** (step + 1)
        adam_update(
            x,
            field,
            wd,
            t(optimizer.beta1),
            t(optimizer.beta2),
            t(c1),
            t(c2),
            t(optimizer.eps),
            state["adam_m"],
            state["adam_v"],
            lr,
            replicas,
            out,
            bad,
        )
    elif isinstance(optimizer, Momentum):
        momentum_update(x, field, wd, t(optimizer.beta), state["velocity"], lr, replicas, out, bad)
    else:
        gd_update(x, field, wd, lr, replicas, out, bad)
