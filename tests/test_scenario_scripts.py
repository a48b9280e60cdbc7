"""The analysis scripts of ``scenarios/`` run end to end on small real run files.

``power_iter_gap.py`` and ``seed_curves.py`` read a file's scenario through
:func:`particledyn.runner.recorded_scenario` (the typed scenario, per replica for an ensemble
file); their printed figures are checked against values computed here from the files.
"""

import importlib.util
import os
import re

import numpy as np
import pytest
from run_files import make_run, png_is_drawn

from particledyn.data import dataset_spec, make_dataset
from particledyn.io import open_run
from particledyn.kernels import TwoLayerNet
from particledyn.runner import recorded_scenario, start_run
from particledyn.scenario import ScenarioError, load_scenario

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTHORS = os.path.join(ROOT, "scenarios", "authors", "authors_digits_gd_large.toml")
SMALL = {
    "init.n": 10,  # D = 64 + 10: 740 parameters, a dense Hessian is cheap
    "run.epochs": 2,  # 2 steps per epoch (1024 + 413 rows): steps 0, 2, 4 recorded
    "output.checkpoint_every": 0,
    "output.frame_every": 2,
}


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scenarios", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(path, **overrides):
    start_run(load_scenario(AUTHORS, {**SMALL, **overrides}), out=str(path), progress=False)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An ensemble of two seeds (5 and 6, data drawn by each seed) and seed 6 run alone."""
    folder = tmp_path_factory.mktemp("scripts")
    ensemble = _run(folder / "ensemble.h5", **{"run.seed": 5, "run.replicas": 2})
    alone = _run(folder / "alone.h5", **{"run.seed": 6})
    return ensemble, alone


def _numbers(text, label):
    return float(re.search(rf"{label} ([-+0-9.e]+)", text).group(1))


def test_recorded_scenario_gives_a_replica_its_own_seed_and_data_draw(files):
    ensemble, alone = files
    with open_run(ensemble) as run, open_run(alone) as single:
        assert recorded_scenario(run).run.replicas == 2
        own = recorded_scenario(run.replica(1))
        assert own.run.seed == 6 and own.run.replicas == 1
        assert own.data == recorded_scenario(single).data
        # the file's record is the ensemble's, with replica 0's data draw
        assert recorded_scenario(run).data.seed != own.data.seed


def test_recorded_scenario_of_a_file_without_a_scenario_names_it(tmp_path):
    path = make_run(tmp_path / "api.h5", lr=0.1, steps=2, n=10, observers=("loss",))
    with open_run(path) as run, pytest.raises(ScenarioError, match="records no scenario"):
        recorded_scenario(run)


def _exact_top(run, step):
    """The largest-magnitude eigenvalue of the test-set Hessian at ``step``, from the dense
    Hessian (every column an HVP), with the data drawn from the file's own scenario."""
    resolved = recorded_scenario(run)
    data = make_dataset(dataset_spec(resolved.data.to_dict()))
    k = resolved.kernel
    kernel = TwoLayerNet(
        data.z_train, data.y_train, loss=k.loss, scaling=k.scaling, activation=k.activation, n_outputs=10
    )
    x = np.asarray(run.positions(step), dtype=np.float64)
    product = kernel.hvp_operator(x, np.ones(len(x)), (data.z_test, data.y_test))
    eye = np.eye(x.size)
    hessian = np.stack([np.asarray(product(eye[i])).ravel() for i in range(x.size)])
    values = np.linalg.eigvalsh((hessian + hessian.T) / 2)
    return values[np.argmax(np.abs(values))]


def test_power_iter_gap_prints_the_gap_to_the_exact_eigenvalue(files, capsys):
    _, alone = files
    assert _script("power_iter_gap").main([alone]) == 0
    text = capsys.readouterr().out
    with open_run(alone) as run:
        steps, power = run.observable("sharpness_authors", "lambda_max")
        stopped = np.asarray(run.observable("sharpness_authors", "converged")[1], dtype=bool)
        exact = np.array([_exact_top(run, int(s)) for s in steps])
    gap = (exact - np.asarray(power)) / np.abs(exact)
    assert f"{alone}: {len(steps)} records;" in text
    assert _numbers(text, "median") == pytest.approx(np.median(gap), rel=1e-2, abs=1e-8)
    assert _numbers(text, "largest") == pytest.approx(gap.max(), rel=1e-2, abs=1e-8)
    assert _numbers(text, "smallest") == pytest.approx(gap.min(), rel=1e-2, abs=1e-8)
    assert f"{int(stopped.sum())} of {len(stopped)}" in text


def test_power_iter_gap_rebuilds_each_replicas_own_data(files):
    # Replica 1 of the ensemble is seed 6's run: the same frames, the same power values, and
    # (its test set drawn by its own seed) the same exact eigenvalues; read through the
    # ensemble's record it would get replica 0's test set.
    ensemble, alone = files
    gaps = _script("power_iter_gap").gaps
    with open_run(ensemble) as run, open_run(alone) as single:
        replica_gap, replica_stopped = gaps(run.replica(1))
        alone_gap, alone_stopped = gaps(single)
    np.testing.assert_allclose(replica_gap, alone_gap, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(replica_stopped, alone_stopped)


def test_seed_curves_draws_and_tabulates_the_seeds_mean_and_spread(files, tmp_path, capsys):
    ensemble, alone = files
    out = tmp_path / "curves.png"
    assert _script("seed_curves").main([str(out), f"two seeds={ensemble}", f"seed 6={alone}"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert png_is_drawn(out)
    assert len(table) == 4 and table[2].startswith("| two seeds | 2 | 2 |")  # 4 steps: epoch 2
    assert table[3].startswith("| seed 6 | 1 | 2 |")
    cells = [c.strip() for c in table[2].split("|")[1:-1]]
    with open_run(ensemble) as run:
        loss = np.array([run.replica(r).observable("loss", "loss")[1][-1] for r in range(2)])
        test = np.array([run.replica(r).observable("loss", "test_loss")[1][-1] for r in range(2)])
        atoms = min(int(run.replica(r).observable("merges", "n_atoms")[1][-1]) for r in range(2))
        steps = run.replica(0).observable("loss", "loss")[0]
    assert list(steps) == [0, 2, 4]
    assert cells[5] == f"{loss.mean():.3g} +- {loss.std():.2g}"
    assert cells[6] == f"{test.mean():.3g} +- {test.std():.2g}"
    assert cells[8] == str(atoms)
    assert loss.std() > 0  # two seeds, two data draws: a real spread
    with open_run(alone) as single:
        alone_loss = single.observable("loss", "loss")[1][-1]
    assert alone_loss == loss[1]  # replica 1 is seed 6's run
    assert table[3].split("|")[6].strip() == f"{alone_loss:.3g} +- 0"
