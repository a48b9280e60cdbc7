"""Plugins: modules that register kernels, observers and the other scenario entries.

A plugin is a module whose import registers entries (``KERNELS.register(...)``, see
:mod:`particledyn.scenario.registry`). Two ways reach it:

- an installed distribution declares it in the entry-point group ``particledyn.plugins``
  (``[project.entry-points."particledyn.plugins"] name = "module"``); every process loads
  all of them the first time it reads a registry. particledyn's own kernels and observers
  are declared so in its ``setup.cfg``;
- a scenario lists modules in ``[run] plugins = ["module", ...]``; they are imported before
  the scenario is validated (:func:`particledyn.scenario.validate_scenario`).

A run file records the plugins its run had loaded (module, distribution and version), and
the resolved ``run.plugins``, so a resume, ``particledyn info`` and the Dask workers of a
sweep load the same ones. A plugin that cannot be imported raises :class:`PluginError`,
one line naming it (exit status 2 on the command line).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable
from importlib import metadata

from .scenario.checks import ScenarioError

__all__ = ["GROUP", "PluginError", "load_entry_points", "load_plugins", "loaded_plugins", "plugin_record"]

#: The entry-point group plugins declare.
GROUP = "particledyn.plugins"
_OWN = "particledyn"

_loaded: dict[str, dict] = {}  # module -> record
_state = {"entry_points": "no"}  # "no", "loading", "done"
# one thread loads; the others (threads of a Dask worker) wait for it. Re-entrant: a plugin that
# reads a registry while it loads sees the state "loading" and goes on
_lock = threading.RLock()


class PluginError(ScenarioError):
    """A plugin cannot be imported (one-line message naming it)."""


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _distribution_of(module: str) -> tuple[str | None, str | None]:
    top = module.split(".")[0]
    try:
        names = metadata.packages_distributions().get(top, [])
    except Exception:  # noqa: BLE001 - broken metadata of an unrelated package
        names = []
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def plugin_record(
    module: str, source: str, name: str | None = None, dist: tuple[str | None, str | None] | None = None
) -> dict:
    """What a run file stores about one loaded plugin."""
    dist_name, version = dist if dist is not None else _distribution_of(module)
    return {"name": name or module, "module": module, "source": source, "dist": dist_name, "version": version}


def load_entry_points() -> None:
    """Import every module of the ``particledyn.plugins`` entry points, once per process
    (particledyn's own first, then by distribution and name).

    Raises
    ------
    PluginError
        An entry point's module cannot be imported.
    """
    if _state["entry_points"] == "done":
        return
    with _lock:
        if _state["entry_points"] != "no":  # done meanwhile, or loading (a plugin reading a registry)
            return
        _state["entry_points"] = "loading"
        try:
            _load_entry_points()
            _state["entry_points"] = "done"
        except BaseException:
            _state["entry_points"] = "no"
            raise


def _load_entry_points() -> None:
    points = sorted(
        metadata.entry_points(group=GROUP),
        key=lambda ep: (
            ep.dist is None or ep.dist.name != _OWN,
            ep.dist.name if ep.dist is not None else "",
            ep.name,
        ),
    )
    if not any(ep.dist is not None and ep.dist.name == _OWN for ep in points):
        raise PluginError(
            f"particledyn's own {GROUP} entry points are missing (its built-in kernels and "
            "observers load through them): its installed metadata predates them; reinstall "
            "it (pip install -e . in a checkout)"
        )
    seen = set()
    for ep in points:
        if (ep.name, ep.value) in seen:  # one distribution found twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        dist = (ep.dist.name, ep.dist.version) if ep.dist is not None else (None, None)
        try:
            target = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is reported the same way
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}, entry point of {dist[0]}): cannot import it: {_reason(exc)}"
            ) from None
        if callable(target):  # "module:function": the function registers
            target()
        module = ep.value.split(":")[0].strip()
        _loaded.setdefault(module, plugin_record(module, "entry point", ep.name, dist))


def load_plugins(modules: Iterable[str], where: str = "run.plugins") -> list[dict]:
    """Import plugin modules by name (after the entry points), each once.

    Parameters
    ----------
    modules : iterable of str
        Importable module names (installed, or on ``PYTHONPATH``).
    where : str
        The key that named them, for messages.

    Returns
    -------
    list of dict
        Their records (see :func:`plugin_record`).

    Raises
    ------
    PluginError
        A module cannot be imported; the message names it.
    """
    load_entry_points()
    records = []
    for module in modules:
        if module not in _loaded:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - a plugin's own errors count as not importable
                sys.modules.pop(module, None)
                raise PluginError(
                    f"{where}: cannot import plugin {module!r} ({_reason(exc)}); "
                    "expected a module importable here (installed, or on PYTHONPATH)"
                ) from None
            _loaded[module] = plugin_record(module, where)
        records.append(_loaded[module])
    return records


def loaded_plugins(own: bool = False) -> list[dict]:
    """Records of the plugins loaded in this process (``own``: also particledyn's built-in ones)."""
    return [dict(r) for r in _loaded.values() if own or r["dist"] != _OWN]
