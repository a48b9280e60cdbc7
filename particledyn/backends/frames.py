"""How a simulation's frames reach its sink: directly on the host, staged from a device."""

from __future__ import annotations

import numpy as np


class DirectFrames:
    """Hands the sink the live host arrays (the sink copies what it keeps)."""

    def write_frame(self, sink, step, time, positions, optimizer_state):
        """``sink.write_frame`` with the arrays as they are."""
        sink.write_frame(step, time, positions, optimizer_state)


class FrameStager:
    """Copies to the host what a sink will write of a device frame, and nothing more.

    A sink with ``every`` skips the other steps; with ``keep_frames = False`` it
    gets no positions; with a ``subset`` of particles it gets a full-shape host
    array where only those rows were copied; optimizer state only when it writes it
    (``write_optimizer_state``).
    """

    def __init__(self, backend):
        self.backend = backend
        self._buffers: dict = {}

    def _rows(self, name, array, subset):
        if subset is None:
            return self.backend.asnumpy(array)
        # A full-shape host array with only the subset's rows filled: the sink reads
        # those rows alone; np.empty leaves the other pages untouched.
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != array.shape or buffer.dtype != array.dtype:
            buffer = self._buffers[name] = np.empty(array.shape, dtype=array.dtype)
        buffer[subset] = self.backend.asnumpy(array[self.backend.xp.asarray(subset)])
        return buffer

    def write_frame(self, sink, step, time, positions, optimizer_state):
        """Hand ``sink`` host copies of the parts of this frame it stores."""
        every = getattr(sink, "every", 1)
        if every and step % every:
            return
        if getattr(sink, "keep_frames", True) is False:
            sink.write_frame(step, time, np.empty((0, positions.shape[1]), positions.dtype), {})
            return
        subset = getattr(sink, "subset", None)
        host_positions = self._rows("position", positions, subset)
        states = {}
        if getattr(sink, "write_optimizer_state", True):
            states = {name: self._rows(name, array, subset) for name, array in optimizer_state.items()}
        sink.write_frame(step, time, host_positions, states)
