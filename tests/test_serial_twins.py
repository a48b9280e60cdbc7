"""Serial twins of the parallel loops: the ``parallel=False`` compilation runs at one thread and
gives bit-identical results to the parallel one at 1 and 2 threads (fixed chunks, fixed order)."""

import contextlib
import os

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import prange

from particledyn import GD, SGD, Adam, Ensemble, Momentum
from particledyn import serial_twins as twins
from particledyn.backends import get_backend
from particledyn.kernels import MultiLayerNet, TwoLayerNet, two_layer_numba
from particledyn.serial_twins import TwinnedLoop, parallel_loop, twinned_dispatchers
from particledyn.thread_governor import ThreadGovernor

needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here")
MODES = ("serial", "parallel at 1", "parallel at 2")
DTYPES = ("float32", "float64")


@contextlib.contextmanager
def _compiled(mode):
    """Every twinned loop runs ``mode``: its serial twin, or its parallel loop at 1 or 2 threads
    (the choice made in ``TwinnedLoop.__call__`` is forced through the thread count it reads)."""
    before_threads, before_get = numba.get_num_threads(), twins._get_threads
    numba.set_num_threads(2 if mode == "parallel at 2" else 1)
    twins._get_threads = (lambda: 1) if mode == "serial" else (lambda: 2)
    try:
        yield
    finally:
        twins._get_threads = before_get
        numba.set_num_threads(before_threads)


def _in_every_mode(compute):
    """``compute()`` (a tuple of arrays) in each mode; asserts the results are bit-identical."""
    results = {}
    for mode in MODES:
        with _compiled(mode):
            results[mode] = tuple(np.array(a, copy=True) for a in compute())
    for mode in MODES[1:]:
        for got, expected in zip(results[mode], results["serial"]):
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected, err_msg=f"{mode} against the serial twin")
    return results["serial"]


# (inputs, outputs, activation, loss): one output, several outputs, wide neurons (d + C > 16)
SHAPES = {
    "one output": (2, 1, "sigmoid", "mse"),
    "three classes": (3, 3, "tanh", "cross_entropy"),
    "wide": (18, 1, "relu", "mse"),
}


def _two_layer(shape, n, batch, dtype, seed):
    d, c, activation, loss = SHAPES[shape]
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, d))
    y = rng.integers(0, c, batch) if loss == "cross_entropy" else rng.standard_normal(batch)
    kernel = TwoLayerNet(z, y, activation=activation, loss=loss)
    x = np.column_stack([rng.standard_normal((n, d)), rng.standard_normal((n, c)) / np.sqrt(n)])
    return kernel, x.astype(dtype), np.full(n, 1.0, dtype=dtype), (z, y)


@needs_two
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 5000), batch=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_two_layer_passes_are_bit_identical_in_every_compilation(shape, dtype, n, batch, seed):
    kernel, x, m, context = _two_layer(shape, n, batch, dtype, seed)  # 5000: three chunks of 2048
    _in_every_mode(lambda: (kernel.field(x, m, context), kernel.outputs(x, m, context[0])))


@needs_two
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=8, deadline=None)
@given(first=st.integers(1, 5000), second=st.integers(1, 3000), seed=st.integers(0, 2**31 - 1))
def test_multi_layer_passes_are_bit_identical_in_every_compilation(dtype, first, second, seed):
    rng = np.random.default_rng(seed)
    groups = (first, second)
    z = rng.standard_normal((20, 1))
    y = np.sin(z[:, 0])
    kernel = MultiLayerNet(z, y, groups, "tanh", "mean_field")
    x = (0.5 * rng.standard_normal((first + second, 2))).astype(dtype)
    m = np.full(len(x), 1.0 / len(x), dtype=dtype)
    _in_every_mode(lambda: (kernel.field(x, m, (z, y)),))


OPTIMIZERS = {
    "gd": lambda: GD(weight_decay=1e-3),
    "sgd": lambda: SGD(),
    "momentum": lambda: Momentum(0.9, weight_decay=1e-4),
    "adam": lambda: Adam(),
}


@needs_two
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 20000), seed=st.integers(0, 2**31 - 1))
def test_optimizer_updates_are_bit_identical_in_every_compilation(name, dtype, n, seed):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((n, 3)).astype(dtype)
    fields = [rng.standard_normal((n, 3)).astype(dtype) for _ in range(3)]
    fields[2][0, 0] = np.inf  # the last update has a non-finite entry to count
    backend = get_backend("numba")

    def run():
        optimizer, x = OPTIMIZERS[name](), x0.copy()
        state = optimizer.init_state(x)
        bad = []
        for step, u in enumerate(fields):
            direction = optimizer.direction(x, u, state, step)
            bad.append(backend.apply_step(x, direction, 0.01))
        assert bad[:2] == [0, 0] and bad[2] >= 1
        return (x, np.array(bad), *state.values())

    _in_every_mode(run)


