"""The theory's per-step checks: Lemma 2 distance ratios against their bounds, Theorem 2 expansion."""

from __future__ import annotations

import numpy as np

from ..summary import read_series, scalar_series
from .common import mark_events, new_figure, opened, titled


def figure_lemmas(run, summary: dict | None = None):
    """Lemma 2: the extreme distance ratios d_ij(t+1) / d_ij(t) against (1 - eta K, 1 + eta K).

    Top panel: the band between the bounds and the smallest and largest ratio over the
    checked pairs, per record; records with violations are marked. Bottom panel: the
    fraction of the bound the step used, max |d'/d - 1| / (eta K) (above 1 exactly when a
    pair violates it). The title says which K the bounds use (certified or not).

    Returns
    -------
    Figure or None
        None when the run has no ``lemmas`` observable.
    """
    with opened(run) as run:
        low = scalar_series(run, "lemmas", "lower_bound")
        high = scalar_series(run, "lemmas", "upper_bound")
        if low is None or high is None:
            return None
        rmin = scalar_series(run, "lemmas", "min_ratio")
        rmax = scalar_series(run, "lemmas", "max_ratio")
        used = scalar_series(run, "lemmas", "fraction_used")
        bad = scalar_series(run, "lemmas", "n_violations")
        certified = scalar_series(run, "lemmas", "certified")
        kind = "certified a-priori K" if certified is not None and np.all(certified[1]) else "K not certified"
        fig = titled(new_figure(7.5, 7.0), run, f"Lemma 2: (1 - eta K) d <= d' <= (1 + eta K) d ({kind})")
    axes = fig.subplots(2, 1, sharex=True)
    ax = axes[0]
    ax.fill_between(
        low[0], low[1], high[1], color="tab:green", alpha=0.2, label="allowed: [1 - eta K, 1 + eta K]"
    )
    ax.plot(low[0], low[1], "_", color="tab:green", ms=12, mew=2)
    ax.plot(high[0], high[1], "_", color="tab:green", ms=12, mew=2)
    for found, label, colour in (
        (rmin, "smallest ratio d'/d", "tab:blue"),
        (rmax, "largest ratio d'/d", "tab:red"),
    ):
        if found is not None:
            ax.plot(found[0], found[1], marker="o", ms=3, color=colour, label=label)
    if bad is not None and np.any(bad[1] > 0) and rmax is not None:
        hit = bad[1] > 0
        ax.plot(bad[0][hit], rmax[1][hit], "x", color="black", ms=9, mew=2, label="records with violations")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set(ylabel="distance ratio", title="pairwise distance ratios per step")
    ax = axes[1]
    if used is not None:
        ax.plot(used[0], used[1], marker="o", ms=3, label="max |d'/d - 1| / (eta K)")
    ax.axhline(1.0, color="crimson", ls="--", lw=1, label="1: the bound is met exactly")
    mark_events(ax, summary)
    ax.set(ylabel="fraction of the bound", title="fraction of the Lemma 2 bound used", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    return fig


def figure_expansion(run, summary: dict | None = None):
    """Theorem 2: S(t)^r beside S(t+1)^((1 - eta K) r), per radius and step.

    Top panel: the minimum separation delta_t with the checked radii r and
    (1 - eta K) r, and delta_t / 2 (the corrected range ends there). Bottom panel: per
    radius, whether the Betti numbers of the two unions of balls agreed, with the
    records that contradict the theorem (certified K, r <= delta_t / 2) and the
    misstatement range (delta_t / 2 < r < delta_t) marked.

    Returns
    -------
    Figure or None
        None when the run has no ``expansion`` observable.
    """
    with opened(run) as run:
        radius = read_series(run, "expansion", "radius")
        if radius is None:
            return None
        steps = np.asarray(radius[0])
        radii = np.atleast_2d(np.asarray(radius[1], dtype=float).reshape(len(steps), -1))
        after = np.asarray(read_series(run, "expansion", "radius_after")[1], dtype=float).reshape(radii.shape)
        equal = np.asarray(read_series(run, "expansion", "equal")[1], dtype=bool).reshape(radii.shape)
        contra = np.asarray(read_series(run, "expansion", "contradicts_theorem")[1], dtype=bool).reshape(
            radii.shape
        )
        mis = np.asarray(read_series(run, "expansion", "misstatement")[1], dtype=bool).reshape(radii.shape)
        delta = scalar_series(run, "expansion", "delta")
        certified = scalar_series(run, "expansion", "certified")
        kind = (
            "certified K"
            if certified is not None and np.all(certified[1])
            else "empirical K: a lower bound,\ncannot certify a contradiction"
        )
        fig = titled(
            new_figure(7.5, 7.0), run, f"Theorem 2: unions of balls before and after a step ({kind})"
        )
    checked = np.isfinite(radii[:, 0])  # step 0 has no previous step
    axes = fig.subplots(2, 1, sharex=True)
    ax = axes[0]
    if delta is not None:
        ax.plot(delta[0], delta[1], color="black", marker="o", ms=3, label="delta_t (min separation)")
        ax.plot(delta[0], delta[1] / 2, color="black", ls=":", label="delta_t / 2")
    for j in range(radii.shape[1]):
        ax.plot(steps[checked], radii[checked, j], color=f"C{j}", label=f"r (radius #{j})")
        ax.plot(
            steps[checked], after[checked, j], color=f"C{j}", ls="--", label=f"(1 - eta K) r (radius #{j})"
        )
    ax.set(ylabel="length", title="separation and radii")
    ax = axes[1]
    labelled = set()
    marks = (
        ("same Betti numbers", equal, dict(marker="o", color="tab:green", ms=5)),
        ("Betti numbers differ", ~equal, dict(marker="o", color="tab:orange", ms=5)),
        ("contradicts the theorem", contra, dict(marker="x", color="crimson", ms=10, mew=2)),
        ("delta/2 < r < delta (misstatement range)", mis, dict(marker="s", mfc="none", color="purple", ms=9)),
    )
    for j in range(radii.shape[1]):
        for label, mask, style in marks:
            hit = checked & mask[:, j]
            if hit.any():  # a legend entry only for what is drawn
                ax.plot(
                    steps[hit],
                    np.full(hit.sum(), j),
                    ls="none",
                    label=None if label in labelled else label,
                    **style,
                )
                labelled.add(label)
    ax.set_yticks(range(radii.shape[1]), [f"radius #{j}" for j in range(radii.shape[1])])
    ax.set_ylim(-0.7, radii.shape[1] - 0.3)
    mark_events(ax, summary)
    ax.set(ylabel="radius", title="agreement of S(t)^r and S(t+1)^((1 - eta K) r)", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    return fig
