"""The built-in kernels of scenario files, registered as a plugin (entry point ``kernels``).

Each :class:`~particledyn.scenario.kernels.KernelType` here documents its ``[kernel]`` keys
and builds the kernel from the resolved section and the data set.
"""

from __future__ import annotations

from ..activations import NAMES as ACTIVATION_NAMES
from .checks import REQUIRED, Bool, Choice, Custom, Derived, Int, Invalid, Key, ScenarioError, show
from .kernels import KernelType, check_loss, has_labels, kernel_targets, register_kernel


def _build_two_layer(options: dict, dataset):
    from particledyn.kernels import TwoLayerNet

    y_train, y_test, n_outputs = kernel_targets(dataset, options["loss"])
    return TwoLayerNet(
        dataset.z_train,
        y_train,
        activation=options["activation"],
        loss=options["loss"],
        scaling=options["scaling"],
        n_outputs=n_outputs,
        test_inputs=dataset.z_test,
        test_targets=y_test,
    )


def _default_loss(done) -> str:
    return "cross_entropy" if has_labels(done.data.kind) else "mse"


def _check_loss(resolved) -> None:
    check_loss(resolved.kernel.loss, resolved.data.kind)


def _check_blocks(resolved) -> None:
    layers, n = resolved.kernel.layers, getattr(resolved.init, "n", None)
    if n is not None and n != sum(layers):
        raise ScenarioError(
            f"init.n = {n}: expected the sum of kernel.layers = {sum(layers)} (one particle "
            f"per neuron of {show(layers)})"
        )


register_kernel(
    KernelType(
        name="two_layer",
        summary="two-layer network F(z) = sum_i c_i a_i act(<w_i, z>); neuron x_i = (w_i, a_i), "
        "D = input dimension + number of outputs",
        options=(
            Key("kernel.activation", Choice(ACTIVATION_NAMES), "Hidden activation.", "sigmoid"),
            Key(
                "kernel.loss",
                Choice(("mse", "cross_entropy")),
                "Training loss; class labels become one-hot targets under mse.",
                Derived(
                    '"cross_entropy" for data with class labels (digits, mnist), else "mse"', _default_loss
                ),
            ),
            Key(
                "kernel.scaling",
                Choice(("standard", "mean_field")),
                'Output scaling: "standard" sums the neurons, "mean_field" averages them with the masses '
                "(and the field is per unit mass).",
                "standard",
            ),
        ),
        build=_build_two_layer,
        check=_check_loss,
        dim=lambda options, d_in, d_out: d_in + d_out,
    )
)


def _layers(value):
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise Invalid("expected a non-empty array of block sizes, integers >= 1 (N_1, ..., N_L)")
    return [int(v) for v in value]


def _build_multi_layer(options: dict, dataset):
    from particledyn.kernels import MultiLayerNet

    y_train, y_test, n_outputs = kernel_targets(dataset, "mse")
    if n_outputs != 1:
        raise ScenarioError(
            f'kernel.kind = "multi_layer": expected one real target per sample, '
            f'got {n_outputs} outputs from data.kind = "{dataset.name}"'
        )
    return MultiLayerNet(
        dataset.z_train,
        y_train,
        tuple(options["layers"]),
        activation=options["activation"],
        scaling=options["scaling"],
        test_inputs=dataset.z_test,
        test_targets=y_test,
    )


register_kernel(
    KernelType(
        name="multi_layer",
        summary="multi-layer scalar network h_l = sum_{i in block l} c_i a_i act(w_i h_{l-1}), d = 1; "
        "neuron (w_i, a_i) in R^2, one particle group per block (init.n = sum of kernel.layers)",
        options=(
            Key(
                "kernel.layers",
                Custom("an array of block sizes", _layers, "tuple[int, ...]"),
                "Block sizes (N_1, ..., N_L) from the input on; rows of the initial cloud fill the "
                "blocks in order, so init.n must equal their sum.",
                REQUIRED,
            ),
            Key("kernel.activation", Choice(ACTIVATION_NAMES), "Hidden activation.", "sigmoid"),
            Key(
                "kernel.scaling",
                Choice(("standard", "mean_field")),
                'Output scaling: "standard" sums the neurons of a block, "mean_field" averages them.',
                "standard",
            ),
        ),
        build=_build_multi_layer,
        check=_check_blocks,
        dim=lambda options, d_in, d_out: 2,
    )
)


def _build_task_switching(options: dict, dataset):
    from particledyn.kernels.task_switching import TaskSwitchingNet

    if dataset.name != "linear_teacher_task":
        raise ScenarioError(
            f'kernel.kind = "task_switching": expected data.kind = "linear_teacher_task" '
            f'(its task_index is the first task), got "{dataset.name}"'
        )
    info = dataset.info
    return TaskSwitchingNet(
        options["epoch_steps"],
        d_in=dataset.input_dim,
        d_out=dataset.y_train.shape[1],
        n_train=dataset.n_train,
        n_eval=dataset.n_test,
        seed=int(info["seed"]),
        first_task=int(info["task_index"]),
        activation=options["activation"],
        scaling=options["scaling"],
        hidden_bias=options["hidden_bias"],
    )


register_kernel(
    KernelType(
        name="task_switching",
        summary="two-layer net (MSE) on a new random linear teacher every kernel.epoch_steps steps "
        "(loss of plasticity, Appendix C.3); data.kind must be linear_teacher_task",
        options=(
            Key(
                "kernel.epoch_steps",
                Int(1, 2**62),
                "Updates per task: the teacher and the data are "
                "resampled (task data.task_index + step // epoch_steps) every this many steps.",
                REQUIRED,
            ),
            Key("kernel.activation", Choice(ACTIVATION_NAMES), "Hidden activation.", "sigmoid"),
            Key(
                "kernel.scaling",
                Choice(("standard", "mean_field")),
                'Output scaling: "standard" sums the neurons, "mean_field" averages them.',
                "standard",
            ),
            Key(
                "kernel.hidden_bias",
                Bool(),
                "A hidden bias per neuron (a constant input 1, as "
                "PyTorch's nn.Linear): D = d_in + 1 + d_out.",
                False,
            ),
        ),
        build=_build_task_switching,
        dim=lambda options, d_in, d_out: d_in + d_out + int(options["hidden_bias"]),
    )
)
