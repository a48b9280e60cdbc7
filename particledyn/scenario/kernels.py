"""Kernel registry of scenario files: ``[kernel] kind = "two_layer"`` -> a Kernel.

Each :class:`KernelType` documents its ``[kernel]`` keys and builds the kernel
from the resolved section and the data set. The built-in kernels register in
:mod:`particledyn.scenario.builtin_kernels`, a plugin like any other (see
:mod:`particledyn.plugins`); a user's kernel registers with :func:`register_kernel`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .checks import ScenarioError
from .registry import Entry, Registry

if TYPE_CHECKING:
    from .resolved import ResolvedScenario


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
    check : callable, optional
        ``check(resolved)``: the kernel's checks across sections (ScenarioError), run when
        a scenario is validated, before anything is built.
    dim : callable, optional
        ``dim(options, d_in, d_out) -> D``, the particle dimension from the data's input and
        output dimensions, for the memory check (None: the check skips the particles).
    """

    build: Callable[[dict, Any], Any]
    check: Callable[[ResolvedScenario], None] | None = None
    dim: Callable[[dict, int, int], int] | None = None


#: The kernels ``kernel.kind`` names.
KERNELS: Registry[KernelType] = Registry("kernel.kind", "kernel")
KERNEL_TYPES = KERNELS  # the older name


def register_kernel(kernel_type: KernelType, replace: bool = False) -> KernelType:
    """Add a kernel type; returns it (ValueError when its name is taken, unless ``replace``)."""
    return KERNELS.register(kernel_type, replace=replace, origin=sys._getframe(1).f_globals.get("__name__"))


def has_labels(data_kind: str) -> bool:
    """Whether a data kind's targets are class labels."""
    from .sections import DATA_KINDS

    return DATA_KINDS.get_entry(data_kind).labels


def check_loss(loss: str, data_kind: str) -> None:
    """Refuse cross-entropy on a data kind without class labels (ScenarioError)."""
    if loss == "cross_entropy" and not has_labels(data_kind):
        raise ScenarioError(
            f'kernel.loss = "cross_entropy": expected "mse" for data.kind = "{data_kind}" '
            "(real-valued targets)"
        )


def kernel_targets(dataset, loss: str):
    """Training and test targets as a kernel expects them, and the number of outputs.

    Class labels stay labels for cross-entropy and become one-hot rows for MSE;
    real targets are used as they are (cross-entropy on them is refused: :func:`check_loss`).
    """
    from particledyn.data import one_hot

    y_train, y_test = dataset.y_train, dataset.y_test
    if y_train.dtype.kind in "iu":
        n_classes = int(dataset.info.get("n_classes", int(y_train.max()) + 1))
        if loss == "mse":
            return one_hot(y_train, n_classes), one_hot(y_test, n_classes), n_classes
        return y_train, y_test, n_classes
    check_loss(loss, dataset.name)
    return y_train, y_test, 1 if y_train.ndim == 1 else y_train.shape[1]


def output_columns(kernel) -> list[int]:
    """Columns of a neuron that hold its output weights (the last ``n_outputs`` of D)."""
    n_outputs = int(getattr(kernel, "n_outputs", 1))
    return list(np.arange(kernel.dim - n_outputs, kernel.dim))
