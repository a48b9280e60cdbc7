"""From a validated scenario to a running simulation writing an H5MD file, and back.

:func:`start_run` builds the data, kernel, cloud, optimizer, schedule and
observers of a scenario, opens an :class:`~particledyn.io.H5MDSink` and runs;
:func:`resume_run` rebuilds the same simulation from the scenario stored in a
run's file and continues from its last checkpoint, appending to the same file;
:func:`run_info` says what a file holds and how far its run got.

Exactness of a resume: the step-t mini-batch derives from (seed, t), the
checkpoint holds positions, optimizer state, step, time and every observer's
state, and the numba thread count is set to the one the run started with, so
a resumed run ends bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import os
import time as _time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .divergence import GrowthRule, describe, divergence_of
from .io.locking import is_locked, writer_alive
from .scenario import ResolvedScenario, Scenario
from .scenario.checks import ScenarioError
from .scenario.kernels import KERNELS
from .scenario.observers import OBSERVERS, BuildContext
from .scenario.resolved import Section, recorded
from .scenario.sections import CLOUD_SHAPES, DATA_KINDS, OPTIMIZERS, SCHEDULES
from .sinks import Sink

__all__ = [
    "Prepared",
    "prepare",
    "start_run",
    "resume_run",
    "run_info",
    "recorded_scenario",
    "RunResult",
    "ResumeError",
    "RunModeError",
    "set_threads",
]


class ResumeError(RuntimeError):
    """A run file cannot be continued (no checkpoint, diverged, another scenario, ...)."""


class RunModeError(ResumeError):
    """A run file continued in another mode than it was written with (with or without ``--mpi``,
    another MPI rank count): a usage error, the file is untouched."""


# ---------------------------------------------------------------- threads
def set_threads(requested: int) -> int:
    """Set numba's and BLAS's thread counts (0: all numba was started with); return the count.

    BLAS follows because the observers' matrix products (Hessian-vector products, Lanczos) would
    otherwise use every core: on a shared machine ``--threads 1`` then spins a second BLAS thread
    (measured: a digits HVP at 40 ms of CPU with one BLAS thread, 92 ms with two, load 20).
    """
    import numba
    from threadpoolctl import threadpool_limits

    # numba sets its config attributes at import, which its stubs do not declare
    available = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    threads = available if requested == 0 else int(requested)
    if threads > available:
        raise ScenarioError(
            f"run.threads = {requested}: expected <= {available} (the threads numba "
            "was started with; raise NUMBA_NUM_THREADS)"
        )
    numba.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")
    return threads


# ---------------------------------------------------------------- building
@dataclass
class Prepared:
    """The parts of a run built from a resolved scenario (all but the sink)."""

    resolved: ResolvedScenario
    dataset: Any
    kernel: Any
    optimizer: Any
    schedule: Any
    positions: np.ndarray | None
    observers: list
    subset: np.ndarray | None
    masses: np.ndarray | None  # None once an MPI run has written them and sharded them

    def simulation(self, sink: Sink | None, positions=None):
        """A :class:`~particledyn.Simulation` of these parts writing to ``sink``."""
        from .simulation import make_simulation

        run, output = self.resolved.run, self.resolved.output
        return make_simulation(
            self.kernel,
            self.positions if positions is None else positions,
            backend=run.backend,
            optimizer=self.optimizer,
            lr=self.schedule,
            masses=self.masses,
            seed=run.seed,
            batch_size=self.resolved.optimizer.batch_size,
            observers=self.observers,
            sink=sink,
            frame_every=output.frame_every,
            checkpoint_every=output.checkpoint_every,
            dtype=run.dtype,
            divergence=GrowthRule.of_scenario(run),
        )


def _build_dataset(data: Section):
    try:
        return DATA_KINDS.get_entry(data.kind).build(data.to_dict())
    except ScenarioError:
        raise
    except (ValueError, TypeError, OSError) as exc:
        raise ScenarioError(f"data: {' '.join(str(exc).split())}") from None


def initial_positions(init: Section, dim: int, rows: tuple[int, int] | None = None) -> np.ndarray:
    """The initial cloud of an ``[init]`` section, placed in R^dim (see the section's docs);
    ``rows=(lo, hi)``: its points ``lo..hi-1`` only (bit-identical to those of the whole)."""
    shape = CLOUD_SHAPES.get_entry(init.shape)
    options = init.to_dict()
    native = shape.native(options)
    if native is not None and native > dim:
        raise ScenarioError(
            f'init.shape = "{init.shape}": a cloud of dimension {native} does not fit '
            f"neurons of dimension D = {dim}"
        )
    try:
        if rows is None:
            return shape.build(options, dim)
        if shape.rows:
            return shape.build(options, dim, rows)
        return np.array(shape.build(options, dim)[rows[0] : rows[1]])  # a shape that builds it whole
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"init: {' '.join(str(exc).split())}") from None


def start_size(init: Section) -> int:
    """N of an ``[init]`` section without building it (a union: its parts' sum)."""
    if init.shape == "union":
        from .clouds import cloud_size

        return cloud_size({"shape": "union", "parts": list(init.parts)})
    return int(init.n)


def start_positions(init: Section, kernel, rows: tuple[int, int] | None = None) -> np.ndarray:
    """The start of a run: :func:`initial_positions` in the kernel's R^D, ``init.output_scale``
    applied, checked against the kernel; ``rows``: points ``lo..hi-1`` only (an MPI rank's)."""
    x = initial_positions(init, kernel.dim, rows)
    if init.output_scale is not None:
        x = scale_outputs(x, kernel, init.output_scale)
    try:
        kernel.check_positions(x) if rows is None else _check_rows_fit(kernel, x)
    except ValueError as exc:
        raise ScenarioError(f"init: {' '.join(str(exc).split())}") from None
    return x


def _check_rows_fit(kernel, rows: np.ndarray) -> None:
    if rows.ndim != 2 or rows.shape[1] != kernel.dim:
        raise ValueError(f"positions of shape {rows.shape}: expected (N, {kernel.dim}) for {kernel.name}")


def scale_outputs(positions: np.ndarray, kernel, factor: float) -> np.ndarray:
    """``positions`` with the output coordinates (the last ``kernel.n_outputs`` of each
    neuron) multiplied by ``factor`` (``init.output_scale``)."""
    n_outputs = getattr(kernel, "n_outputs", None)
    if n_outputs is None or getattr(kernel, "groups", None) is not None:
        raise ScenarioError(
            f"init.output_scale = {factor}: expected a kernel whose neurons end with "
            f"output weights (two_layer, task_switching), got {type(kernel).__name__}"
        )
    positions = positions.copy()
    positions[:, kernel.dim - n_outputs :] *= factor
    return positions


def _subset(value, n: int) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, int):
        if value > n:
            raise ScenarioError(f"output.subset = {value}: expected a count <= N = {n}")
        return np.unique(np.round(np.linspace(0, n - 1, value)).astype(np.int64))
    indices = np.asarray(value, dtype=np.int64)
    if indices.max() >= n:
        raise ScenarioError(f"output.subset: index {int(indices.max())} out of range for N = {n} particles")
    return indices


def _build_observers(entries: tuple[Section, ...], context: BuildContext) -> list:
    from .scenario import cadence_steps

    batches = getattr(context.kernel, "batches", None)
    per_epoch = None if batches is None else batches.steps_per_epoch
    observers = []
    for i, entry in enumerate(entries):
        options = {**entry.to_dict(), "every": cadence_steps(entry.every, per_epoch)}
        try:
            observer = OBSERVERS.get_entry(entry.type).build(options, context)
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"observers[{i}] ({entry.type}): {' '.join(str(exc).split())}") from None
        observer.name = entry.name
        observers.append(observer)
    return observers


