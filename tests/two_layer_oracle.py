"""The two-layer network's loss written from its definition, sharing no code with particledyn.

F(z)_c = sum_i coef_i a_ic act(<w_i, z>) with coef_i = 1 (standard) or m_i (mean field); the
loss is the mean squared error over all B x C entries, or the mean cross-entropy of the softmax
of F against integer labels. Loops over samples keep it readable, not fast.
"""

import math

import numpy as np


def _activation(name, t):
    if name == "sigmoid":
        return 1.0 / (1.0 + math.exp(-t))
    if name == "tanh":
        return math.tanh(t)
    if name == "relu":
        return max(t, 0.0)
    raise ValueError(name)


def network(positions, masses, z, activation, scaling):
    """F(z), shape (C,), for one input z."""
    d = len(z)
    out = np.zeros(positions.shape[1] - d)
    for i, particle in enumerate(positions):
        coef = masses[i] if scaling == "mean_field" else 1.0
        pre = sum(particle[k] * z[k] for k in range(d))
        out += coef * _activation(activation, pre) * particle[d:]
    return out


def oracle_loss(positions, masses, inputs, targets, activation, scaling, loss):
    """The loss of the network on (inputs, targets)."""
    total = 0.0
    for b, z in enumerate(inputs):
        f = network(positions, masses, z, activation, scaling)
        if loss == "mse":
            y = np.atleast_1d(targets[b])
            total += sum((f[c] - y[c]) ** 2 for c in range(len(f))) / len(f)
        else:
            top = max(f)
            log_norm = top + math.log(sum(math.exp(v - top) for v in f))
            total += log_norm - f[int(targets[b])]
    return total / len(inputs)
