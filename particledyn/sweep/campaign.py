"""The phase-transition campaign: the critical eta / eta* of each event, per N, optimizer and
scaling, read against each K measured at the start (issue 18, item 5).

One command runs the sweeps (resuming what is done) and writes the table and figure::

    particledyn campaign scenarios/sweeps/phase_transition_campaign.toml [more sweeps ...] \\
        [--out DIR] [--table-out DIR] [--overwrite] [--address A] [--workers N] [--limit N] \\
        [--figure PNG] [--analyse-only] [--with-points CSV ...] [--skip-sweep NAME ...]

(``python -m particledyn.sweep.campaign`` is the same command.) The analysis runs on the Dask
workers, one task per grid point (its runs read and its K's measured where they are,
:func:`analyse_point`); the client only gathers the rows. ``--with-points`` adds the rows of an
earlier analysis whose run files are gone.

Per grid point (seed, N, scaling, optimizer) and event (:mod:`particledyn.sweep.onset`), the
onset is bracketed from the rates the sweep ran (a ladder or a bisection alike): ``hi`` is the
smallest eta / eta* whose run showed the event or diverged before it, ``lo`` the largest rate
below it without. Statuses: ``bracketed``; ``at_lo`` (already at the smallest rate tried: the
onset is below it); ``none`` (no event up to the largest rate tried: no onset in range, and no
number is invented); ``diverged`` (the runs diverge at ``hi`` before the event shows: no onset
below divergence); ``failed``. ``non_monotone`` counts rates above ``hi`` without the event.

The critical rate of a bracketed point is the geometric midpoint sqrt(lo * hi) / K0 (K0 =
lambda_max at the start, eta* = 1/K0); read against another K measured at the same start it is
``eta_c * K``. Three K's (:func:`start_K`): ``lambda_max`` (Lanczos, the sweep's K0),
``pairwise`` (max |U_i - U_j| / d_ij of the GD field over the start's pairs, a lower bound) and
``apriori`` (the certified bound of :func:`particledyn.geometry.apriori.lipschitz_bound`).
The table aggregates over seeds: mean and std of the critical eta*K per K (bracketed seeds only),
the mean half-width of the brackets (log10), and how many seeds had each status. The K that
"predicts" the onset is the one whose mean critical eta*K is closest to 1 in log scale.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..scenario.resolved import ResolvedScenario
from .stop import raise_if_stopped

__all__ = [
    "K_SOURCES",
    "POINT_COLUMNS",
    "TABLE_COLUMNS",
    "onset_bracket",
    "start_K",
    "analyse_point",
    "point_rows",
    "read_points",
    "check_distinct",
    "aggregate",
    "scaling_fit",
    "scaling_markdown",
    "write_campaign",
    "markdown_table",
    "markdown_by_n",
    "plot_campaign",
    "campaign_main",
]

#: The K's an onset is read against (all measured at the start of each grid point).
K_SOURCES = ("lambda_max", "pairwise", "apriori")
#: Events of the campaign's table and figure.
EVENTS = ("exact_merge", "merge", "persistent_betti", "betti_change")
POINT_COLUMNS = (
    "sweep",
    "seed",
    "n",
    "scaling",
    "optimizer",
    "event",
    "status",
    "lo_factor",
    "hi_factor",
    "non_monotone",
    "runs",
    "K_lambda_max",
    "K_pairwise",
    "K_apriori",
    "eta_c",
    "eta_c_lambda_max",
    "eta_c_pairwise",
    "eta_c_apriori",
)
TABLE_COLUMNS = (
    "n",
    "scaling",
    "optimizer",
    "event",
    "seeds",
    "bracketed",
    "at_lo",
    "none",
    "diverged",
    "failed",
    "none_up_to",
    "below",
    "diverges_lo",
    "diverges_hi",
    "mean_lambda_max",
    "std_lambda_max",
    "mean_pairwise",
    "std_pairwise",
    "mean_apriori",
    "std_apriori",
    "bracket_log10_halfwidth",
    "predicts",
)


def onset_bracket(outcomes: dict) -> dict:
    """The onset bracket of one event at one grid point.

    Parameters
    ----------
    outcomes : dict
        ``{eta / eta*: "event" | "none" | "diverged" | "failed"}``: what the run at each rate
        showed ("diverged": diverged before the event).

    Returns
    -------
    dict
        ``status`` (bracketed, at_lo, none, diverged, failed), ``lo``, ``hi`` (NaN where
        they do not exist; ``at_lo``: ``hi`` is the smallest rate, ``none``: ``lo`` the largest),
        ``non_monotone`` (rates above ``hi`` without the event) and ``runs``.
    """
    rates = sorted(f for f, o in outcomes.items() if o != "failed")
    out = {"lo": math.nan, "hi": math.nan, "non_monotone": 0, "runs": len(outcomes)}
    if not rates:
        return dict(out, status="failed")
    hits = [f for f in rates if outcomes[f] in ("event", "diverged")]
    if not hits:
        return dict(out, status="none", lo=rates[-1])
    hi = hits[0]
    below = [f for f in rates if f < hi]
    out["non_monotone"] = sum(1 for f in rates if f > hi and outcomes[f] == "none")
    if not below:
        return dict(out, status="at_lo", hi=hi)
    status = "diverged" if outcomes[hi] == "diverged" else "bracketed"
    return dict(out, status=status, lo=below[-1], hi=hi)


def start_K(resolved: ResolvedScenario, K0: float) -> dict:
    """The three K's at the start of a resolved scenario.

    Parameters
    ----------
    resolved : ResolvedScenario
    K0 : float
        lambda_max at the start, as the sweep measured it (:func:`particledyn.sweep.grid.measure_K0`).

    Returns
    -------
    dict
        ``{"lambda_max", "pairwise", "apriori"}``; ``apriori`` is NaN for a kernel without the
        analytic bound (the message is not an error of the campaign).
    """
    from ..geometry.apriori import lipschitz_bound, output_gradient
    from ..geometry.lipschitz import pairwise_lipschitz
    from ..geometry.neighbours import NeighbourPairs
    from ..runner import prepare

    prepared = prepare(resolved)
    kernel, masses = prepared.kernel, prepared.masses
    X = np.asarray(prepared.positions, dtype=np.float64)
    context = kernel.evaluation_context()
    field = np.asarray(kernel.field(X, masses, context), dtype=np.float64)
    pairwise = pairwise_lipschitz(NeighbourPairs(X), field).K
    try:
        apriori = lipschitz_bound(
            X, context[0], output_gradient(kernel, X, masses, context), kernel.activation
        )
    except (AttributeError, TypeError, ValueError):
        apriori = math.nan
    return {"lambda_max": float(K0), "pairwise": float(pairwise), "apriori": float(apriori)}


def _outcome(events: dict | None, status: str, event: str) -> str:
    if events is None or status not in ("finished", "diverged"):
        return "failed"
    if events[event] is not None:
        return "event"
    return "diverged" if events["diverged"] is not None else "none"


def _axis(axes: str, key: str, default: str) -> str:
    for part in axes.split("; "):
        if part.startswith(key + "="):
            return part.split("=", 1)[1]
    return default


def _runs_by_point(out: Path) -> dict[tuple, list[dict]]:
    """The rows of ``<out>/summary.csv``, per grid point ``(seed, n, axes)``, in table order."""
    from .table import read_table

    table = read_table(out / "summary.csv")
    names = list(table)
    by_point: dict[tuple, list[dict]] = {}
    for values in zip(*(table[n] for n in names)):
        row = dict(zip(names, values))
        by_point.setdefault((int(row["seed"]), int(row["n"]), str(row["axes"])), []).append(row)
    return by_point


def _points_by_label(spec) -> dict[tuple, tuple]:
    """``{(seed, n, axes label): grid point}`` (the first point of each label)."""
    from .grid import grid_points, run_scenario
    from .table import axes_label

    found: dict[tuple, tuple] = {}
    for point in grid_points(spec):
        probe = run_scenario(spec, point, 1.0)
        label = axes_label(tuple(zip((k for k, _ in spec.axes), point[2:])))
        found.setdefault((probe.run.seed, getattr(probe.init, "n", None), label), point)
    return found


def analyse_point(
    spec,
    point: tuple | None,
    key: tuple,
    runs: list[dict],
    events,
    names: tuple[str, str],
    K: dict | None = None,
) -> tuple[list[dict], dict]:
    """The rows (:data:`POINT_COLUMNS`) of one grid point: its runs read, its K's measured.

    It runs on a Dask worker in :func:`point_rows` (or here, serially): the run files are read
    and the start prepared where the work is, and only the rows come back.

    Parameters
    ----------
    spec : SweepSpec
    point : tuple or None
        The grid point (:func:`particledyn.sweep.grid.grid_points`); None: not in the sweep's
        grid (its K's are NaN).
    key : tuple
        ``(seed, n, axes label)`` of the point, as the summary table names it.
    runs : list of dict
        The point's rows of the summary table.
    events : sequence of str
    names : (str, str)
        The point's scaling and optimizer, as the table names them.
    K : dict, optional
        The point's K's (:func:`start_K`) when known already: not measured again.

    Returns
    -------
    (list of dict, dict)
        One row per event, and the point's K's.
    """
    from .grid import run_scenario
    from .onset import run_events

    seed, n, _axes = key
    read = {}
    for run in runs:
        try:
            read[run["run_id"]] = run_events(run["path"]) if run["path"] else None
        except (OSError, KeyError, ValueError):
            read[run["run_id"]] = None
    K0 = next((float(r["K0"]) for r in runs if np.isfinite(r["K0"])), math.nan)
    if K is None:
        K = (
            start_K(run_scenario(spec, point, 1.0), K0)
            if point is not None and np.isfinite(K0)
            else dict.fromkeys(K_SOURCES, math.nan)
        )
    scaling, optimizer = names
    rows = []
    for event in events:
        outcomes = {
            float(r["lr_factor"]): _outcome(read[r["run_id"]], str(r["status"]), event)
            for r in runs
            if np.isfinite(r["lr_factor"])
        }
        b = onset_bracket(outcomes)
        eta_c = math.sqrt(b["lo"] * b["hi"]) / K0 if b["status"] == "bracketed" and K0 > 0 else math.nan
        rows.append(
            {
                "sweep": spec.name,
                "seed": seed,
                "n": n,
                "scaling": scaling,
                "optimizer": optimizer,
                "event": event,
                "status": b["status"],
                "lo_factor": b["lo"],
                "hi_factor": b["hi"],
                "non_monotone": b["non_monotone"],
                "runs": b["runs"],
                **{f"K_{s}": K[s] for s in K_SOURCES},
                "eta_c": eta_c,
                **{f"eta_c_{s}": eta_c * K[s] for s in K_SOURCES},
            }
        )
    return rows, K


def point_rows(
    spec,
    out: Path,
    events=EVENTS,
    K_cache: dict | None = None,
    client=None,
    patience: float = 120.0,
) -> list[dict]:
    """One row (:data:`POINT_COLUMNS`) per grid point and event of a finished sweep.

    Parameters
    ----------
    spec : SweepSpec
    out : Path
        The sweep's folder (its ``summary.csv`` and run files).
    events : sequence of str
    K_cache : dict, optional
        ``{"<out>|<seed>|<n>|<axes>": start_K}``: the K's of the points in it are not measured
        again, and the rest are added as they are measured.
    client : distributed.Client, optional
        Analyse each point (:func:`analyse_point`: read its runs, measure its K's) on the
        workers, all points at once; only the rows come back to the client. Without it, one
        point after another here. The rows are the same either way, in the same order.
    patience : float
        With ``client``: seconds with no worker left before
        :class:`particledyn.sweep.cluster.NoWorkersError` (``cluster.no_worker_timeout``).
    """
    from .grid import grid_points, run_scenario

    by_point = _runs_by_point(Path(out))
    labels = _points_by_label(spec)
    cache = {} if K_cache is None else K_cache
    base = run_scenario(spec, grid_points(spec)[0], 1.0)
    tasks = []
    for key, runs in by_point.items():
        axes = key[2]
        names = (
            _axis(axes, "kernel.scaling", getattr(base.kernel, "scaling", "")),
            _axis(axes, "optimizer.name", base.optimizer.name),
        )
        cache_key = f"{out}|{key[0]}|{key[1]}|{axes}"
        tasks.append(
            (cache_key, (spec, labels.get(key), key, runs, tuple(events), names, cache.get(cache_key)))
        )
    results: dict[int, tuple] = {}
    if client is None:
        for i, (_, args) in enumerate(tasks):
            raise_if_stopped()  # the analysis of a large campaign takes minutes
            results[i] = analyse_point(*args)
    else:
        import uuid

        from .cluster import wait_for_runs

        tag = uuid.uuid4().hex[:8]
        futures = {
            client.submit(
                analyse_point, *args, pure=False, key=f"particledyn-analyse-{spec.name}-{i}-{tag}"
            ): i
            for i, (_, args) in enumerate(tasks)
        }

        def done(future) -> None:
            results[futures[future]] = future.result()  # a point that raised raises here, as serially

        wait_for_runs(client, futures, done, patience)
    rows = []
    for i, (cache_key, _) in enumerate(tasks):
        point_rows_, K = results[i]
        cache.setdefault(cache_key, K)
        rows += point_rows_
    return rows


_INT_COLUMNS = ("seed", "n", "non_monotone", "runs")
_STR_COLUMNS = ("sweep", "scaling", "optimizer", "event", "status")


def read_points(path) -> list[dict]:
    """The per-point rows of an earlier analysis (its ``campaign_points.csv``), for a campaign
    whose run files are gone: floats as written there (6 significant digits), empty cells NaN.

    Raises
    ------
    ValueError
        The file lacks a column of :data:`POINT_COLUMNS` or holds a value that is not a number
        where one is expected (the message names the file, row and column).
    """
    path = Path(path)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in POINT_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{str(path)!r}: no column {missing[0]!r}: expected a campaign_points.csv")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row: dict = {}
            for column in POINT_COLUMNS:
                text = raw[column]
                if column in _STR_COLUMNS:
                    row[column] = text
                    continue
                try:
                    row[column] = int(text) if column in _INT_COLUMNS else float(text) if text else math.nan
                except ValueError:
                    raise ValueError(
                        f"{str(path)!r} line {line}: {column} = {text!r}: expected a number"
                    ) from None
            rows.append(row)
    return rows


def _point_key(row: dict) -> tuple:
    return (row["seed"], row["n"], row["scaling"], row["optimizer"], row["event"])


def check_distinct(rows: list[dict]) -> None:
    """Refuse a campaign that holds one grid point and event twice (two sweeps, or a sweep and an
    earlier analysis' points, measuring the same thing): the table would count its seed twice.

    Raises
    ------
    ValueError
        Naming the point, the event and the two sweeps.
    """
    first: dict[tuple, str] = {}
    for row in rows:
        key = _point_key(row)
        if key in first:
            seed, n, scaling, optimizer, event = key
            raise ValueError(
                f"seed={seed} n={n} scaling={scaling} optimizer={optimizer} event={event} is in both "
                f"{first[key]!r} and {row['sweep']!r}: expected each grid point once "
                "(--skip-sweep NAME leaves the points of a sweep out of --with-points)"
            )
        first[key] = row["sweep"]


def _extreme(rows: list[dict], status: str, key: str, pick) -> float:
    values = [r[key] for r in rows if r["status"] == status and np.isfinite(r[key])]
    return float(pick(values)) if values else math.nan


def aggregate(rows: list[dict]) -> list[dict]:
    """The campaign's table (:data:`TABLE_COLUMNS`): per (N, scaling, optimizer, event), over seeds.

    ``mean_<K>`` / ``std_<K>``: the critical eta*K over the bracketed seeds (NaN when none was
    bracketed). Where seeds had no bracket: ``none_up_to`` (the smallest top rate of the seeds
    that saw no event), ``below`` (the largest bottom rate of those that saw it already there),
    ``diverges_lo`` .. ``diverges_hi`` (the rates at which the seeds that diverged first did), in
    eta / eta*. ``predicts``: the K whose mean critical eta*K is closest to 1 (log scale).
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["n"], row["scaling"], row["optimizer"], row["event"]), []).append(row)
    table = []
    for (n, scaling, optimizer, event), members in sorted(groups.items()):
        count = {
            s: sum(1 for r in members if r["status"] == s)
            for s in ("bracketed", "at_lo", "none", "diverged", "failed")
        }
        done = [r for r in members if r["status"] == "bracketed"]
        entry = {
            "n": n,
            "scaling": scaling,
            "optimizer": optimizer,
            "event": event,
            "seeds": len(members),
            **count,
            "none_up_to": _extreme(members, "none", "lo_factor", min),
            "below": _extreme(members, "at_lo", "hi_factor", max),
            "diverges_lo": _extreme(members, "diverged", "hi_factor", min),
            "diverges_hi": _extreme(members, "diverged", "hi_factor", max),
        }
        best, best_gap = "", math.inf
        for source in K_SOURCES:
            values = np.array([r[f"eta_c_{source}"] for r in done], dtype=float)
            values = values[np.isfinite(values)]
            entry[f"mean_{source}"] = float(values.mean()) if len(values) else math.nan
            entry[f"std_{source}"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            if len(values) and abs(math.log10(entry[f"mean_{source}"])) < best_gap:
                best, best_gap = source, abs(math.log10(entry[f"mean_{source}"]))
        widths = [0.5 * math.log10(r["hi_factor"] / r["lo_factor"]) for r in done]
        entry["bracket_log10_halfwidth"] = float(np.mean(widths)) if widths else math.nan
        entry["predicts"] = best
        table.append(entry)
    return table


SCALING_COLUMNS = (
    "scaling",
    "optimizer",
    "event",
    "K",
    "seeds_per_n",
    "points",
    "exponent",
    "stderr",
    "verdict",
)


def scaling_fit(points: list[dict], sources=K_SOURCES) -> list[dict]:
    """How the critical eta*K scales with N: a least-squares fit of log eta_c K = c + b log N over
    the bracketed seeds of each (scaling, optimizer, event), per K.

    ``exponent`` is b, ``stderr`` its standard error (the residuals' spread over seeds and the
    bracket widths, each onset uniform in log inside its bracket, in quadrature); ``verdict`` says ``"N^b"`` where |b| > 2 stderr, ``"no trend within error"`` where not,
    and why no fit was made (fewer than two N or three bracketed seeds). ``seeds_per_n`` lists how
    many seeds were bracketed at each N: the fit is over those only (censored seeds, with no
    onset in range or one below it, are left out and said).
    """
    groups: dict[tuple, list[dict]] = {}
    for row in points:
        groups.setdefault((row["scaling"], row["optimizer"], row["event"]), []).append(row)
    fits = []
    for (scaling, optimizer, event), members in sorted(groups.items()):
        done = [r for r in members if r["status"] == "bracketed"]
        for source in sources:
            kept = [r for r in done if np.isfinite(r[f"eta_c_{source}"]) and r[f"eta_c_{source}"] > 0]
            pairs = [(r["n"], r[f"eta_c_{source}"]) for r in kept]
            halves = [0.5 * math.log10(r["hi_factor"] / r["lo_factor"]) for r in kept]
            ns = sorted({n for n, _ in pairs})
            per_n = "; ".join(f"{n}:{sum(1 for m, _ in pairs if m == n)}" for n in ns)
            entry = {
                "scaling": scaling,
                "optimizer": optimizer,
                "event": event,
                "K": source,
                "seeds_per_n": per_n,
                "points": len(pairs),
                "exponent": math.nan,
                "stderr": math.nan,
            }
            if len(ns) < 2 or len(pairs) < 3:
                entry["verdict"] = (
                    "no fit: bracketed at fewer than 2 N" if len(ns) < 2 else "no fit: < 3 seeds"
                )
                fits.append(entry)
                continue
            x = np.log10([n for n, _ in pairs])
            y = np.log10([v for _, v in pairs])
            sxx = float(((x - x.mean()) ** 2).sum())
            slope = float(((x - x.mean()) * (y - y.mean())).sum() / sxx)
            residual = y - y.mean() - slope * (x - x.mean())
            # the spread over seeds, and each onset's place inside its bracket (uniform in log:
            # sd = half-width / sqrt 3), which the residuals miss when seeds share a bracket
            spread = float((residual**2).sum()) / (len(x) - 2) / sxx
            width = np.array([h for h, (_, v) in zip(halves, pairs)]) ** 2 / 3.0
            stderr = math.sqrt(spread + float((((x - x.mean()) / sxx) ** 2 * width).sum()))
            entry["exponent"], entry["stderr"] = slope, stderr
            entry["verdict"] = (
                f"N^({slope:.2f} +- {stderr:.2f})" if abs(slope) > 2 * stderr else "no trend within error"
            )
            fits.append(entry)
    return fits


def scaling_markdown(fits: list[dict], source: str = "lambda_max") -> str:
    """The fits of :func:`scaling_fit` for one K as Markdown."""
    lines = [
        f"| scaling | optimizer | event | bracketed seeds per N | exponent b of eta_c ~ N^b (K = {source}) "
        "| verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in fits:
        if row["K"] != source:
            continue
        b = f"{row['exponent']:.2f} +- {row['stderr']:.2f}" if math.isfinite(row["exponent"]) else ""
        lines.append(
            f"| {row['scaling']} | {row['optimizer']} | {row['event']} | {row['seeds_per_n'] or '-'} | {b} "
            f"| {row['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: list[dict], columns) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: (
                        ""
                        if isinstance(v, float) and math.isnan(v)
                        else f"{v:.6g}"
                        if isinstance(v, float)
                        else v
                    )
                    for k, v in row.items()
                }
            )
    tmp.replace(path)


def write_campaign(
    points: list[dict], table: list[dict], out, attrs: dict | None = None, fits: list[dict] | None = None
) -> dict:
    """Write ``campaign_points.csv``, ``campaign_table.csv``, ``campaign_scaling.csv`` and
    ``campaign.h5`` (groups ``points``, ``table`` and ``scaling``, one dataset per column) into
    ``out``; returns their paths."""
    import h5py

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "points": out / "campaign_points.csv",
        "table": out / "campaign_table.csv",
        "scaling": out / "campaign_scaling.csv",
        "h5": out / "campaign.h5",
    }
    fits = scaling_fit(points) if fits is None else fits
    _write_csv(paths["points"], points, POINT_COLUMNS)
    _write_csv(paths["table"], table, TABLE_COLUMNS)
    _write_csv(paths["scaling"], fits, SCALING_COLUMNS)
    tmp = paths["h5"].with_suffix(".h5.tmp")
    with h5py.File(tmp, "w") as f:
        for name, rows, columns in (
            ("points", points, POINT_COLUMNS),
            ("table", table, TABLE_COLUMNS),
            ("scaling", fits, SCALING_COLUMNS),
        ):
            group = f.create_group(name)
            for column in columns:
                values = [r[column] for r in rows]
                if values and isinstance(values[0], str):
                    group.create_dataset(
                        column, data=np.array(values, dtype=object), dtype=h5py.string_dtype()
                    )
                else:
                    group.create_dataset(column, data=np.array(values, dtype=float))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    tmp.replace(paths["h5"])
    return paths


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return ""
    if math.isfinite(std) and std <= 1e-12 * abs(mean):
        std = 0.0  # seeds with the same bracket: the spread is the mean's rounding, not 2.8e-17
    return f"{mean:.3g}" + (f" +- {std:.2g}" if math.isfinite(std) else "")


