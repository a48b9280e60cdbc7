"""The thread governor: each step at 1 thread or numba's count, whichever measured faster; the
results do not change, numba's count outside the step is the one set."""

import time
from collections import deque

import numba
import numpy as np
import pytest

from particledyn import GD, Simulation
from particledyn.kernels import TwoLayerNet
from particledyn.thread_governor import ThreadGovernor, adaptive_threads_enabled

needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here")


def _timed(governor, ceiling, one, full):
    governor.times[1] = deque(one, maxlen=governor.window)
    governor.times[ceiling] = deque(full, maxlen=governor.window)


def _drive(governor, seconds, steps, ceiling=2):
    """Run ``steps`` steps with ``seconds[count]`` as each count's wall time; the counts chosen."""
    picks = []
    for _ in range(steps):
        count = governor.choose(ceiling)
        governor.record(count, ceiling, seconds[count])
        picks.append(count)
    return picks


def test_warmup_alternates_then_the_faster_count_runs_and_the_other_is_probed():
    g = ThreadGovernor(window=5, probe_every=4, max_interval=16, warmup=2, enabled=True)
    picks = _drive(g, {1: 1.0, 2: 3.0}, 40)
    assert picks[:4] == [2, 1, 2, 1]  # warm-up: both counts timed
    probes = [i for i, count in enumerate(picks) if i >= 4 and count == 2]
    assert probes == [8, 17, 34]  # each losing probe doubles the wait: 4, 8, 16 steps
    assert g.summary()["probe_interval"] == 16 and g.summary()["steps"] == {1: 35, 2: 5}


def test_a_probe_that_wins_switches_and_the_wait_starts_over():
    g = ThreadGovernor(window=1, probe_every=4, max_interval=64, warmup=1, enabled=True)
    _drive(g, {1: 1.0, 2: 3.0}, 30)  # 1 thread wins, probes back off
    assert g.summary()["probe_interval"] == 16
    picks = _drive(g, {1: 1.0, 2: 0.1}, 30)  # the load changed: 2 threads win now
    switch = picks.index(2)  # the next probe finds it
    assert set(picks[:switch]) == {1}
    after = picks[switch:]
    assert after[:6] == [2, 2, 2, 2, 2, 1]  # the wait started over at 4 steps, then 8
    assert after[6:14] == [2] * 8 and after[14] == 1


def test_one_thread_and_a_disabled_governor_leave_the_count_alone(monkeypatch):
    assert ThreadGovernor(enabled=True).choose(1) == 1
    assert ThreadGovernor(enabled=False).choose(4) == 4
    monkeypatch.setenv("PARTICLEDYN_ADAPTIVE_THREADS", "0")
    assert not adaptive_threads_enabled() and not ThreadGovernor().enabled
    monkeypatch.setenv("PARTICLEDYN_ADAPTIVE_THREADS", "1")
    assert adaptive_threads_enabled() and ThreadGovernor().enabled


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0},
        {"probe_every": 1},
        {"probe_every": 32, "max_interval": 16},
        {"warmup": 0},
        {"window": 3, "warmup": 4},
        {"window": 2.5},
    ],
)
def test_bad_settings_are_one_line_errors(kwargs):
    with pytest.raises(ValueError, match="expected integers window >= 1"):
        ThreadGovernor(**kwargs)


@needs_two
def test_the_slower_count_runs_only_in_warmup_and_probes():
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        g = ThreadGovernor(window=5, probe_every=8, max_interval=64, warmup=2, enabled=True)
        inside = []
        for _ in range(40):
            with g:
                inside.append(numba.get_num_threads())
                time.sleep(0.03 if numba.get_num_threads() == 2 else 0.001)  # 2 threads "lose"
            assert numba.get_num_threads() == 2  # the ceiling is back after every step
        assert g.summary()["steps"][2] <= 2 + 3 and inside.count(1) >= 34  # warm-up, 8 + 16 + ...
    finally:
        numba.set_num_threads(before)


@needs_two
def test_the_ceiling_is_restored_when_the_step_raises():
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        g = ThreadGovernor(enabled=True)
        _timed(g, 2, [0.1] * 3, [1.0] * 3)
        with pytest.raises(RuntimeError):
            with g:
                assert numba.get_num_threads() == 1
                raise RuntimeError("step failed")
        assert numba.get_num_threads() == 2 and g.summary()["steps"] == {}
    finally:
        numba.set_num_threads(before)


@needs_two
def test_a_governed_run_switching_counts_is_bit_identical_to_one_thread():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((64, 2))
    y = np.tanh(z[:, 0])
    x0 = np.column_stack([rng.standard_normal((5000, 2)), rng.standard_normal(5000) / 70])  # 3 chunks
    before = numba.get_num_threads()
    ends = {}
    try:
        for name, threads, governed in (("one", 1, False), ("switching", 2, True), ("two", 2, False)):
            numba.set_num_threads(threads)
            kernel = TwoLayerNet(z, y, activation="sigmoid", loss="mse")
            sim = Simulation(kernel, x0.copy(), optimizer=GD(), lr=0.5, frame_every=0, batch_size=16, seed=3)
            sim.thread_governor = ThreadGovernor(
                window=2, probe_every=2, max_interval=2, warmup=1, enabled=governed
            )
            sim.run(12, progress=False)
            ends[name] = sim.positions
            if governed:
                used = sim.thread_governor.summary()["steps"]
                assert used.get(1, 0) >= 3 and used.get(2, 0) >= 3, used  # both counts ran
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(ends["switching"], ends["one"])
    np.testing.assert_array_equal(ends["two"], ends["one"])


def test_only_thread_invariant_kernels_and_optimizers_are_governed(monkeypatch):
    monkeypatch.delenv("PARTICLEDYN_ADAPTIVE_THREADS", raising=False)
    z = np.random.default_rng(0).standard_normal((8, 2))
    x0 = np.random.default_rng(1).standard_normal((10, 3))

    class Reducing(TwoLayerNet):  # a kernel that does not promise thread-count-free sums
        thread_invariant = False

    class Clipped(GD):
        thread_invariant = False

    plain = TwoLayerNet(z, z[:, 0], activation="sigmoid", loss="mse")
    assert Simulation(plain, x0, lr=0.1).thread_governor.enabled
    assert not Simulation(
        Reducing(z, z[:, 0], activation="sigmoid", loss="mse"), x0, lr=0.1
    ).thread_governor.enabled
    assert not Simulation(plain, x0, optimizer=Clipped(), lr=0.1).thread_governor.enabled
