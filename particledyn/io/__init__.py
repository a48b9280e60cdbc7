"""HDF5 (H5MD 1.1) output: stream a run with :class:`H5MDSink`, read it with :func:`open_run`.

A notebook can open a file while its run writes it (HDF5 SWMR) and after the
run was killed; see :mod:`particledyn.io.layout` for the file layout,
:mod:`particledyn.io.h5md_writer` for the rules of writing,
:mod:`particledyn.io.integrity` for record checksums and refused objects,
:mod:`particledyn.io.locking` for the writer's advisory lock,
:mod:`particledyn.io.opening` for how readers open files without hanging,
:mod:`particledyn.io.repair` for making a killed writer's file readable by plain
HDF5 readers and :mod:`particledyn.io.export` for ``Run.to_pandas`` / ``Run.to_xarray``.
"""

from .checkpoint_codec import decode_checkpoint, encode_checkpoint
from .h5md_writer import H5MDSink, H5MDWriteError, LateSeriesError
from .integrity import DamagedRecordError
from .locking import FileLockedError
from .opening import NotARunFileError
from .reader import Run, open_run

__all__ = [
    "H5MDSink",
    "H5MDWriteError",
    "LateSeriesError",
    "Run",
    "open_run",
    "encode_checkpoint",
    "decode_checkpoint",
    "DamagedRecordError",
    "FileLockedError",
    "NotARunFileError",
]
