"""The README's code blocks run as written (so the README stays true)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block_after(heading: str) -> str:
    text = README.read_text()
    start = text.index(heading)
    match = re.search(r"```python\n(.*?)```", text[start:], flags=re.S)
    return match.group(1)


def test_user_kernel_example_runs_and_is_short(capsys):
    code = _python_block_after("### Your own kernel, end to end")
    assert len(code.strip().splitlines()) < 30
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    sim = namespace["sim"]
    radius = np.linalg.norm(sim.positions - sim.positions.mean(0), axis=1)
    np.testing.assert_allclose(radius, 1.0, atol=1e-3)
    assert "radius after 200 steps: 1.000 .. 1.000" in capsys.readouterr().out


def test_api_example_runs(tmp_path, monkeypatch):
    code = _python_block_after("## The Python API")
    code = code.replace("sim.run(200)", "sim.run(40, progress=False)")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    run = namespace["run"]
    assert list(run.steps[:2]) == [0, 10] and run.finished
    steps, lam = namespace["steps"], namespace["lam"]
    assert len(steps) == 5 and np.all(np.isfinite(lam))
    assert namespace["last"].shape == (500, 2)
