"""Per-step choice between 1 thread and numba's thread count, by the measured wall time.

On a shared machine a 2-thread step can be slower than a 1-thread step: every parallel region
waits at its barrier for a worker thread that the kernel's scheduler has not run yet (measured
in ``benchmarks/bench_threads.py``: 7.6x slower at N = 1024 beside a CPU hog, where the step is
one chunk and a second thread has nothing to do but join). Which count wins depends on N and on
the load at the moment, so it is measured, not guessed: :class:`ThreadGovernor` runs each step
either at numba's current thread count (the ceiling: ``run.threads``, ``numba.set_num_threads``)
or at 1, keeps the wall times of the last ``window`` steps of each, runs the count with the
smaller median and now and then one step of the other (a probe) to follow a changing load. A
probe that loses doubles the wait for the next one (from ``probe_every`` up to ``max_interval``
steps), so a count that keeps losing costs at most one step in ``max_interval``.

The results do not change: a step is governed only when its kernel and optimizer declare
``thread_invariant = True`` (the built-in ones: their sums run over fixed chunks in a fixed
order; ``particledyn.testing.check_thread_determinism`` checks any kernel for it), so only the
time depends on the choice; any other kernel runs every step at numba's count, as set. Outside the step (observers, the
frame writer) numba's thread count is the ceiling, as set, and that is the count a run records.
``PARTICLEDYN_ADAPTIVE_THREADS=0`` in the environment turns the governor off (every step at the
ceiling).
"""

from __future__ import annotations

import os
import time
from collections import deque

import numba

__all__ = ["ThreadGovernor", "adaptive_threads_enabled"]

ENV = "PARTICLEDYN_ADAPTIVE_THREADS"


def adaptive_threads_enabled() -> bool:
    """Whether new governors choose the thread count per step (``PARTICLEDYN_ADAPTIVE_THREADS``,
    default on; ``0``, ``false``, ``no`` or ``off`` turn it off)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _median(values) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


class ThreadGovernor:
    """Choose 1 thread or numba's thread count for each step, whichever is faster now.

    Use as a context manager around one step's kernel calls; it sets numba's thread count on
    entry and puts the ceiling back on exit.

    Parameters
    ----------
    window : int
        Wall times kept per thread count; the choice compares their medians.
    probe_every : int
        Steps from the warm-up (or from a probe that changed the choice) to the next probe.
    max_interval : int
        The longest wait between probes (each losing probe doubles the wait up to this).
    warmup : int
        Steps of each count timed first (alternating) before the medians decide.
    enabled : bool or None
        None: :func:`adaptive_threads_enabled`.
    """

    def __init__(
        self,
        window: int = 9,
        probe_every: int = 16,
        max_interval: int = 256,
        warmup: int = 3,
        enabled: bool | None = None,
    ):
        numbers = (window, probe_every, max_interval, warmup)
        if not (
            all(int(v) == v for v in numbers)
            and window >= 1
            and 2 <= probe_every <= max_interval
            and 1 <= warmup <= window
        ):
            raise ValueError(
                f"window={window!r}, probe_every={probe_every!r}, max_interval={max_interval!r}, "
                f"warmup={warmup!r}: expected integers window >= 1, 2 <= probe_every <= max_interval, "
                "1 <= warmup <= window"
            )
        self.window, self.warmup = int(window), int(warmup)
        self.probe_every, self.max_interval = int(probe_every), int(max_interval)
        self.enabled = adaptive_threads_enabled() if enabled is None else bool(enabled)
        self.times: dict[int, deque] = {}
        self.used: dict[int, int] = {}
        self.last = 0  # the count the last step ran at
        self._steps = 0
        self._interval = self.probe_every
        self._next_probe = -1  # set when the warm-up ends
        self._ceiling = 0
        self._count = 0
        self._began = 0.0

    def _samples(self, count: int) -> deque:
        return self.times.setdefault(count, deque(maxlen=self.window))

    def _best(self, ceiling: int) -> int | None:
        """The count with the smaller median wall time; None while warming up."""
        one, full = self._samples(1), self._samples(ceiling)
        if len(one) < self.warmup or len(full) < self.warmup:
            return None
        return 1 if _median(one) < _median(full) else ceiling

    def choose(self, ceiling: int) -> int:
        """The thread count for the next step under numba's current count ``ceiling``."""
        if not self.enabled or ceiling <= 1:
            return ceiling
        best = self._best(ceiling)
        if best is None:
            return 1 if len(self._samples(1)) < len(self._samples(ceiling)) else ceiling
        if self._next_probe < 0:
            self._next_probe = self._steps + self._interval
        if self._steps >= self._next_probe:
            return ceiling if best == 1 else 1
        return best

    def record(self, count: int, ceiling: int, elapsed: float) -> None:
        """Account a step that ran at ``count`` threads under ``ceiling`` in ``elapsed`` s."""
        self.last = count
        if not self.enabled or ceiling <= 1:
            return
        before = self._best(ceiling)
        self._samples(count).append(elapsed)
        self.used[count] = self.used.get(count, 0) + 1
        if before is not None and count != before:  # a probe: did it change the choice?
            after = self._best(ceiling)
            self._interval = (
                self.probe_every if after != before else min(2 * self._interval, self.max_interval)
            )
            self._next_probe = self._steps + 1 + self._interval
        self._steps += 1

    def __enter__(self) -> ThreadGovernor:
        self._ceiling = numba.get_num_threads()
        self._count = self.choose(self._ceiling)
        if self._count != self._ceiling:
            numba.set_num_threads(self._count)
        self._began = time.perf_counter()
        return self

    def __exit__(self, kind, *exc) -> None:
        elapsed = time.perf_counter() - self._began
        if self._count != self._ceiling:
            numba.set_num_threads(self._ceiling)
        if kind is None:
            self.record(self._count, self._ceiling, elapsed)

    def summary(self) -> dict:
        """Steps the governor chose the count of, by thread count, the current wait between
        probes, and the median wall seconds per step of each count over its last ``window``."""
        return {
            "steps": dict(sorted(self.used.items())),
            "probe_interval": self._interval,
            "median_s": {k: _median(v) for k, v in sorted(self.times.items()) if v},
        }
