"""The events of one run that the phase-transition campaign locates in eta / eta*.

Read from a run file (:func:`run_events`), each as the first step it happened at, or None:

- ``exact_merge``: pairs equal at the run's float precision grew (``merges/n_exact_pairs``;
  the finite set lost points, what Theorem 1 speaks of);
- ``merge``: atoms at the merge observer's eps merged (a union-of-balls change of b_0);
- ``betti_change``: the Betti numbers at a recorded scale changed between two records;
- ``persistent_betti``: such a change whose window of scales (both records' persistence
  diagrams, :func:`particledyn.summary_kinds.betti_window`) spans at least
  :data:`particledyn.summary_kinds.WINDOW_RATIO`; a feature moving across the scale is
  "geometric" and does not count, nor does an "unresolved" window (capped by the diagrams'
  threshold: record a larger largest scale to decide);
- ``change``: the earlier of ``merge`` and ``betti_change`` (the sweep table's ``change_step``);
- ``diverged``: the step the run diverged at (NaN or inf), or blew up: the first training-loss
  record above :data:`BLOWUP_FACTOR` times the first one. A run past 2 / lambda_max can grow
  to a loss of 1e27 in ten steps and stay finite; its coordinates are then so large that the
  merge observer's float-precision tolerance (8 ulps of the largest coordinate) calls most pairs
  equal. So every other event counts only when it happened no later than the last loss record
  before the blow-up (conservative: the loss cadence bounds how early a blow-up is seen).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "BLOWUP_FACTOR",
    "ONSET_EVENTS",
    "blowup",
    "run_events",
    "persistent_betti_step",
    "event_seen",
]

#: A training loss this many times the first record's is a blow-up (a divergence still finite).
BLOWUP_FACTOR = 1e3
#: Events :func:`run_events` reads.
ONSET_EVENTS = ("exact_merge", "merge", "betti_change", "persistent_betti", "change", "diverged")


def persistent_betti_step(run, scale_index: int = 0) -> tuple[int | None, int]:
    """The first record whose Betti numbers at ``scale`` (the ``scale_index``-th recorded scale)
    differ from the previous record's over a persistent window of scales.

    Returns
    -------
    (int or None, int)
        The step (None: none), and how many changes at that scale were not persistent
        (geometric or unresolved).
    """
    from ..summary import read_series
    from ..summary_kinds import betti_window

    found = read_series(run, "betti", "betti")
    diagrams = read_series(run, "betti", "diagram")
    scales = read_series(run, "betti", "scale")
    thresholds = read_series(run, "betti", "threshold")
    if found is None or diagrams is None or scales is None or thresholds is None:
        return None, 0
    steps, records = found
    transient = 0
    for k in range(1, len(steps)):
        before = np.atleast_2d(np.asarray(records[k - 1]))
        after = np.atleast_2d(np.asarray(records[k]))
        if np.array_equal(before[scale_index], after[scale_index]):
            continue
        scale = float(np.atleast_1d(np.asarray(scales[1][k], dtype=np.float64))[scale_index])
        cap = float(min(thresholds[1][k - 1], thresholds[1][k]))
        window = betti_window(diagrams[1][k - 1], diagrams[1][k], min(scale, cap), cap, after.shape[1] - 1)
        if window["kind"] == "persistent":
            return int(steps[k]), transient
        transient += 1
    return None, transient


def blowup(loss) -> tuple[int | None, int | None]:
    """``(blow-up step, last record before it)`` of a training-loss series ``(steps, values)``:
    the first record that is not finite or exceeds :data:`BLOWUP_FACTOR` times the first one
    (None, None when there is none or no series)."""
    if loss is None or not len(loss[0]):
        return None, None
    steps, values = loss
    bad = ~np.isfinite(values) | (values > BLOWUP_FACTOR * abs(values[0]))
    if not bad.any():
        return None, None
    k = int(np.flatnonzero(bad)[0])
    return int(steps[k]), (int(steps[k - 1]) if k > 0 else None)


def run_events(path) -> dict[str, Any]:
    """The first step of every event of :data:`ONSET_EVENTS` in a run file (None: not seen).

    Also ``status`` (finished, stopped, running or diverged), ``last_step`` and
    ``transient_betti`` (Betti changes at the stated scale that were not persistent).

    Raises
    ------
    FileNotFoundError, ValueError
        No run file at ``path``.
    """
    from ..io import open_run
    from ..summary import _divergence, read_series, scalar_series, train_loss_series
    from ..summary_kinds import exact_change

    with open_run(path) as run:
        exact = exact_change(run, scalar_series)
        atoms = scalar_series(run, "merges", "n_merges")
        betti = read_series(run, "betti", "betti")
        persistent, transient = persistent_betti_step(run)
        diverged = _divergence(run)
        blown, last_good = blowup(train_loss_series(run))
        last = int(run.steps[-1]) if len(run.steps) else 0
        finished = bool(run.finished)
    merge = None
    if atoms is not None and (atoms[1] > 0).any():
        merge = int(atoms[0][np.flatnonzero(atoms[1] > 0)[0]])
    change_b = None
    if betti is not None:
        rows = [np.atleast_2d(np.asarray(r)) for r in betti[1]]
        moved = [k for k in range(1, len(rows)) if not np.array_equal(rows[k], rows[k - 1])]
        change_b = int(betti[0][moved[0]]) if moved else None
    out = {
        "exact_merge": None if exact is None else exact["step"],
        "merge": merge,
        "betti_change": change_b,
        "persistent_betti": persistent,
    }
    ends = [s for s in (None if diverged is None else diverged["step"], blown) if s is not None]
    if ends:  # nothing counts past a divergence or blow-up
        good = min(ends) - 1 if blown is None or (diverged and diverged["step"] < blown) else last_good
        out = {k: (v if v is not None and good is not None and v <= good else None) for k, v in out.items()}
    either = [s for s in (out["merge"], out["betti_change"]) if s is not None]
    out.update(
        change=min(either) if either else None,
        diverged=min(ends) if ends else None,
        blowup=blown,
        status="diverged" if diverged is not None else ("finished" if finished else "stopped"),
        last_step=last,
        transient_betti=transient,
    )
    return out


def event_seen(events: dict, event: str) -> bool:
    """Whether ``event`` happened in a run (``events`` from :func:`run_events`)."""
    if event not in ONSET_EVENTS:
        raise ValueError(f"event={event!r}: expected one of {', '.join(ONSET_EVENTS)}")
    return events[event] is not None
