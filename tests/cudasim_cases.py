"""The GPU kernels' logic, run in numba's CUDA simulator on numpy arrays (no GPU needed).

Not collected by the main pytest run (numba is imported there without the
simulator): ``tests/test_gpu_cudasim.py`` runs this module in a subprocess with
``NUMBA_ENABLE_CUDASIM=1``; by hand:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cudasim_cases.py

The simulator runs every CUDA thread as a Python thread, so sizes are small.
"""

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":  # a misuse, not a skip: the module means nothing without it
    raise RuntimeError("run this module with NUMBA_ENABLE_CUDASIM=1 (see tests/test_gpu_cudasim.py)")

from particledyn import (
    GD,
    SGD,
    Adam,
    DeepSetsKernel,
    DivergenceError,
    Momentum,
    Observer,
    Simulation,
    deepsets_cuda,
)
from particledyn.backends import get_backend
from particledyn.backends.cuda_common import SEQUENTIAL_ROWS, sum_rows
from particledyn.deepsets import deepsets_reference
from particledyn.deepsets_cuda import CudaDeepSetsKernel
from particledyn.io import H5MDSink, open_run
from particledyn.kernels import TwoLayerNet, two_layer_cuda
from particledyn.kernels.two_layer_cuda import CudaTwoLayerNet
from particledyn.kernels.two_layer_reference import field_reference, forward_reference, loss_reference
from particledyn.optimizers_cuda import DeviceAdam, DeviceGD, DeviceMomentum, apply_step

SIM = get_backend("cudasim")


def relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(np.asarray(b))), 1e-300))


def make_net(rng, batch=16, d=2, activation="sigmoid", loss="mse", scaling="standard", n_outputs=1):
    z = rng.normal(size=(batch, d))
    if loss == "cross_entropy":
        y = rng.integers(0, n_outputs, size=batch)
        y[:n_outputs] = np.arange(n_outputs)
    else:
        y = rng.normal(size=(batch, n_outputs)) if n_outputs > 1 else np.sin(z[:, 0])
    return TwoLayerNet(z, y, activation=activation, loss=loss, scaling=scaling)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# -- the fixed-order reduction ------------------------------------------------------
@pytest.mark.parametrize("width", [5, SEQUENTIAL_ROWS + 200])
def test_sum_rows_matches_exact_sums(rng, width):
    partial = rng.normal(size=(3, width))
    out = sum_rows(SIM, partial)
    exact = [math.fsum(row) for row in partial]
    assert relative(out, exact) < 1e-14


# -- two-layer net: forward and field ------------------------------------------------
@pytest.mark.parametrize(
    "activation,loss,scaling,n_outputs",
    [
        ("sigmoid", "mse", "standard", 1),
        ("tanh", "mse", "mean_field", 2),
        ("relu", "cross_entropy", "standard", 3),
    ],
)
def test_two_layer_field_matches_reference_and_numba(rng, activation, loss, scaling, n_outputs):
    net = make_net(rng, activation=activation, loss=loss, scaling=scaling, n_outputs=n_outputs)
    x = rng.normal(size=(60, net.dim))
    m = rng.uniform(0.5, 1.5, size=60) / 60
    ctx = net.evaluation_context()
    gpu = CudaTwoLayerNet(net, SIM)
    outputs, _ = forward_reference(x, m, *[ctx[0]], activation, scaling)
    assert relative(gpu.outputs(x, m, ctx[0]), outputs) < 1e-12
    expected = field_reference(x, m, ctx[0], ctx[1], activation, scaling, loss)
    field = gpu.field(x, m, ctx)
    assert isinstance(field, np.ndarray) and field.shape == x.shape and field.dtype == x.dtype
    assert relative(field, expected) < 1e-10
    if activation == "sigmoid":  # the numba backend (its compilation costs seconds per activation)
        assert relative(field, net.field(x, m, ctx)) < 1e-10
    assert gpu.loss(x, m, ctx) == pytest.approx(
        loss_reference(x, m, *ctx, activation, scaling, loss), rel=1e-12
    )


def test_two_layer_several_chunks_and_batch_tiles(rng, monkeypatch):
    """More particles than a forward chunk and a batch wider than a tile: every loop bound is crossed."""
    monkeypatch.setattr(two_layer_cuda, "CHUNK", 40)
    net = make_net(rng, batch=130, d=3, scaling="mean_field")
    x = rng.normal(size=(90, net.dim))
    m = np.full(90, 1 / 90)
    ctx = net.evaluation_context()
    field = CudaTwoLayerNet(net, SIM).field(x, m, ctx)
    assert relative(field, field_reference(x, m, *ctx, "sigmoid", "mean_field", "mse")) < 1e-10


