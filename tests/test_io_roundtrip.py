"""Round trip of H5MDSink -> open_run: positions, observables, parameters, checkpoints, options."""

import os
import stat

import h5py
import numpy as np
import pytest
from io_helpers import checkpoint, frame, observables

from particledyn._version import __version__
from particledyn.io import H5MDSink, H5MDWriteError, LateSeriesError, open_run

META = {
    "scenario_toml": "[run]\nsteps = 4\n# é\n",
    "resolved": {"lr": 0.1, "layers": [2, 8]},
    "seed": 11,
    "threads": 2,
    "backend": "numba",
    "author": "tester",
}


def write_run(path, steps=5, **options):
    sink = H5MDSink(path, dict(META), **options)
    for k in range(steps):
        sink.write_frame(k, 0.5 * k, frame(k), {"adam_m": 2 * frame(k)})
        sink.write_observables("obs", k, 0.5 * k, observables(k))
        if k % 2 == 0:
            sink.write_checkpoint(checkpoint(k))
    sink.close(finished=True)


def test_round_trip_all_parts(tmp_path):
    path = tmp_path / "run.h5"
    write_run(path, masses=np.full(40, 0.025))
    with open_run(path) as run:
        np.testing.assert_array_equal(run.steps, np.arange(5))
        np.testing.assert_array_equal(run.times, 0.5 * np.arange(5))
        np.testing.assert_array_equal(run.positions(), np.stack([frame(k) for k in range(5)]))
        np.testing.assert_array_equal(run.positions(3), frame(3))
        np.testing.assert_array_equal(run.positions(4, name="adam_m"), 2 * frame(4))
        assert run.particle_series == ["adam_m", "position"]
        np.testing.assert_array_equal(run.ids, np.arange(40))
        np.testing.assert_array_equal(run.masses, np.full(40, 0.025))
        assert run.observables == {"obs": ["fixed", "ragged", "scalar"]}
        steps, scalar = run.observable("obs", "scalar")
        np.testing.assert_array_equal(steps, np.arange(5))
        np.testing.assert_array_equal(scalar, 0.5 * np.arange(5))
        _, fixed = run.observable("obs", "fixed")
        assert isinstance(fixed, np.ndarray) and fixed.dtype == np.int64
        np.testing.assert_array_equal(fixed, np.stack([observables(k)["fixed"] for k in range(5)]))
        _, ragged = run.observable("obs", "ragged")
        assert isinstance(ragged, list) and [r.shape for r in ragged] == [(k % 4, 2) for k in range(5)]
        for k, rec in enumerate(ragged):
            np.testing.assert_array_equal(rec, observables(k)["ragged"])
        params = run.parameters
        assert params["scenario_toml"] == META["scenario_toml"]
        assert params["resolved"] == META["resolved"]
        assert (params["seed"], params["threads"], params["backend"]) == (11, 2, "numba")
        assert params["versions"]["particledyn"] == __version__
        assert set(params["versions"]) >= {"numpy", "numba", "h5py", "hdf5", "scipy"}
        assert run.finished is True
        ckpt = run.checkpoint()
        assert ckpt["step"] == 4 and ckpt["rng"] == {"state": 2**100 + 4, "name": "PCG64"}
        np.testing.assert_array_equal(ckpt["positions"], frame(4))
        with pytest.raises(KeyError, match="step 9"):
            run.positions(9)


def test_h5md_layout_attributes(tmp_path):
    path = tmp_path / "run.h5"
    write_run(path, steps=2)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["h5md"].attrs["version"], [1, 1])
        # H5MD asks for fixed-length strings (h5py reads them as bytes)
        for group, attr, text in (
            ("author", "name", "tester"),
            ("creator", "name", "particledyn"),
            ("creator", "version", __version__),
        ):
            stored = f[f"h5md/{group}"].attrs.get_id(attr)
            assert not stored.get_type().is_variable_str()
            assert f[f"h5md/{group}"].attrs[attr] == text.encode()
        assert tuple(f["h5md/modules/particledyn"].attrs["version"]) == (1, 1)
        box = f["particles/all/box"]
        assert box.attrs["dimension"] == 3
        assert [b.decode() if isinstance(b, bytes) else b for b in box.attrs["boundary"]] == ["none"] * 3
        pos = f["particles/all/position"]
        assert pos["step"].dtype == np.int64 and pos["time"].dtype == np.float64
        # frames of 960 bytes share chunks of about 64 KiB (one batch commit writes few chunks)
        assert pos["value"].shape == (2, 40, 3) and pos["value"].chunks == (68, 40, 3)
        assert pos["value"].compression is None
        # array keys live in the module's own group, scalars under observables/ with step as
        # their dimension scale
        assert "ragged" not in f["observables/obs"] and "fixed" not in f["observables/obs"]
        assert "index" in f["particledyn/ragged/obs/ragged"] and "index" in f["particledyn/ragged/obs/fixed"]
        scalar = f["observables/obs/scalar"]
        assert "index" not in scalar and scalar["step"].is_scale
        for name in ("value", "time", "checksum"):
            assert scalar[name].dims[0][0] == scalar["step"]


