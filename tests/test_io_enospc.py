"""A full disk: one-line error, exit 1, no segfault, no temporary file, the file resumable.

On a small tmpfs mounted for the test (needs root; skipped otherwise). Today such a
run prints a traceback and then segfaults (exit 139) when HDF5 closes the file.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from particledyn import open_run

SCENARIO = """\
[run]
name = "full"
steps = 100
seed = 0
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 40
[init]
shape = "genus_region"
n = 4000
[schedule]
lr = 0.001
[output]
checkpoint_every = 5
"""


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 6 MiB tmpfs here ({mounted.stderr.strip() or 'not root'})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def command(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "particledyn", *args, "--no-plots"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_disk_full_mid_run_is_one_line_exit_1_and_the_file_resumes_exactly(tmp_path, small_disk):
    (tmp_path / "s.toml").write_text(SCENARIO)
    full = command("run", "s.toml", "--out", str(small_disk / "run.h5"), cwd=tmp_path)
    assert full.returncode == 1, (full.returncode, full.stderr[-2000:])
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no space left on device" in lines[0]
    assert os.listdir(small_disk) == ["run.h5"]  # no hidden temporary file
    shutil.copy(small_disk / "run.h5", tmp_path / "cut.h5")
    resumed = command("run", "--resume", "--out", "cut.h5", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = command("run", "s.toml", "--out", "whole.h5", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    with open_run(tmp_path / "cut.h5") as a, open_run(tmp_path / "whole.h5") as b:
        assert a.finished and a.steps[-1] == 100
        np.testing.assert_array_equal(a.positions(100), b.positions(100))


def test_disk_full_at_the_start_keeps_the_file_overwrite_would_replace(tmp_path, small_disk):
    (tmp_path / "s.toml").write_text(SCENARIO)
    out = small_disk / "run.h5"
    out.write_bytes(b"the previous run's file")
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 512 * 1024))
    result = command("run", "s.toml", "--out", str(out), "--overwrite", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0]
    assert out.read_bytes() == b"the previous run's file"
    assert sorted(os.listdir(small_disk)) == ["filler", "run.h5"]


def test_an_io_error_inside_hdf5_is_one_line_exit_1_and_the_file_resumes(tmp_path, monkeypatch, capsys):
    """h5py reports some failed writes as RuntimeError (only OSError was caught: a traceback)."""
    import h5py

    from particledyn.cli import main

    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO.replace("n = 4000", "n = 12").replace("steps = 100", "steps = 30"))
    real_flush, calls = h5py.File.flush, []

    def failing_flush(self):
        calls.append(1)
        # some steps in, after the first checkpoints: the 11th flush is the first of the batch
        # commit before the checkpoint at step 10 (records are committed in batches, two flushes
        # each, and a checkpoint flushes twice)
        if len(calls) > 10:
            raise RuntimeError(
                "Unable to synchronously flush file (file write failed: errno = 5, "
                "error message = 'Input/output error')"
            )
        return real_flush(self)

    monkeypatch.setattr(h5py.File, "flush", failing_flush)
    out = tmp_path / "run.h5"
    assert main(["run", str(scenario), "--out", str(out), "--no-plots"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "input/output error" in err, err
    monkeypatch.setattr(h5py.File, "flush", real_flush)
    assert sorted(os.listdir(tmp_path)) == ["run.h5", "s.toml"]
    assert main(["run", "--resume", "--out", str(out), "--no-plots"]) == 0
    with open_run(out) as run:
        assert run.finished and run.steps[-1] == 30
