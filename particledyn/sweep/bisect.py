"""Bisection sweeps: per grid point (N, seed, other axes), the smallest eta / eta* at which an
event happens, located by geometric bisection between ``bisect.lo`` and ``bisect.hi``.

Round 0 runs both ends for every point at once; each later round runs the geometric midpoint
sqrt(lo * hi) of every point still bracketed, all points in parallel on the cluster. After
``iterations`` rounds the smallest rate with the event lies in (lo, hi] (in units of
eta* = 1/K0). Events (from the run's verdict, :func:`particledyn.sweep.table.run_row`):

- ``diverged``: the run diverged (NaN or inf; the table's status);
- ``merge``, ``betti_change``, ``change``, ``exact_merge``, ``persistent_betti``: as
  :mod:`particledyn.sweep.onset` reads them from the run file.

For every event but ``diverged``, a run that diverged or blew up (a finite loss 1e3 times the
start's, :func:`particledyn.sweep.onset.blowup`) without the event closes the bracket from above
as the event would: nothing is measured past divergence. The point's row then says
``onset = "diverged"`` (the event was not seen below the rate at which the runs diverge), else
``onset = "event"``. ``event`` may list several events: each has its own bracket, every run
informs all of them, and each round runs the midpoints of the brackets still open (one run where
two coincide).

Run files go to ``<out>/runs`` like any sweep's (a rerun skips the finished ones and resumes
the rest); ``<out>/bisection.csv`` holds one row per point, ``summary.csv`` one per run.
``particledyn sweep --collect`` (:func:`collect_bisection`) writes both from the run files alone,
replaying the rounds: the midpoints each bracket led to are listed with the ends, and a bracket
whose next run is not done (missing, stopped, running) is ``pending``.
The bracket assumes the event is monotone in the rate over [lo, hi]; each point's row keeps
every rate tried and its outcome, so a non-monotone point can be seen.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .grid import RunSpec, SweepSpec, expand_runs

__all__ = ["BisectPoint", "run_bisection", "collect_bisection", "read_run", "has_event", "BISECT_COLUMNS"]

BISECT_COLUMNS = (
    "seed",
    "n",
    "axes",
    "event",
    "status",
    "onset",
    "K0",
    "eta_star",
    "lo_factor",
    "hi_factor",
    "lo_eta",
    "hi_eta",
    "runs",
    "tried",
    "error",
)


def has_event(row: dict, event: str, events: dict | None = None) -> tuple[bool, bool]:
    """``(seen, diverged first)`` of ``event`` in a run: ``diverged`` from the table row's status;
    every other event from the run file at ``row["path"]`` (:func:`particledyn.sweep.onset.run_events`,
    which also says whether the run diverged or blew up before showing it), or from ``events``,
    what ``run_events`` read from it already."""
    if event == "diverged":
        return row["status"] == "diverged", False
    from .onset import event_seen, run_events

    if events is None:
        events = run_events(row["path"])
    seen = event_seen(events, event)
    return seen, events["diverged"] is not None and not seen


@dataclass
class BisectPoint:
    """The bracket of one grid point: the event is absent at ``lo`` and present at ``hi``."""

    point: tuple
    K0: float
    lo: float
    hi: float
    tried: dict = field(default_factory=dict)  # factor -> event seen (bool)
    status: str = "bracketing"
    error: str = ""
    diverged: dict = field(default_factory=dict)  # factor -> the run diverged without the event

    def next_factors(self, bounds: tuple[float, float]) -> list[float]:
        if self.status != "bracketing":
            return []
        ends = [f for f in bounds if f not in self.tried]
        if ends:
            return ends
        return [math.sqrt(self.lo * self.hi)]

    def update(self, factor: float, event: bool, bounds: tuple[float, float]) -> None:
        """Record the outcome at ``factor``; only a rate inside the bracket moves it."""
        self.tried[factor] = event
        if self.status != "bracketing":
            return
        if factor == bounds[0] and event:
            self.status = "event_at_lo"
        elif factor == bounds[1] and not event:
            self.status = "no_event_at_hi"
        elif self.lo < factor < self.hi:
            if event:
                self.hi = factor
            else:
                self.lo = factor

    @property
    def onset(self) -> str:
        """What the run at the bracket's top showed: "event", "diverged" (before the event) or ""."""
        top = self.lo if self.status == "event_at_lo" else self.hi
        if self.status in ("no_event_at_hi", "failed", "pending") or top not in self.tried:
            return ""
        return "diverged" if self.diverged.get(top) else "event"


