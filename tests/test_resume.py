"""Exact resume: a run SIGKILLed mid-way and resumed equals an uninterrupted run, bit for bit.

Two real ``python -m particledyn run`` subprocesses (GD and Adam) are killed by
a watcher thread once a few checkpoints are on disk; then this process computes
the uninterrupted reference runs, and each killed file is resumed and compared
with its reference record by record.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from particledyn import Simulation, open_run
from particledyn.cli import format_info, main
from particledyn.runner import run_info
from particledyn.scenario import OBSERVER_TYPES

SCENARIO = """\
[run]
name = "resume_{optimizer}"
steps = {steps}
seed = 3
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 200
[kernel]
scaling = "mean_field"
[init]
shape = "genus_region"
n = 48
[optimizer]
name = "{optimizer}"
batch_size = 32
[schedule]
kind = "cosine"
lr = {lr}
[output]
frame_every = 2
checkpoint_every = 20
[[observers]]
type = "loss"
[[observers]]
type = "merges"
every = 10
[[observers]]
type = "betti"
every = 50
max_dim = 1
scale = 0.3
[[observers]]
type = "sharpness"
every = 100
"""
OPTIMIZERS = {"gd": 0.5, "adam": 0.01}
STEPS = 1500  # long enough that the watcher kills the run well before it ends
KILL_AFTER_CHECKPOINT = 60


def _watch_and_kill(process, path, seen):
    """Poll the file; once a checkpoint >= KILL_AFTER_CHECKPOINT exists, record info and SIGKILL."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            info = run_info(path)
        except (OSError, KeyError, ValueError):
            info = None
        if info is not None and (info["checkpoint_step"] or 0) >= KILL_AFTER_CHECKPOINT:
            seen["running"] = info
            seen["running_text"] = format_info(info)
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait()
    seen["returncode"] = process.returncode


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("resume")
    watchers, seen = [], {}
    for optimizer, lr in OPTIMIZERS.items():
        scenario = directory / f"{optimizer}.toml"
        scenario.write_text(SCENARIO.format(optimizer=optimizer, lr=lr, steps=STEPS))
        path = str(directory / f"killed_{optimizer}.h5")
        process = subprocess.Popen(
            [sys.executable, "-m", "particledyn", "run", str(scenario), "--out", path],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        seen[optimizer] = {}
        watcher = threading.Thread(target=_watch_and_kill, args=(process, path, seen[optimizer]), daemon=True)
        watcher.start()
        watchers.append(watcher)
    for watcher in watchers:
        watcher.join(timeout=300)
    # The uninterrupted references run afterwards: run in this process meanwhile, they held the
    # GIL so long that a watcher could miss the whole window between checkpoint and finish.
    for optimizer in OPTIMIZERS:
        assert (
            main(
                [
                    "run",
                    str(directory / f"{optimizer}.toml"),
                    "--out",
                    str(directory / f"reference_{optimizer}.h5"),
                ]
            )
            == 0
        )
    return directory, seen


def assert_same_records(path_a, path_b, total=STEPS):
    with open_run(path_a) as a, open_run(path_b) as b:
        assert a.finished and b.finished
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.times, b.times)
        assert a.particle_series == b.particle_series
        for name in a.particle_series:
            np.testing.assert_array_equal(a.positions(name=name), b.positions(name=name))
        assert a.observables == b.observables
        for name, keys in a.observables.items():
            for key in keys:
                steps_a, values_a = a.observable(name, key)
                steps_b, values_b = b.observable(name, key)
                np.testing.assert_array_equal(steps_a, steps_b)
                assert type(values_a) is type(values_b)
                if isinstance(values_a, list):
                    assert len(values_a) == len(values_b)
                    for x, y in zip(values_a, values_b):
                        np.testing.assert_array_equal(x, y)
                else:
                    np.testing.assert_array_equal(values_a, values_b)
        ca, cb = a.checkpoint(), b.checkpoint()
        assert ca["step"] == cb["step"] == total and ca["time"] == cb["time"]
        np.testing.assert_array_equal(ca["positions"], cb["positions"])
        for key in cb["optimizer_state"]:
            np.testing.assert_array_equal(ca["optimizer_state"][key], cb["optimizer_state"][key])
        for name, state in cb["observers"].items():
            for key, value in state.items():
                np.testing.assert_array_equal(ca["observers"][name][key], value)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_sigkilled_run_resumes_bit_identical(runs, optimizer, capsys):
    directory, seen = runs
    record = seen[optimizer]
    assert record["returncode"] == -signal.SIGKILL, "the run finished before it could be killed"
    assert record["running"]["status"] == "running" and "running (writer" in record["running_text"]
    killed = str(directory / f"killed_{optimizer}.h5")
    info = run_info(killed)
    assert info["status"] == "stopped" and KILL_AFTER_CHECKPOINT <= info["checkpoint_step"] < STEPS
    assert info["last_step"] < STEPS and not open_run(killed).finished
    assert main(["info", killed]) == 0
    assert "stopped before the end" in capsys.readouterr().out

    assert main(["run", "--resume", "--out", killed]) == 0
    assert capsys.readouterr().out.startswith(
        f"resumed {killed} at step {info['checkpoint_step']}: now at step {STEPS}"
    )
    assert_same_records(killed, str(directory / f"reference_{optimizer}.h5"))
    if optimizer == "adam":
        with open_run(killed) as run:
            assert run.particle_series == ["adam_m", "adam_v", "position"]


