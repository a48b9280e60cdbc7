"""The neuron cloud: first and last frame on shared axes, and a movie over training."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from .common import new_figure, opened, run_identity

#: Movie formats :func:`write_movie` writes: GIF through Pillow, MP4 through ffmpeg.
MOVIE_FORMATS = ("gif", "mp4")


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
    total = float(np.sum(s**2))
    explained = s[:2] ** 2 / total if total > 0 else np.zeros(2)
    return (np.asarray(points, dtype=np.float64) - centre) @ vt[:2].T, explained


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(x), axis=1)


def _resolvable(points: np.ndarray) -> bool:
    """Whether equal axis scales can be drawn: the cloud's extent is not lost in the rounding of
    its coordinates (a diverging run reaches 1e150 along one axis and a spread of 1e20)."""
    if not len(points):
        return False
    extent = float(np.max(np.ptp(points, axis=0)))
    return extent > 1e-9 * float(np.max(np.abs(points)))


def _shared_limits(frames) -> np.ndarray | None:
    """(dim, 2) limits holding every finite point of every frame with a 5 % margin, or None when
    a frame cannot share them (a diverged frame would shrink the others to a dot)."""
    finite = [x[_finite_rows(x)] for x in frames]
    if not all(_resolvable(x) for x in finite):
        return None
    points = np.concatenate(finite)
    low, high = points.min(axis=0), points.max(axis=0)
    spans = [np.ptp(x, axis=0).max() for x in finite]
    if max(spans) > 1e3 * min(spans):
        return None
    pad = 0.05 * np.maximum(high - low, 1e-12)
    return np.stack([low - pad, high + pad], axis=1)


def _cloud_frames(run, steps, max_points: int):
    """Positions at ``steps`` (projected to PC1-PC2 of the first when D > 3), the neuron colours,
    the drawn-subset note and the axis names."""
    frames = [np.asarray(run.positions(int(s)), dtype=np.float64) for s in steps]
    n, dim = frames[0].shape
    ids = np.arange(n) if run.ids is None else np.asarray(run.ids)
    keep = np.unique(np.linspace(0, n - 1, min(n, int(max_points))).astype(np.int64))
    frames = [x[keep] for x in frames]
    note = "" if keep.size == n else f"{keep.size} of {n} neurons drawn"
    names: tuple[str, ...] = ("x1", "x2", "x3")
    if dim > 3:
        reference = frames[0][_finite_rows(frames[0])]
        reference = reference if len(reference) else np.zeros((1, dim))
        explained = project_2d(reference, reference)[1]
        frames = [project_2d(x, reference)[0] for x in frames]
        note = ", ".join(
            filter(
                None,
                [
                    note,
                    f"PCA projection onto PC1-PC2 of step {int(steps[0])} "
                    f"({100 * explained.sum():.0f}% of its variance)",
                ],
            )
        )
        names = ("PC1", "PC2")
    return frames, ids[keep], note, names


def _scatter(fig, position, x, colour, vmax, names, limits, title):
    """One panel of the cloud: 1-D against the neuron index, 2-D scatter or 3-D scatter."""
    ok = _finite_rows(x)
    dim = x.shape[1]
    kw = dict(c=colour[ok], s=8, cmap="viridis", vmin=0, vmax=vmax)
    if dim == 3:
        ax = fig.add_subplot(*position, projection="3d")
        art = ax.scatter(x[ok, 0], x[ok, 1], x[ok, 2], depthshade=False, **kw)
        ax.set(xlabel=names[0], ylabel=names[1], zlabel=names[2])
        if limits is not None:
            ax.set(xlim=limits[0], ylim=limits[1], zlim=limits[2])
            ax.set_box_aspect(np.ptp(limits, axis=1))
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(5))
    else:
        ax = fig.add_subplot(*position)
        if dim == 1:
            art = ax.scatter(colour[ok], x[ok, 0], **kw)
            ax.set(xlabel="neuron index", ylabel=names[0])
            if limits is not None:
                ax.set_ylim(*limits[0])
        else:
            art = ax.scatter(x[ok, 0], x[ok, 1], **kw)
            ax.set(xlabel=names[0], ylabel=names[1])
            if limits is not None:
                ax.set(xlim=limits[0], ylim=limits[1], aspect="equal")
    hidden = int((~ok).sum())
    ax.set_title(title + (f" ({hidden} non-finite hidden)" if hidden else ""))
    return art


def figure_cloud(run, max_points: int = 20000):
    """The neuron cloud at the first and the last frame, side by side on shared axes.

    D = 2: scatter of (x_1, x_2); D = 3: 3-D scatter; D > 3: projection onto the two
    principal axes of the first frame (the same axes for both frames, said in the
    title); D = 1: the coordinate against the neuron index. Both panels have the same
    limits and equal scales, so growth or contraction shows; when a frame has diverged
    (its extent is lost in rounding, or 1000 times the other's) each panel keeps its
    own limits and the title says so. Colour is the neuron index, so a neuron has the
    same colour in both panels.

    Parameters
    ----------
    run : Run or path
    max_points : int
        Draw at most this many neurons (evenly spaced indices, the same in both frames).

    Returns
    -------
    Figure or None
        None when the file holds no frame.
    """
    if isinstance(max_points, bool) or int(max_points) != max_points or max_points < 1:
        raise ValueError(f"max_points={max_points!r}: expected a positive integer")
    with opened(run) as run:
        steps = [int(s) for s in run.steps]
        if not steps:
            return None
        steps = sorted({steps[0], steps[-1]})
        frames, colour, note, names = _cloud_frames(run, steps, max_points)
        identity = run_identity(run)
    limits = _shared_limits(frames)
    if limits is None and len(frames) > 1:
        note = ", ".join(filter(None, [note, "own axes per panel (the frames' scales differ too much)"]))
    fig = new_figure(5.2 * len(frames) + 0.8, 5.0)
    vmax = max(int(colour.max(initial=0)), 1)
    arts = []
    for i, (step, x) in enumerate(zip(steps, frames)):
        label = "first frame" if i == 0 else "last frame"
        arts.append(
            _scatter(fig, (1, len(frames), i + 1), x, colour, vmax, names, limits, f"{label}: step {step}")
        )
    fig.colorbar(arts[-1], ax=fig.axes, label="neuron index", shrink=0.8)
    fig.suptitle(
        "Neuron cloud, colour = neuron index" + (f" ({note})" if note else "") + f"\n{identity}",
        fontsize="medium",
    )
    return fig


def write_movie(
    run, target, format: str = "gif", fps: float = 8.0, max_points: int = 20000, dpi: float = 100
) -> Path:
    """A movie of the cloud over every recorded frame, on the axes that hold them all.

    Parameters
    ----------
    run : Run or path
    target : path
        The movie file to write.
    format : {"gif", "mp4"}
        GIF through Pillow; MP4 through ffmpeg (refused when ffmpeg is not on PATH).
    fps : float
        Frames per second.
    max_points : int
    dpi : float

    Returns
    -------
    Path
        ``target``.
    """
    from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter

    if format not in MOVIE_FORMATS:
        raise ValueError(f"format={format!r}: expected one of {', '.join(MOVIE_FORMATS)}")
    if format == "mp4" and shutil.which("ffmpeg") is None:
        raise RuntimeError("format='mp4' needs ffmpeg on PATH (not found); use format='gif'")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps={fps!r}: expected a positive frame rate")
    with opened(run) as run:
        steps = [int(s) for s in run.steps]
        if not steps:
            raise ValueError(f"{run.path!r}: no frame to animate")
        frames, colour, note, names = _cloud_frames(run, steps, max_points)
        identity = run_identity(run)
    limits = _shared_limits(frames)
    if limits is None:  # diverged frames: keep the axes of the frames that still share a scale
        good = [x for x in frames if _resolvable(x[_finite_rows(x)])]
        limits = _shared_limits(good[:1]) if good else None
    fig = new_figure(6.0, 5.4)
    vmax = max(int(colour.max(initial=0)), 1)

    def draw(i):
        fig.clear()
        art = _scatter(
            fig,
            (1, 1, 1),
            frames[i],
            colour,
            vmax,
            names,
            limits,
            f"step {steps[i]} (frame {i + 1} of {len(steps)})",
        )
        fig.colorbar(art, ax=fig.axes, label="neuron index", shrink=0.8)
        fig.suptitle(
            "Neuron cloud over training" + (f" ({note})" if note else "") + f"\n{identity}", fontsize="medium"
        )
        return []

    animation = FuncAnimation(fig, draw, frames=len(frames), blit=False)
    # matplotlib's stubs type fps as int; both writers take any positive number (a float as
    # documented above: 1000 / fps ms per GIF frame, ``-r fps`` for ffmpeg)
    writer = PillowWriter(fps=fps) if format == "gif" else FFMpegWriter(fps=fps)  # type: ignore[arg-type]
    target = Path(target)
    animation.save(target, writer=writer, dpi=dpi)
    return target
