"""The simulation loop with the particle state resident on a GPU.

:class:`DeviceSimulation` is a :class:`particledyn.Simulation` whose positions,
masses and optimizer state live on the device and are stepped by the GPU
kernel and optimizer. The host sees copies only at cadence:

* frames: at the sink's cadence, and only what it writes — a sink with a
  ``subset`` of particles gets a host array where only those rows were copied;
  optimizer state only when the sink writes it (``write_optimizer_state``);
* observers: at steps where one runs, a :class:`StepInfo` of host copies (one
  copy shared by all observers of that step), so every diagnostic works
  unchanged; heavy ones (Hessians, persistence) run on those host copies;
* checkpoints: host copies.
"""
from __future__ import annotations

import warnings

import numpy as np

from particledyn.deepsets import DeepSetsKernel
from particledyn.kernel import Kernel
from particledyn.kernels.two_layer import TwoLayerNet
from particledyn.observers import StepInfo
from particledyn.simulation import Simulation

from . import Backend, get_backend
from .cuda_optimizers import DeviceOptimizer, apply_step


class HostFallbackKernel(Kernel):
    """Runs a kernel with no GPU implementation on host copies, returning a device field."""

    def __init__(self, kernel: Kernel, backend: Backend):
        self.host, self.backend = kernel, backend
        self.dim, self.groups, self.is_gradient, self.name = kernel.dim, kernel.groups, kernel.is_gradient, kernel.name

    def context(self, step, rng, batch_size):
        return self.host.context(step, rng, batch_size)

    def field(self, positions, masses, context):
        to_host = self.backend.asnumpy
        return self.backend.asarray(self.host.field(to_host(positions), to_host(masses), context))

    def loss(self, positions, masses, context):
        to_host = self.backend.asnumpy
        return self.host.loss(to_host(positions), to_host(masses), context)


def to_device_kernel(kernel: Kernel, backend="cupy") -> Kernel:
    """The GPU version of ``kernel``: TwoLayerNet and DeepSetsKernel compile for the device;
    any other kernel runs on host copies each step (with a warning)."""
    backend = get_backend(backend)
    if isinstance(kernel, TwoLayerNet):
        from .cuda_two_layer import CudaTwoLayerNet

        return CudaTwoLayerNet(kernel, backend)
    if isinstance(kernel, DeepSetsKernel):
        from .cuda_deepsets import CudaDeepSetsKernel

        return CudaDeepSetsKernel(kernel, backend)
    warnings.warn(f"kernel {kernel.name!r} has no GPU implementation: its field runs on host copies of the "
                  f"positions at every step", RuntimeWarning, stacklevel=2)
    return HostFallbackKernel(kernel, backend)


class FrameStager:
    """Copies to the host what a sink will write of a frame, and nothing more."""

    def __init__(self, backend: Backend):
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


class DeviceSimulation(Simulation):
    """A :class:`~particledyn.Simulation` stepped on the GPU (``backend='cupy'``) or in the
    CUDA simulator (``backend='cudasim'``).

    Takes the same arguments as :class:`~particledyn.Simulation` plus ``backend``;
    initial positions, masses and the optimizer's hyperparameters are checked on
    the host, then the state moves to the device. ``state.positions`` and the
    optimizer state are device arrays; :attr:`positions` is a host copy.
    ``self.kernel`` stays the host kernel (diagnostics call its ``loss``/``hvp``
    on host copies); ``self.device_kernel`` steps.
    """

    def __init__(self, kernel: Kernel, positions, optimizer=None, backend="cupy", **options):
        self.backend = get_backend(backend)
        if not self.backend.on_device:
            raise ValueError(f"backend={self.backend.name!r}: expected 'cupy' or 'cudasim' for a DeviceSimulation")
        super().__init__(kernel, positions, optimizer, **options)
        self.device_kernel = to_device_kernel(kernel, self.backend)
        self.device_optimizer = DeviceOptimizer(self.optimizer, self.backend)
        self.stager = FrameStager(self.backend)
        self._upload()

    def _upload(self):
        state, to_device = self.state, self.backend.asarray
        state.positions = to_device(state.positions)
        state.masses = to_device(state.masses)
        state.optimizer_state = {k: to_device(v) for k, v in state.optimizer_state.items()}

    @property
    def positions(self) -> np.ndarray:
        """A host copy of the current positions (N, D)."""
        return self.backend.asnumpy(self.state.positions)

    def _update(self, t, lr):
        """The update on the device: field, direction and non-finite count (device arrays)."""
        state = self.state
        field = self.device_kernel.field(state.positions, state.masses, self.context(t))
        direction = self.device_optimizer.direction(state.positions, field, state.optimizer_state, t)
        return field, direction, apply_step(self.backend, state.positions, direction, lr)

    def _write_frame(self):
        state = self.state
        self.stager.write_frame(self.sink, state.step, state.time, state.positions, state.optimizer_state)

    def _info(self, previous, field, direction, lr):
        state, to_host = self.state, self.backend.asnumpy
        with_previous = previous is not None
        return StepInfo(step=state.step, time=state.time, positions=to_host(state.positions),
                        masses=to_host(state.masses), lr=lr,
                        previous_positions=to_host(previous) if with_previous else None,
                        update=to_host(direction) if with_previous else None,
                        field=to_host(field) if with_previous else None, simulation=self)

    def checkpoint(self) -> dict:
        """As :meth:`Simulation.checkpoint`, with host copies of the device arrays."""
        state, to_host = self.state, self.backend.asnumpy
        out = {
            "step": state.step, "time": state.time, "seed": state.seed,
            "positions": to_host(state.positions), "masses": to_host(state.masses),
            "optimizer_state": {k: to_host(v) for k, v in state.optimizer_state.items()},
            "observers": {o.name: o.state_dict() for o in self.observers},
            "backend": self.backend.name,
        }
        return out

    def restore(self, checkpoint: dict) -> "DeviceSimulation":
        """Continue from a checkpoint (of either backend): loads it on the host, then uploads it."""
        self.state.positions = self.positions
        self.state.masses = self.backend.asnumpy(self.state.masses)
        super().restore(checkpoint)
        self._upload()
        return self
