"""Whether a run's first step will compile its kernel with numba (a cold cache), so that the
command can say so before tens of seconds without output."""

from __future__ import annotations

import os
import sys

COMPILE_NOTICE = "compiling kernels (first run only; later runs load them from numba's cache) ..."


def cached_dispatchers(module_prefix: str) -> list:
    """The numba dispatchers with an on-disk cache (``cache=True``) of the loaded modules whose
    name starts with ``module_prefix`` (both compilations of a twinned parallel loop)."""
    from numba.core.caching import FunctionCache
    from numba.core.registry import CPUDispatcher

    from .serial_twins import twinned_dispatchers

    found: list[CPUDispatcher] = []
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(module_prefix):
            continue
        for member in list(vars(module).values()):
            for value in twinned_dispatchers(member):  # a parallel loop and its serial twin
                if isinstance(value, CPUDispatcher) and isinstance(
                    # ``_cache`` is set in the dispatcher's __init__, which numba's stubs do not declare
                    getattr(value, "_cache", None),
                    FunctionCache,
                ):
                    if all(value is not seen for seen in found):
                        found.append(value)
    return found


def kernels_cold(module_prefix: str) -> bool:
    """Whether the first call of a kernel defined under ``module_prefix`` will compile.

    Parameters
    ----------
    module_prefix : str
        A module name (``type(kernel).__module__``); its numba helper modules share the prefix
        (``particledyn.kernels.two_layer`` and ``particledyn.kernels.two_layer_numba``).

    Returns
    -------
    bool
        True when these modules have cached dispatchers, none compiled in this process and none
        with an index file in numba's cache: nothing of this kernel was ever cached.
    """
    dispatchers = cached_dispatchers(module_prefix)
    if not dispatchers or any(d.signatures for d in dispatchers):
        return False
    return not any(os.path.exists(d._cache._cache_file._index_path) for d in dispatchers)


def announce_compilation(kernel, progress: bool | None, stream=None) -> bool:
    """Print :data:`COMPILE_NOTICE` to ``stream`` (stderr) when ``kernel`` will compile and a
    progress bar is wanted (``progress`` True, or None on a terminal); returns whether it did."""
    stream = sys.stderr if stream is None else stream
    wanted = progress if progress is not None else stream.isatty()
    if not wanted or not kernels_cold(type(kernel).__module__):
        return False
    print(COMPILE_NOTICE, file=stream, flush=True)
    return True