def prepare(resolved: ResolvedScenario, positions: bool = True) -> Prepared:
    """Build every part of a run from a resolved scenario (see :func:`validate_scenario`).

    Parameters
    ----------
    resolved : ResolvedScenario
    positions : bool
        Also sample the initial cloud (a resumed run takes its positions from the checkpoint).

    Raises
    ------
    ScenarioError
        A value that only fails once the parts are built (a data file that
        cannot be read, a cloud that does not fit D, ...), naming the section.
    """
    from .plugins import load_plugins
    from .scenario.memory import check_memory
    from .state import default_masses

    load_plugins(list(resolved.run.plugins))  # a Dask worker's first sight of the scenario
    check_memory(resolved)
    dataset = _build_dataset(resolved.data)
    kernel_type = KERNELS.get_entry(resolved.kernel.kind)
    try:
        kernel = kernel_type.build(resolved.kernel.to_dict(), dataset)
    except ScenarioError:
        raise
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"kernel: {' '.join(str(exc).split())}") from None
    if resolved.optimizer.sampling == "epoch":
        if not hasattr(kernel, "sample_by_epoch"):
            raise ScenarioError(
                f'optimizer.sampling = "epoch": expected a kernel trained on a data set, '
                f"got {type(kernel).__name__}"
            )
        kernel.sample_by_epoch(resolved.optimizer.batch_size, resolved.run.seed)
    optimizer = OPTIMIZERS.get_entry(resolved.optimizer.name).build(resolved.optimizer.to_dict())
    schedule = SCHEDULES.get_entry(resolved.schedule.kind).build(resolved.schedule.to_dict())
    x = start_positions(resolved.init, kernel) if positions else None
    n = x.shape[0] if x is not None else start_size(resolved.init)
    context = BuildContext(kernel, optimizer, dataset, resolved, n_particles=n)
    observers = _build_observers(resolved.observers, context)
    subset = _subset(resolved.output.subset, n)
    masses = default_masses(n, getattr(kernel, "groups", None))
    return Prepared(resolved, dataset, kernel, optimizer, schedule, x, observers, subset, masses)


