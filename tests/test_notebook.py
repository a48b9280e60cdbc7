"""The example notebook runs as shipped: it makes its own runs, reads one while it is written,
compares the two and saves the figures."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_run.ipynb"


def test_explore_run_notebook_executes_as_shipped(tmp_path, monkeypatch):
    monkeypatch.delenv("PARTICLEDYN_RUN", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "made small_lr.h5 in" in text and "N = 80, D = 2, finished: True" in text
    assert "finished: False" in text and "finished: True" in text  # read while it was written
    assert "writer exit code 0" in text
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert any("loss/loss" in o["data"]["text/html"] for o in tables)  # the pandas table
    assert any("std of x0" in o["data"]["text/html"] for o in tables)  # the xarray frames
    assert any("topology_preserved" in o["data"]["text/html"] for o in tables)  # the comparison
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 8  # cloud, Betti, diagrams, stability, Lemma 2, merges, loss, comparison
    figures = sorted(p.name for p in (tmp_path / "small_lr_figures").iterdir())
    assert figures == sorted(
        f"{n}.svg" for n in ("cloud", "betti", "diagrams", "stability", "lemmas", "merges", "loss")
    )
    assert (tmp_path / "large_lr_figures" / "cloud_movie.gif").stat().st_size > 10_000
