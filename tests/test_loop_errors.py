"""Errors inside a run's loop: a one-line error, no hidden temporary file, the last checkpoint kept."""

import numpy as np
import pytest

from particledyn.cli import main
from particledyn.io import open_run
from particledyn.observers import LossObserver
from particledyn.runner import run_info

SCENARIO = """\
[run]
steps = 6
seed = 2
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 40
[init]
shape = "genus_region"
n = 30
[schedule]
lr = 0.05
[output]
checkpoint_every = 0
[[observers]]
type = "loss"
"""


def failing_at(step, error):
    observe = LossObserver.observe

    def failing(self, info):
        if info.step == step:
            raise error
        return observe(self, info)

    return failing


@pytest.mark.parametrize(
    "error, message",
    [
        (
            ValueError("boom"),
            "error: observer 'loss' failed at step 0: ValueError: boom; no file was written",
        ),
        (
            MemoryError(),
            "error: out of memory: reduce init.n, data.n or the observers' work; no file was written",
        ),
    ],
)
def test_an_error_at_the_first_step_leaves_no_file_and_no_temporary_file(
    tmp_path, monkeypatch, capsys, error, message
):
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    monkeypatch.setattr(LossObserver, "observe", failing_at(0, error))
    assert main(["run", str(scenario), "--out", str(tmp_path / "run.h5")]) == 1
    assert capsys.readouterr().err.strip() == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_an_observer_error_later_keeps_the_file_resumable(tmp_path, monkeypatch, capsys):
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    path = str(tmp_path / "run.h5")
    monkeypatch.setattr(LossObserver, "observe", failing_at(3, ValueError("boom")))
    assert main(["run", str(scenario), "--out", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: observer 'loss' failed at step 3: ValueError: boom; {path} keeps "
        "4 frames (last at step 3), last checkpoint at step 0"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5", "s.toml"]
    info = run_info(path)
    assert info["status"] == "stopped" and info["checkpoint_step"] == 0
    monkeypatch.undo()
    assert main(["run", "--resume", "--out", path, "--no-plots"]) == 0
    reference = str(tmp_path / "reference.h5")
    assert main(["run", str(scenario), "--out", reference, "--no-plots"]) == 0
    with open_run(path) as a, open_run(reference) as b:
        np.testing.assert_array_equal(a.positions(), b.positions())
        np.testing.assert_array_equal(a.observable("loss", "loss")[1], b.observable("loss", "loss")[1])