def _metadata(
    scenario_text: str, source: str, prepared: Prepared, threads: int, overrides: dict | None = None
) -> dict:
    from . import __version__
    from .plugins import loaded_plugins

    run = prepared.resolved.run
    data = prepared.dataset
    if prepared.masses is None:
        raise RuntimeError(
            "run metadata needs the prepared masses; an MPI run frees them only after writing them"
        )
    return {
        "scenario_toml": scenario_text,
        "scenario_source": source,
        "resolved": prepared.resolved.to_dict(),
        "overrides": dict(overrides or {}),
        "name": run.name,
        "description": run.description,
        "seed": run.seed,
        "threads": threads,
        "backend": run.backend,
        "kernel": prepared.kernel.describe(),
        "optimizer": prepared.optimizer.describe(),
        "schedule": prepared.schedule.describe(),
        "data": {
            "name": data.name,
            "n_train": data.n_train,
            "n_test": data.n_test,
            "input_dim": data.input_dim,
            "info": data.info,
        },
        "n_particles": int(prepared.masses.shape[0]),
        "dim": int(prepared.kernel.dim),
        "versions": {"particledyn": __version__},
        "plugins": loaded_plugins(),
    }


# ---------------------------------------------------------------- the sink
class RunSink(Sink):
    """Passes a run's output to an H5MDSink; adds the target length to checkpoints and
    leaves no half-built file behind when a write fails.

    After a failed write the remaining calls of the loop's clean-up (checkpoint,
    close) do not touch the file again: a file that was never live is removed
    (an existing file that ``overwrite`` would have replaced stays intact), a
    live one is closed as not finished with its committed records. A run that
    stops before its first checkpoint (an observer error or MemoryError at the
    first step) leaves no file either: it could not be resumed.
    """

    def __init__(self, inner, total_steps: int):
        self.inner = inner
        self.total_steps = int(total_steps)
        self.failed: BaseException | None = None
        self.checkpointed = False

    def _guard(self, method, *args):
        if self.failed is not None:
            return None
        try:
            return method(*args)
        except OSError as exc:
            self.failed = exc
            raise

    def write_frame(self, step, time, positions, optimizer_state):
        self._guard(self.inner.write_frame, step, time, positions, optimizer_state)

    def describe_observer(self, name, description):
        self._guard(self.inner.describe_observer, name, description)

    def write_observables(self, name, step, time, values):
        self._guard(self.inner.write_observables, name, step, time, values)

    def write_checkpoint(self, checkpoint):
        checkpoint = {**checkpoint, "run": {"total_steps": self.total_steps}}
        self._guard(self.inner.write_checkpoint, checkpoint)
        self.checkpointed = self.failed is None

    def close(self, finished):
        if self.failed is None and (finished or self.checkpointed or self.inner.live):
            self.inner.close(finished)
            return
        self.failed = self.failed or RuntimeError("stopped before its first checkpoint")
        self.abandon()

    def abandon(self) -> None:
        """Give up on the file after an error: remove it if it never went live, else close it."""
        inner = self.inner
        if inner.live:
            try:
                inner.close(False)
            except OSError:
                pass
        else:
            inner._abandon()  # closes the hidden temporary file and removes it


