"""Persistence of the cloud: diagrams at several records, bar lengths over time, the zigzag barcode."""

from __future__ import annotations

import numpy as np

from ..scenario.resolved import recorded
from ..summary import read_series
from .common import mark_events, new_figure, opened, titled

_DIM_NAMES = {0: "H0 (components)", 1: "H1 (loops)", 2: "H2 (voids)", 3: "H3"}


def _pick(n: int, count: int) -> list[int]:
    """``count`` evenly spaced indices of ``n`` records, first and last included."""
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, count))})


def figure_diagrams(run, summary: dict | None = None, n_diagrams: int = 4):
    """Persistence diagrams at up to ``n_diagrams`` records, and every bar's length over time.

    Top row: the diagrams (birth against death, one colour per homology dimension) at the
    first, the last and evenly spaced records between, on shared axes; bars that never die
    are drawn on a line above the others, marked "inf". Bottom panel: the barcode over
    time, the persistence (death - birth) of every finite bar at each record (log axis
    when it spans decades), so features appearing, dying and merging show up.

    Returns
    -------
    Figure or None
        None when the run has no ``betti/diagram`` observable.
    """
    if isinstance(n_diagrams, bool) or int(n_diagrams) != n_diagrams or n_diagrams < 1:
        raise ValueError(f"n_diagrams={n_diagrams!r}: expected a positive integer")
    with opened(run) as run:
        found = read_series(run, "betti", "diagram")
        if found is None or not len(found[0]):
            return None
        steps, diagrams = found
        diagrams = [np.asarray(d, dtype=float).reshape(-1, 3) for d in diagrams]
        fig = titled(
            new_figure(3.2 * min(len(steps), n_diagrams) + 1.0, 7.4),
            run,
            "Persistence diagrams of the neuron cloud and its barcode over time",
        )
    picks = _pick(len(steps), int(n_diagrams))
    grid = fig.add_gridspec(2, len(picks))
    finite = np.concatenate([d[np.isfinite(d[:, 2]), 1:] for d in diagrams] + [np.zeros((1, 2))])
    finite = finite[np.all(np.isfinite(finite), axis=1)]
    top = float(finite.max()) if finite.size else 1.0
    inf_at = 1.1 * top if top > 0 else 1.0
    dims = sorted({int(k) for d in diagrams for k in d[:, 0]})
    top_row: list = []  # the diagrams' axes; the later ones share the first's scales
    for col, i in enumerate(picks):
        first = top_row[0] if top_row else None
        ax = fig.add_subplot(grid[0, col], sharex=first, sharey=first)
        top_row.append(ax)
        d = diagrams[i]
        for k in dims:
            rows = d[d[:, 0] == k]
            death = np.where(np.isfinite(rows[:, 2]), rows[:, 2], inf_at)
            ax.scatter(rows[:, 1], death, s=12, color=f"C{k}", label=_DIM_NAMES.get(k, f"H{k}"))
        ax.plot([0, inf_at], [0, inf_at], color="gray", lw=0.8)
        ax.axhline(inf_at, color="gray", ls=":", lw=0.8)
        ax.text(0, inf_at, " inf", va="bottom", fontsize="x-small", color="gray")
        ax.set(title=f"step {int(steps[i])}", xlabel="birth", ylabel="death" if col == 0 else "")
        ax.set_aspect("equal", adjustable="box")
        ax.grid(alpha=0.3)
    top_row[0].legend(loc="lower right", fontsize="x-small")
    ax = fig.add_subplot(grid[1, :])
    lengths = []
    for k in dims:
        xs, ys = [], []
        for step, d in zip(steps, diagrams):
            rows = d[(d[:, 0] == k) & np.isfinite(d[:, 2])]
            ys.extend(rows[:, 2] - rows[:, 1])
            xs.extend([int(step)] * len(rows))
        ax.scatter(xs, ys, s=8, alpha=0.6, color=f"C{k}", label=f"{_DIM_NAMES.get(k, f'H{k}')}, finite bars")
        lengths.extend(ys)
    positive = np.asarray([v for v in lengths if v > 0])
    if positive.size and positive.max() > 100 * positive.min():
        ax.set_yscale("log")
    mark_events(ax, summary)
    ax.set(xlabel="step", ylabel="persistence (death - birth)", title="barcode over time: every bar's length")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="x-small")
    return fig


def _zigzag_options(run) -> tuple[float, int]:
    """The zigzag observer's scale and max_dim from the run's scenario, else its defaults."""
    from ..topology.observers import ZigzagObserver

    defaults = ZigzagObserver()
    specs = recorded(run.parameters, "observers", [])
    for spec in specs if isinstance(specs, list) else []:
        if isinstance(spec, dict) and spec.get("type") == "zigzag":
            return float(spec.get("scale", defaults.scale)), int(spec.get("max_dim", defaults.max_dim))
    return defaults.scale, defaults.max_dim


def figure_zigzag(run, summary: dict | None = None, scale: float | None = None, max_dim: int | None = None):
    """The zigzag barcode of the frames the zigzag observer recorded, bars over steps.

    Parameters
    ----------
    run : Run or path
    summary : dict, optional
    scale, max_dim : optional
        Rips edge length and top dimension; by default the observer's settings in the
        run's scenario (or the observer's defaults for an API-written file).

    Returns
    -------
    Figure or None
        None when the run has no ``zigzag/frame`` observable (or a single frame).
    """
    from ..topology.zigzag import zigzag_barcode

    with opened(run) as run:
        found = read_series(run, "zigzag", "frame")
        if found is None or len(found[0]) < 2:
            return None
        steps = np.asarray(found[0], dtype=np.int64)
        frames = [np.asarray(f, dtype=np.float64) for f in found[1]]
        default_scale, default_dim = _zigzag_options(run)
        scale = default_scale if scale is None else float(scale)
        max_dim = default_dim if max_dim is None else int(max_dim)
        fig = titled(
            new_figure(7.5, 4.8), run, f"Zigzag barcode of {len(steps)} frames (Rips scale {scale:g})"
        )
    ok = [bool(np.all(np.isfinite(f))) for f in frames]
    frames = frames[: ok.index(False)] if False in ok else frames  # a diverged frame ends the zigzag
    bars = zigzag_barcode(frames, scale, max_dim) if len(frames) >= 2 else np.zeros((0, 3))
    bars = bars[np.lexsort((bars[:, 1], bars[:, 0]))] if len(bars) else bars
    ax = fig.add_subplot()
    last = len(frames) - 1

    def to_step(t):
        # bars are in frame units (frame i at steps[i]); half units are the unions between frames
        t = np.clip(np.asarray(t, dtype=float), 0, last)
        return np.interp(t, np.arange(len(frames)), steps[: len(frames)])

    seen = set()
    for row, (k, birth, death) in enumerate(bars):
        k = int(k)
        ax.plot(
            [to_step(birth), to_step(death if np.isfinite(death) else last)],
            [row, row],
            color=f"C{k}",
            lw=2,
            solid_capstyle="butt",
            label=None if k in seen else _DIM_NAMES.get(k, f"H{k}"),
        )
        seen.add(k)
    if not len(bars):
        ax.text(0.5, 0.5, "no bars at this scale", transform=ax.transAxes, ha="center")
    if len(frames) < len(steps):
        ax.axvline(steps[len(frames)], color="black", label=f"non-finite frame (step {steps[len(frames)]})")
    mark_events(ax, summary)
    ax.set(xlabel="step", ylabel="bar", title=f"{len(bars)} bars, dimensions 0..{max_dim}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="x-small")
    return fig
