"""Divergence of a run: non-finite positions or loss, a finite loss or cloud that explodes, and the
numpy warnings on the way.

:class:`DivergenceError` is what the loop raises; :meth:`DivergenceError.record` is the
``diverged`` entry the loop adds to the run's last checkpoint, so that the file says
the run diverged (``particledyn info``, the verdict, the sweep, a refused resume).
:class:`FloatWarnings` holds back numpy's floating-point RuntimeWarnings ("overflow
encountered in square") raised while the loop runs: on divergence they become part of
the error's message instead of raw lines before it; otherwise they are shown at the end
of the call, as they would have been.

:class:`GrowthRule` is the growth test that fires before overflow: a run whose loss (or cloud
radius ``max |x|``) stays finite but explodes, say to 1e70, is diverged too. See its docstring for
the rule and its defaults (``run.divergence_growth``, ``run.divergence_window``,
``run.divergence_threshold`` in a scenario).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "DivergenceError",
    "FloatWarnings",
    "GrowthRule",
    "non_finite_keys",
    "divergence_of",
    "describe",
    "cloud_radius",
]


class DivergenceError(FloatingPointError):
    """Positions (or, with ``quantity``, another per-step result) became NaN or inf at ``step``,
    or (with ``growth``) exploded while finite, by :class:`GrowthRule`.

    Attributes
    ----------
    step, count, lr, quantity
        Where it happened, how many entries, the learning rate, what became non-finite.
    growth : str or None
        How the quantity grew, when the growth test fired.
    numpy_warnings : list of str
        numpy's floating-point warnings raised in the run before it (filled by the loop).
    """

    def __init__(
        self, step: int, count: int, lr: float, quantity: str = "positions", growth: str | None = None
    ):
        self.step, self.count, self.lr, self.quantity = int(step), int(count), float(lr), quantity
        self.growth = growth
        self.numpy_warnings: list[str] = []
        if growth is not None:
            message = f"{quantity} exploded at step {step} ({growth}, lr={lr:g})"
        else:
            entries = f"{count} entries NaN or inf, " if count else ""
            message = f"{quantity} became non-finite at step {step} ({entries}lr={lr:g})"
        super().__init__(message + ": the run diverged; try a smaller learning rate")

    def what(self) -> str:
        """'100 entries of the positions became NaN or inf', 'the loss became NaN or inf'
        or 'the loss grew 2.1e+05-fold ...' (the growth test)."""
        if self.growth is not None or (self.count == 0 and self.quantity != "positions"):
            return describe(self.record())
        return f"{self.count} entries of the {self.quantity} became NaN or inf"

    def record(self) -> dict:
        """The checkpoint's ``diverged`` entry (with ``growth`` when the growth test fired)."""
        out = {"step": self.step, "quantity": self.quantity, "count": self.count, "lr": self.lr}
        return out if self.growth is None else {**out, "growth": self.growth}


def describe(entry: Mapping[str, Any]) -> str:
    """What a ``diverged`` entry says: 'the loss became NaN or inf' or, from the growth test,
    'the loss grew 3.1e+04-fold over 10 records to 8.9e+69 (...)'."""
    if entry.get("growth"):
        return f"the {entry['quantity']} {entry['growth']}"
    return f"the {entry['quantity']} became NaN or inf"


