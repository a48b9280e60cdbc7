"""Resume: truncation to committed records up to the checkpoint, then appending."""

import h5py
import numpy as np
import pytest
from io_helpers import checkpoint, frame, observables

from particledyn.io import H5MDSink, open_run
from particledyn.io.superblock import clear_write_flags, lookup3, write_flags


def test_resume_cuts_uncommitted_rows_and_rows_after_checkpoint(tmp_path):
    path = tmp_path / "run.h5"
    sink = H5MDSink(path, {"seed": 1}, every=1)
    for k in range(8):
        sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
        sink.write_observables("obs", k, 0.5 * k, observables(k))
        if k == 5:
            sink.write_checkpoint(checkpoint(k))
    sink.close(finished=False)
    # An interrupted record: value/index rows and time written, no step (commit marker).
    with h5py.File(path, "r+", libver="latest") as f:
        for series in ("particles/all/position", "particledyn/ragged/obs/ragged"):
            g = f[series]
            for name in ("value", "time") + (("index",) if "index" in g else ()):
                g[name].resize(g[name].shape[0] + 2, axis=0)
    with open_run(path) as run:  # the reader ignores the uncommitted rows
        assert len(run.steps) == 8 and len(run.observable("obs", "ragged")[1]) == 8

    sink, ckpt = H5MDSink.resume(path)
    assert ckpt["step"] == 5
    np.testing.assert_array_equal(ckpt["positions"], frame(5))
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        for name in ("step", "time", "value"):
            assert f[f"particles/all/position/{name}"].shape[0] == 6
        g = f["particledyn/ragged/obs/ragged"]
        assert g["index"].shape[0] == 6 and g["value"].shape[0] == g["index"][5, 1]
    for k in range(5, 10):
        sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
        sink.write_observables("obs", k, 0.5 * k, observables(k))
    sink.write_checkpoint(checkpoint(9))
    sink.close(finished=True)
    with open_run(path) as run:
        np.testing.assert_array_equal(run.steps, np.arange(10))
        np.testing.assert_array_equal(run.positions(), np.stack([frame(k) for k in range(10)]))
        steps, ragged = run.observable("obs", "ragged")
        np.testing.assert_array_equal(steps, np.arange(10))
        for k, rec in enumerate(ragged):
            np.testing.assert_array_equal(rec, observables(k)["ragged"])
        assert run.finished and run.checkpoint()["step"] == 9


def test_resume_without_checkpoint_is_refused(tmp_path):
    path = tmp_path / "run.h5"
    sink = H5MDSink(path)
    sink.write_frame(0, 0.0, frame(0))
    sink.close(finished=False)
    with pytest.raises(ValueError, match="no checkpoint"):
        H5MDSink.resume(path)


def test_checkpoint_slots_alternate_and_torn_write_falls_back(tmp_path):
    path = tmp_path / "run.h5"
    sink = H5MDSink(path)
    for k in range(3):
        sink.write_checkpoint(checkpoint(k))
    sink.close(finished=False)
    with h5py.File(path, "r+", libver="latest") as f:
        header = f["checkpoint/header"][()]
        assert sorted(header[:, 1]) == [1, 2]  # the two newest, one per slot
        newest = int(np.argmax(header[:, 0]))
        f[f"checkpoint/slot_{newest}"][10] ^= 0xFF  # corrupt the newest slot's bytes
    with open_run(path) as run:
        assert run.checkpoint()["step"] == 1


def test_lookup3_matches_hdf5_superblock_checksum_and_clear_flags(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w", libver="latest"):
        pass
    raw = path.read_bytes()[:48]
    assert lookup3(raw[:44]) == int.from_bytes(raw[44:48], "little")
    assert lookup3(b"") == 0xDEADBEEF and lookup3(b"Four score and seven years ago") == 0x17770551
    data = bytearray(path.read_bytes())
    data[11] = 5  # what a killed SWMR writer leaves; fix the checksum as HDF5 would have
    data[44:48] = lookup3(bytes(data[:44])).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert write_flags(path) == 5
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r+", libver="latest")
    assert clear_write_flags(path) is True and write_flags(path) == 0
    with h5py.File(path, "r+", libver="latest") as f:
        f.attrs["ok"] = 1


def _fake_killed_writer(path, eoa):
    """Set the flags a killed SWMR writer leaves and a stale EOA, with a valid checksum."""
    data = bytearray(path.read_bytes())
    data[11] = 5
    data[28:36] = int(eoa).to_bytes(8, "little")
    data[44:48] = lookup3(bytes(data[:44])).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_clear_write_flags_moves_a_stale_eoa_past_the_data(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f["a"] = np.arange(10_000.0)
        offset = f["a"].id.get_offset()
    _fake_killed_writer(path, eoa=offset)  # the EOA a SWMR writer's superblock can lag at
    size = path.stat().st_size
    assert clear_write_flags(path, eoa_increment=4096) is True
    head = path.read_bytes()[:48]
    assert head[11] == 0 and lookup3(head[:44]) == int.from_bytes(head[44:48], "little")
    assert int.from_bytes(head[28:36], "little") == size + 4096 == path.stat().st_size
    with h5py.File(path, "r+", libver="latest") as f:  # new space must not land on "a"
        f["b"] = np.full(10_000, -1.0)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["a"][()], np.arange(10_000.0))
        np.testing.assert_array_equal(f["b"][()], np.full(10_000, -1.0))
    assert clear_write_flags(path) is False  # a clean file is left alone
