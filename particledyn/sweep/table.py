"""The summary table of a sweep: one row per run, written as CSV and HDF5.

Columns (``COLUMNS``; NaN / -1 / "" where a value does not exist, "never" happened):

- ``run_id``, ``path``, ``replica`` (the run's index in the ensemble file ``path`` of a packed
  sweep, ``[sweep] pack``; -1 for a run file of its own), ``status`` (finished, diverged, failed,
  stopped, pending), ``error``;
- ``seed``, ``n``, ``axes`` (the values of the grid's other axes, ``key=value; ...``),
  ``lr_factor`` (eta / eta*), ``eta``, ``K0`` (lambda_max at the start),
  ``eta_star`` (1 / K0), ``eta_K0`` (eta * K0);
- K along training from the run's sharpness observer (``lambda_max``; the pairwise K of
  Lemma 4 when the run has no sharpness): ``K_source``, ``K_mean``, ``K_min``, ``K_max``,
  ``K_final`` and ``max_eta_K`` (max over records of eta(t) * K(t));
- the verdict of :func:`particledyn.summary.summarize_run`: ``topology_preserved``
  (1, 0, -1 unknown), ``first_merge_step``, ``betti_change_step``, ``change_step`` (the earlier),
  ``eta_K_at_merge``, ``eta_K_at_betti_change``, ``eta_K_at_change`` (eta*K at or before those
  steps), ``merged_mass`` (total over the run), ``n_merges``;
- ``final_loss``, ``final_test_loss``, ``last_step``, ``elapsed`` (seconds the run took in
  this sweep call, a packed run's the pack's time over its replicas; NaN when skipped).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["COLUMNS", "run_row", "write_table", "read_table", "K_series", "axes_label"]

_STR, _INT, _FLOAT = "str", "int", "float"
COLUMNS: dict[str, str] = {
    "run_id": _STR,
    "path": _STR,
    "replica": _INT,
    "status": _STR,
    "error": _STR,
    "seed": _INT,
    "n": _INT,
    "axes": _STR,
    "lr_factor": _FLOAT,
    "eta": _FLOAT,
    "K0": _FLOAT,
    "eta_star": _FLOAT,
    "eta_K0": _FLOAT,
    "K_source": _STR,
    "K_mean": _FLOAT,
    "K_min": _FLOAT,
    "K_max": _FLOAT,
    "K_final": _FLOAT,
    "max_eta_K": _FLOAT,
    "topology_preserved": _INT,
    "first_merge_step": _INT,
    "betti_change_step": _INT,
    "change_step": _INT,
    "eta_K_at_merge": _FLOAT,
    "eta_K_at_betti_change": _FLOAT,
    "eta_K_at_change": _FLOAT,
    "merged_mass": _FLOAT,
    "n_merges": _INT,
    "final_loss": _FLOAT,
    "final_test_loss": _FLOAT,
    "last_step": _INT,
    "elapsed": _FLOAT,
}
_MISSING = {_STR: "", _INT: -1, _FLOAT: math.nan}


def K_series(run):
    """``(source, steps, K, eta_K)`` of a run file: the sharpness observer's lambda_max, else the
    pairwise K; None when neither was recorded."""
    from ..summary import scalar_series

    for source, key in (("sharpness", "lambda_max"), ("pairwise_lipschitz", "K")):
        K = scalar_series(run, source, key)
        eta_K = scalar_series(run, source, "eta_K")
        if K is not None and eta_K is not None:
            return source, K[0], K[1], eta_K[1]
    return None


def axes_label(axes) -> str:
    """``(("optimizer.name", "adam"), ...)`` as ``"optimizer.name=adam; ..."`` (the ``axes`` column)."""
    return "; ".join(f"{key}={value}" for key, value in axes)


def _or(value, default):
    return default if value is None else value


def run_row(run, status: str, error: str = "", elapsed: float = math.nan) -> dict[str, Any]:
    """The table row of one run.

    Parameters
    ----------
    run : RunSpec
    status : str
        What this sweep call knows of the run (finished, diverged, failed, stopped, pending,
        running: a live run, whose file is not read).
    error : str
    elapsed : float

    Returns
    -------
    dict
        ``{column: value}`` for every column of :data:`COLUMNS`.
    """
    import os

    from ..io import open_run
    from ..summary import summarize_run

    row = {name: _MISSING[kind] for name, kind in COLUMNS.items()}
    row.update(
        run_id=run.run_id,
        path=run.path,
        replica=run.replica,
        status=status,
        error=error,
        seed=run.seed,
        n=run.n,
        axes=axes_label(run.axes),
        lr_factor=run.lr_factor,
        eta=run.lr,
        K0=run.K0,
        eta_star=1.0 / run.K0 if run.K0 > 0 else math.nan,
        eta_K0=run.lr * run.K0,
        elapsed=elapsed,
    )
    if not os.path.isfile(run.path) or status == "running":  # a live run's file is not read
        return row
    replica = None if run.replica < 0 else run.replica
    try:
        summary = summarize_run(run.path, replica=replica)
        with open_run(run.path) as handle:
            found = K_series(handle if replica is None else handle.replica(replica))
    except (OSError, KeyError, ValueError) as exc:
        row["error"] = row["error"] or f"cannot read the run file: {' '.join(str(exc).split())}"
        return row
    if found is not None:
        source, _, K, eta_K = found
        ok, ok_eta = np.isfinite(K), np.isfinite(eta_K)
        row["K_source"] = source
        if ok.any():
            row.update(
                K_mean=float(K[ok].mean()),
                K_min=float(K[ok].min()),
                K_max=float(K[ok].max()),
                K_final=float(K[ok][-1]),
            )
        if ok_eta.any():
            row["max_eta_K"] = float(eta_K[ok_eta].max())
    preserved = summary["topology_preserved"]
    row["topology_preserved"] = -1 if preserved is None else int(preserved)
    merges, betti, eta = summary["merges"], summary["betti"], summary["eta_K"]
    source = row["K_source"] or summary["K_source"]
    merge_step = merges.get("first_merge_step") if merges["recorded"] else None
    betti_step = betti.get("first_change_step") if betti["recorded"] else None
    row["first_merge_step"] = _or(merge_step, -1)
    row["betti_change_step"] = _or(betti_step, -1)
    row["change_step"] = _or(summary["change_step"], -1)
    at_merge = eta["at_first_merge"].get(source) if merge_step is not None else None
    at_betti = eta["at_betti_change"].get(source) if betti_step is not None else None
    row["eta_K_at_merge"] = _or(at_merge, math.nan)
    row["eta_K_at_betti_change"] = _or(at_betti, math.nan)
    if summary["change_step"] is not None:
        row["eta_K_at_change"] = _or(at_merge if summary["change_step"] == merge_step else at_betti, math.nan)
    row["merged_mass"] = float(merges.get("total_merged_mass", math.nan)) if merges["recorded"] else math.nan
    row["n_merges"] = int(merges.get("total_merges", -1)) if merges["recorded"] else -1
    loss = summary["loss"]
    row["final_loss"] = _or(loss.get("final_train"), math.nan)
    row["final_test_loss"] = _or(loss.get("final_test"), math.nan)
    row["last_step"] = int(summary["last_step"])
    return row


def write_table(rows: list[dict], out_dir, attrs: dict | None = None) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.h5`` (group ``runs``: one dataset per column).

    Returns
    -------
    (Path, Path)
        The CSV and HDF5 files. Both are written to a temporary name and renamed, so an
        interrupted write leaves the previous table intact.
    """
    import h5py

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, h5_path = out_dir / "summary.csv", out_dir / "summary.h5"
    tmp = csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: (
                        ""
                        if isinstance(v, float) and math.isnan(v)
                        else repr(v)
                        if isinstance(v, float)
                        else v
                    )
                    for k, v in row.items()
                }
            )
    tmp.replace(csv_path)
    tmp = h5_path.with_suffix(".h5.tmp")
    with h5py.File(tmp, "w") as f:
        group = f.create_group("runs")
        for name, kind in COLUMNS.items():
            values = [row[name] for row in rows]
            if kind == _STR:
                group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
            else:
                group.create_dataset(
                    name,
                    data=np.array(values, dtype=np.int64 if kind == _INT else np.float64).reshape(len(rows)),
                )
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    tmp.replace(h5_path)
    return csv_path, h5_path


def read_table(path) -> dict[str, np.ndarray]:
    """A summary table (``summary.h5`` or ``summary.csv``) as ``{column: array}``."""
    import h5py

    path = Path(path)
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return {
                name: (f["runs"][name].asstr()[()] if COLUMNS.get(name) == _STR else f["runs"][name][()])
                for name in f["runs"]
            }
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = {}
    for name, kind in COLUMNS.items():
        values = [row[name] for row in rows]
        if kind == _STR:
            out[name] = np.array(values, dtype=object)
        elif kind == _INT:
            out[name] = np.array([int(v) for v in values], dtype=np.int64)
        else:
            out[name] = np.array([float(v) if v != "" else math.nan for v in values])
    return out
