"""MDAnalysis reads our runs: 3-D run files directly, any run through `particledyn export --mdanalysis`."""

import numpy as np
import pytest
from run_files import write_records

from particledyn.cli import main
from particledyn.io.mdanalysis import export_mdanalysis

mda = pytest.importorskip("MDAnalysis", reason="MDAnalysis is not installed (the dev extra has it)")


def _run(path, dim, n=6, steps=(0, 2, 4)):
    rng = np.random.default_rng(dim)
    frames = [(s, rng.normal(size=(n, dim))) for s in steps]
    loss = [(s, {"loss": 1.0 / (1 + s), "diagram": np.ones((s + 1, 3))}) for s in steps]
    write_records(path, {"loss": loss}, frames=frames)
    return [x for _, x in frames]


def _universe(path, n):
    u = mda.Universe.empty(n)
    u.load_new(str(path), format="H5MD", convert_units=False)
    return u


def test_a_2d_run_is_refused_by_mdanalysis_and_its_export_is_read(tmp_path):
    frames = _run(tmp_path / "run.h5", dim=2)
    with pytest.raises(ValueError, match="only supports 3-dimensional"):
        _universe(tmp_path / "run.h5", 6)
    out = export_mdanalysis(tmp_path / "run.h5")
    assert out == str(tmp_path / "run.mdanalysis.h5")
    u = _universe(out, 6)
    assert u.trajectory.n_frames == 3
    for k, ts in enumerate(u.trajectory):
        np.testing.assert_allclose(ts.positions[:, :2], frames[k], rtol=1e-6)
        np.testing.assert_array_equal(ts.positions[:, 2], 0.0)
        assert ts.data["step"] == 2 * k and ts.data["loss/loss"] == pytest.approx(1.0 / (1 + 2 * k))
        assert "loss/diagram" not in ts.data  # array observables do not pair with frames


def test_a_3d_run_file_opens_directly(tmp_path):
    frames = _run(tmp_path / "run.h5", dim=3)
    u = _universe(tmp_path / "run.h5", 6)
    for k, ts in enumerate(u.trajectory):
        np.testing.assert_allclose(ts.positions, frames[k], rtol=1e-6)


def test_wide_particles_need_three_chosen_coordinates(tmp_path):
    frames = _run(tmp_path / "run.h5", dim=5)
    with pytest.raises(ValueError, match=r"D = 5: expected at most 3 .*\(coordinates=\(i, j, k\)\)"):
        export_mdanalysis(tmp_path / "run.h5")
    with pytest.raises(ValueError, match=r"coordinates=\[0, 5\]: expected 1 to 3 indices in \[0, 5\)"):
        export_mdanalysis(tmp_path / "run.h5", coordinates=(0, 5))
    out = export_mdanalysis(tmp_path / "run.h5", tmp_path / "x.h5", coordinates=(4, 0, 2))
    u = _universe(out, 6)
    np.testing.assert_allclose(u.trajectory[2].positions, frames[2][:, [4, 0, 2]], rtol=1e-6)


def test_the_export_command(tmp_path, capsys):
    _run(tmp_path / "run.h5", dim=2)
    path = str(tmp_path / "run.h5")
    assert main(["export", "--mdanalysis", path]) == 0
    assert "exported: " in capsys.readouterr().out
    assert main(["export", "--mdanalysis", path]) == 1
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(["export", "--mdanalysis", path, "--overwrite", "--coordinates", "1"]) == 0
    u = _universe(tmp_path / "run.mdanalysis.h5", 6)
    np.testing.assert_array_equal(u.trajectory[0].positions[:, 1:], 0.0)
    assert main(["export", "--mdanalysis", path, "--overwrite", "--coordinates", "x,y"]) == 2
    assert capsys.readouterr().err.startswith("error: --coordinates 'x,y': expected comma-separated")


def test_a_run_without_frames_is_refused(tmp_path):
    from particledyn.io import H5MDSink

    sink = H5MDSink(tmp_path / "run.h5")
    sink.write_observables("loss", 0, 0.0, {"loss": 1.0})
    sink.close(True)
    with pytest.raises(ValueError, match="has no committed frame to export"):
        export_mdanalysis(tmp_path / "run.h5")
