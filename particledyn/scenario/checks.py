"""Scenario keys: what a key accepts, its default and its documentation.

A :class:`Key` pairs a dotted path (``optimizer.beta1``) with a checker that
turns a TOML value into the resolved value or says what was expected. Errors
are :class:`ScenarioError`, whose message is one line naming the key path:
``optimizer.beta1 = 1.5: expected 0 <= beta1 < 1``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_TOML_TYPES = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
)
_MAX_SHOWN = 60
_TECHNICAL_LIMIT = 2**31 - 1  # larger upper bounds only guard against overflow; not shown in docs


class ScenarioError(ValueError):
    """A scenario key is unknown, missing, of the wrong type or out of range (one-line message)."""


class Invalid(Exception):
    """Raised by a checker; the argument is the 'expected ...' text."""


def toml_type(value: Any) -> str:
    """The TOML name of a value's type ('an integer', 'a string', ...)."""
    for cls, name in _TOML_TYPES:
        if isinstance(value, cls):
            return name
    return f"a {type(value).__name__}"  # TOML dates and times


def show(value: Any) -> str:
    """A short one-line TOML-like rendering of a value for error messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, list, tuple, Mapping)):  # a resolved value's tuples and tables too
        try:
            text = json.dumps(
                value, default=lambda v: dict(v) if isinstance(v, Mapping) else str(v), ensure_ascii=False
            )
        except ValueError:  # a circular structure cannot come from TOML; be safe anyway
            text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def key_error(path: str, value: Any, expected: str) -> ScenarioError:
    """``ScenarioError('path = value: expected')``."""
    return ScenarioError(f"{path} = {show(value)}: {expected}")


# ---------------------------------------------------------------- checkers
class Checker:
    """Validates one value: ``parse(value, name)`` returns it resolved or raises :class:`Invalid`."""

    label = "value"

    def annotation(self) -> str:
        """The Python type of the resolved value, as text (the field type of the typed scenario)."""
        return "Any"

    def describe(self, name: str) -> str:
        """What the key accepts, for docs and errors (``name``: the key's last part)."""
        return self.label

    def parse(self, value: Any, name: str) -> Any:
        raise NotImplementedError

    def wrong(self, value: Any, name: str, type_error: bool) -> Invalid:
        text = f"expected {self.describe(name)}"
        return Invalid(f"{text}, got {toml_type(value)}" if type_error else text)


def _number(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _bound_text(name, lo, hi, lo_open, hi_open):
    lo = None if lo is None else _number(lo)
    hi = None if hi is None else _number(hi)
    if lo is not None and hi is not None:
        return f"{lo} {'<' if lo_open else '<='} {name} {'<' if hi_open else '<='} {hi}"
    if lo is not None:
        return f"{name} {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{name} {'<' if hi_open else '<='} {hi}"
    return ""


@dataclass(frozen=True)
class Int(Checker):
    """An integer (not a boolean) in [lo, hi]."""

    lo: int | None = None
    hi: int | None = None

    def annotation(self):
        return "int"

    def describe(self, name):
        hi = self.hi if (self.hi is not None and self.hi < _TECHNICAL_LIMIT) else None
        bound = _bound_text(name, self.lo, hi, False, False)
        return f"an integer {bound}" if bound else "an integer"

    def parse(self, value, name):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(value, name, True)
        if self.lo is not None and value < self.lo:
            raise self.wrong(value, name, False)
        if self.hi is not None and value > self.hi:
            if self.hi < _TECHNICAL_LIMIT:
                raise self.wrong(value, name, False)
            raise Invalid(f"expected an integer {name} <= {self.hi}")
        return int(value)


@dataclass(frozen=True)
class Float(Checker):
    """A finite number (TOML integer or float) in a range; resolved as a float."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def annotation(self):
        return "float"

    def describe(self, name):
        bound = _bound_text(name, self.lo, self.hi, self.lo_open, self.hi_open)
        return bound if bound else "a finite number"

    def parse(self, value, name):
        bounded = self.lo is not None or self.hi is not None
        what = f"a number {self.describe(name)}" if bounded else "a finite number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"expected {what}, got {toml_type(value)}")
        try:
            x = float(value)
        except OverflowError:
            raise Invalid(f"expected {what}") from None
        if not math.isfinite(x):
            raise Invalid(f"expected {what}")
        if self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo)):
            raise self.wrong(value, name, False)
        if self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi)):
            raise self.wrong(value, name, False)
        return x


@dataclass(frozen=True)
class Choice(Checker):
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def annotation(self):
        return "str"

    def describe(self, name):
        return "one of " + ", ".join(f'"{o}"' for o in self.options)

    def parse(self, value, name):
        if not isinstance(value, str):
            raise self.wrong(value, name, True)
        if value not in self.options:
            raise self.wrong(value, name, False)
        return value


@dataclass(frozen=True)
class Str(Checker):
    """A non-empty single-line string."""

    label: str = "a non-empty string"

    def annotation(self):
        return "str"

    def parse(self, value, name):
        if not isinstance(value, str):
            raise self.wrong(value, name, True)
        if not value or "\n" in value or "\x00" in value:
            raise self.wrong(value, name, False)
        return value


@dataclass(frozen=True)
class Text(Checker):
    """Any string (descriptions)."""

    label: str = "a string"

    def annotation(self):
        return "str"

    def parse(self, value, name):
        if not isinstance(value, str):
            raise self.wrong(value, name, True)
        return value


@dataclass(frozen=True)
class Bool(Checker):
    """true or false."""

    label: str = "true or false"

    def annotation(self):
        return "bool"

    def parse(self, value, name):
        if not isinstance(value, bool):
            raise self.wrong(value, name, True)
        return value


@dataclass(frozen=True)
class FloatList(Checker):
    """A number or a non-empty array of numbers, each passing ``item``; resolved as a list."""

    item: Float = Float()
    scalar_ok: bool = True

    def annotation(self):
        return "tuple[float, ...]"

    def describe(self, name):
        each = self.item.describe("each")
        what = (
            "a number or a non-empty array of numbers" if self.scalar_ok else "a non-empty array of numbers"
        )
        return f"{what} ({each})" if (self.item.lo is not None or self.item.hi is not None) else what

    def parse(self, value, name):
        items = [value] if (self.scalar_ok and not isinstance(value, list)) else value
        if not isinstance(items, list) or not items:
            raise self.wrong(value, name, not isinstance(items, list))
        try:
            return [self.item.parse(v, "each") for v in items]
        except Invalid:
            raise self.wrong(value, name, False) from None


@dataclass(frozen=True)
class OneOf(Checker):
    """The first of several checkers that accepts the value (e.g. a number or "adaptive")."""

    checkers: tuple[Checker, ...]

    def annotation(self):
        parts = dict.fromkeys(c.annotation() for c in self.checkers)
        return "Any" if "Any" in parts else " | ".join(parts)

    def describe(self, name):
        return " or ".join(c.describe(name) for c in self.checkers)

    def parse(self, value, name):
        for checker in self.checkers:
            try:
                return checker.parse(value, name)
            except Invalid:
                continue
        raise Invalid(f"expected {self.describe(name)}")


@dataclass(frozen=True)
class Literal(Checker):
    """Exactly one string (e.g. "adaptive")."""

    text: str

    def annotation(self):
        return "str"

    def describe(self, name):
        return f'"{self.text}"'

    def parse(self, value, name):
        if value != self.text or not isinstance(value, str):
            raise self.wrong(value, name, not isinstance(value, str))
        return value


@dataclass(frozen=True)
class Custom(Checker):
    """A checker from a function ``fn(value) -> resolved`` that raises Invalid itself."""

    label: str = ""
    fn: Callable[[Any], Any] | None = None
    type: str = "Any"  # the resolved value's Python type, as text (arrays resolve as tuples)

    def annotation(self):
        return self.type

    def parse(self, value, name):
        return self.fn(value)


# ---------------------------------------------------------------- keys
REQUIRED = "required"
OPTIONAL = "optional"


@dataclass(frozen=True)
class Derived:
    """A default computed from the sections resolved before it (e.g. ``run.seed``).

    ``fn(done)`` gets them as attributes, each a typed section (``done.run.seed``).
    """

    text: str  # for the docs: "run.seed"
    fn: Callable[[Any], Any]


@dataclass(frozen=True)
class Key:
    """One documented scenario key.

    Attributes
    ----------
    path : str
        Dotted path, e.g. ``"optimizer.beta1"`` (for observer options, the option name).
    check : Checker
    doc : str
        One or two sentences for ``particledyn keys``.
    default : Any
        A value, :data:`REQUIRED`, :data:`OPTIONAL` (absent: left out / None), or :class:`Derived`.
    when : tuple of str, optional
        The values of the section's selector (``data.kind``, ``init.shape``,
        ``optimizer.name``, ...) for which this key applies; None: always.
    """

    path: str
    check: Checker
    doc: str
    default: Any = OPTIONAL
    when: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def parse(self, value: Any, where: str | None = None) -> Any:
        """The resolved value, or ScenarioError naming ``where`` (default: the path)."""
        try:
            return self.check.parse(value, self.name)
        except Invalid as exc:
            raise key_error(where or self.path, value, str(exc)) from None

    def default_text(self) -> str:
        if self.default is REQUIRED:
            return "required"
        if self.default is OPTIONAL:
            return "optional"
        if isinstance(self.default, Derived):
            return f"default: {self.default.text}"
        return f"default: {show(self.default)}"
