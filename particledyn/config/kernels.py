"""Kernel registry of scenario files: ``[kernel] kind = "two_layer"`` -> a Kernel.

Each :class:`KernelType` documents its ``[kernel]`` keys and builds the kernel
from the resolved section and the data set. The built-in kernels register in
:mod:`particledyn.config.builtin_kernels`, a plugin like any other (see
:mod:`particledyn.plugins`); a user's kernel registers with :func:`register_kernel`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .checks import ScenarioError
from .registry import Entry, Registry

CLASSIFICATION_DATA = ("digits", "mnist")


@dataclass(frozen=True)
class KernelType(Entry):
    """A kernel a scenario can name.

    Attributes
    ----------
    name : str
        The value of ``kernel.kind``.
    summary : str
        One line for ``particledyn keys``.
    options : tuple of Key
        The ``[kernel]`` keys it takes (paths ``kernel.<option>``).
    build : callable
        ``build(options, dataset) -> Kernel`` with the resolved ``[kernel]``
        section (a dict) and the :class:`particledyn.data.Dataset`.
    """

    build: Callable[[dict, Any], Any]


#: The kernels ``kernel.kind`` names.
KERNELS: Registry[KernelType] = Registry("kernel.kind", "kernel")
KERNEL_TYPES = KERNELS  # the older name


def register_kernel(kernel_type: KernelType, replace: bool = False) -> KernelType:
    """Add a kernel type; returns it (ValueError when its name is taken, unless ``replace``)."""
    return KERNELS.register(kernel_type, replace=replace)


def kernel_targets(dataset, loss: str):
    """Training and test targets as a kernel expects them, and the number of outputs.

    Class labels stay labels for cross-entropy and become one-hot rows for MSE;
    real targets are used as they are (cross-entropy on them is refused).
    """
    from particledyn.data import one_hot

    y_train, y_test = dataset.y_train, dataset.y_test
    if y_train.dtype.kind in "iu":
        n_classes = int(dataset.info.get("n_classes", int(y_train.max()) + 1))
        if loss == "mse":
            return one_hot(y_train, n_classes), one_hot(y_test, n_classes), n_classes
        return y_train, y_test, n_classes
    if loss == "cross_entropy":
        raise ScenarioError(f'kernel.loss = "cross_entropy": expected "mse" for data.kind = '
                            f'"{dataset.name}" (real-valued targets)')
    return y_train, y_test, 1 if y_train.ndim == 1 else y_train.shape[1]


def output_columns(kernel) -> list[int]:
    """Columns of a neuron that hold its output weights (the last ``n_outputs`` of D)."""
    n_outputs = int(getattr(kernel, "n_outputs", 1))
    return list(np.arange(kernel.dim - n_outputs, kernel.dim))
