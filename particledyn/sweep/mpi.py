"""One run sharded across MPI ranks (mpi4py): particles split, only the aggregate exchanged.

A two-layer net is a DeepSets kernel whose aggregate is the network output F (B x C) on the
step's batch. Each rank holds a contiguous block of particles (with their global masses,
1/N for mean-field scaling), computes its partial F with the fused forward loop, and the
ranks exchange those partials: every rank gathers all of them (``Allgather``) and sums them
in rank order, so the total is the same on every rank and from run to run (MPI's own SUM
may add in any order). With F known, G = dL/dF follows and each rank computes the field on
its own particles; the optimizer step is per particle and needs nothing else. The
mini-batch of step t derives from (seed, t), the same on every rank.

The result equals the single-process run up to the order of one floating-point sum per
step (the single process adds its 2048-particle chunk partials in one sequence): 1e-12 in
float64 over short runs, tested.

Run::

    mpiexec -n 2 python -m particledyn.sweep.mpi SCENARIO.toml --steps 100 --out final.npz

(as root, OpenMPI needs ``--allow-run-as-root --oversubscribe``; add ``--bind-to none`` when a
rank runs several numba threads). Observers are not run in a
sharded run; rank 0 writes the final positions and the time per step.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from ..kernel import Kernel
from ..scenario.resolved import ResolvedScenario

__all__ = ["ShardedTwoLayer", "rank_order_sum", "shard_bounds", "run_sharded", "mpi_main"]


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s block of ``n`` particles (sizes differ by at most one)."""
    if not (0 <= rank < size):
        raise ValueError(f"rank={rank!r}: expected 0 <= rank < size = {size}")
    base, extra = divmod(int(n), int(size))
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def rank_order_sum(comm, partial: np.ndarray) -> np.ndarray:
    """Sum of every rank's ``partial`` (same shape on all ranks), added in rank order.

    Deterministic, unlike ``Allreduce(SUM)``: every rank gets the same bits, run after run.
    """
    partial = np.ascontiguousarray(partial, dtype=np.float64)
    gathered = np.empty((comm.Get_size(),) + partial.shape, dtype=np.float64)
    comm.Allgather(partial, gathered)
    total = gathered[0].copy()
    for r in range(1, gathered.shape[0]):
        total += gathered[r]
    return total


class ShardedTwoLayer(Kernel):
    """The per-rank view of a :class:`~particledyn.kernels.TwoLayerNet` whose particles are
    split across the ranks of ``comm``.

    Parameters
    ----------
    kernel : TwoLayerNet
        The full kernel (same data on every rank).
    comm : mpi4py.MPI.Comm

    Notes
    -----
    ``field`` and ``loss`` are collective: every rank must call them at the same step.
    Positions and masses passed in are the rank's own block; masses are the global ones.
    """

    is_gradient = True

    def __init__(self, kernel, comm):
        from ..kernels import TwoLayerNet

        if not isinstance(kernel, TwoLayerNet):
            raise TypeError(
                f"kernel {type(kernel).__name__}: expected a TwoLayerNet (the sharded "
                "run exchanges its network outputs)"
            )
        self.kernel, self.comm = kernel, comm
        self.dim, self.name = kernel.dim, f"sharded_{kernel.name}"

    def context(self, step, rng, batch_size):
        return self.kernel.context(step, rng, batch_size)

    def evaluation_context(self):
        return self.kernel.evaluation_context()

    def outputs(self, positions, masses, inputs) -> np.ndarray:
        """Network outputs F (B, C) of all ranks' particles (collective)."""
        return rank_order_sum(self.comm, self.kernel.outputs(positions, masses, inputs))

    def field(self, positions, masses, context):
        inputs, targets = context
        outputs = self.outputs(positions, masses, inputs)
        return self.kernel.field_given_outputs(positions, inputs, targets, outputs)

    def loss(self, positions, masses, context):
        from ..kernels.two_layer_reference import loss_and_output_gradient

        inputs, targets = context
        outputs = self.outputs(positions, masses, inputs)
        return loss_and_output_gradient(outputs, targets, self.kernel.loss_name)[0]


