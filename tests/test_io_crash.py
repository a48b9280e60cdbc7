"""Crash safety and live reading: writers killed with SIGKILL, readers polling a file being written."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from io_helpers import WRITER_SCRIPT, checkpoint, frame, observables

from particledyn.io import H5MDSink, open_run

TESTS = str(Path(__file__).parent)
TRIALS = 24
PARALLEL = 4


def start_writer(tmp_path, name, n_steps=10**6, pause=0.0):
    script = tmp_path / "writer.py"
    if not script.exists():
        script.write_text(WRITER_SCRIPT)
    path = tmp_path / name
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), TESTS, str(n_steps), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, path


def check_committed(run):
    """Every committed record equals what the writer computed for its step; return #frames."""
    # Read step first: on a live file later reads may see more committed records.
    steps = run.steps
    np.testing.assert_array_equal(steps, np.arange(len(steps)))
    times = run.times
    assert len(times) >= len(steps)
    np.testing.assert_array_equal(times, 0.5 * np.arange(len(times)))
    positions = run.positions()
    assert len(positions) >= len(steps)
    for k, value in enumerate(positions):
        np.testing.assert_array_equal(value, frame(k))
    for name in run.particle_series:
        stored = run.positions(name=name)
        sign = -1 if name == "velocity" else 1
        for k, value in enumerate(stored):
            np.testing.assert_array_equal(value, sign * frame(k))
    for key in run.observables.get("obs", []):
        obs_steps, values = run.observable("obs", key)
        np.testing.assert_array_equal(obs_steps, np.arange(len(obs_steps)))
        for k, value in zip(obs_steps, values):
            np.testing.assert_array_equal(value, observables(int(k))[key])
    ckpt = run.checkpoint()
    if ckpt is not None:
        assert ckpt["step"] % 3 == 0
        np.testing.assert_array_equal(ckpt["positions"], checkpoint(ckpt["step"])["positions"])
        assert ckpt["rng"] == checkpoint(ckpt["step"])["rng"]
    return len(steps)


def resume_and_finish(path, extra=4):
    sink, ckpt = H5MDSink.resume(path)
    start = ckpt["step"]
    with open_run(path) as run:  # truncated: nothing after the checkpoint
        assert run.steps.max() == start
        for key in run.observables["obs"]:
            assert run.observable("obs", key)[0].max() == start
    for k in range(start, start + extra + 1):  # the engine re-records its restart step
        sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
        sink.write_observables("obs", k, 0.5 * k, observables(k))
    sink.close(finished=True)
    with open_run(path) as run:
        assert run.finished
        assert check_committed(run) == start + extra + 1
        assert len(run.positions(name="velocity")) == start + extra + 1


def test_sigkill_at_random_moments_leaves_committed_frames_intact(tmp_path):
    rng = np.random.default_rng(1234)
    delays = rng.uniform(0.0, 0.4, size=TRIALS)
    frames_seen, resumed = [], 0
    for batch in range(0, TRIALS, PARALLEL):
        procs = [start_writer(tmp_path, f"run{i}.h5") for i in range(batch, batch + PARALLEL)]
        for proc, _ in procs:
            assert proc.stdout.readline().strip() == "live", proc.stderr.read()
        for (proc, _path), delay in zip(procs, delays[batch : batch + PARALLEL]):
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        for proc, path in procs:
            proc.wait()
            assert proc.returncode == -signal.SIGKILL
            with open_run(path, timeout=2.0) as run:
                frames_seen.append(check_committed(run))
                assert not run.finished
                has_checkpoint = run.checkpoint() is not None
            if has_checkpoint:
                resume_and_finish(path)
                resumed += 1
    assert min(frames_seen) >= 2 and resumed == TRIALS
    assert len(set(frames_seen)) > TRIALS // 3  # the kills landed at many different moments


def test_kill_in_first_step_leaves_no_file_at_path(tmp_path):
    script = tmp_path / "first.py"
    script.write_text(
        "import sys, time\nsys.path.insert(0, sys.argv[2])\n"
        "from io_helpers import frame\nfrom particledyn.io import H5MDSink\n"
        "s = H5MDSink(sys.argv[1])\ns.write_frame(0, 0.0, frame(0))\n"
        "print('step0', flush=True)\ntime.sleep(60)\n"
    )
    path = tmp_path / "run.h5"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), TESTS], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "step0"
    proc.kill()
    proc.wait()
    assert not path.exists()
    with pytest.raises(FileNotFoundError, match="no run file"):
        open_run(path)


def test_reader_polling_during_write_sees_only_committed_frames(tmp_path):
    proc, path = start_writer(tmp_path, "live.h5", n_steps=150, pause=0.002)
    assert proc.stdout.readline().strip() == "live"
    polls, partial, held = 0, 0, open_run(path)
    lengths = []
    while True:
        done = proc.poll() is not None
        with open_run(path) as run:  # a fresh handle each poll
            lengths.append(check_committed(run))
        lengths.append(check_committed(held))  # and one long-lived SWMR handle
        polls += 1
        partial += lengths[-1] < 150
        if done:
            break
    held.close()
    assert proc.returncode == 0, proc.stderr.read()
    assert lengths[-1] == 150 and partial >= 3
    assert all(b >= a for a, b in zip(lengths[1::2], lengths[3::2]))  # the held handle only advances
    with open_run(path) as run:
        assert run.finished
