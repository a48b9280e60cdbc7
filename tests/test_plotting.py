"""Figures of a run file: which are drawn, where they go, and that they are real images."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from run_files import make_run, png_is_drawn, write_records

import particledyn
from particledyn.plotting import (
    figure_betti,
    figure_cloud,
    figure_diagrams,
    figure_expansion,
    figure_lemmas,
    figure_loss,
    figure_merges,
    figure_stability,
    figure_zigzag,
    figures_dir,
    plot_run,
    project_2d,
    run_identity,
    write_movie,
)
from particledyn.summary import summarize_run

#: The figures of a run with the Betti, geometry, sharpness and loss observers, in plot_run's order.
DRAWN = ["cloud", "betti", "diagrams", "stability", "lemmas", "merges", "loss"]


@pytest.fixture(scope="module")
def run_2d(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "two_d.h5", lr=2.0, steps=30)


def test_plot_run_draws_every_figure_into_the_default_folder(run_2d):
    files = plot_run(run_2d)
    folder = figures_dir(run_2d)
    assert folder == run_2d.with_name("two_d_figures")
    assert files == [folder / f"{name}.png" for name in DRAWN]
    for f in files:
        assert png_is_drawn(f), f


def test_plot_run_replaces_its_own_figures_and_leaves_other_files(run_2d, tmp_path):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "loss.png").write_bytes(b"stale")
    files = plot_run(run_2d, out)
    assert {f.name for f in files} == {f"{name}.png" for name in DRAWN}
    assert png_is_drawn(out / "loss.png")
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(NotADirectoryError, match="not a directory"):
        plot_run(run_2d, out / "notes.txt")


def test_figures_have_titles_labels_and_legends(run_2d):
    summary = summarize_run(run_2d)
    with particledyn.open_run(run_2d) as run:
        figures = [
            figure_betti(run, summary),
            figure_stability(run, summary),
            figure_merges(run, summary),
            figure_loss(run, summary),
            figure_lemmas(run, summary),
        ]
        cloud = figure_cloud(run)
        diagrams = figure_diagrams(run, summary)
    for fig in figures + [cloud, diagrams]:
        # run identity in every title: name, optimizer, lr, N and D
        assert fig.get_suptitle().endswith("two_d, optimizer not recorded, lr 2, N = 120, D = 2")
        assert "offset" not in fig.get_suptitle() + "".join(ax.get_ylabel() for ax in fig.axes)
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
    assert len(figures[1].axes) == 1  # one eta*K panel, one curve per K, each named
    labels = figures[1].axes[0].get_legend_handles_labels()[1]
    assert "eta*K = 1 (topological threshold)" in labels and "eta*K = 2 (edge of stability)" in labels
    assert "eta*K, K = lambda_max of the loss Hessian" in labels
    assert "eta*K, K = pairwise Lipschitz constant of the update (Lemma 4)" in labels
    assert [ax.get_title() for ax in cloud.axes[:2]] == ["first frame: step 0", "last frame: step 30"]
    # first and last cloud on shared axes: same limits, equal scales
    first, last = cloud.axes[:2]
    assert first.get_xlim() == last.get_xlim() and first.get_ylim() == last.get_ylim()
    assert first.get_aspect() == last.get_aspect() == 1.0
    # the Lemma 2 figure draws the bounds and the observed extreme ratios
    labels = figures[4].axes[0].get_legend_handles_labels()[1]
    assert {"allowed: [1 - eta K, 1 + eta K]", "smallest ratio d'/d", "largest ratio d'/d"} <= set(labels)
    # one diagram per picked record on shared axes, then the barcode over time
    assert [ax.get_title() for ax in diagrams.axes[:4]] == [f"step {s}" for s in (0, 10, 20, 30)]
    assert diagrams.axes[-1].get_ylabel() == "persistence (death - birth)"


@pytest.mark.parametrize("dim, shown", [(3, "D = 3"), (5, "PCA projection")])
def test_cloud_in_3d_and_projected_above(dim, shown, tmp_path):
    path = make_run(tmp_path / f"d{dim}.h5", lr=0.01, steps=10, dim=dim, n=60, observers=("betti",))
    files = plot_run(path)
    assert [f.name for f in files] == ["cloud.png", "betti.png", "diagrams.png"]
    assert all(png_is_drawn(f) for f in files)
    fig = figure_cloud(path)
    assert shown in fig.get_suptitle()
    if dim == 3:
        assert fig.axes[0].name == "3d"


def test_figures_need_their_observables(tmp_path, rng):
    frames = [(0, rng.normal(size=(10, 1))), (3, rng.normal(size=(10, 1)))]  # D = 1
    path = write_records(
        tmp_path / "bare.h5", {"loss": [(0, {"loss": 1.0}), (3, {"loss": 0.1})]}, frames=frames
    )
    assert figure_betti(path) is None and figure_stability(path) is None
    assert figure_merges(path) is None
    assert [f.name for f in plot_run(path)] == ["cloud.png", "loss.png"]
    assert figure_cloud(path).axes[0].get_xlabel() == "neuron index"


def test_cloud_draws_at_most_max_points(run_2d):
    fig = figure_cloud(run_2d, max_points=50)
    assert "50 of 120 neurons drawn" in fig.get_suptitle()
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


@pytest.mark.parametrize("fmt", ["pdf", "svg"])
def test_vector_output_parses(fmt, run_2d, tmp_path):
    import xml.etree.ElementTree as ET

    files = plot_run(run_2d, tmp_path, format=fmt)
    assert [f.name for f in files] == [f"{name}.{fmt}" for name in DRAWN]
    for f in files:
        data = f.read_bytes()
        if fmt == "pdf":
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF") and b"/Type /Page" in data
        else:
            root = ET.fromstring(data)
            assert root.tag.endswith("svg")
            assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 20


def test_dpi_scales_the_png_and_bad_options_are_refused(run_2d, tmp_path):
    from matplotlib.image import imread

    low = imread(str(plot_run(run_2d, tmp_path / "low", dpi=100)[-1]))
    high = imread(str(plot_run(run_2d, tmp_path / "high")[-1]))  # the default, 200
    assert high.shape[1] == 2 * low.shape[1]
    with pytest.raises(ValueError, match="format='jpeg': expected one of png, pdf, svg"):
        plot_run(run_2d, tmp_path, format="jpeg")
    with pytest.raises(ValueError, match="dpi=0"):
        plot_run(run_2d, tmp_path, dpi=0)
    with pytest.raises(ValueError, match="movie='avi'"):
        plot_run(run_2d, tmp_path, movie="avi")


def test_identity_and_edge_of_stability_from_the_file(tmp_path):
    # an Adam run: the sharpness observer's recorded edge, (2 + 2 beta1) / ((1 - beta1) eta) = 38 / eta
    lr = 0.01
    records = [
        (
            s,
            {
                "lambda_max": k,
                "K": k,
                "eta_K": lr * k,
                "two_over_eta": 2 / lr,
                "stability_threshold": 38 / lr,
            },
        )
        for s, k in ((0, 10.0), (5, 3000.0))
    ]
    frames = [(0, np.zeros((7, 3)) + np.arange(7)[:, None]), (5, np.ones((7, 3)) * np.arange(7)[:, None])]
    path = write_records(
        tmp_path / "adam.h5",
        {"sharpness": records},
        frames=frames,
        parameters={
            "name": "ladder_3",
            "optimizer": {"name": "adam", "beta1": 0.9},
            "resolved": {"schedule": {"lr": lr}},
        },
    )
    with particledyn.open_run(path) as run:
        assert run_identity(run) == "ladder_3, adam (beta1 0.9), lr 0.01, N = 7, D = 3"
    fig = figure_stability(path)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "eta*K = 38 (edge of stability, (2 + 2 beta1) / (1 - beta1))" in labels
    assert "eta*K, K = lambda_max of the preconditioned Hessian (Adam)" in labels
    assert fig.axes[0].get_yscale() == "log"  # 0.1 .. 38 on one axis


def test_theorem_2_and_zigzag_figures(tmp_path):
    path = make_run(tmp_path / "topo.h5", lr=2.0, steps=20, n=60, observers=("topology", "loss"))
    files = plot_run(path)
    assert [f.name for f in files] == [
        "cloud.png",
        "stability.png",
        "expansion.png",
        "zigzag.png",
        "loss.png",
    ]
    assert all(png_is_drawn(f) for f in files)
    expansion = figure_expansion(path)
    assert "Theorem 2" in expansion.get_suptitle() and "empirical K" in expansion.get_suptitle()
    assert [t.get_text() for t in expansion.axes[1].get_yticklabels()] == ["radius #0", "radius #1"]
    zigzag = figure_zigzag(path)
    from particledyn.topology.observers import ZigzagObserver

    with particledyn.open_run(path) as run:
        bars = ZigzagObserver().barcode(run)
    assert zigzag.axes[0].get_title() == f"{len(bars)} bars, dimensions 0..1"
    assert len(zigzag.axes[0].lines) == len(bars) > 0
    assert figure_zigzag(path, scale=0.0).axes[0].get_title().endswith("dimensions 0..1")


def test_figures_survive_a_killed_diverging_run(tmp_path):
    from particledyn.divergence import DivergenceError

    path = tmp_path / "blowup.h5"
    with pytest.raises(DivergenceError, match="loss exploded"):  # the growth test stops it before overflow
        make_run(path, lr=1e6, steps=40)
    with particledyn.open_run(path) as run:
        assert not run.finished
    files = plot_run(path)
    assert [f.name for f in files] == [f"{name}.png" for name in DRAWN]
    assert all(png_is_drawn(f) for f in files)
    assert "own axes per panel" in figure_cloud(path).get_suptitle()


def test_movie_of_the_cloud(run_2d, tmp_path, monkeypatch):
    from PIL import Image

    files = plot_run(run_2d, tmp_path, movie="gif")
    assert files[-1] == tmp_path / "cloud_movie.gif"
    with Image.open(files[-1]) as movie, particledyn.open_run(run_2d) as run:
        assert movie.n_frames == len(run.steps) == 7
        movie.seek(6)
        frame = np.asarray(movie.convert("RGB"))
        assert frame.shape[0] >= 200 and len(np.unique(frame.reshape(-1, 3), axis=0)) > 20
    import particledyn.plotting.cloud as cloud

    monkeypatch.setattr(cloud.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs ffmpeg on PATH"):
        write_movie(run_2d, tmp_path / "m.mp4", "mp4")
    with pytest.raises(ValueError, match="format='avi': expected one of gif, mp4"):
        write_movie(run_2d, tmp_path / "m.avi", "avi")
    with pytest.raises(ValueError, match="fps=0"):
        write_movie(run_2d, tmp_path / "m.gif", fps=0)
    with pytest.raises(ValueError, match="n_diagrams=0"):
        figure_diagrams(run_2d, n_diagrams=0)


def test_an_observer_types_figure_hook_is_written_beside_the_others(tmp_path, rng):
    from particledyn.scenario import OBSERVERS, ObserverType, register_observer

    def draw(run, name, summary):
        fig = Figure()
        fig.add_subplot().plot(*run.observable(name, "value"))
        fig.suptitle(f"{name} peaks")
        return fig

    def broken(run, name, summary):
        raise RuntimeError("no axes today")

    for kind, hook in (("probe_drawn", draw), ("probe_undrawn", broken)):
        register_observer(ObserverType(kind, "a probe", (), lambda o, c: None, figure=hook))
    try:
        records = [(0, {"value": 1.0}), (3, {"value": 2.0})]
        path = write_records(
            tmp_path / "hooked.h5",
            {
                "probe_drawn": records,
                "probe_undrawn": records,
                "loss": [(0, {"loss": 1.0}), (3, {"loss": 0.1})],
            },
            frames=[(0, rng.normal(size=(10, 2))), (3, rng.normal(size=(10, 2)))],
        )
        failed = r"figure of probe_undrawn not drawn \(RuntimeError: no axes today\)"
        with pytest.warns(UserWarning, match=failed):
            files = plot_run(path)
        assert [f.name for f in files] == ["cloud.png", "loss.png", "probe_drawn.png"]
        assert png_is_drawn(files[-1])
        with particledyn.open_run(path) as run:
            from particledyn.plotting.observers import observer_figures

            with pytest.warns(UserWarning):
                ((stem, fig),) = observer_figures(run, summarize_run(path), {"cloud"})
            assert stem == "probe_drawn" and fig.get_suptitle() == f"probe_drawn peaks\n{run_identity(run)}"
    finally:
        OBSERVERS.unregister("probe_drawn")
        OBSERVERS.unregister("probe_undrawn")


def test_a_hook_figures_file_name_says_the_observers_type_and_name():
    from particledyn.plotting.observers import figure_stem

    assert figure_stem("radius", "radius", {"cloud"}) == "radius"
    assert figure_stem("radius", "inner", {"cloud"}) == "radius_inner"
    assert figure_stem("cloud", "cloud", {"cloud"}) == "observer_cloud"
