"""Batch commits of H5MDSink (``commit_seconds``): what triggers a commit, what a reader sees
meanwhile, what a kill loses, and that a retried batch is written once."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from io_helpers import checkpoint, frame, observables
from test_io_crash import check_committed

import particledyn.io.h5md_writer as writer
from particledyn.io import H5MDSink, open_run
from particledyn.scenario import ScenarioError, parse_scenario

TESTS = str(Path(__file__).parent)


def write_steps(sink, steps):
    for k in steps:
        sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
        sink.write_observables("obs", k, 0.5 * k, observables(k))


def committed_steps(path):
    with open_run(path) as run:
        return list(run.steps), {key: list(run.observable("obs", key)[0]) for key in run.observables["obs"]}


def test_records_wait_for_a_checkpoint_a_commit_or_close(tmp_path):
    path = tmp_path / "run.h5"
    sink = H5MDSink(path, commit_seconds=3600)
    write_steps(sink, range(4))  # live since step 1; nothing committed yet
    assert committed_steps(path) == ([], {"fixed": [], "ragged": [], "scalar": []})
    sink.write_checkpoint(checkpoint(3))
    steps, obs = committed_steps(path)
    assert steps == [0, 1, 2, 3] and all(s == steps for s in obs.values())
    write_steps(sink, range(4, 6))
    assert committed_steps(path)[0] == [0, 1, 2, 3]
    sink.commit()
    assert committed_steps(path)[0] == list(range(6))
    write_steps(sink, range(6, 9))
    sink.close(finished=True)
    with open_run(path) as run:
        assert run.finished and check_committed(run) == 9


def test_a_commit_is_due_after_commit_seconds_or_commit_bytes(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(writer._time, "monotonic", lambda: clock[0])
    path = tmp_path / "run.h5"
    sink = H5MDSink(path, commit_seconds=2.0)
    write_steps(sink, range(2))
    sink.write_checkpoint(checkpoint(1))
    write_steps(sink, [2])  # the oldest staged record from now on
    clock[0] += 1.5
    write_steps(sink, [3])
    assert committed_steps(path)[0] == [0, 1]
    clock[0] += 0.5  # 2 s after step 2's records: step 4's frame commits them all
    write_steps(sink, [4])
    steps, obs = committed_steps(path)
    assert steps == [0, 1, 2, 3, 4] and all(s == [0, 1, 2, 3] for s in obs.values())
    monkeypatch.setattr(writer, "COMMIT_BYTES", 3 * frame(0).nbytes)
    write_steps(sink, [5])  # two frames and the observables: under COMMIT_BYTES
    assert committed_steps(path)[0] == list(range(5))
    write_steps(sink, [6])
    assert committed_steps(path)[0] == list(range(7))
    sink.close(finished=True)


def test_durability_frame_commits_and_fsyncs_every_frame_whatever_commit_seconds(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    for durability, per_frame in (("checkpoint", 0), ("frame", 1)):
        path = tmp_path / f"{durability}.h5"
        sink = H5MDSink(path, durability=durability, commit_seconds=3600)
        sink.write_frame(0, 0.0, frame(0))
        sink.write_frame(1, 0.5, frame(1))
        before = len(synced)
        for k in range(2, 7):
            sink.write_frame(k, 0.5 * k, frame(k))
        assert len(synced) - before == 5 * per_frame
        with open_run(path) as run:
            assert len(run.steps) == (7 if per_frame else 0)
        sink.close(finished=True)


@pytest.mark.parametrize("bad", [-1, -0.5, float("inf"), float("nan"), True, "1", None])
def test_commit_seconds_is_validated(tmp_path, bad):
    with pytest.raises(ValueError, match=r"commit_seconds=.*expected a (finite )?number of seconds >= 0"):
        H5MDSink(tmp_path / "run.h5", commit_seconds=bad)
    assert os.listdir(tmp_path) == []


SCENARIO = """\
[run]
steps = 3
[data]
kind = "teacher_student"
d = 1
[init]
shape = "genus_region"
n = 10
[schedule]
lr = 0.01
[output]
"""


def test_the_scenario_key_is_validated_and_defaults_to_one_second():
    assert parse_scenario(SCENARIO).resolved.output.commit_seconds == 1.0
    assert parse_scenario(SCENARIO + "commit_seconds = 0\n").resolved.output.commit_seconds == 0.0
    for bad, expected in (("-1", "expected 0 <= commit_seconds"), ('"soon"', "number"), ("1e9", "<= 86400")):
        with pytest.raises(ScenarioError, match=r"output\.commit_seconds") as info:
            parse_scenario(SCENARIO + f"commit_seconds = {bad}\n")
        assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_batch_interrupted_mid_commit_is_committed_once_on_the_next_try(tmp_path, monkeypatch):
    """A second Ctrl-C may raise between the commit markers of two series of one batch; the close
    that follows commits the rest of the batch, no record twice, none lost."""
    path = tmp_path / "run.h5"
    sink = H5MDSink(path, commit_seconds=3600)
    write_steps(sink, range(4))
    sink.write_checkpoint(checkpoint(3))
    write_steps(sink, range(4, 8))
    commit, calls = writer._Series.commit, []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("SIGINT again: the step was abandoned")
        commit(self)

    monkeypatch.setattr(writer._Series, "commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sink.write_checkpoint(checkpoint(6))
    monkeypatch.setattr(writer._Series, "commit", commit)
    with open_run(path) as run:  # two series hold the batch, the others not yet
        lengths = [len(run.observable("obs", key)[0]) for key in run.observables["obs"]]
        lengths += [len(run.positions(name=name)) for name in run.particle_series]
        assert sorted(lengths) == [4, 4, 4, 8, 8] and run.checkpoint()["step"] == 3
    sink.close(finished=False)
    with open_run(path) as run:
        assert check_committed(run) == 8 and run.checkpoint()["step"] == 3
        for name in run.particle_series:
            assert len(run.positions(name=name)) == 8
    resumed, ckpt = H5MDSink.resume(path, commit_seconds=3600)  # cut to the checkpoint's step
    assert ckpt["step"] == 3
    write_steps(resumed, range(3, 6))
    resumed.close(finished=True)
    with open_run(path) as run:
        assert check_committed(run) == 6


EXIT_WRITER = r"""
import os, sys
sys.path.insert(0, sys.argv[2])
from io_helpers import frame, observables, checkpoint
from particledyn.io import H5MDSink