def test_resume_checks_the_scenario_and_the_total(runs, capsys, tmp_path):
    directory, _ = runs
    reference = str(directory / "reference_gd.h5")
    assert main(["run", "--resume", "--out", reference]) == 0
    assert f"already finished at step {STEPS}; nothing to do" in capsys.readouterr().out
    other = tmp_path / "other.toml"
    other.write_text(SCENARIO.format(optimizer="gd", lr=0.25, steps=STEPS))
    assert main(["run", str(other), "--resume", "--out", reference]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: cannot resume")
        and "schedule.lr is 0.5 in the file but 0.25 in the scenario" in err
    )
    assert main(["run", "--resume", "--out", str(tmp_path / "missing.h5")]) == 1
    assert "no run file" in capsys.readouterr().err


ALL_OBSERVERS = """\
[run]
steps = 7
seed = 5
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 60
[init]
shape = "genus_region"
n = 30
[optimizer]
batch_size = 16
[schedule]
lr = 0.02
[output]
frame_every = 2
checkpoint_every = 0
"""


def test_interrupted_run_with_every_observer_type_resumes_identically(tmp_path, monkeypatch, capsys):
    scenario = tmp_path / "all.toml"
    scenario.write_text(
        ALL_OBSERVERS + "".join(f'[[observers]]\ntype = "{kind}"\n' for kind in OBSERVER_TYPES)
    )
    reference, cut = str(tmp_path / "reference.h5"), str(tmp_path / "cut.h5")
    assert main(["run", str(scenario), "--out", reference]) == 0
    step = Simulation.step

    def interrupted_step(self):
        if self.state.step == 3:  # Ctrl-C during update 4: the loop stops once step 4 is recorded
            os.kill(os.getpid(), signal.SIGINT)
        return step(self)

    monkeypatch.setattr(Simulation, "step", interrupted_step)
    assert main(["run", str(scenario), "--out", cut]) == 130
    err = capsys.readouterr().err
    assert err.startswith(f"interrupted: {cut} keeps 3 frames (last at step 4), last checkpoint at step 4")
    assert f"run --resume --out {cut}" in err
    info = run_info(cut)
    assert info["status"] == "stopped" and info["checkpoint_step"] == 4
    assert set(info["observables"]) == set(OBSERVER_TYPES)
    monkeypatch.undo()
    assert main(["run", "--resume", "--out", cut]) == 0
    assert_same_records(cut, reference, total=7)
