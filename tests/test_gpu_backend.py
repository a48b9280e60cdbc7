"""Backend selection, the no-GPU errors, frame staging and the skip-or-fail helper (CPU only)."""

import sys
import types

import gpu_support
import numpy as np
import pytest

import particledyn.backends as backends
from particledyn import GD, MemorySink, Optimizer, Simulation
from particledyn.backends import Backend, GpuUnavailableError, get_backend
from particledyn.backends.frames import FrameStager
from particledyn.kernels import TwoLayerNet
from particledyn.optimizers_cuda import DeviceGD


@pytest.fixture
def fresh_backends(monkeypatch):
    monkeypatch.setattr(backends, "_INSTANCES", {})


def test_numba_backend_is_host_numpy():
    backend = get_backend("numba")
    assert backend is get_backend("numba") and backend.xp is np and not backend.on_device
    a = np.arange(6.0).reshape(2, 3)
    copy = backend.asarray(a)
    assert np.array_equal(copy, a) and copy is not a and copy.flags.c_contiguous
    assert backend.to_backend(a) is a and backend.to_host(a) is a  # the host state is never copied
    assert np.array_equal(backend.to_backend(a.T), a.T) and backend.to_backend(a.T).flags.c_contiguous


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match=r"backend='torch': expected one of \('numba', 'cupy', 'cudasim'\)"):
        get_backend("torch")


def test_cupy_backend_without_cupy_is_a_one_line_error(fresh_backends, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(GpuUnavailableError) as info:
        get_backend("cupy")
    message = str(info.value)
    assert message.startswith("backend='cupy' needs an NVIDIA GPU with CUDA: cupy is not installed")
    assert "\n" not in message


def test_cupy_backend_without_a_device_is_a_one_line_error(fresh_backends, monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(
        GpuUnavailableError,
        match=r"^backend='cupy' needs an NVIDIA GPU with CUDA: no CUDA device "
        r"found \(cudaErrorNoDevice",
    ):
        get_backend("cupy")
    zero = types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 0))
    )
    monkeypatch.setitem(sys.modules, "cupy", zero)
    with pytest.raises(GpuUnavailableError, match="no CUDA device found"):
        get_backend("cupy")


def test_cudasim_backend_needs_the_simulator(fresh_backends):
    from numba.core import config

    assert not config.ENABLE_CUDASIM  # this process imported numba without the simulator
    with pytest.raises(GpuUnavailableError, match="NUMBA_ENABLE_CUDASIM=1"):
        get_backend("cudasim")


def test_simulation_steps_through_its_backend():
    net = TwoLayerNet(np.ones((4, 2)), np.zeros(4))
    sim = Simulation(net, np.zeros((3, 3)))
    assert sim.backend is get_backend("numba")
    assert sim.stepping_kernel is sim.kernel and sim.stepping_optimizer is sim.optimizer
    assert sim.positions is sim.state.positions
    checkpoint = sim.checkpoint()
    assert checkpoint["backend"] == "numba" and checkpoint["threads"] >= 1
    with pytest.raises(
        ValueError, match=r"^backend='torch': expected one of \('numba', 'cupy', 'cudasim'\)$"
    ):
        Simulation(net, np.zeros((3, 3)), backend="torch")


def test_optimizers_without_a_gpu_twin_are_refused():
    class Custom(Optimizer):
        name = "custom"

    class Nesterov(GD):  # another rule under GD's name: GD's twin would step the wrong update
        def direction(self, positions, field, state, step):
            return field

    with pytest.raises(
        TypeError, match="optimizer 'custom' .Custom. has no GPU version: expected GD, SGD, Momentum or Adam"
    ):
        Custom().to_device(get_backend("numba"))
    with pytest.raises(TypeError, match="expected a GD whose direction is GD's own for DeviceGD"):
        Nesterov().to_device(get_backend("numba"))
    assert isinstance(GD().to_device(get_backend("numba")), DeviceGD)


class _SubsetSink(MemorySink):
    def __init__(self, every, subset, write_optimizer_state):
        super().__init__()
        self.every, self.subset, self.write_optimizer_state = every, subset, write_optimizer_state
        self.states = []

    def write_frame(self, step, time, positions, optimizer_state):
        self.steps.append(step)
        self.frames.append(positions[self.subset].copy() if self.subset is not None else positions.copy())
        self.states.append({k: v[self.subset].copy() for k, v in optimizer_state.items()})


def test_frame_stager_copies_only_what_the_sink_writes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    state = {"adam_m": rng.normal(size=(50, 3))}
    subset = np.array([3, 10, 49])
    stager = FrameStager(Backend())
    sink = _SubsetSink(every=2, subset=subset, write_optimizer_state=True)
    for step in range(4):
        stager.write_frame(sink, step, 0.1 * step, x, state)
    assert sink.steps == [0, 2]
    assert np.array_equal(sink.frames[0], x[subset])
    assert np.array_equal(sink.states[1]["adam_m"], state["adam_m"][subset])
    quiet = _SubsetSink(every=1, subset=None, write_optimizer_state=False)
    stager.write_frame(quiet, 0, 0.0, x, state)
    assert np.array_equal(quiet.frames[0], x) and quiet.states == [{}]


def test_requires_gpu_skips_or_fails(monkeypatch):
    ran = []

    @gpu_support.requires_gpu
    def needs_a_gpu():
        ran.append(True)

    monkeypatch.setattr(gpu_support, "gpu_unavailable_reason", lambda: "no CUDA device found")
    monkeypatch.delenv(gpu_support.REQUIRE_GPU_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs a GPU: no CUDA device found"):
        needs_a_gpu()
    monkeypatch.setenv(gpu_support.REQUIRE_GPU_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="PARTICLEDYN_REQUIRE_GPU=1 but no usable GPU"):
        needs_a_gpu()
    monkeypatch.setattr(gpu_support, "gpu_unavailable_reason", lambda: None)
    needs_a_gpu()
    assert ran == [True]


PACKAGE = __import__("pathlib").Path(backends.__file__).resolve().parent.parent


def _module_imports(source: str, package: str) -> set[str]:
    """The modules (and names) a module of ``package`` imports at its top level, relative
    imports resolved."""
    import ast

    out = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out |= {target} | {f"{target}.{a.name}" for a in node.names}
    return out


def test_the_backends_do_not_import_the_loop_back():
    # issue 16.4: the backend is a strategy the loop holds, no subclass of it (no import circle)
    assert not (PACKAGE / "backends" / "device_simulation.py").exists()
    assert not hasattr(backends, "DeviceSimulation")
    for path in sorted((PACKAGE / "backends").glob("*.py")):
        found = _module_imports(path.read_text(encoding="utf-8"), "particledyn.backends")
        assert "particledyn.simulation" not in found, path.name
    loop = _module_imports((PACKAGE / "simulation.py").read_text(encoding="utf-8"), "particledyn")
    assert "particledyn.backends" in loop


def test_the_import_scan_resolves_relative_imports():
    found = _module_imports(
        "from ..simulation import Simulation\nfrom . import frames\n", "particledyn.backends"
    )
    assert {
        "particledyn.simulation",
        "particledyn.simulation.Simulation",
        "particledyn.backends.frames",
    } <= found
