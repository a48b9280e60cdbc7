"""The hidden activations, by name: the one list of their names, with their numpy forms.

A scenario's ``kernel.activation`` and ``data.activation`` accept these names, the teacher of
:func:`particledyn.data.teacher_student` uses these functions, and the kernels check names
against :data:`NAMES`. The compiled kernels (``particledyn.kernels.fastmath``, the CUDA kernels) carry
their own code for each name.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["ACTIVATIONS", "NAMES", "check_activation"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # split by sign so exp never overflows
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


#: name -> the activation applied elementwise to a numpy array.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}
NAMES = tuple(ACTIVATIONS)


def check_activation(name) -> str:
    """``name`` if it is an activation, else ValueError naming it and the known ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r}: expected one of {', '.join(map(repr, NAMES))}")
    return name