def test_two_layer_float32_stays_float32(rng):
    net = make_net(rng, activation="tanh")
    x = rng.normal(size=(40, net.dim)).astype(np.float32)
    m = np.full(40, 1 / 40)
    ctx = net.evaluation_context()
    field = CudaTwoLayerNet(net, SIM).field(x, m, ctx)
    assert field.dtype == np.float32
    expected = field_reference(x.astype(np.float64), m, *ctx, "tanh", "standard", "mse")
    assert relative(field, expected) < 1e-5


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_two_layer_field_is_permutation_equivariant(seed):
    rng = np.random.default_rng(seed)
    net = make_net(rng, batch=8)
    gpu = CudaTwoLayerNet(net, SIM)
    x = rng.normal(size=(20, net.dim))
    m = np.full(20, 1 / 20)
    perm = rng.permutation(20)
    ctx = net.evaluation_context()
    assert relative(gpu.field(x[perm], m[perm], ctx), gpu.field(x, m, ctx)[perm]) < 1e-12


def test_two_layer_field_is_bitwise_deterministic(rng, monkeypatch):
    monkeypatch.setattr(two_layer_cuda, "CHUNK", 16)
    net = make_net(rng)
    gpu = CudaTwoLayerNet(net, SIM)
    x = rng.normal(size=(50, net.dim))
    m = np.full(50, 1 / 50)
    ctx = net.evaluation_context()
    assert np.array_equal(gpu.field(x, m, ctx), gpu.field(x, m, ctx))


def test_two_layer_cuda_rejects_a_host_backend(rng):
    with pytest.raises(ValueError, match="expected a device backend"):
        CudaTwoLayerNet(make_net(rng), "numba")
    with pytest.raises(TypeError, match="TwoLayerNet"):
        CudaTwoLayerNet(object(), SIM)


# -- optimizers and the step -------------------------------------------------------
@pytest.mark.parametrize(
    "optimizer",
    [
        GD(weight_decay=0.1),
        Momentum(beta=0.8, weight_decay=0.01),
        Adam(beta1=0.8, beta2=0.9, weight_decay=0.05),
    ],
)
def test_device_optimizers_match_host(rng, optimizer):
    x = rng.normal(size=(30, 3))
    device = optimizer.to_device(SIM)
    assert type(device) is {GD: DeviceGD, Momentum: DeviceMomentum, Adam: DeviceAdam}[type(optimizer)]
    host_state, device_state = optimizer.init_state(x), device.init_state(x)
    for step in range(3):
        u = rng.normal(size=x.shape)
        expected = optimizer.direction(x, u, host_state, step)
        got = device.direction(x, u, device_state, step)
        assert relative(got, expected) < 1e-14
        for name in host_state:
            assert relative(device_state[name], host_state[name]) < 1e-14


def test_apply_step_counts_non_finite_entries(rng):
    x = rng.normal(size=(10, 3))
    direction = np.ones_like(x)
    direction[2, 1] = np.inf
    direction[7, 0] = np.nan
    expected = x + 0.5 * direction
    assert apply_step(SIM, x, direction, 0.5) == 2
    assert np.array_equal(x, expected, equal_nan=True)


# -- whole runs: the GPU backend against the numba backend ---------------------------
@pytest.mark.parametrize("optimizer,batch_size", [(GD, None), (Momentum, None), (Adam, 8), (SGD, 8)])
def test_device_simulation_matches_numba_backend(rng, optimizer, batch_size):
    net = make_net(rng, batch=16, scaling="mean_field")
    x0 = rng.normal(size=(50, net.dim))
    options = dict(lr=0.5, seed=3, batch_size=batch_size, frame_every=2)
    cpu = Simulation(net, x0, optimizer(), **options)
    gpu = Simulation(net, x0, optimizer(), **options, backend="cudasim")
    cpu.run(3, progress=False)
    gpu.run(3, progress=False)
    assert relative(gpu.positions, cpu.positions) < 1e-10
    for name, value in cpu.state.optimizer_state.items():
        assert relative(gpu.state.optimizer_state[name], value) < 1e-10
    assert gpu.sink.steps == cpu.sink.steps == [0, 2]
    assert relative(gpu.sink.frames[1], cpu.sink.frames[1]) < 1e-10


