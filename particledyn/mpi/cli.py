"""What ``particledyn run --mpi`` changes in the ``run`` command: the runner functions, the
collective signal deferral, and a quiet stdout/stderr on every rank but 0 (rank 0 says
everything once; a rank that fails unexpectedly still prints its traceback and aborts the job)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

__all__ = ["is_root", "deferral", "runners", "run_command"]


def is_root() -> bool:
    """Whether this process is rank 0 of MPI_COMM_WORLD."""
    from .comm import world

    return world().Get_rank() == 0


def deferral():
    """The outermost signal deferral of an MPI run: collective at every step boundary."""
    from .comm import world
    from .signals import CollectiveDeferral

    return CollectiveDeferral(world())


def runners() -> tuple[Callable, Callable]:
    """``(start, resume)`` with the signatures of :func:`~particledyn.runner.start_run` and
    :func:`~particledyn.runner.resume_run`, sharded."""
    from .run import resume_mpi_run, start_mpi_run

    return start_mpi_run, resume_mpi_run


def run_command(command: Callable[[], int]) -> int:
    """Run the ``run`` command on this rank: quiet off rank 0; an unexpected exception on any
    rank prints its traceback and aborts every rank (the others would wait in a collective)."""
    from .comm import world

    try:
        comm = world()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2  # EXIT_USAGE
    stderr = sys.__stderr__
    if comm.Get_rank() != 0:
        quiet = open(os.devnull, "w")
        sys.stdout = sys.stderr = quiet
    try:
        return command()
    except Exception:
        if stderr is not None:
            print(f"rank {comm.Get_rank()}: unexpected error, aborting all ranks", file=stderr)
            traceback.print_exc(file=stderr)
            stderr.flush()
        comm.Abort(1)
        raise
