"""The verdict and figure hooks of observer types (a plugin's observer in the verdict and figures).

An :class:`~particledyn.scenario.ObserverType` may give ``summarize(run, name) -> dict`` and
``figure(run, name, summary) -> Figure | None``. For every observer of a run file whose type
has a hook (found by the stored type, so a renamed observer counts), :func:`observer_results`
calls ``summarize`` and :func:`particledyn.plotting.plot_run` calls ``figure``. A hook's
failure never costs the verdict: it becomes a one-line note naming the observer and the error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["hooked_observers", "observer_label", "observer_results", "failure"]


def observer_label(kind: str, name: str) -> str:
    """How the verdict and figures name an observer: its type, and its name when that differs."""
    return kind if name == kind else f"{kind} {name!r}"


def failure(exc: BaseException) -> str:
    """``ExcType: message`` on one line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def hooked_observers(run, hook: str) -> tuple[list[tuple[str, str, Callable]], list[str]]:
    """The observers of ``run`` whose type has hook ``hook`` (``"summarize"`` or ``"figure"``).

    The run's recorded plugins are imported first (as for a resume), so the types of a
    ``[run] plugins`` module are known.

    Returns
    -------
    observers : list of (type, name, callable)
        By observer name.
    notes : list of str
        One line per plugin that could not be loaded here.
    """
    from .plugins import PluginError
    from .runner import load_recorded_plugins
    from .scenario import OBSERVERS

    notes = []
    for record in run.parameters.get("plugins") or []:
        try:
            load_recorded_plugins({"plugins": [record]}, run.path)
        except PluginError as exc:
            notes.append(f"observers of plugin {record.get('module')!r} not summarized ({exc})")
    try:
        types = dict(OBSERVERS.items())
    except PluginError as exc:  # a broken entry point: the built-in verdict still stands
        return [], notes + [f"observer hooks not used ({exc})"]
    found = []
    for name, description in run.observer_descriptions.items():
        kind = str(description.get("type", name))
        function = getattr(types.get(kind), hook, None)
        if function is not None:
            found.append((kind, name, function))
    return found, notes


def _text(result: dict) -> str:
    """The verdict phrase: the hook's ``verdict`` entry, else its numbers as ``key value``."""
    if isinstance(result.get("verdict"), str):
        return result["verdict"]
    parts = [
        f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in result.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    return ", ".join(parts) or "summarized"


def observer_results(run) -> tuple[list[dict[str, Any]], list[str]]:
    """Call the ``summarize`` hook of every observer that has one.

    Returns
    -------
    records : list of dict
        Per observer: ``type``, ``name``, ``label``, ``result`` (the hook's JSON-ready dict, or
        None when it failed), ``text`` (its verdict phrase, or None) and ``error`` (or None).
    notes : list of str
        One line per failure (the observer's label and the error), for the verdict.
    """
    observers, notes = hooked_observers(run, "summarize")
    records = []
    for kind, name, summarize in observers:
        label = observer_label(kind, name)
        record: dict[str, Any] = {
            "type": kind,
            "name": name,
            "label": label,
            "result": None,
            "text": None,
            "error": None,
        }
        try:
            result = summarize(run, name)
            if not isinstance(result, dict):
                raise TypeError(f"returned {type(result).__name__}, expected a dict")
            try:  # the summary file must be able to hold it
                json.dumps(result, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"returned fields that are not JSON-ready ({failure(exc)}); expected "
                    "str, finite numbers, bool, None, lists and dicts"
                ) from None
            record.update(result=result, text=_text(result))
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin's hook becomes a note
            record["error"] = failure(exc)
            notes.append(f"{label}: summarize failed ({record['error']})")
        records.append(record)
    return records, notes
