"""``particledyn run --mpi``: a scenario run sharded over the ranks of ``mpiexec``, one file.

Each rank holds its block of the particles (:func:`~particledyn.mpi.comm.shard_bounds`), their
optimizer state and the (small) data set. Each rank builds its own block of the initial cloud,
bit-identical to those rows of the single process's (:func:`shard_start`); rank 0 alone writes
the run file (:mod:`particledyn.mpi.sink`), so it holds N x D numbers while it writes a frame or
a checkpoint, or runs a gathered observer. The file is the normal particledyn run file with
``parameters/mpi.ranks`` and a ``mpi`` entry in every checkpoint: ``particledyn info``, ``plot``
and :func:`particledyn.io.open_run` read it as any other; ``--mpi --resume`` continues it on
the same number of ranks (another count is refused: the sums would be added in another order,
and the run would no longer be bit-identical to one never interrupted).
"""

from __future__ import annotations

import os
import sys
import time as _time

import numpy as np

from ..divergence import GrowthRule, describe, divergence_of
from ..interrupts import deferred_signals
from ..runner import (
    ResumeError,
    RunResult,
    RunSink,
    _comparable,
    _first_difference,
    _metadata,
    _ThreadsRestored,
    load_recorded_plugins,
    prepare,
    reopen_run_file,
    restorable_by,
    set_threads,
    sink_options,
    start_positions,
    start_size,
)
from ..scenario.checks import ScenarioError
from ..scenario.resolved import ResolvedScenario
from .comm import agree, scatter_rows, shard_bounds, world
from .kernels import NotShardable, ShardedKernel, deepsets_form
from .mode import check_resume_mode
from .observers import describe_plan, shard_observers
from .simulation import ShardedSimulation
from .sink import ShardedSink

__all__ = ["start_mpi_run", "resume_mpi_run", "shard_start"]


def _check_mode(resolved: ResolvedScenario, size: int) -> None:
    run = resolved.run
    if run.replicas > 1:
        raise ScenarioError(
            f"run.replicas = {run.replicas} with --mpi: expected 1 (an ensemble is not sharded)"
        )
    if run.backend != "numba":
        raise ScenarioError(f'run.backend = "{run.backend}" with --mpi: expected "numba"')


def _form(prepared):
    try:
        return deepsets_form(prepared.kernel, prepared.resolved.kernel.kind)
    except NotShardable as exc:
        raise ScenarioError(str(exc)) from None


def _say(comm, text: str) -> None:
    if comm.Get_rank() == 0:
        print(f"mpi: {text}", file=sys.stderr, flush=True)


def _simulation(prepared, form, comm, positions, masses, sink) -> ShardedSimulation:
    run, output = prepared.resolved.run, prepared.resolved.output
    return ShardedSimulation(
        ShardedKernel(form, comm),
        positions,
        comm,
        optimizer=prepared.optimizer,
        lr=prepared.schedule,
        masses=masses,
        seed=run.seed,
        batch_size=prepared.resolved.optimizer.batch_size,
        observers=shard_observers(prepared.observers, form, comm),
        sink=sink,
        frame_every=output.frame_every,
        checkpoint_every=output.checkpoint_every,
        dtype=run.dtype,
        divergence=GrowthRule.of_scenario(run),
    )


def _loop(sim, inner: RunSink | None, total: int, progress, comm) -> None:
    from ..compile_notice import announce_compilation

    root = comm.Get_rank() == 0
    sim.progress_label = sim.kernel.name if sim.progress_label is None else sim.progress_label
    if root:
        announce_compilation(sim.kernel.base, progress)
    try:
        sim.run(total - sim.state.step, progress=progress if root else False)
        sim.close()
    except BaseException:
        if inner is not None and inner.failed is not None:
            inner.abandon()
        raise


def _h5py_mpi() -> str:
    import h5py

    return "yes, unused: the writer is serial" if h5py.get_config().mpi else "no"


def _announce(comm, sim, n: int) -> None:
    size = comm.Get_size()
    lo, hi = shard_bounds(n, 0, size)
    itemsize = sim.state.positions.dtype.itemsize
    _say(
        comm,
        f"{size} ranks, N = {n} particles ({hi - lo} per rank at most); "
        + describe_plan(sim.observers, n, sim.kernel.dim, itemsize)
        + f"; frames and checkpoints gathered to rank 0, which writes the file (h5py MPI driver: {_h5py_mpi()})",
    )


