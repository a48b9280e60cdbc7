"""What kind of change a run shows, at which scale, with which K: the parts of the verdict.

Three kinds, never merged into one word (:func:`particledyn.summary.summarize_run` lists them
under ``changes``):

- ``exact``: the finite set S(t) lost points -- pairs equal at the run's float precision grew
  (``merges/n_exact_pairs``). This is what Theorem 1 speaks of (injectivity for eta K < 1).
- ``union_of_balls``: a change of the union of balls at a stated scale -- atoms at eps merged
  (b_0 of the union of balls of radius eps / 2), or the Betti numbers at the recorded scale
  changed. For a Betti change the *window* is the interval of scales around the stated one over
  which the two records' Betti numbers differ (read off both persistence diagrams); a window
  narrower than a factor :data:`WINDOW_RATIO` is called ``geometric`` (a feature moving across
  the scale), a wider one ``persistent``. The diagrams stop at the record's threshold, so a
  window reaching it is open there (``hi_capped``); a capped window narrower than the factor is
  ``unresolved`` (record diagrams beyond the scale to decide).
- ``landmark_estimate``: a Betti change computed on landmarks, with the covering radius (features
  below about twice it are invisible), confirmed or not on the full cloud when the frames of both
  records are stored and N allows.

eta*K at a change is read over the steps the change can have happened in, (previous record,
change step]: the value at the change step, else the largest in that window, else it is marked
stale (the last record before the window). Each K is named: ``sharpness`` is lambda_max of the
Hessian (a local value, not a Lipschitz bound on the set), ``pairwise_lipschitz`` the pairwise K of
Lemma 4 (a lower bound), ``lemmas``/``expansion`` a certified bound when they record
``certified``. Only a certified K < 1/eta makes Theorem 1 predict "no exact merge"; no theorem
predicts anything about a Betti change at one fixed scale (Theorem 2 covers r <= delta / 2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "WINDOW_RATIO",
    "CONFIRM_MAX_N",
    "K_NAMES",
    "betti_window",
    "eta_K_in_window",
    "prediction",
    "exact_change",
    "atom_change",
    "merge_pairs",
    "betti_change",
    "describe_change",
]

#: A Betti change whose window of scales spans less than this factor is "geometric".
WINDOW_RATIO = 2.0
#: Landmark estimates are recomputed on the full cloud up to this many particles.
CONFIRM_MAX_N = 2000
#: What each eta*K source measures.
K_NAMES = {
    "sharpness": "lambda_max of the Hessian, not a Lipschitz bound",
    "pairwise_lipschitz": "pairwise K, a lower bound",
    "lemmas": "the lemma check's K",
    "expansion": "the expansion check's K",
}


def _as_rows(diagram) -> np.ndarray:
    return np.asarray(diagram, dtype=np.float64).reshape(-1, 3)


def _critical_values(diagrams, threshold):
    values = [0.0, threshold]
    for D in diagrams:
        D = _as_rows(D)
        finite = np.concatenate([D[:, 1], D[:, 2]])
        values.extend(finite[np.isfinite(finite) & (finite <= threshold)].tolist())
    return np.unique(values)


def betti_window(before, after, scale: float, threshold: float, max_dim: int) -> dict[str, Any]:
    """The interval of scales around ``scale`` over which two diagrams' Betti numbers differ.

    Parameters
    ----------
    before, after : ndarray, shape (n, 3)
        Persistence diagrams (rows [dim, birth, death]) of the two records.
    scale : float
        The stated scale (where they differ).
    threshold : float
        The smaller of the two records' filtration thresholds (no information beyond it).
    max_dim : int

    Returns
    -------
    dict
        ``lo``, ``hi`` (the window), ``hi_capped`` (it reaches the threshold), ``ratio`` (hi / lo)
        and ``kind`` ("geometric" or "persistent"); ``None`` values when they agree at ``scale``.
    """
    from .topology.diagrams import betti_from_diagram

    cuts = _critical_values((before, after), threshold)
    # Betti numbers are constant on [cuts[k], cuts[k + 1]); each diagram read once, by sorted search
    differs = np.any(
        betti_from_diagram(_as_rows(before), cuts[:-1], max_dim)
        != betti_from_diagram(_as_rows(after), cuts[:-1], max_dim),
        axis=1,
    )
    k = min(max(int(np.searchsorted(cuts, scale, side="right")) - 1, 0), len(differs) - 1)
    if not len(differs) or not differs[k]:
        return {"lo": None, "hi": None, "hi_capped": False, "ratio": None, "kind": None}
    same = np.flatnonzero(~differs)  # the window is the run of differing cuts around k
    lo = int(same[same < k][-1]) + 1 if (same < k).any() else 0
    hi = int(same[same > k][0]) - 1 if (same > k).any() else len(differs) - 1
    low, high = float(cuts[lo]), float(cuts[hi + 1])
    ratio = high / low if low > 0 else math.inf
    capped = bool(high >= threshold)
    if ratio >= WINDOW_RATIO:
        kind = "persistent"
    else:
        kind = "unresolved" if capped else "geometric"
    return {"lo": low, "hi": high, "hi_capped": capped, "ratio": ratio, "kind": kind}


def eta_K_in_window(series, certified, start: int | None, step: int) -> dict[str, dict]:
    """eta*K per source over the window (start, step] of a change.

    Parameters
    ----------
    series : dict
        ``source -> (steps, values)`` (:func:`particledyn.summary.eta_K_series`).
    certified : dict
        ``source -> bool``: whether that source's K is a certified upper bound.
    start : int or None
        The previous record's step (None: the change is at the first record).
    step : int

    Returns
    -------
    dict
        ``source -> {"value", "step", "how", "certified", "name"}``; ``how`` is "at the step",
        "max in window" or "stale" (no record in the window: the last one before it).
    """
    out = {}
    low = -1 if start is None else start
    for source, (steps, values) in series.items():
        ok = np.isfinite(values)
        inside = ok & (steps > low) & (steps <= step)
        exact = ok & (steps == step)
        if exact.any():
            i, how = int(np.flatnonzero(exact)[-1]), "at the step"
        elif inside.any():
            idx = np.flatnonzero(inside)
            i, how = int(idx[np.argmax(values[idx])]), "max in window"
        elif (ok & (steps <= step)).any():
            i, how = int(np.flatnonzero(ok & (steps <= step))[-1]), "stale"
        else:
            continue
        out[source] = {
            "value": float(values[i]),
            "step": int(steps[i]),
            "how": how,
            "certified": bool(certified.get(source, False)),
            "name": "a certified bound" if certified.get(source) else K_NAMES[source],
        }
    return out


def prediction(at: dict[str, dict], kind: str) -> str:
    """What the theory predicts about a change of ``kind`` given eta*K over its window."""
    if kind != "exact":
        return "no theorem predicts a change at one fixed scale (Theorem 2 covers r <= delta/2 only)"
    fresh = {s: v for s, v in at.items() if v["how"] != "stale"}
    certified = [v for v in fresh.values() if v["certified"]]
    if certified:
        if all(v["value"] < 1.0 for v in certified):
            return "certified eta*K < 1: Theorem 1 predicts no exact merge here (a contradiction)"
        return "certified eta*K >= 1: Theorem 1 makes no prediction"
    above = [s for s, v in fresh.items() if v["value"] >= 1.0]
    if above:
        return f"eta*K >= 1 ({', '.join(above)}): Theorem 1 makes no prediction"
    if not fresh:
        return "eta*K not measured in the window: no prediction can be checked"
    return f"eta*K < 1 with uncertified K only ({', '.join(fresh)}): no certified prediction"


def _previous(steps: np.ndarray, step: int) -> int | None:
    earlier = steps[steps < step]
    return int(earlier[-1]) if len(earlier) else None


def exact_change(run, scalar_series) -> dict[str, Any] | None:
    """The first record at which pairs equal at float precision grew, or None."""
    found = scalar_series(run, "merges", "n_exact_pairs")
    if found is None:
        return None
    steps, counts = found
    grew = np.flatnonzero(counts > counts[0])
    if not len(grew):
        return {"kind": "exact", "step": None, "recorded": True}
    i = int(grew[0])
    return {
        "kind": "exact",
        "recorded": True,
        "step": int(steps[i]),
        "window_start": _previous(steps, int(steps[i])),
        "pairs_before": int(counts[0]),
        "pairs_after": int(counts[i]),
    }


def _pair_history(run, i: int, j: int, upto: int, limit: int = 12) -> list[list[float]]:
    """[[step, distance], ...] of particles i, j over the stored frames up to ``upto``."""
    steps = [int(s) for s in run.steps if s <= upto]
    if len(steps) > limit:
        picks = np.unique(np.linspace(0, len(steps) - 1, limit).round().astype(int))
        steps = [steps[k] for k in picks]
    out = []
    for s in steps:
        X = run.positions(s)
        out.append([s, float(np.linalg.norm(np.asarray(X[i], float) - np.asarray(X[j], float)))])
    return out


def atom_change(run, scalar_series, merge_step: int | None) -> dict[str, Any] | None:
    """The first atom merge at scale eps: a union-of-balls change of b_0 at radius eps / 2."""
    if merge_step is None:
        return None
    change: dict[str, Any] = {"kind": "union_of_balls", "what": "atoms merged", "step": merge_step}
    atoms = scalar_series(run, "merges", "n_atoms")
    if atoms is not None:
        change["window_start"] = _previous(atoms[0], merge_step)
    for key in ("eps", "merge_i", "merge_j", "merge_distance", "merge_previous_distance", "n_close_pairs"):
        found = scalar_series(run, "merges", key)
        if found is not None and (found[0] == merge_step).any():
            value = float(found[1][found[0] == merge_step][-1])
            if math.isfinite(value):
                change[key] = int(value) if key in ("merge_i", "merge_j", "n_close_pairs") else value
    if change.get("merge_i", -1) >= 0:
        change["pair_history"] = _pair_history(run, change["merge_i"], change["merge_j"], merge_step)
    return change


def merge_pairs(run, scalar_series, series, limit: int = 100) -> list[dict[str, Any]]:
    """Every record that named a merging pair: step, pair, its distance one step before and at the
    step, and eta*K per source recorded at that very step (the first ``limit`` records)."""
    found = {
        key: scalar_series(run, "merges", key)
        for key in ("merge_i", "merge_j", "merge_previous_distance", "merge_distance")
    }
    if any(v is None for v in found.values()):
        return []
    steps, first = found["merge_i"]
    out = []
    for k in np.flatnonzero(first >= 0)[:limit]:
        step = int(steps[k])
        at = {}
        for source, (s_steps, values) in series.items():
            hit = (s_steps == step) & np.isfinite(values)
            if hit.any():
                at[source] = float(values[hit][-1])
        out.append(
            {
                "step": step,
                "i": int(first[k]),
                "j": int(found["merge_j"][1][k]),
                "previous_distance": float(found["merge_previous_distance"][1][k]),
                "distance": float(found["merge_distance"][1][k]),
                "eta_K": at,
            }
        )
    return out


def betti_change(run, betti: dict[str, Any], read_series, confirm_max_n: int) -> dict | None:
    """The first Betti change with its window, or as a landmark estimate with its cover."""
    step = betti.get("first_change_step")
    if step is None:
        return None
    found_steps, records = read_series(run, "betti", "betti")
    index = int(np.flatnonzero(found_steps == step)[0])
    previous = int(found_steps[index - 1])
    change: dict[str, Any] = {
        "step": int(step),
        "window_start": previous,
        "before": betti["before_change"],
        "after": betti["after_change"],
    }
    if betti.get("scale_rule"):
        change["scale_rule"] = betti["scale_rule"]
    scales = read_series(run, "betti", "scale")
    diagrams = read_series(run, "betti", "diagram")
    thresholds = read_series(run, "betti", "threshold")
    first_row = np.atleast_2d(np.asarray(records[index]))
    max_dim = first_row.shape[1] - 1
    if scales is not None:
        scale_row = np.atleast_1d(np.asarray(scales[1][index], dtype=np.float64))
        before_rows = np.atleast_2d(np.asarray(records[index - 1]))
        s = int(np.flatnonzero(np.any(before_rows != first_row, axis=1))[0])
        change["scale"] = float(scale_row[s])
        before_scale = float(np.atleast_1d(np.asarray(scales[1][index - 1], dtype=np.float64))[s])
        if before_scale != change["scale"]:
            change["scale_before"] = before_scale  # an adaptive scale moved between the records
        if diagrams is not None and thresholds is not None:
            cap = float(min(thresholds[1][index - 1], thresholds[1][index]))
            change["window"] = betti_window(
                diagrams[1][index - 1], diagrams[1][index], min(change["scale"], cap), cap, max_dim
            )
    landmarks = read_series(run, "betti", "landmarks")
    if landmarks is None:
        change["kind"] = "union_of_balls"
        change["what"] = "Betti numbers changed"
        return change
    change["kind"] = "landmark_estimate"
    change["n_landmarks"] = int(len(landmarks[1][index]))
    cover = read_series(run, "betti", "covering_radius")
    if cover is not None:
        change["covering_radius"] = float(cover[1][index])
    change["confirmed"] = _confirm(run, previous, int(step), change.get("scale"), max_dim, confirm_max_n)
    return change


def _confirm(run, previous: int, step: int, scale, max_dim: int, max_n: int):
    """Betti numbers of the full cloud at both records (None when frames or N do not allow)."""
    from .topology.betti import betti_numbers

    stored = set(int(s) for s in run.steps)
    if scale is None or previous not in stored or step not in stored:
        return None
    X0, X1 = run.positions(previous), run.positions(step)
    if len(X0) > max_n:
        return None
    b0 = betti_numbers(np.asarray(X0, float), float(scale), max_dim, "rips").betti[0]
    b1 = betti_numbers(np.asarray(X1, float), float(scale), max_dim, "rips").betti[0]
    return {
        "before": [int(b) for b in b0],
        "after": [int(b) for b in b1],
        "changed": bool(not np.array_equal(b0, b1)),
    }


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _eta_text(at: dict[str, dict]) -> str:
    if not at:
        return "eta*K not recorded"
    parts = []
    for source, v in at.items():
        pairwise = at.get("pairwise_lipschitz")
        if source == "lemmas" and not v["certified"] and pairwise and pairwise["value"] == v["value"]:
            continue  # the lemma check quoting the same pairwise K
        where = {
            "at the step": "",
            "max in window": f", max in window at step {v['step']}",
            "stale": f", STALE: last record step {v['step']}",
        }[v["how"]]
        parts.append(f"{_fmt(v['value'])} ({source}: {v['name']}{where})")
    return "eta*K " + ", ".join(parts)


def describe_change(change: dict[str, Any]) -> str:
    """One clause of the verdict for one change record."""
    step, start = change["step"], change.get("window_start")
    when = f"at step {step}" + (f" (in ({start}, {step}])" if start is not None else "")
    if change["kind"] == "exact":
        text = (
            f"exact merge {when}: pairs equal at float precision {change['pairs_before']} -> "
            f"{change['pairs_after']}"
        )
    elif change.get("what") == "atoms merged":
        text = f"atoms at eps = {_fmt(change.get('eps'))} merged {when}"
        if change.get("merge_i", -1) >= 0:
            text += (
                f" (pair {change['merge_i']}-{change['merge_j']}: "
                f"{_fmt(change.get('merge_previous_distance'))} -> "
                f"{_fmt(change.get('merge_distance'))})"
            )
        text += ", a union-of-balls change (b0 at radius eps/2), not an exact merge"
    else:
        from .summary import _format_betti

        at = _fmt(change.get("scale"))
        if "scale_before" in change:
            at = f"{_fmt(change['scale_before'])} -> {at} (the adaptive scale moved)"
        if change.get("scale_rule"):
            at += f" ({change['scale_rule']})"
        text = (
            f"Betti {_format_betti(change['before'])} -> {_format_betti(change['after'])} {when} "
            f"at scale {at}"
        )
        window = change.get("window")
        if window and window["kind"]:
            top = f">= {_fmt(window['hi'])}" if window["hi_capped"] else _fmt(window["hi"])
            text += f", differs over scales [{_fmt(window['lo'])}, {top}]: {window['kind']}"
        elif window:
            text += ", the diagrams agree at the common scale (a scale effect only)"
        if change["kind"] == "landmark_estimate":
            text += (
                f"; a landmark estimate ({change['n_landmarks']} landmarks, covering radius "
                f"{_fmt(change.get('covering_radius'))})"
            )
            confirmed = change.get("confirmed")
            if confirmed is None:
                text += ", not confirmed on the full cloud"
            else:
                text += (
                    f", full cloud {tuple(confirmed['before'])} -> {tuple(confirmed['after'])}"
                    f" ({'confirmed' if confirmed['changed'] else 'NOT confirmed'})"
                )
        else:
            text += "; a union-of-balls change at that scale"
    return f"{text}; {_eta_text(change['eta_K'])}; {change['prediction']}"
