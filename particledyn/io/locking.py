"""The advisory write lock of a run file: one writer at a time, and readers can tell it is live.

A writer holds an exclusive open-file-description lock (Linux ``F_OFD_SETLK``)
on the whole file for as long as it writes, from the hidden temporary file on
(the lock belongs to the inode, so it survives the rename to ``path``). The
kernel drops it when the writer exits, however it exits, so a lock that is held
means a live writer, and a PID stamped in the file that is alive without the
lock means a reused PID. HDF5 locks with ``flock``, which does not interact
with these locks. Where OFD locks are missing, classic POSIX record locks are
used (released when the process closes any descriptor of the file: the writer
never reopens its own file while it writes).

Whether a run file has a live writer is decided here only (:func:`writer_alive`):
its lock is held, or -- for files of an older particledyn, which took no lock --
the writer PID stamped in the file (:func:`writer_stamp`) is a live process on
this host (:func:`unlocked_writer_alive`, which resume asks too).
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from collections.abc import Mapping

_FLOCK = "hhqqi4x"  # struct flock on 64-bit Linux: type, whence, start, len, pid
_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)
_GETLK = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)
_HELD: set[tuple[int, int]] = set()  # (device, inode) of the files this process holds locked
#: Attributes of the particledyn module group that name the file's last writer.
PID_ATTR, HOST_ATTR = "writer_pid", "writer_host"


class FileLockedError(OSError):
    """Another process holds the write lock of a run file (its run is live)."""


def _request(kind: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, 0, 0, 0)


def is_locked(path: str | os.PathLike, others_only: bool = False) -> bool:
    """Whether some process holds the write lock (``others_only``: a process other than this one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if others_only:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) in _HELD:
                return False
        answer = fcntl.fcntl(fd, _GETLK, _request(fcntl.F_WRLCK))
    except OSError:
        return False  # a filesystem without record locks: nothing can be known from them
    finally:
        os.close(fd)
    return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK


class WriteLock:
    """The exclusive write lock of one file, held from :meth:`acquire` until :meth:`release`.

    Parameters
    ----------
    path : str or PathLike
        An existing regular file, opened read-write to be locked (the descriptor
        is also what :meth:`fsync` syncs).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.fd: int | None = None
        #: Whether the filesystem enforces the lock (False: it has no record locks).
        self.enforced = False

    def acquire(self) -> WriteLock:
        """Take the lock; raise :class:`FileLockedError` when another process holds it."""
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.fcntl(fd, _SETLK, _request(fcntl.F_WRLCK))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (11, 13):  # EAGAIN, EACCES: held by another process
                raise FileLockedError(
                    f"{self.path!r} is being written by a live run (another process holds its write lock)"
                ) from None
            if exc.errno not in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: no locks here
                raise
            fd = os.open(self.path, os.O_RDWR)
        else:
            self.enforced = True
        self.fd = fd
        info = os.fstat(fd)
        self._key = (info.st_dev, info.st_ino)
        _HELD.add(self._key)
        return self

    def fsync(self) -> None:
        """Force the file's written data and metadata to the disk."""
        if self.fd is not None:
            os.fsync(self.fd)

    def __del__(self):  # a writer dropped without close must not keep its file locked
        self.release()

    def release(self) -> None:
        """Drop the lock (closing its descriptor); idempotent."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            _HELD.discard(self._key)
            os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_stamp() -> dict[str, object]:
    """The attributes a writer stamps into its file: this process's PID and host."""
    return {PID_ATTR: os.getpid(), HOST_ATTR: socket.gethostname()}


def stamped_writer_alive(module_attrs: Mapping) -> bool:
    """Whether the writer stamped in a file's module attributes is a live process on this host
    other than this one (a writer of an older particledyn, or a reused PID)."""
    pid, host = int(module_attrs.get(PID_ATTR, -1)), str(module_attrs.get(HOST_ATTR, ""))
    return host == socket.gethostname() and pid != os.getpid() and process_alive(pid)


def unlocked_writer_alive(module_attrs: Mapping, takes_locks: bool, locks_enforced: bool = True) -> bool:
    """Whether the stamped writer may still write a file whose lock is free: only where no lock
    can tell (its writer took none, ``takes_locks`` false: an older particledyn; or this
    filesystem enforces none) and its stamped PID is alive. Otherwise a live stamped PID is a
    writer that closed the file and has not exited yet (a rank of an aborted MPI job) or a
    reused PID."""
    return not (takes_locks and locks_enforced) and stamped_writer_alive(module_attrs)


def writer_alive(path: str | os.PathLike, module_attrs: Mapping, takes_locks: bool = True) -> bool:
    """Whether a live process writes ``path``: it holds the file's write lock, or
    :func:`unlocked_writer_alive` (``takes_locks`` false: its writer took no lock)."""
    return is_locked(path) or unlocked_writer_alive(module_attrs, takes_locks)
