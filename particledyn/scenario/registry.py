"""Registries: the named things a scenario section selects (kernels, observers, data kinds, ...).

A :class:`Registry` maps a name (``kernel.kind = "two_layer"``) to its entry, which owns the
section's keys, defaults and builder. Entries come from modules loaded as plugins
(:mod:`particledyn.plugins`): the built-in ones through the same ``particledyn.plugins``
entry-point group a user's package uses. Reading a registry loads the installed plugins
first, so every process (the CLI, a resumed run, a Dask worker) sees the same names.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .checks import Checker, Invalid, Key, ScenarioError, show

__all__ = ["Registry", "Entry", "Named"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """A registry entry: a name, one line of docs, its section keys and its builder.

    Attributes
    ----------
    name : str
        The value of the section's selector key.
    summary : str
        One line for ``particledyn keys``.
    options : tuple of Key
        The keys it takes besides the selector.
    build : callable
        What turns the resolved section into the object (each registry says its signature).
    """

    name: str
    summary: str
    options: tuple[Key, ...]
    build: Callable[..., Any]


class Registry(Mapping, Generic[T]):
    """Named entries of one scenario section; duplicates are refused.

    Parameters
    ----------
    path : str
        The selector key (``"kernel.kind"``), for messages.
    what : str
        What an entry is (``"kernel"``), for messages.
    """

    def __init__(self, path: str, what: str):
        self.path, self.what = path, what
        self._entries: dict[str, T] = {}
        self._origin: dict[str, str] = {}

    def _load(self) -> None:
        from ..plugins import load_entry_points

        load_entry_points()

    def register(self, entry: T, *, replace: bool = False, origin: str | None = None) -> T:
        """Add ``entry`` under ``entry.name``; returns it.

        ``origin`` names the registering module in messages (default: the caller's).

        Raises
        ------
        ValueError
            The name is taken (by another module) and ``replace`` is false.
        """
        name = entry.name  # type: ignore[attr-defined]  # every entry type has a name
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.what} name {name!r}: expected a non-empty string")
        origin = origin or sys._getframe(1).f_globals.get("__name__", "?")
        if name in self._entries and not replace:
            raise ValueError(
                f"{self.path} = {show(name)}: already registered by {self._origin[name]}; "
                f"choose another name or pass replace=True"
            )
        self._entries[name] = entry
        self._origin[name] = origin
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (KeyError when absent)."""
        del self._entries[name]
        del self._origin[name]

    def origin(self, name: str) -> str:
        """The module that registered ``name`` (KeyError when absent)."""
        self._load()
        return self._origin[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        self._load()
        return tuple(self._entries)

    def get_entry(self, name: str) -> T:
        """The entry named ``name``.

        Raises
        ------
        ScenarioError
            ``name`` is not registered: the message names it and every known name.
        """
        self._load()
        if name not in self._entries:
            raise ScenarioError(f"{self.path} = {show(name)}: {self.unknown_text()}")
        return self._entries[name]

    def unknown_text(self) -> str:
        """``expected one of "a", "b"`` (the known names), for messages."""
        return "expected one of " + ", ".join(f'"{n}"' for n in self.names())

    def checker(self) -> Named:
        """A key checker that accepts the names registered when it parses."""
        return Named(self)

    def __getitem__(self, name: str) -> T:
        self._load()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.path!r}: {', '.join(self._entries)})"


@dataclass(frozen=True, eq=False)
class Named(Checker):
    """One of the names of a registry, read at parse time (so plugins' names count)."""

    registry: Registry

    def annotation(self):
        return "str"

    def describe(self, name):
        return "one of " + ", ".join(f'"{o}"' for o in self.registry.names())

    def parse(self, value, name):
        if not isinstance(value, str):
            raise self.wrong(value, name, True)
        if value not in self.registry.names():
            raise Invalid(self.registry.unknown_text())
        return value
