"""The resolved scenario as a typed, frozen value.

:func:`~particledyn.scenario.validate_scenario` returns a :class:`ResolvedScenario`: one frozen
section object per scenario section (``resolved.run``, ``resolved.kernel``, ...; ``observers`` a
tuple of them), each key an attribute (``resolved.output.frame_every``). The section types are
not written out here: they are generated from the schema's keys (:func:`~particledyn.scenario.schema`,
which the section registries fill) when a section is validated, one type per section and
selector value (``kernel.kind = "two_layer"``), the field types from the keys' checkers
(:meth:`~particledyn.scenario.checks.Checker.annotation`). A plugin's kernel, observer, data
kind, ... is typed the same way.

Values are frozen too: arrays resolve as tuples, tables as :class:`Table`. The plain dict a
run file records is :meth:`ResolvedScenario.to_dict` (lists and dicts again), and
:meth:`ResolvedScenario.from_dict` reads one back by validating it again, so a file written
before a key existed loads with the key's default.
"""

from __future__ import annotations

import difflib
import keyword
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, make_dataclass
from typing import Any, ClassVar

__all__ = ["ResolvedScenario", "Section", "Table", "section_type", "recorded"]


class Table(Mapping):
    """A frozen table inside a value (``init.parts``' clouds): a read-only, hashable mapping."""

    __slots__ = ("_items",)
    _items: dict

    def __init__(self, items: Mapping):
        object.__setattr__(self, "_items", {k: freeze(v) for k, v in items.items()})

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __setattr__(self, name, value):
        raise AttributeError(f"a {type(self).__name__} is frozen")

    def __reduce__(self):
        return Table, (thaw(self),)

    def __repr__(self) -> str:
        return f"Table({thaw(self)!r})"


