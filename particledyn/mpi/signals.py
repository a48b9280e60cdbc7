"""SIGINT and SIGTERM in a sharded run: every rank stops at the same step boundary.

A signal reaches one rank (``kill`` of a rank) or all of them (mpiexec forwards what it gets);
either way each rank only notes it. At every step boundary the ranks agree with one tiny
``allreduce(MAX)`` of the signal number: if any rank has one, all stop there, after that
step's checkpoint, and the file is resumable. A second signal does not abandon the step, as
it does in a single process: a rank leaving a step alone would leave the others waiting in
its collectives, so the step always ends first.
"""

from __future__ import annotations

from ..interrupts import Deferral, Interrupted

__all__ = ["CollectiveDeferral"]


class CollectiveDeferral(Deferral):
    """A :class:`~particledyn.interrupts.Deferral` whose :meth:`check` is collective."""

    def __init__(self, comm):
        super().__init__()
        self.comm = comm

    def check(self, step: int | None = None) -> None:
        from mpi4py import MPI

        agreed = self.comm.allreduce(self.signum or 0, op=MPI.MAX)
        if agreed:
            if self.signum is None:
                self.signum = agreed
            self.abortable, self.raised = False, True
            raise Interrupted(self.signum, step)

    def _handle(self, signum, frame):
        self.count += 1
        self.request_stop(signum)
