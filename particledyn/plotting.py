"""Figures of a run file: the neuron cloud, Betti numbers, eta*K against the thresholds, merges, loss.

:func:`plot_run` writes every figure the run's observables allow as PNG files into
``<run stem>_figures/`` beside the run (or ``out_dir``). The files have fixed names
(:data:`FIGURE_NAMES`), so plotting a run again replaces the figures of the previous
call and touches nothing else in the folder.

Each ``figure_*`` function takes an open :class:`~particledyn.io.Run` (or a path) and
returns a :class:`matplotlib.figure.Figure`, or None when the run did not record what
the figure needs; a notebook can display them inline. Figures are built with the
object-oriented API (no pyplot), so they neither depend on nor change the active
matplotlib backend; PNGs are rendered by Agg.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .summary import (eta_K_series, merge_events, read_series, scalar_series, summarize_run,
                      train_loss_series)

__all__ = ["FIGURE_NAMES", "DPI", "plot_run", "figures_dir", "figure_cloud", "figure_betti",
           "figure_stability", "figure_merges", "figure_loss", "project_2d"]

DPI = 120
#: File name of each figure in the figures folder.
FIGURE_NAMES = {"cloud": "cloud.png", "betti": "betti.png", "stability": "stability.png",
                "merges": "merges.png", "loss": "loss.png"}

_K_LABELS = {"sharpness": "sharpness (lambda_max of the Hessian)",
             "pairwise_lipschitz": "pairwise K (Lemma 4)",
             "lemmas": "K of the Lemma checks",
             "expansion": "empirical K (expansion)"}


@contextlib.contextmanager
def _opened(run):
    """Yield an open Run for a Run or a path; close it only if it was opened here."""
    if hasattr(run, "observables") and hasattr(run, "positions"):
        yield run
        return
    from .io import open_run

    with open_run(run) as opened:
        yield opened


def figures_dir(path) -> Path:
    """Default figures folder of a run file: ``<run stem>_figures/`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}_figures")


# ------------------------------------------------------------------ the cloud
def project_2d(points: np.ndarray, reference: np.ndarray):
    """Project ``points`` onto the top two principal axes of ``reference``.

    Parameters
    ----------
    points : ndarray, shape (n, D)
    reference : ndarray, shape (m, D)
        The cloud that fixes the axes (and centre), so that several frames share them.

    Returns
    -------
    projected : ndarray, shape (n, 2)
    explained : ndarray, shape (2,)
        Fraction of the reference's variance along each axis.
    """
    reference = np.asarray(reference, dtype=np.float64)
    centre = reference.mean(axis=0)
    _, s, vt = np.linalg.svd(reference - centre, full_matrices=False)
    total = float(np.sum(s ** 2))
    explained = s[:2] ** 2 / total if total > 0 else np.zeros(2)
    return (np.asarray(points, dtype=np.float64) - centre) @ vt[:2].T, explained


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(x), axis=1)


def _resolvable(points: np.ndarray) -> bool:
    """Whether equal axis scales can be drawn: the cloud's extent is not lost in the rounding of
    its coordinates (a diverging run reaches 1e150 along one axis and a spread of 1e20)."""
    extent = float(np.max(np.ptp(points, axis=0)))
    return extent > 1e-9 * float(np.max(np.abs(points)))


def figure_cloud(run, max_points: int = 20000) -> Figure | None:
    """The neuron cloud at the first and the last frame, side by side.

    D = 2: scatter of (x_1, x_2); D = 3: 3-D scatter; D > 3: projection onto the
    two principal axes of the first frame (the same axes for both frames, said in
    the title); D = 1: the coordinate against the neuron index. Each panel has its
    own limits (the shape is what matters; the axes tell where it is). Colour is the
    neuron index, so a neuron has the same colour in both panels.

    Parameters
    ----------
    run : Run or path
    max_points : int
        Draw at most this many neurons (evenly spaced indices, the same in both
        frames; the title says so when fewer than N are drawn).

    Returns
    -------
    Figure or None
        None when the file holds no frame.
    """
    if isinstance(max_points, bool) or int(max_points) != max_points or max_points < 1:
        raise ValueError(f"max_points={max_points!r}: expected a positive integer")
    with _opened(run) as run:
        steps = run.steps
        if len(steps) == 0:
            return None
        first, last = int(steps[0]), int(steps[-1])
        frames = [(first, np.asarray(run.positions(first), dtype=np.float64))]
        if last != first:
            frames.append((last, np.asarray(run.positions(last), dtype=np.float64)))
        ids = run.ids
    n, dim = frames[0][1].shape
    ids = np.arange(n) if ids is None else np.asarray(ids)
    keep = np.unique(np.linspace(0, n - 1, min(n, int(max_points))).astype(np.int64))
    frames = [(step, x[keep]) for step, x in frames]
    colour, vmax = ids[keep], max(int(ids.max(initial=0)), 1)
    drawn = "" if keep.size == n else f", {keep.size} of {n} drawn"
    fig = Figure(figsize=(5.2 * len(frames), 4.8), dpi=DPI, layout="constrained")
    if dim > 3:
        reference = frames[0][1][_finite_rows(frames[0][1])]
        reference = reference if len(reference) else np.zeros((1, dim))
        frames = [(step, project_2d(x, reference)[0]) for step, x in frames]
        explained = project_2d(reference, reference)[1]
        fig.suptitle(f"Neuron cloud (N = {n}{drawn}), D = {dim}: PCA projection onto PC1-PC2 of "
                     f"step {first} ({100 * explained.sum():.0f}% of its variance)")
    else:
        fig.suptitle(f"Neuron cloud (N = {n}{drawn}, D = {dim}), colour = neuron index")
    scatter = None
    for i, (step, x) in enumerate(frames):
        ok = _finite_rows(x)
        finite = x[ok] if ok.any() else np.zeros((1, x.shape[1]))
        label = "first frame" if i == 0 else "last frame"
        title = f"{label}: step {step}" + ("" if ok.all() else f" ({(~ok).sum()} non-finite hidden)")
        if dim == 3:
            ax = fig.add_subplot(1, len(frames), i + 1, projection="3d")
            scatter = ax.scatter(x[ok, 0], x[ok, 1], x[ok, 2], c=colour[ok], s=8, cmap="viridis",
                                 vmin=0, vmax=vmax, depthshade=False)
            ax.set(xlabel="x1", ylabel="x2", zlabel="x3")
            extent = np.ptp(finite, axis=0)
            ax.set_box_aspect(np.maximum(extent, 0.3 * extent.max() + 1e-12))
            for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
                axis.set_major_locator(MaxNLocator(5))
        else:
            ax = fig.add_subplot(1, len(frames), i + 1)
            if dim == 1:
                scatter = ax.scatter(colour[ok], x[ok, 0], c=colour[ok], s=8, cmap="viridis",
                                     vmin=0, vmax=vmax)
                ax.set(xlabel="neuron index", ylabel="x1")
            else:
                scatter = ax.scatter(x[ok, 0], x[ok, 1], c=colour[ok], s=8, cmap="viridis",
                                     vmin=0, vmax=vmax)
                names = ("PC1", "PC2") if dim > 3 else ("x1", "x2")
                ax.set(xlabel=names[0], ylabel=names[1], aspect="equal" if _resolvable(finite) else "auto")
        ax.set_title(title)
    fig.colorbar(scatter, ax=fig.axes, label="neuron index", shrink=0.8)
    return fig


# ------------------------------------------------------------- time series
def _mark_events(ax, summary: dict | None) -> None:
    """Vertical lines at the first Betti change and the first merge, when known."""
    if not summary:
        return
    diverged = summary.get("diverged")
    if diverged:
        ax.axvline(diverged["step"], color="black", ls="-", lw=1.5,
                   label=f"diverged (step {diverged['step']}: {diverged['quantity']} non-finite)")
    change = summary.get("betti", {}).get("first_change_step")
    merge = summary.get("merges", {}).get("first_merge_step")
    if change is not None:
        ax.axvline(change, color="purple", ls="-.", lw=1.2, label=f"first Betti change (step {change})")
    if merge is not None:
        ax.axvline(merge, color="darkorange", ls=":", lw=1.5, label=f"first merge (step {merge})")


def _maybe_log(ax, *arrays) -> None:
    """Log y-axis when the positive finite values span more than two decades."""
    values = np.concatenate([np.ravel(a) for a in arrays]) if arrays else np.zeros(0)
    values = values[np.isfinite(values)]
    if values.size and np.all(values > 0) and values.max() > 100 * values.min():
        ax.set_yscale("log")


def figure_betti(run, summary: dict | None = None) -> Figure | None:
    """Betti numbers b_0 .. b_k over steps (one line per dimension, and per scale if several).

    Parameters
    ----------
    run : Run or path
    summary : dict, optional
        A :func:`~particledyn.summary.summarize_run` result: marks the first change
        and the first merge.

    Returns
    -------
    Figure or None
        None when the run has no ``betti`` observable.
    """
    with _opened(run) as run:
        found = read_series(run, "betti", "betti")
        if found is None:
            return None
        steps, records = found
        scales = read_series(run, "betti", "scale")
    records = [np.atleast_2d(np.asarray(r)) for r in records]
    width = max(r.shape[1] for r in records)
    n_scales = max(r.shape[0] for r in records)
    fig = Figure(figsize=(7.5, 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    styles = ["-", "--", ":", "-."]
    for j in range(n_scales):
        for k in range(width):
            y = np.array([r[j, k] if r.shape[0] > j and r.shape[1] > k else np.nan for r in records],
                         dtype=float)
            label = f"b{k}" if n_scales == 1 else f"b{k}, scale #{j}"
            ax.plot(steps, y + 0.04 * k, drawstyle="steps-post", marker="o", ms=3,
                    color=colours[k % len(colours)], ls=styles[j % len(styles)], label=label)
    _mark_events(ax, summary)
    title = "Betti numbers of the neuron cloud"
    if scales is not None and not isinstance(scales[1], list):
        first = np.atleast_1d(scales[1][0])
        title += " (scale at first record: " + ", ".join(f"{s:.3g}" for s in first) + ")"
    top = max(int(r.max()) for r in records if r.size)
    ax.set(title=title, xlabel="step", ylabel="Betti number (b_k offset by 0.04 k)",
           ylim=(-0.3, top + 0.6))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def _learning_rate(run, series) -> tuple[np.ndarray, np.ndarray] | None:
    """The learning rate eta over steps: 2 / two_over_eta of the sharpness, else eta_K / K."""
    found = scalar_series(run, "sharpness", "two_over_eta")
    if found is not None and np.any(found[1] > 0):
        ok = found[1] > 0
        return found[0][ok], 2.0 / found[1][ok]
    for source in series:
        K = scalar_series(run, source, "K")
        if K is None or len(K[0]) != len(series[source][0]):
            continue
        ok = np.isfinite(K[1]) & (K[1] > 0) & np.isfinite(series[source][1])
        if ok.any():
            return K[0][ok], series[source][1][ok] / K[1][ok]
    return None


def figure_stability(run, summary: dict | None = None) -> Figure | None:
    """eta*K against the thresholds, K against 1/eta and the edge, and eta* = 1/K against eta.

    Three panels over steps, one line per recorded K (sharpness, pairwise K, ...):
    eta*K with the topological threshold eta*K = 1 (Theorem 1) and the edge of stability
    the sharpness observer recorded (2 for GD; 2 + 2 beta with momentum; (2 + 2 beta1) /
    (1 - beta1) = 38 for Adam's preconditioned sharpness); K with 1/eta and edge/eta; and the
    topological critical learning rate eta* = 1/K with the run's eta (topology can
    break where eta > eta*). The lines in K units need eta, read from the sharpness
    (2 / two_over_eta) or from eta_K / K.

    Returns
    -------
    Figure or None
        None when no observer recorded ``eta_K``.
    """
    with _opened(run) as run:
        series = eta_K_series(run)
        if "pairwise_lipschitz" in series:  # the Lemma checks' default K is the same pairwise K
            series.pop("lemmas", None)
        if not series:
            return None
        Ks = {s: scalar_series(run, s, "K") for s in series}
        eta = _learning_rate(run, series)
        threshold = scalar_series(run, "sharpness", "stability_threshold")
    Ks = {s: v for s, v in Ks.items() if v is not None}
    n_panels = 1 + 2 * bool(Ks)
    fig = Figure(figsize=(7.5, 3.0 * n_panels + 0.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle("Learning rate against the Lipschitz constant K")

    ax = axes[0]
    for source, (steps, values) in series.items():
        ax.plot(steps, values, marker="o", ms=3, label=f"eta*K, {_K_LABELS.get(source, source)}")
    ax.axhline(1.0, color="crimson", ls="--", lw=1, label="eta*K = 1 (topological threshold)")
    edge = 2.0
    if threshold is not None and eta is not None and len(threshold[0]) == len(eta[0]):
        edge = float(np.nanmedian(threshold[1] * eta[1]))
    ax.axhline(edge, color="black", ls=":", lw=1.2, label=f"eta*K = {edge:.3g} (edge of stability)")
    _maybe_log(ax, *(v for _, v in series.values()), [1.0, edge])
    _mark_events(ax, summary)
    ax.set(ylabel="eta*K", title="eta*K over training")

    if Ks:
        ax = axes[1]
        for source, (steps, K) in Ks.items():
            ax.plot(steps, K, marker="o", ms=3, label=_K_LABELS.get(source, source))
        if eta is not None:
            ax.plot(eta[0], 1.0 / eta[1], color="crimson", ls="--", lw=1, label="1/eta")
            # the recorded edge: 2/eta (GD), (2 + 2 beta)/eta (momentum), 38/eta (Adam, preconditioned)
            ax.plot(eta[0], edge / eta[1], color="black", ls=":", lw=1.2,
                    label=f"{edge:.3g}/eta (edge of stability)")
        _maybe_log(ax, *(K for _, K in Ks.values()))
        ax.set(ylabel="K", title=f"K with the thresholds 1/eta and {edge:.3g}/eta")

        ax = axes[2]
        stars = []
        for source, (steps, K) in Ks.items():
            with np.errstate(divide="ignore"):
                star = np.where(K > 0, 1.0 / K, np.nan)
            stars.append(star)
            ax.plot(steps, star, marker="o", ms=3, label=f"eta* = 1/K, {_K_LABELS.get(source, source)}")
        if eta is not None:
            ax.plot(eta[0], eta[1], color="black", lw=1.5, label="eta (learning rate)")
            stars.append(eta[1])
        _maybe_log(ax, *stars)
        ax.set(ylabel="learning rate", title="eta* = 1/K: topology may break where eta > eta*")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    axes[-1].set_xlabel("step")
    return fig


def figure_merges(run, summary: dict | None = None) -> Figure | None:
    """Merges, atoms and merged mass over steps (Theorems 1 and 3).

    Panels: merges recorded per record (n_merges, and records where the number of
    atoms dropped: merges between sparse records), the number of atoms (particles
    closer than eps grouped), and the merged mass per record with the mass held in
    atoms of two or more particles.

    Returns
    -------
    Figure or None
        None when the run has no ``merges`` observable.
    """
    with _opened(run) as run:
        events = merge_events(run)
        if events is None:
            return None
        merges = scalar_series(run, "merges", "n_merges")
        atoms = scalar_series(run, "merges", "n_atoms")
        mass = scalar_series(run, "merges", "merged_mass")
        multi = scalar_series(run, "merges", "mass_in_multi_atoms")
        n = run.positions(int(run.steps[0])).shape[0] if len(run.steps) else None
    fig = Figure(figsize=(7.5, 8.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    fig.suptitle("Merging neurons: atoms are groups of particles closer than eps")
    ax = axes[0]
    if merges is not None:
        ax.vlines(merges[0], 0, merges[1], color="tab:blue", lw=2)
        ax.plot(merges[0], merges[1], "o", color="tab:blue", ms=3, label="merges at the record's step")
    steps, seen = events
    if seen.any():
        ax.plot(steps[seen], np.zeros(seen.sum()), "v", color="darkorange", ms=7,
                label="merge seen (n_merges > 0 or fewer atoms)")
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
    if mass is not None:
        ax.plot(mass[0], mass[1], marker="o", ms=3, label="merged mass at the record's step")
        ax.plot(mass[0], np.cumsum(np.nan_to_num(mass[1])), ls="--", label="cumulative merged mass")
    if multi is not None:
        ax.plot(multi[0], multi[1], color="tab:green", label="mass in atoms of >= 2 particles")
    ax.set(ylabel="mass", title="merged mass (pushforward of the particle measure)")
    _mark_events(axes[0], summary)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="x-small")
    axes[-1].set_xlabel("step")
    return fig


def figure_loss(run, summary: dict | None = None) -> Figure | None:
    """Training loss (and test loss when recorded) over steps; log scale when it spans decades.

    Returns
    -------
    Figure or None
        None when the run has no ``loss`` observable.
    """
    with _opened(run) as run:
        train = train_loss_series(run)
        test = scalar_series(run, "loss", "test_loss")
    if train is None and test is None:
        return None
    fig = Figure(figsize=(7.5, 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    shown = []
    for label, found in (("train loss", train), ("test loss", test)):
        if found is not None and np.isfinite(found[1]).any():
            ax.plot(found[0], found[1], marker="o", ms=3, label=label)
            shown.append(found[1])
    _maybe_log(ax, *shown)
    _mark_events(ax, summary)
    ax.set(title="Loss", xlabel="step", ylabel="loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


_FIGURES = {"cloud": lambda run, summary: figure_cloud(run), "betti": figure_betti,
            "stability": figure_stability, "merges": figure_merges, "loss": figure_loss}


def plot_run(path, out_dir=None) -> list[Path]:
    """Write every figure a run file allows as PNG (dpi 120).

    Parameters
    ----------
    path : str or PathLike
        The run file (finished, running or killed).
    out_dir : str or PathLike, optional
        Folder for the figures, created if missing; ``<run stem>_figures/`` beside
        the run by default. Files named as in :data:`FIGURE_NAMES` are replaced.

    Returns
    -------
    list of Path
        The PNG files written, in the order of :data:`FIGURE_NAMES`; a figure whose
        observables the run lacks is skipped.
    """
    from .io import open_run

    out = figures_dir(path) if out_dir is None else Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir={str(out)!r} exists and is not a directory")
    summary = summarize_run(path)
    written = []
    # values near the float range (a diverging run) overflow in the log scale's ticks
    with open_run(path) as run, np.errstate(over="ignore", invalid="ignore"):
        for name, draw in _FIGURES.items():
            fig = draw(run, summary)
            if fig is None:
                continue
            out.mkdir(parents=True, exist_ok=True)
            target = out / FIGURE_NAMES[name]
            fig.savefig(target, dpi=DPI)
            written.append(target)
    return written