def start_mpi_run(
    scenario, out: str | None = None, overwrite: bool = False, progress: bool | None = None, comm=None
) -> RunResult:
    """Run ``scenario`` from its start with its particles sharded over ``comm`` (collective).

    Every rank calls it; rank 0 writes ``out``. Raises on every rank alike (see
    :func:`particledyn.runner.start_run`); a kernel not in DeepSets form is a ScenarioError.
    """
    comm = world() if comm is None else comm
    with _ThreadsRestored(), deferred_signals() as signals:
        return _start(scenario, out, overwrite, progress, comm, signals)


def _start(scenario, out, overwrite, progress, comm, signals) -> RunResult:
    from ..io import H5MDSink

    rank, size = comm.Get_rank(), comm.Get_size()
    root = rank == 0
    resolved = scenario.resolved
    path = out if out is not None else resolved.output.path

    def checks():
        if root and os.path.exists(path) and not overwrite:
            raise FileExistsError(
                f"output file {path!r} exists; pass --overwrite to replace it or --resume to continue it"
            )
        _check_mode(resolved, size)
        return set_threads(resolved.run.threads)

    threads = agree(comm, checks)
    prepared = agree(comm, lambda: prepare(resolved, positions=False))
    form = agree(comm, lambda: _form(prepared))
    signals.check()
    n = start_size(resolved.init)
    if n < size:
        raise ScenarioError(f"init.n = {n} with {size} MPI ranks: expected at least one particle per rank")
    positions, masses = shard_start(prepared, comm, n)
    signals.check()
    total = resolved.run.steps

    def open_file():
        if not root:
            return None
        metadata = {
            **_metadata(scenario.text, scenario.source, prepared, threads, scenario.overrides),
            "mpi": {"ranks": size},
        }
        sink = H5MDSink(
            path,
            metadata,
            every=1,
            subset=prepared.subset,
            masses=prepared.masses,
            overwrite=overwrite,
            **sink_options(resolved.output),
        )
        return RunSink(sink, total)

    inner = agree(comm, open_file)
    prepared.masses = None  # all N, written to the file: from here every rank holds only its own
    began = _time.perf_counter()
    sink = ShardedSink(comm, inner, resolved.output.optimizer_state)
    sim = _build(prepared, form, comm, positions, masses, sink, inner)
    sim.progress_label = resolved.run.name
    _announce(comm, sim, n)
    _loop(sim, inner, total, progress, comm)
    return RunResult(path, 0, sim.state.step, total, _time.perf_counter() - began, True)


