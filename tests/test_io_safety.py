"""Output safety: a live run's file is never replaced or resumed, only regular files are
replaced, crafted files are refused, a stale writer PID is cleared with force, and a reader
holding a file open sees ``finished`` become True."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from damage_trials import write_base
from io_helpers import checkpoint, frame

from particledyn.io import H5MDSink, open_run
from particledyn.io.locking import FileLockedError, WriteLock, is_locked
from particledyn.runner import run_info

TESTS = str(Path(__file__).parent)

HELD_WRITER = r"""
import sys
sys.path.insert(0, sys.argv[2])
from io_helpers import frame, checkpoint
from particledyn.io import H5MDSink

sink = H5MDSink(sys.argv[1])
for k in range(5):
    sink.write_frame(k, 0.5 * k, frame(k))
sink.write_checkpoint(checkpoint(4))
print("live", flush=True)
sys.stdin.readline()  # hold the file open, live, until told to finish
for k in range(5, 10):
    sink.write_frame(k, 0.5 * k, frame(k))
sink.write_checkpoint(checkpoint(9))
sink.close(finished=True)
print("done", flush=True)
"""


@pytest.fixture
def live_writer(tmp_path):
    script = tmp_path / "held_writer.py"
    script.write_text(HELD_WRITER)
    path = tmp_path / "live.h5"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), TESTS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "live", proc.stderr.read()
    yield proc, path
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def finish(proc):
    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0 and out.strip() == "done", err


def test_a_live_runs_file_is_never_replaced_or_resumed(live_writer):
    """Today overwrite=True replaces the live file (both runs then report success)."""
    proc, path = live_writer
    assert is_locked(path)
    assert run_info(str(path))["status"] == "running"
    with pytest.raises(FileLockedError, match="being written by a live run"):
        H5MDSink(path, overwrite=True)
    for force in (False, True):
        with pytest.raises(FileLockedError, match="being written by a live run"):
            H5MDSink.resume(path, force=force)
    assert sorted(os.listdir(path.parent)) == ["held_writer.py", "live.h5"]  # no temporary file left
    finish(proc)
    with open_run(path) as run:
        np.testing.assert_array_equal(run.steps, np.arange(10))
        assert run.finished
    assert not is_locked(path) and run_info(str(path))["status"] == "finished"


def test_a_reader_holding_the_file_sees_finished_become_true(live_writer):
    proc, path = live_writer
    run = open_run(path)
    try:
        assert not run.finished and len(run.steps) == 5
        finish(proc)
        assert run.finished and len(run.steps) == 10  # the same open handle
        assert run.refresh() is run and run.finished
    finally:
        run.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_only_regular_files_are_replaced(tmp_path):
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    link = tmp_path / "link.h5"
    target = tmp_path / "target.h5"
    target.write_bytes(b"precious")
    link.symlink_to(target)
    for path in (node, link):
        with pytest.raises(FileExistsError, match="not a regular file"):
            H5MDSink(path, overwrite=True)
    assert stat.S_ISCHR(os.lstat(node).st_mode) and link.is_symlink() and target.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["link.h5", "null", "target.h5"]


def test_an_external_link_is_refused_and_its_target_untouched(tmp_path):
    """Today resume follows the link and cuts the victim file's frames."""
    victim = tmp_path / "victim.h5"
    write_base(victim)
    crafted = tmp_path / "crafted.h5"
    sink = H5MDSink(crafted)
    for k in range(8):
        sink.write_frame(k, 0.5 * k, frame(k))
    sink.write_checkpoint(checkpoint(3))
    sink.close(finished=False)
    with h5py.File(crafted, "r+", libver="latest") as f:
        del f["particles/all/position"]
        f["particles/all/position"] = h5py.ExternalLink(str(victim), "particles/all/position")
    before = victim.read_bytes()
    for call in (open_run, H5MDSink.resume):
        with pytest.raises(ValueError, match="is an external link"):
            call(crafted)
    assert victim.read_bytes() == before


def test_a_live_writer_pid_without_the_lock_needs_force_only_where_no_lock_can_tell(tmp_path, monkeypatch):
    """A live stamped PID without the lock is a reused PID or a writer that closed the file and has
    not exited (an aborted MPI job's rank): the lock decides. Where it cannot (the file of an older
    particledyn, which took no lock; a filesystem without record locks), --force is needed."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:

        def stopped_file(name, older=False):
            path = tmp_path / name
            write_base(path)
            with h5py.File(path, "r+", libver="latest") as f:  # a dead writer's PID, reused by a live process
                module = f["h5md/modules/particledyn"]
                module.attrs["writer_pid"] = sleeper.pid
                f.attrs["finished"] = False
                module["finished"][0] = 0
                if older:
                    del module["finished"]
            return path

        path = stopped_file("run.h5")
        assert run_info(str(path))["status"] == "stopped"  # the lock, not the PID, decides
        sink, ckpt = H5MDSink.resume(path)
        assert ckpt["step"] == 29
        sink.close(finished=True)

        older = stopped_file("older.h5", older=True)
        assert run_info(str(older))["status"] == "running"  # an older writer's live PID: maybe live
        with pytest.raises(ValueError, match="PID .* is alive .* no write lock can tell .* pass --force"):
            H5MDSink.resume(older)
        sink, ckpt = H5MDSink.resume(older, force=True)
        assert ckpt["step"] == 29
        sink.close(finished=True)

        unlocked = stopped_file("unlocked.h5")
        real_acquire = WriteLock.acquire

        def acquire_without_record_locks(self):
            real_acquire(self)
            self.enforced = False
            return self

        monkeypatch.setattr(WriteLock, "acquire", acquire_without_record_locks)
        with pytest.raises(ValueError, match="PID .* is alive .* pass --force"):
            H5MDSink.resume(unlocked)
        sink, _ = H5MDSink.resume(unlocked, force=True)
        sink.close(finished=True)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_fsync_at_checkpoints_and_close_and_every_frame_with_durability_frame(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    for durability, per_frame in (("checkpoint", 0), ("frame", 1)):
        synced.clear()
        sink = H5MDSink(tmp_path / f"{durability}.h5", durability=durability)
        sink.write_frame(0, 0.0, frame(0))
        sink.write_frame(1, 0.5, frame(1))  # goes live (one fsync before the rename)
        live = len(synced)
        for k in range(2, 12):
            sink.write_frame(k, 0.5 * k, frame(k))
        assert len(synced) - live == 10 * per_frame
        before = len(synced)
        sink.write_checkpoint(checkpoint(11))
        assert len(synced) - before == 2  # the slot's bytes, then its header
        sink.close(finished=True)
    with pytest.raises(ValueError, match="durability='always': expected one of"):
        H5MDSink(tmp_path / "x.h5", durability="always")


def test_force_is_for_resume_only(capsys):
    from particledyn.cli import main

    assert main(["run", "--force"]) == 2
    assert capsys.readouterr().err.strip() == "error: --force applies to --resume only"


def test_bad_metadata_leaves_no_temporary_file_and_no_lock(tmp_path):
    with pytest.raises(TypeError, match=r"metadata\['bad'\]"):
        H5MDSink(tmp_path / "run.h5", {"bad": object()})
    assert os.listdir(tmp_path) == []
