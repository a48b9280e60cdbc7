"""Running a sweep on dask.distributed: K0 per grid point, then one task per run, then the table.

By default the runs go to a LocalCluster on this machine (``[cluster] workers`` processes of
``threads_per_worker`` threads; each run sets numba to ``sweep.threads``); with
``[cluster] address`` (or ``address=``) they go to a running Dask scheduler, and with
``[cluster] jobqueue`` to batch jobs (dask-jobqueue). Workers must have particledyn installed
and see the output folder, which is made absolute on the client and checked writable from the
workers before anything is launched. Every run is claimed while it runs
(:mod:`particledyn.sweep.claims`), so two sweeps sharing the folder never run it twice at once.

A job array runs one sweep in parts: ``--shard I/K`` (every K-th run from the I-th) or
``--index I`` (one run); a packed sweep's parts are whole packs (one ensemble file each,
:func:`particledyn.sweep.pack.pack_index`). Each part measures the K0 it needs and records its
outcomes under ``<out>/shards/``, and ``--collect`` then writes the table from the run files (of a
``[bisect]`` sweep, every rate its rounds ran: both ends and the midpoints).

Resuming: a run whose file says finished at the sweep's step count, or whose run diverged
(a deterministic outcome), is skipped; a stopped file (killed, interrupted) is resumed from
its last checkpoint, a finished file of fewer steps is extended, a file of another scenario or
without a checkpoint is started over. A run that raises is recorded with its error in the
table and does not stop the others; the next call of the sweep tries it again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .claims import ClaimHeld, acquire, holder
from .cluster import NoWorkersError, check_workers_can_write, open_client, wait_for_runs
from .grid import (
    K0_fingerprint,
    RunSpec,
    SweepError,
    SweepSpec,
    expand_runs,
    grid_points,
    load_sweep,
    measure_K0,
    point_run_ids,
    run_ids,
    run_scenario,
)
from .stop import stop_on_signals
from .table import axes_label, run_row, write_table

__all__ = [
    "SweepResult",
    "run_sweep",
    "collect_sweep",
    "sweep_main",
    "execute_run",
    "file_state",
    "open_client",
    "sweep_cluster",
    "parse_shard",
    "selected_indices",
]

DONE = ("finished", "diverged")


@dataclass
class SweepResult:
    """What :func:`run_sweep` or :func:`collect_sweep` did.

    Attributes
    ----------
    out : Path
        The sweep's folder (absolute).
    rows : list of dict
        The table, one row per run (see :mod:`particledyn.sweep.table`); a shard's own runs only.
    table_csv, table_h5 : Path or None
        None for a shard (``--shard``/``--index``): ``--collect`` writes the table.
    phase_png : Path or None
    bisection_csv : Path or None
        A ``[bisect]`` sweep's per-point brackets (``bisection``: the same rows as dicts).
    counts : dict
        Runs by status after this call, plus ``skipped`` (already done) and ``ran``.
    elapsed : float
        Wall seconds of the whole call; ``K0_elapsed`` of the K0 measurements.
    """

    out: Path
    rows: list
    table_csv: Path | None
    table_h5: Path | None
    phase_png: Path | None
    counts: dict
    elapsed: float
    K0_elapsed: float
    bisection_csv: Path | None = None
    bisection: list | None = None


# ---------------------------------------------------------------- one run (on a worker)
def file_state(path: str, steps: int, own_claim: bool = False) -> str:
    """What to do with a run file: ``missing``, ``finished``/``diverged`` (done), ``extend``
    (finished at fewer steps), ``resume`` (stopped), ``running`` (a live claim holds it: see
    :mod:`particledyn.sweep.claims`, ``own_claim``: the caller holds it; or another process
    holds its write lock, claimed or not: the file is then not opened) or ``restart``
    (unreadable)."""
    from ..io.locking import is_locked
    from ..runner import run_info

    if not own_claim and holder(path) is not None:
        return "running"
    if not os.path.exists(path):
        return "missing"
    if not os.path.isfile(path):
        return "restart"
    if is_locked(path, others_only=True):  # a live writer: its file is not read while it writes
        return "running"
    try:
        info = run_info(path)
    except (OSError, KeyError, ValueError):
        return "restart"
    status = info["status"]
    if status == "finished":
        return "finished" if info["checkpoint_step"] == steps else "extend"
    if status == "stopped":
        return "resume" if info["checkpoint_step"] is not None else "restart"
    return status  # diverged or running


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@contextlib.contextmanager
def _stop_when(event_name: str | None, poll: float = 0.5):
    """While the block runs in a Dask task, stop its run at the next step boundary once the
    Dask Event ``event_name`` is set (the sweep's client sets it on Ctrl-C)."""
    if not event_name:
        yield
        return
    import threading

    from distributed import Event, get_client

    from ..interrupts import request_stop

    event, runner, done = Event(event_name, client=get_client()), threading.get_ident(), threading.Event()

    def watch():
        while not done.wait(poll):
            try:
                if event.is_set():
                    request_stop(runner)  # again each poll: the run may not have started its loop yet
            except Exception:  # the scheduler is away for a moment
                pass

    watcher = threading.Thread(target=watch, name="particledyn-stop-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def continue_or_start(path: str, scenario, state: str, steps: int, progress) -> str:
    """Bring the file at ``path`` (in :func:`file_state` ``state``, not done) to ``steps``: resume
    or extend it where it can be, else start it afresh; the action taken ("resume", "extend",
    "restart" or "start")."""
    from ..runner import ResumeError, resume_run, start_run

    if state == "running":
        raise RuntimeError(f"{path} is being written by a live process; not touched")
    if state in ("extend", "resume"):
        try:
            resume_run(path, scenario, steps=steps, progress=progress)
            return state
        except ResumeError:
            start_run(scenario, out=path, overwrite=True, progress=progress)
            return "restart"
    start_run(scenario, out=path, overwrite=True, progress=progress)
    return "start"


def execute_run(run: RunSpec, progress: bool = False, stop_event: str | None = None) -> dict:
    """Run (or resume, or skip) one run of a sweep; never raises for the run's own errors.

    The run is claimed first (:func:`particledyn.sweep.claims.acquire`), so no other
    process, on any host sharing the folder, runs it at the same time. With ``stop_event``
    (the name of a Dask Event), setting the event stops the run at its next step boundary,
    checkpointed and resumable.

    Returns
    -------
    dict
        ``run_id``, ``status`` (finished, diverged, failed, stopped (by ``stop_event``), running
        (claimed elsewhere), or the done state it found), ``error`` (one line, or ""),
        ``elapsed`` (seconds), ``action``.
    """
    from ..interrupts import Interrupted
    from ..scenario import Scenario
    from ..simulation import DivergenceError

    began = time.perf_counter()
    steps = int(run.resolved.run.steps)
    scenario = Scenario(run.resolved, run.text, run.source)
    status, error, action = "finished", "", "start"
    try:
        os.makedirs(os.path.dirname(run.path) or ".", exist_ok=True)
        claim = acquire(run.path)
    except ClaimHeld as exc:
        return {
            "run_id": run.run_id,
            "status": "running",
            "error": _one_line(exc),
            "elapsed": 0.0,
            "action": "skip",
        }
    except OSError as exc:
        return {
            "run_id": run.run_id,
            "status": "failed",
            "error": _one_line(exc),
            "elapsed": time.perf_counter() - began,
            "action": "start",
        }
    with claim, _stop_when(stop_event):
        try:
            state = file_state(run.path, steps, own_claim=True)
            if state in DONE:
                return {"run_id": run.run_id, "status": state, "error": "", "elapsed": 0.0, "action": "skip"}
            action = continue_or_start(run.path, scenario, state, steps, progress)
        except DivergenceError as exc:
            status, error = "diverged", _one_line(exc)
        except Interrupted as exc:
            status, error = "stopped", f"stopped by the sweep: {exc}"
        except Exception as exc:  # a failed run is recorded, the sweep goes on
            status, error = "failed", _one_line(exc)
    return {
        "run_id": run.run_id,
        "status": status,
        "error": error,
        "elapsed": time.perf_counter() - began,
        "action": action,
    }


# ---------------------------------------------------------------- K0
def _K0_key(spec: SweepSpec, point: tuple) -> str:
    resolved = run_scenario(spec, point, 1.0)
    return f"{resolved.run.seed},{getattr(resolved.init, 'n', None)},{K0_fingerprint(resolved)}"


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (fcntl; NFS v4 and Lustre honour it across hosts)."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_json_object(path: Path) -> dict:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def cached_K0(spec: SweepSpec, out: Path, points) -> dict:
    """``{point: K0}`` for the points whose K0 is in ``<out>/K0.json`` already."""
    cache = _read_json_object(out / "K0.json")
    found = {}
    for point in points:
        key = _K0_key(spec, point)
        if key in cache:
            found[point] = float(cache[key])
    return found


def measure_grid_K0(spec: SweepSpec, client, out: Path, points=None) -> tuple[dict, dict]:
    """K0 of the grid points (all, or ``points``), measured on the cluster, cached in
    ``<out>/K0.json`` (shards of one sweep share the file: updates are merged under a lock).

    Returns
    -------
    (dict, dict)
        ``{point: K0}`` and ``{point: error}`` for the points whose measurement failed.
    """
    points = grid_points(spec) if points is None else list(points)
    cache_path = out / "K0.json"
    values = cached_K0(spec, out, points)
    errors, futures = {}, {}
    for point in points:
        if point not in values:
            resolved = run_scenario(spec, point, 1.0)
            futures[point] = (
                _K0_key(spec, point),
                client.submit(
                    measure_K0 if spec.lr_factor is not None else _K0_or_nan,
                    resolved,
                    spec.sharpness_tol,
                    pure=False,
                ),
            )
    measured = {}
    for point, (key, future) in futures.items():
        try:
            values[point] = measured[key] = float(future.result())
        except Exception as exc:
            errors[point] = f"K0 measurement failed: {_one_line(exc)}"
    if measured:
        out.mkdir(parents=True, exist_ok=True)
        with _locked(out / "K0.json.lock"):
            cache = _read_json_object(cache_path)
            cache.update(measured)
            tmp = cache_path.with_name(f"K0.json.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
            tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
            tmp.replace(cache_path)
    return values, errors


def _K0_or_nan(resolved, tol: float) -> float:
    """:func:`measure_K0`, NaN where the kernel has no lambda_max: a sweep of absolute rates needs
    no eta*, so its runs go on (a user's rule without a loss Hessian) with eta K0 NaN in the
    table and in K0.json; a failure of another kind (a lost worker) is not cached."""
    try:
        return measure_K0(resolved, tol)
    except ValueError:
        return math.nan


def _point_rows(spec: SweepSpec, points: dict, status: str) -> list[dict]:
    """Rows for the runs of grid points that have no K0 (``{point: error}``)."""
    from .table import _MISSING, COLUMNS

    rows = []
    for point, error in points.items():
        probe = run_scenario(spec, point, 1.0)
        for run_id, value in zip(point_run_ids(spec, point), spec.rates()):
            row = {name: _MISSING[kind] for name, kind in COLUMNS.items()}
            row.update(
                run_id=run_id,
                status=status,
                error=error,
                seed=probe.run.seed,
                n=getattr(probe.init, "n", None) or -1,
                axes=axes_label(tuple(zip((k for k, _ in spec.axes), point[2:]))),
            )
            if spec.lr_factor is not None:
                row["lr_factor"] = value
            else:
                row["eta"] = value
            rows.append(row)
    return rows


# ---------------------------------------------------------------- which runs
def parse_shard(text: str) -> tuple[int, int]:
    """``"I/K"`` as ``(I, K)`` with 0 <= I < K.

    Raises
    ------
    ValueError
        One line naming the bad value.
    """
    try:
        i, k = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected I/K with integers 0 <= I < K") from None
    if not 0 <= i < k:
        raise ValueError(f"--shard {text!r}: expected I/K with integers 0 <= I < K")
    return i, k


def selected_indices(
    spec: SweepSpec, shard: tuple[int, int] | None = None, index: int | None = None
) -> list[int]:
    """The run numbers (in :func:`particledyn.sweep.grid.run_ids` order) a call runs: all, the
    shard ``(I, K)`` (every K-th run from the I-th), or the one run ``index``. In a packed sweep
    the units are packs (:func:`particledyn.sweep.pack.pack_index`): the shard's packs, or pack
    number ``index``, and the numbers returned are those of their runs."""
    packs = _pack_members(spec)
    total, unit = (len(packs), "packs") if packs is not None else (len(run_ids(spec)), "runs")
    if shard is not None and index is not None:
        raise ValueError("--shard and --index: expected at most one of them")
    if index is not None:
        if isinstance(index, bool) or int(index) != index or not 0 <= index < total:
            raise ValueError(
                f"--index {index!r}: expected an integer 0 <= I < {total} (this sweep has {total} {unit})"
            )
        chosen = [int(index)]
    elif shard is not None:
        i, k = shard
        chosen = list(range(i, total, k))
    else:
        chosen = list(range(total))
    if packs is None:
        return chosen
    return sorted(j for p in chosen for j in packs[p])


def _pack_members(spec: SweepSpec) -> list[tuple[int, ...]] | None:
    """The run numbers of each pack of a packed sweep, in pack order; None unpacked."""
    if not spec.pack:
        return None
    from .pack import pack_index

    return [members for _, members in pack_index(spec)]


def _packed(spec: SweepSpec, runs: list[RunSpec]) -> tuple[list, list[RunSpec]]:
    """The packs of a packed sweep and its runs placed in them (:func:`.pack.pack_runs`);
    ``([], runs)`` unpacked."""
    if not spec.pack:
        return [], runs
    from .pack import pack_runs

    return pack_runs(spec, runs)


def _state(run: RunSpec) -> str:
    """:func:`file_state` of a run, or of its replica in a pack's file."""
    steps = int(run.resolved.run.steps)
    if run.replica < 0:
        return file_state(run.path, steps)
    from .pack import replica_state

    return replica_state(run.path, steps, run.replica)


def _execute_pack(pack, progress: bool = False, stop_event: str | None = None) -> list[dict]:
    from .pack import execute_pack

    return execute_pack(pack, progress, stop_event)


def _runs_for(spec: SweepSpec, K0: dict, out: Path, indices: list[int]) -> list[RunSpec]:
    wanted = {run_ids(spec)[j] for j in indices}
    return [r for r in expand_runs(spec, K0, out) if r.run_id in wanted]


def _points_of(spec: SweepSpec, indices: list[int]) -> list[tuple]:
    per_point = len(spec.rates())
    points = grid_points(spec)
    return list(dict.fromkeys(points[j // per_point] for j in indices))


# ---------------------------------------------------------------- the sweep
def _shard_file(out: Path, shard: tuple[int, int] | None, index: int | None) -> Path | None:
    if shard is not None:
        return out / "shards" / f"shard-{shard[0]}-of-{shard[1]}.json"
    if index is not None:
        return out / "shards" / f"index-{index}.json"
    return None


def _status_rows(
    spec: SweepSpec, runs: list[RunSpec], states: dict, outcomes: dict, missing_K0: dict, missing_status: str
) -> list[dict]:
    rows = []
    for run in runs:
        outcome = outcomes.get(run.run_id)
        if states[run.run_id] == "running":  # live now, whatever a shard said of it before
            rows.append(run_row(run, "running"))
        elif outcome is not None and not (outcome["status"] == "failed" and states[run.run_id] in DONE):
            rows.append(run_row(run, outcome["status"], outcome["error"], outcome["elapsed"]))
        else:
            state = states[run.run_id]
            status = (
                state if state in DONE + ("running",) else ("pending" if state == "missing" else "stopped")
            )
            rows.append(run_row(run, status))
    return rows + _point_rows(spec, missing_K0, missing_status)


def _finish(
    spec: SweepSpec,
    out: Path,
    rows: list[dict],
    plot,
    began: float,
    k0_elapsed: float,
    skipped: int,
    ran: int,
    write: bool,
) -> SweepResult:
    table_csv = table_h5 = phase_png = None
    if write:
        attrs = {
            "sweep": spec.name,
            "source": spec.source,
            "base": spec.base,
            "x_axis": "lr_factor = eta / eta*, eta* = 1/K0, K0 = lambda_max of the Hessian at the start",
        }
        table_csv, table_h5 = write_table(rows, out, attrs)
        if plot if plot is not None else spec.plot:
            from .phase import plot_phase_diagram

            phase_png = plot_phase_diagram(rows, out / "phase_diagram.png", title=spec.name)
    counts: dict = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    counts["skipped"], counts["ran"] = skipped, ran
    return SweepResult(
        out, rows, table_csv, table_h5, phase_png, counts, time.perf_counter() - began, k0_elapsed
    )


def sweep_cluster(spec: SweepSpec, address: str | None = None, workers: int | None = None):
    """The sweep file's ``[cluster]``, with a scheduler ``address`` (no batch jobs then) or a
    LocalCluster ``workers`` count given on the command line.

    Raises
    ------
    ValueError
        ``workers`` is not an integer >= 1.
    """
    from dataclasses import replace

    cluster = spec.cluster
    if address is not None:
        cluster = replace(cluster, address=address, jobqueue="")
    if workers is not None:
        if int(workers) != workers or workers < 1:
            raise ValueError(f"workers={workers!r}: expected an integer >= 1")
        cluster = replace(cluster, workers=int(workers))
    return cluster


def run_sweep(
    path,
    *,
    out=None,
    client=None,
    address: str | None = None,
    workers: int | None = None,
    limit: int | None = None,
    progress: bool | None = None,
    plot: bool | None = None,
    shard: tuple[int, int] | None = None,
    index: int | None = None,
) -> SweepResult:
    """Run every unfinished run of a sweep file (or of one shard of it) and write its table.

    Parameters
    ----------
    path : str or Path
        The SWEEP.toml file.
    out : str or Path, optional
        Output folder (default: the file's ``sweep.out``), resolved to an absolute path here,
        on the client, and checked writable from the workers.
    client : distributed.Client, optional
        Use this client (left open); otherwise one is made from ``address`` / ``workers`` /
        the file's ``[cluster]`` and closed at the end.
    address : str, optional
        A running Dask scheduler (overrides ``cluster.address``).
    workers : int, optional
        LocalCluster worker count (overrides ``cluster.workers``).
    limit : int, optional
        Launch at most this many of the runs (of a packed sweep: packs) still to do (the rest
        stay pending).
    progress : bool or None
        Progress bar counting runs; None: on a terminal only.
    plot : bool, optional
        Write ``phase_diagram.png`` (default: the file's ``sweep.plot``).
    shard : (int, int), optional
        ``(I, K)``: run only every K-th run from the I-th (a job array's task I of K). The
        outcomes go to ``<out>/shards/``; :func:`collect_sweep` writes the table.
    index : int, optional
        Run only the run with this number (0-based, in :func:`particledyn.sweep.grid.run_ids`
        order), e.g. ``$SLURM_ARRAY_TASK_ID``.

        A packed sweep (``[sweep] pack``) counts packs instead of runs in ``shard``, ``index``
        and ``limit`` (:func:`particledyn.sweep.pack.pack_index`): every part runs whole
        ensemble files.

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError
        A malformed sweep file or base scenario, or an output folder the workers cannot write
        (nothing is launched).
    NoWorkersError
        No worker was left for ``cluster.no_worker_timeout`` seconds.
    """
    from dataclasses import replace

    from tqdm.auto import tqdm

    began = time.perf_counter()
    spec = load_sweep(path)
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 0):
        raise ValueError(f"limit={limit!r}: expected an integer >= 0 or None")
    if spec.bisect is not None and (shard is not None or index is not None or limit is not None):
        raise ValueError("a [bisect] sweep runs its rounds itself: expected no --shard, --index or --limit")
    indices = selected_indices(spec, shard, index)
    cluster = sweep_cluster(spec, address, workers)
    out = Path(out if out is not None else spec.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(client) if client is not None else open_client(cluster) as c:
        check_workers_can_write(c, str(out / "runs"), cluster.no_worker_timeout)
        k0_began = time.perf_counter()
        points = _points_of(spec, indices)
        K0, K0_errors = measure_grid_K0(spec, c, out, points)
        k0_elapsed = time.perf_counter() - k0_began
        if spec.bisect is not None:
            from .bisect import run_bisection

            rows, brackets, bisection_csv = run_bisection(
                spec, c, out, K0, K0_errors, cluster.no_worker_timeout
            )
            result = _finish(spec, out, rows, False, began, k0_elapsed, 0, len(rows), write=True)
            return replace(result, bisection_csv=bisection_csv, bisection=brackets)
        runs = _runs_for(spec, K0, out, indices)
        packs, runs = _packed(spec, runs)
        states = {r.run_id: _state(r) for r in runs}
        todo = [r for r in runs if states[r.run_id] not in DONE + ("running",)]
        # one task per run, or per pack (an ensemble of runs) of a packed sweep; --limit counts tasks
        # (task, its argument, the runs it covers, its name); a task returns one outcome or a list
        work: list[tuple[Callable[..., dict | list[dict]], Any, tuple[RunSpec, ...], str]] = (
            [(execute_run, r, (r,), r.run_id) for r in todo] if not spec.pack else []
        )
        left = {r.run_id for r in todo}
        work += [(_execute_pack, p, p.runs, p.pack_id) for p in packs if left & {r.run_id for r in p.runs}]
        work = work if limit is None else work[: int(limit)]
        outcomes: dict[str, dict] = {}
        bar = tqdm(
            total=len(runs),
            initial=len(runs) - len(todo),
            unit="run",
            desc=f"sweep {spec.name}",
            disable={True: False, False: True, None: None}[progress],
            dynamic_ncols=True,
        )
        tag = uuid.uuid4().hex[:8]
        stop_event = f"particledyn-stop-{spec.name}-{tag}"
        futures = {
            c.submit(
                task, unit, False, stop_event, key=f"particledyn-{spec.name}-{name}-{tag}", pure=False
            ): members
            for task, unit, members, name in work
        }

        def record(future):
            members = futures[future]
            try:
                found = future.result()
                outcomes.update({o["run_id"]: o for o in (found if isinstance(found, list) else [found])})
            except Exception as exc:  # the worker died, the task was lost, ...
                for run in members:
                    outcomes[run.run_id] = {
                        "run_id": run.run_id,
                        "status": "failed",
                        "error": _one_line(exc),
                        "elapsed": math.nan,
                    }
            bar.update(len(members))

        try:
            wait_for_runs(c, futures, record, cluster.no_worker_timeout)
        except KeyboardInterrupt:
            _stop_running(c, stop_event, futures)
            raise
        finally:
            bar.close()
            shard_file = _shard_file(out, shard, index)
            if shard_file is not None and outcomes:
                _write_outcomes(shard_file, outcomes)
    rows = _status_rows(spec, runs, states, outcomes, K0_errors, "failed")
    return _finish(
        spec,
        out,
        rows,
        plot,
        began,
        k0_elapsed,
        len(runs) - len(todo),
        len(outcomes),
        write=shard is None and index is None,
    )


def _stop_running(client, stop_event: str, futures: dict, patience: float = 60.0) -> None:
    """On Ctrl-C: stop the running runs at their next step boundary (checkpointed), drop the
    ones not started, and wait until the claims are released, so every file is resumable and
    no task writes on after the sweep has exited. A second Ctrl-C stops the wait."""
    from distributed import Event

    print(
        "interrupted: stopping the running runs at their next step (Ctrl-C again to stop waiting)",
        file=sys.stderr,
    )
    try:
        Event(stop_event, client=client).set()
    finally:
        for future in futures:  # a task already running goes on in its thread until it stops
            future.cancel()
    deadline = time.monotonic() + patience
    try:
        while time.monotonic() < deadline and any(
            holder(r.path) is not None for members in futures.values() for r in members
        ):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def _write_outcomes(path: Path, outcomes: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(path.name + ".lock")):
        known = _read_json_object(path)
        known.update(outcomes)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True, default=float) + "\n")
        tmp.replace(path)


def collect_sweep(path, *, out=None, plot: bool | None = None) -> SweepResult:
    """Assemble the table (and phase diagram) of a sweep run in parts (``--shard``/``--index``),
    from the run files, the K0 cache and the shards' outcomes; runs nothing. Of a ``[bisect]``
    sweep, the rounds are replayed from the run files (:func:`.bisect.collect_bisection`): its
    table lists the midpoints with the ends, and ``bisection.csv`` is written again.

    Returns
    -------
    SweepResult
        The same table a single call of :func:`run_sweep` writes (``elapsed`` per run as the
        shards measured it); runs not done yet are ``pending`` or ``stopped``.
    """
    began = time.perf_counter()
    spec = load_sweep(path)
    out = Path(out if out is not None else spec.out).resolve()
    if not out.is_dir():
        raise SweepError(f"--collect: no sweep folder at {str(out)!r}; run the sweep (or its shards) first")
    K0 = cached_K0(spec, out, grid_points(spec))
    missing = {
        p: "K0 not measured yet: no shard of this point has run" for p in grid_points(spec) if p not in K0
    }
    if spec.bisect is not None:  # its rates are the ends and the midpoints its run files led to
        from dataclasses import replace

        from .bisect import collect_bisection

        rows, brackets, bisection_csv = collect_bisection(spec, out, K0, {}, _known_elapsed(out))
        rows += _point_rows(spec, missing, "pending")
        result = _finish(spec, out, rows, False, began, 0.0, len(rows), 0, write=True)
        return replace(result, bisection_csv=bisection_csv, bisection=brackets)
    _, runs = _packed(spec, expand_runs(spec, K0, out))
    outcomes: dict = {}
    for shard_file in sorted((out / "shards").glob("*.json")):
        outcomes.update(_read_json_object(shard_file))
    states = {r.run_id: _state(r) for r in runs}
    rows = _status_rows(spec, runs, states, outcomes, missing, "pending")
    return _finish(spec, out, rows, plot, began, 0.0, len(runs), 0, write=True)


def _known_elapsed(out: Path) -> dict:
    """``{run_id: elapsed}`` from the table already in ``out`` (empty without one): a run file
    does not hold its wall time, so a collected table keeps what the run's own table measured."""
    from .table import read_table

    try:
        table = read_table(out / "summary.csv")
    except (OSError, KeyError, ValueError):
        return {}
    return {str(i): float(e) for i, e in zip(table["run_id"], table["elapsed"])}


# ---------------------------------------------------------------- command line
def sweep_main(argv: Sequence[str] | None = None) -> int:
    """``particledyn sweep SWEEP.toml [--out DIR] [--address A] [--workers N] [--limit N]
    [--shard I/K | --index I | --collect | --list]``.

    Exit status: 0 every run (of this shard) finished or diverged, 1 some run failed, is left
    to do or no worker was left, 2 a bad sweep file or option, 130 interrupted (run it again
    to resume).
    """
    parser = argparse.ArgumentParser(
        prog="particledyn sweep",
        description="Run a grid of learning rates (absolute or multiples of eta* = 1/K0), seeds, N and "
        "any other scenario keys over a base scenario on dask.distributed; write one HDF5 "
        "file per run, summary.csv / summary.h5 and phase_diagram.png. Run again to resume.",
    )
    parser.add_argument("sweep", metavar="SWEEP.toml")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: sweep.out)")
    parser.add_argument(
        "--address", metavar="ADDR", help="a running Dask scheduler (default: a LocalCluster)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="LocalCluster workers (default: cluster.workers)"
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="launch at most N of the runs (packs, if packed) left to do"
    )
    part = parser.add_mutually_exclusive_group()
    part.add_argument(
        "--shard",
        metavar="I/K",
        help="run only part I of K (a job array's task; a packed sweep's parts are whole packs); then "
        "assemble the table with --collect",
    )
    part.add_argument(
        "--index",
        type=int,
        metavar="I",
        help="run only run number I (pack number I, if packed; see --list), e.g. $SLURM_ARRAY_TASK_ID",
    )
    part.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: write the table and phase diagram from the run files of all parts",
    )
    part.add_argument(
        "--list", action="store_true", help="print the runs (packs, if packed) with their numbers and states"
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw the phase diagram")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar counting runs (default: on a terminal only)",
    )
    args = parser.parse_args(argv)
    plot = False if args.no_plot else None
    with stop_on_signals():
        return _sweep_command(args, plot)


def _sweep_command(args, plot) -> int:
    try:
        if args.list:
            return _list_runs(args.sweep, args.out)
        if args.collect:
            result = collect_sweep(args.sweep, out=args.out, plot=plot)
        else:
            shard = parse_shard(args.shard) if args.shard is not None else None
            result = run_sweep(
                args.sweep,
                out=args.out,
                address=args.address,
                workers=args.workers,
                limit=args.limit,
                progress=args.progress,
                plot=plot,
                shard=shard,
                index=args.index,
            )
    except (SweepError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except NoWorkersError as exc:
        print(f"error: {exc}; run the sweep again to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run the sweep again to resume (finished runs are skipped)", file=sys.stderr)
        return 130
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items()))
    where = (
        f"table {result.table_csv}"
        if result.table_csv is not None
        else f"part done; assemble with: particledyn sweep {args.sweep} --collect"
    )
    print(
        f"sweep {result.out}: {counts}; {where}"
        + (f"; phase diagram {result.phase_png}" if result.phase_png else "")
        + (f"; brackets {result.bisection_csv}" if result.bisection_csv else "")
    )
    for row in result.rows:
        if row["status"] == "failed":
            print(f"  failed {row['run_id']}: {row['error']}", file=sys.stderr)
    left = sum(v for k, v in result.counts.items() if k in ("failed", "pending", "stopped", "running"))
    return 0 if left == 0 else 1


def _list_runs(path, out) -> int:
    """Print the units ``--index`` numbers: runs (number, run id, state), or in a packed sweep
    packs (number, pack id, state of its file, its runs)."""
    spec = load_sweep(path)
    root = Path(out if out is not None else spec.out).resolve()
    steps = int(run_scenario(spec, grid_points(spec)[0], 1.0).run.steps)
    if spec.pack:
        from .pack import pack_index

        ids = run_ids(spec)
        for number, (pack_id, members) in enumerate(pack_index(spec)):
            state = file_state(str(root / "runs" / f"{pack_id}.h5"), steps)
            print(f"{number}\t{pack_id}\t{state}\t{','.join(ids[j] for j in members)}")
        return 0
    for number, run_id in enumerate(run_ids(spec)):
        print(f"{number}\t{run_id}\t{file_state(str(root / 'runs' / f'{run_id}.h5'), steps)}")
    return 0
