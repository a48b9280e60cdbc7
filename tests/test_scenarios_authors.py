"""scenarios/authors/: one file per command of the paper authors' two READMEs, plus a digits variant
of each MNIST command. Every file validates, carries the command's settings (width, rate, epochs,
start, batch, sampling, teacher, cadence) as read from their code (GitHub
YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning), and runs at reduced size.
"""

import glob
import os

import numpy as np
import pytest
import tomllib

from particledyn.io import open_run
from particledyn.runner import prepare, start_run
from particledyn.scenario import Scenario, load_scenario, validate_scenario

HERE = os.path.dirname(os.path.abspath(__file__))
AUTHORS = os.path.join(os.path.dirname(HERE), "scenarios", "authors")
FILES = sorted(glob.glob(os.path.join(AUTHORS, "*.toml")))
STD_3D = 128**-0.25

# name -> (optimizer, lr, epochs, start); low-dim/README.md and high-dim/README.md, command by command
LOW = {
    "gd_2d_small": ("sgd", 0.0025, 100, "figure_eight"),
    "gd_2d_large": ("sgd", 0.003, 100, "figure_eight"),
    "gd_2d_alt_small": ("sgd", 0.0025, 100, "two_circles"),
    "gd_2d_alt_large": ("sgd", 0.003, 100, "two_circles"),
    "adam_2d_small": ("adam", 1e-4, 40, "two_circles"),
    "adam_2d_large": ("adam", 1e-2, 40, "two_circles"),
    "momentum_2d_small": ("momentum", 0.0045, 50, "figure_eight"),
    "momentum_2d_large": ("momentum", 0.0005, 50, "figure_eight"),
    "gd_3d_small": ("sgd", 0.0009, 20, "solid_double_torus"),
    "gd_3d_large": ("sgd", 0.0008, 20, "solid_double_torus"),
    "adam_3d_small": ("adam", 0.03, 20, "solid_double_torus"),
    "adam_3d_large": ("adam", 0.1, 20, "solid_double_torus"),
    "momentum_3d_small": ("momentum", 0.001, 20, "solid_double_torus"),
    "momentum_3d_large": ("momentum", 0.00125, 20, "solid_double_torus"),
}
HIGH = {
    "gd_small": ("sgd", 0.01, 20),
    "gd_large": ("sgd", 0.5, 20),
    "adam_small": ("adam", 1e-5, 40),
    "adam_large": ("adam", 0.001, 20),
}


def _names():
    return [os.path.basename(p)[:-5] for p in FILES]


def test_one_file_per_command():
    expected = {f"authors_{k}" for k in LOW} | {f"authors_{d}_{k}" for d in ("mnist", "digits") for k in HIGH}
    assert set(_names()) == expected  # 14 low-dim + 4 high-dim commands, and 4 digits variants


@pytest.mark.parametrize("name", sorted(LOW))
def test_low_dim_files_carry_the_command(name):
    r = load_scenario(os.path.join(AUTHORS, f"authors_{name}.toml")).resolved
    optimizer, lr, epochs, start = LOW[name]
    three = "_3d_" in name
    assert (r.optimizer.name, r.schedule.lr, r.schedule.kind) == (optimizer, lr, "constant")
    assert r.optimizer.batch_size == 128 and r.optimizer.sampling == "epoch"
    assert r.optimizer.weight_decay == 0.0
    assert getattr(r.optimizer, "beta", 0.9) == 0.9 and getattr(r.optimizer, "beta1", 0.9) == 0.9
    assert (r.run.epochs, r.run.steps) == (epochs, epochs * 28)  # ceil(3500 / 128) = 28 per epoch
    assert r.output.frame_every == 1  # their weight logger: every neuron after every step
    assert all(o.every == "1 epoch" for o in r.observers)
    d = r.data
    assert (d.kind, d.d, d.n, d.train_fraction, d.teacher_width, d.input_std) == (
        "teacher_student",
        2 if three else 1,
        5000,
        0.7,
        128,
        2.0,
    )
    assert (d.weight_std, d.output_std) == ((STD_3D, STD_3D) if three else (1.0, 0.6))
    assert (r.kernel.activation, r.kernel.loss, r.kernel.scaling) == (
        "sigmoid",
        "mse",
        "standard",
    )
    i = r.init
    assert (i.shape, i.n) == (start, 4096 if three else 1024)
    assert i.axis_scale == ((0.1, 1.0, 1.0) if three else (0.1, 1.0))
    assert i.center == ((-2.0, 0.0, 0.0) if three else (-2.0, 0.0))
    if three:
        assert i.rotation == (0.6, 0.3, 1.1)


@pytest.mark.parametrize("data", ["mnist", "digits"])
@pytest.mark.parametrize("name", sorted(HIGH))
def test_high_dim_files_carry_the_command(name, data, tmp_path):
    path = os.path.join(AUTHORS, f"authors_{data}_{name}.toml")
    if data == "mnist":  # run.epochs counts the user's training labels: MNIST's 60000
        np.savez(
            tmp_path / "mnist.npz",
            x_train=np.zeros((60000, 1), np.uint8),
            y_train=np.zeros(60000, np.uint8),
            x_test=np.zeros((1, 1), np.uint8),
            y_test=np.zeros(1, np.uint8),
        )
        r = load_scenario(path, {"data.path": str(tmp_path / "mnist.npz")}).resolved
    else:
        r = load_scenario(path).resolved
    optimizer, lr, epochs = HIGH[name]
    per_epoch = 59 if data == "mnist" else 2  # ceil(60000 / 1024); ceil(1437 / 1024)
    assert (r.optimizer.name, r.schedule.lr) == (optimizer, lr)
    assert r.optimizer.batch_size == 1024 and r.optimizer.sampling == "epoch"
    assert (r.run.epochs, r.run.steps) == (epochs, epochs * per_epoch)
    assert r.data.kind == data and r.data.normalize == (0.1307, 0.3081)
    assert (r.kernel.loss, r.init.shape, r.init.n, r.init.k, r.init.embed) == (
        "cross_entropy",
        "sphere",
        1024,
        2,
        "random_orthonormal",
    )
    observers = {o.name: o for o in r.observers}
    authors = observers["betti_authors"]
    assert (
        authors.complex,
        authors.scale,
        authors.max_dim,
        authors.coeff,
        authors.landmarks,
    ) == ("rips", "adaptive", 2, 11, None)
    assert observers["sharpness_raw"].preconditioned is False
    k = observers["sharpness_authors"]  # their high-dim/sharpness.py: 20 power iterations, test batches
    assert (k.method, k.on, k.iterations, k.batch_size, k.preconditioned) == (
        "power_iter",
        "test",
        20,
        "optimizer",
        False,
    )
    assert observers["merges"].eps_relative == 0.1  # each seed's start has its own closest pair
    assert all(o.every == "1 epoch" for o in r.observers)  # once per epoch, before training it


def _reduced(path, tmp_path):
    """The file at a small size: fewer neurons and rows, a few epochs; every observer kept."""
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    raw["init"]["n"] = 48
    if raw["data"]["kind"] == "teacher_student":
        raw["data"]["n"] = 400  # 280 training rows: 3 steps per epoch, so two epochs
    del raw["run"]["epochs"]
    raw["run"]["steps"] = 6  # digits: 2 steps per epoch (1024 + 413), three epochs
    raw["output"] = {**raw["output"], "checkpoint_every": 0}
    for observer in raw["observers"]:
        observer["every"] = 3
    scenario = Scenario(validate_scenario(raw), "", path)
    out = str(tmp_path / (os.path.basename(path)[:-5] + ".h5"))
    start_run(scenario, out=out, overwrite=True, progress=False)
    return out


RUNNABLE = [p for p in FILES if "_mnist_" not in p]


@pytest.mark.parametrize("path", RUNNABLE, ids=[os.path.basename(p)[:-5] for p in RUNNABLE])
def test_every_runnable_file_runs_at_reduced_size(path, tmp_path):
    out = _reduced(path, tmp_path)
    with open(path, "rb") as handle:
        names = {o.get("name", o["type"]) for o in tomllib.load(handle)["observers"]}
    with open_run(out) as run:
        assert run.steps[-1] == 6
        steps, loss = run.observable("loss", "loss")
        assert list(steps) == [0, 3, 6] and np.all(np.isfinite(loss))
        assert set(run.observables) == names  # every observer of the file recorded


def test_mnist_files_need_the_users_files(tmp_path):
    from particledyn.scenario.checks import ScenarioError

    # run.epochs counts the training rows of the user's files, so the placeholder fails as the file loads
    with pytest.raises(
        ScenarioError, match="^run.epochs = 20: cannot count the training rows .*PATH/TO/MNIST"
    ):
        load_scenario(os.path.join(AUTHORS, "authors_mnist_gd_small.toml"))
    scenario = load_scenario(os.path.join(AUTHORS, "authors_mnist_gd_small.toml"), {"run.steps": 3})
    with pytest.raises(ScenarioError, match="PATH/TO/MNIST"):
        prepare(scenario.resolved)
