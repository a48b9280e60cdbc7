"""Multi-layer network kernel (the paper's Figure 13): one particle group per hidden layer.

The network is a stack of L scalar two-layer blocks on inputs z in R (d = 1):

    h_0(z) = z,    h_l(z) = sum_{i in block l} c_i a_i sigma(w_i h_{l-1}(z)),    F(z) = h_L(z),

so every neuron of every block is a particle x_i = (w_i, a_i) in R^2 and all
particles share one (N, 2) array: rows 0..N_1-1 are block 1, the next N_2 rows
block 2, and so on (``groups = (N_1, ..., N_L)``). The loss is invariant under
permutations of the neurons of one block, not across blocks, so the field is
equivariant per group. The paper gives no formula for its multi-layer network;
this stack is the project's choice. Input dimension d > 1 is not supported: a
first block with d-dimensional inputs would have particles of dimension d + 1
while the later blocks have 2. With L = 1 this is the two-layer network of
:class:`~particledyn.kernels.TwoLayerNet` with d = 1.

The field runs as fused numba loops (``multi_layer_numba``); the plain-numpy
formulas it is tested against are in ``multi_layer_reference``.
"""

from __future__ import annotations

import numbers

import numpy as np

from particledyn.activations import check_activation
from particledyn.kernel import SupervisedKernel

from . import multi_layer_numba as fused
from .activations_reference import activation_reference
from .multi_layer_reference import block_slices, loss_and_output_gradient

SCALINGS = ("standard", "mean_field")


def _check_groups(groups) -> tuple[int, ...]:
    if isinstance(groups, numbers.Integral) or not hasattr(groups, "__len__") or len(groups) == 0:
        raise ValueError(f"groups={groups!r}: expected a non-empty sequence of block sizes (N_1, ..., N_L)")
    for size in groups:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(
                f"groups={tuple(groups)!r}: expected every block size to be an integer >= 1, got {size!r}"
            )
    return tuple(int(size) for size in groups)


