"""The particledyn command: help, keys, errors, --overwrite, unwritable paths, divergence, info.

Runs in-process through ``cli.main`` where it can (one numba compile for the
whole module); a few cases go through a real ``python -m particledyn``
subprocess, started concurrently to keep the module fast.
"""

import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from particledyn import open_run
from particledyn.cli import main
from particledyn.runner import run_info
from particledyn.scenario import default_scenario, parse_scenario

TINY = """\
[run]
name = "tiny"
steps = 6
seed = {seed}
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 40
[init]
shape = "genus_region"
n = {n}
[schedule]
lr = {lr}
[output]
checkpoint_every = {checkpoint_every}
[[observers]]
type = "loss"
"""


def tiny(tmp_path, name="tiny.toml", seed=0, n=12, lr=0.01, checkpoint_every=3, observers=True):
    text = TINY.format(seed=seed, n=n, lr=lr, checkpoint_every=checkpoint_every)
    if not observers:
        text = text.replace('[[observers]]\ntype = "loss"\n', "")
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def files_in(directory):
    return sorted(p.name for p in directory.iterdir())


def cli(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "particledyn", *args],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default scenario through the real command, started early so that it runs beside the others."""
    directory = tmp_path_factory.mktemp("default")
    process = cli("run", "--steps", "12", "--threads", "1", cwd=directory)
    yield process, directory
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(autouse=True)
def _start_default_run(default_run):
    """Every test of this module starts the default run (once), so it overlaps with them."""


def test_help_keys_and_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in ("run", "info", "keys", "show-default", "exit status"):
        assert word in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--resume" in capsys.readouterr().out
    assert main(["keys"]) == 0
    keys = capsys.readouterr().out
    assert "optimizer.beta1 : 0 <= beta1 < 1; default: 0.9" in keys
    assert main(["scenario-keys"]) == 0 and capsys.readouterr().out == keys
    assert main(["show-default"]) == 0
    assert parse_scenario(capsys.readouterr().out).resolved == default_scenario().resolved
    assert main([]) == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[run]\nsteps = 5\n[optimizer]\nbeta1 = 1.5\n", "error: data.kind: missing required key"),
        (
            "[run]\nsteps = 5\n[data]\nkind = 'teacher_student'\nd = 1\n[init]\nshape = 'circle'\nn = 5\n"
            "[schedule]\nlr = 0.1\n[optimizer]\nname = 'adam'\nbeta1 = 1.5\n",
            "error: optimizer.beta1 = 1.5: expected 0 <= beta1 < 1",
        ),
        (
            "[run]\nsteps = 'many'\n",
            'error: run.steps = "many": expected an integer steps >= 0, got a string',
        ),
        ("[run\nsteps = 5\n", "error: "),
    ],
)
def test_bad_scenario_exits_2_without_output(tmp_path, capsys, text, expected):
    scenario = tmp_path / "bad.toml"
    scenario.write_text(text)
    assert main(["run", str(scenario), "--out", str(tmp_path / "out.h5")]) == 2
    assert one_line_error(capsys).startswith(expected)
    assert files_in(tmp_path) == ["bad.toml"]


def test_errors_found_while_building_exit_2_without_output(tmp_path, capsys):
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        TINY.format(seed=0, n=12, lr=0.1, checkpoint_every=0).replace(
            'shape = "genus_region"', 'shape = "torus"'
        )
    )
    assert main(["run", str(scenario), "--out", str(tmp_path / "out.h5")]) == 2
    assert one_line_error(capsys) == (
        'error: init.shape = "torus": a cloud of dimension 3 does not fit neurons of dimension D = 2'
    )
    assert main(["run", str(scenario), "--threads", "100000"]) == 2
    assert "run.threads = 100000" in one_line_error(capsys)
    assert main(["run", "--default", str(scenario)]) == 2
    assert "choose one" in one_line_error(capsys)
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read scenario" in one_line_error(capsys)
    assert files_in(tmp_path) == ["s.toml"]


def test_bad_scenarios_through_the_real_command(tmp_path):
    cases = {
        "unknown.toml": (
            "[run]\nsteps = 5\nstepz = 3\n",
            "error: run.stepz: unknown key (did you mean steps?)",
        ),
        "syntax.toml": ("[run]\nsteps = = 5\n", "error: syntax.toml: not valid TOML"),
        "type.toml": ("[run]\nsteps = 5\n[data]\nkind = 7\n", "error: data.kind = 7: expected one of"),
        "observer.toml": (
            textwrap.dedent(TINY.format(seed=0, n=5, lr=0.1, checkpoint_every=0))
            + "[[observers]]\ntype = 'merges'\neps = -1\n",
            "error: observers[1].eps = -1: expected eps >= 0",
        ),
    }
    processes = {}
    for name, (text, _) in cases.items():
        (tmp_path / name).write_text(text)
        processes[name] = cli("run", name, "--out", "out.h5", cwd=tmp_path)
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 2, (name, err)
        assert err.strip().startswith(cases[name][1]) and err.count("\n") == 1, (name, err)
        assert "Traceback" not in err
    assert "out.h5" not in files_in(tmp_path)


def test_existing_output_is_refused_unless_overwrite(tmp_path, capsys):
    out = str(tmp_path / "run.h5")
    assert main(["run", tiny(tmp_path), "--out", out]) == 0
    before = open(out, "rb").read()
    assert main(["run", tiny(tmp_path, seed=1), "--out", out]) == 2
    assert "exists; pass --overwrite" in one_line_error(capsys)
    assert open(out, "rb").read() == before
    with open_run(out) as run:
        first = run.positions(0)
    assert main(["run", tiny(tmp_path, seed=1), "--out", out, "--overwrite"]) == 0
    with open_run(out) as run:
        assert run.finished and not np.array_equal(run.positions(0), first)
        assert run.parameters["seed"] == 1
    assert main(["run", "--resume", "--overwrite", "--out", out]) == 2
    assert [p for p in files_in(tmp_path) if p.startswith(".")] == []


def test_info_on_a_finished_run(tmp_path, capsys):
    out = str(tmp_path / "run.h5")
    assert main(["run", tiny(tmp_path), "--out", out]) == 0
    capsys.readouterr()
    assert main(["info", out]) == 0
    text = capsys.readouterr().out
    assert "status      finished" in text and "step 6 of 6; 7 frames (steps 0..6)" in text
    assert "loss (7 records): loss, test_loss" in text and "N = 12, D = 2" in text
    info = run_info(out)
    assert info["status"] == "finished" and info["checkpoint_step"] == 6 and info["total_steps"] == 6
    parameters = open_run(out).parameters
    assert parameters["resolved"]["run"]["steps"] == 6 and "[run]" in parameters["scenario_toml"]
    assert parameters["threads"] == 1 and parameters["backend"] == "numba"
    assert main(["info", str(tmp_path / "nothing.h5")]) == 1
    assert "no run file" in one_line_error(capsys)
    # a finished run resumed to a longer total continues it
    assert main(["run", "--resume", "--out", out, "--steps", "9"]) == 0
    assert run_info(out)["last_step"] == 9 and run_info(out)["status"] == "finished"
    assert main(["run", "--resume", "--out", out, "--steps", "4"]) == 1
    assert "already at step 9" in one_line_error(capsys)


def test_unwritable_output_paths(tmp_path, capsys):
    scenario = tiny(tmp_path)
    assert main(["run", scenario, "--out", str(tmp_path / "no" / "such" / "dir" / "run.h5")]) == 1
    assert "does not exist" in one_line_error(capsys)
    (tmp_path / "plain_file").write_text("x")
    assert main(["run", scenario, "--out", str(tmp_path / "plain_file" / "run.h5")]) == 1
    one_line_error(capsys)
    assert files_in(tmp_path) == ["plain_file", "tiny.toml"]


def test_full_disk_leaves_the_existing_file_intact(tmp_path, capsys):
    out = tmp_path / "run.h5"
    out.write_bytes(b"the previous run's file")
    scenario = tiny(tmp_path, n=40000, observers=False)  # a 640 kB first frame
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, hard))  # writes past 300 kB fail (EFBIG)
    try:
        code = main(["run", scenario, "--out", str(out), "--overwrite"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert code == 1
    assert "File too large" in one_line_error(capsys)
    assert out.read_bytes() == b"the previous run's file"
    assert files_in(tmp_path) == ["run.h5", "tiny.toml"]  # no temporary file left behind


def test_divergence_exit_code_message_and_file(tmp_path, capsys):
    out = str(tmp_path / "run.h5")
    scenario = tmp_path / "div.toml"
    scenario.write_text(
        TINY.format(seed=0, n=16, lr=3.0, checkpoint_every=5).replace(
            "steps = 6",
            "steps = 500\ndivergence_growth = 0",  # the NaN/inf rule (growth: test_divergence)
        )
    )
    with np.errstate(all="ignore"):
        code = main(["run", str(scenario), "--out", out])
    assert code == 3
    err = one_line_error(capsys)
    assert err.startswith("error: the run diverged at step ") and "marked not finished" in err
    # the loss overflows one step before the positions: that step is recorded, then the run stops
    assert "the loss became NaN or inf" in err
    step = int(err.split("at step ")[1].split(":")[0])
    info = run_info(out)
    assert info["status"] == "diverged" and info["last_step"] == step and info["frames"] == step + 1
    with open_run(out) as run:
        assert not run.finished and np.isfinite(run.positions()).all()
    assert main(["info", out]) == 0
    assert f"diverged at step {step}" in capsys.readouterr().out
    assert main(["run", "--resume", "--out", out]) == 1
    assert f"the run diverged at step {step}" in one_line_error(capsys)


def test_default_scenario_runs_end_to_end_from_the_cli(default_run):
    process, directory = default_run
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert out.startswith("wrote default.h5: 12 steps, finished")
    info = run_info(str(directory / "default.h5"))
    assert info["status"] == "finished" and info["last_step"] == 12 and info["total_steps"] == 12
    assert set(info["observables"]) == {"loss", "pairwise_lipschitz", "sharpness", "merges", "betti"}
    assert info["n_particles"] == 1000 and info["dim"] == 2
    with open_run(str(directory / "default.h5")) as run:
        steps, loss = run.observable("loss", "loss")
        assert list(steps) == [0] and np.isfinite(loss[0])  # every 25 steps
        steps, _ = run.observable("pairwise_lipschitz", "eta_K")
        assert list(steps) == [0, 10]
        _, betti = run.observable("betti", "betti")
        assert tuple(betti[0][0]) == (1, 2)  # the genus-2 start: one component, two holes


def test_output_options_reach_the_file(tmp_path):
    scenario = tmp_path / "out.toml"
    scenario.write_text(
        TINY.format(seed=0, n=12, lr=0.01, checkpoint_every=0).replace(
            "checkpoint_every = 0", 'checkpoint_every = 0\nframe_every = 0\nsubset = 5\ndtype = "float32"'
        )
    )
    out = str(tmp_path / "run.h5")
    assert main(["run", str(scenario), "--out", out]) == 0
    with open_run(out) as run:
        assert list(run.steps) == [0, 6]  # frame_every = 0: the first and the last frame
        assert run.positions().shape == (2, 5, 2) and run.positions().dtype == np.float32
        np.testing.assert_array_equal(run.ids, [0, 3, 6, 8, 11])  # 5 evenly spaced of 12
        np.testing.assert_allclose(run.masses, np.full(5, 1 / 12))
        assert run.parameters["resolved"]["output"]["subset"] == 5