def shard_start(prepared, comm, n: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's block of the initial cloud, built here alone, and its masses (collective).

    Every rank builds the sampling blocks (:data:`particledyn.clouds.BLOCK` points each) that
    hold its rows ``shard_bounds(n, rank, R)``, each from the block's own stream: the start is
    bit-identical to the single process's for any rank count, and no rank holds the whole
    cloud. The other ranks drop ``prepared.masses`` (all N; rank 0 drops them once it has
    written them to the file).
    """
    lo, hi = shard_bounds(n, comm.Get_rank(), comm.Get_size())
    positions = agree(comm, lambda: start_positions(prepared.resolved.init, prepared.kernel, (lo, hi)))
    if comm.Get_rank() != 0:
        prepared.masses = None
    return positions, np.full(hi - lo, 1.0 / n)  # default_masses(n)[lo:hi]: one particle group


def _build(prepared, form, comm, positions, masses, sink, inner, checkpoint=None):
    def build():
        sim = _simulation(prepared, form, comm, positions, masses, sink)
        return sim

    try:
        sim = agree(comm, build)
        if checkpoint is not None:
            sim.restore(checkpoint)  # collective (the gathered observers start)
        return sim
    except BaseException:
        if inner is not None:
            inner.failed = inner.failed or RuntimeError("not started")
            inner.abandon()
        raise


def resume_mpi_run(
    path: str,
    scenario=None,
    steps: int | None = None,
    progress: bool | None = None,
    force: bool = False,
    comm=None,
) -> RunResult:
    """Continue the sharded run in ``path`` on ``comm``'s ranks (collective); see
    :func:`particledyn.runner.resume_run`. The file must have been written by a run on as
    many ranks (:class:`~particledyn.runner.RunModeError` otherwise)."""
    comm = world() if comm is None else comm
    with _ThreadsRestored(), deferred_signals() as signals:
        return _resume(path, scenario, steps, progress, force, comm, signals)


def _read_plan(path, scenario, steps, size) -> dict:
    """What rank 0 reads and checks in the file before anything is built."""
    from ..io import open_run

    try:
        with open_run(path) as run:
            parameters, checkpoint, finished = run.parameters, run.checkpoint(), run.finished
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ResumeError(f"cannot resume {path!r}: {' '.join(str(exc).split())}") from None
    if "resolved" not in parameters:
        raise ResumeError(f"cannot resume {path!r}: it holds no scenario (not written by particledyn run)")
    if checkpoint is None:
        raise ResumeError(f"cannot resume {path!r}: the file holds no checkpoint")
    check_resume_mode(path, parameters, size)
    record = parameters["resolved"]  # the plain dict the file records
    if scenario is not None:
        diff = _first_difference(_comparable(record), _comparable(scenario.resolved.to_dict()))
        if diff:
            key, a, b = diff
            raise ResumeError(
                f"cannot resume {path!r} with this scenario: {key} is {a!r} in the file but {b!r} in the scenario"
            )
    diverged = divergence_of(checkpoint)
    if diverged is not None:
        raise ResumeError(
            f"cannot resume {path!r}: the run diverged at step {diverged['step']} ({describe(diverged)})"
        )
    start = int(checkpoint["step"])
    total = int(
        steps if steps is not None else checkpoint.get("run", {}).get("total_steps", record["run"]["steps"])
    )
    if total < start:
        raise ResumeError(f"cannot resume {path!r} to {total} steps: it is already at step {start}")
    threads = int(checkpoint.get("threads", parameters.get("threads", 0)))
    return {
        "stored": record,
        "plugins": parameters.get("plugins") or [],
        "start": start,
        "total": total,
        "threads": threads,
        "done": bool(finished and total == start),
    }


def _resume(path, scenario, steps, progress, force, comm, signals) -> RunResult:

    rank, size = comm.Get_rank(), comm.Get_size()
    root = rank == 0
    plan = comm.bcast(agree(comm, lambda: _read_plan(path, scenario, steps, size) if root else None), root=0)
    start, total = plan["start"], plan["total"]
    if plan["done"]:
        return RunResult(path, start, start, total, 0.0, True)

    def setup():
        try:
            set_threads(plan["threads"])
        except ScenarioError:
            raise ResumeError(
                f"cannot resume {path!r} bit-identically: it ran with {plan['threads']} threads, "
                "more than numba has here (raise NUMBA_NUM_THREADS)"
            ) from None
        load_recorded_plugins({"plugins": plan["plugins"]}, path)
        resolved = ResolvedScenario.from_dict(plan["stored"])
        _check_mode(resolved, size)
        return resolved

    resolved = agree(comm, setup)
    prepared = agree(comm, lambda: prepare(resolved, positions=False))
    form = agree(comm, lambda: _form(prepared))
    signals.check()

    def reopen():
        if not root:
            return None, None
        sink, checkpoint = reopen_run_file(path, resolved.output, restorable_by(prepared, path), force)
        return RunSink(sink, total), checkpoint

    inner, checkpoint = agree(comm, reopen)
    arrays = ("positions", "masses")
    scalars = None
    if root:
        scalars = {k: v for k, v in checkpoint.items() if k not in (*arrays, "optimizer_state", "observers")}
        scalars["state_names"] = sorted(checkpoint["optimizer_state"])
    scalars = comm.bcast(scalars, root=0)
    n = comm.bcast(int(checkpoint["positions"].shape[0]) if root else None, root=0)
    restored = dict(scalars)
    names = restored.pop("state_names")
    for key in arrays:
        restored[key] = scatter_rows(comm, checkpoint[key] if root else None, n)
    restored["optimizer_state"] = {
        k: scatter_rows(comm, checkpoint["optimizer_state"][k] if root else None, n) for k in names
    }
    restored["observers"] = checkpoint.get("observers", {}) if root else {}
    del checkpoint
    began = _time.perf_counter()
    sink = ShardedSink(comm, inner, resolved.output.optimizer_state)
    sim = _build(
        prepared, form, comm, restored["positions"], restored["masses"], sink, inner, checkpoint=restored
    )
    sim.progress_label = resolved.run.name
    _announce(comm, sim, n)
    _loop(sim, inner, total, progress, comm)
    return RunResult(path, start, sim.state.step, total, _time.perf_counter() - began, True)