# ---------------------------------------------------------------- running
@dataclass
class RunResult:
    """What a run call did."""

    path: str
    start_step: int
    final_step: int
    total_steps: int
    elapsed: float
    finished: bool


def _run_loop(sim, sink: RunSink, total: int, progress, resolved: ResolvedScenario) -> None:
    """Run to ``total`` and close (inside the caller's :func:`_deferred`); the progress bar is
    labelled with the run's name."""
    from .compile_notice import announce_compilation

    sim.progress_label = resolved.run.name
    announce_compilation(sim.kernel, progress)
    try:
        sim.run(total - sim.state.step, progress=progress)
        sim.close()
    except BaseException:
        if sink.failed is not None:
            sink.abandon()
        raise


@contextlib.contextmanager
def _deferred():
    """SIGINT/SIGTERM deferred for a whole run call (see :mod:`particledyn.interrupts`):
    a signal while the parts are built stops the call before the file is created (a
    second one aborts the building at once); one during the loop stops it at a step
    boundary, after that step's checkpoint; one while the file is closed, after it.
    Either way :class:`~particledyn.interrupts.Interrupted` is raised."""
    from .interrupts import deferred_signals

    with deferred_signals() as signals:
        yield signals


def _prepare_interruptibly(signals, resolved: ResolvedScenario, positions: bool = True) -> Prepared:
    signals.abortable = True
    try:
        prepared = prepare(resolved, positions=positions)
    finally:
        signals.abortable = False
    signals.check()
    return prepared


class _ThreadsRestored:
    """Context that puts numba's and BLAS's thread counts back as they were (runs set their own)."""

    def __enter__(self):
        import numba
        from threadpoolctl import threadpool_limits

        self.threads = numba.get_num_threads()
        self.blas = threadpool_limits(limits=None, user_api="blas")  # records, changes nothing
        return self

    def __exit__(self, *exc):
        import numba

        numba.set_num_threads(self.threads)
        self.blas.restore_original_limits()


def start_run(
    scenario: Scenario, out: str | None = None, overwrite: bool = False, progress: bool | None = None
) -> RunResult:
    """Run a scenario from its start, writing ``out`` (default: ``output.path``).

    Raises
    ------
    FileExistsError
        ``out`` exists and ``overwrite`` is false (nothing is built or written).
    ScenarioError
        A value that fails while building the parts (no file is created).
    particledyn.io.H5MDWriteError
        The file cannot be created or written.
    particledyn.DivergenceError
        Positions became non-finite; the file keeps every committed record.
    """
    with _ThreadsRestored(), _deferred() as signals:
        return _start_run(scenario, out, overwrite, progress, signals)


def _start_run(scenario, out, overwrite, progress, signals) -> RunResult:
    from .io import H5MDSink

    resolved = scenario.resolved
    path = out if out is not None else resolved.output.path
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"output file {path!r} exists; pass --overwrite to replace it or --resume to continue it"
        )
    if resolved.run.replicas > 1:
        from .ensemble.runs import start_ensemble_run

        return start_ensemble_run(scenario, path, overwrite, progress, signals)
    threads = set_threads(resolved.run.threads)
    prepared = _prepare_interruptibly(signals, resolved)
    inner = H5MDSink(
        path,
        _metadata(scenario.text, scenario.source, prepared, threads, scenario.overrides),
        every=1,
        subset=prepared.subset,
        masses=prepared.masses,
        overwrite=overwrite,
        **sink_options(resolved.output),
    )
    total = resolved.run.steps
    sink = RunSink(inner, total)
    began = _time.perf_counter()
    try:
        sim = prepared.simulation(sink)
    except BaseException:
        sink.failed = sink.failed or RuntimeError("not started")
        sink.abandon()
        raise
    _run_loop(sim, sink, total, progress, resolved)
    return RunResult(path, 0, sim.state.step, total, _time.perf_counter() - began, True)


def sink_options(output) -> dict:
    """The :class:`~particledyn.io.H5MDSink` keywords a resolved scenario's ``output`` section
    sets (dtype, optimizer state, compression, durability, commit interval)."""
    return {
        "dtype": output.dtype,
        "optimizer_state": output.optimizer_state,
        "compression": None if output.compression == "none" else output.compression,
        "durability": output.durability,
        "commit_seconds": output.commit_seconds,
    }


