"""Reading a run's H5MD file, finished, still running (SWMR) or killed: :func:`open_run`.

Opening never hangs on a damaged file (see :mod:`particledyn.io.opening`), a
file with links or data outside itself is refused, and records are checked
against their checksums as they are read (:mod:`particledyn.io.integrity`).
"""

from __future__ import annotations

import functools
import json
import os
import zlib

import h5py
import numpy as np

from .checkpoint_codec import decode_checkpoint
from .integrity import check_structure, damaged_steps, verify_record
from .layout import (
    FINISHED,
    JSON_ENCODING_ATTR,
    MODULE_NAME,
    committed_length,
    is_series,
    observable_group,
    observable_groups,
    read_text,
)
from .observer_attrs import observer_descriptions, observers_of_type
from .opening import open_h5

# what h5py raises on damaged metadata past the open (a bad checksum, an object it cannot open)
LOW_LEVEL_ERRORS = (RuntimeError, TypeError, AttributeError, IndexError, SystemError)


def damaged_file_error(path: str, exc: BaseException) -> OSError:
    """The one-line error for a low-level failure while reading ``path``."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return OSError(f"cannot read run file {path!r}: {reason} (damaged?)")


def _guarded(method):
    """Report h5py's low-level errors on a damaged file as one OSError naming the path."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except LOW_LEVEL_ERRORS as exc:
            raise damaged_file_error(self.path, exc) from None

    return wrapper


def latest_checkpoint_slot(group) -> int | None:
    """Slot of the newest complete checkpoint in a ``checkpoint`` group, or None."""
    if group.file.swmr_mode:
        group["header"].refresh()
    header = group["header"][()]
    for slot in np.argsort(-header[:, 0], kind="stable"):
        seq, _, nbytes, crc = (int(v) for v in header[slot])
        if seq < 0:
            continue
        data = group[f"slot_{slot}"]
        if group.file.swmr_mode:
            data.refresh()
        if data.shape[0] >= nbytes and zlib.crc32(data[:nbytes].tobytes()) == crc:
            return int(slot)
    return None


