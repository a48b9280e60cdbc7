"""The thread governor: each step at 1 thread or numba's count, whichever measured faster; the
results do not change, numba's count outside the step is the one set."""

import time

import numba
import numpy as np
import pytest

from particledyn import GD, Simulation
from particledyn.kernels import TwoLayerNet
from particledyn.thread_governor import ThreadGovernor, adaptive_threads_enabled

needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here")


class _EveryStepSwitches(ThreadGovernor):
    """Changes the thread count at every step (the governor's bookkeeping, another choice)."""

    def choose(self, ceiling):
        self._for_ceiling = ceiling
        return 1 if self._steps % 2 else ceiling


def _drive(governor, seconds, steps, ceiling=2):
    """Run ``steps`` steps with ``seconds[count]`` as each count's wall time; the counts chosen."""
    picks = []
    for _ in range(steps):
        count = governor.choose(ceiling)
        governor.record(count, ceiling, seconds[count])
        picks.append(count)
    return picks


def _drive_transitions(governor, steady, first, steps, ceiling=2):
    """As ``_drive``, but a step whose count differs from the last one costs ``first[count]``."""
    picks = []
    for _ in range(steps):
        count = governor.choose(ceiling)
        cost = first[count] if picks and picks[-1] != count else steady[count]
        governor.record(count, ceiling, cost)
        picks.append(count)
    return picks


def test_warmup_samples_each_count_then_probes_back_off():
    g = ThreadGovernor(window=5, probe_every=4, max_interval=16, warmup=2, probe_steps=2, probe_budget=1.0)
    picks = _drive(g, {1: 1.0, 2: 1.5}, 60)
    assert picks[:6] == [2, 2, 2, 1, 1, 1]  # warm-up: the first step of each count is not a sample
    probes = [i for i, count in enumerate(picks) if i >= 6 and count == 2]
    assert probes == [10, 11, 20, 21, 38, 39, 56, 57]  # 2-step probes, waits 4, 8, 16, 16
    assert g.summary()["probe_interval"] == 16 and g.summary()["steps"] == {1: 49, 2: 11}


def test_a_losing_probe_costs_at_most_the_budget():
    g = ThreadGovernor(window=5, probe_every=4, max_interval=16, warmup=2, probe_steps=2, probe_budget=0.1)
    seconds = {1: 1.0, 2: 11.0}
    picks = _drive(g, seconds, 400)
    probes = [i for i, count in enumerate(picks) if i >= 6 and count == 2]
    assert probes == [10, 11, 212, 213]  # 20 s extra: the next probe waits 20 / (0.1 * 1 s) steps
    since = picks[12:214]  # from the losing probe's decision to the end of the next probe
    extra = sum(seconds[c] - seconds[1] for c in since)
    assert extra <= 0.1 * len(since) * seconds[1]


def test_the_first_step_after_a_change_of_count_is_not_a_sample():
    # 2 threads win in steady state, but the first 2-thread step after 1-thread steps waits 20x
    # (its worker slept): judged on that step, as a 1-step probe would be, 2 threads never win
    g = ThreadGovernor(window=5, probe_every=4, max_interval=16, warmup=2, probe_steps=3)
    picks = _drive_transitions(g, {1: 1.0, 2: 0.5}, {1: 1.2, 2: 10.0}, 40)
    assert picks[6:] == [2] * 4 + [1] * 3 + [2] * 27  # one probe of 1 thread, then a long wait
    assert g.summary()["median_s"] == {1: 1.0, 2: 0.5}


def test_a_probe_that_wins_switches_and_the_wait_starts_over():
    g = ThreadGovernor(window=3, probe_every=4, max_interval=64, warmup=1, probe_steps=2, probe_budget=1.0)
    _drive(g, {1: 1.0, 2: 1.5}, 60)  # 1 thread wins, probes back off
    assert g.summary()["probe_interval"] >= 16
    picks = _drive(g, {1: 1.0, 2: 0.1}, 80)  # the load changed: 2 threads win now
    switch = picks.index(2)  # the next probe finds it
    assert set(picks[:switch]) == {1} and picks[switch : switch + 6] == [2] * 6
    assert g.summary()["running"] == 2
    ones = [i for i, count in enumerate(picks) if i > switch and count == 1]
    # the wait started over (4 steps); that probe's 1.8 s extra then waits 1.8 / (1 * 0.1 s) steps
    assert ones[:4] == [switch + 6, switch + 7, switch + 26, switch + 27]


