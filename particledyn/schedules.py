"""Learning-rate schedules: step -> learning rate."""

from __future__ import annotations

import math
from collections.abc import Callable


class Schedule:
    """Base class; ``schedule(step)`` is the learning rate used for the update at ``step``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def describe(self) -> dict:
        """Parameters, for run metadata."""
        return {"kind": type(self).__name__}


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}={value!r}: expected a positive finite learning rate")
    return value


class Constant(Schedule):
    """eta(t) = lr."""

    def __init__(self, lr: float):
        self.lr = _positive("lr", lr)

    def __call__(self, step):
        return self.lr

    def describe(self):
        return {"kind": "constant", "lr": self.lr}


class StepDecay(Schedule):
    """eta(t) = lr * factor ** (t // every)."""

    def __init__(self, lr: float, every: int, factor: float = 0.1):
        self.lr = _positive("lr", lr)
        if int(every) != every or every < 1:
            raise ValueError(f"every={every!r}: expected a positive integer number of steps")
        if not 0 < factor <= 1:
            raise ValueError(f"factor={factor!r}: expected 0 < factor <= 1")
        self.every, self.factor = int(every), float(factor)

    def __call__(self, step):
        return self.lr * self.factor ** (step // self.every)

    def describe(self):
        return {"kind": "step", "lr": self.lr, "every": self.every, "factor": self.factor}


class Cosine(Schedule):
    """Cosine decay from lr to lr_min over ``steps``, with optional linear warm-up."""

    def __init__(self, lr: float, steps: int, lr_min: float = 0.0, warmup: int = 0):
        self.lr = _positive("lr", lr)
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps={steps!r}: expected a positive integer")
        if not 0 <= lr_min <= lr:
            raise ValueError(f"lr_min={lr_min!r}: expected 0 <= lr_min <= lr")
        if int(warmup) != warmup or not 0 <= warmup < steps:
            raise ValueError(f"warmup={warmup!r}: expected an integer in [0, steps)")
        self.steps, self.lr_min, self.warmup = int(steps), float(lr_min), int(warmup)

    def __call__(self, step):
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * progress))

    def describe(self):
        return {
            "kind": "cosine",
            "lr": self.lr,
            "steps": self.steps,
            "lr_min": self.lr_min,
            "warmup": self.warmup,
        }


class FromFunction(Schedule):
    """A user function step -> lr (checked positive at every call)."""

    def __init__(self, function: Callable[[int], float]):
        self.function = function

    def __call__(self, step):
        return _positive(f"lr at step {step}", self.function(step))


def as_schedule(lr) -> Schedule:
    """A Schedule from a number, a Schedule or a callable."""
    if isinstance(lr, Schedule):
        return lr
    if callable(lr):
        return FromFunction(lr)
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        return Constant(lr)
    raise TypeError(f"lr={lr!r}: expected a positive number, a Schedule or a function of the step")