def run_sharded(resolved: ResolvedScenario, comm, steps: int | None = None) -> dict:
    """Run a resolved scenario with its particles split across ``comm``'s ranks (collective).

    Every rank builds the same data and initial cloud (both derive from the seeds), keeps its
    block and steps it; observers of the scenario are not run.

    Returns
    -------
    dict
        On rank 0: ``positions`` (N, D) at the end, ``seconds_per_step`` (wall, barrier to
        barrier), ``steps``, ``ranks``, ``n``; on other ranks ``positions`` is None.
    """
    from ..runner import prepare
    from ..simulation import Simulation
    from ..sinks import MemorySink

    prepared = prepare(resolved, positions=True)
    x, m = prepared.positions, prepared.masses
    lo, hi = shard_bounds(x.shape[0], comm.Get_rank(), comm.Get_size())
    kernel = ShardedTwoLayer(prepared.kernel, comm)
    run, optimizer = resolved.run, resolved.optimizer
    steps = int(run.steps if steps is None else steps)
    sim = Simulation(
        kernel,
        x[lo:hi],
        optimizer=prepared.optimizer,
        lr=prepared.schedule,
        masses=m[lo:hi],
        seed=run.seed,
        batch_size=optimizer.batch_size,
        observers=(),
        sink=MemorySink(keep_frames=False),
        frame_every=0,
        dtype=run.dtype,
    )
    # a rank stopping at its own step boundary would leave the others blocked in the next Allreduce
    sim.defer_signals = False
    sim.step()  # compile and warm up outside the timing; counted in the steps
    comm.Barrier()
    began = time.perf_counter()
    sim.run(steps - 1, progress=False)
    comm.Barrier()
    elapsed = time.perf_counter() - began
    blocks = comm.gather(sim.positions, root=0)
    result = {
        "positions": None,
        "seconds_per_step": elapsed / max(1, steps - 1),
        "steps": steps,
        "ranks": comm.Get_size(),
        "n": int(x.shape[0]),
    }
    if comm.Get_rank() == 0:
        result["positions"] = np.concatenate(blocks, axis=0)
    return result


def mpi_main(argv: Sequence[str] | None = None) -> int:
    """``mpiexec -n R python -m particledyn.sweep.mpi SCENARIO.toml [--steps] [--n] [--threads] [--out]``."""
    parser = argparse.ArgumentParser(
        prog="python -m particledyn.sweep.mpi",
        description="Run a two-layer scenario with its particles split across the MPI ranks.",
    )
    parser.add_argument("scenario", metavar="SCENARIO.toml")
    parser.add_argument("--steps", type=int, help="number of steps (default: run.steps)")
    parser.add_argument("--n", type=int, help="number of particles (overrides init.n)")
    parser.add_argument("--threads", type=int, default=1, help="numba threads per rank (default 1)")
    parser.add_argument("--out", help="rank 0 writes the final positions and timing here (.npz)")
    args = parser.parse_args(argv)

    import numba
    from mpi4py import MPI

    from ..scenario import load_scenario

    comm = MPI.COMM_WORLD
    numba.set_num_threads(args.threads)
    overrides = {"run.threads": args.threads}
    if args.n is not None:
        overrides["init.n"] = args.n
    scenario = load_scenario(args.scenario, overrides)
    result = run_sharded(scenario.resolved, comm, args.steps)
    if comm.Get_rank() == 0:
        print(
            f"ranks={result['ranks']} n={result['n']} steps={result['steps']} "
            f"seconds_per_step={result['seconds_per_step']:.6g}",
            flush=True,
        )
        if args.out:
            np.savez(
                args.out,
                positions=result["positions"],
                seconds_per_step=result["seconds_per_step"],
                ranks=result["ranks"],
            )
    return 0


if __name__ == "__main__":
    sys.exit(mpi_main())
