"""Observer registry of scenario files: ``[[observers]] type = "betti"`` -> an Observer.

Every entry of ``[[observers]]`` takes ``type``, ``every`` (cadence in steps)
and ``name`` (the HDF5 group, default the type), plus the options its
:class:`ObserverType` documents. The observer classes themselves live in
:mod:`particledyn.geometry.observers` and :mod:`particledyn.topology.observers`
(imported only when a scenario uses them) and :mod:`particledyn.observers`. The
built-in types register in :mod:`particledyn.scenario.builtin_observers`, a plugin like
any other (see :mod:`particledyn.plugins`); add a type with :func:`register_observer`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..observers import Observer
from .registry import Entry, Registry
from .resolved import ResolvedScenario


@dataclass
class BuildContext:
    """What an observer factory may use: the run's kernel, optimizer, data and scenario
    (``resolved``, typed: ``context.resolved.run.seed``)."""

    kernel: Any
    optimizer: Any
    dataset: Any
    resolved: ResolvedScenario
    caches: dict = field(default_factory=dict)
    n_particles: int | None = None  # N where known before the cloud is drawn (None: a union cloud)

    def neighbour_cache(self, k: int):
        """One shared :class:`NeighbourCache` per neighbour count k."""
        if k not in self.caches:
            from ..geometry.neighbours import NeighbourCache

            self.caches[k] = NeighbourCache(k=k)
        return self.caches[k]


@dataclass(frozen=True)
class ObserverType(Entry):
    """An observer a scenario can name.

    Attributes
    ----------
    name : str
        The value of ``type`` (and the default observer name).
    summary : str
        One line for ``particledyn keys``.
    options : tuple of Key
        Keys besides ``type``, ``every`` and ``name`` (paths are the option names).
    build : callable
        ``build(options, context) -> Observer``: ``options`` the resolved entry
        (with ``every``), ``context`` a :class:`BuildContext`.
    target : str
        ``"module:Class"`` of the observer class built (for docs and checks).
    summarize : callable, optional
        ``summarize(run, name) -> dict``: the verdict of what observer ``name`` of an open
        :class:`~particledyn.io.Run` recorded, as JSON-ready fields. Its ``"verdict"`` entry (a
        short phrase, else its numbers) is added to the verdict, labelled with the observer's
        type and name; the dict is kept in the summary's ``observers`` list. An exception is
        reported as a one-line note (see :mod:`particledyn.summary_hooks`).
    figure : callable, optional
        ``figure(run, name, summary) -> matplotlib Figure or None``: a figure of observer
        ``name`` (``summary`` is :func:`~particledyn.summary.summarize_run`'s dict), written by
        :func:`~particledyn.plotting.plot_run` as ``<type>.<format>`` (``<type>_<name>`` when
        renamed), the run's identity added under its suptitle. Build it without pyplot.
    """

    build: Callable[[dict, BuildContext], Observer]
    target: str = ""
    summarize: Callable[[Any, str], dict] | None = None
    figure: Callable[[Any, str, dict], Any] | None = None


#: The observer types ``[[observers]] type`` names.
OBSERVERS: Registry[ObserverType] = Registry("observers.type", "observer")
OBSERVER_TYPES = OBSERVERS  # the older name


def register_observer(observer_type: ObserverType, replace: bool = False) -> ObserverType:
    """Add an observer type; returns it (ValueError when its name is taken, unless ``replace``)."""
    return OBSERVERS.register(
        observer_type, replace=replace, origin=sys._getframe(1).f_globals.get("__name__")
    )
