"""Observers: diagnostics and writers that the simulation loop calls on a cadence.

The loop owns stepping; an observer only looks. Every ``every`` steps the loop
hands each observer a :class:`StepInfo` and stores the dictionary it returns as
the observable ``observables/<observer.name>/<key>`` at that step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class StepInfo:
    """What an observer sees after a step.

    Attributes
    ----------
    step : int
        Step counter of ``positions`` (0 is the initial state, before any update).
    time : float
        Integrated time, the sum of learning rates used so far.
    positions : ndarray, shape (N, D)
        Current positions x(t). Read-only by convention: never modify in place.
    masses : ndarray, shape (N,)
        Per-particle masses (sum to the number of particle groups; 1 per group).
    previous_positions : ndarray or None
        x(t-1), given when the observer sets ``needs_previous = True`` and step > 0.
    update : ndarray or None
        The update direction U(t-1) that took x(t-1) to x(t) = x(t-1) + lr * U(t-1)
        (after the optimizer; so for GD it is the negative gradient), same
        condition as ``previous_positions``.
    field : ndarray or None
        The kernel's raw field (negative loss gradient for gradient kernels) at
        x(t-1), same condition.
    lr : float
        Learning rate used for the step into x(t) (the schedule's value at t-1),
        or the schedule's value at 0 when step == 0.
    simulation : Any
        The running :class:`particledyn.Simulation` (kernel, optimizer, state),
        for observers that need more (e.g. Hessian-vector products).
    """

    step: int
    time: float
    positions: np.ndarray
    masses: np.ndarray
    lr: float
    previous_positions: np.ndarray | None = None
    update: np.ndarray | None = None
    field: np.ndarray | None = None
    simulation: Any = None


class ObserverError(RuntimeError):
    """An observer raised at ``step``: names the observer and the original error."""

    def __init__(self, name: str, step: int, error: BaseException):
        self.name, self.step, self.error = name, int(step), error
        super().__init__(
            f"observer {name!r} failed at step {step}: {type(error).__name__}: {' '.join(str(error).split())}"
        )


class Observer:
    """Base class of everything the loop calls on a cadence.

    Subclasses set ``name`` (the HDF5 group under ``observables/``), accept
    ``every`` (cadence in steps, >= 1) and implement :meth:`observe`.

    The class attribute ``name`` is also the observer's *type*: an instance may
    be renamed (``observer.name = "betti_fine"``, a scenario's ``name = ...``)
    and keeps its type, which :meth:`description` reports and the run file
    stores beside the data, so the verdict, the figures and sweep tables find it.
    Subclasses list the settings that say what they measure in
    :meth:`recorded_options`.

    ``observe`` returns a mapping from key to value, each value a Python or
    numpy scalar, or a numpy array. A key whose arrays change length between
    calls (a persistence diagram, a list of atom masses) is stored ragged:
    flat rows plus a ``[start, stop)`` index per record.

    ``divergence_keys`` names the keys whose NaN or inf value means the run
    diverged (the loss observer's ``loss``): the loop records the step, then
    raises :class:`~particledyn.DivergenceError`.
    """

    name: str = "observer"
    needs_previous: bool = False
    divergence_keys: tuple[str, ...] = ()

    def __init__(self, every: int = 1):
        if int(every) != every or every < 1:
            raise ValueError(f"every={every!r}: expected a positive integer cadence in steps")
        self.every = int(every)

    def recorded_options(self) -> dict[str, Any]:
        """The settings that say what this observer measures (scale, eps, K source, ...),
        stored with its observables; the base class records none besides ``every``."""
        return {}

    def description(self) -> dict[str, Any]:
        """``type`` (the class's ``name``), ``class`` (module.qualname), ``every`` and
        :meth:`recorded_options`: what a sink stores beside the observables."""
        cls = type(self)
        return {
            "type": str(cls.name),
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "every": self.every,
            **self.recorded_options(),
        }

    def wants(self, step: int) -> bool:
        """Whether this observer runs at ``step``."""
        return step % self.every == 0

    def start(self, simulation: Any) -> None:
        """Called once before the first step (and again after a resume)."""

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        """Measure at one step; return the values to record."""
        raise NotImplementedError

    def finish(self, simulation: Any) -> None:
        """Called once after the last step."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays this observer needs to resume exactly (warm starts, previous diagrams)."""
        return {}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned."""


def start_observer(observer: Observer, simulation: Any, name: str | None = None) -> None:
    """Call ``observer.start(simulation)``; an error there (a setting that cannot apply to
    this run) is raised as :class:`ObserverError` at the simulation's step, as in ``observe``.

    Parameters
    ----------
    observer : Observer
    simulation : Simulation
        The run (for an ensemble, the replica's member) the observer is started on.
    name : str, optional
        The name to report (an ensemble's per-replica name); default ``observer.name``.
    """
    try:
        observer.start(simulation)
    except (ObserverError, MemoryError):
        raise
    except Exception as exc:
        raise ObserverError(name or observer.name, simulation.state.step, exc) from exc


class LossObserver(Observer):
    """Training loss on the full training set, test loss, and accuracies for classifiers.

    Parameters
    ----------
    every : int
        Cadence in steps.
    labels : tuple, optional
        ``(train_inputs, train_labels, test_inputs, test_labels)`` of a
        classification task: adds ``accuracy`` and ``test_accuracy``.

    Records ``loss`` and, when the kernel has held-out data, ``test_loss``.
    """

    name = "loss"
    divergence_keys = ("loss",)

    def __init__(self, every: int = 1, *, labels=None):
        super().__init__(every)
        self.labels = labels
        self._shared_forward = (None, False)  # (kernel, whether the labels' inputs are its data)

    def _labels_on_kernel_data(self, kernel) -> bool:
        """True when the kernel computes loss and accuracy in one forward pass and the labels'
        inputs are its training and test inputs (then each data set's forward runs once)."""
        checked, shared = self._shared_forward
        if checked is not kernel:
            z_train, _, z_test, _ = self.labels
            train_inputs = kernel.evaluation_context()[0]
            test_inputs = getattr(kernel, "test_inputs", None)
            shared = bool(
                hasattr(kernel, "loss_and_accuracy")
                and hasattr(kernel, "test_loss")
                and test_inputs is not None
                and np.array_equal(z_train, train_inputs)
                and np.array_equal(z_test, test_inputs)
            )
            self._shared_forward = (kernel, shared)
        return shared

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        kernel = info.simulation.kernel
        x, m = info.positions, info.masses
        if self.labels is not None and self._labels_on_kernel_data(kernel):
            _, y_train, _, y_test = self.labels
            loss, accuracy = kernel.loss_and_accuracy(x, m, kernel.evaluation_context(), y_train)
            test_loss, test_accuracy = kernel.loss_and_accuracy(
                x, m, (kernel.test_inputs, kernel.test_targets), y_test
            )
            return {
                "loss": loss,
                "test_loss": test_loss,
                "accuracy": accuracy,
                "test_accuracy": test_accuracy,
            }
        values = {"loss": float(kernel.loss(x, m, kernel.evaluation_context()))}
        if getattr(kernel, "test_inputs", None) is not None and hasattr(kernel, "test_loss"):
            values["test_loss"] = float(kernel.test_loss(x, m))
        if self.labels is not None:
            z_train, y_train, z_test, y_test = self.labels
            values["accuracy"] = kernel.accuracy(x, m, z_train, y_train)
            values["test_accuracy"] = kernel.accuracy(x, m, z_test, y_test)
        return values
