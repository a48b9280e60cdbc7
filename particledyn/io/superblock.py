"""Repairing the HDF5 superblock of a killed writer's file, as ``h5clear -s --increment`` does.

A writer opened with ``libver='latest'`` marks the superblock (version 2/3) as
open for (SWMR) writing and clears the mark on a clean close. A killed writer
leaves the mark, and HDF5 then refuses to open the file for writing
("may use <h5clear file> to clear file consistency flags"). It can also leave
a stale end-of-allocation address (EOA): a SWMR writer flushes new metadata
past the EOA the superblock records. Reopened as is, HDF5 fails with "addr
overflow" on that metadata, or worse, allocates new space at the stale EOA,
over data already in the file. :func:`clear_write_flags` clears the flags, moves
the EOA past the end of the file plus a margin, extends the file to it, and
rewrites the superblock checksum (Jenkins lookup3, as HDF5 computes it).
"""

from __future__ import annotations

import os

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_FLAGS_OFFSET = 11  # signature (8) + version, size of offsets, size of lengths
_MASK = 0xFFFFFFFF
EOA_INCREMENT = 2**20  # h5clear's default margin past the end of the file


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum of HDF5 metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    i = 0
    while length - i > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _MASK
        a = (a - c) & _MASK
        a ^= _rot(c, 4)
        c = (c + b) & _MASK
        b = (b - a) & _MASK
        b ^= _rot(a, 6)
        a = (a + c) & _MASK
        c = (c - b) & _MASK
        c ^= _rot(b, 8)
        b = (b + a) & _MASK
        a = (a - c) & _MASK
        a ^= _rot(c, 16)
        c = (c + b) & _MASK
        b = (b - a) & _MASK
        b ^= _rot(a, 19)
        a = (a + c) & _MASK
        c = (c - b) & _MASK
        c ^= _rot(b, 4)
        b = (b + a) & _MASK
        i += 12
    rest = data[i:]
    if not rest:
        return c
    rest = rest + bytes(12 - len(rest))
    a = (a + int.from_bytes(rest[0:4], "little")) & _MASK
    b = (b + int.from_bytes(rest[4:8], "little")) & _MASK
    c = (c + int.from_bytes(rest[8:12], "little")) & _MASK
    c ^= b
    c = (c - _rot(b, 14)) & _MASK
    a ^= c
    a = (a - _rot(c, 11)) & _MASK
    b ^= a
    b = (b - _rot(a, 25)) & _MASK
    c ^= b
    c = (c - _rot(b, 16)) & _MASK
    a ^= c
    a = (a - _rot(c, 4)) & _MASK
    b ^= a
    b = (b - _rot(a, 14)) & _MASK
    c ^= b
    c = (c - _rot(b, 24)) & _MASK
    return c


def write_flags(path: str | os.PathLike) -> int:
    """The superblock's file-consistency flags (0 after a clean close)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:8] != HDF5_SIGNATURE or head[8] not in (2, 3):
        return 0
    return head[_FLAGS_OFFSET]


def clear_write_flags(path: str | os.PathLike, eoa_increment: int = EOA_INCREMENT) -> bool:
    """Repair what a killed writer left in the superblock; return whether it left anything.

    When the "open for writing" flags are set: clear them, set the EOA to
    ``max(EOA, end of file) + eoa_increment`` and extend the file to it (sparse
    zeros). A cleanly closed file is not touched.

    Parameters
    ----------
    path : str or PathLike
        An HDF5 file with a version 2/3 superblock at offset 0.
    eoa_increment : int
        Bytes of margin past the end of the file, so that metadata flushed
        past the recorded EOA is addressable.

    Raises
    ------
    ValueError
        If the file has no version 2/3 superblock at offset 0, its checksum
        does not match, or it has a base address other than 0 (then nothing
        is written).
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:8] != HDF5_SIGNATURE or head[8] not in (2, 3):
            raise ValueError(
                f"{os.fspath(path)!r}: expected an HDF5 file with a version 2/3 "
                "superblock at offset 0 (written with libver='latest')"
            )
        size_of_offsets = head[9]
        body_len = 12 + 4 * size_of_offsets
        fh.seek(0)
        block = bytearray(fh.read(body_len + 4))
        stored = int.from_bytes(block[body_len:], "little")
        if lookup3(bytes(block[:body_len])) != stored:
            raise ValueError(f"{os.fspath(path)!r}: superblock checksum mismatch; not touching it")
        if block[_FLAGS_OFFSET] == 0:
            return False

        def field(k: int) -> slice:  # base address, extension, EOA, root object header
            return slice(12 + k * size_of_offsets, 12 + (k + 1) * size_of_offsets)

        if int.from_bytes(block[field(0)], "little") != 0:
            raise ValueError(f"{os.fspath(path)!r}: superblock base address is not 0; not touching it")
        end_of_file = fh.seek(0, os.SEEK_END)
        eoa = max(int.from_bytes(block[field(2)], "little"), end_of_file) + int(eoa_increment)
        block[_FLAGS_OFFSET] = 0
        block[field(2)] = eoa.to_bytes(size_of_offsets, "little")
        block[body_len:] = lookup3(bytes(block[:body_len])).to_bytes(4, "little")
        fh.truncate(eoa)
        fh.seek(0)
        fh.write(bytes(block))
        fh.flush()
        os.fsync(fh.fileno())
    return True
