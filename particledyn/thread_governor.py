"""Per-step choice between 1 thread and numba's thread count, by the measured wall time.

On a shared machine a 2-thread step can be slower than a 1-thread step: every parallel region
waits at its barrier for a worker thread that the kernel's scheduler has not run yet (measured
in ``benchmarks/bench_threads.py``: several times slower at N = 1024 beside a CPU hog, where the
step is one chunk and a second thread has nothing to do but join). Which count wins depends on N
and on the load at the moment, so it is measured, not guessed: :class:`ThreadGovernor` runs each
step either at numba's current thread count (the ceiling: ``run.threads``,
``numba.set_num_threads``) or at 1, keeps the wall times of the last ``window`` steps of each,
runs the faster count and now and then a few steps of the other (a probe) to follow a changing
load.

Three things measured here shape the rules:

* **A step right after a change of count is not a sample of either.** Beside a hog, the first
  2-thread step after 1-thread steps waited ~10x longer than the next ones (its worker had slept
  and lost its core), and a 1-thread step after a 2-thread step ran up to 15 % slower than one
  after a 1-thread step (its caches were left on the other core). The first step after a change
  is therefore not recorded, a probe runs ``probe_steps`` steps (the first one a transition), and
  it is judged on its own fresh samples against the recent ones of the running count.
* **A losing probe costs at most** ``probe_budget`` **of the time until the next one**: its excess
  over the running count sets the least wait, besides the doubling from ``probe_every`` to
  ``max_interval`` steps. A probe that wins switches the count and the wait starts over.
* **The bookkeeping costs ~3 us a step** (numba's thread count is read and set through the
  threading layer's own functions, the medians are taken only when a decision is due), so a
  governed step at 1 thread costs what a 1-thread step costs, within noise, at N = 1024.

If the running count's recent median rises 25 % above the median the last decision was made on,
a probe runs at once (the load changed).

The results do not change: a step is governed only when its kernel and optimizer declare
``thread_invariant = True`` (the built-in ones: their sums run over fixed chunks in a fixed
order; ``particledyn.testing.check_thread_determinism`` checks any kernel for it), so only the
time depends on the choice; any other kernel runs every step at numba's count, as set. Outside
the step (observers, the frame writer) numba's thread count is the ceiling, as set, and that is
the count a run records. ``PARTICLEDYN_ADAPTIVE_THREADS=0`` in the environment turns the
governor off (every step at the ceiling).

A step at 1 thread runs the built-in loops as their serial twins (:mod:`particledyn.serial_twins`:
a ``parallel=False`` compilation of the same code, no parallel region, the same results), which
the loops decide from numba's thread count themselves; this module only sets the count.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque

import numba

__all__ = ["ThreadGovernor", "adaptive_threads_enabled"]

ENV = "PARTICLEDYN_ADAPTIVE_THREADS"
RISE = 1.25
"""A running count whose recent median exceeds its median at the last decision by this factor
is probed against the other count at once."""


def adaptive_threads_enabled() -> bool:
    """Whether new governors choose the thread count per step (``PARTICLEDYN_ADAPTIVE_THREADS``,
    default on; ``0``, ``false``, ``no`` or ``off`` turn it off)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _median(values) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def _thread_count_functions():
    """(get, set) of the calling thread's numba thread count.

    numba's public ``get_num_threads`` / ``set_num_threads`` check the pool and the argument on
    every call (1.5-2 us each, measured); once the pool runs, the threading layer's own functions
    do the same thing in ~0.3-0.6 us. The governor only ever sets 1 or a count numba returned.
    """
    numba.get_num_threads()  # starts the pool; the layer's functions exist from then on
    from numba.np.ufunc import parallel

    get, put = getattr(parallel, "_get_num_threads", None), getattr(parallel, "_set_num_threads", None)
    if callable(get) and callable(put):
        return get, put
    return numba.get_num_threads, numba.set_num_threads


