"""Damaged run files: every reader entry point answers fast, with one line or correct data."""

import collections
import hashlib
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from damage_trials import STEPS, write_base
from io_helpers import checkpoint, frame

from particledyn.cli import format_info
from particledyn.io import H5MDSink, open_run
from particledyn.io.integrity import DamagedRecordError
from particledyn.io.opening import NotARunFileError
from particledyn.runner import run_info

HERE = os.path.dirname(os.path.abspath(__file__))
FLIPS = 12  # flipped copies per base file (finished, killed)


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_every_entry_point_on_damaged_files_answers_in_seconds(tmp_path):
    """Truncated (50-95 %), bit-flipped, foreign and crafted files through open_run, run_info,
    `info`, `plot` and resume: never a hang (today: the first truncated file blocks open_run for
    minutes), never a traceback, never wrong data."""
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "damage_trials.py"), str(tmp_path), str(FLIPS)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, proc.stderr[-2000:]
    cases = {r["case"] for r in rows}
    assert len(rows) == 5 * len(cases) and len(cases) == 2 * (6 + FLIPS) + 3 + 1
    # drawing figures takes seconds of its own on a busy machine; a hang took minutes
    slow = [r for r in rows if r["seconds"] > (30 if r["entry"] == "plot" else 5)]
    bad = [r for r in rows if r["outcome"] not in ("ok", "error")]
    assert not slow and not bad, (slow, bad)
    outcomes = collections.Counter(
        (r["case"].split("-")[0] + "-" + r["case"].split("-")[1], r["outcome"]) for r in rows
    )
    assert outcomes[("finished-truncated", "error")] == 30  # never "finished and healthy"
    assert outcomes[("foreign-random", "error")] == 5 and outcomes[("crafted-external", "error")] == 5
    with open_run(tmp_path / "victim.h5") as run:  # the file the crafted link pointed into
        np.testing.assert_array_equal(run.steps, np.arange(STEPS))


def _flip_frame(path, step: int) -> None:
    """Flip a bit in the stored bytes of the frame at ``step`` (row ``step``: one frame a step)."""
    with h5py.File(path, "r") as f:
        value = f["particles/all/position/value"]
        per_chunk = value.chunks[0]
        frame_bytes = int(np.prod(value.shape[1:])) * value.dtype.itemsize
        assert value.chunks[1:] == value.shape[1:] and value.compression is None
        chunk = value.id.get_chunk_info_by_coord((step - step % per_chunk, 0, 0))
        offset = chunk.byte_offset + (step % per_chunk) * frame_bytes
    with open(path, "r+b") as fh:
        fh.seek(offset + 17)
        byte = fh.read(1)
        fh.seek(offset + 17)
        fh.write(bytes([byte[0] ^ 0x10]))


def test_a_damaged_frame_is_detected_named_by_info_and_blocks_resume(tmp_path):
    path = tmp_path / "run.h5"
    write_base(path)
    _flip_frame(path, 12)
    with open_run(path) as run:
        np.testing.assert_array_equal(run.positions(3), frame(3))
        with pytest.raises(DamagedRecordError, match="step 12 is damaged"):
            run.positions(12)
        with pytest.raises(DamagedRecordError, match="step 12"):
            run.positions()
        assert run.damaged() == {"particles/position": [12]}
    info = run_info(str(path))
    assert info["damaged"] == {"particles/position": [12]}
    assert "DAMAGED     particles/position: records at steps 12" in format_info(info)
    before = digest(path)
    with pytest.raises(ValueError, match=r"before its checkpoint are damaged \(particles/position: steps 12"):
        H5MDSink.resume(path)
    assert digest(path) == before


def test_truncated_finished_file_is_an_error_not_a_healthy_file(tmp_path):
    path = tmp_path / "run.h5"
    write_base(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 9 // 10])
    with pytest.raises(OSError, match="truncated file"):
        run_info(str(path))


def test_damaged_newest_checkpoint_refuses_resume_and_cuts_nothing(tmp_path):
    """Today the resume falls back to the older checkpoint and cuts the frames after it."""
    path = tmp_path / "run.h5"
    write_base(path)
    with h5py.File(path, "r+", libver="latest") as f:
        header = f["checkpoint/header"][()]
        newest = int(np.argmax(header[:, 0]))
        f[f"checkpoint/slot_{newest}"][10] ^= 0xFF
    before = digest(path)
    with pytest.raises(ValueError, match=r"newest checkpoint \(step 29\) is damaged"):
        H5MDSink.resume(path)
    assert digest(path) == before
    with open_run(path) as run:
        assert run.checkpoint()["step"] == 25 and len(run.steps) == STEPS  # readers still fall back


def test_resume_validates_before_it_cuts(tmp_path):
    path = tmp_path / "run.h5"
    sink = H5MDSink(path)  # a killed run: frames past its checkpoint
    for k in range(30):
        sink.write_frame(k, 0.5 * k, frame(k))
        if k == 25:
            sink.write_checkpoint(checkpoint(k))
    sink.close(finished=False)
    before = digest(path)

    def refuse(checkpoint):
        raise ValueError("the simulation cannot restore it")

    with pytest.raises(ValueError, match="cannot restore"):
        H5MDSink.resume(path, validate=refuse)
    assert digest(path) == before
    sink, _ = H5MDSink.resume(path)  # and the lock was released
    sink.close(False)
    with open_run(path) as run:
        assert len(run.steps) == 26


def test_a_foreign_file_is_rejected_before_hdf5_reads_it(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50 * 2**20, dtype=np.uint8).tobytes())
    began = time.monotonic()
    for call in (open_run, run_info, H5MDSink.resume):
        with pytest.raises(NotARunFileError, match="not an HDF5 file"):
            call(str(path))
    assert time.monotonic() - began < 1.0
    with pytest.raises(NotARunFileError, match="not a regular file"):
        open_run(str(tmp_path))


def test_info_and_plot_commands_on_a_damaged_frame(tmp_path, capsys):
    from particledyn.cli import main

    path = tmp_path / "run.h5"
    write_base(path)
    _flip_frame(path, 7)
    assert main(["info", str(path)]) == 0
    assert "DAMAGED     particles/position: records at steps 7 (checksum mismatch)" in capsys.readouterr().out
    assert main(["plot", str(path), "--out", str(tmp_path / "fig")]) == 0  # draws frames 0 and 29 only
    capsys.readouterr()
    _flip_frame(path, STEPS - 1)
    assert main(["plot", str(path), "--out", str(tmp_path / "fig")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