def restorable_by(prepared: Prepared, path: str):
    """The check :func:`reopen_run_file` runs on a checkpoint before the file is cut: it restores
    the state on a throw-away simulation of ``prepared``."""

    def restorable(state):
        try:
            prepared.simulation(Sink(), positions=state["positions"]).restore(state)
        except Exception as exc:  # noqa: BLE001 - any failure means the checkpoint is unusable
            raise ValueError(
                f"cannot resume {path!r}: its checkpoint at step {state.get('step')} "
                f"does not restore ({type(exc).__name__}: {exc})"
            ) from None

    return restorable


def reopen_run_file(path: str, output: Section, validate, force: bool):
    """Reopen a run file to continue it (:meth:`~particledyn.io.H5MDSink.resume`) with the
    durability and commit interval of the scenario's ``output`` section; ``validate(state)``
    raises where the newest checkpoint does not restore. Returns ``(sink, checkpoint)``; any
    failure is one :class:`ResumeError` line."""
    from .io import H5MDSink

    try:
        return H5MDSink.resume(
            path,
            validate=validate,
            force=force,
            durability=output.durability,
            commit_seconds=output.commit_seconds,
        )
    except (ValueError, OSError, RuntimeError) as exc:
        raise ResumeError(" ".join(str(exc).split())) from None


def _comparable(record: dict) -> dict:
    """A resolved scenario as a run file records it (:meth:`ResolvedScenario.to_dict`), without
    the keys a resume may change (the total in steps or epochs, threads, the path, when the file
    is fsync'ed and committed)."""
    run = {
        **record["run"],
        "steps": None,
        "epochs": None,
        "threads": None,
        "plugins": record["run"].get("plugins") or [],
    }  # files older than run.plugins have none
    output = {**record["output"], "path": None, "durability": None, "commit_seconds": None}
    return {**record, "run": run, "output": output}


def _first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else (path, a, b)


def resume_run(
    path: str,
    scenario: Scenario | None = None,
    steps: int | None = None,
    progress: bool | None = None,
    force: bool = False,
) -> RunResult:
    """Continue the run in ``path`` from its last checkpoint until ``steps`` in total.

    Parameters
    ----------
    path : str
        A run file written by :func:`start_run` (killed, interrupted or finished).
    scenario : Scenario, optional
        When given, it must equal the scenario stored in the file (``run.steps``,
        ``run.threads`` and ``output.path`` aside); the stored one is used either
        way, with the thread count the run started with.
    steps : int, optional
        New total number of steps; default: the total the run was last started
        or resumed with.
    force : bool
        Resume although the writer PID stamped in the file is alive on this host
        where no write lock can tell whether it still writes (a file of an older
        particledyn, or a filesystem without record locks); a file whose lock is
        held is never resumed.

    Returns
    -------
    RunResult
        ``start_step`` is the checkpoint's step.

    Raises
    ------
    ResumeError
        No checkpoint, a diverged run, another scenario, a total below the checkpoint,
        a damaged or crafted file, a live writer. Nothing in the file is changed then.
    """
    with _ThreadsRestored(), _deferred() as signals:
        return _resume_run(path, scenario, steps, progress, signals, force)


