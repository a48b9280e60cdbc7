"""The scenario's observers in a sharded run: each is either sharded or gathered to rank 0.

* Sharded: the loss observer of a kernel whose loss follows from the aggregate (two_layer):
  every rank runs it on its own block; the loss, test loss and accuracy come from the
  reduced aggregate, the same value on every rank. Cost: one aggregate reduction per value.
* Gathered (every other observer, plugins included): at each call the positions (and the
  previous positions, update and field for an observer that needs the step, and the
  optimizer state for one that reads a preconditioner) are gathered to rank 0
  (``Gatherv``), which runs the observer on the whole cloud with the unsharded kernel;
  its values are broadcast so that every rank judges divergence alike. Cost per call: rank 0
  receives N x D numbers per gathered array and runs the observer alone.

No observer is dropped: :func:`shard_observers` wraps each, and :func:`describe_plan`
says which is which and what it costs (the run prints it on rank 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..observers import LossObserver, Observer, StepInfo
from .comm import agree, gather_rows

__all__ = ["GatheredObserver", "shard_observers", "describe_plan"]


@dataclass
class _FullState:
    positions: np.ndarray
    masses: np.ndarray
    optimizer_state: dict
    step: int
    time: float
    seed: int


class _FullView:
    """What a gathered observer sees as ``info.simulation`` on rank 0: the unsharded kernel,
    the optimizer and the gathered state, on the host backend."""

    def __init__(self, kernel, optimizer, state: _FullState):
        from ..backends import get_backend

        self.kernel, self.optimizer, self.state = kernel, optimizer, state
        self.backend = get_backend("numba")


class GatheredObserver(Observer):
    """Runs ``inner`` on rank 0 on the gathered cloud; its values go to every rank (collective)."""

    def __init__(self, inner: Observer, comm, base_kernel):
        self.inner, self.comm, self.base_kernel = inner, comm, base_kernel
        self.name, self.every = inner.name, inner.every
        self.needs_previous = inner.needs_previous
        self.divergence_keys = tuple(getattr(inner, "divergence_keys", ()))
        self.root = comm.Get_rank() == 0
        self.needs_state = False
        self._masses: np.ndarray | None = None
        self._have_masses = False  # masses do not change: gathered once (rank 0 keeps them)

    def wants(self, step):
        return self.inner.wants(step)

    def description(self):
        return self.inner.description()

    def recorded_options(self):
        return self.inner.recorded_options()

    def _view(self, simulation) -> _FullView | None:
        """The gathered state of ``simulation`` (collective); None off rank 0."""
        comm, state = self.comm, simulation.state
        if not self._have_masses:
            self._masses, self._have_masses = gather_rows(comm, state.masses), True
        positions = gather_rows(comm, state.positions)
        optimizer_state = {}
        if self.needs_state:
            optimizer_state = {k: gather_rows(comm, v) for k, v in state.optimizer_state.items()}
        if positions is None or self._masses is None:  # not rank 0
            return None
        full = _FullState(positions, self._masses, optimizer_state, state.step, state.time, state.seed)
        return _FullView(self.base_kernel, simulation.optimizer, full)

    def start(self, simulation):
        view = self._view(simulation)

        def start():
            if view is not None:
                self.inner.start(view)
                # an observer that reads the optimizer state (Adam's preconditioner) gets it gathered
                return getattr(self.inner, "preconditioner", None) is not None
            return False

        self.needs_state = bool(self.comm.bcast(agree(self.comm, start), root=0))

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        view = self._view(info.simulation)
        moved = info.previous_positions is not None
        gathered = {}
        for key in ("previous_positions", "update", "field"):
            value = getattr(info, key)
            gathered[key] = gather_rows(self.comm, value) if moved else None

        def observe():
            if view is None:
                return None
            full = StepInfo(
                step=info.step,
                time=info.time,
                positions=view.state.positions,
                masses=view.state.masses,
                lr=info.lr,
                simulation=view,
                **gathered,
            )
            return dict(self.inner.observe(full))

        return self.comm.bcast(agree(self.comm, observe), root=0)

    def finish(self, simulation):
        view = self._view(simulation)
        agree(self.comm, lambda: None if view is None else self.inner.finish(view))

    def state_dict(self):
        return self.inner.state_dict() if self.root else {}

    def load_state_dict(self, state):
        if self.root:
            self.inner.load_state_dict(state)


def _sharded(observer: Observer, form) -> bool:
    return type(observer) is LossObserver and form.sharded_loss


def shard_observers(observers, form, comm) -> list[Observer]:
    """The observers of a sharded run: the loss sharded where it can be, the others gathered."""
    return [o if _sharded(o, form) else GatheredObserver(o, comm, form.kernel) for o in observers]


def describe_plan(observers, n: int, dim: int, itemsize: int) -> str:
    """One line: which observers are sharded, which gathered, and what a gathered call costs."""
    sharded = [o.name for o in observers if not isinstance(o, GatheredObserver)]
    mb = n * dim * itemsize / 2**20
    gathered = []
    for o in observers:
        if isinstance(o, GatheredObserver):
            arrays = 4 if o.needs_previous else 1
            gathered.append(f"{o.name} (every {o.every}: {arrays} x {mb:.3g} MiB to rank 0, run there)")
    return (
        f"observers sharded: {', '.join(sharded) or 'none'}; "
        f"gathered to rank 0: {', '.join(gathered) or 'none'}"
    )
