"""The collectives a sharded run is built from: blocks of particles, ordered sums, row
gathers and scatters, and agreement on an error so that no rank is left waiting."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

__all__ = ["shard_bounds", "rank_order_sum", "gather_rows", "scatter_rows", "agree", "world"]

T = TypeVar("T")


def world():
    """``mpi4py.MPI.COMM_WORLD``; ImportError with the install hint when mpi4py is missing."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            f"--mpi needs mpi4py and an MPI library: pip install -e '.[dist]' and openmpi ({exc})"
        ) from None
    return MPI.COMM_WORLD


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s block of ``n`` particles (sizes differ by at most one)."""
    if not (0 <= rank < size):
        raise ValueError(f"rank={rank!r}: expected 0 <= rank < size = {size}")
    base, extra = divmod(int(n), int(size))
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def rank_order_sum(comm, partial: np.ndarray) -> np.ndarray:
    """Sum of every rank's ``partial`` (same shape on all ranks), added in rank order (float64).

    An ``Allgather`` and R - 1 additions instead of ``Allreduce(SUM)``: MPI may add the
    partials in any order, this gives every rank the same bits, run after run, which
    exact resume needs. The aggregate is small (the batch's network outputs), so the
    R-fold message costs little.
    """
    partial = np.ascontiguousarray(partial, dtype=np.float64)
    gathered = np.empty((comm.Get_size(),) + partial.shape, dtype=np.float64)
    comm.Allgather(partial, gathered)
    total = gathered[0].copy()
    for r in range(1, gathered.shape[0]):
        total += gathered[r]
    return total


def _row_counts(comm, rows: int) -> list[int]:
    return comm.allgather(int(rows))


def gather_rows(comm, block: np.ndarray, root: int = 0) -> np.ndarray | None:
    """The ranks' row blocks stacked in rank order on ``root`` (None elsewhere): ``Gatherv``.

    Costs ``root`` one array of the full size (N rows).
    """
    block = np.ascontiguousarray(block)
    rows = _row_counts(comm, block.shape[0])
    width = int(np.prod(block.shape[1:], dtype=np.int64))
    if comm.Get_rank() != root:
        comm.Gatherv(block, None, root=root)
        return None
    full = np.empty((sum(rows),) + block.shape[1:], dtype=block.dtype)
    counts = [r * width for r in rows]
    comm.Gatherv(block, [full, counts], root=root)
    return full


def scatter_rows(comm, full: np.ndarray | None, n: int, root: int = 0) -> np.ndarray:
    """Rank r's block ``full[lo:hi]`` of ``root``'s array (``shard_bounds``): ``Scatterv``."""
    rank, size = comm.Get_rank(), comm.Get_size()
    meta = comm.bcast(None if full is None else (full.shape[1:], full.dtype.str), root=root)
    tail, dtype = meta
    width = int(np.prod(tail, dtype=np.int64))
    lo, hi = shard_bounds(n, rank, size)
    block = np.empty((hi - lo,) + tuple(tail), dtype=np.dtype(dtype))
    if rank == root:
        counts = [(b - a) * width for a, b in (shard_bounds(n, r, size) for r in range(size))]
        comm.Scatterv([np.ascontiguousarray(full), counts], block, root=root)
    else:
        comm.Scatterv(None, block, root=root)
    return block


class _Carried:
    """An exception in transit between ranks: its class, args and attributes, rebuilt without
    calling its ``__init__`` (whose signature pickling cannot know)."""

    def __init__(self, exc: BaseException):
        self.cls, self.args, self.attrs = type(exc), exc.args, dict(vars(exc))

    def rebuild(self) -> BaseException:
        exc = self.cls.__new__(self.cls, *self.args)
        exc.args = self.args
        vars(exc).update(self.attrs)
        return exc


def _portable(exc: BaseException) -> _Carried | BaseException:
    """``exc`` ready to send to the other ranks (a RuntimeError with its message if it cannot be)."""
    try:
        carried = _Carried(exc)
        pickle.loads(pickle.dumps(carried)).rebuild()
        return carried
    except Exception:  # noqa: BLE001 - any failure to carry it: send the message instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def agree(comm, action: Callable[[], T]) -> T:
    """Run ``action`` on every rank; if it raised on any, raise on every rank (collective).

    The failing rank re-raises its own exception; the others raise a copy of the lowest
    failing rank's. So every rank leaves the same way and none waits in a collective the
    failing one never reaches.
    """
    error: BaseException | None = None
    result: Any = None
    try:
        result = action()
    except Exception as exc:  # noqa: BLE001 - passed on to every rank below
        error = exc
    errors = comm.allgather(None if error is None else _portable(error))
    first = next((e for e in errors if e is not None), None)
    if first is None:
        return result
    if error is not None:
        raise error
    raise first.rebuild() if isinstance(first, _Carried) else first