def _resume_run(path, scenario, steps, progress, signals, force=False) -> RunResult:
    from .io import open_run

    try:
        with open_run(path) as run:
            parameters = run.parameters
            checkpoint = run.checkpoint()
            finished = run.finished
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ResumeError(f"cannot resume {path!r}: {' '.join(str(exc).split())}") from None
    if "resolved" not in parameters:
        raise ResumeError(f"cannot resume {path!r}: it holds no scenario (not written by particledyn run)")
    if checkpoint is None:
        raise ResumeError(f"cannot resume {path!r}: the file holds no checkpoint")
    from .mpi.mode import check_resume_mode

    check_resume_mode(path, parameters, None)
    record = parameters["resolved"]  # the plain dict the file records
    if scenario is not None:
        diff = _first_difference(_comparable(record), _comparable(scenario.resolved.to_dict()))
        if diff:
            key, a, b = diff
            raise ResumeError(
                f"cannot resume {path!r} with this scenario: {key} is {a!r} in the file "
                f"but {b!r} in the scenario"
            )
    from .ensemble.reader import is_ensemble

    if is_ensemble(checkpoint):
        from .ensemble.runs import resume_ensemble_run

        return resume_ensemble_run(path, parameters, checkpoint, steps, progress, signals, force)
    start = int(checkpoint["step"])
    diverged = divergence_of(checkpoint)
    if diverged is not None:
        raise ResumeError(
            f"cannot resume {path!r}: the run diverged at step {diverged['step']} ({describe(diverged)})"
        )
    total = int(
        steps
        if steps is not None
        else checkpoint.get("run", {}).get("total_steps", recorded(parameters, "run.steps"))
    )
    if total < start:
        raise ResumeError(f"cannot resume {path!r} to {total} steps: it is already at step {start}")
    if finished and total == start:
        return RunResult(path, start, start, total, 0.0, True)
    threads = int(checkpoint.get("threads", parameters.get("threads", 0)))
    try:
        set_threads(threads)
    except ScenarioError:
        raise ResumeError(
            f"cannot resume {path!r} bit-identically: it ran with {threads} threads, "
            "more than numba has here (raise NUMBA_NUM_THREADS)"
        ) from None
    load_recorded_plugins(parameters, path)
    resolved = ResolvedScenario.from_dict(record)
    prepared = _prepare_interruptibly(signals, resolved, positions=False)

    inner, checkpoint = reopen_run_file(path, resolved.output, restorable_by(prepared, path), force)
    sink = RunSink(inner, total)
    began = _time.perf_counter()
    try:
        sim = prepared.simulation(sink, positions=checkpoint["positions"])
        sim.restore(checkpoint)
    except BaseException:
        sink.failed = sink.failed or RuntimeError("not started")
        sink.abandon()
        raise
    _run_loop(sim, sink, total, progress, resolved)
    return RunResult(path, start, sim.state.step, total, _time.perf_counter() - began, True)


def load_recorded_plugins(parameters: dict, path: str) -> list[dict]:
    """Import the plugins a run file records its run had loaded.

    Raises
    ------
    particledyn.plugins.PluginError
        One cannot be imported here (the message names it and its distribution).
    """
    from .plugins import PluginError, load_plugins

    records = []
    for record in parameters.get("plugins") or []:
        try:
            records += load_plugins([record["module"]], where=f"{path}: the run's plugin")
        except PluginError as exc:
            dist = f" (distribution {record['dist']} {record['version']})" if record.get("dist") else ""
            raise PluginError(f"{exc}{dist}") from None
    return records


def recorded_scenario(run) -> ResolvedScenario:
    """The typed scenario a run file records, as the run used it.

    For a replica view of an ensemble file (``Run.replica(i)``) it is the replica's own
    scenario, the one its run was built from: its ``run.seed`` and ``schedule.lr``, and what
    derives from them (``data.seed`` unless the file sets it). The plugins the file records
    are imported first, as ``--resume`` does.

    Parameters
    ----------
    run : particledyn.io.reader.Run or particledyn.ensemble.ReplicaRun
        An open run file, or one replica of an ensemble file.

    Returns
    -------
    ResolvedScenario

    Raises
    ------
    ScenarioError
        The file records no scenario (it was written through the Python API), or the record
        does not validate here.
    particledyn.plugins.PluginError
        A recorded plugin cannot be imported here.
    """
    from .ensemble.scenario_keys import replica_scenarios
    from .scenario import parse_toml, validate_scenario

    parameters = run.parameters
    record = parameters.get("resolved")
    if not isinstance(record, dict):
        raise ScenarioError(
            f"{run.path!r}: records no scenario (parameters/resolved); expected a file written by a scenario run"
        )
    load_recorded_plugins(parameters, run.path)
    resolved = ResolvedScenario.from_dict(record)
    index = parameters.get("replica")
    if index is None or resolved.run.replicas == 1:
        return resolved
    raw, extra = replica_scenarios(
        parse_toml(parameters["scenario_toml"]), parameters.get("overrides", {}), resolved
    )[int(index)]
    return validate_scenario(raw, extra)


def _plugin_status(parameters: dict, path: str) -> list[dict]:
    """The recorded plugins, each with ``loaded``: whether it imports here (it is then loaded)."""
    from .plugins import PluginError

    out = []
    for record in parameters.get("plugins") or []:
        try:
            load_recorded_plugins({"plugins": [record]}, path)
            out.append({**record, "loaded": True})
        except PluginError:
            out.append({**record, "loaded": False})
    return out


