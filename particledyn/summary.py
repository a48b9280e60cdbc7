"""The verdict of a run: did training keep the topology of the neuron cloud, and if not, when did it change.

:func:`summarize_run` reads a run file (finished, running or killed) and returns a
JSON-ready dict; :func:`write_summary` stores it as ``<run stem>_summary.json`` beside
the file. Only the observables the run recorded are used, found by the observer's *type*
(stored with its data, see :mod:`particledyn.io.observer_attrs`), so a renamed observer counts
as well; below, ``betti/betti`` means key ``betti`` of the observer of type ``betti``:

- ``betti/betti`` -- the topology is "preserved" when the Betti numbers of every record
  equal the first record's (all scales compared);
- ``merges/n_merges`` and ``merges/n_atoms`` -- a merge is seen at a record with
  ``n_merges > 0`` or with fewer atoms than the previous record. The merge observer
  compares step t-1 with step t only, so a drop in the atom count is what reveals
  merges in the steps between two records of a sparse cadence; a merge "at step s"
  therefore happened in (previous record, s];
- eta*K from ``sharpness`` (K = lambda_max of the Hessian, the paper's K),
  ``pairwise_lipschitz`` (the pairwise K of Lemma 4), ``lemmas`` and ``expansion``.
  The verdict quotes the first of these present (:data:`K_SOURCES` order) and the dict
  holds all of them. "eta*K at step s" is the last finite record at or before s;
- ``loss/loss`` (or ``train_loss``) and ``loss/test_loss``.

A run without Betti numbers and merges gets ``topology_preserved = None``. A run that
diverged (its last checkpoint says so, or its training loss became NaN or inf) gets a
verdict starting "diverged at step s".

``topology_preserved`` only says that nothing changed at the recorded scales; the verdict names
what kind of change each one is (:mod:`particledyn.summary_kinds`): an exact change of the
finite set, a change of the union of balls at a stated scale (with the window of scales over
which it holds), or a landmark estimate (with its covering radius), each with eta*K over the
steps it can have happened in, which K that is, and what the theory predicts there.

An observer type may add its own verdict (a plugin's observer, say): its ``summarize`` hook
(:class:`particledyn.scenario.ObserverType`, :mod:`particledyn.summary_hooks`) gives fields
kept under ``observers`` and a phrase added to the verdict; a hook that fails leaves a one-line
note there instead.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import summary_kinds as kinds
from .divergence import describe
from .summary_hooks import observer_results

__all__ = ["K_SOURCES", "read_series", "summarize_run", "write_summary", "summary_path"]

#: Observer types that record ``eta_K``, in the order the verdict prefers them.
K_SOURCES = ("sharpness", "pairwise_lipschitz", "lemmas", "expansion")
_TRAIN_LOSS_KEYS = ("loss", "train_loss")


def read_series(run, kind: str, key: str):
    """``(steps, values)`` of key ``key`` of the observer of type ``kind``, or None when the run
    did not record it.

    Parameters
    ----------
    run : particledyn.io.Run
    kind : str
        The observer's type (``"betti"``, ``"merges"``, ...), whatever its name; with several
        observers of that type, the one named ``kind``, else the first by name, that has ``key``.
        Files that recorded no types are read by name.
    key : str

    Returns
    -------
    tuple of (ndarray, ndarray or list) or None
        None also when the series has no committed record yet.
    """
    observables = run.observables
    names = [name for name in run.observers_of_type(kind) if key in observables[name]]
    if not names:
        return None
    steps, values = run.observable(names[0], key)
    if len(steps) == 0:
        return None
    return np.asarray(steps, dtype=np.int64), values


def scalar_series(run, kind: str, key: str):
    """Like :func:`read_series` for a scalar key, as float64 (None when absent or not scalar)."""
    found = read_series(run, kind, key)
    if found is None or isinstance(found[1], list):
        return None
    values = np.asarray(found[1])
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        return None
    return found[0], values.astype(np.float64)


def train_loss_series(run):
    """Training loss ``(steps, values)`` from the ``loss`` observer, or None."""
    for key in _TRAIN_LOSS_KEYS:
        found = scalar_series(run, "loss", key)
        if found is not None:
            return found
    return None


def eta_K_series(run) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """eta*K over steps from every source in :data:`K_SOURCES` the run recorded."""
    out = {}
    for source in K_SOURCES:
        found = scalar_series(run, source, "eta_K")
        if found is not None:
            out[source] = found
    return out


def merge_events(run):
    """Steps of the merge records and, per record, whether a merge was seen there.

    Returns
    -------
    tuple of (ndarray, ndarray of bool) or None
        None when the run has no ``merges`` observable.
    """
    merges = scalar_series(run, "merges", "n_merges")
    atoms = scalar_series(run, "merges", "n_atoms")
    if merges is None and atoms is None:
        return None
    steps = (merges or atoms)[0]
    seen = np.zeros(len(steps), dtype=bool)
    if merges is not None:
        seen |= merges[1] > 0
    if atoms is not None and len(atoms[0]) == len(steps):
        seen[1:] |= np.diff(atoms[1]) < 0
    return steps, seen


def _as_int_tuple(betti) -> tuple | list:
    """One Betti record as a tuple (one scale) or a list of tuples (several scales)."""
    betti = np.asarray(betti)
    if betti.ndim == 1:
        return tuple(int(b) for b in betti)
    if betti.shape[0] == 1:
        return tuple(int(b) for b in betti[0])
    return [tuple(int(b) for b in row) for row in betti]


def _format_betti(betti) -> str:
    if isinstance(betti, tuple):
        return "(" + ", ".join(str(b) for b in betti) + ")"
    return "[" + ", ".join(_format_betti(row) for row in betti) + "]"


def _value_at(steps: np.ndarray, values: np.ndarray, step: int) -> float | None:
    """Last finite value at or before ``step``, or None."""
    ok = (steps <= step) & np.isfinite(values)
    return float(values[ok][-1]) if ok.any() else None


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _last_step(run) -> int:
    """The last step the file knows of (frames or any observable record)."""
    last = int(run.steps[-1]) if len(run.steps) else 0
    for name, keys in run.observables.items():
        for key in keys[:1]:  # all keys of an observer share the same steps
            steps, _ = run.observable(name, key)
            if len(steps):
                last = max(last, int(steps[-1]))
    return last


def _betti_scale_rule(run) -> str | None:
    """How the Betti observer the verdict reads chose its scale, from its recorded options
    (None for files that recorded no options)."""
    names = [name for name in run.observers_of_type("betti") if "betti" in run.observables[name]]
    if not names:
        return None
    options = run.observer_descriptions.get(names[0], {})
    scale, relative = options.get("scale"), options.get("scale_relative")
    alpha = options.get("complex") == "alpha"
    radius = "radius " if alpha else ""
    if isinstance(scale, str) and scale == "adaptive":
        return f"{radius}the authors' diameter/{8 if alpha else 4} of each frame"
    if relative is not None:
        fractions = ", ".join(_fmt(float(f)) for f in np.atleast_1d(relative))
        return f"{radius}{fractions} x the start's diameter" + (" / 2" if alpha else "")
    if scale is not None:
        return "fixed"
    return None


def _betti_summary(run) -> dict[str, Any]:
    found = read_series(run, "betti", "betti")
    if found is None:
        return {"recorded": False}
    steps, records = found
    records = [np.asarray(r) for r in records]
    changed = [i for i, r in enumerate(records) if not np.array_equal(r, records[0])]
    out: dict[str, Any] = {
        "recorded": True,
        "n_records": len(records),
        "initial": _as_int_tuple(records[0]),
        "final": _as_int_tuple(records[-1]),
        "constant": not changed,
        "first_change_step": None,
        "before_change": None,
        "after_change": None,
        "distinct": sorted({_format_betti(_as_int_tuple(r)) for r in records}),
    }
    scales = read_series(run, "betti", "scale")
    if scales is not None and not isinstance(scales[1], list):
        out["initial_scales"] = [float(s) for s in np.atleast_1d(scales[1][0])]
    rule = _betti_scale_rule(run)
    if rule is not None:
        out["scale_rule"] = rule
    if changed:
        i = changed[0]
        out.update(
            first_change_step=int(steps[i]),
            before_change=_as_int_tuple(records[i - 1]),
            after_change=_as_int_tuple(records[i]),
        )
    return out


def _merge_summary(run) -> dict[str, Any]:
    events = merge_events(run)
    if events is None:
        return {"recorded": False}
    steps, seen = events
    out: dict[str, Any] = {
        "recorded": True,
        "n_records": int(len(steps)),
        "first_merge_step": int(steps[seen][0]) if seen.any() else None,
        "records_with_merges": int(seen.sum()),
    }
    for key, label in (
        ("n_merges", "total_merges"),
        ("n_splits", "total_splits"),
        ("merged_mass", "total_merged_mass"),
    ):
        found = scalar_series(run, "merges", key)
        if found is not None:
            total = float(np.nansum(found[1]))
            out[label] = int(total) if key != "merged_mass" else total
    atoms = scalar_series(run, "merges", "n_atoms")
    if atoms is not None:
        out["initial_atoms"], out["final_atoms"] = int(atoms[1][0]), int(atoms[1][-1])
    return out


def _eta_K_summary(series, betti_step, merge_step) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sources": list(series),
        "max": {},
        "max_step": {},
        "final": {},
        "at_betti_change": {},
        "at_first_merge": {},
    }
    for source, (steps, values) in series.items():
        ok = np.isfinite(values)
        if ok.any():
            i = int(np.flatnonzero(ok)[np.argmax(values[ok])])
            out["max"][source], out["max_step"][source] = float(values[i]), int(steps[i])
            out["final"][source] = float(values[ok][-1])
        for label, step in (("at_betti_change", betti_step), ("at_first_merge", merge_step)):
            if step is not None:
                out[label][source] = _value_at(steps, values, step)
    return out


def _loss_summary(run) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, found in (
        ("train", train_loss_series(run)),
        ("test", scalar_series(run, "loss", "test_loss")),
    ):
        if found is None:
            continue
        values = found[1][np.isfinite(found[1])]
        out[f"initial_{label}"] = float(values[0]) if values.size else None
        out[f"final_{label}"] = _finite(found[1][-1])
    return out


def _divergence(run) -> dict[str, Any] | None:
    """``{"step", "quantity"}`` of a diverged run (its checkpoint's mark, else the first
    non-finite training loss), or None."""
    from .divergence import divergence_of

    try:
        found = divergence_of(run.checkpoint())
    except (OSError, KeyError, ValueError):
        found = None
    if found is None:
        loss = train_loss_series(run)
        if loss is not None and not np.all(np.isfinite(loss[1])):
            found = {"step": loss[0][~np.isfinite(loss[1])][0], "quantity": "loss"}
    if found is None:
        return None
    growth = {"growth": str(found["growth"])} if found.get("growth") else {}
    return {"step": int(found["step"]), "quantity": str(found["quantity"]), **growth}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _max_by_source(eta: dict[str, Any]) -> str:
    """'1.25 (sharpness), 0.0002 (pairwise_lipschitz)': every K the run recorded, since
    lambda_max of the Hessian and the pairwise K of Lemma 4 can differ by orders of magnitude."""
    sources = [s for s in K_SOURCES if s in eta["max"]]
    if "pairwise_lipschitz" in sources and "lemmas" in sources:
        sources.remove("lemmas")  # the same number as pairwise_lipschitz
    if not sources:
        return "n/a"
    return ", ".join(f"{_fmt(eta['max'][s])} ({s})" for s in sources)


def _verdict(summary: dict[str, Any]) -> str:
    betti, merges, eta = summary["betti"], summary["merges"], summary["eta_K"]
    last = summary["last_step"]
    diverged = summary["diverged"]
    if diverged is not None:
        head = f"diverged at step {diverged['step']} ({describe(diverged)}); "
        return head + _verdict({**summary, "diverged": None, "finished": True})
    tail = "" if summary["finished"] else f"; run not finished (last record at step {last})"
    if summary["topology_preserved"] is None:
        return (
            "no topology observables recorded (add the betti and merges observers); "
            f"max eta*K = {_max_by_source(eta)}{tail}"
        )
    if summary["changes"]:
        text = "changes: " + " | ".join(kinds.describe_change(c) for c in summary["changes"])
        return f"{text}; max eta*K = {_max_by_source(eta)}{tail}"
    parts = []
    if betti["recorded"]:
        scales = betti.get("initial_scales")
        at = f" at scale {', '.join(_fmt(x) for x in scales)}" if scales else ""
        if betti.get("scale_rule"):
            at += f" ({betti['scale_rule']})"
        parts.append(f"Betti {_format_betti(betti['initial'])} constant{at} over {last} steps")
    else:
        parts.append(f"Betti numbers not recorded, over {last} steps")
    parts.append("no atom merges" if merges["recorded"] else "merges not recorded")
    exact = summary["exact"]
    parts.append("no exact merges" if exact else "exact merges not recorded")
    return f"no change seen: {', '.join(parts)}; max eta*K = {_max_by_source(eta)}{tail}"


def _certified(run) -> dict[str, bool]:
    """Sources whose K is a certified upper bound (they record ``certified``)."""
    out = {}
    for source in ("lemmas", "expansion"):
        found = scalar_series(run, source, "certified")
        out[source] = bool(found is not None and len(found[1]) and np.all(found[1] > 0))
    return out


def _changes(run, betti, merges, series, confirm_max_n) -> tuple[list, bool]:
    """The change records of :mod:`.summary_kinds`, earliest first, and whether exact merges
    were recorded."""
    certified = _certified(run)
    found = []
    exact = kinds.exact_change(run, scalar_series)
    if exact is not None and exact["step"] is not None:
        found.append(exact)
    merge_step = merges.get("first_merge_step") if merges["recorded"] else None
    atoms = kinds.atom_change(run, scalar_series, merge_step)
    if atoms is not None:
        found.append(atoms)
    if betti["recorded"]:
        change = kinds.betti_change(run, betti, read_series, confirm_max_n)
        if change is not None:
            found.append(change)
    for change in found:
        change["eta_K"] = kinds.eta_K_in_window(series, certified, change.get("window_start"), change["step"])
        change["prediction"] = kinds.prediction(change["eta_K"], change["kind"])
    found.sort(key=lambda c: c["step"])
    return found, exact is not None


def summarize_run(
    path, confirm_max_n: int = kinds.CONFIRM_MAX_N, replica: int | None = None
) -> dict[str, Any]:
    """The topology verdict of a run file.

    Parameters
    ----------
    path : str or PathLike
        A run file written by :class:`particledyn.io.H5MDSink` (finished, running or killed).
    confirm_max_n : int
        A landmark Betti change is recomputed on the full cloud (when both records have frames)
        up to this many particles; 0 never.
    replica : int, optional
        In an ensemble file, the verdict of replica ``replica`` (read through
        :meth:`particledyn.io.reader.Run.replica`), as its single run's file would give it.

    Returns
    -------
    dict
        JSON-ready (no NaN: missing values are None). Keys: ``path``, ``finished``,
        ``last_step``, ``n_particles``, ``dimension``, ``topology_preserved`` (bool, or
        None when neither Betti numbers nor merges were recorded), ``change_step``
        (the earlier of the first Betti change and the first merge), ``betti``
        (``initial``, ``final``, ``constant``, ``first_change_step``, ``before_change``,
        ``after_change``, ...), ``merges`` (``first_merge_step``, ``total_merges``,
        ``total_merged_mass``, ``initial_atoms``, ``final_atoms``, ``pairs``: each recorded merging
        pair with its distances and eta*K at that step, ...), ``K_source``
        (the source the verdict quotes), ``eta_K`` (per source: ``max``, ``max_step``,
        ``final``, ``at_betti_change``, ``at_first_merge``), ``changes`` (one record per kind
        of change seen, earliest first: ``kind`` "exact", "union_of_balls" or
        "landmark_estimate", ``step``, ``window_start``, the scale and its window or the pair
        that merged, ``eta_K`` over the window per source, ``prediction``), ``exact`` (whether
        exact merges were recorded), ``loss``
        (``initial_train``, ``final_train``, ``final_test`` when recorded),
        ``diverged`` (``step`` and ``quantity``, or None) and ``verdict``, a
        one-line sentence ("diverged at step s ..." first for a diverged run), ending with the
        phrase of each ``observers`` record and each of ``observer_notes``. ``observers`` holds
        one record per observer whose type has a ``summarize`` hook (``type``, ``name``,
        ``label``, ``result``, ``text``, ``error``); ``observer_notes`` one line per hook that
        failed or plugin that could not be loaded.

    Raises
    ------
    FileNotFoundError, ValueError
        No file at ``path``, or not a particledyn run file.
    """
    from .io import open_run

    with open_run(path) as whole:
        run = whole if replica is None else whole.replica(replica)
        betti = _betti_summary(run)
        merges = _merge_summary(run)
        series = eta_K_series(run)
        betti_step = betti.get("first_change_step")
        merge_step = merges.get("first_merge_step")
        events = [s for s in (betti_step, merge_step) if s is not None]
        if not betti["recorded"] and not merges["recorded"]:
            preserved = None
        else:
            preserved = not events
        frames = run.positions(int(run.steps[-1])) if len(run.steps) else None
        summary: dict[str, Any] = {
            "path": os.fspath(path),
            "finished": bool(run.finished),
            "last_step": _last_step(run),
            "n_particles": None if frames is None else int(frames.shape[0]),
            "dimension": None if frames is None else int(frames.shape[1]),
            "topology_preserved": preserved,
            "change_step": min(events) if events else None,
            "betti": betti,
            "merges": merges,
            "K_source": next(iter(series), None),
            "eta_K": _eta_K_summary(series, betti_step, merge_step),
            "loss": _loss_summary(run),
            "diverged": _divergence(run),
        }
        summary["changes"], summary["exact"] = _changes(run, betti, merges, series, confirm_max_n)
        if merges["recorded"]:
            merges["pairs"] = kinds.merge_pairs(run, scalar_series, series)
        summary["observers"], summary["observer_notes"] = observer_results(run)
    extra = [f"{r['label']}: {r['text']}" for r in summary["observers"] if r["error"] is None]
    summary["verdict"] = "; ".join([_verdict(summary), *extra, *summary["observer_notes"]])
    return summary


def summary_path(path) -> Path:
    """``<run stem>_summary.json`` beside the run file."""
    path = Path(path)
    return path.with_name(f"{path.stem}_summary.json")


def write_summary(path, out=None, summary: dict | None = None) -> Path:
    """Write :func:`summarize_run` of ``path`` as JSON.

    Parameters
    ----------
    path : str or PathLike
        The run file.
    out : str or PathLike, optional
        Output file; ``<run stem>_summary.json`` beside the run by default
        (replaced if it exists).
    summary : dict, optional
        :func:`summarize_run` of ``path``, when the caller has it already.

    Returns
    -------
    Path
        The JSON file written.
    """
    if summary is None:
        summary = summarize_run(path)
    target = summary_path(path) if out is None else Path(out)
    if not target.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write summary {str(target)!r}: directory {str(target.parent)!r} does not exist"
        )
    target.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return target
