"""Figures of a run file: the neuron cloud, Betti numbers, persistence, eta*K, the theory's checks.

:func:`plot_run` writes every figure the run's observables allow into
``<run stem>_figures/`` beside the run (or ``out_dir``), as PNG (``dpi``, 200 by
default), PDF or SVG, and optionally a movie of the cloud. The files have fixed names
(:data:`FIGURE_NAMES` plus the format's suffix), so plotting a run again replaces the
figures of the previous call and touches nothing else in the folder. Every title
names the run (name, optimizer, learning rate, N, D). An observer type with a ``figure`` hook
(:class:`particledyn.scenario.ObserverType`; a plugin's observer, say) adds its figure, written
after the built-in ones as ``<type>.<format>`` (:mod:`.observers`).

Each ``figure_*`` function takes an open :class:`~particledyn.io.Run` (or a path) and
returns a :class:`matplotlib.figure.Figure`, or None when the run did not record what
the figure needs; a notebook can display them inline. Figures are built with the
object-oriented API (no pyplot), so they neither depend on nor change the active
matplotlib backend. A diverged or killed run gets the figures of what it recorded:
non-finite values are left out and the divergence is marked.

Modules: :mod:`.common` (identity, saving), :mod:`.cloud` (cloud, movie), :mod:`.series`
(Betti, merges, loss), :mod:`.stability` (eta*K), :mod:`.persistence` (diagrams, zigzag),
:mod:`.checks` (Lemma 2, Theorem 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..summary import summarize_run
from .checks import figure_expansion, figure_lemmas
from .cloud import MOVIE_FORMATS, figure_cloud, project_2d, write_movie
from .common import DPI, FORMATS, check_format, run_identity, save_figure
from .observers import observer_figures
from .persistence import figure_diagrams, figure_zigzag
from .series import figure_betti, figure_loss, figure_merges
from .stability import figure_stability

__all__ = [
    "FIGURE_NAMES",
    "FORMATS",
    "MOVIE_FORMATS",
    "DPI",
    "plot_run",
    "figures_dir",
    "figure_cloud",
    "figure_betti",
    "figure_stability",
    "figure_merges",
    "figure_loss",
    "figure_diagrams",
    "figure_lemmas",
    "figure_expansion",
    "figure_zigzag",
    "write_movie",
    "project_2d",
    "run_identity",
    "save_figure",
]

#: File stem of each figure in the figures folder (the suffix is the format).
FIGURE_NAMES = {
    "cloud": "cloud",
    "betti": "betti",
    "diagrams": "diagrams",
    "stability": "stability",
    "lemmas": "lemmas",
    "expansion": "expansion",
    "zigzag": "zigzag",
    "merges": "merges",
    "loss": "loss",
}

_FIGURES = {
    "cloud": lambda run, summary: figure_cloud(run),
    "betti": figure_betti,
    "diagrams": figure_diagrams,
    "stability": figure_stability,
    "lemmas": figure_lemmas,
    "expansion": figure_expansion,
    "zigzag": figure_zigzag,
    "merges": figure_merges,
    "loss": figure_loss,
}


def figures_dir(path) -> Path:
    """Default figures folder of a run file: ``<run stem>_figures/`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}_figures")


def plot_run(
    path,
    out_dir=None,
    format: str = "png",
    dpi: float = DPI,
    movie: str | None = None,
    movie_fps: float = 8.0,
    summary: dict | None = None,
) -> list[Path]:
    """Write every figure a run file allows.

    Parameters
    ----------
    path : str or PathLike
        The run file (finished, running, diverged or killed).
    out_dir : str or PathLike, optional
        Folder for the figures, created if missing; ``<run stem>_figures/`` beside
        the run by default. Files named as in :data:`FIGURE_NAMES` are replaced.
    format : {"png", "pdf", "svg"}
        Output format; pdf and svg are vector.
    dpi : float
        Resolution of PNG figures (and of the bitmap parts of vector ones).
    movie : {None, "gif", "mp4"}
        Also write ``cloud_movie.<movie>``, the cloud at every recorded frame (GIF
        through Pillow, MP4 through ffmpeg). Off by default.
    movie_fps : float
        Frames per second of the movie.
    summary : dict, optional
        :func:`~particledyn.summary.summarize_run` of ``path``, when the caller has it already.

    Returns
    -------
    list of Path
        The files written, in the order of :data:`FIGURE_NAMES`, then the observers' hook
        figures (by observer name), then the movie; a figure whose observables the run lacks
        is skipped, and so (with a warning naming it) is a hook figure that fails.
    """
    from ..io import open_run

    check_format(format, dpi)
    if movie is not None and movie not in MOVIE_FORMATS:
        raise ValueError(f"movie={movie!r}: expected None or one of {', '.join(MOVIE_FORMATS)}")
    out = figures_dir(path) if out_dir is None else Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir={str(out)!r} exists and is not a directory")
    if summary is None:
        summary = summarize_run(path)
    written = []
    # values near the float range (a diverging run) overflow in the log scale's ticks
    with open_run(path) as run, np.errstate(over="ignore", invalid="ignore"):
        for name, draw in _FIGURES.items():
            fig = draw(run, summary)
            if fig is None:
                continue
            out.mkdir(parents=True, exist_ok=True)
            written.append(save_figure(fig, out / f"{FIGURE_NAMES[name]}.{format}", format, dpi))
        for stem, fig in observer_figures(run, summary, set(FIGURE_NAMES.values())):
            out.mkdir(parents=True, exist_ok=True)
            written.append(save_figure(fig, out / f"{stem}.{format}", format, dpi))
        if movie is not None and len(run.steps):
            out.mkdir(parents=True, exist_ok=True)
            written.append(write_movie(run, out / f"cloud_movie.{movie}", movie, fps=movie_fps))
    return written
