"""GPU-only tests (cupy on a real CUDA device): skipped with the reason on CPU machines,
failing instead under PARTICLEDYN_REQUIRE_GPU=1 (see tests/gpu_support.py)."""

import numpy as np
from gpu_support import requires_gpu

from particledyn import GD, Adam, DeepSetsKernel, Momentum, Simulation
from particledyn.kernels import TwoLayerNet
from particledyn.kernels.two_layer_reference import field_reference


def relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def teacher_student(rng, batch=128, d=2, scaling="standard", activation="sigmoid"):
    z = rng.normal(size=(batch, d))
    y = 1.0 / (1.0 + np.exp(-z @ rng.normal(size=d)))
    return TwoLayerNet(z, y, activation=activation, scaling=scaling)


@requires_gpu
def test_gpu_field_equals_numba_field_on_the_paper_scenario():
    import cupy

    from particledyn.kernels.two_layer_cuda import CudaTwoLayerNet

    rng = np.random.default_rng(0)
    for activation, scaling in (("sigmoid", "standard"), ("tanh", "mean_field"), ("relu", "standard")):
        net = teacher_student(rng, activation=activation, scaling=scaling)
        x = rng.normal(size=(100_000, 3))
        m = np.full(len(x), 1 / len(x))
        ctx = net.evaluation_context()
        gpu = CudaTwoLayerNet(net, "cupy")
        field = gpu.field(cupy.asarray(x), cupy.asarray(m), ctx)
        assert isinstance(field, cupy.ndarray)
        assert relative(cupy.asnumpy(field), net.field(x, m, ctx)) < 1e-10


@requires_gpu
def test_gpu_classifier_field_matches_reference():
    import cupy

    from particledyn.kernels.two_layer_cuda import CudaTwoLayerNet

    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 64))
    labels = rng.integers(0, 10, size=300)
    net = TwoLayerNet(z, labels, activation="relu", loss="cross_entropy", n_outputs=10)
    x = rng.normal(size=(5000, net.dim)) * 0.1
    m = np.full(5000, 1 / 5000)
    ctx = net.evaluation_context()
    field = cupy.asnumpy(CudaTwoLayerNet(net, "cupy").field(cupy.asarray(x), cupy.asarray(m), ctx))
    assert relative(field, field_reference(x, m, *ctx, "relu", "standard", "cross_entropy")) < 1e-10


@requires_gpu
def test_gpu_float32_field_matches_reference():
    import cupy

    from particledyn.kernels.two_layer_cuda import CudaTwoLayerNet

    rng = np.random.default_rng(2)
    net = teacher_student(rng)
    x = rng.normal(size=(50_000, 3))
    m = np.full(len(x), 1 / len(x))
    ctx = net.evaluation_context()
    field = CudaTwoLayerNet(net, "cupy").field(cupy.asarray(x, dtype=np.float32), cupy.asarray(m), ctx)
    assert field.dtype == np.float32
    assert relative(cupy.asnumpy(field), field_reference(x, m, *ctx, "sigmoid", "standard", "mse")) < 1e-4


@requires_gpu
def test_gpu_trajectory_equals_numba_trajectory():
    rng = np.random.default_rng(3)
    net = teacher_student(rng, batch=512, scaling="mean_field")
    x0 = rng.normal(size=(20_000, 3))
    for optimizer, batch_size in ((GD, None), (Momentum, 128), (Adam, 128)):
        options = dict(lr=1.0, seed=5, batch_size=batch_size, frame_every=5)
        cpu = Simulation(net, x0, optimizer(), **options).run(10, progress=False)
        gpu = Simulation(net, x0, optimizer(), **options, backend="cupy").run(10, progress=False)
        assert type(gpu.state.positions).__module__.startswith("cupy")
        assert relative(gpu.positions, cpu.positions) < 1e-10
        assert relative(gpu.sink.frames[-1], cpu.sink.frames[-1]) < 1e-10


@requires_gpu
def test_gpu_runs_are_bitwise_reproducible():
    rng = np.random.default_rng(4)
    net = teacher_student(rng)
    x0 = rng.normal(size=(1_000_000, 3))  # ~500 forward blocks: the tree reduction path
    runs = [
        Simulation(net, x0, Adam(), lr=0.1, frame_every=0, backend="cupy").run(3, progress=False)
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].positions, runs[1].positions)


def _phi(x, ctx, out):
    out[0] = x[0]
    out[1] = x[0] * x[1]


def _psi(x, summary, ctx, out):
    out[0] = ctx[0][0] * (summary[0] - x[0])
    out[1] = summary[1] - x[1]


@requires_gpu
def test_gpu_deepsets_kernel_equals_numba_kernel():
    rng = np.random.default_rng(5)
    kernel = DeepSetsKernel(_phi, _psi, dim=2, agg_dim=2, context=(np.array([0.5]),))
    x0 = rng.normal(size=(100_000, 2))
    cpu = Simulation(kernel, x0, GD(), lr=0.1).run(5, progress=False)
    gpu = Simulation(kernel, x0, GD(), lr=0.1, backend="cupy").run(5, progress=False)
    assert relative(gpu.positions, cpu.positions) < 1e-10


@requires_gpu
def test_gpu_run_streams_a_subset_to_hdf5(tmp_path):
    from particledyn.io import H5MDSink, open_run

    rng = np.random.default_rng(6)
    net = teacher_student(rng)
    x0 = rng.normal(size=(200_000, 3))
    subset = np.sort(rng.choice(len(x0), size=1000, replace=False))
    sink = H5MDSink(tmp_path / "gpu.h5", every=2, subset=subset)
    gpu = Simulation(net, x0, Adam(), lr=0.1, sink=sink, backend="cupy")
    gpu.run(4, progress=False)
    gpu.close()
    cpu = Simulation(net, x0, Adam(), lr=0.1).run(4, progress=False)
    run = open_run(tmp_path / "gpu.h5")
    assert relative(run.positions(4), cpu.positions[subset]) < 1e-10


@requires_gpu
def test_gpu_preconditioned_sharpness_reads_host_copies_of_adam_state():
    from particledyn.geometry import kernel_sharpness

    rng = np.random.default_rng(7)
    net = teacher_student(rng, batch=64)
    x0 = rng.normal(size=(200, 3))
    runs = [
        Simulation(net, x0, Adam(), lr=0.05, observers=[kernel_sharpness(every=2)], backend=backend).run(
            2, progress=False
        )
        for backend in ("numba", "cupy")
    ]
    (_, cpu), (_, gpu) = (run.sink.series("sharpness", "lambda_max") for run in runs)
    assert np.allclose(gpu, cpu, rtol=1e-6)
