"""Streaming a simulation to one H5MD file: :class:`H5MDSink`.

Life of a file
--------------
1. The constructor builds the skeleton (``h5md``, ``parameters``, checkpoint
   slots) in a hidden temporary file beside ``path``.
2. The first step's records create their time series there (positions,
   optimizer state, every observer key). All objects must exist before HDF5's
   SWMR mode starts, and SWMR forbids creating any afterwards.
3. SWMR starts, and the file is renamed to ``path``, when the first record of a
   later step arrives (or at :meth:`H5MDSink.start_swmr`, or at close). From
   then on a notebook can open ``path`` (:func:`particledyn.io.open_run`) and see
   every committed record. The loop calls every observer at the first step, so
   every key exists by then; a key first seen later raises
   :class:`LateSeriesError`. Before that point ``path`` does not exist (or still
   holds the file that ``overwrite=True`` replaces), so a reader never sees a
   half-built file and a run killed in its first step leaves no file at ``path``.
4. Records are staged in memory (copied) and committed in batches GSD-style
   (see :mod:`particledyn.io.layout`): each dataset of a time series is resized
   and written once per batch, with one flush before and one after the commit
   markers. A batch is committed at every checkpoint (before it is written), at
   :meth:`H5MDSink.commit` and at close (so at a SIGINT/SIGTERM, which the loop
   checkpoints, and at an error the loop closes the sink for), at interpreter
   exit, and when a record arrives ``commit_seconds`` (scenario key
   ``output.commit_seconds``, 1 s by default) after the oldest staged one or the staged records
   hold :data:`COMMIT_BYTES`; ``commit_seconds=0`` and ``durability='frame'``
   commit every record as it arrives. A live reader sees whole batches only: a
   series' committed length advances by a batch at a time.
   Each record carries a CRC-32 (:mod:`particledyn.io.integrity`). The file is
   fsync'ed at every checkpoint and at close (``durability='frame'``: after
   every record too), so a power loss cannot lose what a checkpoint covers.
   What a SIGKILL (or a segfault) loses: the staged records, those since the
   last commit, all of them after the last checkpoint (a checkpoint commits
   first) and spanning less than ``commit_seconds`` of the run unless no record
   arrived since; the committed records it leaves are intact. A resume cuts
   every series to the checkpoint's step anyway, so a kill loses nothing a
   resume would keep, and the resumed run writes those steps again.
5. From the temporary file on, the writer holds the file's advisory write lock
   (:mod:`particledyn.io.locking`): no other run can replace or resume it.
"""

from __future__ import annotations

import atexit
import math
import os
import secrets
import time as _time
import weakref
import zlib
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from typing import Any

import h5py
import numpy as np

from particledyn._version import __version__
from particledyn.sinks import Sink

from .checkpoint_codec import encode_checkpoint
from .integrity import CHECKSUM, record_checksum
from .layout import (
    CHECKPOINT_SLOTS,
    FINISHED,
    H5MD_VERSION,
    MODULE_NAME,
    MODULE_VERSION,
    OBSERVABLES_ROOT,
    RAGGED_ROOT,
    STEP_FILL,
    all_series,
    committed_length,
    fixed_string,
    observable_groups,
    to_json,
    write_text,
)
from .locking import PID_ATTR, FileLockedError, WriteLock, is_locked, unlocked_writer_alive, writer_stamp
from .observer_attrs import write_description
from .superblock import clear_write_flags

_MAX_CHUNK_BYTES = 512 * 2**20  # HDF5 caps a chunk at 4 GiB; frames above this split
_ROW_CHUNK_BYTES = 2**16  # target chunk size of flat observable rows
_SCALAR_CHUNK = 1024  # records per chunk of step, time and scalar values
_VERSIONED = ("numpy", "numba", "h5py", "scipy")
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
DURABILITY = ("checkpoint", "frame")
# h5py raises RuntimeError for some failed writes (ENOSPC in a flush), OSError for others
_WRITE_ERRORS = (OSError, RuntimeError)
_RESERVE_MARGIN = 2**20  # free disk space kept for HDF5's metadata writes
COMMIT_BYTES = 8 * 2**20  # staged records holding this much are committed at once
_OPEN_SINKS: weakref.WeakSet = weakref.WeakSet()  # committed at interpreter exit


class H5MDWriteError(OSError):
    """The output file could not be created or written (names the path)."""


class LateSeriesError(ValueError):
    """A time series was first recorded after the file went live (SWMR forbids new objects)."""


