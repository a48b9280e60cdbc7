"""Array backends: the strategy a :class:`~particledyn.Simulation` delegates its arrays to.

* ``"numba"`` — the default: numpy arrays on the host, numba CPU loops.
* ``"cupy"`` — the state is resident on an NVIDIA GPU as cupy arrays; the
  kernels are ``numba.cuda`` kernels launched on those arrays through
  ``__cuda_array_interface__`` (see ``docs/gpu.md``).
* ``"cudasim"`` — the same ``numba.cuda`` kernels run in numba's CUDA simulator
  on numpy arrays: slow, but it tests the GPU code paths on any machine. It
  needs ``NUMBA_ENABLE_CUDASIM=1`` in the environment before numba is imported.

A backend decides where the state lives (:meth:`Backend.to_backend`,
:meth:`Backend.to_host`, :meth:`Backend.asnumpy`), which rules step it
(:meth:`Backend.prepare`: the kernel's and optimizer's ``to_device`` twins on a
device), how the update is applied (:meth:`Backend.apply_step`) and how frames
reach the sink (:meth:`Backend.frame_writer`). The ``numba.cuda`` kernels also use
``xp`` (numpy or cupy), ``asarray``, ``launch_view``, ``context_to_device`` and
``synchronize``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# particledyn is not on a package index: the extras install from the repository checkout
GPU_INSTALL = "in the particledyn checkout: pip install -e '.[gpu]'"

BACKENDS = ("numba", "cupy", "cudasim")

_INSTANCES: dict[str, Backend] = {}


class GpuUnavailableError(RuntimeError):
    """The GPU backend was asked for on a machine that cannot run it."""


class Backend:
    """Host arrays (numpy) stepped by the CPU numba kernels; base class of the device backends.

    Attributes
    ----------
    name : str
    xp : module
        The array module of this backend's arrays.
    on_device : bool
        True when the state is stepped by ``numba.cuda`` kernels.
    """

    name = "numba"
    on_device = False

    def __init__(self):
        self.xp: Any = np

    # -- where the arrays live --------------------------------------------------
    def asarray(self, array, dtype=None):
        """A C-contiguous copy of ``array`` in this backend's memory."""
        return np.array(array, dtype=dtype, order="C", copy=True)

    def asnumpy(self, array) -> np.ndarray:
        """A host (numpy) copy of a backend array."""
        return np.array(array, copy=True)

    def to_backend(self, array):
        """``array`` in this backend's memory, C-contiguous; no copy when it already is."""
        return self.xp.ascontiguousarray(array)

    def to_host(self, array) -> np.ndarray:
        """``array`` as a host array: the array itself on the host, a copy from a device."""
        return array

    # -- what steps them --------------------------------------------------------
    def prepare(self, kernel, optimizer):
        """The (kernel, optimizer) that step this backend's arrays: the host ones here."""
        return kernel, optimizer

    def apply_step(self, positions, direction, lr: float) -> int:
        """positions += lr * direction in place; returns the number of non-finite entries."""
        from particledyn.optimizers import apply_step

        return int(apply_step(positions.ravel(), direction.ravel(), positions.dtype.type(lr)))

    def frame_writer(self):
        """An object whose ``write_frame(sink, step, time, positions, optimizer_state)``
        hands a frame to a sink (one per simulation)."""
        from .frames import DirectFrames

        return DirectFrames()

    # -- for the numba.cuda kernels ---------------------------------------------
    def launch_view(self, array):
        """The object a ``numba.cuda`` kernel is launched with for ``array``."""
        return array

    def context_to_device(self, context):
        """A per-step context (tuple of arrays and scalars) ready to pass to a kernel."""
        return context

    def synchronize(self) -> None:
        """Wait for queued device work (nothing to wait for on the host)."""

    def __repr__(self):
        return f"<particledyn backend {self.name!r}>"