class ThreadGovernor:
    """Choose 1 thread or numba's thread count for each step, whichever is faster now.

    Use as a context manager around one step's kernel calls; it sets numba's thread count on
    entry and puts the ceiling back on exit.

    Parameters
    ----------
    window : int
        Wall times kept per thread count; decisions compare their medians.
    probe_every : int
        Steps from the warm-up (or from a probe that changed the choice) to the next probe.
    max_interval : int
        The longest wait between probes from doubling (each losing probe doubles the wait up to
        this); ``probe_budget`` can make a wait longer.
    warmup : int
        Samples of each count (ceiling first, then 1) taken before the first decision.
    probe_steps : int
        Steps of the other count in one probe; the first is a transition and is not recorded.
    probe_budget : float
        A losing probe's extra time, as a fraction of the running count's time until the next
        probe, at most this (0 < probe_budget <= 1).
    enabled : bool or None
        None: :func:`adaptive_threads_enabled`.
    """

    def __init__(
        self,
        window: int = 9,
        probe_every: int = 16,
        max_interval: int = 256,
        warmup: int = 3,
        probe_steps: int = 3,
        probe_budget: float = 0.01,
        enabled: bool | None = None,
    ):
        numbers = (window, probe_every, max_interval, warmup, probe_steps)
        if not (
            all(isinstance(v, (int, float)) and int(v) == v for v in numbers)
            and window >= 1
            and 2 <= probe_every <= max_interval
            and 1 <= warmup <= window
            and 2 <= probe_steps <= window + 1
        ):
            raise ValueError(
                f"window={window!r}, probe_every={probe_every!r}, max_interval={max_interval!r}, "
                f"warmup={warmup!r}, probe_steps={probe_steps!r}: expected integers window >= 1, "
                "2 <= probe_every <= max_interval, 1 <= warmup <= window, 2 <= probe_steps <= window + 1"
            )
        if not (isinstance(probe_budget, (int, float)) and 0 < probe_budget <= 1):
            raise ValueError(f"probe_budget={probe_budget!r}: expected a number in (0, 1]")
        self.window, self.warmup = int(window), int(warmup)
        self.probe_every, self.max_interval = int(probe_every), int(max_interval)
        self.probe_steps, self.probe_budget = int(probe_steps), float(probe_budget)
        self.enabled = adaptive_threads_enabled() if enabled is None else bool(enabled)
        self.times: dict[int, deque] = {}
        self.used: dict[int, int] = {}
        self.last = 0  # the count the last step ran at (0: none yet)
        self._functions: tuple | None = None  # numba's (get, set) thread count, fetched on first use
        self._reset(0)
        self._count = 0
        self._began = 0.0

    def _reset(self, ceiling: int) -> None:
        """Start over for a new ceiling: warm-up, no samples, the shortest wait."""
        self.times.clear()
        self._for_ceiling = ceiling
        self._running = 0  # the chosen count (0 during the warm-up)
        self._reference = 0.0  # the running count's median at the last decision
        self._probe_left = 0  # steps of the current probe still to run
        self._probe_spent = 0.0  # wall seconds of the current probe
        self._steps = 0
        self._interval = self.probe_every
        self._next_probe = 0
        self._earliest = 0  # the first step a load change may probe at (the probe budget)

    def _samples(self, count: int) -> deque:
        samples = self.times.get(count)
        if samples is None:
            samples = self.times[count] = deque(maxlen=self.window)
        return samples

    def choose(self, ceiling: int) -> int:
        """The thread count for the next step under numba's current count ``ceiling``."""
        if not self.enabled or ceiling <= 1:
            return ceiling
        if ceiling != self._for_ceiling:
            self._reset(ceiling)
        if not self._running:  # warm-up: the ceiling's samples, then 1 thread's
            return ceiling if len(self._samples(ceiling)) < self.warmup else 1
        other = 1 if self._running == ceiling else ceiling
        if self._probe_left:
            return other
        if self._steps >= self._next_probe:
            self._probe_left, self._probe_spent = self.probe_steps, 0.0
            self._samples(other).clear()  # judged on fresh samples only
            return other
        return self._running

    def record(self, count: int, ceiling: int, elapsed: float) -> None:
        """Account a step that ran at ``count`` threads under ``ceiling`` in ``elapsed`` s."""
        transition = count != self.last  # its time belongs to neither count
        self.last = count
        if not self.enabled or ceiling <= 1 or ceiling != self._for_ceiling:
            return
        self._steps += 1
        self.used[count] = self.used.get(count, 0) + 1
        if not transition:
            self._samples(count).append(elapsed)
        if not self._running:
            if len(self._samples(1)) >= self.warmup:
                self._decide(ceiling)
            return
        if self._probe_left:
            self._probe_left -= 1
            self._probe_spent += elapsed
            if not self._probe_left:
                self._decide(ceiling)
        elif not transition and self._steps % self.window == 0:  # a fresh window's worth since
            if self._steps < self._next_probe and _median(self._samples(count)) > RISE * self._reference:
                self._next_probe = max(self._steps, self._earliest)  # the load changed: probe soon

    def _decide(self, ceiling: int) -> None:
        """After the warm-up or a probe: run the count with the smaller median, and set the wait
        until the next probe."""
        before = self._running
        medians = {c: _median(self._samples(c)) for c in (1, ceiling) if self._samples(c)}
        if len(medians) < 2:  # a probe left no sample (cannot happen with probe_steps >= 2)
            best = before or ceiling
        else:
            best = 1 if medians[1] < medians[ceiling] else ceiling
        self._running = best
        self._reference = medians.get(best, 0.0)
        least = 0
        if best != before:
            self._interval = self.probe_every
        else:
            self._interval = min(2 * self._interval, self.max_interval)
            excess = self._probe_spent - self.probe_steps * self._reference
            if self._reference > 0 and excess > 0:
                least = math.ceil(excess / (self.probe_budget * self._reference))
        self._earliest = self._steps + least
        self._next_probe = self._steps + max(self._interval, least)

    def __enter__(self) -> ThreadGovernor:
        functions = self._functions
        if functions is None:
            functions = self._functions = _thread_count_functions()
        ceiling = self._ceiling = functions[0]()
        if self._running and ceiling == self._for_ceiling and self.enabled:  # between probes: no call
            self._count = self._running if self._steps < self._next_probe else self.choose(ceiling)
        else:
            self._count = self.choose(ceiling)
        if self._count != ceiling:
            functions[1](self._count)
        self._began = time.perf_counter()
        return self

    def __exit__(self, kind, *exc) -> None:
        elapsed = time.perf_counter() - self._began
        if self._count != self._ceiling and self._functions is not None:
            self._functions[1](self._ceiling)
        if kind is None:
            self.record(self._count, self._ceiling, elapsed)

    def summary(self) -> dict:
        """Steps the governor chose the count of, by thread count, the count it runs (None during
        the warm-up), the current wait between probes, and the median wall seconds per step of
        each count over its recorded steps (at most ``window``)."""
        return {
            "steps": dict(sorted(self.used.items())),
            "running": self._running or None,
            "probe_interval": self._interval,
            "median_s": {k: _median(v) for k, v in sorted(self.times.items()) if v},
        }