@needs_two
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gd", "momentum", "adam"])
@settings(max_examples=5, deadline=None)
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**31 - 1))
def test_ensemble_steps_are_bit_identical_in_every_compilation(name, dtype, n, seed):
    kernel, x, _, (z, y) = _two_layer("one output", n, 24, dtype, seed)
    starts = np.stack([x, x[::-1].copy(), 0.5 * x])

    def run():
        ens = Ensemble(kernel, starts, optimizer=OPTIMIZERS[name](), lr=[0.1, 0.2, 0.05], seed=[1, 2, 3])
        ens.thread_governor = ThreadGovernor(enabled=False)  # the mode's count, every step
        for _ in range(3):
            ens.step()
        assert ens.fields.fused
        return (ens.positions,)

    _in_every_mode(run)


def test_the_calling_threads_count_picks_the_compilation():
    x = np.arange(6.0)
    out = np.empty_like(x)
    calls = []
    loop = parallel_loop(cache=False)(_scaled)
    for count in (1, 2):
        twins_get, twins._get_threads = twins._get_threads, (lambda c=count: c)
        try:
            before = {k: len(getattr(loop, k).signatures) for k in ("serial", "parallel")}
            loop(x, 2.0, out)
            after = {k: len(getattr(loop, k).signatures) for k in ("serial", "parallel")}
        finally:
            twins._get_threads = twins_get
        calls.append([k for k in after if after[k] > before[k]])
        np.testing.assert_array_equal(out, 2.0 * x)
    assert calls == [["serial"], ["parallel"]]  # each compiles on its first call, not before


def _scaled(x, factor, out):
    for i in prange(x.size):
        out[i] = factor * x[i]


def _float_sum(x):
    total = 0.0
    for i in prange(x.size):  # numba splits this reduction per thread: not thread-invariant
        total += x[i]
    return total


@needs_two
def test_a_per_thread_reduction_is_caught_as_not_identical():
    loop = parallel_loop(cache=False)(_float_sum)
    x = np.random.default_rng(0).standard_normal(100_001) * 10.0 ** np.arange(-8, 9).repeat(5883)[:100_001]
    with pytest.raises(AssertionError, match="against the serial twin"):
        _in_every_mode(lambda: (np.array([loop(x)]),))


def test_twins_have_their_own_cache_files_and_the_compile_notice_sees_both():
    forward = two_layer_numba.forward
    assert isinstance(forward, TwinnedLoop)
    parallel, serial = twinned_dispatchers(forward)
    files = {os.path.basename(d._cache._cache_file._index_path) for d in (parallel, serial)}
    assert len(files) == 2 and any("forward_serial" in f for f in files)  # never one another's code
    assert parallel.targetoptions["parallel"] and not serial.targetoptions.get("parallel", False)
    from particledyn.compile_notice import cached_dispatchers

    found = cached_dispatchers("particledyn.kernels.two_layer_numba")
    assert any(d is parallel for d in found) and any(d is serial for d in found)
    assert twinned_dispatchers(len) == [len]


def test_parallel_false_is_a_one_line_error():
    with pytest.raises(ValueError, match="expected parallel=True"):
        parallel_loop(parallel=False)
    with pytest.raises(ValueError, match="expected no 'parallel'"):
        TwinnedLoop(_scaled, {"parallel": True})


def test_twins_can_be_turned_off_in_the_environment_and_at_run_time():
    import subprocess
    import sys

    code = "from particledyn.serial_twins import serial_twins_enabled as e; print(e())"
    for value, expected in (("0", "False"), ("off", "False"), ("1", "True")):
        env = {**os.environ, "PARTICLEDYN_SERIAL_TWINS": value}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected
    loop = parallel_loop(cache=False)(_scaled)
    x, out = np.arange(4.0), np.empty(4)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        twins.set_serial_twins(False)
        loop(x, 3.0, out)
        assert loop.parallel.signatures and not loop.serial.signatures
        twins.set_serial_twins(True)
        loop(x, 3.0, out)
        assert loop.serial.signatures
    finally:
        twins.set_serial_twins(True)
        numba.set_num_threads(before)
    with pytest.raises(TypeError, match="expected True or False"):
        twins.set_serial_twins(1)
