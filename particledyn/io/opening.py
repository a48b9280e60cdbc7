"""Opening a run file read-only without hanging: signature first, SWMR only when needed.

HDF5 in SWMR-read mode retries a metadata read whose checksum fails up to 100
times, sleeping 1 ns, 2 ns, 4 ns, ... up to an hour between tries, so a damaged
file could block a reader for hours. :func:`open_h5` therefore

* rejects a path that is not a regular file or does not start with the HDF5
  signature before HDF5 sees it;
* opens a cleanly closed file (superblock write flags clear) in plain mode,
  where HDF5 also checks the file's length against its end-of-allocation, so a
  truncated finished file is an error, not a healthy file;
* opens a file that is being written, or was left by a killed writer, in SWMR
  mode with the metadata read attempts bounded (:data:`READ_ATTEMPTS`);
* retries failed opens only while another process's live writer holds the
  file's write lock (a resume clearing the flags), up to ``timeout`` seconds.
"""

from __future__ import annotations

import ctypes
import os
import stat
import time as _time

import h5py

from .locking import is_locked
from .superblock import HDF5_SIGNATURE, write_flags

READ_ATTEMPTS = 24  # retry sleeps total 2**24 ns ~ 17 ms per damaged object
_RETRY_PAUSE = 0.05
_hdf5 = None


class NotARunFileError(ValueError):
    """The path is not an HDF5 file (wrong signature) or not a regular file."""


def _library():
    global _hdf5
    if _hdf5 is None:
        # dlsym on h5py's own extension module finds the HDF5 it is linked to (wheel or system).
        lib = ctypes.CDLL(h5py.h5p.__file__)
        lib.H5Pset_metadata_read_attempts.argtypes = [ctypes.c_int64, ctypes.c_uint]
        lib.H5Pset_metadata_read_attempts.restype = ctypes.c_int
        _hdf5 = lib
    return _hdf5


def check_signature(path: str) -> None:
    """Raise :class:`NotARunFileError` unless ``path`` is a regular file starting like HDF5."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"no run file at {path!r} (a run creates it after its first step)") from None
    if not stat.S_ISREG(mode):
        raise NotARunFileError(f"{path!r} is not a regular file; expected an HDF5 run file")
    with open(path, "rb") as fh:
        head = fh.read(len(HDF5_SIGNATURE))
    if head != HDF5_SIGNATURE:
        raise NotARunFileError(
            f"{path!r} is not an HDF5 file (it starts with {head[:8]!r}, expected "
            f"the HDF5 signature {HDF5_SIGNATURE!r})"
        )


def _swmr_fapl(locking):
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    if locking is False:
        fapl.set_file_locking(False, False)
    elif locking is None:  # h5py's default: locking on, ignored where the filesystem lacks it
        fapl.set_file_locking(True, True)
    if _library().H5Pset_metadata_read_attempts(fapl.id, READ_ATTEMPTS) < 0:
        raise RuntimeError("H5Pset_metadata_read_attempts failed")
    return fapl


def _open_once(path: str, swmr: bool, locking) -> h5py.File:
    if not swmr:
        return h5py.File(path, "r", locking=locking)
    fid = h5py.h5f.open(
        os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=_swmr_fapl(locking)
    )
    return h5py.File(fid)


def open_h5(path: str, timeout: float = 10.0) -> h5py.File:
    """Open ``path`` read-only, in SWMR mode only when a writer has it (or left it) open.

    Raises
    ------
    FileNotFoundError, NotARunFileError
        No file, or not an HDF5 file (checked before HDF5 opens it).
    OSError
        HDF5 cannot open it (damaged, truncated): one line naming the path.
    """
    path = os.fspath(path)
    deadline = _time.monotonic() + timeout
    while True:
        check_signature(path)
        swmr = write_flags(path) != 0
        try:
            try:
                return _open_once(path, swmr, locking=True)
            except OSError as exc:
                # Filesystems without flock support (some network mounts) need locking off;
                # it must stay on for a file this process itself has open for writing.
                if "lock" in str(exc) and "flag values" not in str(exc):
                    return _open_once(path, swmr, locking=False)
                if "flag values" in str(exc):
                    # this process already holds the file open with h5py's default locking (a
                    # plain h5py.File(p, "r")): HDF5 shares that handle, so open it the same way
                    return _open_once(path, swmr, locking=None)
                if swmr or "match" not in str(exc):
                    raise
                # this process holds the file open in SWMR mode (it was live then): HDF5 shares
                # that handle's settings, so open it the same way
                return _open_once(path, True, locking=True)
        except (OSError, RuntimeError, KeyError) as exc:
            if _time.monotonic() >= deadline or not is_locked(path, others_only=True):
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise OSError(f"cannot open run file {path!r}: {reason} (damaged or truncated?)") from None
            _time.sleep(_RETRY_PAUSE)
