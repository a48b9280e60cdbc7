"""The kernel field of every live replica in one call.

Replicas of :class:`~particledyn.kernels.TwoLayerNet` (same activation, loss, scaling,
d and C; d + C <= 16) go through the fused loops of
:mod:`particledyn.kernels.two_layer_ensemble_numba`; any other kernel is called replica by
replica (still bit-identical, not fused).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..kernels import two_layer_ensemble_numba as fused
from ..kernels.two_layer import TwoLayerNet, _padded_columns
from ..kernels.two_layer_numba import pad_batch
from ..kernels.two_layer_reference import loss_and_output_gradient


def _signature(kernel) -> tuple:
    return (type(kernel), kernel.activation, kernel.loss_name, kernel.scaling, kernel.d_in, kernel.n_outputs)


def fusable(kernels: Sequence) -> bool:
    """Whether the fused two-layer loops cover these replicas' kernels."""
    first = kernels[0]
    return (
        type(first) is TwoLayerNet
        and first.d_in + first.n_outputs <= fused.WIDE_DIMS
        and all(_signature(k) == _signature(first) for k in kernels)
    )


class ReplicaFields:
    """The fields of R replicas, each as ``kernels[r].field`` computes it alone.

    Parameters
    ----------
    kernels : sequence of Kernel
        One per replica (the same object may repeat).
    masses : ndarray, shape (R, N)
    dtype : numpy dtype
        The working precision.

    Attributes
    ----------
    fused : bool
        Whether the fused two-layer loops run.
    """

    def __init__(self, kernels: Sequence, masses: np.ndarray, dtype):
        self.kernels, self.masses, self.dtype = list(kernels), masses, np.dtype(dtype)
        self.fused = fusable(self.kernels)
        if self.fused:
            k = self.kernels[0]
            self._forward, self._field = fused.compiled_loops(k.activation, self.dtype, k.d_in, k.n_outputs)
            self._coef = np.stack([kr._coefficients(m, self.dtype) for kr, m in zip(self.kernels, masses)])

    def __call__(self, positions: np.ndarray, contexts: dict, out: np.ndarray) -> None:
        """out[r] = field of replica r at ``positions[r]`` for each r in ``contexts``
        (replica -> its context of this step); other rows are left as they are."""
        replicas = np.fromiter(contexts, dtype=np.int64, count=len(contexts))
        if self.fused:
            widths = {len(ctx[0]) for ctx in contexts.values()}
            if len(widths) == 1:
                self._fused(positions, contexts, replicas, out)
                return
        for r, ctx in contexts.items():
            out[r] = self.kernels[r].field(positions[r], self.masses[r], ctx)

    def _fused(self, positions, contexts, replicas, out):
        rows = len(next(iter(contexts.values()))[0])
        first = pad_batch(contexts[replicas[0]][0], self.dtype)
        inputs_t = np.zeros((positions.shape[0],) + first.shape, dtype=self.dtype)
        for r, (inputs, _) in contexts.items():
            inputs_t[r] = first if r == replicas[0] else pad_batch(inputs, self.dtype)
        outputs = self._forward(positions, self._coef, inputs_t, replicas)  # (R_live, C, W) float64
        grad = np.zeros((positions.shape[0], outputs.shape[1], inputs_t.shape[2]), dtype=self.dtype)
        if self.kernels[0].loss_name == "mse":
            # loss_and_output_gradient's MSE gradient, 2 (F - y) / (B C), entry by entry for all replicas
            targets = np.stack([np.asarray(contexts[r][1]).reshape(rows, -1).T for r in replicas])
            residual = outputs[:, :, :rows] - targets
            grad[replicas, :, :rows] = 2.0 * residual / (rows * outputs.shape[1])
        else:
            for q, r in enumerate(replicas):
                _, g = loss_and_output_gradient(outputs[q][:, :rows].T, contexts[r][1], "cross_entropy")
                grad[r] = _padded_columns(g, inputs_t.shape[2], self.dtype)
        self._field(positions, inputs_t, grad, replicas, out)
