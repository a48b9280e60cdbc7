"""Sharpness by the paper authors' recipe: a few power iterations on mini-batch Hessians.

The paper's high-dim code (GitHub ``YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning``,
``high-dim/sharpness.py``, called once per epoch from ``high-dim/main.py``) measures K with
``hessian_eigenthings.compute_hessian_eigenthings(model, testloader, cross_entropy,
num_eigenthings=1, mode="power_iter", full_dataset=False)``. In that library
(``noahgolmant/pytorch-hessian-eigenthings``: ``hvp_operator.py``, ``power_iter.py``) this is:

- a fresh operator per call whose iterator over the test loader (``shuffle=False``, the training
  batch size, the last batch short) starts at the first batch; each Hessian-vector product takes
  the *next* batch, wrapping around, so iteration i uses batch ``i mod n_batches``
  (``max_possible_gpu_samples = 2**16`` leaves a batch in one piece);
- the start vector uniform on [0, 1)^n, not normalised; at most ``power_iter_steps = 20``
  steps, each ``lambda = v . H v`` and ``v <- H v / ||H v||``, stopping once
  ``|lambda - lambda_prev| / |lambda| < 1e-4`` (``lambda_prev = 0`` at the first step);
- the returned K is the last ``lambda``: the dominant eigenvalue (largest in magnitude) of the
  batch Hessians as far as 20 steps get, with no residual test.

This module implements that procedure on particledyn's own Hessian-vector products (no code is
taken from either repository); the random start comes from a numpy generator, not torch's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .sharpness import HVP, SharpnessResult


def consecutive_batches(inputs, targets, batch_size: int | None):
    """Rows split as a non-shuffling DataLoader does: consecutive batches, the last one short.

    Parameters
    ----------
    inputs, targets : ndarray
        Data with rows along axis 0 (the same number of rows).
    batch_size : int or None
        Rows per batch; None: one batch of every row.

    Returns
    -------
    list of tuple of ndarray
        ``[(inputs_b, targets_b), ...]``, ``ceil(rows / batch_size)`` batches.
    """
    rows = len(inputs)
    if len(targets) != rows:
        raise ValueError(f"targets have {len(targets)} rows: expected {rows}, the inputs' rows")
    if rows == 0:
        raise ValueError("no rows: expected a non-empty data set for the Hessian batches")
    if batch_size is None:
        return [(inputs, targets)]
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive integer or None")
    size = int(batch_size)
    return [(inputs[s : s + size], targets[s : s + size]) for s in range(0, rows, size)]


def power_iteration(
    hvps: Sequence[HVP],
    n: int,
    iterations: int = 20,
    tol: float = 1e-4,
    rng: np.random.Generator | None = None,
) -> SharpnessResult:
    """Dominant eigenvalue by power iteration, step i on the operator ``hvps[i % len(hvps)]``.

    Parameters
    ----------
    hvps : sequence of callable
        ``hvp(v) -> H_b v`` for each batch b, on flat float64 vectors of length ``n``.
    n : int
        Number of parameters.
    iterations : int
        Most steps (the authors' 20).
    tol : float
        Stop once the estimate changes by less than ``tol`` relative to itself (the authors' 1e-4).
    rng : numpy.random.Generator, optional
        Draws the start vector, uniform on [0, 1)^n (default: seed 0).

    Returns
    -------
    SharpnessResult
        ``lambda_max`` is the last estimate ``v . H_b v``; ``residual`` is ``||H_b v - lambda v||``
        at that step (on that batch); ``converged`` says whether the relative-change test stopped
        the loop before ``iterations`` steps ran out.
    """
    if not hvps:
        raise ValueError("hvps is empty: expected at least one Hessian-vector product")
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations={iterations!r}: expected a positive integer")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol={tol!r}: expected a non-negative relative change")
    rng = np.random.default_rng(0) if rng is None else rng
    vec = rng.random(int(n))
    previous, estimate, residual, count, stopped = 0.0, 0.0, float("nan"), 0, False
    for i in range(int(iterations)):
        product = np.asarray(hvps[i % len(hvps)](vec), dtype=np.float64).reshape(-1)
        count += 1
        norm = float(np.linalg.norm(product))
        if norm == 0.0:  # in the operator's null space: the estimate is 0
            unit = vec / np.linalg.norm(vec)
            return SharpnessResult(0.0, unit, count, 0.0, np.zeros(1), unit[:, None], np.zeros(1), True)
        estimate = float(vec @ product)  # the first vec is not normalised, as in the authors' code
        length = float(np.linalg.norm(vec))
        residual = float(np.linalg.norm(product / length - (estimate / length**2) * (vec / length)))
        error = 1.0 if estimate == 0.0 else abs((estimate - previous) / estimate)
        vec = product / norm
        if error < tol:
            stopped = True
            break
        previous = estimate
    return SharpnessResult(
        estimate, vec, count, residual, np.array([estimate]), vec[:, None], np.array([residual]), stopped
    )
