"""Parallel numba loops that run as a serial compilation of themselves at one thread.

A ``parallel=True`` function enters a parallel region (the threading layer's launch and barrier)
on every call, even when numba's thread count is 1. Measured at N = 1024, B = 128 (the step of
``benchmarks/bench_step.py``, one thread, float32): ~1.5 us of a 2-3 us elementwise update
(GD's direction, ``apply_step``) and ~2-3 us of each two-layer pass, ~9-16 us of a ~150 us step.
A function decorated with :func:`parallel_loop` is compiled twice from the same Python code:
with ``parallel=True`` and with ``parallel=False`` (where ``prange`` is a plain ``range``, no
region), and each call runs the serial one when the calling thread's numba count is 1 -- what a
governed step at 1 thread (:mod:`particledyn.thread_governor`) and ``--threads 1`` set. That test
in :meth:`TwinnedLoop.__call__` is the one place the choice is made.

The two compile the same loops over the same fixed chunks in the same order (the chunking is in
the code, not in numba's scheduler), so their results are bit-identical; the tests check each
twinned loop against its parallel compilation at 1 and 2 threads, in float32 and float64. Each
compilation happens on its first call (a run that never uses one thread never compiles a twin)
and is cached on disk apart from the other: numba's cache index does not tell ``parallel=True``
from ``parallel=False``, so the serial twin compiles a copy of the function under the name
``<name>_serial``. Measured (the GD step of ``bench_step.py``, N = 1024, cold cache, load 5-15
on 2 cores): the twins add 7.3 s (float32) / 9.4 s (float64) to the first 1-thread step, once
per machine, against 12.7 / 18.2 s for the parallel compilations; from the cache they load in
0.04 / 0.06 s.

``PARTICLEDYN_SERIAL_TWINS=0`` in the environment (read at import) or
:func:`set_serial_twins` ``(False)`` makes every call run the parallel compilation, at any count
(what ``benchmarks/bench_threads.py`` compares against).
"""

from __future__ import annotations

import os
import types
from typing import Any

import numba

__all__ = ["TwinnedLoop", "parallel_loop", "serial_twins_enabled", "set_serial_twins", "twinned_dispatchers"]

ENV = "PARTICLEDYN_SERIAL_TWINS"
SUFFIX = "_serial"
"""Appended to the serial twin's function name (its on-disk cache files)."""

_get_threads: Any = None  # numba's thread count of the calling thread, fetched on first use


def serial_twins_enabled() -> bool:
    """Whether twinned loops run their serial twin at one thread (``PARTICLEDYN_SERIAL_TWINS``,
    read at import, default on; ``0``, ``false``, ``no`` or ``off`` turn it off), unless
    :func:`set_serial_twins` changed it since."""
    return _enabled


def set_serial_twins(enabled: bool) -> None:
    """Run the serial twins at one thread (True) or the parallel compilations always (False),
    from the next call on, in every thread of the process."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled={enabled!r}: expected True or False")
    _enabled = enabled


_enabled = os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _renamed(function: types.FunctionType, name: str) -> types.FunctionType:
    """A copy of ``function`` (same code, globals, defaults and closure) called ``name``."""
    copy = types.FunctionType(
        function.__code__, function.__globals__, name, function.__defaults__, function.__closure__
    )
    copy.__qualname__ = function.__qualname__ + SUFFIX
    copy.__module__, copy.__doc__ = function.__module__, function.__doc__
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


class TwinnedLoop:
    """A numba function compiled with ``parallel=True`` and, as its twin, with ``parallel=False``.

    Parameters
    ----------
    function : function
        The Python function (its loops over ``numba.prange``).
    options : dict
        ``numba.njit`` options besides ``parallel``.

    Attributes
    ----------
    parallel, serial : numba dispatcher
        The two compilations (each compiles on its first call).
    """

    def __init__(self, function: types.FunctionType, options: dict):
        if "parallel" in options:
            raise ValueError(f"options={options!r}: expected no 'parallel' (both compilations are made)")
        self.parallel = numba.njit(parallel=True, **options)(function)
        self.serial = numba.njit(parallel=False, **options)(_renamed(function, function.__name__ + SUFFIX))
        self.py_func = function
        self.__name__, self.__qualname__ = function.__name__, function.__qualname__
        self.__doc__, self.__module__ = function.__doc__, function.__module__
        self.__wrapped__ = function

    def __call__(self, *args):
        """The serial twin when the calling thread's numba count is 1 (and twins are on), else the
        parallel loop."""
        global _get_threads
        get = _get_threads
        if get is None:
            from .thread_governor import _thread_count_functions

            get = _get_threads = _thread_count_functions()[0]
        return (self.serial if _enabled and get() == 1 else self.parallel)(*args)

    def __repr__(self) -> str:
        return f"TwinnedLoop({self.__module__}.{self.__qualname__})"


def parallel_loop(**options):
    """Decorator: ``numba.njit(parallel=True, **options)`` with a serial twin (:class:`TwinnedLoop`).

    Parameters
    ----------
    **options
        ``numba.njit`` options besides ``parallel`` (e.g. ``error_model``, ``fastmath``, ``cache``).

    Returns
    -------
    callable
        Turns a function into a :class:`TwinnedLoop`.
    """
    if options.pop("parallel", True) is not True:
        raise ValueError("parallel_loop(parallel=False): expected parallel=True or no 'parallel'")

    def decorate(function):
        return TwinnedLoop(function, options)

    return decorate


def twinned_dispatchers(value) -> list:
    """The numba dispatchers of ``value``: both compilations of a :class:`TwinnedLoop`, else
    ``[value]``."""
    if isinstance(value, TwinnedLoop):
        return [value.parallel, value.serial]
    return [value]
