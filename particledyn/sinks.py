"""Sinks: where a simulation's frames, observables and checkpoints go.

The loop talks to a sink through five calls. :class:`MemorySink` keeps
everything in Python lists (the default of the API); the HDF5 sink in
:mod:`particledyn.io` streams the same calls to an H5MD file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class Sink:
    """Protocol of a destination for simulation output."""

    def write_frame(
        self, step: int, time: float, positions: np.ndarray, optimizer_state: Mapping[str, np.ndarray]
    ) -> None:
        """Record particle positions (and per-particle optimizer state) at ``step``."""

    def describe_observer(self, name: str, description: Mapping[str, Any]) -> None:
        """Note what observer ``name`` is (its
        :meth:`~particledyn.observers.Observer.description`: type, class, every, options);
        called once per observer before its first values."""

    def write_observables(self, name: str, step: int, time: float, values: Mapping[str, Any]) -> None:
        """Record one observer's values at ``step``."""

    def write_checkpoint(self, checkpoint: Mapping[str, Any]) -> None:
        """Persist everything needed to resume exactly (see ``Simulation.checkpoint``)."""

    def close(self, finished: bool) -> None:
        """Flush and close; ``finished`` says whether the run reached its last step."""


class MemorySink(Sink):
    """Keeps frames and observables in memory.

    Attributes
    ----------
    steps : list of int
        Steps of the stored frames.
    frames : list of ndarray
        Copies of the positions at those steps.
    observables : dict
        ``observables[name][key]`` is a list of values; ``observables[name]['step']``
        the steps they were taken at.
    descriptions : dict
        ``descriptions[name]``: what :meth:`describe_observer` was told of observer ``name``.
    """

    def __init__(self, keep_frames: bool = True):
        self.keep_frames = keep_frames
        self.steps: list[int] = []
        self.frames: list[np.ndarray] = []
        self.observables: dict[str, dict[str, list]] = {}
        self.descriptions: dict[str, dict[str, Any]] = {}
        self.checkpoint: Mapping[str, Any] | None = None
        self.finished = False

    def write_frame(self, step, time, positions, optimizer_state):
        if self.keep_frames:
            self.steps.append(int(step))
            self.frames.append(np.array(positions, copy=True))

    def describe_observer(self, name, description):
        self.descriptions[name] = dict(description)

    def write_observables(self, name, step, time, values):
        table = self.observables.setdefault(name, {"step": [], "time": []})
        table["step"].append(int(step))
        table["time"].append(float(time))
        for key, value in values.items():
            table.setdefault(key, []).append(value)

    def write_checkpoint(self, checkpoint):
        self.checkpoint = checkpoint

    def close(self, finished):
        self.finished = bool(finished)

    def series(self, name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps and stacked values of one observable key."""
        table = self.observables[name]
        return np.asarray(table["step"]), np.asarray(table[key])
