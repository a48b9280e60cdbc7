"""A copy of a run's frames that MDAnalysis reads: :func:`export_mdanalysis`.

MDAnalysis's H5MD reader accepts only 3-dimensional boxes (``box.attrs["dimension"] == 3``;
it raises "MDAnalysis only supports 3-dimensional simulation boxes" otherwise), so a run of
2-D particles, whose file rightly says dimension 2, cannot be opened by it. The export writes
a plain H5MD 1.1 file whose positions are padded with zero coordinates up to three (or are
three chosen coordinates of wider particles), with the scalar observables of each frame's
step as H5MD observables (MDAnalysis shows them in ``ts.data``). The coordinates are
dimensionless, so the file declares no units: read it with ``convert_units=False``::

    import MDAnalysis as mda
    u = mda.Universe.empty(n_particles)
    u.load_new("RUN.mdanalysis.h5", format="H5MD", convert_units=False)
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from .._version import __version__
from .layout import H5MD_VERSION, fixed_string

__all__ = ["export_mdanalysis", "default_output"]

DIMENSION = 3


def default_output(path) -> str:
    """``RUN.mdanalysis.h5`` beside ``RUN.h5``."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.mdanalysis{ext or '.h5'}"


def _selected(positions: np.ndarray, coordinates) -> tuple[np.ndarray, list[int]]:
    """``(n, N, 3)`` positions: the chosen coordinates, zero-padded to three."""
    dim = positions.shape[2]
    if coordinates is None:
        if dim > DIMENSION:
            raise ValueError(
                f"particles of dimension D = {dim}: expected at most {DIMENSION} for "
                "MDAnalysis; choose three coordinates (coordinates=(i, j, k))"
            )
        coordinates = list(range(dim))
    coordinates = [int(c) for c in coordinates]
    if not 1 <= len(coordinates) <= DIMENSION or any(not 0 <= c < dim for c in coordinates):
        raise ValueError(f"coordinates={coordinates}: expected 1 to {DIMENSION} indices in [0, {dim})")
    out = np.zeros(positions.shape[:2] + (DIMENSION,), dtype=positions.dtype)
    out[..., : len(coordinates)] = positions[..., coordinates]
    return out, coordinates


def _series(group: h5py.Group, steps, times, values) -> None:
    group.create_dataset("step", data=np.asarray(steps, np.int64))
    group.create_dataset("time", data=np.asarray(times, np.float64))
    group.create_dataset("value", data=values)


def export_mdanalysis(path, out=None, coordinates=None, overwrite: bool = False) -> str:
    """Write the frames of run file ``path`` as a 3-D H5MD file MDAnalysis can read.

    Parameters
    ----------
    path : str or PathLike
        A run file (finished, running or killed: its committed frames are exported).
    out : str or PathLike, optional
        Output file; ``RUN.mdanalysis.h5`` beside the run by default.
    coordinates : sequence of int, optional
        Which particle coordinates become x, y, z (at most three); all of them by default,
        which needs D <= 3. Fewer than three are padded with zeros.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    str
        The file written.

    Raises
    ------
    ValueError
        The run has no frames, D > 3 without ``coordinates``, or bad ``coordinates``.
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    """
    from .reader import open_run

    target = default_output(path) if out is None else os.fspath(out)
    if os.path.lexists(target) and not overwrite:
        raise FileExistsError(
            f"output file {target!r} exists; pass overwrite=True (--overwrite) to replace it"
        )
    with open_run(path) as run:
        steps, times = run.steps, run.times
        if not len(steps):
            raise ValueError(f"{os.fspath(path)!r} has no committed frame to export")
        positions, chosen = _selected(np.asarray(run.positions()), coordinates)
        scalars = {}
        for name, keys in run.observables.items():
            for key in keys:
                found_steps, values = run.observable(name, key)
                values = np.asarray(values) if not isinstance(values, list) else None
                if values is None or values.ndim != 1 or values.dtype.kind not in "biuf":
                    continue
                at = {int(s): v for s, v in zip(found_steps, values)}
                if all(int(s) in at for s in steps):  # MDAnalysis pairs observables with frames
                    scalars[f"{name}/{key}"] = np.array([at[int(s)] for s in steps])
        source_dim = int(run.positions(int(steps[0])).shape[1])
    with h5py.File(target, "w") as f:
        h5md = f.create_group("h5md")
        h5md.attrs["version"] = np.array(H5MD_VERSION, dtype=np.int32)
        f.create_group("h5md/author").attrs["name"] = fixed_string("particledyn export")
        creator = f.create_group("h5md/creator")
        creator.attrs["name"] = fixed_string("particledyn")
        creator.attrs["version"] = fixed_string(__version__)
        particles = f.create_group("particles/all")
        box = particles.create_group("box")
        box.attrs["dimension"] = np.int32(DIMENSION)
        box.attrs["boundary"] = np.array(["none"] * DIMENSION, dtype=h5py.string_dtype("ascii", 4))
        position = particles.create_group("position")
        _series(position, steps, times, positions)
        position.attrs["source_dimension"] = np.int32(source_dim)
        position.attrs["source_coordinates"] = np.array(chosen, dtype=np.int32)
        for label, values in scalars.items():
            _series(f.require_group(f"observables/{label}"), steps, times, values)
    return target