def freeze(value: Any) -> Any:
    """``value`` with lists as tuples and dicts as :class:`Table` (recursively)."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping) and not isinstance(value, Table):
        return Table(value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`: tuples as lists, tables as dicts (what TOML and JSON hold)."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    if isinstance(value, Table):
        return {k: thaw(v) for k, v in value._items.items()}
    return value


class Section:
    """Base of the generated section types: frozen, one attribute per key of the section.

    An attribute that is not one of the section's keys raises AttributeError naming the key
    path, the closest key and the section's keys.
    """

    _where: ClassVar[str] = ""  # "kernel", or "observers" for an [[observers]] entry
    _choice: ClassVar[str | None] = None  # the selector's value the type is for
    _spec: ClassVar[tuple[tuple[str, str], ...]] = ()  # (key, annotation) of each field

    def __getattr__(self, name: str) -> Any:
        # reached only when ``name`` is no field (nor a method): dunder probes (copy, pickle)
        # get a plain AttributeError
        if name.startswith("__"):
            raise AttributeError(name)
        keys = [key for key, _ in self._spec]
        close = difflib.get_close_matches(name, keys, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        choice = f" for {self._where}.{keys[0]} = {self._choice!r}" if self._choice is not None else ""
        raise AttributeError(f"{self._where}.{name}: no such key{hint}; the keys{choice}: {', '.join(keys)}")

    def to_dict(self) -> dict[str, Any]:
        """The section as the plain dict a run file records (lists and dicts, key order kept)."""
        return {key: thaw(getattr(self, key)) for key, _ in self._spec}

    def __reduce__(self):
        # the type is generated: rebuild it from its spec where it is unpickled
        return _rebuild, (
            self._where,
            self._choice,
            self._spec,
            tuple(getattr(self, k) for k, _ in self._spec),
        )

    def __repr__(self) -> str:
        items = ", ".join(f"{key}={getattr(self, key)!r}" for key, _ in self._spec)
        return f"{type(self).__name__}({items})"


_RESERVED = frozenset(dir(Section))
_TYPES: dict[tuple, type[Section]] = {}


def section_type(where: str, choice: str | None, spec: tuple[tuple[str, str], ...]) -> type[Section]:
    """The frozen section type of ``where`` (``"kernel"``) for a selector value, with ``spec``'s
    ``(key, annotation)`` fields (one type per distinct spec, made once).

    Raises
    ------
    ScenarioError
        A key named like a method of :class:`Section` (``to_dict``) or not an identifier: a
        plugin must choose another name.
    """
    known = _TYPES.get((where, choice, spec))
    if known is not None:
        return known
    for key, _ in spec:
        if key in _RESERVED or not key.isidentifier() or key.startswith("_") or keyword.iskeyword(key):
            from .checks import ScenarioError

            methods = ", ".join(sorted(n for n in _RESERVED if not n.startswith("_")))
            raise ScenarioError(
                f"{where}.{key}: expected a key name that is an identifier (no keyword), not starting with _ "
                f"and not one of {methods} (a registered entry's key; rename it)"
            )
    name = ("observer" if where == "observers" else where).capitalize() + "Section"
    cls: Any = make_dataclass(name, list(spec), bases=(Section,), frozen=True, repr=False)
    cls.__module__ = __name__
    cls.__qualname__ = name
    cls._where, cls._choice, cls._spec = where, choice, spec
    _TYPES[(where, choice, spec)] = cls
    return cls


def _rebuild(where: str, choice: str | None, spec: tuple, values: tuple) -> Section:
    return section_type(where, choice, spec)(*values)


@dataclass(frozen=True, repr=False)
class ResolvedScenario:
    """A validated scenario with every default filled in (see :func:`validate_scenario`).

    Its fields are the scenario's sections, in order; each is a frozen :class:`Section` whose
    attributes are the section's keys (optional keys left out are None). Compare, hash, pickle
    and print it as a value.

    Attributes
    ----------
    run, data, kernel, init, optimizer, schedule, output : Section
    observers : tuple of Section
        One per ``[[observers]]`` entry: ``type``, ``every``, ``name`` and the type's options.
    """

    run: Section
    data: Section
    kernel: Section
    init: Section
    optimizer: Section
    schedule: Section
    output: Section
    observers: tuple[Section, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{section: {key: value}}`` with ``observers`` a list of dicts: what a run file records."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        return {
            name: [o.to_dict() for o in value] if isinstance(value, tuple) else value.to_dict()
            for name, value in out.items()
        }

    def to_raw(self) -> dict[str, Any]:
        """The scenario as the tables :func:`validate_scenario` takes again: unset keys left out,
        and ``run.steps`` where the run length is ``run.epochs`` (they derive it again)."""
        raw: dict[str, Any] = {
            name: (
                [{k: v for k, v in e.items() if v is not None} for e in table]
                if isinstance(table, list)
                else {k: v for k, v in table.items() if v is not None}
            )
            for name, table in self.to_dict().items()
        }
        if "epochs" in raw["run"]:
            del raw["run"]["steps"]
        return raw

    @classmethod
    def from_dict(cls, recorded: Mapping[str, Any]) -> ResolvedScenario:
        """A resolved scenario from the plain dict a run file records (:meth:`to_dict`).

        It is validated again (a resolved scenario validates to itself), so a file written
        before a key existed gets the key's default; ``run.steps`` derives from
        ``run.epochs`` again where the file gives both.

        Raises
        ------
        ScenarioError
            The dict is not a valid resolved scenario (one line naming the key).
        """
        from . import validate_scenario
        from .checks import ScenarioError, toml_type

        if not isinstance(recorded, Mapping):
            raise ScenarioError(f"resolved scenario: expected a table of sections, got {toml_type(recorded)}")
        raw: dict[str, Any] = {}
        for name, table in recorded.items():
            if isinstance(table, Mapping):
                raw[name] = {k: v for k, v in table.items() if v is not None}
            elif isinstance(table, list):
                raw[name] = [
                    {k: v for k, v in e.items() if v is not None} if isinstance(e, Mapping) else e
                    for e in table
                ]
            else:
                raw[name] = table
        run = raw.get("run")
        if isinstance(run, dict) and "epochs" in run:
            run.pop("steps", None)  # derived from run.epochs again (the same data, the same count)
        return validate_scenario(raw)

    def with_changes(self, changes: Mapping[str, Any] | str, value: Any = None) -> ResolvedScenario:
        """This scenario with keys set by their dotted paths, validated again.

        ``with_changes("schedule.lr", 0.1)`` or ``with_changes({"schedule.lr": 0.1, "init.n": 50})``.
        Every other key keeps its resolved value (a derived default such as ``data.seed`` does
        not follow a changed ``run.seed``: set both). Setting a selector (``kernel.kind``)
        drops the section's keys the new choice does not take (they take its defaults).

        Raises
        ------
        ScenarioError
            A path that is not ``section.key`` or a value its key refuses (one line).
        """
        from . import SELECTORS, schema, validate_scenario

        overrides = {changes: value} if isinstance(changes, str) else dict(changes)
        raw = self.to_raw()
        for path in overrides:
            section, _, name = str(path).partition(".")
            if SELECTORS.get(section) == name and isinstance(raw.get(section), dict):
                choice = overrides[path]
                takes = {
                    k.name
                    for k in schema()
                    if k.path.startswith(section + ".") and (k.when is None or choice in k.when)
                }
                raw[section] = {k: v for k, v in raw[section].items() if k in takes}
        return validate_scenario(raw, overrides)

    def __repr__(self) -> str:
        lines = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                inner = "".join(f"\n        {o!r}," for o in value)
                lines.append(f"    {f.name}=({inner}\n    ),")
            else:
                lines.append(f"    {f.name}={value!r},")
        return "ResolvedScenario(\n" + "\n".join(lines) + "\n)"


def recorded(parameters: Mapping, path: str, default: Any = None) -> Any:
    """A key of the scenario a run file records (its ``parameters``), read without validating.

    For readers of any file (one written through the Python API has no scenario, an old one
    may lack a key, a plugin's section may not import here): ``path`` is ``"section.key"`` or
    ``"observers"``; ``default`` where the file does not hold it.
    """
    node: Any = parameters.get("resolved")
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return default if node is None else node
