"""Files written by H5MDSink are H5MD 1.1 as pyh5md, plain h5py and xarray (h5netcdf) read them."""

import os
import stat

import h5py
import numpy as np
import pyh5md
import pytest
import xarray as xr
from io_helpers import frame, observables

from particledyn.io import H5MDSink, open_run


@pytest.mark.parametrize("dim", [3, 800])
def test_pyh5md_reads_positions_box_and_observables(tmp_path, dim):
    path = tmp_path / f"d{dim}.h5"
    rng = np.random.default_rng(dim)
    frames = rng.normal(size=(3, 20, dim))
    sink = H5MDSink(path, {"seed": 1}, dtype="float32")
    for k, x in enumerate(frames):
        sink.write_frame(k, 0.1 * k, x)
        sink.write_observables("loss", k, 0.1 * k, {"value": float(k)})
    sink.close(finished=True)

    with pyh5md.File(str(path), "r") as f:
        assert f["h5md"].attrs["version"].tolist() == [1, 1]
        assert f["h5md/creator"].attrs["name"] == b"particledyn"
        group = f.particles_group("all")
        assert group["box"].attrs["dimension"] == dim
        assert len(group["box"].attrs["boundary"]) == dim
        position = pyh5md.element(group, "position")
        assert position.element_type == "TimeElement"
        np.testing.assert_array_equal(position.step[:], [0, 1, 2])
        np.testing.assert_allclose(position.time[:], [0.0, 0.1, 0.2])
        np.testing.assert_array_equal(position.value[:], frames.astype(np.float32))
        np.testing.assert_array_equal(position.get_by_idx(2), frames[2].astype(np.float32))
        ids = pyh5md.element(group, "id")
        assert ids.element_type == "FixedElement"
        np.testing.assert_array_equal(ids.value[()], np.arange(20))
        loss = pyh5md.element(f["observables/loss"], "value")
        np.testing.assert_array_equal(loss.value[:], [0.0, 1.0, 2.0])


def _finished_run(path, steps=5):
    sink = H5MDSink(path, {"seed": 1})
    for k in range(steps):
        sink.write_frame(k, 0.5 * k, frame(k))
        sink.write_observables("obs", k, 0.5 * k, observables(k))
    sink.close(finished=True)
    return path


def test_pyh5md_never_pairs_array_rows_with_wrong_steps(tmp_path):
    path = _finished_run(tmp_path / "run.h5")
    with pyh5md.File(str(path), "r") as f:
        names = list(f["observables/obs"])
        assert names == ["scalar"]  # array keys are in particledyn/ragged, not observables/
        for name in names:
            element = pyh5md.element(f["observables/obs"], name)
            assert element.value.shape[0] == element.step.shape[0] == 5
        assert "particledyn" in f["h5md/modules"]
    with h5py.File(path, "r") as f:  # plain h5py, no SWMR flags
        ragged = f["particledyn/ragged/obs/ragged"]
        assert ragged["index"].shape == (5, 2) and ragged["step"].shape == (5,)
    with open_run(path) as run:
        steps, values = run.observable("obs", "ragged")
        assert [len(v) for v in values] == [k % 4 for k in range(5)]


def test_xarray_sees_step_as_the_dimension_of_scalar_observables(tmp_path):
    path = _finished_run(tmp_path / "run.h5")
    with xr.open_dataset(path, engine="h5netcdf", group="observables/obs/scalar") as ds:
        assert ds["value"].dims == ("step",)
        np.testing.assert_array_equal(ds["step"], np.arange(5))
        np.testing.assert_array_equal(ds["value"].coords["time"], 0.5 * np.arange(5))
        np.testing.assert_array_equal(ds["value"], 0.5 * np.arange(5))


def test_run_files_are_created_with_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = _finished_run(tmp_path / "run.h5", steps=2)
        os.umask(0o077)
        private = _finished_run(tmp_path / "private.h5", steps=2)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600


def test_open_run_beside_a_plain_h5py_handle_in_the_same_process(tmp_path):
    path = _finished_run(tmp_path / "run.h5", steps=3)
    with h5py.File(path, "r") as plain:  # HDF5 shares this handle: open_run must match its locking
        with open_run(path) as run:
            np.testing.assert_array_equal(run.steps, [0, 1, 2])
            assert run.finished and plain["observables/obs/scalar/value"].shape == (3,)
