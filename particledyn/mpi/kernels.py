"""Kernels in DeepSets form, sharded: each rank sums its particles' part of the aggregate,
the ranks add the parts (:func:`~particledyn.mpi.comm.rank_order_sum`), and each rank applies
the aggregate to its own particles.

A kernel is in DeepSets form when its field is U_i = psi(x_i, A) with A = sum_j m_j phi(x_j),
one sum over all particles. Supported:

* :class:`~particledyn.kernels.TwoLayerNet` (both scalings): A = F, the network outputs on the
  step's batch; the loss, test loss and accuracy follow from F too (sharded).
* :class:`~particledyn.DeepSetsKernel` (and plugin kernels built from it): A = sum m_j phi(x_j);
  its loss is a Python function of all positions, so the loss observer is gathered.
* any kernel with ``aggregate(positions, masses, context)`` and
  ``field_given_aggregate(positions, masses, context, aggregate)`` (optionally
  ``loss_given_aggregate(aggregate, context)``).

Anything else (``multi_layer``: one sum per layer, each depending on the last;
``task_switching``) is refused by :func:`deepsets_form`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernel import Kernel
from .comm import rank_order_sum

__all__ = ["DeepSetsForm", "deepsets_form", "ShardedKernel", "NotShardable"]


class NotShardable(ValueError):
    """The kernel is not in DeepSets form (one-line message)."""


class DeepSetsForm:
    """A kernel seen as (aggregate, field given the aggregate[, loss given the aggregate]).

    Attributes
    ----------
    kernel : Kernel
    sharded_loss : bool
        Whether the loss (and test loss, accuracy) follow from the aggregate alone.
    """

    sharded_loss = False

    def __init__(self, kernel: Any):
        self.kernel = kernel

    def aggregate(self, positions, masses, context) -> np.ndarray:
        return self.kernel.aggregate(positions, masses, context)

    def field_given_aggregate(self, positions, masses, context, aggregate) -> np.ndarray:
        return self.kernel.field_given_aggregate(positions, masses, context, aggregate)

    def loss_given_aggregate(self, aggregate, context) -> float:
        return float(self.kernel.loss_given_aggregate(aggregate, context))


class _ProtocolForm(DeepSetsForm):
    def __init__(self, kernel):
        super().__init__(kernel)
        self.sharded_loss = hasattr(kernel, "loss_given_aggregate")


class _TwoLayerForm(DeepSetsForm):
    """A = F (B x C), the outputs on the context's inputs."""

    sharded_loss = True

    def aggregate(self, positions, masses, context):
        return self.kernel.outputs(positions, masses, context[0])

    def field_given_aggregate(self, positions, masses, context, aggregate):
        inputs, targets = context
        return self.kernel.field_given_outputs(positions, inputs, targets, aggregate)

    def loss_given_aggregate(self, aggregate, context):
        from ..kernels.two_layer_reference import loss_and_output_gradient

        return float(loss_and_output_gradient(aggregate, context[1], self.kernel.loss_name)[0])


def deepsets_form(kernel: Kernel, kind: str | None = None) -> DeepSetsForm:
    """The DeepSets view of ``kernel``.

    Raises
    ------
    NotShardable
        The kernel is not one sum over its particles (``multi_layer``, ``task_switching``).
    """
    from ..kernels import TwoLayerNet

    if isinstance(kernel, TwoLayerNet):
        return _TwoLayerForm(kernel)
    if callable(getattr(kernel, "aggregate", None)) and callable(
        getattr(kernel, "field_given_aggregate", None)
    ):
        return _ProtocolForm(kernel)
    label = f'kernel.kind = "{kind}"' if kind else f"kernel {type(kernel).__name__}"
    raise NotShardable(
        f"{label} with --mpi: expected a kernel in DeepSets form (two_layer, a DeepSetsKernel, or one "
        f"with aggregate() and field_given_aggregate()); {type(kernel).__name__} is not one sum "
        "over its particles, run it without --mpi"
    )


class ShardedKernel(Kernel):
    """The per-rank view of a kernel in DeepSets form whose particles are split over ``comm``.

    ``field``, ``loss``, ``test_loss`` and ``accuracy`` are collective: every rank calls them at
    the same step with its own block of positions and (global) masses.
    """

    def __init__(self, form: DeepSetsForm, comm):
        self.form, self.base, self.comm = form, form.kernel, comm
        self.dim, self.name = self.base.dim, self.base.name
        self.is_gradient = self.base.is_gradient
        self.test_inputs = getattr(self.base, "test_inputs", None)
        self.test_targets = getattr(self.base, "test_targets", None)

    def context(self, step, rng, batch_size):
        return self.base.context(step, rng, batch_size)

    def evaluation_context(self):
        return self.base.evaluation_context()

    def draws_context(self, batch_size):
        return self.base.draws_context(batch_size)

    def describe(self):
        return self.base.describe()

    def aggregate(self, positions, masses, context) -> np.ndarray:
        """The aggregate over every rank's particles, the same bits on every rank."""
        return rank_order_sum(self.comm, self.form.aggregate(positions, masses, context))

    def field(self, positions, masses, context):
        total = self.aggregate(positions, masses, context)
        return self.form.field_given_aggregate(positions, masses, context, total)

    def loss(self, positions, masses, context) -> float:
        if not self.form.sharded_loss:
            raise NotImplementedError(f"{self.name}: the loss does not follow from the aggregate")
        return self.form.loss_given_aggregate(self.aggregate(positions, masses, context), context)

    def test_loss(self, positions, masses) -> float:
        if self.test_inputs is None:
            return float("nan")
        return self.loss(positions, masses, (self.test_inputs, self.test_targets))

    def accuracy(self, positions, masses, inputs, labels) -> float:
        outputs: Any = self.aggregate(positions, masses, (inputs, None))
        return float(np.mean(np.argmax(outputs, axis=1) == labels))
