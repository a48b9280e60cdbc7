"""Numba's threading layer and OpenMP's wait policy, chosen when particledyn is imported.

numba's default layer on Linux is GNU OpenMP, whose idle threads spin at the barrier for a while
(``OMP_WAIT_POLICY=ACTIVE`` behaviour). On a shared machine a spinning or descheduled worker makes
a 2-thread step several times slower than a 1-thread step. particledyn therefore asks for
``OMP_WAIT_POLICY=PASSIVE`` (workers sleep when idle) before numba starts its thread pool.
The layer stays OpenMP: unlike numba's ``workqueue`` layer it is safe when several Python threads
launch parallel kernels at once (a Dask worker with ``threads_per_worker > 1``).

Both choices are defaults only: a ``NUMBA_THREADING_LAYER`` or ``OMP_WAIT_POLICY`` already in the
environment when particledyn is imported is kept as it is (e.g. ``OMP_WAIT_POLICY=ACTIVE`` for a
dedicated node, ``NUMBA_THREADING_LAYER=workqueue``). ``benchmarks/bench_threads.py`` measures the
configurations side by side, with and without a CPU hog.

A passive wait stops the spinning, not the waiting: with other jobs on the cores a parallel
region still waits at its barrier for a worker the kernel's scheduler has not run yet, and at a
small N (one chunk) the second thread has nothing to do. So each step then runs at 1 thread or at
numba's count, whichever measured faster (:mod:`particledyn.thread_governor`; the results are the
same at every count).
"""

from __future__ import annotations

import os

DEFAULT_LAYER = "omp"
"""numba threading layer particledyn asks for when ``NUMBA_THREADING_LAYER`` is not set."""
DEFAULT_WAIT_POLICY = "PASSIVE"
"""OpenMP wait policy particledyn asks for when ``OMP_WAIT_POLICY`` is not set."""

_choice: dict = {}


def configure_threading() -> dict:
    """Set the threading layer and OpenMP wait policy unless the environment already names them.

    Must run before numba starts its thread pool (the first parallel kernel call) and before
    libgomp is loaded; importing this module (particledyn does so first) calls it. Later calls
    change nothing.

    Returns
    -------
    dict
        ``layer`` and ``wait_policy`` in effect, and for each whether it came from the
        environment (``layer_source`` / ``wait_policy_source``: ``"environment"`` or
        ``"particledyn"``).
    """
    if _choice:
        return dict(_choice)
    layer_source = "environment" if os.environ.get("NUMBA_THREADING_LAYER") else "particledyn"
    wait_source = "environment" if os.environ.get("OMP_WAIT_POLICY") else "particledyn"
    os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_WAIT_POLICY)
    os.environ.setdefault("NUMBA_THREADING_LAYER", DEFAULT_LAYER)
    # numba imported before this point re-reads a changed environment before it compiles, so the
    # variable is enough; it matters only until the first parallel call starts the pool.
    _choice.update(
        layer=os.environ["NUMBA_THREADING_LAYER"],
        layer_source=layer_source,
        wait_policy=os.environ["OMP_WAIT_POLICY"],
        wait_policy_source=wait_source,
    )
    return dict(_choice)


def threading_choice() -> dict:
    """The layer and wait policy chosen at import (see :func:`configure_threading`)."""
    return configure_threading()


configure_threading()
