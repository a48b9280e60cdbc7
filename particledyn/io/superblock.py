"""Clearing the HDF5 superblock's "open for writing" flags of a killed writer's file.

A writer opened with ``libver='latest'`` marks the superblock (version 2/3) as
open for (SWMR) writing and clears the mark on a clean close. A killed writer
leaves the mark, and HDF5 then refuses to open the file for writing
("may use <h5clear file> to clear file consistency flags"). :func:`clear_write_flags`
does what ``h5clear -s`` does: set the flags byte to 0 and rewrite the
superblock checksum (Jenkins lookup3, as HDF5 computes it).
"""
from __future__ import annotations

import os

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_FLAGS_OFFSET = 11  # signature (8) + version, size of offsets, size of lengths
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum of HDF5 metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    i = 0
    while length - i > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 4); c = (c + b) & _MASK
        b = (b - a) & _MASK; b ^= _rot(a, 6); a = (a + c) & _MASK
        c = (c - b) & _MASK; c ^= _rot(b, 8); b = (b + a) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 16); c = (c + b) & _MASK
        b = (b - a) & _MASK; b ^= _rot(a, 19); a = (a + c) & _MASK
        c = (c - b) & _MASK; c ^= _rot(b, 4); b = (b + a) & _MASK
        i += 12
    rest = data[i:]
    if not rest:
        return c
    rest = rest + bytes(12 - len(rest))
    a = (a + int.from_bytes(rest[0:4], "little")) & _MASK
    b = (b + int.from_bytes(rest[4:8], "little")) & _MASK
    c = (c + int.from_bytes(rest[8:12], "little")) & _MASK
    c ^= b; c = (c - _rot(b, 14)) & _MASK
    a ^= c; a = (a - _rot(c, 11)) & _MASK
    b ^= a; b = (b - _rot(a, 25)) & _MASK
    c ^= b; c = (c - _rot(b, 16)) & _MASK
    a ^= c; a = (a - _rot(c, 4)) & _MASK
    b ^= a; b = (b - _rot(a, 14)) & _MASK
    c ^= b; c = (c - _rot(b, 24)) & _MASK
    return c


def write_flags(path: str | os.PathLike) -> int:
    """The superblock's file-consistency flags (0 after a clean close)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:8] != HDF5_SIGNATURE or head[8] not in (2, 3):
        return 0
    return head[_FLAGS_OFFSET]


def clear_write_flags(path: str | os.PathLike) -> bool:
    """Clear the "open for writing" flags a killed writer left; return whether any were set.

    Raises
    ------
    ValueError
        If the file has no version 2/3 superblock at offset 0 or its checksum
        does not match (then nothing is written).
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:8] != HDF5_SIGNATURE or head[8] not in (2, 3):
            raise ValueError(f"{os.fspath(path)!r}: expected an HDF5 file with a version 2/3 "
                             "superblock at offset 0 (written with libver='latest')")
        size_of_offsets = head[9]
        body_len = 12 + 4 * size_of_offsets
        fh.seek(0)
        block = bytearray(fh.read(body_len + 4))
        stored = int.from_bytes(block[body_len:], "little")
        if lookup3(bytes(block[:body_len])) != stored:
            raise ValueError(f"{os.fspath(path)!r}: superblock checksum mismatch; not touching it")
        if block[_FLAGS_OFFSET] == 0:
            return False
        block[_FLAGS_OFFSET] = 0
        checksum = lookup3(bytes(block[:body_len]))
        fh.seek(_FLAGS_OFFSET)
        fh.write(bytes([0]))
        fh.seek(body_len)
        fh.write(checksum.to_bytes(4, "little"))
        fh.flush()
        os.fsync(fh.fileno())
    return True