def _run_at(spec: SweepSpec, point: tuple, K0: float, factor: float, out: Path) -> RunSpec:
    single = replace(
        spec,
        lr_factor=(factor,),
        lr=None,
        seeds=(point[0],),
        sizes=(point[1],),
        axes=tuple((key, (value,)) for (key, _), value in zip(spec.axes, point[2:])),
    )
    return expand_runs(single, {point: K0}, out)[0]


def read_run(run: RunSpec, status: str, error: str, elapsed: float, events) -> tuple:
    """What a bisection learns from one run: ``(table row, run_events or None, error reading it)``.

    The file is read once for all ``events`` (and not at all for a run not done or when only
    ``diverged`` is bisected); a live bisection reads it on the worker that ran it.
    """
    from .executor import _one_line
    from .onset import run_events
    from .table import run_row

    row = run_row(run, status, error, elapsed)
    found, unreadable = None, ""
    if row["status"] in ("finished", "diverged") and any(e != "diverged" for e in events):
        try:
            found = run_events(row["path"])
        except (OSError, KeyError, ValueError) as exc:
            unreadable = f"cannot read the run file: {_one_line(exc)}"
    return row, found, unreadable


def _run_and_read(run: RunSpec, events) -> tuple:
    """On a worker: run (or skip, or resume) one run of a bisection and read it (:func:`read_run`)."""
    from .executor import execute_run

    outcome = execute_run(run)
    return read_run(run, outcome["status"], outcome["error"], outcome["elapsed"], events)


def _rounds(spec: SweepSpec, out: Path, K0: dict, evaluate) -> dict:
    """The bisection's rounds: both ends of every point, then each open bracket's midpoint.

    ``evaluate(wanted, record)`` brings about the runs of one round (``wanted``:
    ``{(point, factor): RunSpec}``) and calls ``record((point, factor), read)`` with what
    :func:`read_run` made of each. Returns ``{(point, event): BisectPoint}``.
    """
    bounds, events = (spec.bisection().lo, spec.bisection().hi), spec.bisection().events
    points = {(p, e): BisectPoint(p, K0[p], *bounds) for p in K0 for e in events}

    def record(key: tuple, read: tuple) -> None:
        row, found, unreadable = read
        p, factor = key
        for event in events:
            state = points[(p, event)]
            if row["status"] in ("pending", "stopped", "running"):
                if state.status == "bracketing":
                    state.status, state.error = "pending", f"run {row['run_id']} is {row['status']}"
                continue
            if row["status"] not in ("finished", "diverged"):
                state.status, state.error = "failed", row["error"] or row["status"]
                continue
            if unreadable and event != "diverged":
                state.status, state.error = "failed", unreadable
                continue
            seen, diverged = has_event(row, event, found)
            state.diverged[factor] = diverged
            state.update(factor, seen or diverged, bounds)

    for _ in range(spec.bisection().iterations + 1):  # both ends, then one midpoint a round per bracket
        wanted = {}
        for (p, _event), state in points.items():
            for factor in state.next_factors(bounds):
                if (p, factor) not in wanted:
                    wanted[(p, factor)] = _run_at(spec, p, state.K0, factor, out)
        if not wanted:
            break
        evaluate(wanted, record)
    for state in points.values():
        if state.status == "bracketing":
            state.status = "bracketed"
    return points


def run_bisection(
    spec: SweepSpec, client, out: Path, K0: dict, K0_errors: dict, patience: float, progress=None
) -> tuple[list[dict], list[dict], Path]:
    """Bisect every grid point of ``spec`` on ``client``.

    Returns
    -------
    (list of dict, list of dict, Path)
        The per-run table rows, the per-point rows (:data:`BISECT_COLUMNS`) and the CSV written.
    """
    from .cluster import wait_for_runs
    from .executor import _one_line

    rows: dict[str, dict] = {}
    events = spec.bisection().events

    def evaluate(wanted: dict, record) -> None:
        futures = {
            client.submit(
                _run_and_read,
                run,
                events,
                pure=False,
                key=f"particledyn-bisect-{run.run_id}-{time.monotonic_ns()}",
            ): key
            for key, run in wanted.items()
        }

        def done(future):
            key = futures[future]
            run = wanted[key]
            try:
                read = future.result()
            except Exception as exc:  # the worker died, the task was lost, ...
                read = read_run(run, "failed", _one_line(exc), math.nan, ())
            rows[run.run_id] = read[0]
            record(key, read)

        wait_for_runs(client, futures, done, patience)

    points = _rounds(spec, out, K0, evaluate)
    return list(rows.values()), _write_points(spec, out, points, K0_errors), out / "bisection.csv"