class MultiLayerNet(SupervisedKernel):
    """Multi-layer scalar network on a fixed data set; each hidden layer is a particle group.

    Parameters
    ----------
    inputs : ndarray, shape (n, 1)
        Training inputs z (d = 1 only, as in the paper's multi-layer 2D network).
    targets : ndarray, shape (n,) or (n, 1)
        Real targets; the loss is the MSE, mean of (F - y)^2 over the batch.
    groups : sequence of int
        Block sizes (N_1, ..., N_L), in order from the input; L >= 1.
    activation : {"sigmoid", "tanh", "relu"}
    scaling : {"standard", "mean_field"}
        ``standard``: c_i = 1. ``mean_field``: c_i = m_i (1/N_l for the default masses)
        and the field is the gradient per unit mass, -(1/m_i) dL/dx_i.
    test_inputs, test_targets : ndarray, optional
        Held-out data for :meth:`test_loss`.

    Notes
    -----
    The batch shared by all particles is drawn by :meth:`context` (full batch when
    ``batch_size`` is None). Memory per call is O(N + chunks B); the blocks are
    evaluated in order, the neurons of one block in parallel chunks.
    """

    thread_invariant = True  # sums over fixed chunks in a fixed order

    dim = 2

    def __init__(
        self,
        inputs,
        targets,
        groups,
        activation="sigmoid",
        scaling="standard",
        test_inputs=None,
        test_targets=None,
    ):
        check_activation(activation)
        if scaling not in SCALINGS:
            raise ValueError(f"scaling={scaling!r}: expected one of {SCALINGS}")
        self.groups = _check_groups(groups)
        self.inputs, self.targets = self._check_data(inputs, targets, "inputs", "targets")
        if (test_inputs is None) != (test_targets is None):
            raise ValueError("test_inputs and test_targets: expected both or neither")
        self.test_inputs = self.test_targets = None
        if test_inputs is not None:
            self.test_inputs, self.test_targets = self._check_data(
                test_inputs, test_targets, "test_inputs", "test_targets"
            )
        self.activation, self.scaling = activation, scaling
        self.slices = block_slices(self.groups)
        self.name = f"multi_layer_{activation}"

    @staticmethod
    def _check_data(inputs, targets, inputs_name, targets_name):
        inputs = np.asarray(inputs, dtype=np.float64)
        if inputs.ndim == 2 and inputs.shape[0] >= 1 and inputs.shape[1] != 1:
            raise ValueError(
                f"{inputs_name} of shape {inputs.shape}: expected (n, 1); MultiLayerNet supports "
                f"input dimension d = 1 only (every neuron is (w, a) in R^2)"
            )
        if inputs.ndim != 2 or inputs.shape[0] == 0:
            raise ValueError(f"{inputs_name} of shape {inputs.shape}: expected (n, 1) with n >= 1")
        if not np.all(np.isfinite(inputs)):
            raise ValueError(f"{inputs_name} contain NaN or inf: expected finite values")
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape not in ((inputs.shape[0],), (inputs.shape[0], 1)):
            raise ValueError(
                f"{targets_name} of shape {targets.shape}: expected ({inputs.shape[0]},), "
                f"one real target per input"
            )
        if not np.all(np.isfinite(targets)):
            raise ValueError(f"{targets_name} contain NaN or inf: expected finite values")
        return inputs, targets.reshape(-1)

    # -- field, loss, hvp --------------------------------------------------------
    def _forward(self, positions, masses, inputs):
        """Padded block inputs h_0..h_{L-1} (working dtype), chain factors J_l (float64), F (float64)."""
        self.check_positions(positions)
        if np.shape(masses) != (positions.shape[0],):
            raise ValueError(
                f"masses of shape {np.shape(masses)}: expected ({positions.shape[0]},), one per particle"
            )
        dtype = positions.dtype
        forward, _ = fused.compiled_loops(self.activation, dtype)
        coef = self._coefficients(masses, dtype)
        batch = inputs.shape[0]
        h = fused.pad_vector(inputs[:, 0], dtype)
        layer_inputs, jacobians = [], []
        for index, sl in enumerate(self.slices):
            layer_inputs.append(h)
            out, jacobian = forward(positions[sl], coef[sl], h, index > 0)
            jacobians.append(jacobian)
            h = np.zeros_like(h)
            h[:batch] = out[:batch]
        return layer_inputs, jacobians, out[:batch]

    def outputs(self, positions, masses, inputs):
        """Network outputs F, shape (B,), float64."""
        return self._forward(positions, masses, np.asarray(inputs, dtype=np.float64))[2]

    def field(self, positions, masses, context):
        inputs, targets = context
        dtype = positions.dtype
        layer_inputs, jacobians, outputs = self._forward(positions, masses, inputs)
        _, grad_out = loss_and_output_gradient(outputs, targets)
        _, field = fused.compiled_loops(self.activation, dtype)
        grad = fused.pad_vector(grad_out, np.float64)  # zero on the padding
        out = np.empty_like(positions)
        for sl, h, jacobian in reversed(list(zip(self.slices, layer_inputs, jacobians))):
            field(positions[sl], h, grad.astype(dtype), (grad * h).astype(dtype), out[sl])
            grad = grad * jacobian
        return out

    def loss(self, positions, masses, context):
        inputs, targets = context
        return loss_and_output_gradient(self.outputs(positions, masses, inputs), targets)[0]

    def test_loss(self, positions, masses):
        """Loss on the held-out data, or NaN when there is none."""
        if self.test_inputs is None:
            return float("nan")
        return self.loss(positions, masses, (self.test_inputs, self.test_targets))

    def hvp(self, positions, masses, context, vector, chunk=4096):
        """Exact Hessian-vector product (1/s) H V in float64, chunked over neurons: O(chunk B) memory.

        Differentiates the forward and backward passes along V (the formulas of
        :func:`~particledyn.kernels.multi_layer_reference.hessian_vector_reference`,
        evaluated ``chunk`` neurons at a time).
        """
        inputs, targets = context
        self.check_positions(np.asarray(positions))
        x = np.asarray(positions, dtype=np.float64)
        v = np.asarray(vector, dtype=np.float64).reshape(x.shape)
        coef = self._coefficients(masses, np.float64)
        act = self.activation

        def pieces(sl, h, dh):
            t = np.outer(x[sl, 0], h)
            dt = np.outer(v[sl, 0], h) + np.outer(x[sl, 0], dh)
            s, ds, dds = activation_reference(act, t)
            return x[sl, 0], x[sl, 1], v[sl, 0], v[sl, 1], coef[sl], dt, s, ds, dds

        h, dh = np.asarray(inputs, dtype=np.float64)[:, 0], np.zeros(inputs.shape[0])
        saved = []
        for block in self.slices:
            saved.append((h, dh))
            h_next, dh_next = np.zeros_like(h), np.zeros_like(h)
            for sl in _chunks(block, chunk):
                w, a, vw, va, c, dt, s, ds, dds = pieces(sl, h, dh)
                h_next += (c * a) @ s
                dh_next += (c * va) @ s + (c * a) @ (ds * dt)
            h, dh = h_next, dh_next
        residual = h - targets
        grad, dgrad = 2.0 * residual / residual.size, 2.0 * dh / dh.size
        out = np.empty_like(x)
        for block, (h, dh) in reversed(list(zip(self.slices, saved))):
            jac, djac = np.zeros_like(h), np.zeros_like(h)
            for sl in _chunks(block, chunk):
                w, a, vw, va, c, dt, s, ds, dds = pieces(sl, h, dh)
                out[sl, 1] = (ds * dt) @ grad + s @ dgrad
                out[sl, 0] = (
                    va * (ds @ (grad * h))
                    + a * ((dds * dt) @ (grad * h))
                    + a * (ds @ (dgrad * h + grad * dh))
                )
                jac += (c * a * w) @ ds
                djac += (c * va * w + c * a * vw) @ ds + (c * a * w) @ (dds * dt)
            grad, dgrad = grad * jac, dgrad * jac + grad * djac
        return out

    def describe(self):
        return {
            "name": self.name,
            "dim": self.dim,
            "groups": list(self.groups),
            "activation": self.activation,
            "loss": "mse",
            "scaling": self.scaling,
            "n_train": int(self.inputs.shape[0]),
        }


def _chunks(block: slice, size: int):
    for lo in range(block.start, block.stop, size):
        yield slice(lo, min(lo + size, block.stop))
