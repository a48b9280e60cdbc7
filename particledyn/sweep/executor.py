"""Running a sweep on dask.distributed: K0 per (seed, N), then one task per run, then the table.

By default the runs go to a LocalCluster on this machine (``[cluster] workers`` processes of
``threads_per_worker`` threads; each run sets numba to ``sweep.threads``); with
``[cluster] address`` (or ``address=``) they go to a running Dask scheduler, whose workers
must have particledyn installed and see the output folder (a shared file system).

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
import logging
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .grid import (ClusterSpec, RunSpec, SweepError, SweepSpec, K0_fingerprint, expand_runs,
                   grid_points, load_sweep, measure_K0, run_scenario)
from .table import run_row, write_table

__all__ = ["SweepResult", "run_sweep", "sweep_main", "execute_run", "file_state", "open_client"]

DONE = ("finished", "diverged")


@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    out : Path
        The sweep's folder.
    rows : list of dict
        The table, one row per run (see :mod:`particledyn.sweep.table`).
    table_csv, table_h5 : Path
    phase_png : Path or None
    counts : dict
        Runs by status after this call, plus ``skipped`` (already done) and ``ran``.
    elapsed : float
        Wall seconds of the whole call; ``K0_elapsed`` of the K0 measurements.
    """

    out: Path
    rows: list
    table_csv: Path
    table_h5: Path
    phase_png: Path | None
    counts: dict
    elapsed: float
    K0_elapsed: float


# ---------------------------------------------------------------- one run (on a worker)
def file_state(path: str, steps: int) -> str:
    """What to do with a run file: ``missing``, ``finished``/``diverged`` (done), ``extend``
    (finished at fewer steps), ``resume`` (stopped), ``running`` (its writer is alive) or
    ``restart`` (unreadable)."""
    from ..runner import run_info

    if not os.path.exists(path):
        return "missing"
    if not os.path.isfile(path):
        return "restart"
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


def execute_run(run: RunSpec, progress: bool = False) -> dict:
    """Run (or resume, or skip) one run of a sweep; never raises for the run's own errors.

    Returns
    -------
    dict
        ``run_id``, ``status`` (finished, diverged, failed, or the done state it found),
        ``error`` (one line, or ""), ``elapsed`` (seconds), ``action`` (what it did).
    """
    from ..runner import ResumeError, resume_run, start_run
    from ..scenario import Scenario
    from ..simulation import DivergenceError

    began = time.perf_counter()
    steps = int(run.resolved["run"]["steps"])
    scenario = Scenario(run.resolved, run.text, run.source)
    status, error, action = "finished", "", "start"
    try:
        os.makedirs(os.path.dirname(run.path) or ".", exist_ok=True)
        state = file_state(run.path, steps)
        if state in DONE:
            return {"run_id": run.run_id, "status": state, "error": "", "elapsed": 0.0, "action": "skip"}
        if state == "running":
            raise RuntimeError(f"{run.path} is being written by a live process; not touched")
        if state in ("extend", "resume"):
            action = state
            try:
                resume_run(run.path, scenario, steps=steps, progress=progress)
            except ResumeError:
                action = "restart"
                start_run(scenario, out=run.path, overwrite=True, progress=progress)
        else:
            start_run(scenario, out=run.path, overwrite=True, progress=progress)
    except DivergenceError as exc:
        status, error = "diverged", _one_line(exc)
    except Exception as exc:  # a failed run is recorded, the sweep goes on
        status, error = "failed", _one_line(exc)
    return {"run_id": run.run_id, "status": status, "error": error,
            "elapsed": time.perf_counter() - began, "action": action}


