"""The example notebook runs top to bottom on a run file and shows the figures."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from run_files import make_run

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_run.ipynb"


def test_explore_run_notebook_executes(tmp_path, monkeypatch):
    path = make_run(tmp_path / "nb_run.h5", lr=2.0, steps=20)
    monkeypatch.setenv("PARTICLEDYN_RUN", str(path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "topology changed at step" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # Betti, stability, merges, loss, cloud
    assert sorted(p.name for p in (tmp_path / "nb_run_figures").iterdir()) == \
        ["betti.png", "cloud.png", "loss.png", "merges.png", "stability.png"]

