"""Time series of a run: Betti numbers, merges, loss."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..summary import merge_events, read_series, scalar_series, train_loss_series
from .common import mark_events, maybe_log, new_figure, opened, titled


def figure_betti(run, summary: dict | None = None):
    """Betti numbers over steps: one panel per dimension b_0 .. b_k (one line per scale if several).

    Parameters
    ----------
    run : Run or path
    summary : dict, optional
        A :func:`~particledyn.summary.summarize_run` result: marks the divergence,
        the first change and the first merge.

    Returns
    -------
    Figure or None
        None when the run has no ``betti`` observable.
    """
    with opened(run) as run:
        found = read_series(run, "betti", "betti")
        if found is None:
            return None
        steps, records = found
        scales = read_series(run, "betti", "scale")
        records = [np.atleast_2d(np.asarray(r)) for r in records]
        width = max(r.shape[1] for r in records)
        n_scales = max(r.shape[0] for r in records)
        fig = titled(new_figure(7.5, 1.2 + 2.0 * width), run, "Betti numbers of the neuron cloud")
    axes = fig.subplots(width, 1, sharex=True, squeeze=False)[:, 0]
    styles = ["-", "--", ":", "-."]
    scale_text = None
    if scales is not None and not isinstance(scales[1], list) and len(scales[1]):
        scale_text = [f"{s:.3g}" for s in np.atleast_1d(scales[1][0])]
    for k, ax in enumerate(axes):
        values = [0.0]
        for j in range(n_scales):
            y = np.array(
                [r[j, k] if r.shape[0] > j and r.shape[1] > k else np.nan for r in records], dtype=float
            )
            label = f"b{k}"
            if n_scales > 1:
                label += f", scale {scale_text[j]}" if scale_text and len(scale_text) > j else f", scale #{j}"
            ax.plot(
                steps,
                y,
                drawstyle="steps-post",
                marker="o",
                ms=3,
                ls=styles[j % len(styles)],
                color=f"C{k}",
                label=label,
            )
            values.extend(y[np.isfinite(y)])
        mark_events(ax, summary)
        ax.set_ylim(min(values) - 0.4, max(values) + 0.4)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(
            ylabel=f"b{k}",
            title=f"b{k} (" + ("components" if k == 0 else "loops" if k == 1 else "voids") + ")",
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    if scale_text and n_scales == 1:
        axes[0].set_title(axes[0].get_title() + f", scale at the first record {scale_text[0]}")
    axes[-1].set_xlabel("step")
    return fig


def figure_merges(run, summary: dict | None = None):
    """Merges, atoms and merged mass over steps (Theorems 1 and 3).

    Panels: merges recorded per record (n_merges, and records where the number of
    atoms dropped: merges between sparse records), the number of atoms (particles
    closer than eps grouped), and the merged mass per record with the mass held in
    atoms of two or more particles (linear below the smallest positive mass, so zero
    is drawn as zero).

    Returns
    -------
    Figure or None
        None when the run has no ``merges`` observable.
    """
    with opened(run) as run:
        events = merge_events(run)
        if events is None:
            return None
        merges = scalar_series(run, "merges", "n_merges")
        atoms = scalar_series(run, "merges", "n_atoms")
        mass = scalar_series(run, "merges", "merged_mass")
        multi = scalar_series(run, "merges", "mass_in_multi_atoms")
        n = run.positions(int(run.steps[0])).shape[0] if len(run.steps) else None
        fig = titled(
            new_figure(7.5, 8.4), run, "Merging neurons: atoms are groups of particles closer than eps"
        )
    axes = fig.subplots(3, 1, sharex=True)
    ax = axes[0]
    if merges is not None:
        ax.vlines(merges[0], 0, merges[1], color="tab:blue", lw=2)
        ax.plot(merges[0], merges[1], "o", color="tab:blue", ms=3, label="merges at the record's step")
    steps, seen = events
    if seen.any():
        ax.plot(
            steps[seen],
            np.zeros(seen.sum()),
            "v",
            color="darkorange",
            ms=7,
            label="merge seen (n_merges > 0 or fewer atoms)",
        )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(ylabel="merges", title="merges per record")
    ax = axes[1]
    if atoms is not None:
        ax.plot(atoms[0], atoms[1], marker="o", ms=3, drawstyle="steps-post", label="atoms")
    if n is not None:
        ax.axhline(n, color="gray", ls="--", lw=1, label=f"particles written (N = {n})")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(ylabel="count", title="number of atoms")
    ax = axes[2]
    shown = []
    if mass is not None:
        total = np.cumsum(np.nan_to_num(mass[1]))
        ax.plot(mass[0], mass[1], marker="o", ms=3, label="merged mass at the record's step")
        ax.plot(mass[0], total, ls="--", label="cumulative merged mass")
        shown += [mass[1], total]
    if multi is not None:
        ax.plot(multi[0], multi[1], color="tab:green", label="mass in atoms of >= 2 particles")
        shown.append(multi[1])
    maybe_log(ax, *shown)
    ax.set(ylabel="mass", title="merged mass (pushforward of the particle measure)")
    mark_events(axes[0], summary)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="x-small")
    axes[-1].set_xlabel("step")
    return fig


def figure_loss(run, summary: dict | None = None):
    """Training loss (and test loss when recorded) over steps; log scale when it spans decades.

    Returns
    -------
    Figure or None
        None when the run has no ``loss`` observable.
    """
    with opened(run) as run:
        train = train_loss_series(run)
        test = scalar_series(run, "loss", "test_loss")
        if train is None and test is None:
            return None
        fig = titled(new_figure(7.5, 4.4), run, "Loss")
    ax = fig.add_subplot()
    shown = []
    for label, found in (("train loss", train), ("test loss", test)):
        if found is not None and np.isfinite(found[1]).any():
            ax.plot(found[0], found[1], marker="o", ms=3, label=label)
            shown.append(found[1])
    maybe_log(ax, *shown)
    mark_events(ax, summary)
    ax.set(title="training and test loss", xlabel="step", ylabel="loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig
