"""run.epochs: a run length in epochs (as the paper's authors give it), resolved to run.steps from the
training rows and the batch size with optimizer.sampling = "epoch"."""

import numpy as np
import pytest
import tomllib

from particledyn import open_run
from particledyn.cli import main
from particledyn.data import make_dataset, training_rows
from particledyn.scenario import ResolvedScenario, ScenarioError, parse_scenario, validate_scenario

SCENARIO = """\
[run]
name = "epochs"
epochs = 6
seed = 3
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 100
[init]
shape = "two_circles"
n = 24
axis_scale = [0.1, 1.0]
center = [-2.0, 0.0]
[optimizer]
name = "momentum"
batch_size = 16
sampling = "epoch"
[schedule]
lr = 0.01
[output]
frame_every = 1
checkpoint_every = 10
[[observers]]
type = "loss"
every = "1 epoch"
"""


def test_epochs_resolve_to_steps_from_rows_and_batch():
    run = parse_scenario(SCENARIO).resolved.run
    assert (run.epochs, run.steps) == (6, 30)  # 70 training rows in batches of 16: 5 steps per epoch
    assert parse_scenario(SCENARIO.replace("batch_size = 16", "batch_size = 70")).resolved.run.steps == 6
    assert parse_scenario(SCENARIO.replace("batch_size = 16", "batch_size = 69")).resolved.run.steps == 12
    digits = SCENARIO.replace('kind = "teacher_student"\nd = 1\nn = 100', 'kind = "digits"')
    r = parse_scenario(digits.replace("batch_size = 16", "batch_size = 1024")).resolved
    assert r.run.steps == 12  # 1437 training images: 1024 + 413
    # the cosine schedule's length derives from the resolved steps
    cosine = SCENARIO.replace("[schedule]\nlr = 0.01", '[schedule]\nkind = "cosine"\nlr = 0.01')
    assert parse_scenario(cosine).resolved.schedule.steps == 30


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "teacher_student", "d": 1, "n": 101, "train_fraction": 0.7},
        {"name": "digits", "train_fraction": 0.8},
        {"name": "digits", "train_fraction": 0.35, "n_train": 300},
        {"name": "linear_teacher_task", "task_index": 0, "n_train": 77, "n_eval": 5},
    ],
)
def test_training_rows_is_the_built_data_sets(spec):
    assert training_rows(spec) == make_dataset(spec).n_train


@pytest.mark.parametrize("n_train", [None, 40])
def test_training_rows_of_mnist_reads_the_labels_only(tmp_path, n_train):
    rng = np.random.default_rng(0)
    path = tmp_path / "m.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 255, (90, 28, 28), dtype=np.uint8),
        y_train=np.arange(90) % 10,
        x_test=rng.integers(0, 255, (20, 28, 28), dtype=np.uint8),
        y_test=np.arange(20) % 10,
    )
    spec = {"name": "mnist", "path": str(path), **({} if n_train is None else {"n_train": n_train})}
    assert training_rows(spec) == make_dataset(spec).n_train == (90 if n_train is None else 40)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            ("epochs = 6", "epochs = 6\nsteps = 30"),
            r"^run.epochs = 6: expected run.steps or run.epochs, not both "
            r"\(run.steps = 30\)$",
        ),
        (
            ('sampling = "epoch"', 'sampling = "step"'),
            r'^run.epochs = 6: expected optimizer.sampling = "epoch" .*'
            r'got "step"$',
        ),
        (("batch_size = 16\n", ""), r'^optimizer.sampling = "epoch": expected optimizer.batch_size'),
        (("epochs = 6\n", ""), r"^run.steps: missing required key \(an integer steps >= 0\)$"),
        (("epochs = 6", "epochs = 0"), r"^run.epochs = 0"),
        (("epochs = 6", "epochs = 1.5"), r"^run.epochs = 1.5"),
        (
            ('kind = "teacher_student"\nd = 1\nn = 100', 'kind = "mnist"\npath = "NO/SUCH/DIR"'),
            r"^run.epochs = 6: cannot count the training rows of \[data\]: NO/SUCH/DIR: no such directory",
        ),
    ],
)
def test_epochs_that_cannot_be_resolved(edit, match):
    with pytest.raises(ScenarioError, match=match) as info:
        parse_scenario(SCENARIO.replace(*edit))
    assert "\n" not in str(info.value)


def test_an_overridden_length_replaces_the_files():
    raw = tomllib.loads(SCENARIO)
    assert validate_scenario(raw, {"run.steps": 7}).run.to_dict() == {
        **parse_scenario(SCENARIO).resolved.run.to_dict(),
        "steps": 7,
        "epochs": None,
    }
    both = tomllib.loads(SCENARIO.replace("epochs = 6", "steps = 3"))
    assert validate_scenario(both, {"run.epochs": 2}).run.steps == 10


def test_a_resolved_scenario_with_epochs_validates_to_itself():
    resolved = parse_scenario(SCENARIO).resolved
    assert ResolvedScenario.from_dict(resolved.to_dict()) == resolved


def test_bad_epochs_on_the_command_line_exit_non_zero(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SCENARIO.replace('sampling = "epoch"', 'sampling = "step"'))
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "s.h5")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'run.epochs = 6: expected optimizer.sampling = "epoch"' in err
    assert not (tmp_path / "s.h5").exists()


def test_an_epochs_run_resumes_bit_identical(tmp_path):
    whole, part = tmp_path / "whole.h5", tmp_path / "part.h5"
    (tmp_path / "s.toml").write_text(SCENARIO)
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(whole), "--no-plots"]) == 0
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(part), "--steps", "13", "--no-plots"]) == 0
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(part), "--resume", "--steps", "30"]) == 0
    with open_run(whole) as a, open_run(part) as b:
        assert a.steps[-1] == b.steps[-1] == 30
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.positions(), b.positions())
        np.testing.assert_array_equal(a.observable("loss", "loss")[0], [0, 5, 10, 15, 20, 25, 30])
        np.testing.assert_array_equal(a.observable("loss", "loss")[1], b.observable("loss", "loss")[1])
    # resumed without a scenario: the one stored in the file (epochs resolved again)
    again = tmp_path / "again.h5"
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(again), "--steps", "7", "--no-plots"]) == 0
    assert main(["run", "--out", str(again), "--resume", "--steps", "30"]) == 0
    with open_run(whole) as a, open_run(again) as b:
        np.testing.assert_array_equal(a.positions(), b.positions())
