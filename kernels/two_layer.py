"""Two-layer network kernel: F(z) = sum_i coef_i a_i sigma(<w_i, z>), neuron x_i = (w_i, a_i).

With one output and MSE loss this is the teacher-student network of the paper
(Appendix C.1); with C outputs and cross-entropy it is the classifier of
Appendix C.2 (neuron = (w_i, a_i in R^C)). The per-particle work is fused into
two numba passes (``two_layer_numba``); ``two_layer_reference`` holds the plain
numpy formulas it is tested against.
"""

from __future__ import annotations

import numpy as np

from particledyn.activations import check_activation
from particledyn.kernel import SupervisedKernel

from . import two_layer_hvp_numba as hvp_loops
from . import two_layer_numba as fused
from .activations_reference import activation_reference
from .two_layer_reference import loss_and_output_gradient, loss_hessian_product

SCALINGS = ("standard", "mean_field")
LOSSES = ("mse", "cross_entropy")


def _padded_columns(values, width, dtype):
    """values (B, C) as a (C, width) array, zero past B: per-batch-entry data in the layout of
    ``pad_batch`` (the zeros keep the padding out of every sum)."""
    out = np.zeros((values.shape[1], width), dtype=dtype)
    out[:, : values.shape[0]] = values.T
    return out


class TwoLayerNet(SupervisedKernel):
    """Two-layer network on a fixed data set; particles are hidden neurons.

    Parameters
    ----------
    inputs : ndarray, shape (n, d)
        Training inputs z.
    targets : ndarray
        Shape (n,) or (n, C) real targets for ``loss="mse"``; shape (n,) integer
        class labels in [0, C) for ``loss="cross_entropy"``.
    activation : {"sigmoid", "tanh", "relu"}
    loss : {"mse", "cross_entropy"}
        MSE is the mean of (F - y)^2 over batch and outputs (PyTorch's
        ``MSELoss``); cross-entropy is averaged over the batch.
    scaling : {"standard", "mean_field"}
        ``standard``: F = sum_i a_i sigma(<w_i, z>). ``mean_field``:
        F = sum_i m_i a_i sigma(<w_i, z>) (1/N for equal masses), and the field is
        the gradient per unit mass, -(1/m_i) dL/dx_i, so the dynamics has an
        N-independent time scale.
    n_outputs : int, optional
        C; inferred from the targets (number of classes for cross-entropy).
    test_inputs, test_targets : ndarray, optional
        Held-out data for :meth:`test_loss`.

    Notes
    -----
    The batch shared by all particles is drawn by :meth:`context` (full batch
    when ``batch_size`` is None). Memory per call is O(N D + chunks B C).
    """

    thread_invariant = True  # sums over fixed chunks in a fixed order

    def __init__(
        self,
        inputs,
        targets,
        activation="sigmoid",
        loss="mse",
        scaling="standard",
        n_outputs=None,
        test_inputs=None,
        test_targets=None,
    ):
        check_activation(activation)
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: expected one of {LOSSES}")
        if scaling not in SCALINGS:
            raise ValueError(f"scaling={scaling!r}: expected one of {SCALINGS}")
        inputs = np.asarray(inputs, dtype=np.float64)
        if inputs.ndim != 2 or inputs.shape[0] == 0:
            raise ValueError(f"inputs of shape {inputs.shape}: expected (n, d) with n >= 1")
        if not np.all(np.isfinite(inputs)):
            row, col = np.argwhere(~np.isfinite(inputs))[0]
            raise ValueError(f"inputs[{row}, {col}] = {inputs[row, col]}: expected finite values")
        targets = self._check_targets(np.asarray(targets), inputs.shape[0], loss, n_outputs)
        self.inputs, self.targets = inputs, targets
        self.activation, self.loss_name, self.scaling = activation, loss, scaling
        if loss == "cross_entropy":
            self.n_outputs = int(n_outputs) if n_outputs else int(targets.max()) + 1
        else:
            self.n_outputs = 1 if targets.ndim == 1 else targets.shape[1]
        self.d_in = inputs.shape[1]
        self.dim = self.d_in + self.n_outputs
        self.test_inputs = None if test_inputs is None else np.asarray(test_inputs, dtype=np.float64)
        self.test_targets = None if test_targets is None else np.asarray(test_targets)
        self.name = f"two_layer_{activation}_{loss}"

    @staticmethod
    def _check_targets(targets, n, loss, n_outputs):
        if targets.shape[0] != n:
            raise ValueError(f"targets with {targets.shape[0]} rows: expected {n} (one per input)")
        if loss == "cross_entropy":
            if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0:
                raise ValueError(
                    f"targets of shape {targets.shape} and dtype {targets.dtype} (min "
                    f"{targets.min()}) for cross_entropy: expected a 1-D array of "
                    f"non-negative integer labels"
                )
            if n_outputs is not None and targets.max() >= n_outputs:
                raise ValueError(
                    f"label {targets.max()} with n_outputs={n_outputs}: expected labels < n_outputs"
                )
            return targets.astype(np.int64)
        if not np.all(np.isfinite(targets)):
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(targets))[0])
            raise ValueError(
                f"targets[{', '.join(map(str, index))}] = {targets[index]}: expected finite values"
            )
        return targets.astype(np.float64)

    # -- field, loss, hvp --------------------------------------------------------
    def outputs(self, positions, masses, inputs):
        """Network outputs F, shape (B, C), computed in float64."""
        forward, _ = fused.compiled_loops(self.activation, positions.dtype)
        inputs_t = fused.pad_batch(inputs, positions.dtype)
        out = forward(positions, self._coefficients(masses, positions.dtype), inputs_t)
        return out[:, : inputs.shape[0]].T

    def field(self, positions, masses, context):
        inputs, targets = context
        return self.field_given_outputs(positions, inputs, targets, self.outputs(positions, masses, inputs))

    def field_given_outputs(self, positions, inputs, targets, outputs):
        """The field once the network outputs F (B, C) are known, e.g. summed over MPI ranks."""
        _, grad_out = loss_and_output_gradient(outputs, targets, self.loss_name)
        _, field = fused.compiled_loops(self.activation, positions.dtype)
        inputs_t = fused.pad_batch(inputs, positions.dtype)
        out = np.empty_like(positions)
        field(positions, inputs_t, _padded_columns(grad_out, inputs_t.shape[1], positions.dtype), out)
        return out

    def loss(self, positions, masses, context):
        inputs, targets = context
        return loss_and_output_gradient(self.outputs(positions, masses, inputs), targets, self.loss_name)[0]

    def test_loss(self, positions, masses):
        """Loss on the held-out data, or NaN when there is none."""
        if self.test_inputs is None:
            return float("nan")
        return self.loss(positions, masses, (self.test_inputs, self.test_targets))

    def accuracy(self, positions, masses, inputs, labels):
        """Fraction of correctly classified inputs (cross-entropy kernels)."""
        return self.loss_and_accuracy(positions, masses, (inputs, None), labels)[1]

    def loss_and_accuracy(self, positions, masses, context, labels):
        """:meth:`loss` on ``context = (inputs, targets)`` and :meth:`accuracy` of ``labels`` on
        the same inputs, from one forward pass (the same values as the two calls).

        Parameters
        ----------
        positions, masses : ndarray
            The particles.
        context : tuple
            ``(inputs, targets)``; ``targets=None`` skips the loss (returned as NaN).
        labels : ndarray, shape (n,)
            Class labels of the inputs.

        Returns
        -------
        tuple of float
            ``(loss, accuracy)``.
        """
        inputs, targets = context
        outputs = self.outputs(positions, masses, inputs)
        accuracy = float(np.mean(np.argmax(outputs, axis=1) == labels))
        if targets is None:
            return float("nan"), accuracy
        return float(loss_and_output_gradient(outputs, targets, self.loss_name)[0]), accuracy

    def hvp(self, positions, masses, context, vector, chunk=4096):
        """Exact Hessian-vector product (float64).

        Up to ``WIDE_DIMS`` coordinates per neuron, the fused loops of
        :mod:`.two_layer_hvp_numba`; wider neurons use numpy, chunked over particles
        (O(chunk B) memory).
        """
        return self.hvp_operator(positions, masses, context, chunk)(vector)

    def hvp_operator(self, positions, masses, context, chunk=4096):
        """``v -> H v`` at fixed positions, as :meth:`hvp`: the forward pass, the loss gradient
        and the batch layouts, the same for every product of one Lanczos solve, are computed
        once here (positions must not change while the operator is in use)."""
        inputs, targets = context
        x = np.ascontiguousarray(positions, dtype=np.float64)
        m = np.asarray(masses, dtype=np.float64)
        if x.shape[1] <= fused.WIDE_DIMS:
            product = self._hvp_fused(x, m, inputs, targets)
        elif x.shape[0] <= chunk:
            product = self._hvp_cached(x, m, inputs, targets)
        else:

            def product(v):
                return self._hvp_chunked(x, m, inputs, targets, v, chunk)

        def apply(vector):
            return product(np.ascontiguousarray(np.asarray(vector, dtype=np.float64).reshape(x.shape)))

        return apply

    def _hvp_fused(self, x, m, inputs, targets):
        directional, curvature = hvp_loops.compiled_hvp(self.activation)
        outputs = self.outputs(x, m, inputs)
        _, grad_out = loss_and_output_gradient(outputs, targets, self.loss_name)
        inputs_t = fused.pad_batch(inputs, np.float64)
        coef = self._coefficients(m, np.float64)
        width = inputs_t.shape[1]
        grad_columns = _padded_columns(grad_out, width, np.float64)

        def product(v):
            delta = directional(x, v, coef, inputs_t)[:, : inputs.shape[0]].T
            u = loss_hessian_product(outputs, delta, self.loss_name)
            out = np.empty_like(x)
            curvature(x, v, inputs_t, _padded_columns(u, width, np.float64), grad_columns, out)
            return out

        return product

    def _hvp_cached(self, x, m, inputs, targets):
        """Wide neurons, N <= chunk: the formulas of ``hessian_vector_reference`` with the
        activations, the loss gradient and the second-derivative factor computed once per
        operator, so a product costs two N x d x B matrix products (``tv = v_w Z^T`` and
        ``q Z``) and a few passes over (N, B) arrays kept in two preallocated buffers: O(5 N B)
        memory in all, no (N, B) allocation per product (a fresh one costs its page faults).

        The outputs are ``s^T (coef a)`` from the activations already at hand (the same
        numbers as :meth:`outputs` up to rounding), not a second forward pass."""
        d = self.d_in
        inputs = np.asarray(inputs, dtype=np.float64)
        coef = self._coefficients(m, np.float64)
        a = x[:, d:]
        scaled_a = coef[:, None] * a
        s, ds, curvature = activation_reference(self.activation, x[:, :d] @ inputs.T)  # (N, B)
        outputs = s.T @ scaled_a  # (B, C)
        _, grad_out = loss_and_output_gradient(outputs, targets, self.loss_name)
        tv = np.empty_like(s)  # <v_w, z_b>, then the factor of z_b in h_w
        scratch = np.empty_like(s)
        np.matmul(a, grad_out.T, out=scratch)
        curvature *= scratch  # sigma'' (a . G): the second-derivative term's factor
        coef_column = coef[:, None]

        def product(v):
            vw, va = v[:, :d], v[:, d:]
            np.matmul(vw, inputs.T, out=tv)
            ds_tv = np.multiply(ds, tv, out=scratch)
            delta = s.T @ (coef_column * va) + ds_tv.T @ scaled_a  # J v, (B, C)
            u = loss_hessian_product(outputs, delta, self.loss_name)
            out = np.empty_like(x)
            out[:, d:] = s @ u + ds_tv @ grad_out
            # sigma' (a . u + va . G) + sigma'' (a . G) tv, with one K = 2C product for the first
            mixed = np.matmul(np.hstack([a, va]), np.hstack([u, grad_out]).T, out=scratch)
            mixed *= ds
            np.multiply(tv, curvature, out=tv)
            np.add(tv, mixed, out=tv)
            out[:, :d] = tv @ inputs
            return out

        return product

    def _hvp_chunked(self, x, m, inputs, targets, v, chunk):
        d = self.d_in
        coef = self._coefficients(m, np.float64)
        outputs = self.outputs(x, m, inputs)
        _, grad_out = loss_and_output_gradient(outputs, targets, self.loss_name)
        delta = np.zeros_like(outputs)
        for lo in range(0, x.shape[0], chunk):
            sl = slice(lo, lo + chunk)
            t = x[sl, :d] @ inputs.T
            s, ds, _ = activation_reference(self.activation, t)
            tv = v[sl, :d] @ inputs.T
            delta += (s.T * coef[sl]) @ v[sl, d:] + ((ds * tv).T * coef[sl]) @ x[sl, d:]
        u = loss_hessian_product(outputs, delta, self.loss_name)
        out = np.empty_like(x)
        for lo in range(0, x.shape[0], chunk):
            sl = slice(lo, lo + chunk)
            a, va = x[sl, d:], v[sl, d:]
            t = x[sl, :d] @ inputs.T
            s, ds, dds = activation_reference(self.activation, t)
            tv = v[sl, :d] @ inputs.T
            out[sl, d:] = s @ u + (ds * tv) @ grad_out
            out[sl, :d] = (((a @ u.T) * ds) + (va @ grad_out.T) * ds + (a @ grad_out.T) * dds * tv) @ inputs
        return out

    def to_device(self, backend):
        """The ``numba.cuda`` twin (:class:`~particledyn.kernels.two_layer_cuda.CudaTwoLayerNet`)."""
        from .two_layer_cuda import CudaTwoLayerNet

        return CudaTwoLayerNet(self, backend)

    def describe(self):
        return {
            "name": self.name,
            "dim": self.dim,
            "activation": self.activation,
            "loss": self.loss_name,
            "scaling": self.scaling,
            "n_outputs": self.n_outputs,
            "n_train": int(self.inputs.shape[0]),
        }