def _why(e: dict, short: bool = False) -> str:
    """Where the seeds of a table entry had no bracket, why (below the range, none in it,
    diverged first), each with its count; ``short``: in a few words (``10 div. 2.83-6.73``,
    ``9 none to 16``, ``3 below 0.0156``)."""
    why = []
    if e["at_lo"]:
        why.append(f"{e['at_lo']} below {e['below']:.3g}")
    if e["none"]:
        why.append(f"{e['none']} none {'to' if short else 'up to'} {e['none_up_to']:.3g}")
    if e["diverged"]:
        span = f"{e['diverges_lo']:.3g}" + (
            f"-{e['diverges_hi']:.3g}" if e["diverges_hi"] > e["diverges_lo"] else ""
        )
        why.append(f"{e['diverged']} div. {span}" if short else f"{e['diverged']} diverge first (at {span})")
    return "; ".join(why)


def _n_label(n: int) -> str:
    exponent = round(math.log10(n)) if n > 0 else 0
    return f"10^{exponent}" if n >= 10000 and 10**exponent == n else str(n)


def markdown_by_n(
    table: list[dict], fits: list[dict], events=("merge", "persistent_betti", "exact_merge")
) -> str:
    """The campaign's table with one column per N: per (scaling, optimizer, event), the critical
    eta / eta*_lambda_max (mean +- std over the bracketed seeds, [bracketed / seeds; how many of
    the others had the onset below the range, none in it, or diverged first]; where none was
    bracketed, those counts with the rates), then the fitted exponent b of eta_c K ~ N^b with its error for each K
    (:func:`scaling_fit`; ``*`` where |b| > 2 stderr) and the K closest to eta K = 1 at each N."""
    ns = sorted({e["n"] for e in table})
    head = (
        "| scaling | optimizer | event | "
        + " | ".join(f"N = {_n_label(n)}" for n in ns)
        + " | "
        + " | ".join(f"b ({s})" for s in K_SOURCES)
        + " | closest to 1 (per N) |"
    )
    lines = [head, "|" + "---|" * (4 + len(ns) + len(K_SOURCES))]
    fit_of = {(row["scaling"], row["optimizer"], row["event"], row["K"]): row for row in fits}
    groups = sorted({(e["scaling"], e["optimizer"], e["event"]) for e in table if e["event"] in events})
    for scaling, optimizer, event in groups:
        mine = {
            e["n"]: e
            for e in table
            if (e["scaling"], e["optimizer"], e["event"]) == (scaling, optimizer, event)
        }
        cells = []
        for n in ns:
            e = mine.get(n)
            if e is None:
                cells.append("-")
            elif e["bracketed"]:
                rest = "; ".join(
                    f"{e[k]} {word}"
                    for k, word in (("at_lo", "below"), ("none", "none"), ("diverged", "div."))
                    if e[k]
                )
                cells.append(
                    f"{_pm(e['mean_lambda_max'], e['std_lambda_max'])} [{e['bracketed']}/{e['seeds']}"
                    + (f"; {rest}]" if rest else "]")
                )
            else:
                cells.append(_why(e, short=True) or f"{e['failed']} failed")
        for source in K_SOURCES:
            fit = fit_of.get((scaling, optimizer, event, source))
            if fit is None or not math.isfinite(fit["exponent"]):
                cells.append("-")
            else:
                star = "*" if abs(fit["exponent"]) > 2 * fit["stderr"] else ""
                cells.append(f"{fit['exponent']:.2f} +- {fit['stderr']:.2f}{star}")
        cells.append(", ".join(mine[n]["predicts"] for n in ns if n in mine and mine[n]["predicts"]) or "-")
        lines.append(f"| {scaling} | {optimizer} | {event} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(table: list[dict], events=("merge", "persistent_betti", "exact_merge")) -> str:
    """The campaign's table as Markdown: per (N, scaling, optimizer, event), the critical eta*K
    (mean +- std over the bracketed seeds) for each K, and where no onset was bracketed, why."""
    head = (
        "| N | scaling | optimizer | event | seeds: bracketed / below / none / diverged first "
        "| eta_c / eta*_lambda_max | eta_c K_pairwise | eta_c K_apriori | closest to 1 |"
    )
    lines = [head, "|" + "---|" * 9]
    for e in table:
        if e["event"] not in events:
            continue
        if e["bracketed"]:
            cells = [_pm(e[f"mean_{s}"], e[f"std_{s}"]) for s in K_SOURCES]
        else:
            cells = [_why(e) or "failed", "", ""]
        counts = f"{e['seeds']}: {e['bracketed']} / {e['at_lo']} / {e['none']} / {e['diverged']}"
        lines.append(
            f"| {e['n']} | {e['scaling']} | {e['optimizer']} | {e['event']} | {counts} | "
            + " | ".join(cells)
            + f" | {e['predicts'] or '-'} |"
        )
    return "\n".join(lines) + "\n"


_COLOURS = {"gd": "tab:blue", "momentum": "tab:orange", "adam": "tab:green"}
_LINES = {"mean_field": "-", "standard": "--"}
#: Bracketed points: a marker per optimizer, filled in mean-field and open in standard scaling;
#: censored markers are filled / open alike, so a lone marker names its scaling.
_MEAN_MARKERS = {"gd": "o", "momentum": "s", "adam": "D"}
_FILLED = {"mean_field": True, "standard": False}
_CENSORED = (
    ("none", "^", "lo_factor", min),
    ("at_lo", "v", "hi_factor", max),
    ("diverged", "X", "hi_factor", min),
)
_K_LABELS = {
    "lambda_max": "lambda_max (Lanczos)",
    "pairwise": "pairwise K (lower bound)",
    "apriori": "a-priori K (certified)",
}


def plot_campaign(
    points: list[dict], out, events=("exact_merge", "merge", "persistent_betti"), title: str = ""
) -> Path:
    """The critical eta*K against N: one panel per (K, event), a line per (optimizer, scaling).

    Colour and marker: the optimizer (GD a circle, momentum a square, Adam a diamond); scaling: a
    solid line and filled markers (mean-field) or a dashed line and open markers (standard).
    Bracketed points: mean +- std over seeds, the count of bracketed seeds beside it. Censored seeds, at the table's extremes: no onset in range,
    an up-triangle at the smallest top rate; onset below the range, a down-triangle at the largest
    bottom rate; diverged before the event, an X at the smallest rate where the runs diverge.
    Drawn in units of each K's eta* at the start; the dotted line is eta*K = 1.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    from ..plotting.common import DPI

    out = Path(out)
    fig = Figure(figsize=(4.6 * len(events), 3.6 * len(K_SOURCES)), dpi=DPI)
    axes = np.atleast_2d(fig.subplots(len(K_SOURCES), len(events), squeeze=False))
    series = sorted({(r["optimizer"], r["scaling"]) for r in points})
    sizes = sorted({int(r["n"]) for r in points})
    offsets = {s: 1.0 + 0.08 * (i - (len(series) - 1) / 2) for i, s in enumerate(series)}
    for row_i, source in enumerate(K_SOURCES):
        for col, event in enumerate(events):
            ax = axes[row_i, col]
            for key in series:
                optimizer, scaling = key
                mine = [r for r in points if (r["optimizer"], r["scaling"]) == key and r["event"] == event]
                colour, line = _COLOURS.get(optimizer, "0.3"), _LINES.get(scaling, ":")
                filled = _FILLED.get(scaling, True)
                face = colour if filled else "none"
                xs, ys, es, counts = [], [], [], []
                for n in sorted({r["n"] for r in mine}):
                    at = [r for r in mine if r["n"] == n]
                    values = np.array([r[f"eta_c_{source}"] for r in at if r["status"] == "bracketed"])
                    values = values[np.isfinite(values)]
                    x = n * offsets[key]
                    if len(values):
                        xs.append(x)
                        ys.append(values.mean())
                        es.append(values.std(ddof=1) if len(values) > 1 else 0.0)
                        counts.append(len(values))
                    for status, marker, where, pick in _CENSORED:
                        ys_c = [
                            r[where] * r[f"K_{source}"] / r["K_lambda_max"]
                            for r in at
                            if r["status"] == status
                        ]
                        ys_c = [y for y in ys_c if np.isfinite(y) and y > 0]
                        if ys_c:
                            ax.scatter(
                                [x], [pick(ys_c)], marker=marker, edgecolors=colour, facecolors=face, s=36
                            )
                if xs:  # +- std; the lower bar stops at a tenth of the mean on the log axis
                    means, spreads = np.array(ys), np.array(es)
                    ax.errorbar(
                        xs,
                        means,
                        yerr=[np.minimum(spreads, 0.9 * means), spreads],
                        color=colour,
                        ls=line,
                        marker=_MEAN_MARKERS.get(optimizer, "o"),
                        mfc=face,
                        ms=5,
                        capsize=3,
                    )
                    for x, y, c in zip(xs, means, counts):
                        ax.annotate(
                            str(c),
                            (x, y),
                            xytext=(3, 3),
                            textcoords="offset points",
                            fontsize=6,
                            color=colour,
                        )
            ax.axhline(1.0, color="0.3", ls=":", lw=1)
            ax.set(xscale="log", yscale="log", xlabel="N")
            # ticks at the measured N only: the optimizers' side-by-side offsets are not other N
            ax.set_xticks(sizes, [_n_label(n) for n in sizes])
            ax.xaxis.set_minor_locator(NullLocator())
            if row_i == 0:
                ax.set_title(event.replace("_", " "))
            if col == 0:
                ax.set_ylabel(f"critical eta * K\nK = {_K_LABELS[source]}")
    handles = [
        Line2D([], [], color=c, marker=_MEAN_MARKERS[o], label=f"{o} (mean +- std, n bracketed)")
        for o, c in _COLOURS.items()
    ]
    handles += [
        Line2D(
            [],
            [],
            color="0.3",
            ls=_LINES[s],
            marker="o",
            mfc="0.3" if _FILLED[s] else "none",
            label=f"{s} ({'filled' if _FILLED[s] else 'open'})",
        )
        for s in _LINES
    ]
    handles += [
        Line2D([], [], color="0.3", marker=m, ls="", mfc="0.3", label=t)
        for m, t in (("^", "no onset up to here"), ("v", "onset below here"), ("X", "diverges here first"))
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97 if title else 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _sweep_outs(specs, out) -> tuple[list[Path], Path]:
    """Each sweep's run folder and the campaign's folder: with ``out``, one sweep runs in ``out``
    itself (as ``particledyn sweep --out``) and several each in ``out/<sweep name>``; without it,
    each in its own ``sweep.out`` and the table goes to the first's."""
    if out is None:
        folders = [spec.out.resolve() for spec in specs]
        return folders, folders[0]
    root = Path(out).resolve()
    if len(specs) <= 1:  # none: a campaign of --with-points rows alone
        return [root] * len(specs), root
    names = [spec.name for spec in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"sweep.name={twice[0]!r} is used by two sweep files: expected distinct names with --out"
        )
    return [root / name for name in names], root


def _identity(paths) -> str:
    return json.dumps([str(Path(p).resolve()) for p in paths])


def _check_target(target: Path, identity: str, overwrite: bool) -> None:
    """Refuse to replace a campaign table in ``target`` written from other sweeps (a rerun of the
    same sweeps refreshes it: that is how a campaign resumes)."""
    import h5py

    existing = target / "campaign.h5"
    if overwrite or not existing.is_file():
        return
    try:
        with h5py.File(existing, "r") as f:
            before = f.attrs.get("sweeps", "")
    except OSError:
        before = ""
    before = before.decode() if isinstance(before, bytes) else str(before)
    try:
        same = [str(Path(p).resolve()) for p in json.loads(before)] == json.loads(identity)
    except (ValueError, TypeError):
        same = False
    if not same:
        raise FileExistsError(
            f"{str(existing)!r} holds a campaign of other sweeps ({before or 'unknown'}): "
            "expected --overwrite to replace it, or another --out"
        )


def _grid_stubs(spec, events) -> list[dict]:
    """The keys (:func:`check_distinct`) of every grid point and event a sweep will analyse."""
    from .grid import grid_points, run_scenario

    base = run_scenario(spec, grid_points(spec)[0], 1.0)
    return [
        {"sweep": spec.name, "seed": seed, "n": n, "scaling": names[0], "optimizer": names[1], "event": e}
        for (seed, n, axes) in _points_by_label(spec)
        for names in [_names(base, axes)]
        for e in events
    ]


def _names(base, axes: str) -> tuple[str, str]:
    """The scaling and optimizer of a point (its axes label, else the base scenario's)."""
    return (
        _axis(axes, "kernel.scaling", getattr(base.kernel, "scaling", "")),
        _axis(axes, "optimizer.name", base.optimizer.name),
    )


def _no_summary(spec, out: Path) -> bool:
    """True (and said in one line) when the sweep's folder has no table to analyse."""
    if (out / "summary.csv").is_file():
        return False
    print(f"error: {spec.source}: no summary.csv in {str(out)!r}; run the sweep first", file=sys.stderr)
    return True


def campaign_main(
    argv: Sequence[str] | None = None, prog: str = "python -m particledyn.sweep.campaign"
) -> int:
    """``particledyn campaign SWEEP.toml [...] [--out DIR] [--table-out DIR] [--overwrite]
    [--address A] [--workers N] [--limit N] [--figure PNG] [--analyse-only]
    [--with-points CSV ...] [--skip-sweep NAME ...]``: run the sweeps (resuming what is done:
    run it again to go on), then write the table, the scaling fits and the figure.

    The analysis runs on the sweep's Dask workers, one task per grid point
    (:func:`point_rows`); ``--with-points`` adds the per-point rows of earlier analyses whose
    run files are gone (:func:`read_points`), without the rows of the sweeps ``--skip-sweep``
    names. A grid point and event found twice is refused (:func:`check_distinct`).

    Exit status: 0 written, 1 a sweep left runs undone or no worker was left (the table is
    written from what is done), 2 a bad sweep file, option or points file, a point twice, or a
    table of other sweeps in the way, 130 interrupted (run it again to resume).
    """
    from .cluster import NoWorkersError, open_client
    from .executor import run_sweep, sweep_cluster
    from .grid import SweepError, load_sweep
    from .stop import stop_on_signals

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the phase-transition sweeps on Dask (a rerun resumes) and write the critical "
        "eta/eta* table, its scaling with N and the figure.",
    )
    parser.add_argument(
        "sweeps",
        nargs="*",
        metavar="SWEEP.toml",
        help="sweep files to run and analyse (none: analyse only the --with-points rows)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder: one sweep runs there, several each in DIR/<sweep name>; the table and "
        "figure go there (default: each sweep's sweep.out, the table in the first's)",
    )
    parser.add_argument(
        "--table-out",
        metavar="DIR",
        help="write the table, points, fits and figure here instead (the runs stay where --out says)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a campaign table there written from other sweeps"
    )
    parser.add_argument(
        "--address", metavar="ADDR", help="a running Dask scheduler (default: a LocalCluster)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="LocalCluster workers (default: cluster.workers)"
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="launch at most N of each sweep's runs left to do"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="progress bar counting runs (default: off)",
    )
    parser.add_argument("--figure", metavar="PNG", help="figure file (default: <table folder>/campaign.png)")
    parser.add_argument("--analyse-only", action="store_true", help="run nothing; analyse the runs there")
    parser.add_argument(
        "--with-points",
        action="append",
        default=[],
        metavar="CSV",
        help="add the per-point rows of an earlier analysis (its campaign_points.csv), e.g. of runs "
        "no longer on disk (repeatable)",
    )
    parser.add_argument(
        "--skip-sweep",
        action="append",
        default=[],
        metavar="NAME",
        help="leave out the --with-points rows of this sweep (e.g. one a sweep given here supersedes)",
    )
    args = parser.parse_args(argv)
    for name in ("workers", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"error: --{name}={value}: expected a positive integer", file=sys.stderr)
            return 2
    if not args.sweeps and not args.with_points:
        print("error: expected a sweep file or --with-points CSV", file=sys.stderr)
        return 2
    if not args.sweeps and not (args.table_out or args.out):
        print("error: with --with-points alone, expected --table-out DIR (or --out DIR)", file=sys.stderr)
        return 2
    try:
        specs = [load_sweep(path) for path in args.sweeps]
        folders, target = _sweep_outs(specs, args.out if specs else args.out or args.table_out)
        target = Path(args.table_out).resolve() if args.table_out else target
        identity = _identity(list(args.sweeps) + list(args.with_points))
        _check_target(target, identity, args.overwrite)
        stored = [r for path in args.with_points for r in read_points(path)]
        earlier = [r for r in stored if r["sweep"] not in args.skip_sweep]
        unused = sorted(set(args.skip_sweep) - {r["sweep"] for r in stored})
        if unused:
            raise ValueError(f"--skip-sweep {unused[0]}: no such sweep in the --with-points files")
        wanted = [
            EVENTS if spec.bisect is None else tuple(e for e in spec.bisect.events if e in EVENTS)
            for spec in specs
        ]
        check_distinct(
            [s for spec, events in zip(specs, wanted) for s in _grid_stubs(spec, events)] + earlier
        )
        clusters = [sweep_cluster(spec, args.address, args.workers) for spec in specs]
    except (SweepError, ValueError, FileExistsError, OSError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    left = 0
    points: list[dict] = []
    try:
        with stop_on_signals():
            for path, spec, out, cluster, events in zip(args.sweeps, specs, folders, clusters, wanted):
                if args.analyse_only and _no_summary(spec, out):  # before a cluster is started
                    return 2
                try:
                    with open_client(cluster) as client:
                        if not args.analyse_only:
                            result = run_sweep(
                                path,
                                out=out,
                                client=client,
                                limit=args.limit,
                                progress=args.progress,
                                plot=False,
                            )
                            left += sum(
                                v
                                for k, v in result.counts.items()
                                if k in ("failed", "pending", "stopped", "running")
                            )
                        if _no_summary(spec, out):
                            return 2
                        raise_if_stopped()
                        points += point_rows(
                            spec, out, events=events, client=client, patience=cluster.no_worker_timeout
                        )
                except (SweepError, ValueError) as exc:
                    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
                    return 2
                except NoWorkersError as exc:
                    print(f"error: {exc}; run the campaign again to resume", file=sys.stderr)
                    return 1
    except KeyboardInterrupt:
        print("interrupted: run the campaign again to resume (finished runs are skipped)", file=sys.stderr)
        return 130
    points += earlier
    try:
        check_distinct(points)
    except ValueError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    table = aggregate(points)
    fits = scaling_fit(points)
    paths = write_campaign(points, table, target, {"sweeps": identity}, fits=fits)
    (target / "campaign_table.md").write_text(
        markdown_by_n(table, fits)
        + "\n"
        + markdown_table(table)
        + "\n"
        + "".join(scaling_markdown(fits, s) + "\n" for s in K_SOURCES)
    )
    figure = plot_campaign(
        points,
        args.figure or target / "campaign.png",
        title="critical rate of each event, in units of each K's eta* at the start",
    )
    print(
        f"campaign: {len(points)} point-events from {len(specs)} sweep(s)"
        + (f" and {len(earlier)} from {len(args.with_points)} points file(s)" if args.with_points else "")
        + f"; table {paths['table']}; scaling {paths['scaling']}; points {paths['points']}; {paths['h5']}; "
        f"figure {figure}" + (f"; {left} runs left to do: run it again to resume" if left else "")
    )
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(campaign_main())