def check_commit_seconds(value: Any) -> float:
    """``value`` as the seconds between commits; ValueError unless a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"commit_seconds={value!r}: expected a number of seconds >= 0")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"commit_seconds={value!r}: expected a finite number of seconds >= 0")
    return float(value)


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name or "/" in name or name == ".":
        raise ValueError(f"{kind} name {name!r}: expected a non-empty str without '/'")
    return name


def _storage_dtype(value: np.ndarray, where: str) -> np.dtype:
    kind = value.dtype.kind
    if kind == "b":
        return np.dtype(bool)
    if kind in "iu":
        return np.dtype(np.int64)
    if kind == "f":
        return np.dtype(np.float64)
    if kind == "c":
        return np.dtype(np.complex128)
    raise TypeError(
        f"{where}: value of dtype {value.dtype} cannot be recorded; expected a bool, "
        "integer, float or complex scalar or array"
    )


def _library_versions() -> dict[str, str]:
    versions = {"particledyn": __version__, "hdf5": h5py.version.hdf5_version}
    for package in _VERSIONED:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


class _Series:
    """One time series group: stages records in memory and commits them to the file in batches.

    ``length`` is the number of committed records (on disk, behind the commit marker);
    ``last_step`` the step of the latest record accepted, staged or committed.
    """

    def __init__(self, group: h5py.Group):
        self.group = group
        self.step = group["step"]
        self.time = group["time"]
        self.value = group["value"]
        self.index = group["index"] if "index" in group else None
        self.checksum = group[CHECKSUM] if CHECKSUM in group else None
        # fixed for the life of the series; h5py's shape and dtype properties cost a call into HDF5
        self.dtype = self.value.dtype
        self.trailing = tuple(self.value.shape[1:])
        self.length = committed_length(group)
        self.last_step = int(self.step[self.length - 1]) if self.length else None
        self.rows = int(self.index[self.length - 1, 1]) if (self.index is not None and self.length) else 0
        # (step, time, stored value, checksum) of each record not yet committed
        self.staged: list[tuple[int, float, np.ndarray, int]] = []
        self.staged_bytes = 0

    @classmethod
    def create(
        cls,
        parent: h5py.Group,
        name: str,
        record_shape: tuple,
        dtype: np.dtype,
        ragged: bool,
        compression: str | None = None,
    ) -> _Series:
        group = parent.create_group(name)
        group.create_dataset(
            "step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(_SCALAR_CHUNK,), fillvalue=STEP_FILL
        )
        group.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(_SCALAR_CHUNK,))
        group.create_dataset(CHECKSUM, shape=(0,), maxshape=(None,), dtype=np.uint32, chunks=(_SCALAR_CHUNK,))
        if ragged:
            trailing = tuple(record_shape[1:])
            row_bytes = max(1, int(np.prod(trailing, dtype=np.int64)) * dtype.itemsize)
            rows = max(1, _ROW_CHUNK_BYTES // row_bytes)
            group.create_dataset(
                "value",
                shape=(0,) + trailing,
                maxshape=(None,) + trailing,
                dtype=dtype,
                chunks=(rows,) + trailing,
            )
            group.create_dataset("index", shape=(0, 2), maxshape=(None, 2), dtype=np.int64, chunks=(256, 2))
        elif record_shape == ():
            value = group.create_dataset(
                "value", shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_SCALAR_CHUNK,)
            )
            # step as the dimension of value, time and checksum: netCDF readers (xarray) see
            # a `step` dimension with `time` as a coordinate along it
            group["step"].make_scale("step")
            for name_ in ("value", "time", CHECKSUM):
                group[name_].dims[0].attach_scale(group["step"])
            value.attrs["coordinates"] = fixed_string("time")
        else:
            # Frames of _ROW_CHUNK_BYTES / 2 or more: one record per chunk (measured 10-20x faster to
            # stream than multi-frame chunks); smaller ones share chunks of about _ROW_CHUNK_BYTES
            # (N = 1024, D = 2, float64: 4 frames a chunk, a quarter less CPU time per batch commit; at one
            # record per commit, as fast as one frame a chunk).
            per_row = int(np.prod(record_shape[1:], dtype=np.int64)) * dtype.itemsize
            frames = max(1, _ROW_CHUNK_BYTES // max(per_row * max(record_shape[0], 1), 1))
            first = max(1, min(record_shape[0], _MAX_CHUNK_BYTES // max(per_row, 1)))
            chunks = (frames, first) + tuple(record_shape[1:])
            options = (
                {"compression": "gzip", "compression_opts": 4, "shuffle": True}
                if compression == "gzip"
                else {}
            )
            group.create_dataset(
                "value",
                shape=(0,) + record_shape,
                maxshape=(None,) + record_shape,
                dtype=dtype,
                chunks=chunks,
                **options,
            )
        return cls(group)

    def stage(self, value: np.ndarray, step: int, time: float) -> int:
        """Keep a copy of the next record (in the storage dtype) and its checksum until the commit;
        returns the bytes it holds."""
        stored = np.array(value, dtype=self.dtype, order="C", copy=True)
        crc = record_checksum(step, time, stored) if self.checksum is not None else 0
        self.staged.append((step, time, stored, crc))
        self.staged_bytes += stored.nbytes + 20
        self.last_step = step
        return stored.nbytes + 20

    def write_staged(self) -> None:
        """Phases 1 and 2 of the commit: value (and index) rows and checksums, then times, of
        every staged record; one resize and one write per dataset. Writing them again (after a
        failure) rewrites the same rows."""
        k, n = len(self.staged), self.length
        if not k:
            return
        _, times, values, sums = zip(*self.staged)
        if self.checksum is not None:
            self.checksum.resize(n + k, axis=0)
            self.checksum[n : n + k] = np.asarray(sums, dtype=np.uint32)
        if self.index is None:
            self.value.resize(n + k, axis=0)
            self.value[n : n + k] = np.stack(values)
        else:
            counts = np.array([v.shape[0] for v in values], dtype=np.int64)
            stops = self.rows + np.cumsum(counts)
            stop = int(stops[-1])
            self.value.resize(stop, axis=0)
            if stop > self.rows:
                self.value[self.rows : stop] = np.concatenate(values)
            self.index.resize(n + k, axis=0)
            self.index[n : n + k] = np.stack([stops - counts, stops], axis=1)
        self.time.resize(n + k, axis=0)
        self.time[n : n + k] = np.asarray(times, dtype=np.float64)

    def commit(self) -> None:
        """Phase 3: the steps, the commit marker of every staged record (after :meth:`write_staged`
        and a flush)."""
        k, n = len(self.staged), self.length
        if not k:
            return
        self.step.resize(n + k, axis=0)
        self.step[n : n + k] = np.fromiter((r[0] for r in self.staged), dtype=np.int64, count=k)
        rows = self.rows + sum(r[2].shape[0] for r in self.staged) if self.index is not None else 0
        # one statement: a signal handler raising between the stores would make a retry write
        # these records twice
        self.length, self.rows, self.staged, self.staged_bytes = n + k, rows, [], 0

    def truncate(self, length: int) -> None:
        """Cut to ``length`` committed records (staged ones are dropped): the commit marker
        first, the rows last."""
        self.staged, self.staged_bytes = [], 0
        self.step.resize(length, axis=0)
        self.time.resize(length, axis=0)
        if self.checksum is not None:
            self.checksum.resize(length, axis=0)
        if self.index is not None:
            self.rows = int(self.index[length - 1, 1]) if length else 0
            self.index.resize(length, axis=0)
            self.value.resize(self.rows, axis=0)
        else:
            self.value.resize(length, axis=0)
        self.length = length
        self.last_step = int(self.step[length - 1]) if length else None


class H5MDSink(Sink):
    """Stream frames, observables and checkpoints of a run to an H5MD 1.1 file.

    Parameters
    ----------
    path : str or PathLike
        Output file. Must not exist unless ``overwrite``; it appears at this
        path once the first step is recorded (see the module docstring).
    metadata : dict, optional
        Stored under ``parameters``: ``scenario_toml`` (str, the scenario as
        written), ``resolved`` (dict, the resolved parameters, stored as JSON),
        ``seed``, ``threads``, ``backend``, ``author``, ``versions`` (dict,
        merged over the detected versions of particledyn, numpy, numba, h5py,
        HDF5 and scipy), and any further str/number (attribute) or
        dict/list (JSON) entries.
    every : int
        Frame cadence: frames at steps that are not multiples are dropped.
    subset : array of int, optional
        Indices of the particles to write (all when None); stored as ``id``.
    dtype : {None, 'float32', 'float64'}
        Storage type of positions and optimizer state (None keeps the input's).
    masses : array, optional
        Particle masses, stored (for the subset) as ``particles/<group>/mass``.
    optimizer_state : bool
        Also write the per-particle optimizer state arrays of each frame.
    compression : {None, 'gzip'}
        Compression of frames (off by default: ~20x slower to write, saves little).
    overwrite : bool
        Replace an existing file at ``path`` (atomically, when the new one goes live).
        Only a regular file is replaced, and never one a live run is writing
        (it holds the file's write lock).
    durability : {'checkpoint', 'frame'}
        When to fsync: at every checkpoint and at close (default), or also
        after every record ('frame': slower, loses nothing a crash of
        the machine could take; every record is committed as it arrives).
    particle_group : str
        Name of the H5MD particles group.
    commit_seconds : float
        Records are staged in memory and committed in batches (see the module
        docstring): at every checkpoint, at :meth:`commit` and :meth:`close`,
        and at the first record arriving ``commit_seconds`` or more after the
        oldest staged one, or once the staged records hold
        :data:`COMMIT_BYTES`. 0 (the default here; ``particledyn run`` uses
        ``output.commit_seconds``, 1 s by default) commits every record as it arrives.

    Notes
    -----
    Observable values: a scalar key is stored as ``observables/<observer>/<key>``
    with ``value`` (n,) and ``step`` as its dimension scale; a key whose values
    are arrays (ndim >= 1) under ``particledyn/ragged/<observer>/<key>`` as flat
    rows plus ``index`` [start, stop) per record, so records may differ in their
    first axis (persistence diagrams, atom masses); the other axes and the kind
    (bool/int/float/complex) are fixed by the first record. The reader returns
    a stacked array when all records of an array key have the same shape and a
    list of arrays otherwise.
    Within a series steps strictly increase; a record at a step not after the
    series' last committed step (as at the step a resumed run restarts from) is
    ignored, so the file keeps one record per step.
    """

    def __init__(
        self,
        path,
        metadata: Mapping[str, Any] | None = None,
        *,
        every: int = 1,
        subset=None,
        dtype=None,
        masses=None,
        optimizer_state: bool = True,
        compression: str | None = None,
        overwrite: bool = False,
        particle_group: str = "all",
        durability: str = "checkpoint",
        commit_seconds: float = 0.0,
    ):
        self.path = os.fspath(path)
        self._validate_options(every, dtype, compression)
        if durability not in DURABILITY:
            raise ValueError(f"durability={durability!r}: expected one of {DURABILITY}")
        self.durability = durability
        self.commit_seconds = check_commit_seconds(commit_seconds)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata: expected a dict, got {type(metadata).__name__}")
        self.every = int(every)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.subset = self._check_subset(subset)
        self.masses = None if masses is None else np.asarray(masses, dtype=np.float64)
        self.write_optimizer_state = bool(optimizer_state)
        self.compression = compression
        self.overwrite = bool(overwrite)
        self.particle_group = _check_name("particle group", particle_group)
        if os.path.lexists(self.path) and not self.overwrite:
            raise FileExistsError(f"output file {self.path!r} exists; pass overwrite=True to replace it")
        self._check_replaceable()
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise H5MDWriteError(
                f"cannot create output file {self.path!r}: directory {directory!r} does not exist"
            )
        try:
            self._tmp_path = _create_hidden(directory, os.path.basename(self.path))
        except OSError as exc:
            raise H5MDWriteError(f"cannot create output file {self.path!r}: {exc}") from None
        self._lock = None
        self._live = False
        try:
            self._lock = WriteLock(self._tmp_path).acquire()
            self._file = h5py.File(self._tmp_path, "w", libver="latest")
        except H5MDWriteError:
            raise
        except _WRITE_ERRORS as exc:
            self._file = None
            self._abandon()
            raise H5MDWriteError(f"cannot create output file {self.path!r}: {_reason(exc)}") from None
        self._init_state(live=False)
        _OPEN_SINKS.add(self)
        try:
            self._write_skeleton(dict(metadata or {}))
            self._file.flush()
        except _WRITE_ERRORS as exc:
            self._abandon()
            raise H5MDWriteError(f"cannot write output file {self.path!r}: {_reason(exc)}") from None
        except BaseException:  # bad metadata: no temporary file, no lock left behind
            self._abandon()
            raise

    # ----------------------------------------------------------------- setup
    def _check_replaceable(self) -> None:
        """Refuse to replace anything at ``path`` but a regular file no live run is writing."""
        if not os.path.lexists(self.path):
            return
        if os.path.islink(self.path) or not os.path.isfile(self.path):
            raise FileExistsError(f"output {self.path!r} exists and is not a regular file; not replacing it")
        if is_locked(self.path):
            raise FileLockedError(
                f"output file {self.path!r} is being written by a live run "
                "(it holds the file's write lock); not replacing it"
            )

    @staticmethod
    def _validate_options(every, dtype, compression):
        if isinstance(every, bool) or int(every) != every or every < 1:
            raise ValueError(f"every={every!r}: expected a positive integer frame cadence")
        if dtype is not None and np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype={dtype!r}: expected None, 'float32' or 'float64'")
        if compression not in (None, "gzip"):
            raise ValueError(f"compression={compression!r}: expected None or 'gzip'")

    @staticmethod
    def _check_subset(subset):
        if subset is None:
            return None
        subset = np.asarray(subset)
        if subset.ndim != 1 or subset.dtype.kind not in "iu" or subset.size == 0:
            raise ValueError(
                f"subset: expected a non-empty 1-D array of particle indices, "
                f"got shape {subset.shape} dtype {subset.dtype}"
            )
        if subset.min() < 0 or np.unique(subset).size != subset.size:
            raise ValueError("subset: expected distinct non-negative particle indices")
        return subset.astype(np.int64)

    def _init_state(self, live: bool) -> None:
        self._live = live
        self._closed = False
        self._staged_bytes = 0
        self._staged_since: float | None = None  # monotonic time of the oldest staged record
        self._pid = os.getpid()  # a forked child inherits the sink; only this process commits at exit
        self._first_step: int | None = None
        self._last_step: int | None = None
        self._series: dict[str, _Series] = {}
        self._descriptions: dict[str, dict] = {}
        self._checkpoint_seq = 0

    def _write_skeleton(self, metadata: dict) -> None:
        f = self._file
        f.attrs.create("finished", False)
        h5md = f.create_group("h5md")
        h5md.attrs["version"] = np.array(H5MD_VERSION, dtype=np.int32)
        author = h5md.create_group("author")
        author.attrs["name"] = fixed_string(
            str(metadata.pop("author", None) or os.environ.get("USER", "unknown"))
        )
        creator = h5md.create_group("creator")
        creator.attrs["name"] = fixed_string("particledyn")
        creator.attrs["version"] = fixed_string(__version__)
        module = h5md.create_group(f"modules/{MODULE_NAME}")
        module.attrs["version"] = np.array(MODULE_VERSION, dtype=np.int32)
        module.attrs["groups"] = f"parameters, checkpoint, {RAGGED_ROOT}/<observer>/<key>"
        module.attrs["ragged"] = (
            f"array-valued observables live under {RAGGED_ROOT}/<observer>/<key>, "
            "record i is value[index[i, 0]:index[i, 1]] at step[i]"
        )
        module.attrs["commit"] = (
            "rows are committed when step is written; trust min(len(step), len(time), len(value or index))"
        )
        module.attrs["every"] = self.every
        module.attrs["dtype"] = "" if self.dtype is None else self.dtype.name
        module.attrs["optimizer_state"] = self.write_optimizer_state
        module.attrs["compression"] = self.compression or ""
        module.attrs["particle_group"] = self.particle_group
        module.create_dataset(FINISHED, shape=(1,), maxshape=(1,), chunks=(1,), dtype=np.int8)
        self._stamp_writer()
        f.create_group(f"particles/{self.particle_group}")
        f.create_group(OBSERVABLES_ROOT)
        f.create_group(RAGGED_ROOT)
        self._write_parameters(f.create_group("parameters"), metadata)
        ckpt = f.create_group("checkpoint")
        for slot in range(CHECKPOINT_SLOTS):
            ckpt.create_dataset(f"slot_{slot}", shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(2**20,))
        ckpt.create_dataset(
            "header", shape=(CHECKPOINT_SLOTS, 4), dtype=np.int64, fillvalue=-1, chunks=(CHECKPOINT_SLOTS, 4)
        )

    def _stamp_writer(self) -> None:
        self._file[f"h5md/modules/{MODULE_NAME}"].attrs.update(writer_stamp())

    @staticmethod
    def _write_parameters(group: h5py.Group, metadata: dict) -> None:
        versions = _library_versions()
        versions.update({str(k): str(v) for k, v in dict(metadata.pop("versions", {}) or {}).items()})
        vgroup = group.create_group("versions")
        for name, version in sorted(versions.items()):
            vgroup.attrs[name] = version
        for key, value in metadata.items():
            _check_name("metadata key", key)
            if isinstance(value, str):
                write_text(group, key, value)
            elif isinstance(value, (Mapping, list, tuple)):
                write_text(group, key, to_json(value), encoding="json")
            elif isinstance(value, (bool, int, float, np.generic)) or value is None:
                group.attrs[key] = "None" if value is None else value
            else:
                raise TypeError(
                    f"metadata[{key!r}]: {type(value).__name__} cannot be stored; "
                    "expected str, number, bool, None, dict or list"
                )

    # ------------------------------------------------------------ going live
    @property
    def live(self) -> bool:
        """Whether SWMR has started and the file is at ``path``."""
        return self._live

    def start_swmr(self) -> None:
        """Start SWMR and move the file to ``path``; no new series can be created afterwards."""
        if self._live:
            return
        try:
            self._file.flush()
            self._file.swmr_mode = True
            self._sync()
            if os.path.lexists(self.path) and not self.overwrite:
                raise FileExistsError(
                    f"output file {self.path!r} appeared while the run started; not replacing it"
                )
            self._check_replaceable()
            os.replace(self._tmp_path, self.path)
        except FileExistsError:
            self._abandon()
            raise
        except H5MDWriteError:
            raise
        except _WRITE_ERRORS as exc:
            self._abandon()
            raise H5MDWriteError(f"cannot create output file {self.path!r}: {_reason(exc)}") from None
        self._live = True

    def _reserve(self, nbytes: int, when: str) -> None:
        """Raise before HDF5 writes anything when the disk lacks room for ``nbytes`` (plus
        room for HDF5's metadata).

        HDF5 cannot recover from a write that fails inside it (ENOSPC in a flush leaves its
        cache dirty, and the process later segfaults closing the file), so the free space
        is checked first. Another process filling the disk at the same moment can still
        make HDF5 fail; that error is reported as well.
        """
        if self._lock is None or self._lock.fd is None:
            return
        try:
            fs = os.fstatvfs(self._lock.fd)
        except OSError:
            return  # a filesystem that cannot tell: HDF5's own errors are all there is
        needed = int(nbytes) + _RESERVE_MARGIN
        if fs.f_frsize and fs.f_blocks and fs.f_bavail * fs.f_frsize < needed:
            raise H5MDWriteError(
                f"writing {self.path!r} failed {when}: no space left on device "
                f"({fs.f_bavail * fs.f_frsize} bytes free, {needed} needed); the "
                "file keeps every record committed before"
            )

    def _sync(self) -> None:
        if self._lock is not None:
            self._lock.fsync()

    def _abandon(self) -> None:
        """Give up after a failed write: close, drop the lock, remove a file that never went live."""
        _close_quietly(self._file)
        if not self._live and os.path.exists(self._tmp_path):
            try:
                os.remove(self._tmp_path)
            except OSError:
                pass
        if self._lock is not None:
            self._lock.release()
        self._closed = True

    def _before_record(self, step: int) -> None:
        if self._closed:
            raise ValueError(f"sink for {self.path!r} is closed")
        if self._first_step is None:
            self._first_step = step
        elif step > self._first_step and not self._live:
            self.start_swmr()
        self._last_step = step if self._last_step is None else max(self._last_step, step)

    def _series_for(
        self,
        key: str,
        parent: h5py.Group,
        name: str,
        record_shape: tuple,
        dtype: np.dtype,
        ragged: bool,
        step: int,
        compression=None,
    ) -> _Series:
        series = self._series.get(key)
        if series is None:
            if name in parent:
                series = _Series(parent[name])
            elif self._live:
                raise self._late_series(key, step)
            else:
                series = _Series.create(parent, name, record_shape, dtype, ragged, compression)
            self._series[key] = series
        return series

    # ----------------------------------------------------------- the protocol
    def write_frame(self, step, time, positions, optimizer_state=None):
        """Write positions (and optimizer state) at ``step`` if it is on the cadence."""
        step = int(step)
        if step % self.every:
            return
        positions = np.asarray(positions)
        if positions.ndim != 2:
            raise ValueError(f"positions: expected an (N, D) array, got shape {positions.shape}")
        self._before_record(step)
        arrays = {"position": positions}
        if self.write_optimizer_state and optimizer_state:
            for name, array in optimizer_state.items():
                array = np.asarray(array)
                if array.ndim == 0 or array.shape[0] != positions.shape[0]:
                    raise ValueError(
                        f"optimizer_state[{name!r}]: expected a per-particle array with "
                        f"{positions.shape[0]} rows, got shape {array.shape}"
                    )
                arrays[_check_name("optimizer state", name)] = array
        if self.subset is not None:
            if self.subset.max() >= positions.shape[0]:
                raise ValueError(
                    f"subset: index {int(self.subset.max())} out of range for {positions.shape[0]} particles"
                )
            arrays = {name: a[self.subset] for name, a in arrays.items()}
        if "particles/position" not in self._series:
            self._write_particle_constants(positions.shape)
        staged = []
        for name, array in arrays.items():
            series = self._series.get(f"particles/{name}")
            if series is None:
                dtype = self.dtype if (self.dtype is not None and array.dtype.kind == "f") else array.dtype
                series = self._series_for(
                    f"particles/{name}",
                    self._file[f"particles/{self.particle_group}"],
                    name,
                    array.shape,
                    np.dtype(dtype),
                    False,
                    step,
                    self.compression,
                )
            if series.trailing != array.shape:
                raise ValueError(
                    f"{name}: expected shape {series.trailing} as in earlier frames, got {array.shape}"
                )
            if series.last_step is None or step > series.last_step:
                staged.append((series, array))
        self._record(staged, step, float(time))

    def _write_particle_constants(self, shape: tuple) -> None:
        particles = self._file[f"particles/{self.particle_group}"]
        if "box" in particles or self._live:
            return
        n, d = shape
        box = particles.create_group("box")
        box.attrs["dimension"] = np.int32(d)
        box.attrs["boundary"] = np.array(["none"] * d, dtype=h5py.string_dtype("ascii", 4))
        ids = self.subset if self.subset is not None else np.arange(n, dtype=np.int64)
        particles.create_dataset("id", data=ids)
        if self.masses is not None:
            if self.masses.shape != (n,):
                raise ValueError(f"masses: expected shape ({n},), got {self.masses.shape}")
            particles.create_dataset("mass", data=self.masses[ids])

    def describe_observer(self, name, description):
        """Store observer ``name``'s type and options as attributes of its groups
        (:mod:`particledyn.io.observer_attrs`), before the file goes live; a resumed file keeps
        the ones it has."""
        _check_name("observer", name)
        self._descriptions[name] = dict(description)
        if self._live:
            return
        for root in (OBSERVABLES_ROOT, RAGGED_ROOT):
            group = self._file.get(f"{root}/{name}")
            if group is not None:
                write_description(group, description)

    def write_observables(self, name, step, time, values):
        """Record one observer's values (each key its own time series)."""
        _check_name("observer", name)
        step = int(step)
        self._before_record(step)
        staged = []
        for key, raw in values.items():
            _check_name(f"observable key of {name!r}", key)
            where = f"observables/{name}/{key}"
            value = np.asarray(raw)
            dtype = _storage_dtype(value, where)
            series = self._series.get(where)
            if series is None:
                parent = self._observer_group(
                    RAGGED_ROOT if value.ndim else OBSERVABLES_ROOT, name, where, step
                )
                series = self._series_for(where, parent, key, value.shape, dtype, value.ndim >= 1, step)
            self._check_record(series, value, where)
            if series.last_step is None or step > series.last_step:
                staged.append((series, value))
        self._record(staged, step, float(time))

    def _late_series(self, where: str, step: int) -> LateSeriesError:
        return LateSeriesError(
            f"time series {where!r} first recorded at step {step}, after the first "
            f"step ({self._first_step}) when the file went live (SWMR): every "
            "series must be recorded at the first step"
        )

    def _observer_group(self, root: str, name: str, where: str, step: int) -> h5py.Group:
        """The group of observer ``name`` under ``root``, created while the file is not live."""
        if self._live:
            live_parent = self._file.get(root)
            if live_parent is not None and name in live_parent:
                return live_parent[name]
            if name in observable_groups(self._file):
                raise self._late_series(where, step)
            raise LateSeriesError(
                f"observer {name!r} first recorded at step {step}, after the first "
                f"step ({self._first_step}) when the file went live (SWMR): every "
                "observer must record at the first step"
            )
        parent = self._file.require_group(root)
        if name in parent:
            return parent[name]
        group = parent.create_group(name)
        if name in self._descriptions:
            write_description(group, self._descriptions[name])
        return group

    @staticmethod
    def _check_record(series: _Series, value: np.ndarray, where: str) -> None:
        if series.index is None and value.ndim != 0:
            raise ValueError(f"{where}: got an array of shape {value.shape} for a scalar key")
        if series.index is not None and (value.ndim == 0 or value.shape[1:] != series.trailing):
            raise ValueError(
                f"{where}: expected arrays of shape (k, *{series.trailing}) as in "
                f"the first record, got shape {value.shape}"
            )
        stored = series.dtype
        if _KIND_RANK[value.dtype.kind] > _KIND_RANK[stored.kind]:
            raise TypeError(f"{where}: got dtype {value.dtype}, but the key was first recorded as {stored}")

    def _record(self, staged, step: int, time: float) -> None:
        """Stage the records of one call; commit when a trigger is due (see ``commit_seconds``)."""
        if not staged:
            return
        for series, value in staged:
            self._staged_bytes += series.stage(value, step, time)
        now = _time.monotonic()
        if self._staged_since is None:
            self._staged_since = now
        if (
            self.durability == "frame"
            or now - self._staged_since >= self.commit_seconds
            or self._staged_bytes >= COMMIT_BYTES
        ):
            self._commit(f"at step {step}")

    def commit(self) -> None:
        """Commit every staged record now: readers of the file see them, a kill cannot lose them.

        One batch: each dataset of a time series is resized and written once for all its staged
        records, in the order of the commit rule (:mod:`particledyn.io.layout`), with one flush
        before and one after the commit markers (an fsync too with ``durability='frame'``).
        """
        if self._closed:
            raise ValueError(f"sink for {self.path!r} is closed")
        self._commit("at a commit")

    def _commit(self, when: str) -> None:
        pending = [series for series in self._series.values() if series.staged]
        if not pending:
            self._staged_bytes, self._staged_since = 0, None
            return
        records = sum(len(series.staged) for series in pending)
        self._reserve(sum(series.staged_bytes for series in pending) + 16 * records, when)
        try:
            for series in pending:
                series.write_staged()
            self._file.flush()
            self._reserve(16 * records, when)
            for series in pending:
                series.commit()
            self._file.flush()
            if self.durability == "frame":
                self._sync()
        except H5MDWriteError:
            raise
        except _WRITE_ERRORS as exc:
            raise H5MDWriteError(f"writing {self.path!r} failed {when}: {_reason(exc)}") from None
        self._staged_bytes, self._staged_since = 0, None

    def write_checkpoint(self, checkpoint):
        """Store ``checkpoint`` crash-safely in the slot not holding the latest one."""
        if self._closed:
            raise ValueError(f"sink for {self.path!r} is closed")
        blob = encode_checkpoint(checkpoint)
        step = checkpoint.get("step", self._last_step)
        step = -1 if step is None else int(step)
        # the checkpoint covers every record before it: a kill after it loses nothing a resume keeps
        self._commit("before the checkpoint")
        group = self._file["checkpoint"]
        header = group["header"][()]
        slot = 0 if header[0, 0] <= header[1, 0] else 1
        self._checkpoint_seq = max(self._checkpoint_seq, int(header[:, 0].max())) + 1
        self._reserve(len(blob), "writing the checkpoint")
        try:
            data = group[f"slot_{slot}"]
            data.resize(len(blob), axis=0)
            data[:] = np.frombuffer(blob, dtype=np.uint8)
            self._file.flush()
            self._reserve(0, "writing the checkpoint")
            self._sync()
            group["header"][slot] = (self._checkpoint_seq, step, len(blob), zlib.crc32(blob))
            self._file.flush()
            self._sync()
        except H5MDWriteError:
            raise
        except _WRITE_ERRORS as exc:
            raise H5MDWriteError(f"writing the checkpoint to {self.path!r} failed: {_reason(exc)}") from None

    def close(self, finished: bool = False):
        """Go live if not yet, mark ``finished`` and close the file (idempotent)."""
        if self._closed:
            return
        try:
            self._reserve(0, "closing the file")
        except H5MDWriteError:
            self._abandon()  # HDF5's cache is clean: closing writes nothing new
            raise
        try:
            self.start_swmr()
            self._commit("closing the file")
            module = self._file[f"h5md/modules/{MODULE_NAME}"]
            if FINISHED in module:  # absent from a file an older particledyn began
                module[FINISHED][0] = bool(finished)
            self._file.attrs.modify("finished", bool(finished))
            self._file.flush()
            self._sync()
            self._file.close()
            self._sync()
        except H5MDWriteError:
            self._abandon()
            raise
        except _WRITE_ERRORS as exc:
            self._abandon()
            raise H5MDWriteError(f"closing {self.path!r} failed: {_reason(exc)}") from None
        finally:
            self._closed = True
            if self._lock is not None:
                self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(finished=exc_type is None)

    # ----------------------------------------------------------------- resume
    @classmethod
    def resume(
        cls,
        path,
        *,
        every: int | None = None,
        force: bool = False,
        validate=None,
        durability: str = "checkpoint",
        commit_seconds: float = 0.0,
    ) -> tuple[H5MDSink, dict]:
        """Reopen a run's file to continue it from its last checkpoint.

        Takes the file's write lock, then checks everything before it changes a
        byte: the file's structure, that its newest checkpoint is intact, that no
        record up to the checkpoint's step is damaged, and ``validate``. Only then
        does it clear the write flags a killed writer left, cut every time series
        to its committed records at steps <= the checkpoint's step, and return
        the sink (live: SWMR started, so no new series can be created) with the
        checkpoint to restore.

        Parameters
        ----------
        path : str or PathLike
            A file written by :class:`H5MDSink`.
        every : int, optional
            Frame cadence; the stored one when None.
        force : bool
            Resume although the writer PID stamped in the file is alive on this
            host where no write lock can tell whether it still writes (a file of
            an older particledyn, or a filesystem without record locks).
        validate : callable, optional
            Called with the checkpoint before the file is changed; an exception
            it raises aborts the resume with the file untouched.
        durability : {'checkpoint', 'frame'}
            As for the constructor.
        commit_seconds : float
            As for the constructor.

        Returns
        -------
        sink : H5MDSink
        checkpoint : dict

        Raises
        ------
        FileLockedError
            A live run holds the file's write lock (even with ``force``).
        ValueError
            No checkpoint, a damaged checkpoint or record, a crafted file, a live writer PID.
        """
        from .opening import check_signature

        path = os.fspath(path)
        if durability not in DURABILITY:
            raise ValueError(f"durability={durability!r}: expected one of {DURABILITY}")
        commit_seconds = check_commit_seconds(commit_seconds)
        check_signature(path)
        lock = WriteLock(path).acquire()
        try:
            module, checkpoint = cls._validate_for_resume(path, force, lock.enforced)
            if validate is not None:
                validate(checkpoint)
            self = cls._reopen(path, module, every, lock, durability, commit_seconds)
        except BaseException:
            lock.release()
            raise
        return self, checkpoint

    @classmethod
    def _validate_for_resume(cls, path: str, force: bool, lock_enforced: bool) -> tuple[dict, dict]:
        from .reader import LOW_LEVEL_ERRORS, damaged_file_error

        try:
            return cls._check_resumable(path, force, lock_enforced)
        except LOW_LEVEL_ERRORS as exc:
            raise damaged_file_error(path, exc) from None

    @staticmethod
    def _check_resumable(path: str, force: bool, lock_enforced: bool) -> tuple[dict, dict]:
        from .reader import latest_checkpoint_slot, open_run

        with open_run(path) as run:
            module_group = run.file[f"h5md/modules/{MODULE_NAME}"]
            module = dict(module_group.attrs)
            writer_took_lock = FINISHED in module_group
            header = run.file["checkpoint/header"][()]
            checkpoint = run.checkpoint()
            if checkpoint is None:
                raise ValueError(f"cannot resume {path!r}: the file holds no checkpoint")
            newest = int(np.argmax(header[:, 0]))
            if newest != latest_checkpoint_slot(run.file["checkpoint"]):
                raise ValueError(
                    f"cannot resume {path!r}: its newest checkpoint (step "
                    f"{int(header[newest, 1])}) is damaged; resuming from the older one "
                    f"(step {int(checkpoint['step'])}) would drop the records after it"
                )
            damaged = run.damaged(upto=int(checkpoint["step"]))
        if damaged:
            listed = "; ".join(
                f"{key}: steps {', '.join(map(str, steps[:5]))}" + (" ..." if len(steps) > 5 else "")
                for key, steps in damaged.items()
            )
            raise ValueError(f"cannot resume {path!r}: records before its checkpoint are damaged ({listed})")
        if not force and unlocked_writer_alive(module, writer_took_lock, lock_enforced):
            raise ValueError(
                f"cannot resume {path!r}: its writer's PID {module[PID_ATTR]} is alive on "
                "this host, and no write lock can tell whether it still writes (a writer "
                "of an older particledyn, or a filesystem without record locks): pass "
                "--force (force=True) to resume anyway"
            )
        return module, checkpoint

    @classmethod
    def _reopen(
        cls, path: str, module: dict, every, lock: WriteLock, durability: str, commit_seconds: float
    ) -> H5MDSink:
        self = cls.__new__(cls)
        self.path = path
        self.every = int(module["every"]) if every is None else every
        cls._validate_options(self.every, None, None)
        self.dtype = np.dtype(module["dtype"]) if module["dtype"] else None
        self.write_optimizer_state = bool(module["optimizer_state"])
        self.compression = module["compression"] or None
        self.particle_group = str(module["particle_group"])
        self.overwrite = False
        self.durability = durability
        self.commit_seconds = commit_seconds
        self._tmp_path = path
        self._lock = lock
        try:
            clear_write_flags(path)
            self._file = h5py.File(path, "r+", libver="latest")
        except H5MDWriteError:
            raise
        except _WRITE_ERRORS as exc:
            raise H5MDWriteError(f"cannot reopen {path!r} for writing: {_reason(exc)}") from None
        self._init_state(live=False)
        try:
            particles = self._file[f"particles/{self.particle_group}"]
            self.subset = particles["id"][()] if "id" in particles else None
            self.masses = None
            ckpt_step = int(self._checkpoint_header_step())
            self._checkpoint_seq = int(self._file["checkpoint/header"][:, 0].max())
            for key, group in self._all_series():
                series = _Series(group)
                steps = series.step[: series.length]
                series.truncate(int(np.searchsorted(steps, ckpt_step, side="right")))
                self._series[key] = series
            self._file.attrs.modify("finished", False)
            module_group = self._file[f"h5md/modules/{MODULE_NAME}"]
            if FINISHED in module_group:
                module_group[FINISHED][0] = 0
            self._stamp_writer()
            self._file.flush()
            self._file.swmr_mode = True
            self._sync()
        except H5MDWriteError:
            raise
        except _WRITE_ERRORS as exc:
            _close_quietly(self._file)
            raise H5MDWriteError(f"cannot reopen {path!r} for writing: {_reason(exc)}") from None
        self._live = True
        self._first_step = self._last_step = ckpt_step
        _OPEN_SINKS.add(self)
        return self

    def _checkpoint_header_step(self) -> int:
        from .reader import latest_checkpoint_slot

        slot = latest_checkpoint_slot(self._file["checkpoint"])
        return int(self._file["checkpoint/header"][slot, 1])

    def _all_series(self):
        return all_series(self._file)


@atexit.register
def _commit_at_exit() -> None:
    """Commit what the live files of this process have staged (registered after h5py's own exit
    handler, so it runs first); a failure here is given up."""
    for sink in list(_OPEN_SINKS):
        if sink._live and not sink._closed and sink._pid == os.getpid():
            try:
                sink._commit("at exit")
            except Exception:  # noqa: BLE001 - the interpreter is exiting: nowhere to report it
                pass


def _create_hidden(directory: str, base: str) -> str:
    """Create an empty hidden file ``.<base>.<random>.tmp`` in ``directory``, mode 0666 less the
    umask (as any new file; tempfile.mkstemp would make it 0600); return its path."""
    for _ in range(100):
        path = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"cannot find an unused temporary name for {base!r} in {directory!r}")


def _reason(exc: BaseException) -> str:
    """One line of an HDF5/OS error, naming the errno when there is one (ENOSPC, EIO)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for code, name in ((28, "no space left on device"), (5, "input/output error")):
        if getattr(exc, "errno", None) == code or f"errno = {code}," in text:
            return f"{name} ({text})"
    return text


def _close_quietly(file) -> None:
    """Close an h5py file after a failed write; its flush may fail again and is given up."""
    if file is None:
        return
    try:
        file.close()
    except Exception:  # noqa: BLE001 - the first error is the one reported
        try:
            file.id.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["H5MDSink", "H5MDWriteError", "LateSeriesError"]
