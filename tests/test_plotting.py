"""Figures of a run file: which are drawn, where they go, and that they are real images."""
import numpy as np
import pytest
from matplotlib.figure import Figure

import particledyn
from particledyn.summary import summarize_run
from particledyn.plotting import (FIGURE_NAMES, figure_betti, figure_cloud, figure_loss,
                                  figure_merges, figure_stability, figures_dir, plot_run, project_2d)
from run_files import make_run, png_is_drawn, write_records


@pytest.fixture(scope="module")
def run_2d(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "two_d.h5", lr=2.0, steps=30)


def test_plot_run_draws_every_figure_into_the_default_folder(run_2d):
    files = plot_run(run_2d)
    folder = figures_dir(run_2d)
    assert folder == run_2d.with_name("two_d_figures")
    assert files == [folder / name for name in FIGURE_NAMES.values()]
    for f in files:
        assert png_is_drawn(f), f


def test_plot_run_replaces_its_own_figures_and_leaves_other_files(run_2d, tmp_path):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "loss.png").write_bytes(b"stale")
    files = plot_run(run_2d, out)
    assert {f.name for f in files} == set(FIGURE_NAMES.values())
    assert png_is_drawn(out / "loss.png")
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(NotADirectoryError, match="not a directory"):
        plot_run(run_2d, out / "notes.txt")


def test_figures_have_titles_labels_and_legends(run_2d):
    summary = summarize_run(run_2d)
    with particledyn.open_run(run_2d) as run:
        figures = [figure_betti(run, summary), figure_stability(run, summary),
                   figure_merges(run, summary), figure_loss(run, summary)]
        cloud = figure_cloud(run)
    for fig in figures:
        assert isinstance(fig, Figure)
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() in ("step", "") and ax.get_ylabel()
            assert ax.get_legend() is not None
    # the first Betti change is marked on the Betti figure
    change = summary["betti"]["first_change_step"]
    labels = figures[0].axes[0].get_legend_handles_labels()[1]
    assert f"first Betti change (step {change})" in labels
    # eta*K panel: the topological threshold and the edge of stability
    labels = figures[1].axes[0].get_legend_handles_labels()[1]
    assert "eta*K = 1 (topological threshold)" in labels and "eta*K = 2 (edge of stability)" in labels
    assert [ax.get_title() for ax in cloud.axes[:2]] == ["first frame: step 0", "last frame: step 30"]


@pytest.mark.parametrize("dim, shown", [(3, "D = 3"), (5, "PCA projection")])
def test_cloud_in_3d_and_projected_above(dim, shown, tmp_path):
    path = make_run(tmp_path / f"d{dim}.h5", lr=0.01, steps=10, dim=dim, n=60,
                    observers=("betti",))
    files = plot_run(path)
    assert [f.name for f in files] == ["cloud.png", "betti.png"]
    assert all(png_is_drawn(f) for f in files)
    fig = figure_cloud(path)
    assert shown in fig.get_suptitle()
    if dim == 3:
        assert fig.axes[0].name == "3d"


def test_figures_need_their_observables(tmp_path, rng):
    frames = [(0, rng.normal(size=(10, 1))), (3, rng.normal(size=(10, 1)))]  # D = 1
    path = write_records(tmp_path / "bare.h5", {"loss": [(0, {"loss": 1.0}), (3, {"loss": 0.1})]},
                         frames=frames)
    assert figure_betti(path) is None and figure_stability(path) is None
    assert figure_merges(path) is None
    assert [f.name for f in plot_run(path)] == ["cloud.png", "loss.png"]
    assert figure_cloud(path).axes[0].get_xlabel() == "neuron index"


def test_cloud_draws_at_most_max_points(run_2d):
    fig = figure_cloud(run_2d, max_points=50)
    assert "50 of 120 drawn" in fig.get_suptitle()
    assert [len(ax.collections[0].get_offsets()) for ax in fig.axes[:2]] == [50, 50]
    with pytest.raises(ValueError, match="max_points=0"):
        figure_cloud(run_2d, max_points=0)


def test_png_check_rejects_a_blank_image(tmp_path):
    fig = Figure(figsize=(4, 4), dpi=100)
    fig.savefig(tmp_path / "blank.png")
    assert not png_is_drawn(tmp_path / "blank.png")


def test_project_2d_matches_principal_components(rng):
    from sklearn.decomposition import PCA

    # a planar cloud in R^6: two axes hold all the variance
    plane = rng.normal(size=(200, 2)) * [3.0, 1.0]
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0]
    x = plane @ basis.T + 5.0
    projected, explained = project_2d(x, x)
    expected = PCA(2).fit_transform(x)
    np.testing.assert_allclose(np.abs(projected), np.abs(expected), atol=1e-10)
    np.testing.assert_allclose(explained.sum(), 1.0, rtol=1e-12)
    # distances within the plane are kept exactly
    d = np.linalg.norm(projected[:, None] - projected[None], axis=-1)
    np.testing.assert_allclose(d, np.linalg.norm(x[:, None] - x[None], axis=-1), atol=1e-9)