def test_a_rising_step_time_probes_before_the_wait_is_over():
    g = ThreadGovernor(window=5, probe_every=4, max_interval=256, warmup=2, probe_steps=2, probe_budget=1.0)
    _drive(g, {1: 1.0, 2: 1.1}, 600)  # waits doubled to 256
    assert g.summary()["probe_interval"] == 256
    picks = _drive(g, {1: 3.0, 2: 0.5}, 12)  # a hog arrived: 1 thread 3x slower, 2 threads help
    assert picks.index(2) <= 6 and g.summary()["running"] == 2


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
        {"probe_steps": 1},
        {"window": 2, "probe_steps": 4},
    ],
)
def test_bad_settings_are_one_line_errors(kwargs):
    with pytest.raises(ValueError, match="expected integers window >= 1"):
        ThreadGovernor(**kwargs)


@pytest.mark.parametrize("budget", [0, -0.1, 1.5, "1"])
def test_a_bad_probe_budget_is_a_one_line_error(budget):
    with pytest.raises(ValueError, match=r"probe_budget=.*expected a number in \(0, 1\]"):
        ThreadGovernor(probe_budget=budget)


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
        # warm-up (3 steps), one probe of 3 steps; its 90 ms extra then waits > 40 steps
        assert g.summary()["steps"][2] <= 3 + 3 and inside.count(1) >= 34
    finally:
        numba.set_num_threads(before)


@needs_two
def test_the_ceiling_is_restored_when_the_step_raises():
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        g = ThreadGovernor(enabled=True)
        _drive(g, {1: 0.1, 2: 1.0}, 8)  # warmed up: 1 thread runs
        used = dict(g.summary()["steps"])
        with pytest.raises(RuntimeError):
            with g:
                assert numba.get_num_threads() == 1
                raise RuntimeError("step failed")
        assert numba.get_num_threads() == 2 and g.summary()["steps"] == used
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
        runs = (("one", 1, False, ThreadGovernor), ("switching", 2, True, ThreadGovernor))
        runs += (("every step", 2, True, _EveryStepSwitches), ("two", 2, False, ThreadGovernor))
        for name, threads, governed, kind in runs:
            numba.set_num_threads(threads)
            kernel = TwoLayerNet(z, y, activation="sigmoid", loss="mse")
            sim = Simulation(kernel, x0.copy(), optimizer=GD(), lr=0.5, frame_every=0, batch_size=16, seed=3)
            sim.thread_governor = kind(window=2, probe_every=2, max_interval=2, warmup=1, enabled=governed)
            sim.run(12, progress=False)
            ends[name] = sim.positions
            if governed:
                used = sim.thread_governor.summary()["steps"]
                assert used.get(1, 0) >= 3 and used.get(2, 0) >= 3, used  # both counts ran
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(ends["switching"], ends["one"])
    np.testing.assert_array_equal(ends["every step"], ends["one"])
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


@needs_two
def test_governed_steps_at_one_thread_run_the_serial_twins_with_the_same_results(monkeypatch):
    from particledyn.kernels import two_layer_numba
    from particledyn.serial_twins import set_serial_twins

    rng = np.random.default_rng(4)
    z = rng.standard_normal((48, 2))
    x0 = np.column_stack([rng.standard_normal((4500, 2)), rng.standard_normal(4500) / 70])  # 3 chunks
    serial_calls = []
    original = two_layer_numba.field.serial

    def spy(*args):
        serial_calls.append(numba.get_num_threads())
        return original(*args)

    monkeypatch.setattr(two_layer_numba.field, "serial", spy)
    before = numba.get_num_threads()
    ends = {}
    try:
        numba.set_num_threads(2)
        for twins in (True, False):
            set_serial_twins(twins)
            kernel = TwoLayerNet(z, np.sin(z[:, 0]), activation="tanh", loss="mse")
            sim = Simulation(kernel, x0.copy(), optimizer=GD(), lr=0.5, frame_every=0, batch_size=16, seed=5)
            sim.thread_governor = _EveryStepSwitches(window=2, probe_every=2, max_interval=2, warmup=1)
            sim.run(10, progress=False)
            ends[twins] = sim.positions
            assert len(serial_calls) == (5 if twins else 0) and set(serial_calls) <= {1}
            serial_calls.clear()
    finally:
        set_serial_twins(True)
        numba.set_num_threads(before)
    np.testing.assert_array_equal(ends[True], ends[False])
