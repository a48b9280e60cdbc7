"""Benchmark of the sharded step: seconds per step and memory per rank, without a file.

Runs (observers off, nothing written) are ``particledyn run --mpi`` (:mod:`particledyn.mpi`);
this entry point times the same sharded step (:class:`~particledyn.mpi.simulation.ShardedSimulation`,
one code path) and reports each rank's peak resident memory::

    mpiexec -n 2 python -m particledyn.sweep.mpi SCENARIO.toml --steps 6 --n 1000000
    python -m particledyn.sweep.mpi SCENARIO.toml --single ...   # the single-process peer

(as root, OpenMPI needs ``--allow-run-as-root --oversubscribe``; add ``--bind-to none`` when a
rank runs several numba threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from collections.abc import Sequence

import numpy as np

from ..scenario.resolved import ResolvedScenario

__all__ = ["run_sharded", "run_single", "mpi_main"]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _timed(sim, steps: int, barrier) -> tuple[float, float]:
    """(wall, this process's CPU) seconds per step after a warm-up step."""
    sim.step()  # compile and warm up outside the timing; counted in the steps
    barrier()
    began, cpu = time.perf_counter(), time.process_time()
    sim.run(steps - 1, progress=False)
    cpu = time.process_time() - cpu
    barrier()
    timed = max(1, steps - 1)
    return (time.perf_counter() - began) / timed, cpu / timed


def run_sharded(resolved: ResolvedScenario, comm, steps: int | None = None) -> dict:
    """Step a resolved scenario sharded over ``comm``'s ranks, no observers, no file (collective).

    Returns
    -------
    dict
        On rank 0: ``positions`` (N, D) at the end, ``seconds_per_step`` (wall, barrier to
        barrier), ``cpu_seconds_per_step`` and ``peak_rss_mib`` (per rank), ``steps``, ``ranks``,
        ``n``; elsewhere ``positions``, ``cpu_seconds_per_step`` and ``peak_rss_mib`` are None.
    """
    from ..mpi.comm import gather_rows
    from ..mpi.kernels import ShardedKernel
    from ..mpi.run import _form, shard_start
    from ..mpi.simulation import ShardedSimulation
    from ..runner import prepare, start_size
    from ..sinks import MemorySink

    prepared = prepare(resolved, positions=False)
    n = start_size(resolved.init)
    form = _form(prepared)
    x, m = shard_start(prepared, comm, n)
    prepared.masses = None  # as run --mpi once the file has them
    run = resolved.run
    steps = int(run.steps if steps is None else steps)
    sim = ShardedSimulation(
        ShardedKernel(form, comm),
        x,
        comm,
        optimizer=prepared.optimizer,
        lr=prepared.schedule,
        masses=m,
        seed=run.seed,
        batch_size=resolved.optimizer.batch_size,
        sink=MemorySink(keep_frames=False),
        frame_every=0,
        dtype=run.dtype,
    )
    sim.defer_signals = False  # nothing to checkpoint: a signal ends the benchmark where it lands
    seconds, cpu = _timed(sim, steps, comm.Barrier)
    rss = comm.gather(_peak_rss_mib(), root=0)  # the run's peak, before the gather below
    positions = gather_rows(comm, sim.positions)
    return {
        "positions": positions,
        "seconds_per_step": seconds,
        "cpu_seconds_per_step": comm.gather(cpu, root=0),
        "steps": steps,
        "ranks": comm.Get_size(),
        "n": n,
        "peak_rss_mib": rss,
    }


def run_single(resolved: ResolvedScenario, steps: int | None = None) -> dict:
    """The same steps in one process (the peer of :func:`run_sharded`)."""
    from ..runner import prepare
    from ..simulation import Simulation
    from ..sinks import MemorySink

    prepared = prepare(resolved, positions=True)
    run = resolved.run
    steps = int(run.steps if steps is None else steps)
    sim = Simulation(
        prepared.kernel,
        prepared.positions,
        optimizer=prepared.optimizer,
        lr=prepared.schedule,
        masses=prepared.masses,
        seed=run.seed,
        batch_size=resolved.optimizer.batch_size,
        sink=MemorySink(keep_frames=False),
        frame_every=0,
        dtype=run.dtype,
    )
    prepared.positions = None
    seconds, cpu = _timed(sim, steps, lambda: None)
    return {
        "positions": sim.positions,
        "seconds_per_step": seconds,
        "cpu_seconds_per_step": [cpu],
        "steps": steps,
        "ranks": 0,
        "n": int(sim.positions.shape[0]),
        "peak_rss_mib": [_peak_rss_mib()],
    }


def mpi_main(argv: Sequence[str] | None = None) -> int:
    """``[mpiexec -n R] python -m particledyn.sweep.mpi SCENARIO.toml [--steps] [--n] [--threads]
    [--single] [--out]``."""
    parser = argparse.ArgumentParser(
        prog="python -m particledyn.sweep.mpi",
        description="Time the sharded step of a scenario (observers off, no file) on the MPI ranks.",
    )
    parser.add_argument("scenario", metavar="SCENARIO.toml")
    parser.add_argument("--steps", type=int, help="number of steps (default: run.steps)")
    parser.add_argument("--n", type=int, help="number of particles (overrides init.n)")
    parser.add_argument("--threads", type=int, default=1, help="numba and BLAS threads per rank (default 1)")
    parser.add_argument("--single", action="store_true", help="one process, no MPI: the peer")
    parser.add_argument("--out", help="the final positions and timing go here (.npz, rank 0)")
    args = parser.parse_args(argv)

    from ..runner import set_threads
    from ..scenario import load_scenario

    set_threads(args.threads)  # numba's and BLAS's, as a run sets them
    overrides = {"run.threads": args.threads}
    if args.n is not None:
        overrides["init.n"] = args.n
    resolved = dataclasses.replace(load_scenario(args.scenario, overrides).resolved, observers=())
    if args.single:
        result, root = run_single(resolved, args.steps), True
    else:
        from ..mpi.comm import world

        comm = world()
        result, root = run_sharded(resolved, comm, args.steps), comm.Get_rank() == 0
    if root:
        rss = " ".join(f"{v:.0f}" for v in result["peak_rss_mib"])
        cpu = " ".join(f"{v:.6g}" for v in result["cpu_seconds_per_step"])
        print(
            f"ranks={result['ranks']} n={result['n']} steps={result['steps']} "
            f"seconds_per_step={result['seconds_per_step']:.6g} cpu_seconds_per_step={cpu} "
            f"peak_rss_mib={rss}",
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
