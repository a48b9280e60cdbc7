"""Plain-numpy reference of the two-layer network kernel (forms N x B matrices).

Network: F(z)_c = sum_i coef_i a_ic sigma(<w_i, z>), particle x_i = (w_i, a_i),
coef_i = 1 (standard scaling) or m_i (mean-field scaling). The field is
U_i = -(1/s_i) dL/dx_i with s_i = 1 (standard) or m_i (mean-field), so that in
both cases U_i = -[sum_b G_b sigma_ib, sum_b (G_b . a_i) sigma'_ib z_b] with
G = dL/dF the loss gradient with respect to the network outputs.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax

from .activations_reference import activation_reference


def _coefficients(masses, scaling):
    return masses if scaling == "mean_field" else np.ones_like(masses)


def forward_reference(positions, masses, inputs, activation, scaling):
    """Network outputs F, shape (B, C), and the per-neuron pre-activations t (N, B)."""
    d = inputs.shape[1]
    w, a = positions[:, :d], positions[:, d:]
    t = w @ inputs.T
    s, _, _ = activation_reference(activation, t)
    coef = _coefficients(masses, scaling)
    return (s.T * coef) @ a, t


def loss_and_output_gradient(outputs, targets, loss):
    """Loss value and G = dL/dF for loss 'mse' (mean over all entries) or 'cross_entropy'."""
    if loss == "mse":
        targets = targets.reshape(outputs.shape)
        residual = outputs - targets
        return float(np.mean(residual**2)), 2.0 * residual / residual.size
    if loss == "cross_entropy":
        batch = outputs.shape[0]
        labels = np.asarray(targets, dtype=np.int64)
        value = np.mean(logsumexp(outputs, axis=1) - outputs[np.arange(batch), labels])
        grad = softmax(outputs, axis=1)
        grad[np.arange(batch), labels] -= 1.0
        return float(value), grad / batch
    raise ValueError(f"loss={loss!r}: expected 'mse' or 'cross_entropy'")


def loss_hessian_product(outputs, delta, loss):
    """The loss Hessian with respect to the outputs F (B, C) applied to ``delta`` (B, C)."""
    if loss == "mse":
        return 2.0 * delta / delta.size
    p = softmax(outputs, axis=1)
    return (p * delta - p * np.sum(p * delta, axis=1, keepdims=True)) / outputs.shape[0]


def loss_reference(positions, masses, inputs, targets, activation, scaling, loss):
    """Loss of the network on (inputs, targets)."""
    outputs, _ = forward_reference(positions, masses, inputs, activation, scaling)
    return loss_and_output_gradient(outputs, targets, loss)[0]


def field_reference(positions, masses, inputs, targets, activation, scaling, loss):
    """U = -(1/s) dL/dX, shape (N, D)."""
    d = inputs.shape[1]
    outputs, t = forward_reference(positions, masses, inputs, activation, scaling)
    _, grad_out = loss_and_output_gradient(outputs, targets, loss)
    s, ds, _ = activation_reference(activation, t)
    a = positions[:, d:]
    grad_a = s @ grad_out  # (N, C)
    q = (a @ grad_out.T) * ds  # (N, B)
    grad_w = q @ inputs  # (N, d)
    return -np.concatenate([grad_w, grad_a], axis=1)


def hessian_vector_reference(positions, masses, inputs, targets, activation, scaling, loss, vector):
    """(1/s) H V: the Jacobian of -U applied to V, by the exact second-order formulas."""
    d = inputs.shape[1]
    coef = _coefficients(masses, scaling)
    a = positions[:, d:]
    vw, va = vector[:, :d], vector[:, d:]
    outputs, t = forward_reference(positions, masses, inputs, activation, scaling)
    _, grad_out = loss_and_output_gradient(outputs, targets, loss)
    s, ds, dds = activation_reference(activation, t)
    tv = vw @ inputs.T  # (N, B): <v_w, z_b>
    delta_out = (s.T * coef) @ va + ((ds * tv).T * coef) @ a  # J v, (B, C)
    u = loss_hessian_product(outputs, delta_out, loss)
    # J^T u
    h_a = s @ u
    h_w = ((a @ u.T) * ds) @ inputs
    # sum_cb G_cb d2F_cb v
    h_a += (ds * tv) @ grad_out
    h_w += ((va @ grad_out.T) * ds) @ inputs
    h_w += ((a @ grad_out.T) * dds * tv) @ inputs
    return np.concatenate([h_w, h_a], axis=1)
