"""Repairing a run file that a killed writer left open, so that plain h5py and pyh5md read it.

A writer that was killed leaves the superblock's "open for writing" flags set
(plain HDF5 readers then refuse the file and suggest ``h5clear``) and may leave
rows past each time series' commit marker. :func:`repair` clears the flags as
``h5clear -s --increment`` does (:func:`particledyn.io.superblock.clear_write_flags`),
cuts every series to its committed records (as a resume does) and closes the
file cleanly, in a copy ``RUN.repaired.h5`` or in place. It refuses a file whose
live writer holds the write lock. :func:`particledyn.io.open_run` reads such a
file without repair.
"""

from __future__ import annotations

import os
import shutil

import h5py

from .integrity import check_structure
from .layout import all_series
from .locking import FileLockedError, WriteLock, is_locked
from .opening import check_signature
from .superblock import clear_write_flags, write_flags


def repair_hint(path) -> str | None:
    """The one-line note for a file whose write flags are set (None for a cleanly closed file)."""
    path = os.fspath(path)
    if write_flags(path) == 0:
        return None
    if is_locked(path):
        return (
            f"{path!r} is being written by a live run: plain h5py and pyh5md cannot open it "
            "until the run ends; read it meanwhile with particledyn.open_run"
        )
    return (
        f"{path!r} was left open by a killed writer: plain h5py and pyh5md refuse it; "
        f"`particledyn repair {path}` writes a readable copy (particledyn.open_run reads it as is)"
    )


def default_output(path: str) -> str:
    """``RUN.repaired.h5`` beside ``RUN.h5``."""
    root, ext = os.path.splitext(path)
    return f"{root}.repaired{ext or '.h5'}"


def repair(path, output=None, in_place: bool = False) -> str | None:
    """Make a killed writer's run file readable by any HDF5 reader.

    Parameters
    ----------
    path : str or PathLike
        The run file.
    output : str or PathLike, optional
        Where the repaired copy goes (default ``RUN.repaired.h5``); must not exist.
    in_place : bool
        Repair ``path`` itself instead of a copy.

    Returns
    -------
    str or None
        The repaired file's path, or None when ``path`` was closed cleanly (nothing to do).

    Raises
    ------
    FileLockedError
        A live run is writing the file.
    FileExistsError
        ``output`` exists.
    OSError
        The file is damaged beyond what the repair handles (the source is left as it was).
    """
    from .h5md_writer import _create_hidden, _Series

    path = os.fspath(path)
    check_signature(path)
    if write_flags(path) == 0:
        return None
    if in_place and output is not None:
        raise ValueError("repair: give either an output path or in_place=True, not both")
    target = path if in_place else os.fspath(output or default_output(path))
    if not in_place and os.path.lexists(target):
        raise FileExistsError(f"{target!r} exists; remove it or choose another output path")
    try:
        lock = WriteLock(path).acquire()  # no writer can resume the file while it is repaired
    except FileLockedError:
        raise FileLockedError(
            f"{path!r} is being written by a live run (it holds the file's write "
            "lock); repair it after the run stops"
        ) from None
    work = path
    try:
        if in_place:
            from .reader import open_run

            open_run(path).close()  # readable as it is (structure, metadata) before a byte changes
        else:
            work = _create_hidden(os.path.dirname(os.path.abspath(target)), os.path.basename(target))
            shutil.copyfile(path, work)
        try:
            clear_write_flags(work)
            with h5py.File(work, "r+", libver="latest") as f:
                check_structure(f)
                for _, group in all_series(f):
                    series = _Series(group)
                    series.truncate(series.length)
            with h5py.File(work, "r") as f:  # what plain readers do: must open now
                check_structure(f)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise OSError(f"cannot repair {path!r}: {reason} (damaged?)") from None
        if not in_place:
            os.replace(work, target)
            work = path
    finally:
        if work != path and os.path.exists(work):
            os.remove(work)
        lock.release()
    return target
