"""The simulation loop of one rank of a sharded run: the ordinary loop on the rank's block.

What differs from a single process is confined to two seams: the kernel
(:class:`~particledyn.mpi.kernels.ShardedKernel`: the field reduces the aggregate) and the
backend (:class:`ShardedBackend`: after the in-place update the ranks add up their counts of
non-finite entries, so a divergence stops every rank at the same step); the growth test's
cloud radius is the maximum over the ranks.
"""

from __future__ import annotations

from ..backends import Backend
from ..simulation import Simulation

__all__ = ["ShardedBackend", "ShardedSimulation"]


class ShardedBackend(Backend):
    """Host arrays stepped by the numba loops; the step's non-finite count summed over ``comm``."""

    name = "numba"

    def __init__(self, comm):
        super().__init__()
        self.comm = comm

    def apply_step(self, positions, direction, lr: float) -> int:
        from mpi4py import MPI

        return int(self.comm.allreduce(super().apply_step(positions, direction, lr), op=MPI.SUM))


class ShardedSimulation(Simulation):
    """A :class:`~particledyn.Simulation` of one rank's block (its ``kernel`` a ShardedKernel)."""

    def __init__(self, kernel, positions, comm, **options):
        self.comm = comm
        super().__init__(kernel, positions, backend=ShardedBackend(comm), **options)

    def _cloud_radius(self, positions) -> float:
        from mpi4py import MPI

        return float(self.comm.allreduce(super()._cloud_radius(positions), op=MPI.MAX))