def test_subset_dtype_every_and_gzip(tmp_path):
    path = tmp_path / "run.h5"
    subset = np.array([3, 0, 17])
    sink = H5MDSink(path, every=2, subset=subset, dtype="float32", compression="gzip", optimizer_state=False)
    for k in range(7):
        sink.write_frame(k, float(k), frame(k), {"adam_m": frame(k)})
        sink.write_observables("obs", k, float(k), {"scalar": k})
    sink.close(finished=False)
    with open_run(path) as run:
        np.testing.assert_array_equal(run.steps, [0, 2, 4, 6])
        pos = run.positions()
        assert pos.dtype == np.float32 and pos.shape == (4, 3, 3)
        np.testing.assert_array_equal(
            pos, np.stack([frame(k)[subset] for k in (0, 2, 4, 6)]).astype(np.float32)
        )
        np.testing.assert_array_equal(run.ids, subset)
        assert run.particle_series == ["position"]
        assert run.file["particles/all/position/value"].compression == "gzip"
        assert run.finished is False
        np.testing.assert_array_equal(run.observable("obs", "scalar")[0], np.arange(7))


def test_file_goes_live_after_first_step(tmp_path):
    path = tmp_path / "run.h5"
    sink = H5MDSink(path)
    sink.write_frame(0, 0.0, frame(0))
    sink.write_observables("obs", 0, 0.0, observables(0))
    assert not path.exists() and not sink.live
    sink.write_frame(1, 0.5, frame(1))
    assert path.exists() and sink.live
    with open_run(path) as run:
        np.testing.assert_array_equal(run.steps, [0, 1])
        assert run.finished is False
        with pytest.raises(LateSeriesError, match="observer 'late' first recorded at step 2"):
            sink.write_observables("late", 2, 1.0, {"x": 1.0})
    sink.close(finished=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]


def test_late_series_message_names_key(tmp_path):
    sink = H5MDSink(tmp_path / "run.h5")
    sink.write_observables("obs", 0, 0.0, {"a": 1.0})
    sink.write_observables("obs", 1, 1.0, {"a": 1.0})
    with pytest.raises(LateSeriesError, match="'observables/obs/b' first recorded at step 2"):
        sink.write_observables("obs", 2, 2.0, {"a": 1.0, "b": 2.0})
    sink.close(finished=False)


def test_bad_records_raise_clear_errors(tmp_path):
    sink = H5MDSink(tmp_path / "run.h5")
    sink.write_observables("obs", 0, 0.0, {"s": 1, "a": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="scalar key"):
        sink.write_observables("obs", 1, 0.0, {"s": np.zeros(3)})
    with pytest.raises(ValueError, match=r"shape \(k, \*\(2,\)\)"):
        sink.write_observables("obs", 1, 0.0, {"a": np.zeros((2, 3))})
    with pytest.raises(TypeError, match="first recorded as int64"):
        sink.write_observables("obs", 1, 0.0, {"s": 1.5})
    with pytest.raises(TypeError, match="dtype <U3"):
        sink.write_observables("obs", 1, 0.0, {"t": "abc"})
    with pytest.raises(ValueError, match="'a/b'"):
        sink.write_observables("a/b", 1, 0.0, {"s": 1})
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        sink.write_frame(0, 0.0, np.zeros(3))
    with pytest.raises(ValueError, match="every=0"):
        H5MDSink(tmp_path / "x.h5", every=0)
    with pytest.raises(ValueError, match="dtype='int32'"):
        H5MDSink(tmp_path / "x.h5", dtype="int32")
    sink.close(finished=False)


def test_repeated_step_is_recorded_once(tmp_path):
    path = tmp_path / "run.h5"
    sink = H5MDSink(path)
    for k in (0, 1, 1, 2):
        sink.write_frame(k, float(k), frame(k))
        sink.write_observables("obs", k, float(k), {"s": k})
    sink.close(finished=True)
    with open_run(path) as run:
        np.testing.assert_array_equal(run.steps, [0, 1, 2])
        np.testing.assert_array_equal(run.observable("obs", "s")[0], [0, 1, 2])


def test_refuses_existing_file_unless_overwrite(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        H5MDSink(path)
    assert path.read_bytes() == b"precious"
    sink = H5MDSink(path, overwrite=True)
    sink.write_frame(0, 0.0, frame(0))
    assert path.read_bytes() == b"precious"  # replaced only when the new file goes live
    sink.close(finished=True)
    with open_run(path) as run:
        np.testing.assert_array_equal(run.positions(0), frame(0))


def test_unwritable_path_raises_one_line_oserror(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(H5MDWriteError, match="does not exist") as info:
        H5MDSink(blocker / "run.h5")
    assert isinstance(info.value, OSError) and "\n" not in str(info.value)
    assert str(blocker / "run.h5") in str(info.value)
    if os.geteuid() != 0:  # root ignores permissions
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        with pytest.raises(H5MDWriteError, match="cannot create output file"):
            H5MDSink(locked / "run.h5")
    assert blocker.read_text() == "x"


def test_open_run_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run file"):
        open_run(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "plain.h5", "w", libver="latest"):
        pass
    with pytest.raises(ValueError, match="not a particledyn H5MD file"):
        open_run(tmp_path / "plain.h5")