class GrowthRule:
    """The growth test: a finite quantity that explodes is divergence, before it overflows.

    At every step where observers run, the rule is shown the loss (when recorded) and the
    cloud's radius ``max |x|`` ("positions"). A quantity ``q`` at step t is judged diverged when
    both hold:

    - ``q_t > growth * min(q over the window)``: it grew by more than ``growth`` over the
      last ``window`` records (the window holds the ``window`` records before this one);
    - ``q_t > threshold * |q_start|``: it is more than ``threshold`` times its value at the
      first record of the run (resumes continue the start kept in the checkpoint).

    The first condition lets a large but stable loss (a data set on a large scale) pass,
    the second a loss that recovers from a dip or grows fast while still small. Defaults:
    ``growth = 100`` over ``window = 10`` records, ``threshold = 1e8``. ``growth = 0``
    switches the test off (the NaN/inf rule stays). Records come at the observers' cadence,
    so the window in steps is ``window`` times that cadence.

    Parameters
    ----------
    growth : float
        Growth factor over the window (> 1), or 0 to switch the test off.
    window : int
        Number of previous records compared with (>= 1).
    threshold : float
        Factor over the start value (>= 1).
    """

    QUANTITIES = ("loss", "positions")

    def __init__(self, growth: float = 100.0, window: int = 10, threshold: float = 1e8):
        growth, threshold = float(growth), float(threshold)
        if not (growth == 0 or growth > 1) or not np.isfinite(growth):
            raise ValueError(f"growth={growth!r}: expected a factor > 1, or 0 to switch the test off")
        if int(window) != window or window < 1:
            raise ValueError(f"window={window!r}: expected an integer >= 1 (records)")
        if not threshold >= 1 or not np.isfinite(threshold):
            raise ValueError(f"threshold={threshold!r}: expected a finite factor >= 1 over the start value")
        self.growth, self.window, self.threshold = growth, int(window), threshold
        self.start: dict[str, float] = {}
        self.history: dict[str, list[float]] = {}

    @classmethod
    def of_scenario(cls, run: Any) -> GrowthRule:
        """The rule a resolved scenario's ``run`` section asks for (``divergence_growth``,
        ``divergence_window``, ``divergence_threshold``)."""
        return cls(run.divergence_growth, run.divergence_window, run.divergence_threshold)

    @property
    def enabled(self) -> bool:
        """Whether the test is on (``growth > 0``)."""
        return self.growth > 0

    def check(self, values: Mapping[str, float]) -> tuple[str, str] | None:
        """Record ``values`` (finite; keys of :attr:`QUANTITIES`); return ``(quantity, how)``
        for the first quantity judged diverged, else None."""
        found = None
        for name in self.QUANTITIES:
            if name not in values:
                continue
            value = abs(float(values[name]))
            start = self.start.setdefault(name, value)
            history = self.history.setdefault(name, [])
            if found is None and history and value > self.threshold * start:
                low = min(history)
                if value > self.growth * low:
                    found = (
                        name,
                        f"grew {value / low:.3g}-fold over the last {len(history)} records "
                        f"to {value:.3g} ({value / start if start else np.inf:.3g} x its start "
                        f"{start:.3g}; growth test: > {self.growth:g}-fold over {self.window} "
                        f"records and > {self.threshold:g} x the start)",
                    )
            history.append(value)
            del history[: -self.window]
        return found

    def state_dict(self) -> dict:
        """The start values and windows, for a checkpoint."""
        return {
            "start": dict(self.start),
            "history": {k: np.asarray(v, dtype=np.float64) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        """Continue from :meth:`state_dict` (None: start afresh)."""
        state = state or {}
        self.start = {k: float(v) for k, v in state.get("start", {}).items()}
        self.history = {
            k: [float(x) for x in np.asarray(v).ravel()] for k, v in state.get("history", {}).items()
        }


def cloud_radius(positions: np.ndarray) -> float:
    """``max |x|`` over all entries, without a temporary of the positions' size."""
    return float(max(np.max(positions), -np.min(positions)))


def non_finite_keys(observer, values: Mapping[str, Any]) -> list[str]:
    """The keys of ``observer.divergence_keys`` whose value in ``values`` is NaN or inf."""
    bad = []
    for key in getattr(observer, "divergence_keys", ()):
        if key in values and not np.all(np.isfinite(np.asarray(values[key], dtype=np.float64))):
            bad.append(key)
    return bad


def divergence_of(checkpoint: Mapping[str, Any] | None) -> dict | None:
    """The ``diverged`` entry of a checkpoint (``step``, ``quantity``), or None.

    Checkpoints written before the entry existed mark divergence by non-finite positions.
    A divergence found by the growth test carries ``growth``, how the quantity grew.
    """
    if checkpoint is None:
        return None
    if checkpoint.get("diverged"):
        return dict(checkpoint["diverged"])
    if not np.all(np.isfinite(checkpoint["positions"])):
        return {"step": int(checkpoint["step"]), "quantity": "positions"}
    return None


def _is_float_warning(message, category) -> bool:
    return issubclass(category, RuntimeWarning) and "encountered in" in str(message)


class FloatWarnings:
    """Collect numpy's floating-point RuntimeWarnings shown inside the block.

    Other warnings pass through. On leaving the block the collected warnings are
    shown as they would have been, unless :meth:`take` claimed them first.
    """

    def __enter__(self):
        self._show = warnings.showwarning
        self._held: list[tuple] = []
        warnings.showwarning = self._capture
        return self

    def _capture(self, message, category, filename, lineno, file=None, line=None):
        if _is_float_warning(message, category):
            self._held.append((message, category, filename, lineno, file, line))
        else:
            self._show(message, category, filename, lineno, file, line)

    def take(self) -> list[str]:
        """The held warnings as 'message (file:line)' lines, once each; they will not be shown."""
        texts = []
        for message, _, filename, lineno, _, _ in self._held:
            text = f"{message} ({filename.rsplit('/', 1)[-1]}:{lineno})"
            if text not in texts:
                texts.append(text)
        self._held = []
        return texts

    def __exit__(self, *exc):
        warnings.showwarning = self._show
        for held in self._held:
            self._show(*held)
        return False