class _Recorder(Observer):
    name = "recorder"
    needs_previous = True

    def observe(self, info):
        assert type(info.positions) is np.ndarray  # observers see host copies
        moved = (
            0.0
            if info.previous_positions is None
            else float(np.max(np.abs(info.positions - info.previous_positions)))
        )
        return {"mean": info.positions.mean(axis=0), "moved": moved}


def test_device_simulation_observers_checkpoint_and_resume(rng):
    net = make_net(rng)
    x0 = rng.normal(size=(40, net.dim))
    full = Simulation(net, x0, Adam(), backend="cudasim", lr=0.1, observers=[_Recorder(every=2)])
    full.run(4, progress=False)
    steps, means = full.sink.series("recorder", "mean")
    assert list(steps) == [0, 2, 4]
    assert np.allclose(means[-1], full.positions.mean(axis=0), rtol=0, atol=1e-15)

    first = Simulation(net, x0, Adam(), backend="cudasim", lr=0.1)
    first.run(2, progress=False)
    checkpoint = first.checkpoint()
    assert all(type(v) is np.ndarray for v in checkpoint["optimizer_state"].values())
    resumed = Simulation(net, x0, Adam(), backend="cudasim", lr=0.1).restore(checkpoint)
    resumed.run(2, progress=False)
    assert np.array_equal(resumed.positions, full.positions)


def test_one_checkpoint_schema_and_resume_across_backends(rng):
    net = make_net(rng)
    x0 = rng.normal(size=(20, net.dim))
    cpu = Simulation(net, x0, Adam(), lr=0.1, observers=[_Recorder(every=2)]).run(2, progress=False)
    gpu = Simulation(net, x0, Adam(), lr=0.1, observers=[_Recorder(every=2)], backend="cudasim")
    gpu.run(2, progress=False)
    on_cpu, on_gpu = cpu.checkpoint(), gpu.checkpoint()
    assert on_cpu.keys() == on_gpu.keys()
    assert (on_cpu["backend"], on_gpu["backend"]) == ("numba", "cudasim") and on_cpu["threads"] == on_gpu[
        "threads"
    ]
    full = Simulation(net, x0, Adam(), lr=0.1).run(4, progress=False)
    gpu_to_cpu = Simulation(net, x0, Adam(), lr=0.1).restore(on_gpu).run(2, progress=False)
    cpu_to_gpu = Simulation(net, x0, Adam(), lr=0.1, backend="cudasim").restore(on_cpu).run(2, progress=False)
    assert relative(gpu_to_cpu.positions, full.positions) < 1e-10
    assert relative(cpu_to_gpu.positions, full.positions) < 1e-10


class _Attraction(DeepSetsKernel):
    """A kernel bringing its own device twin: the simulation steps with whatever ``to_device`` returns."""

    twins: list = []

    def to_device(self, backend):
        twin = super().to_device(backend)
        self.twins.append(twin)
        return twin


def test_a_kernel_chooses_its_own_device_twin(rng):
    import warnings

    kernel = _Attraction(_phi, _psi, dim=2, agg_dim=3, context=(np.array([0.3]),))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no host fallback warning
        gpu = Simulation(kernel, rng.normal(size=(10, 2)), GD(), lr=0.1, backend="cudasim")
    assert gpu.stepping_kernel is kernel.twins[-1] and isinstance(gpu.stepping_kernel, CudaDeepSetsKernel)
    assert gpu.kernel is kernel and isinstance(gpu.stepping_optimizer, DeviceGD)
    assert type(gpu.state.positions) is np.ndarray and gpu.positions is not gpu.state.positions


def test_device_simulation_stops_at_a_step_boundary_on_a_signal(rng):
    import signal

    from particledyn.interrupts import Interrupted

    net = make_net(rng)
    x0 = rng.normal(size=(30, net.dim))
    full = Simulation(net, x0, Adam(), backend="cudasim", lr=0.1)
    full.run(4, progress=False)
    stopped = Simulation(net, x0, Adam(), backend="cudasim", lr=0.1)
    update = stopped._update

    def signalled(t, lr):  # SIGINT after the in-place device update of step 2
        out = update(t, lr)
        if t == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    stopped._update = signalled
    with pytest.raises(Interrupted, match="SIGINT: stopped after step 2"):
        stopped.run(4, progress=False)
    checkpoint = stopped.sink.checkpoint
    assert checkpoint["step"] == 2 and stopped.sink.steps == [0, 1, 2] and not stopped.sink.finished
    resumed = Simulation(net, x0, Adam(), backend="cudasim", lr=0.1).restore(checkpoint)
    resumed.run(2, progress=False)
    assert np.array_equal(resumed.positions, full.positions)
    for name, value in full.checkpoint()["optimizer_state"].items():
        assert np.array_equal(resumed.checkpoint()["optimizer_state"][name], value)


