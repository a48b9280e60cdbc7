"""Ctrl-C and SIGTERM at any moment of a step: exit 130, no record lost, exact resume.

Randomized trials: each runs ``particledyn run`` in a subprocess (``signal_driver.py``)
that sends itself SIGINT or SIGTERM at a chosen moment of a step -- inside the field, after
the optimizer's in-place state update, after the in-place position update, after the step
counter moved, between the commits of one record, inside an observer, inside a checkpoint
write -- once, twice in a row, or a second time during the clean-up. Every trial must exit
130 without a traceback, keep a checkpoint at least as recent as its last record (one
signal), and resume (in this process) into records and a checkpoint bit-identical to an
uninterrupted run of the same scenario. GD, momentum and Adam; N from 100 to 100 000.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_resume import assert_same_records

from particledyn import open_run
from particledyn.cli import main
from particledyn.runner import run_info
from particledyn.scenario import OBSERVER_TYPES

DRIVER = str(Path(__file__).with_name("signal_driver.py"))
TRIALS = 40
PARALLEL = 2

BASE = """\
[run]
steps = {steps}
seed = 7
threads = 1
[data]
kind = "teacher_student"
d = 1
n = {data}
[init]
shape = "genus_region"
n = {n}
[optimizer]
name = "{optimizer}"
batch_size = {batch}
[schedule]
kind = "cosine"
lr = {lr}
[output]
frame_every = {frame_every}
checkpoint_every = {checkpoint_every}
"""


def observers(*kinds, every=1):
    return "".join(
        f'[[observers]]\ntype = "{kind}"\nevery = {every if kind != "loss" else 1}\n' for kind in kinds
    )


# name: (scenario, steps); N = 10^5 ones with cheap settings (a small data set, the loss only)
CONFIGS = {
    "gd_every_observer": (
        BASE.format(
            steps=6, data=60, n=100, optimizer="gd", batch=16, lr=0.05, frame_every=1, checkpoint_every=2
        )
        + observers("loss", *[k for k in OBSERVER_TYPES if k != "loss"], every=2),
        6,
    ),
    "momentum_geometry": (
        BASE.format(
            steps=8,
            data=80,
            n=500,
            optimizer="momentum",
            batch=32,
            lr=0.005,  # trains (0.05 grows the loss 1e8-fold in 4 steps: diverged)
            frame_every=2,
            checkpoint_every=3,
        )
        + observers("loss", "merges", "pairwise_lipschitz", "balance", "lemmas"),
        8,
    ),
    "adam_topology": (
        BASE.format(
            steps=8, data=80, n=300, optimizer="adam", batch=32, lr=0.01, frame_every=1, checkpoint_every=3
        )
        + observers("loss", "betti", "sharpness", "expansion", every=2),
        8,
    ),
    "adam_1e5": (
        BASE.format(
            steps=5, data=16, n=100_000, optimizer="adam", batch=8, lr=0.01, frame_every=2, checkpoint_every=2
        )
        + observers("loss"),
        5,
    ),
    "momentum_1e5": (
        BASE.format(
            steps=5,
            data=16,
            n=100_000,
            optimizer="momentum",
            batch=8,
            lr=1e-6,  # N = 10^5 in the standard scaling: larger rates diverge
            frame_every=1,
            checkpoint_every=3,
        )
        + observers("loss"),
        5,
    ),
}
WEIGHTS = {
    "gd_every_observer": 3,
    "momentum_geometry": 3,
    "adam_topology": 3,
    "adam_1e5": 1,
    "momentum_1e5": 1,
}
POINTS = ("field", "direction", "apply", "step", "commit", "observer", "checkpoint")
MODES = {"single": 0.6, "twice": 0.2, "cleanup": 0.2}


def draw_trials(rng, count):
    names = list(CONFIGS)
    p = np.array([WEIGHTS[n] for n in names], dtype=float)
    trials = []
    for i in range(count):
        name = names[rng.choice(len(names), p=p / p.sum())]
        steps = CONFIGS[name][1]
        point = POINTS[i % len(POINTS)] if i < 2 * len(POINTS) else POINTS[rng.integers(len(POINTS))]
        # calls per run: field/direction/apply/step once a step, the loss observer 1 + steps,
        # commits several per step, checkpoint writes at least steps // checkpoint_every
        limit = {"observer": steps + 1, "checkpoint": 2, "commit": 2 * steps}.get(point, steps)
        trials.append(
            {
                "config": name,
                "point": point,
                "call": int(rng.integers(1, limit + 1)),
                "signal": ("INT", "TERM")[int(rng.integers(2))],
                "mode": str(rng.choice(list(MODES), p=list(MODES.values()))),
            }
        )
    return trials


class Server:
    """The fork server of ``signal_driver.py``: one import of particledyn, one child per job."""

    def __init__(self):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
            ),
        }
        self.process = subprocess.Popen(
            [sys.executable, DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout.readline().strip() == "ready"

    def run(self, jobs):
        """Exit statuses of ``jobs``, PARALLEL at a time."""
        codes, began = [], time.perf_counter()
        for start in range(0, len(jobs), PARALLEL):
            self.process.stdin.write(json.dumps(jobs[start : start + PARALLEL]) + "\n")
            self.process.stdin.flush()
            codes += json.loads(self.process.stdout.readline())
        print(f"{len(jobs)} jobs in {time.perf_counter() - began:.1f} s")
        return codes

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    server = Server()
    yield server
    server.close()


def run_argv(path, *extra):
    return ["run", *extra, "--out", str(path), "--no-plots", "--no-progress"]


def test_signals_at_any_moment_of_a_step_never_break_exact_resume(server, tmp_path):
    jobs = []
    for name, (text, _) in CONFIGS.items():
        (tmp_path / f"{name}.toml").write_text(text)
        jobs.append(
            {
                "argv": run_argv(tmp_path / f"{name}.h5", str(tmp_path / f"{name}.toml")),
                "log": str(tmp_path / f"{name}.log"),
            }
        )
    assert server.run(jobs) == [0] * len(CONFIGS)
    trials = draw_trials(np.random.default_rng(2026), TRIALS)
    jobs = []
    for i, trial in enumerate(trials):
        out = str(tmp_path / f"trial{i}.h5")
        trial["out"] = out
        jobs.append(
            {
                "argv": run_argv(out, str(tmp_path / f"{trial['config']}.toml")),
                "log": str(tmp_path / f"trial{i}.log"),
                "trial": trial,
            }
        )
    codes = server.run(jobs)
    failures, checked, unwritten = {}, [], 0
    for i, (trial, code) in enumerate(zip(trials, codes)):
        out, what = trial["out"], f"trial {i} {trial}"
        stdout, stderr = Path(jobs[i]["log"]).read_text(), Path(jobs[i]["log"] + ".err").read_text()
        try:
            assert os.path.exists(out + ".kill.json"), f"{what}: no signal was sent"
            sent = json.loads(Path(out + ".kill.json").read_text())
            assert code == 130, f"{what}: exit {code}: {stdout} {stderr}"
            assert "Traceback" not in stderr, f"{what}: traceback: {stderr}"
            assert not list(tmp_path.glob(f".trial{i}.h5.*")), f"{what}: a temporary file is left"
            if trial["mode"] != "single" and sent["signal_step"] <= 0 and not os.path.exists(out):
                # the second signal abandoned the first step before its checkpoint: nothing to resume
                assert stderr.strip() == "interrupted: no file was written", f"{what}: {stderr}"
                unwritten += 1
                continue
            assert f"particledyn run --resume --out {out}" in stderr, f"{what}: {stderr}"
            assert "finished" not in stdout, f"{what}: reported success: {stdout}"
            info = run_info(out)
            assert info["status"] == "stopped", f"{what}: {info['status']}"
            checkpoint = -1 if info["checkpoint_step"] is None else info["checkpoint_step"]
            if trial["mode"] != "twice":  # a second signal in a row may abort the step
                assert checkpoint >= sent["signal_step"], (
                    f"{what}: checkpoint at {checkpoint}, records up to step {sent['signal_step']}"
                )
            checked.append(i)
        except (AssertionError, OSError, KeyError, ValueError) as exc:
            failures[i] = " ".join(str(exc).split())[:400]
    resumes = [
        {"argv": run_argv(trials[i]["out"], "--resume"), "log": str(tmp_path / f"resume{i}.log")}
        for i in checked
    ]
    exact = 0
    for i, code, job in zip(checked, server.run(resumes), resumes):
        trial = trials[i]
        try:
            errors = Path(job["log"] + ".err").read_text()
            assert code == 0, f"trial {i} {trial}: resume exit {code}: {errors}"
            assert_same_records(
                trial["out"], str(tmp_path / f"{trial['config']}.h5"), CONFIGS[trial["config"]][1]
            )
            exact += 1
        except AssertionError as exc:
            failures[i] = f"trial {i} {trial}: " + " ".join(str(exc).split())[:400]
    print(
        f"\n{len(trials)} interrupted runs: {exact} resumed bit-identically, {unwritten} stopped "
        "in their first step by a second signal (no file, nothing to resume)"
    )
    assert not failures, f"{len(failures)} of {len(trials)} trials failed:\n" + "\n".join(failures.values())


@pytest.mark.parametrize(("commit_seconds", "last_step"), [(0, 2), (60, 0)])
def test_a_run_killed_before_its_first_periodic_checkpoint_resumes_from_step_0(
    server, tmp_path, commit_seconds, last_step
):
    """Killed in update 3: records of steps 1 and 2 are in the file when every record is committed
    at once (commit_seconds = 0), lost with the batch they were staged in otherwise; the resume
    cuts them either way and ends bit-identical."""
    text = BASE.format(
        steps=6, data=40, n=100, optimizer="adam", batch=8, lr=0.01, frame_every=1, checkpoint_every=0
    ) + observers("loss", "merges")
    text = text.replace("[output]\n", f"[output]\ncommit_seconds = {commit_seconds}\n")
    scenario = tmp_path / "late.toml"
    scenario.write_text(text)
    reference, killed = tmp_path / "reference.h5", str(tmp_path / "killed.h5")
    trial = {"point": "step", "call": 3, "signal": "KILL", "mode": "single", "out": killed}
    codes = server.run(
        [
            {"argv": run_argv(reference, str(scenario)), "log": str(tmp_path / "ref.log")},
            {"argv": run_argv(killed, str(scenario)), "log": str(tmp_path / "killed.log"), "trial": trial},
        ]
    )
    assert codes == [0, -9]
    info = run_info(killed)
    assert info["status"] == "stopped" and info["checkpoint_step"] == 0 and info["last_step"] == last_step
    assert main(["info", killed]) == 0
    assert main(run_argv(killed, "--resume")) == 0
    assert_same_records(killed, reference, 6)


def test_sigkill_between_and_inside_batch_commits_resumes_bit_identically(server, tmp_path):
    """Records staged for the next batch commit (commit_seconds = 60: only checkpoints commit) are
    what a SIGKILL loses: killed in update 13, the file holds steps up to the checkpoint at 10.
    Killed inside the batch commit before the checkpoint at 10 (rows of every series written and
    flushed, three of the commit markers written), or while that checkpoint is encoded (before its
    batch commit), it resumes from step 5. Every
    resume ends bit-identical to the uninterrupted run."""
    text = BASE.format(
        steps=20, data=40, n=100, optimizer="adam", batch=8, lr=0.01, frame_every=1, checkpoint_every=5
    ) + observers("loss", "merges")
    text = text.replace("[output]\n", "[output]\ncommit_seconds = 60\n")
    scenario = tmp_path / "batches.toml"
    scenario.write_text(text)
    reference = tmp_path / "reference.h5"
    assert server.run([{"argv": run_argv(reference, str(scenario)), "log": str(tmp_path / "ref.log")}]) == [0]
    info = run_info(str(reference))
    series = len(info["particle_series"]) + sum(len(keys) for keys in info["observables"].values())
    # (point, call): update 13; the third series of the batch at step 10's checkpoint (the third
    # batch: steps 0, 1-5, 6-10); the encoding of the checkpoint at step 10 (the third)
    cases = {
        "staged": ("step", 13),
        "mid_commit": ("commit", 2 * series + 3),
        "checkpoint": ("checkpoint", 3),
    }
    jobs = []
    for name, (point, call) in cases.items():
        out = str(tmp_path / f"{name}.h5")
        trial = {"point": point, "call": call, "signal": "KILL", "mode": "single", "out": out}
        jobs.append(
            {"argv": run_argv(out, str(scenario)), "log": str(tmp_path / f"{name}.log"), "trial": trial}
        )
    assert server.run(jobs) == [-9] * len(cases)
    expected = {"staged": (10, 10), "mid_commit": (5, None), "checkpoint": (5, 5)}
    for name, (checkpoint_step, last_step) in expected.items():
        out = str(tmp_path / f"{name}.h5")
        info = run_info(out)
        assert info["status"] == "stopped" and info["checkpoint_step"] == checkpoint_step, (name, info)
        if last_step is not None:
            assert info["last_step"] == last_step, (name, info)
        else:  # killed among the commit markers, before their flush: a series ends at 5 or 10
            with open_run(out) as run:
                ends = {int(run.observable(o, k)[0][-1]) for o, keys in run.observables.items() for k in keys}
                ends.add(int(run.steps[-1]))
            assert 5 in ends and ends <= {5, 10}, (name, ends)
    resumes = [
        {"argv": run_argv(tmp_path / f"{name}.h5", "--resume"), "log": str(tmp_path / f"r{name}.log")}
        for name in cases
    ]
    assert server.run(resumes) == [0] * len(cases), [Path(j["log"] + ".err").read_text() for j in resumes]
    for name in cases:
        assert_same_records(str(tmp_path / f"{name}.h5"), str(reference), 20)