class DeviceBackend(Backend):
    """Base of the backends whose state is stepped by ``numba.cuda`` kernels: the kernel and
    optimizer step through their ``to_device`` twins, the host sees copies only."""

    on_device = True

    def to_host(self, array) -> np.ndarray:
        return self.asnumpy(array)

    def prepare(self, kernel, optimizer):
        return kernel.to_device(self), optimizer.to_device(self)

    def apply_step(self, positions, direction, lr: float) -> int:
        from particledyn.optimizers_cuda import apply_step

        return apply_step(self, positions, direction, lr)

    def frame_writer(self):
        from .frames import FrameStager

        return FrameStager(self)

    def context_to_device(self, context):
        from numba import cuda

        return tuple(
            cuda.to_device(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v for v in context
        )


class CudaSimBackend(DeviceBackend):
    """numpy arrays stepped by the ``numba.cuda`` kernels in numba's CUDA simulator."""

    name = "cudasim"

    def __init__(self):
        super().__init__()
        from numba.core import config

        if not config.ENABLE_CUDASIM:
            raise GpuUnavailableError(
                "backend='cudasim' needs NUMBA_ENABLE_CUDASIM=1 in the environment before numba is imported"
            )


class CupyBackend(DeviceBackend):
    """cupy arrays on the current CUDA device, stepped by ``numba.cuda`` kernels."""

    name = "cupy"

    def __init__(self):
        self.xp = _import_cupy()
        from numba.core import config

        if config.ENABLE_CUDASIM:
            raise GpuUnavailableError(
                "backend='cupy' needs an NVIDIA GPU with CUDA: NUMBA_ENABLE_CUDASIM=1 is set, so numba.cuda "
                "runs the simulator (use backend='cudasim' or unset it)"
            )
        from numba import cuda

        if not cuda.is_available():
            raise GpuUnavailableError(
                "backend='cupy' needs an NVIDIA GPU with CUDA: numba.cuda cannot use the device "
                f"(install numba-cuda[cu12]: {GPU_INSTALL})"
            )
        self._cuda = cuda

    def asarray(self, array, dtype=None):
        return self.xp.array(array, dtype=dtype, order="C", copy=True)

    def asnumpy(self, array) -> np.ndarray:
        return self.xp.asnumpy(array)

    def launch_view(self, array):
        # sync=False: cupy and numba both queue on the legacy default stream, so the
        # per-argument stream synchronisation numba would otherwise do is not needed.
        return self._cuda.as_cuda_array(array, sync=False)

    def synchronize(self) -> None:
        self.xp.cuda.Device().synchronize()


def _import_cupy():
    try:
        import cupy
    except ImportError as error:
        raise GpuUnavailableError(
            f"backend='cupy' needs an NVIDIA GPU with CUDA: cupy is not installed ({GPU_INSTALL}; {error})"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # cupy raises CUDARuntimeError, or ImportError-like errors for missing libs
        raise GpuUnavailableError(
            f"backend='cupy' needs an NVIDIA GPU with CUDA: no CUDA device found ({error})"
        ) from None
    if count < 1:
        raise GpuUnavailableError(
            "backend='cupy' needs an NVIDIA GPU with CUDA: no CUDA device found (cudaGetDeviceCount() = 0)"
        )
    return cupy


def get_backend(name: str | Backend = "numba") -> Backend:
    """The backend called ``name`` ('numba', 'cupy' or 'cudasim'), created once.

    Raises
    ------
    ValueError
        Unknown name.
    GpuUnavailableError
        'cupy' without cupy or a CUDA device; 'cudasim' without NUMBA_ENABLE_CUDASIM=1.
    """
    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r}: expected one of {BACKENDS}")
    if name not in _INSTANCES:
        kinds: dict[str, type[Backend]] = {"numba": Backend, "cupy": CupyBackend, "cudasim": CudaSimBackend}
        _INSTANCES[name] = kinds[name]()
    return _INSTANCES[name]


def gpu_available() -> bool:
    """True when backend 'cupy' can be created here (cupy, a CUDA device, numba.cuda)."""
    try:
        get_backend("cupy")
    except GpuUnavailableError:
        return False
    return True


__all__ = [
    "BACKENDS",
    "Backend",
    "CudaSimBackend",
    "CupyBackend",
    "DeviceBackend",
    "GpuUnavailableError",
    "get_backend",
    "gpu_available",
]
