"""Kernel registry of scenario files: ``[kernel] kind = "two_layer"`` -> a Kernel.

Each :class:`KernelType` documents its ``[kernel]`` keys and builds the kernel
from the resolved section and the data set. Another kernel (e.g. a multi-layer
net) registers itself with :func:`register_kernel`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .checks import REQUIRED, Bool, Choice, Custom, Derived, Int, Key, ScenarioError

CLASSIFICATION_DATA = ("digits", "mnist")


@dataclass(frozen=True)
class KernelType:
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

    name: str
    summary: str
    options: tuple[Key, ...]
    build: Callable[[dict, Any], Any]


KERNEL_TYPES: dict[str, KernelType] = {}


def register_kernel(kernel_type: KernelType) -> KernelType:
    """Add (or replace) a kernel type; returns it."""
    KERNEL_TYPES[kernel_type.name] = kernel_type
    return kernel_type


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


def _build_two_layer(options: dict, dataset):
    from particledyn.kernels import TwoLayerNet

    y_train, y_test, n_outputs = kernel_targets(dataset, options["loss"])
    return TwoLayerNet(dataset.z_train, y_train, activation=options["activation"], loss=options["loss"],
                       scaling=options["scaling"], n_outputs=n_outputs,
                       test_inputs=dataset.z_test, test_targets=y_test)


def _default_loss(resolved: dict) -> str:
    return "cross_entropy" if resolved["data"]["kind"] in CLASSIFICATION_DATA else "mse"


register_kernel(KernelType(
    name="two_layer",
    summary="two-layer network F(z) = sum_i c_i a_i act(<w_i, z>); neuron x_i = (w_i, a_i), "
            "D = input dimension + number of outputs",
    options=(
        Key("kernel.activation", Choice(("sigmoid", "tanh", "relu")), "Hidden activation.", "sigmoid"),
        Key("kernel.loss", Choice(("mse", "cross_entropy")),
            "Training loss; class labels become one-hot targets under mse.",
            Derived('"cross_entropy" for digits and mnist, else "mse"', _default_loss)),
        Key("kernel.scaling", Choice(("standard", "mean_field")),
            'Output scaling: "standard" sums the neurons, "mean_field" averages them with the masses '
            "(and the field is per unit mass).", "standard"),
    ),
    build=_build_two_layer,
))


def _layers(value):
    from .checks import Invalid

    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise Invalid("expected a non-empty array of block sizes, integers >= 1 (N_1, ..., N_L)")
    return [int(v) for v in value]


def _build_multi_layer(options: dict, dataset):
    from particledyn.kernels import MultiLayerNet

    y_train, y_test, n_outputs = kernel_targets(dataset, "mse")
    if n_outputs != 1:
        raise ScenarioError(f'kernel.kind = "multi_layer": expected one real target per sample, '
                            f'got {n_outputs} outputs from data.kind = "{dataset.name}"')
    return MultiLayerNet(dataset.z_train, y_train, tuple(options["layers"]),
                         activation=options["activation"], scaling=options["scaling"],
                         test_inputs=dataset.z_test, test_targets=y_test)


register_kernel(KernelType(
    name="multi_layer",
    summary="multi-layer scalar network h_l = sum_{i in block l} c_i a_i act(w_i h_{l-1}), d = 1; "
            "neuron (w_i, a_i) in R^2, one particle group per block (init.n = sum of kernel.layers)",
    options=(
        Key("kernel.layers", Custom("an array of block sizes", _layers),
            "Block sizes (N_1, ..., N_L) from the input on; rows of the initial cloud fill the "
            "blocks in order, so init.n must equal their sum.", REQUIRED),
        Key("kernel.activation", Choice(("sigmoid", "tanh", "relu")), "Hidden activation.", "sigmoid"),
        Key("kernel.scaling", Choice(("standard", "mean_field")),
            'Output scaling: "standard" sums the neurons of a block, "mean_field" averages them.',
            "standard"),
    ),
    build=_build_multi_layer,
))


def _build_task_switching(options: dict, dataset):
    from particledyn.kernels.task_switching import TaskSwitchingNet

    if dataset.name != "linear_teacher_task":
        raise ScenarioError(f'kernel.kind = "task_switching": expected data.kind = "linear_teacher_task" '
                            f'(its task_index is the first task), got "{dataset.name}"')
    info = dataset.info
    return TaskSwitchingNet(options["epoch_steps"], d_in=dataset.input_dim, d_out=dataset.y_train.shape[1],
                            n_train=dataset.n_train, n_eval=dataset.n_test, seed=int(info["seed"]),
                            first_task=int(info["task_index"]), activation=options["activation"],
                            scaling=options["scaling"], hidden_bias=options["hidden_bias"])


register_kernel(KernelType(
    name="task_switching",
    summary="two-layer net (MSE) on a new random linear teacher every kernel.epoch_steps steps "
            "(loss of plasticity, Appendix C.3); data.kind must be linear_teacher_task",
    options=(
        Key("kernel.epoch_steps", Int(1, 2**62), "Updates per task: the teacher and the data are "
            "resampled (task data.task_index + step // epoch_steps) every this many steps.", REQUIRED),
        Key("kernel.activation", Choice(("sigmoid", "tanh", "relu")), "Hidden activation.", "sigmoid"),
        Key("kernel.scaling", Choice(("standard", "mean_field")),
            'Output scaling: "standard" sums the neurons, "mean_field" averages them.', "standard"),
        Key("kernel.hidden_bias", Bool(), "A hidden bias per neuron (a constant input 1, as "
            "PyTorch's nn.Linear): D = d_in + 1 + d_out.", False),
    ),
    build=_build_task_switching,
))


def output_columns(kernel) -> list[int]:
    """Columns of a neuron that hold its output weights (the last ``n_outputs`` of D)."""
    n_outputs = int(getattr(kernel, "n_outputs", 1))
    return list(np.arange(kernel.dim - n_outputs, kernel.dim))
