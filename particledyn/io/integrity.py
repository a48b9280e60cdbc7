"""Detecting damage in a run file: record checksums and a check of the file's structure.

Every record of a time series carries a CRC-32 over its step, time and value
bytes (``checksum`` dataset, written with the value, before the commit
marker), so a committed record whose bytes changed on disk (a flipped bit,
zeros read past a truncation) is found. HDF5 checks its own metadata.
:func:`check_structure` refuses objects a particledyn writer never makes:
soft and external links (which would make a reader read, and a resume write,
another file), datasets stored in external files, and virtual datasets.
"""

from __future__ import annotations

import struct
import zlib

import h5py
import numpy as np

CHECKSUM = "checksum"
_HEAD = struct.Struct("=qd")  # int64 step, float64 time, native order, no padding


class DamagedRecordError(ValueError):
    """A committed record's bytes do not match its checksum."""


def record_checksum(step: int, time: float, value: np.ndarray) -> int:
    """CRC-32 of one record as stored: step (int64), time (float64), both in the machine's byte
    order as numpy stores them, then the value bytes."""
    return zlib.crc32(np.ascontiguousarray(value).data, zlib.crc32(_HEAD.pack(step, time)))


def _record(group, i: int, index):
    if index is None:
        return group["value"][i]
    start, stop = (int(v) for v in index[i])
    return group["value"][start:stop]


def damaged_steps(group, n: int, upto: int | None = None) -> list[int]:
    """Steps of the first ``n`` records of a series whose checksum does not match.

    Only records at steps <= ``upto`` are checked when it is given. A series
    without checksums (written before they existed) reports none.
    """
    if CHECKSUM not in group or n == 0:
        return []
    steps = group["step"][:n]
    times = group["time"][:n]
    sums = group[CHECKSUM][:n]
    index = group["index"][:n] if "index" in group else None
    bad = []
    for i in range(n):
        if upto is not None and steps[i] > upto:
            break
        try:
            ok = record_checksum(int(steps[i]), float(times[i]), _record(group, i, index)) == int(sums[i])
        except (OSError, RuntimeError, ValueError):
            ok = False
        if not ok:
            bad.append(int(steps[i]))
    return bad


def verify_record(group, i: int, where: str):
    """The value of record ``i`` of a series, after checking it against its checksum."""
    index = group["index"] if "index" in group else None
    value = _record(group, i, index)
    if CHECKSUM in group:
        step, time = int(group["step"][i]), float(group["time"][i])
        if record_checksum(step, time, value) != int(group[CHECKSUM][i]):
            raise DamagedRecordError(
                f"{where}: the record at step {step} is damaged (its checksum "
                f"does not match; `particledyn info {group.file.filename}` "
                "lists every damaged record)"
            )
    return value


def check_structure(file: h5py.File) -> None:
    """Raise ValueError on a link or dataset kind that particledyn never writes."""

    def walk(group, prefix):
        for name in group:
            link = group.get(name, getlink=True)
            where = f"{prefix}/{name}"
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
                raise ValueError(
                    f"{file.filename!r}: {where} is {kind}; a particledyn run file holds "
                    "only its own groups and datasets (refusing a crafted file)"
                )
            item = group.get(name)
            if isinstance(item, h5py.Group):
                walk(item, where)
            elif isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
                raise ValueError(
                    f"{file.filename!r}: {where} stores its data outside the file; a "
                    "particledyn run file keeps all of it inside (refusing a crafted file)"
                )

    walk(file, "")