def test_device_simulation_streams_only_the_written_subset(rng, tmp_path):
    net = make_net(rng)
    x0 = rng.normal(size=(30, net.dim))
    subset = np.array([1, 5, 17, 29])
    sink = H5MDSink(tmp_path / "run.h5", every=2, subset=subset, optimizer_state=True)
    gpu = Simulation(net, x0, Momentum(), backend="cudasim", lr=0.2, sink=sink, frame_every=1)
    gpu.run(2, progress=False)
    gpu.close()
    cpu = Simulation(net, x0, Momentum(), lr=0.2, frame_every=1)
    cpu.run(2, progress=False)
    run = open_run(tmp_path / "run.h5")
    assert relative(run.positions(2), cpu.positions[subset]) < 1e-10
    assert relative(run.positions(2, name="velocity"), cpu.state.optimizer_state["velocity"][subset]) < 1e-10


def test_device_simulation_reports_divergence(rng):
    net = make_net(rng, activation="relu")
    x0 = rng.normal(size=(20, net.dim)) * 1e150
    gpu = Simulation(net, x0, GD(), backend="cudasim", lr=1e150)
    with pytest.raises(DivergenceError, match="non-finite at step 1"):
        gpu.step()


# -- user kernels in the (phi, rho, psi) form ------------------------------------------
def _phi(x, ctx, out):
    out[0] = x[0]
    out[1] = x[1]
    out[2] = x[0] * x[0] + x[1] * x[1]


def _psi(x, summary, ctx, out):
    scale = ctx[0][0]
    out[0] = scale * (summary[0] - x[0]) + summary[2] * x[1]
    out[1] = scale * (summary[1] - x[1]) - summary[2] * x[0]


def _rho(total, ctx):
    return np.array([total[0], total[1], math.sqrt(total[2])])


@pytest.mark.parametrize("rho", [None, _rho])
def test_deepsets_kernel_compiles_for_the_gpu(rng, monkeypatch, rho):
    monkeypatch.setattr(deepsets_cuda, "CHUNK", 16)
    kernel = DeepSetsKernel(_phi, _psi, dim=2, agg_dim=3, rho=rho, context=(np.array([0.7]),))
    gpu = CudaDeepSetsKernel(kernel, SIM)
    x = rng.normal(size=(45, 2))
    m = rng.uniform(0.5, 1.5, size=45) / 45
    ctx = kernel.context(0, None, None)
    expected = deepsets_reference(kernel, x, m, ctx)
    assert relative(gpu.field(x, m, ctx), expected) < 1e-12
    perm = rng.permutation(45)
    assert relative(gpu.field(x[perm], m[perm], ctx), gpu.field(x, m, ctx)[perm]) < 1e-12


def test_deepsets_simulation_matches_numba_backend(rng):
    kernel = DeepSetsKernel(_phi, _psi, dim=2, agg_dim=3, rho=_rho, context=(np.array([0.3]),))
    x0 = rng.normal(size=(25, 2))
    cpu = Simulation(kernel, x0, GD(), lr=0.1)
    gpu = Simulation(kernel, x0, GD(), backend="cudasim", lr=0.1)
    cpu.run(3, progress=False)
    gpu.run(3, progress=False)
    assert relative(gpu.positions, cpu.positions) < 1e-10


def test_kernels_without_gpu_code_run_on_host_copies(rng):
    from particledyn import BlackBoxKernel

    kernel = BlackBoxKernel(lambda x, m, ctx: (m[:, None] * x).sum(axis=0) - x, dim=2)
    x0 = rng.normal(size=(12, 2))
    cpu = Simulation(kernel, x0, Momentum(), lr=0.3)
    with pytest.warns(RuntimeWarning, match="has no GPU implementation"):
        gpu = Simulation(kernel, x0, Momentum(), backend="cudasim", lr=0.3)
    cpu.run(3, progress=False)
    gpu.run(3, progress=False)
    assert relative(gpu.positions, cpu.positions) < 1e-12
