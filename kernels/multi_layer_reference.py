"""Plain-numpy reference of the multi-layer network kernel (forms N_l x B matrices).

Network (input dimension d = 1, every neuron x_i = (w_i, a_i) in R^2): a stack of
L scalar two-layer blocks,

    h_0(z) = z,    h_l(z) = sum_{i in block l} c_i a_i sigma(w_i h_{l-1}(z)),    F(z) = h_L(z),

with c_i = 1 (standard scaling) or m_i (mean-field scaling). Block l holds rows
``offsets[l-1]:offsets[l]`` of the positions. With G_l = dL/dh_l on the batch
(G_L = dL/dF, G_{l-1} = G_l * sum_i c_i a_i w_i sigma'(w_i h_{l-1})), the field
U_i = -(1/s_i) dL/dx_i (s_i = c_i) of a neuron in block l is

    U_i = -[sum_b G_lb a_i sigma'(t_ib) h_{l-1,b},  sum_b G_lb sigma(t_ib)],   t_ib = w_i h_{l-1,b}.

The Hessian-vector product differentiates this backward pass along a direction V
(forward mode over reverse mode).
"""

from __future__ import annotations

import numpy as np

from .activations_reference import activation_reference


def block_slices(groups):
    """Row slices of the blocks in the positions array, in order."""
    bounds = np.concatenate([[0], np.cumsum(groups)]).astype(int)
    return [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _coefficients(masses, scaling):
    return masses if scaling == "mean_field" else np.ones_like(masses)


def forward_reference(positions, masses, groups, inputs, activation, scaling):
    """Network outputs F (B,) and the input h_{l-1} (B,) of every block l, in order."""
    coef = _coefficients(masses, scaling)
    h = inputs[:, 0]
    layer_inputs = []
    for sl in block_slices(groups):
        layer_inputs.append(h)
        t = np.outer(positions[sl, 0], h)  # (N_l, B)
        s, _, _ = activation_reference(activation, t)
        h = (coef[sl] * positions[sl, 1]) @ s
    return h, layer_inputs


def loss_and_output_gradient(outputs, targets):
    """MSE (mean over the batch) and its gradient dL/dF, shape (B,)."""
    residual = outputs - np.reshape(targets, outputs.shape)
    return float(np.mean(residual**2)), 2.0 * residual / residual.size


def loss_reference(positions, masses, groups, inputs, targets, activation, scaling):
    """MSE loss of the network on (inputs, targets)."""
    outputs, _ = forward_reference(positions, masses, groups, inputs, activation, scaling)
    return loss_and_output_gradient(outputs, targets)[0]


def field_reference(positions, masses, groups, inputs, targets, activation, scaling):
    """U = -(1/s) dL/dX, shape (N, 2), by backpropagation through the blocks."""
    coef = _coefficients(masses, scaling)
    outputs, layer_inputs = forward_reference(positions, masses, groups, inputs, activation, scaling)
    _, grad = loss_and_output_gradient(outputs, targets)
    out = np.empty_like(positions)
    for sl, h in reversed(list(zip(block_slices(groups), layer_inputs))):
        w, a = positions[sl, 0], positions[sl, 1]
        s, ds, _ = activation_reference(activation, np.outer(w, h))
        out[sl, 1] = -(s @ grad)
        out[sl, 0] = -a * (ds @ (grad * h))
        grad = grad * ((coef[sl] * a * w) @ ds)  # dL/dh_{l-1}
    return out


def hessian_vector_reference(positions, masses, groups, inputs, targets, activation, scaling, vector):
    """(1/s) H V: the Jacobian of -U applied to V, exact (tangents carried through both passes)."""
    coef = _coefficients(masses, scaling)
    slices = block_slices(groups)
    # forward pass with tangents: h, dh = (h_l, directional derivative of h_l along V)
    h, dh = inputs[:, 0], np.zeros(inputs.shape[0])
    saved = []
    for sl in slices:
        w, a, vw, va = positions[sl, 0], positions[sl, 1], vector[sl, 0], vector[sl, 1]
        t = np.outer(w, h)
        dt = np.outer(vw, h) + np.outer(w, dh)
        s, ds, dds = activation_reference(activation, t)
        saved.append((h, dh, t, dt, s, ds, dds))
        c = coef[sl]
        h, dh = (c * a) @ s, (c * va) @ s + (c * a) @ (ds * dt)
    residual = h - np.reshape(targets, h.shape)
    grad, dgrad = 2.0 * residual / residual.size, 2.0 * dh / dh.size
    out = np.empty_like(positions)
    for sl, (h, dh, _t, dt, s, ds, dds) in reversed(list(zip(slices, saved))):
        w, a, vw, va = positions[sl, 0], positions[sl, 1], vector[sl, 0], vector[sl, 1]
        c = coef[sl]
        # d/dV of grad_a = c s @ G and of grad_w = c a (ds * G) @ h, divided by s_i = c_i
        out[sl, 1] = (ds * dt) @ grad + s @ dgrad
        out[sl, 0] = (
            va * (ds @ (grad * h)) + a * ((dds * dt) @ (grad * h)) + a * (ds @ (dgrad * h + grad * dh))
        )
        jac = (c * a * w) @ ds  # dh_l/dh_{l-1}
        djac = (c * va * w + c * a * vw) @ ds + (c * a * w) @ (dds * dt)
        grad, dgrad = grad * jac, dgrad * jac + grad * djac
    return out
