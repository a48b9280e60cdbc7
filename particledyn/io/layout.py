"""Names and conventions of the particledyn H5MD file, shared by writer and reader.

Layout (H5MD 1.1 plus the ``particledyn`` module)::

    /                          attrs: finished (bool)
    h5md/                      attrs: version = [1, 1]
        author/                attrs: name (fixed-length string, as all h5md/ strings)
        creator/               attrs: name = "particledyn", version
        modules/particledyn/   attrs: version, writer options, layout notes, writer_pid/host
            finished           (1,) int8: the finished flag a SWMR reader can refresh
    particles/<group>/
        box/                   attrs: dimension = D, boundary = ["none"] * D
        position/              step (n,) int64, time (n,) float64, value (n, N_written, D)
        <state>/               per-particle optimizer state (adam_m, velocity, ...), same layout
        mass                   fixed (N_written,)
        id                     fixed (N_written,) int64: indices of the written particles
    observables/<observer>/    attrs: type, class, every and the observer's options
                               (see observer_attrs; the ragged group carries them too)
        <key>/                 scalar keys (H5MD time-dependent elements)
            step               (n,) int64, an HDF5 dimension scale: value's dimension 0
            time               (n,) float64 along step
            checksum           (n,) uint32: CRC-32 of each record (see integrity)
            value              (n,) attrs: coordinates = "time" (netCDF/xarray readers)
    particledyn/ragged/<observer>/<key>/   array keys (diagrams, histograms, ...)
        step, time, checksum   (n,) as above (no dimension scales)
        value                  flat rows (R, *trailing shape)
        index                  (n, 2) int64: record i is value[index[i, 0]:index[i, 1]]
    parameters/                scenario_toml, resolved (JSON) ...; attrs seed, threads, backend
        versions/              attrs: package and library versions
    checkpoint/
        slot_0, slot_1         uint8 (nbytes,): encoded checkpoints (see checkpoint_codec)
        header                 (2, 4) int64 per slot: [sequence, step, nbytes, crc32]

Array keys live in the ``particledyn`` module's own group, not under
``observables/``, so that H5MD readers, which pair ``value`` row i with
``step`` i, never misread them. Files of module version 1.0 kept them under
``observables/<observer>/<key>`` (with ``index``); readers accept both.

Commit rule (GSD-style): a time series' rows are written value (index, checksum)
first, then time, then step, each phase flushed; ``step`` is the commit
marker and a reader trusts only ``min(len(step), len(time), len(value or index))``
rows. Steps are strictly increasing within a series. The writer commits a batch
of records at a time (one resize and one write per dataset, see
:mod:`particledyn.io.h5md_writer`), so a live reader sees each series grow by
whole batches; the layout is the same whatever the batches were, and files
written one record per commit read the same way. Frames smaller than 32 KiB
share chunks of about 64 KiB (earlier files: one frame a chunk); readers do not
depend on the chunking.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

MODULE_NAME = "particledyn"
MODULE_VERSION = (1, 1)  # 1.1: array keys under RAGGED_ROOT
H5MD_VERSION = (1, 1)
STEP_FILL = -1
FINISHED = "finished"
CHECKPOINT_SLOTS = 2
JSON_ENCODING_ATTR = "encoding"
OBSERVABLES_ROOT = "observables"
RAGGED_ROOT = f"{MODULE_NAME}/ragged"


def observable_groups(file) -> dict[str, dict[str, h5py.Group]]:
    """``{observer: {key: series group}}`` over both homes of observables (scalar and ragged)."""
    found: dict[str, dict] = {}
    for root in (OBSERVABLES_ROOT, RAGGED_ROOT):
        if not isinstance(file.get(root), h5py.Group):
            continue
        for name, group in file[root].items():
            if isinstance(group, h5py.Group):
                keys = found.setdefault(name, {})
                keys.update({key: g for key, g in group.items() if is_series(g) and key not in keys})
    return found


def observable_group(file, name: str, key: str) -> h5py.Group | None:
    """The series group of ``name``/``key`` as :func:`observable_groups` finds it (the scalar home
    first), looked up directly: reading every series of a file by name stays linear in their
    number (a scan per lookup made an ensemble file's summary quadratic)."""
    for root in (OBSERVABLES_ROOT, RAGGED_ROOT):
        home = file.get(root)
        observer = home.get(name) if isinstance(home, h5py.Group) else None
        group = observer.get(key) if isinstance(observer, h5py.Group) else None
        if is_series(group):
            return group
    return None


def all_series(file):
    """``(name, group)`` of every time series of a run file: particles, then observables (the
    observables named ``observables/<observer>/<key>`` whichever group holds them)."""
    particle_group = file[f"h5md/modules/{MODULE_NAME}"].attrs.get("particle_group", "all")
    particles = file[f"particles/{particle_group}"]
    for name, group in particles.items():
        if is_series(group):
            yield f"particles/{name}", group
    for observer, keys in observable_groups(file).items():
        for key, group in keys.items():
            yield f"observables/{observer}/{key}", group


def fixed_string(text: str) -> np.ndarray:
    """``text`` as a fixed-length UTF-8 string scalar (H5MD asks for fixed-length metadata strings)."""
    raw = text.encode("utf-8")
    return np.array(raw, dtype=h5py.string_dtype("utf-8", max(len(raw), 1)))


def is_series(group) -> bool:
    """Whether ``group`` is a time series group (has step, time and value)."""
    return isinstance(group, h5py.Group) and all(k in group for k in ("step", "time", "value"))


def committed_length(group) -> int:
    """Number of committed records of a time series group (see the commit rule)."""
    step = group["step"]
    rows = group["index"] if "index" in group else group["value"]
    for name in ("step", "time", "value", "index", "checksum"):
        if name in group and group.file.swmr_mode:
            group[name].refresh()
    n = min(step.shape[0], group["time"].shape[0], rows.shape[0])
    if "checksum" in group:
        n = min(n, group["checksum"].shape[0])
    # A torn write can leave a resized step dataset whose new row still holds the fill value.
    while n > 0 and int(step[n - 1]) == STEP_FILL:
        n -= 1
    if "index" in group and n > 0:
        value_rows = group["value"].shape[0]
        while n > 0 and int(group["index"][n - 1, 1]) > value_rows:
            n -= 1
    return n


def write_text(group, name: str, text: str, encoding: str | None = None) -> None:
    """Store ``text`` as a fixed-length UTF-8 string dataset (no variable-length types: SWMR)."""
    ds = group.create_dataset(name, data=fixed_string(text))
    if encoding is not None:
        ds.attrs[JSON_ENCODING_ATTR] = encoding


def read_text(dataset) -> str:
    """Inverse of :func:`write_text` (also accepts plain string datasets)."""
    value = dataset[()]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def to_json(value) -> str:
    """JSON text of metadata, converting numpy scalars and arrays to Python values."""

    def default(obj):
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"metadata value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")

    return json.dumps(value, sort_keys=True, default=default)