sink = H5MDSink(sys.argv[1], commit_seconds=3600)
for k in range(6):
    sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
    sink.write_observables("obs", k, 0.5 * k, observables(k))
    if k == 3:
        sink.write_checkpoint(checkpoint(k))
if sys.argv[3] == "kill":
    os._exit(9)  # as SIGKILL: no exit handler runs
sys.exit(0)  # without closing the sink: the exit handler commits what it staged
"""


@pytest.mark.parametrize(("how", "frames"), [("exit", 6), ("kill", 4)])
def test_interpreter_exit_commits_what_a_kill_loses(tmp_path, how, frames):
    path = tmp_path / "run.h5"
    done = subprocess.run([sys.executable, "-c", EXIT_WRITER, str(path), TESTS, how], capture_output=True)
    assert done.returncode == (9 if how == "kill" else 0), done.stderr.decode()[-2000:]
    with open_run(path) as run:
        assert check_committed(run) == frames and not run.finished
        assert run.checkpoint()["step"] == 3
    sink, ckpt = H5MDSink.resume(path)
    sink.close(finished=False)
    with open_run(path) as run:
        assert check_committed(run) == 4  # the resume cuts to the checkpoint either way


BATCH_WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from io_helpers import frame, observables, checkpoint
from particledyn.io import H5MDSink

sink = H5MDSink(sys.argv[1], commit_seconds=3600)
for k in range(int(sys.argv[3])):
    sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
    sink.write_observables("obs", k, 0.5 * k, observables(k))
    if k % 3 == 0:
        sink.write_checkpoint(checkpoint(k))  # commits steps k-2..k: one batch
    if k == 1:
        print("live", flush=True)
    time.sleep(0.003)
sink.close(finished=True)
"""


def test_a_live_reader_sees_only_whole_batches(tmp_path):
    path = tmp_path / "live.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", BATCH_WRITER, str(path), TESTS, "151"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "live", proc.stderr.read()
    held, seen = open_run(path), set()
    while True:
        done = proc.poll() is not None
        for run in (held, open_run(path)):
            lengths = {"position": len(run.steps)}
            lengths.update({name: len(run.positions(name=name)) for name in run.particle_series})
            lengths.update({key: len(run.observable("obs", key)[0]) for key in run.observables["obs"]})
            # steps 0..3j: every series committed a whole number of batches
            assert all(n % 3 == 1 for n in lengths.values()), lengths
            check_committed(run)
            seen.update(lengths.values())
            if run is not held:
                run.close()
        if done:
            break
        time.sleep(0.01)
    held.close()
    assert proc.returncode == 0, proc.stderr.read()
    assert max(seen) == 151 and len(seen) >= 4  # the polls saw the run advance batch by batch
