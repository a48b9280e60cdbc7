"""Registries of the scenario sections besides [kernel] and [[observers]]: data kinds, cloud
shapes, optimizers and schedules.

Each entry owns the keys its section takes when the section's selector names it
(``data.kind``, ``init.shape``, ``optimizer.name``, ``schedule.kind``), their defaults and
checks, and the builder of the object; the built-in entries register in
:mod:`particledyn.scenario.builtin_sections`, a plugin like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .registry import Entry, Registry

__all__ = [
    "DataKind",
    "CloudShape",
    "OptimizerType",
    "ScheduleType",
    "DATA_KINDS",
    "CLOUD_SHAPES",
    "OPTIMIZERS",
    "SCHEDULES",
]


@dataclass(frozen=True)
class DataKind(Entry):
    """A ``data.kind``: ``build(section) -> Dataset`` from the resolved ``[data]`` section.

    ``labels``: its targets are class labels (the default loss is then cross-entropy).
    ``size(section) -> (d_in, d_out, key, bytes)``: the input and output dimensions and a lower
    bound of the data set's bytes with the key that drives it, for the memory check before
    anything is built (None: not known before building; the check then skips the data).
    """

    build: Callable[[dict], Any]
    labels: bool = False
    size: Callable[[dict], tuple[int, int, str, int]] | None = None


@dataclass(frozen=True)
class CloudShape(Entry):
    """An ``init.shape``: ``build(section, dim) -> ndarray (N, dim)`` from the resolved ``[init]``.

    ``native(section)`` is the dimension it is sampled in (None: it decides while building).
    ``rows``: ``build(section, dim, (lo, hi))`` builds points ``lo..hi-1`` alone, equal to those
    of the whole cloud (what an MPI rank builds of the start; otherwise it builds all and cuts).
    """

    build: Callable[..., Any]
    native: Callable[[dict], int | None] = lambda section: None
    rows: bool = False


@dataclass(frozen=True)
class OptimizerType(Entry):
    """An ``optimizer.name``: ``build(section) -> Optimizer`` from the resolved ``[optimizer]``;
    ``state_copies``: arrays of the particles' shape its state holds (for the memory check)."""

    build: Callable[[dict], Any]
    state_copies: int = 0


@dataclass(frozen=True)
class ScheduleType(Entry):
    """A ``schedule.kind``: ``build(section) -> Schedule`` (ValueError on values that do not fit)."""

    build: Callable[[dict], Any]


DATA_KINDS: Registry[DataKind] = Registry("data.kind", "data kind")
CLOUD_SHAPES: Registry[CloudShape] = Registry("init.shape", "cloud shape")
OPTIMIZERS: Registry[OptimizerType] = Registry("optimizer.name", "optimizer")
SCHEDULES: Registry[ScheduleType] = Registry("schedule.kind", "schedule")
