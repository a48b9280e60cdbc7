"""Plain-numpy activations: the reference the fast numba versions are tested against."""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def activation_reference(name: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value, first and second derivative of activation ``name`` at ``t``.

    Parameters
    ----------
    name : {"sigmoid", "tanh", "relu"}
    t : ndarray

    Returns
    -------
    value, derivative, second_derivative : ndarray
    """
    if name == "sigmoid":
        s = expit(t)
        ds = s * (1.0 - s)
        return s, ds, ds * (1.0 - 2.0 * s)
    if name == "tanh":
        th = np.tanh(t)
        dth = 1.0 - th * th
        return th, dth, -2.0 * th * dth
    if name == "relu":
        positive = t > 0
        return np.where(positive, t, 0.0), positive.astype(t.dtype), np.zeros_like(t)
    raise ValueError(f"activation={name!r}: expected one of 'sigmoid', 'tanh', 'relu'")
