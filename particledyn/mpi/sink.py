"""One run file for all ranks: rank 0 writes it, the others send it their blocks.

h5py here has no MPI driver (``h5py.get_config().mpi`` is False in the shipped environment),
and the H5MD writer is serial, so every frame and checkpoint is gathered to rank 0
(``Gatherv``, rank 0 holds N x D numbers per array while it writes) and written there in
the normal particledyn format; observables are the same on every rank, rank 0 writes them.
Each call ends with an agreement (:func:`~particledyn.mpi.comm.agree`): a write that fails
on rank 0 raises the same error on every rank, so the loop's clean-up runs everywhere alike.
"""

from __future__ import annotations

from ..sinks import Sink
from .comm import agree, gather_rows

__all__ = ["ShardedSink"]


class ShardedSink(Sink):
    """Every rank's sink of a sharded run; ``inner`` (rank 0 only) is the run's file sink.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    inner : Sink or None
        The sink that writes (a :class:`particledyn.runner.RunSink`), on rank 0; None elsewhere.
    frame_state : bool
        Whether frames carry the optimizer state (``output.optimizer_state``): it is gathered too.
    """

    def __init__(self, comm, inner: Sink | None, frame_state: bool):
        self.comm, self.inner, self.frame_state = comm, inner, bool(frame_state)
        self.root = comm.Get_rank() == 0

    def _on_root(self, method: str, *args):
        agree(self.comm, lambda: getattr(self.inner, method)(*args) if self.root else None)

    def write_frame(self, step, time, positions, optimizer_state):
        full = gather_rows(self.comm, positions)
        state = {}
        if self.frame_state:
            state = {k: gather_rows(self.comm, v) for k, v in (optimizer_state or {}).items()}
        self._on_root("write_frame", step, time, full, state)

    def describe_observer(self, name, description):
        self._on_root("describe_observer", name, description)

    def write_observables(self, name, step, time, values):
        self._on_root("write_observables", name, step, time, values)

    def write_checkpoint(self, checkpoint):
        comm = self.comm
        full = {
            **checkpoint,
            "positions": gather_rows(comm, checkpoint["positions"]),
            "masses": gather_rows(comm, checkpoint["masses"]),
            "optimizer_state": {k: gather_rows(comm, v) for k, v in checkpoint["optimizer_state"].items()},
            "mpi": {"ranks": comm.Get_size()},
        }
        self._on_root("write_checkpoint", full)

    def close(self, finished):
        self._on_root("close", finished)
