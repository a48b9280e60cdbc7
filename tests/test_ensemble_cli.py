"""`particledyn run` of a scenario with run.replicas: one ensemble file whose replica r reads as the
scenario run alone with that replica's seed and lr; resume of an interrupted ensemble file."""

import numpy as np
import pytest

from particledyn import open_run
from particledyn.cli import main
from particledyn.runner import resume_run, start_run
from particledyn.scenario import ScenarioError, parse_scenario

SCENARIO = """\
[run]
name = "ens"
steps = 12
seed = 3
threads = 1
{ensemble}
[data]
kind = "teacher_student"
d = 1
n = 200
[kernel]
scaling = "mean_field"
[init]
shape = "genus_region"
n = 32
[optimizer]
name = "adam"
batch_size = 32
[schedule]
kind = "cosine"
lr = 0.01
[output]
frame_every = 2
checkpoint_every = 4
[[observers]]
type = "loss"
[[observers]]
type = "merges"
every = 3
"""
ENSEMBLE = "replicas = 3\nreplica_seeds = [5, 6, 7]\nreplica_lrs = [0.01, 0.02, 0.04]"


def test_run_writes_an_ensemble_file_whose_replicas_are_the_single_runs(tmp_path):
    path = str(tmp_path / "ens.h5")
    scenario_path = tmp_path / "ens.toml"
    scenario_path.write_text(SCENARIO.format(ensemble=ENSEMBLE))
    assert main(["run", str(scenario_path), "--out", path]) == 0
    for r, (seed, lr) in enumerate(zip([5, 6, 7], [0.01, 0.02, 0.04])):
        alone = str(tmp_path / f"alone{r}.h5")
        overrides = {"run.seed": seed, "schedule.lr": lr}
        scenario = parse_scenario(SCENARIO.format(ensemble=""), overrides=overrides)
        start_run(scenario, out=alone, progress=False)
        with open_run(path) as run, open_run(alone) as single:
            view = run.replica(r)
            np.testing.assert_array_equal(view.positions(), single.positions())
            assert view.observables == single.observables
            for name, keys in single.observables.items():
                for key in keys:
                    got, want = view.observable(name, key), single.observable(name, key)
                    np.testing.assert_array_equal(got[0], want[0])
                    for a, b in zip(got[1], want[1]):
                        np.testing.assert_array_equal(a, b)
            assert view.parameters["replica_seed"] == seed and view.finished


def test_an_interrupted_ensemble_file_resumes_bit_identically(tmp_path):
    whole, cut = str(tmp_path / "whole.h5"), str(tmp_path / "cut.h5")
    text = SCENARIO.format(ensemble=ENSEMBLE).replace('"cosine"', '"constant"')  # lr not tied to run.steps
    start_run(parse_scenario(text), out=whole, progress=False)
    start_run(parse_scenario(text, overrides={"run.steps": 6}), out=cut, progress=False)
    result = resume_run(cut, steps=12, progress=False)
    assert (result.start_step, result.final_step) == (6, 12)
    with open_run(whole) as a, open_run(cut) as b:
        np.testing.assert_array_equal(a.positions(), b.positions())
        for r in range(3):
            np.testing.assert_array_equal(
                a.replica(r).observable("loss", "loss")[1], b.replica(r).observable("loss", "loss")[1]
            )


@pytest.mark.parametrize(
    "ensemble, message",
    [
        (
            "replicas = 2\nreplica_seeds = [1, 2, 3]",
            r"run.replica_seeds with 3 entries: expected run.replicas = 2",
        ),
        ("replicas = 2\nreplica_lrs = [0.1, -1.0]", r"run.replica_lrs.*positive finite learning rates"),
        ("replicas = 0", r"run.replicas"),
        ('replicas = 2\nbackend = "cupy"', r'run.replicas = 2: expected run.backend = "numba"'),
    ],
)
def test_bad_ensemble_keys_are_refused(ensemble, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(SCENARIO.format(ensemble=ensemble))
