"""`particledyn repair`: a killed writer's file made readable by plain h5py and pyh5md."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyh5md
import pytest
from io_helpers import WRITER_SCRIPT

from particledyn.cli import main
from particledyn.io import open_run
from particledyn.io.repair import repair, repair_hint
from particledyn.io.superblock import write_flags
from particledyn.runner import run_info

TESTS = str(Path(__file__).parent)

KILLED_SCRIPT = r"""
import os, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from io_helpers import frame, observables, checkpoint
from particledyn.io import H5MDSink

sink = H5MDSink(sys.argv[1], {"seed": 7})
for k in range(5):
    sink.write_frame(k, 0.5 * k, frame(k))
    sink.write_observables("obs", k, 0.5 * k, observables(k))
    if k == 3:
        sink.write_checkpoint(checkpoint(k))
# a torn record: value and time written, the commit marker (step) not
series = sink._series["observables/obs/scalar"]
series.stage(np.float64(9.0), 9, 4.5)
series.write_staged()
sink._file.flush()
os._exit(9)
"""


@pytest.fixture
def killed(tmp_path):
    path = tmp_path / "run.h5"
    done = subprocess.run([sys.executable, "-c", KILLED_SCRIPT, str(path), TESTS])
    assert done.returncode == 9
    assert write_flags(path) != 0
    return path


def test_repair_writes_a_copy_plain_readers_open(killed, capsys):
    with pytest.raises(OSError, match="h5clear"):
        h5py.File(killed, "r")
    assert "particledyn repair" in repair_hint(killed) and "killed" in repair_hint(killed)
    assert main(["repair", str(killed)]) == 0
    copy = killed.with_name("run.repaired.h5")
    assert f"repaired: {copy}" in capsys.readouterr().out
    assert write_flags(killed) != 0 and write_flags(copy) == 0  # the source is untouched
    with h5py.File(copy, "r") as f:
        scalar = f["observables/obs/scalar"]
        assert scalar["step"].shape == scalar["value"].shape == scalar["time"].shape == (5,)
    with pyh5md.File(str(copy), "r") as f:
        element = pyh5md.element(f["observables/obs"], "scalar")
        np.testing.assert_array_equal(element.step[:], np.arange(5))
        np.testing.assert_array_equal(element.value[:], 0.5 * np.arange(5))
        position = pyh5md.element(f.particles_group("all"), "position")
        assert position.value.shape[0] == position.step.shape[0] == 5
    with open_run(killed) as before, open_run(copy) as after:
        np.testing.assert_array_equal(before.positions(), after.positions())
        for key in ("scalar", "fixed", "ragged"):
            for a, b in zip(before.observable("obs", key), after.observable("obs", key)):
                assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert after.checkpoint()["step"] == 3 and after.damaged() == {}
    assert repair_hint(copy) is None
    assert "particledyn repair" in run_info(str(killed))["repair_hint"]
    assert run_info(str(copy))["repair_hint"] is None


def test_repair_in_place_clears_the_flags(killed, capsys):
    assert main(["repair", "--in-place", str(killed)]) == 0
    assert write_flags(killed) == 0
    with h5py.File(killed, "r") as f:
        assert f["observables/obs/scalar/value"].shape == (5,)
    assert main(["repair", str(killed)]) == 0
    assert "closed cleanly: nothing to repair" in capsys.readouterr().out
    assert sorted(p.name for p in killed.parent.iterdir()) == ["run.h5"]


def test_repair_refuses_an_existing_output(killed, capsys):
    out = killed.with_name("taken.h5")
    out.write_bytes(b"mine")
    assert main(["repair", str(killed), "-o", str(out)]) == 1
    assert "taken.h5' exists" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"
    assert repair(killed, output=killed.with_name("other.h5")).endswith("other.h5")


def test_repair_refuses_a_live_run(tmp_path, capsys):
    path = tmp_path / "live.h5"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), TESTS, "400", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "live"
        assert "live run" in repair_hint(path)
        before = path.read_bytes()[:64]
        assert main(["repair", "--in-place", str(path)]) == 1
        assert "being written by a live run" in capsys.readouterr().err
        assert main(["repair", str(path)]) == 1
        assert path.read_bytes()[:64] == before and write_flags(path) != 0
        assert not path.with_name("live.repaired.h5").exists()
    finally:
        writer.kill()
        writer.wait()


def test_repair_rejects_a_file_that_is_not_hdf5(tmp_path, capsys):
    bad = tmp_path / "notes.h5"
    bad.write_text("hello")
    assert main(["repair", str(bad)]) == 1
    assert "not an HDF5 file" in capsys.readouterr().err