# ---------------------------------------------------------------- the cluster
@contextlib.contextmanager
def open_client(cluster: ClusterSpec):
    """A dask.distributed Client: to ``cluster.address``, or to a new LocalCluster (closed after)."""
    from distributed import Client, LocalCluster

    if cluster.address:
        client = Client(cluster.address)
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    with dask.config.set({"distributed.nanny.pre-spawn-environ": local_worker_environ()}):
        local = LocalCluster(n_workers=cluster.workers, threads_per_worker=cluster.threads_per_worker,
                             processes=True, dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(local)
    try:
        yield client
    finally:
        client.close()
        local.close()


def local_worker_environ() -> dict:
    """The environment Dask's nanny gives new workers, without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it to 64 KiB against memory fragmentation; a run allocates a few arrays per
    step, and glibc returning memory that often made runs 1.8x slower in a worker than in
    a plain process (measured: 1.73 s against 0.95 s for one run). The BLAS/OpenMP thread
    limits (1 per worker) are kept.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


# ---------------------------------------------------------------- K0
def _load_K0_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def measure_grid_K0(spec: SweepSpec, client, out: Path) -> tuple[dict, dict]:
    """K0 of every (seed, N) of the grid, measured on the cluster, cached in ``<out>/K0.json``.

    Returns
    -------
    (dict, dict)
        ``{(seed, n): K0}`` and ``{(seed, n): error}`` for the points whose measurement failed.
    """
    cache_path = out / "K0.json"
    cache = _load_K0_cache(cache_path)
    values, errors, futures = {}, {}, {}
    for seed, n in grid_points(spec):
        resolved = run_scenario(spec, seed, n, 1.0)
        key = f"{resolved['run']['seed']},{resolved['init'].get('n')},{K0_fingerprint(resolved)}"
        if key in cache:
            values[(seed, n)] = float(cache[key])
        else:
            futures[(seed, n)] = (key, client.submit(measure_K0, resolved, spec.sharpness_tol, pure=False))
    for point, (key, future) in futures.items():
        try:
            values[point] = cache[key] = float(future.result())
        except Exception as exc:
            errors[point] = f"K0 measurement failed: {_one_line(exc)}"
    if futures:
        out.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
        tmp.replace(cache_path)
    return values, errors


def _failed_point_rows(spec: SweepSpec, errors: dict) -> list[dict]:
    from .table import COLUMNS, _MISSING

    rows = []
    for (seed, n), error in errors.items():
        probe = run_scenario(spec, seed, n, 1.0)
        for i, value in enumerate(spec.lr_factor or spec.lr):
            row = {name: _MISSING[kind] for name, kind in COLUMNS.items()}
            row.update(run_id=f"n{probe['init'].get('n')}_seed{probe['run']['seed']}_{i}", status="failed",
                       error=error, seed=probe["run"]["seed"], n=probe["init"].get("n") or -1)
            if spec.lr_factor is not None:
                row["lr_factor"] = value
            else:
                row["eta"] = value
            rows.append(row)
    return rows


# ---------------------------------------------------------------- the sweep
def run_sweep(path, *, out=None, client=None, address: str | None = None, workers: int | None = None,
              limit: int | None = None, progress: bool | None = None, plot: bool | None = None
              ) -> SweepResult:
    """Run every unfinished run of a sweep file and write its summary table (and phase diagram).

    Parameters
    ----------
    path : str or Path
        The SWEEP.toml file.
    out : str or Path, optional
        Output folder (default: the file's ``sweep.out``).
    client : distributed.Client, optional
        Use this client (left open); otherwise one is made from ``address`` / ``workers`` /
        the file's ``[cluster]`` and closed at the end.
    address : str, optional
        A running Dask scheduler (overrides ``cluster.address``).
    workers : int, optional
        LocalCluster worker count (overrides ``cluster.workers``).
    limit : int, optional
        Launch at most this many of the runs still to do (the rest stay pending).
    progress : bool or None
        Progress bar counting runs; None: on a terminal only.
    plot : bool, optional
        Write ``phase_diagram.png`` (default: the file's ``sweep.plot``).

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError
        A malformed sweep file or base scenario (nothing is launched).
    """
    from dataclasses import replace

    from tqdm.auto import tqdm

    began = time.perf_counter()
    spec = load_sweep(path)
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 0):
        raise ValueError(f"limit={limit!r}: expected an integer >= 0 or None")
    cluster = spec.cluster
    if address is not None:
        cluster = replace(cluster, address=address)
    if workers is not None:
        if int(workers) != workers or workers < 1:
            raise ValueError(f"workers={workers!r}: expected an integer >= 1")
        cluster = replace(cluster, workers=int(workers))
    out = Path(out if out is not None else spec.out)
    out.mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(client) if client is not None else open_client(cluster)) as c:
        k0_began = time.perf_counter()
        K0, K0_errors = measure_grid_K0(spec, c, out)
        k0_elapsed = time.perf_counter() - k0_began
        runs = _expand_available(spec, K0, out)
        states = {r.run_id: file_state(r.path, int(r.resolved["run"]["steps"])) for r in runs}
        todo = [r for r in runs if states[r.run_id] not in DONE]
        launch = todo if limit is None else todo[: int(limit)]
        outcomes: dict[str, dict] = {}
        bar = tqdm(total=len(runs), initial=len(runs) - len(todo), unit="run", desc=f"sweep {spec.name}",
                   disable={True: False, False: True, None: None}[progress], dynamic_ncols=True)
        tag = uuid.uuid4().hex[:8]
        futures = {c.submit(execute_run, r, key=f"particledyn-{spec.name}-{r.run_id}-{tag}", pure=False): r
                   for r in launch}
        try:
            from distributed import as_completed

            for future in as_completed(futures):
                run = futures[future]
                try:
                    outcomes[run.run_id] = future.result()
                except Exception as exc:  # the worker died, the task was lost, ...
                    outcomes[run.run_id] = {"run_id": run.run_id, "status": "failed",
                                            "error": _one_line(exc), "elapsed": math.nan}
                bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            bar.close()
    rows = []
    for run in runs:
        outcome = outcomes.get(run.run_id)
        if outcome is not None:
            rows.append(run_row(run, outcome["status"], outcome["error"], outcome["elapsed"]))
        else:
            state = states[run.run_id]
            status = state if state in DONE else ("pending" if state == "missing" else "stopped")
            rows.append(run_row(run, status))
    rows += _failed_point_rows(spec, K0_errors)
    attrs = {"sweep": spec.name, "source": spec.source, "base": spec.base,
             "x_axis": "lr_factor = eta / eta*, eta* = 1/K0, K0 = lambda_max of the Hessian at the start"}
    table_csv, table_h5 = write_table(rows, out, attrs)
    phase_png = None
    if plot if plot is not None else spec.plot:
        from .phase import plot_phase_diagram

        phase_png = plot_phase_diagram(rows, out / "phase_diagram.png", title=spec.name)
    counts: dict = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    counts["skipped"] = len(runs) - len(todo)
    counts["ran"] = len(outcomes)
    return SweepResult(out, rows, table_csv, table_h5, phase_png, counts,
                       time.perf_counter() - began, k0_elapsed)


def _expand_available(spec: SweepSpec, K0: dict, out: Path) -> list[RunSpec]:
    """The runs of the grid points whose K0 was measured."""
    from dataclasses import replace

    runs = []
    for seed, n in grid_points(spec):
        if (seed, n) in K0:
            runs += expand_runs(replace(spec, seeds=(seed,), sizes=(n,)), K0, out)
    return runs


# ---------------------------------------------------------------- command line
def sweep_main(argv: Sequence[str] | None = None) -> int:
    """``particledyn sweep SWEEP.toml [--out DIR] [--address A] [--workers N] [--limit N]``.

    Exit status: 0 every run finished or diverged, 1 some run failed or is left to do,
    2 a bad sweep file, 130 interrupted (run it again to resume).
    """
    parser = argparse.ArgumentParser(
        prog="particledyn sweep",
        description="Run a grid of learning rates (absolute or multiples of eta* = 1/K0), seeds and N "
                    "over a base scenario on dask.distributed; write one HDF5 file per run, "
                    "summary.csv / summary.h5 and phase_diagram.png. Run again to resume.")
    parser.add_argument("sweep", metavar="SWEEP.toml")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: sweep.out)")
    parser.add_argument("--address", metavar="ADDR", help="a running Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, metavar="N", help="LocalCluster workers (default: cluster.workers)")
    parser.add_argument("--limit", type=int, metavar="N", help="launch at most N of the runs left to do")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the phase diagram")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar counting runs (default: on a terminal only)")
    args = parser.parse_args(argv)
    try:
        result = run_sweep(args.sweep, out=args.out, address=args.address, workers=args.workers,
                           limit=args.limit, progress=args.progress, plot=False if args.no_plot else None)
    except (SweepError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the sweep again to resume (finished runs are skipped)", file=sys.stderr)
        return 130
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items()))
    print(f"sweep {result.out}: {counts}; table {result.table_csv}"
          + (f"; phase diagram {result.phase_png}" if result.phase_png else ""))
    for row in result.rows:
        if row["status"] == "failed":
            print(f"  failed {row['run_id']}: {row['error']}", file=sys.stderr)
    left = sum(v for k, v in result.counts.items() if k in ("failed", "pending", "stopped"))
    return 0 if left == 0 else 1
