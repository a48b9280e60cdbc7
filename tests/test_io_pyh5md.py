"""Files written by H5MDSink are H5MD 1.1 as pyh5md reads them, for D = 3 and D = 800."""
import numpy as np
import pyh5md
import pytest

from particledyn.io import H5MDSink


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
        assert f["h5md/creator"].attrs["name"] == "particledyn"
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
