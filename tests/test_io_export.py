"""Run.to_pandas (one tidy frame of scalar observables) and Run.to_xarray (lazy frames)."""

import h5py
import numpy as np
import pytest
import xarray as xr
from io_helpers import D, N, frame, observables

from particledyn.io import DamagedRecordError, H5MDSink, open_run


def _run(path, steps=6):
    sink = H5MDSink(path, {"seed": 3})
    for k in range(steps):
        sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
        sink.write_observables("obs", k, 0.5 * k, observables(k))
        if k % 2 == 0:  # another cadence, and keys of two kinds
            sink.write_observables("slow", k, 0.5 * k, {"flag": k > 2, "count": k})
    sink.close(finished=True)
    return path


def test_to_pandas_is_one_tidy_frame_of_the_scalar_observables(tmp_path):
    with open_run(_run(tmp_path / "run.h5")) as run:
        df = run.to_pandas()
    assert list(df.columns) == ["step", "time", "observer", "key", "value"]
    assert df["step"].dtype == np.int64 and df["value"].dtype == np.float64
    assert sorted(set(zip(df.observer, df.key))) == [("obs", "scalar"), ("slow", "count"), ("slow", "flag")]
    scalar = df[df.key == "scalar"]
    np.testing.assert_array_equal(scalar.step, np.arange(6))
    np.testing.assert_array_equal(scalar.time, 0.5 * np.arange(6))
    np.testing.assert_array_equal(scalar.value, 0.5 * np.arange(6))
    flag = df[df.key == "flag"]
    np.testing.assert_array_equal(flag.step, [0, 2, 4])
    np.testing.assert_array_equal(flag.value, [0.0, 0.0, 1.0])
    wide = df.pivot_table(index="step", columns=["observer", "key"], values="value")
    assert wide.shape == (6, 3) and np.isnan(wide[("slow", "count")][1])


def test_to_xarray_reads_frames_lazily_and_checks_them(tmp_path):
    path = _run(tmp_path / "run.h5")
    with open_run(path) as run:
        ds = run.to_xarray()
        assert isinstance(ds, xr.Dataset)
        assert ds["position"].dims == ("step", "particle", "dim")
        assert ds["position"].shape == (6, N, D)
        assert not isinstance(ds["position"].variable._data, np.ndarray)  # not loaded
        np.testing.assert_array_equal(ds["position"].sel(step=4), frame(4))
        np.testing.assert_array_equal(
            ds["position"].isel(step=slice(1, 3), particle=2), np.stack([frame(1)[2], frame(2)[2]])
        )
        np.testing.assert_array_equal(ds["velocity"].values, -np.stack([frame(k) for k in range(6)]))
        np.testing.assert_array_equal(ds["time"], 0.5 * np.arange(6))
        np.testing.assert_array_equal(ds["particle"], np.arange(N))
        assert ds["obs.scalar"].dims == ("obs.step",)
        np.testing.assert_array_equal(ds["obs.scalar"], 0.5 * np.arange(6))
        np.testing.assert_array_equal(ds["slow.step"], [0, 2, 4])
        np.testing.assert_array_equal(ds["slow.count"], [0, 2, 4])
        assert "obs.ragged" not in ds and "obs.fixed" not in ds
    with h5py.File(path, "r+") as f:  # flip one stored frame's bytes: its checksum fails
        f["particles/all/position/value"][2, 0, 0] += 1.0
    with open_run(path) as run:
        ds = run.to_xarray()
        np.testing.assert_array_equal(ds["position"].sel(step=1), frame(1))
        with pytest.raises(DamagedRecordError, match="step 2 is damaged"):
            ds["position"].sel(step=2).values


def test_exports_of_a_file_without_observables(tmp_path):
    path = tmp_path / "frames.h5"
    sink = H5MDSink(path)
    sink.write_frame(0, 0.0, frame(0))
    sink.close(finished=True)
    with open_run(path) as run:
        assert run.to_pandas().empty and list(run.to_pandas().columns)[0] == "step"
        assert run.to_xarray()["position"].shape == (1, N, D)