# ---------------------------------------------------------------- info
def run_info(path: str) -> dict:
    """What a run file holds and how far its run got.

    Returns
    -------
    dict
        ``status`` ('finished', 'running', 'diverged' or 'stopped'), ``name``,
        ``frames``, ``first_step``, ``last_step`` (last committed frame),
        ``checkpoint_step``, ``total_steps``, ``observables`` ({name: {key: records}}),
        ``n_particles``, ``dim``, ``written`` (particles written), ``dtype``,
        ``particle_series``, ``seed``, ``threads``, ``backend``, ``versions``,
        ``writer`` ('pid@host'), ``scenario_source``, ``damaged`` ({series: [steps]}: committed
        records whose checksum fails), ``repair_hint`` (a one-line note when plain HDF5 readers
        refuse the file: a killed or running writer's flags are set; else None),
        ``scenario_written`` (False for a file written through
        the Python API: it stores no scenario, so ``particledyn run --resume`` cannot continue
        it), ``plugins`` (the plugins its run had loaded: module, dist, version, and ``loaded``:
        whether it imports here, where it is now loaded), ``overrides`` (the run's
        ``--set``/``--steps``/``--threads``), ``other_parameters``
        (the ``parameters`` entries a writer stored beyond those above). A value the file
        does not record is None; N and D then come from the position series.
    """
    from .io.reader import LOW_LEVEL_ERRORS, damaged_file_error

    try:
        return _run_info(path)
    except LOW_LEVEL_ERRORS as exc:
        raise damaged_file_error(path, exc) from None


def _run_info(path: str) -> dict:
    from .io import open_run
    from .io.layout import FINISHED, MODULE_NAME, committed_length
    from .io.repair import repair_hint

    # before the file is read: a writer that finishes while it is read is then "running", never
    # "stopped" with a checkpoint it has since passed
    locked_before = is_locked(path)
    with open_run(path) as run:
        parameters = run.parameters
        module = dict(run.file[f"h5md/modules/{MODULE_NAME}"].attrs)
        locks = FINISHED in run.file[f"h5md/modules/{MODULE_NAME}"]
        damaged = run.damaged()
        steps = run.steps
        checkpoint = run.checkpoint()
        finished = run.finished
        observables = {}
        for name, keys in run.observables.items():
            observables[name] = {key: committed_length(run.series(name, key)) for key in keys}
        series = run.particle_series
        position = run._particles["position"] if "position" in run._particles else None
        written = dtype = position_shape = None
        if position is not None:
            position_shape = position["value"].shape
            written, dtype = int(position_shape[1]), str(position["value"].dtype)
    dim = parameters.get("dim", None if position_shape is None else int(position_shape[2]))
    pid, host = int(module.get("writer_pid", -1)), str(module.get("writer_host", ""))
    checkpoint_step = None if checkpoint is None else int(checkpoint["step"])
    total = (checkpoint or {}).get("run", {}).get("total_steps", recorded(parameters, "run.steps"))
    if finished:
        status = "finished"
    elif locked_before or writer_alive(path, module, takes_locks=locks):
        status = "running"
    elif divergence_of(checkpoint) is not None:
        status = "diverged"
    else:
        status = "stopped"
    return {
        "path": path,
        "status": status,
        "name": parameters.get("name"),
        "frames": int(len(steps)),
        "first_step": int(steps[0]) if len(steps) else None,
        "last_step": int(steps[-1]) if len(steps) else None,
        "checkpoint_step": checkpoint_step,
        "total_steps": None if total is None else int(total),
        "observables": observables,
        "n_particles": parameters.get("n_particles"),
        "dim": dim,
        "written": written,
        "dtype": dtype,
        "particle_series": series,
        "seed": parameters.get("seed"),
        "threads": parameters.get("threads"),
        "backend": parameters.get("backend"),
        "versions": parameters.get("versions", {}),
        "writer": f"{pid}@{host}",
        "scenario_source": parameters.get("scenario_source"),
        "damaged": damaged,
        "repair_hint": repair_hint(path),
        "scenario_written": "resolved" in parameters,
        "overrides": parameters.get("overrides", {}),
        "plugins": _plugin_status(parameters, path),
        "other_parameters": {k: v for k, v in parameters.items() if k not in _RUN_PARAMETERS},
    }


# the parameters particledyn run writes (_metadata), which run_info reports under their own names
_RUN_PARAMETERS = (
    "scenario_toml",
    "scenario_source",
    "resolved",
    "overrides",
    "name",
    "description",
    "seed",
    "threads",
    "backend",
    "kernel",
    "optimizer",
    "schedule",
    "data",
    "n_particles",
    "dim",
    "versions",
    "plugins",
)
