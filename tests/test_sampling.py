"""Epoch sampling (optimizer.sampling = "epoch"): batches as PyTorch's shuffling DataLoader draws them."""

import numpy as np
import pytest

from particledyn import open_run
from particledyn.cli import main
from particledyn.data import teacher_student
from particledyn.kernels import TwoLayerNet
from particledyn.sampling import EpochBatches, steps_per_epoch
from particledyn.scenario import ScenarioError, parse_scenario


def test_epoch_batches_walk_a_permutation_per_epoch():
    batches = EpochBatches(3500, 128, seed=4)
    assert batches.steps_per_epoch == steps_per_epoch(3500, 128) == 28
    for epoch in range(3):
        rows = [batches.indices(epoch * 28 + j) for j in range(28)]
        assert [len(r) for r in rows] == [128] * 27 + [44]  # the last batch short, as drop_last=False
        np.testing.assert_array_equal(np.concatenate(rows), batches.permutation(epoch))
        np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(3500))
    assert not np.array_equal(batches.permutation(0), batches.permutation(1))
    # the permutation depends on (seed, epoch) only: in any order of asking, in a fresh object
    again = EpochBatches(3500, 128, seed=4)
    np.testing.assert_array_equal(again.indices(57), batches.indices(57))
    assert not np.array_equal(EpochBatches(3500, 128, seed=5).permutation(0), batches.permutation(0))
    assert EpochBatches(100, 100, 0).steps_per_epoch == 1 and EpochBatches(100, 500, 0).steps_per_epoch == 1


@pytest.mark.parametrize(
    "args,match",
    [
        ((0, 4, 0), "n_rows=0"),
        ((10, 0, 0), "batch_size=0"),
        ((10, 4, -1), "seed=-1"),
        ((10, 2.5, 0), "batch_size=2.5"),
    ],
)
def test_epoch_batches_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        EpochBatches(*args)


def test_kernel_context_follows_the_epoch_permutation():
    data = teacher_student(1, n=100, seed=0)
    kernel = TwoLayerNet(data.z_train, data.y_train)
    kernel.sample_by_epoch(32, seed=2)
    perm = EpochBatches(70, 32, 2).permutation(1)
    inputs, targets = kernel.context(3 + 1, np.random.default_rng(0), 32)  # epoch 1, slot 1
    np.testing.assert_array_equal(inputs, data.z_train[perm[32:64]])
    np.testing.assert_array_equal(targets, data.y_train[perm[32:64]])
    assert kernel.context(5, None, 32)[0].shape == (6, 1)  # 70 = 32 + 32 + 6
    with pytest.raises(ValueError, match="batch_size=16: expected 32"):
        kernel.context(0, None, 16)


SCENARIO = """\
[run]
name = "epochs"
steps = 40
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
name = "adam"
batch_size = 16
sampling = "epoch"
[schedule]
lr = 0.01
[output]
frame_every = 1
checkpoint_every = 10
"""


def test_epoch_sampling_scenario_resumes_bit_identical(tmp_path):
    whole, part = tmp_path / "whole.h5", tmp_path / "part.h5"
    (tmp_path / "s.toml").write_text(SCENARIO)
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(whole)]) == 0
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(part), "--steps", "13"]) == 0
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(part), "--resume", "--steps", "40"]) == 0
    with open_run(whole) as a, open_run(part) as b:
        np.testing.assert_array_equal(a.steps, b.steps)
        assert a.steps[-1] == 40
        np.testing.assert_array_equal(a.positions(), b.positions())
    # and the batches were the epoch walk: a step-sampled run differs
    other = tmp_path / "other.h5"
    (tmp_path / "o.toml").write_text(SCENARIO.replace('sampling = "epoch"', 'sampling = "step"'))
    assert main(["run", str(tmp_path / "o.toml"), "--out", str(other)]) == 0
    with open_run(whole) as a, open_run(other) as b:
        assert not np.array_equal(a.positions(40), b.positions(40))


def test_epoch_sampling_needs_a_batch_size():
    text = SCENARIO.replace("batch_size = 16\n", "")
    with pytest.raises(ScenarioError, match='optimizer.sampling = "epoch": expected optimizer.batch_size'):
        parse_scenario(text)


def test_observer_cadence_in_epochs(tmp_path):
    text = SCENARIO.replace("steps = 40", "steps = 20") + (
        '[[observers]]\ntype = "loss"\nevery = "1 epoch"\n'
        '[[observers]]\ntype = "loss"\nname = "slow"\nevery = " 2  epochs "\n'
    )
    (tmp_path / "e.toml").write_text(text)
    assert main(["run", str(tmp_path / "e.toml"), "--out", str(tmp_path / "e.h5")]) == 0
    with open_run(tmp_path / "e.h5") as run:  # 70 training rows in batches of 16: 5 steps per epoch
        assert list(run.observable("loss", "loss")[0]) == [0, 5, 10, 15, 20]
        assert list(run.observable("slow", "loss")[0]) == [0, 10, 20]
    assert parse_scenario(text).resolved.observers[1].every == "2 epochs"
    with pytest.raises(ScenarioError, match=r'observers\[0\].every = "1 epoch": expected optimizer.sampling'):
        parse_scenario(text.replace('sampling = "epoch"', 'sampling = "step"'))
    with pytest.raises(ScenarioError, match=r'observers\[0\].every = "1 week"'):
        parse_scenario(text.replace('every = "1 epoch"', 'every = "1 week"'))
    with pytest.raises(ScenarioError, match=r"observers\[0\].every = 0"):
        parse_scenario(text.replace('every = "1 epoch"', "every = 0"))


def test_epoch_sampling_needs_a_kernel_with_a_data_set():
    from particledyn.runner import prepare

    text = """\
[run]
steps = 2
[data]
kind = "linear_teacher_task"
task_index = 0
n_train = 100
n_eval = 10
[kernel]
kind = "task_switching"
epoch_steps = 2
[init]
shape = "gaussian"
n = 4
[optimizer]
batch_size = 10
sampling = "epoch"
[schedule]
lr = 0.01
"""
    with pytest.raises(
        ScenarioError,
        match='optimizer.sampling = "epoch": expected a kernel trained on a data set, got TaskSwitchingNet',
    ):
        prepare(parse_scenario(text).resolved)