class Run:
    """A run's output file, opened read-only (use :func:`open_run`).

    Every accessor reads the committed records as of the call, so on a file
    still being written repeated calls see the run advance.

    Attributes
    ----------
    file : h5py.File
        The open file, for anything the accessors do not cover.
    """

    def __init__(self, path, timeout: float = 10.0):
        self.path = os.fspath(path)
        self._timeout = timeout
        self._open()

    def _open(self) -> None:
        self.file = open_h5(self.path, self._timeout)
        try:
            if "h5md" not in self.file or f"h5md/modules/{MODULE_NAME}" not in self.file:
                raise ValueError(
                    f"{self.path!r} is not a particledyn H5MD file (no h5md/modules/{MODULE_NAME} group)"
                )
            check_structure(self.file)
            group = self.file[f"h5md/modules/{MODULE_NAME}"].attrs.get("particle_group", "all")
            self._particles = self.file[f"particles/{group}"]
            for name in ("observables", "parameters", "checkpoint"):
                if not isinstance(self.file.get(name), h5py.Group):
                    raise ValueError(f"{self.path!r} is not a particledyn run file (no {name} group)")
        except BaseException as exc:
            self.file.close()
            if isinstance(exc, (OSError, KeyError) + LOW_LEVEL_ERRORS):
                raise damaged_file_error(self.path, exc) from None
            raise

    def refresh(self) -> Run:
        """Reopen the file: see everything a writer did since (``finished`` included); returns self."""
        self.file.close()
        self._open()
        return self

    # ------------------------------------------------------------- particles
    def _frames(self, name: str = "position"):
        if name not in self._particles:
            return None, 0
        group = self._particles[name]
        return group, committed_length(group)

    @property
    @_guarded
    def steps(self) -> np.ndarray:
        """Steps of the committed frames."""
        group, n = self._frames()
        return np.zeros(0, dtype=np.int64) if group is None else group["step"][:n]

    @property
    @_guarded
    def times(self) -> np.ndarray:
        """Times of the committed frames."""
        group, n = self._frames()
        return np.zeros(0) if group is None else group["time"][:n]

    @_guarded
    def positions(self, step: int | None = None, name: str = "position") -> np.ndarray:
        """Positions at ``step`` (N_written, D), or all committed frames (n, N_written, D).

        ``name`` reads a per-particle optimizer state series instead (e.g. ``'adam_m'``).
        """
        group, n = self._frames(name)
        if group is None:
            raise KeyError(f"{self.path!r} has no particle series {name!r}")
        where = f"{self.path}: particles/{name}"
        if step is None:
            if n == 0:
                return group["value"][:0]
            return np.stack([verify_record(group, i, where) for i in range(n)])
        steps = group["step"][:n]
        hits = np.flatnonzero(steps == int(step))
        if hits.size == 0:
            raise KeyError(f"no committed frame at step {step} in {self.path!r}")
        return verify_record(group, int(hits[0]), where)

    @property
    @_guarded
    def particle_series(self) -> list[str]:
        """Names of the per-particle time series (position and optimizer state)."""
        return sorted(k for k, g in self._particles.items() if is_series(g))

    @property
    @_guarded
    def ids(self) -> np.ndarray | None:
        """Indices of the written particles (all of them unless a subset was written)."""
        return self._particles["id"][()] if "id" in self._particles else None

    @property
    @_guarded
    def masses(self) -> np.ndarray | None:
        """Masses of the written particles, when the run stored them."""
        return self._particles["mass"][()] if "mass" in self._particles else None

    # ----------------------------------------------------------- observables
    @property
    @_guarded
    def observables(self) -> dict[str, list[str]]:
        """Observer names mapped to their keys."""
        return {name: sorted(keys) for name, keys in sorted(observable_groups(self.file).items())}

    @property
    @_guarded
    def observer_descriptions(self) -> dict[str, dict]:
        """Observer names mapped to what each is: ``type``, ``class``, ``every`` and its options
        (``{"type": name}`` for an observer whose file recorded no type)."""
        return observer_descriptions(self.file)

    def observers_of_type(self, kind: str) -> list[str]:
        """Names of the observers of type ``kind`` (the one named ``kind`` first, then by name),
        whatever they were named; empty when the run has none."""
        return observers_of_type(self.observer_descriptions, kind)

    @_guarded
    def series(self, name: str, key: str) -> h5py.Group:
        """The HDF5 time series group of observable ``name``/``key``: ``observables/<name>/<key>``
        for scalars, ``particledyn/ragged/<name>/<key>`` for arrays (``observables/`` in files
        written before particledyn 1.1 of the layout)."""
        group = observable_group(self.file, name, key)
        if group is None:
            raise KeyError(f"no observable {name!r}/{key!r} in {self.path!r}; present: {self.observables}")
        return group

    @_guarded
    def observable(self, name: str, key: str):
        """Steps and values of ``observables/<name>/<key>``.

        Returns
        -------
        steps : ndarray of int64
        values : ndarray or list of ndarray
            Scalars as an (n,) array; array records stacked to ``(n, *shape)`` when
            all have the same shape, else a list of the n arrays (ragged).
        """
        group = self.series(name, key)
        path = group.name.lstrip("/")
        n = committed_length(group)
        steps = group["step"][:n]
        damaged = damaged_steps(group, n)
        if damaged:
            raise ValueError(
                f"{self.path}: {path}: the records at steps {damaged[:5]} are damaged "
                "(their checksums do not match)"
            )
        if "index" not in group:
            return steps, group["value"][:n]
        index = group["index"][:n]
        flat = group["value"][: int(index[-1, 1])] if n else group["value"][:0]
        records = [flat[a:b] for a, b in index]
        lengths = {b - a for a, b in index}
        if n and len(lengths) == 1:
            return steps, np.stack(records)
        return steps, records

    # ------------------------------------------------------------ run-level
    @property
    @_guarded
    def parameters(self) -> dict:
        """The ``parameters`` group as a dict (JSON entries decoded, versions as a dict)."""
        group = self.file["parameters"]
        out: dict = {key: (v.item() if isinstance(v, np.generic) else v) for key, v in group.attrs.items()}
        for key, item in group.items():
            if isinstance(item, h5py.Group):
                out[key] = {k: str(v) for k, v in item.attrs.items()}
            else:
                text = read_text(item)
                out[key] = json.loads(text) if item.attrs.get(JSON_ENCODING_ATTR) == "json" else text
        return out

    @_guarded
    def damaged(self, upto: int | None = None) -> dict[str, list[int]]:
        """Every time series with committed records whose checksum fails, mapped to their steps.

        Reads every record (the whole file); ``upto`` checks only steps <= it.
        """
        found = {}
        series = [(f"particles/{k}", self._particles[k]) for k in self.particle_series]
        series += [
            (f"observables/{name}/{key}", group)
            for name, keys in observable_groups(self.file).items()
            for key, group in keys.items()
        ]
        for where, group in series:
            bad = damaged_steps(group, committed_length(group), upto)
            if bad:
                found[where] = bad
        return found

    @property
    @_guarded
    def finished(self) -> bool:
        """Whether the writer closed the file with ``finished=True`` (re-read at every access)."""
        module = self.file[f"h5md/modules/{MODULE_NAME}"]
        if FINISHED in module:  # a dataset: unlike an attribute, a SWMR reader can refresh it
            flag = module[FINISHED]
            if self.file.swmr_mode:
                flag.refresh()
            return bool(flag[0])
        return bool(self.file.attrs.get("finished", False))

    @_guarded
    def checkpoint(self) -> dict | None:
        """The newest complete checkpoint, or None when the file has none."""
        group = self.file["checkpoint"]
        slot = latest_checkpoint_slot(group)
        if slot is None:
            return None
        nbytes = int(group["header"][slot, 2])
        try:
            return decode_checkpoint(group[f"slot_{slot}"][:nbytes].tobytes())
        except Exception as exc:  # noqa: BLE001 - a crafted blob can fail in zipfile, json, numpy
            raise ValueError(
                f"{self.path!r}: the checkpoint in slot {slot} cannot be decoded "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def replica(self, index: int):
        """Replica ``index`` of an ensemble file, read with this API (see
        :class:`particledyn.ensemble.ReplicaRun`)."""
        from ..ensemble import ReplicaRun

        return ReplicaRun(self, index)

    def to_pandas(self):
        """All scalar observables as one tidy DataFrame (step, time, observer, key, value); see
        :func:`particledyn.io.export.to_pandas`. Needs pandas."""
        from .export import to_pandas

        return to_pandas(self)

    def to_xarray(self):
        """Frames (lazily, dims step, particle, dim) and scalar observables as an xarray Dataset;
        see :func:`particledyn.io.export.to_xarray`. Needs xarray; keep the Run open while the
        frames are read."""
        from .export import to_xarray

        return to_xarray(self)

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()

    def __repr__(self) -> str:
        if not self.file:
            return f"Run({self.path!r}, closed)"
        return f"Run({self.path!r}, frames={len(self.steps)}, observables={list(self.observables)})"


def open_run(path, timeout: float = 10.0) -> Run:
    """Open a run's file read-only: finished, being written (SWMR) or killed.

    Parameters
    ----------
    path : str or PathLike
    timeout : float
        Seconds to keep retrying transient open failures (a writer resuming).

    Returns
    -------
    Run
    """
    return Run(path, timeout=timeout)
