"""A run as pandas and xarray objects: :func:`to_pandas` and :func:`to_xarray` (``Run`` methods).

pandas and xarray are optional (``pip install pandas xarray``); each function
imports its library when called.
"""

from __future__ import annotations

import numpy as np

from .integrity import verify_record
from .layout import committed_length

COLUMNS = ("step", "time", "observer", "key", "value")


def _scalar_series(run):
    """``(observer, key, group)`` of every scalar observable (one value per record)."""
    for observer, keys in run.observables.items():
        for key in keys:
            group = run.series(observer, key)
            if "index" not in group and group["value"].ndim == 1:
                yield observer, key, group


def _values(run, observer: str, key: str, group):
    steps, values = run.observable(observer, key)  # checks the records' checksums
    times = group["time"][: len(steps)]
    kind = np.complex128 if values.dtype.kind == "c" else np.float64
    return steps, times, values.astype(kind)


def to_pandas(run):
    """All scalar observables of ``run`` as one tidy (long) DataFrame.

    One row per record: columns ``step`` (int64), ``time`` (float64),
    ``observer``, ``key`` (str) and ``value`` (float64; bool and int values
    cast, complex128 when any key is complex), sorted by observer, key, step.
    Array-valued observables (diagrams, histograms) are left out: read them
    with :meth:`Run.observable`. A wide table, one column per key:
    ``df.pivot_table(index="step", columns=["observer", "key"], values="value")``.
    """
    import pandas as pd

    frames = []
    for observer, key, group in _scalar_series(run):
        steps, times, values = _values(run, observer, key, group)
        frames.append(
            pd.DataFrame(
                {
                    "step": steps.astype(np.int64),
                    "time": times,
                    "observer": observer,
                    "key": key,
                    "value": values,
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            {
                "step": np.zeros(0, np.int64),
                "time": np.zeros(0),
                "observer": [],
                "key": [],
                "value": np.zeros(0),
            },
            columns=list(COLUMNS),
        )
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def _frames_array(run, name: str):
    """The committed frames of a particle series as an xarray backend array: read record by
    record when indexed, each record checked against its checksum."""
    from xarray.backends import BackendArray
    from xarray.core import indexing

    class FramesArray(BackendArray):
        def __init__(self):
            group = run._particles[name]
            self._group = group
            self._n = committed_length(group)
            self.shape = (self._n,) + tuple(group["value"].shape[1:])
            self.dtype = group["value"].dtype

        def __getitem__(self, key):
            return indexing.explicit_indexing_adapter(
                key, self.shape, indexing.IndexingSupport.BASIC, self._read
            )

        def _read(self, key: tuple):
            first, rest = key[0], key[1:]
            records = np.arange(self._n)[first]
            where = f"{run.path}: {self._group.name}"
            out = [verify_record(self._group, int(i), where)[rest] for i in np.atleast_1d(records)]
            if np.ndim(records) == 0:
                return out[0]
            if not out:
                return np.zeros((0,) + self.shape[1:], self.dtype)[(slice(None),) + rest]
            return np.stack(out)

    return FramesArray()


def to_xarray(run):
    """``run`` as an xarray Dataset: frames lazily, scalar observables in memory.

    * ``position`` (and each optimizer-state series, e.g. ``adam_m``):
      dims ``(step, particle, dim)``, read from the file only when indexed or
      loaded (each frame checked against its checksum), so a big run costs
      nothing until used; the Run must stay open until then. Coordinates
      ``step``, ``time`` (along step) and ``particle`` (the written particles' ids).
    * Each scalar observable as ``"<observer>.<key>"`` along the observer's own
      step dimension ``"<observer>.step"`` (observers record at their own
      cadence), with ``"<observer>.time"``; keys recorded at different steps
      are aligned on their union, NaN where a key has no record.
    """
    import xarray as xr
    from xarray.core import indexing

    variables, coords = {}, {}
    steps = run.steps
    if run.particle_series:
        coords["step"] = ("step", steps)
        coords["time"] = ("step", run.times)
        ids = run.ids
        for name in run.particle_series:
            array = _frames_array(run, name)
            data = indexing.LazilyIndexedArray(array)
            variables[name] = xr.Variable(("step", "particle", "dim"), data)
            if ids is None:
                ids = np.arange(array.shape[1])
        coords["particle"] = ("particle", ids)
    by_observer: dict[str, list] = {}
    for observer, key, group in _scalar_series(run):
        by_observer.setdefault(observer, []).append((key, *_values(run, observer, key, group)))
    for observer, keys in by_observer.items():
        dim = f"{observer}.step"
        union = np.unique(np.concatenate([s for _, s, _, _ in keys]))
        times = np.full(union.shape, np.nan)
        for key, s, t, v in keys:
            where = np.searchsorted(union, s)
            column = np.full(union.shape, np.nan, dtype=v.dtype)
            column[where] = v
            times[where] = t
            name = f"{observer}.{key}"
            if name in variables or name in (dim, f"{observer}.time"):
                raise ValueError(
                    f"{run.path!r}: observable {observer!r}/{key!r} clashes with another "
                    f"variable named {name!r} in the Dataset"
                )
            variables[name] = xr.Variable((dim,), column)
        coords[dim] = (dim, union)
        coords[f"{observer}.time"] = (dim, times)
    return xr.Dataset(variables, coords=coords, attrs={"path": run.path})
