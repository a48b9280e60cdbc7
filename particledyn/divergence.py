"""Divergence of a run: non-finite positions or a non-finite loss, and the numpy warnings on the way.

:class:`DivergenceError` is what the loop raises; :meth:`DivergenceError.record` is the
``diverged`` entry the loop adds to the run's last checkpoint, so that the file says
the run diverged (``particledyn info``, the verdict, the sweep, a refused resume).
:class:`FloatWarnings` holds back numpy's floating-point RuntimeWarnings ("overflow
encountered in square") raised while the loop runs: on divergence they become part of
the error's message instead of raw lines before it; otherwise they are shown at the end
of the call, as they would have been.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

__all__ = ["DivergenceError", "FloatWarnings", "non_finite_keys", "divergence_of"]


class DivergenceError(FloatingPointError):
    """Positions (or, with ``quantity``, another per-step result) became NaN or inf at ``step``.

    Attributes
    ----------
    step, count, lr, quantity
        Where it happened, how many entries, the learning rate, what became non-finite.
    numpy_warnings : list of str
        numpy's floating-point warnings raised in the run before it (filled by the loop).
    """

    def __init__(self, step: int, count: int, lr: float, quantity: str = "positions"):
        self.step, self.count, self.lr, self.quantity = int(step), int(count), float(lr), quantity
        self.numpy_warnings: list[str] = []
        entries = f"{count} entries NaN or inf, " if count else ""
        super().__init__(f"{quantity} became non-finite at step {step} ({entries}lr={lr:g}): "
                         "the run diverged; try a smaller learning rate")

    def what(self) -> str:
        """'100 entries of the positions became NaN or inf' or 'the loss became inf'."""
        if self.count == 0 and self.quantity != "positions":
            return f"the {self.quantity} became NaN or inf"
        return f"{self.count} entries of the {self.quantity} became NaN or inf"

    def record(self) -> dict:
        """The checkpoint's ``diverged`` entry."""
        return {"step": self.step, "quantity": self.quantity, "count": self.count, "lr": self.lr}


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