def collect_bisection(spec: SweepSpec, out: Path, K0: dict, K0_errors: dict, elapsed: dict | None = None):
    """The bisection as its run files in ``out`` record it, running nothing: the rounds are
    replayed, each round's rates read from the runs of the rounds before (the midpoints included),
    and a bracket whose next run is not done stays ``pending``.

    Parameters
    ----------
    spec : SweepSpec
    out : Path
        The sweep's folder (its ``runs/``); ``bisection.csv`` is written there.
    K0 : dict
        ``{point: K0}`` of the points measured (the sweep's ``K0.json``).
    K0_errors : dict
        ``{point: error}`` of points without a K0: one failed row per event.
    elapsed : dict, optional
        ``{run_id: seconds}`` known from an earlier table (the run files do not hold it).

    Returns
    -------
    (list of dict, list of dict, Path)
        As :func:`run_bisection`: the per-run rows (finished, diverged, or pending / stopped /
        running for the runs a bracket waits on), the per-point rows and the CSV written.
    """
    from .executor import _state

    rows: dict[str, dict] = {}
    known = elapsed or {}

    def evaluate(wanted: dict, record) -> None:
        for key, run in wanted.items():
            state = _state(run)  # finished, diverged, running, or not done: missing or stopped
            status = (
                state if state in ("finished", "diverged", "running") else _NOT_DONE.get(state, "stopped")
            )
            read = read_run(run, status, "", known.get(run.run_id, math.nan), spec.bisection().events)
            rows[run.run_id] = read[0]
            record(key, read)

    points = _rounds(spec, out, K0, evaluate)
    return list(rows.values()), _write_points(spec, out, points, K0_errors), out / "bisection.csv"


_NOT_DONE = {"missing": "pending"}


def _write_points(spec: SweepSpec, out: Path, points: dict, K0_errors: dict) -> list[dict]:
    """The per-point rows (:data:`BISECT_COLUMNS`), also written to ``<out>/bisection.csv``."""
    from .table import axes_label

    events = spec.bisection().events
    bounds = (spec.bisection().lo, spec.bisection().hi)
    point_rows = [
        _point_row(spec, state, event, axes_label(tuple(zip((k for k, _ in spec.axes), state.point[2:]))))
        for (_, event), state in points.items()
    ]
    for p, error in K0_errors.items():
        for event in events:
            failed = BisectPoint(p, math.nan, *bounds, status="failed", error=error)
            point_rows.append(
                _point_row(spec, failed, event, axes_label(tuple(zip((k for k, _ in spec.axes), p[2:]))))
            )
    path = out / "bisection.csv"
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(BISECT_COLUMNS))
        writer.writeheader()
        writer.writerows(point_rows)
    tmp.replace(path)
    return point_rows


def _point_row(spec: SweepSpec, state: BisectPoint, event: str, axes: str) -> dict:
    K0 = state.K0
    lo, hi = state.lo, state.hi
    if state.status == "event_at_lo":
        lo, hi = 0.0, spec.bisection().lo
    elif state.status == "no_event_at_hi":
        lo, hi = spec.bisection().hi, math.inf
    elif state.status == "failed":
        lo = hi = math.nan
    tried = "; ".join(
        f"{f:.6g}:{'diverged' if state.diverged.get(f) else 'yes' if e else 'no'}"
        for f, e in sorted(state.tried.items())
    )
    from .grid import run_scenario

    probe = run_scenario(spec, state.point, 1.0)
    return {
        "seed": probe.run.seed,
        "n": getattr(probe.init, "n", None),
        "axes": axes,
        "event": event,
        "status": state.status,
        "onset": state.onset,
        "K0": K0,
        "eta_star": 1.0 / K0 if K0 and K0 > 0 else math.nan,
        "lo_factor": lo,
        "hi_factor": hi,
        "lo_eta": lo / K0 if K0 else math.nan,
        "hi_eta": hi / K0 if K0 else math.nan,
        "runs": len(state.tried),
        "tried": tried,
        "error": state.error,
    }
