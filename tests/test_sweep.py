"""Sweeps on a 2-worker LocalCluster: resume after an interruption, failed runs, the table, the phase diagram."""

import hashlib
import os

import h5py
import numpy as np
import pytest
from run_files import png_is_drawn
from scenario_fuzz import TINY

from particledyn.summary import summarize_run
from particledyn.sweep import SweepError, parse_sweep, read_table, run_sweep, sweep_main
from particledyn.sweep.grid import run_scenario

BASE = os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps", "teacher_student_base.toml")
SWEEP = f"""
[sweep]
name = "phase"
base = "{os.path.abspath(BASE)}"
steps = 20
[grid]
lr_factor = [0.05, 0.1, 2.0, 4.0]
seed = [0, 1]
n = [48]
"""


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    import logging

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _digest(path):
    return os.stat(path).st_mtime_ns, hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, client):
    root = tmp_path_factory.mktemp("sweep")
    sweep = root / "phase.toml"
    sweep.write_text(SWEEP)
    first = run_sweep(sweep, out=root / "out", client=client, limit=4, progress=False)
    done = {r["path"]: _digest(r["path"]) for r in first.rows if r["status"] in ("finished", "diverged")}
    k0 = (root / "out" / "K0.json").read_text()
    second = run_sweep(sweep, out=root / "out", client=client, progress=False)
    return first, second, done, k0, root


def test_an_interrupted_sweep_resumes_without_redoing_finished_runs(interrupted):
    first, second, done, k0, root = interrupted
    assert len(first.rows) == 8 and first.counts["ran"] == 4
    assert [r["status"] for r in first.rows].count("pending") == 4 and len(done) == 4
    assert second.counts["skipped"] == 4 and second.counts["ran"] == 4
    # the runs at 4 eta* explode (loss > 1e8 x its start): the growth test marks them diverged
    statuses = {r["run_id"]: r["status"] for r in second.rows}
    assert second.counts.get("finished", 0) + second.counts.get("diverged", 0) == 8, statuses
    assert all(s == "finished" for i, s in statuses.items() if "x0.05" in i or "x0.1" in i), statuses
    for path, digest in done.items():
        assert _digest(path) == digest, f"{path} was rewritten"
    assert (root / "out" / "K0.json").read_text() == k0  # K0 measured once per (seed, N)
    files = sorted(os.listdir(root / "out" / "runs"))
    assert files == sorted(os.path.basename(r["path"]) for r in second.rows)


def test_learning_rates_are_multiples_of_the_measured_eta_star(interrupted):
    from particledyn.runner import prepare
    from particledyn.scenario import load_scenario

    rows = interrupted[1].rows
    row = next(r for r in rows if r["seed"] == 1)
    resolved = load_scenario(BASE, {"init.n": 48, "run.seed": 1}).resolved
    p = prepare(resolved)
    x, ctx = p.positions, p.kernel.evaluation_context()
    hessian = np.column_stack(
        [p.kernel.hvp(x, p.masses, ctx, e.reshape(x.shape)).ravel() for e in np.eye(x.size)]
    )
    K0 = np.linalg.eigvalsh((hessian + hessian.T) / 2)[-1]  # dense reference of Lanczos
    assert row["K0"] == pytest.approx(K0, rel=1e-6)
    for r in rows:
        assert r["eta"] * r["K0"] == pytest.approx(r["lr_factor"], rel=1e-12)
        assert r["eta_star"] == pytest.approx(1 / r["K0"], rel=1e-12)
    with h5py.File(row["path"], "r") as f:
        assert f["observables/sharpness/eta_K"]  # K along training is recorded


def test_the_table_agrees_with_the_run_files(interrupted):
    second, root = interrupted[1], interrupted[4]
    table = read_table(root / "out" / "summary.h5")
    csv_table = read_table(root / "out" / "summary.csv")
    assert list(table["run_id"]) == [r["run_id"] for r in second.rows]
    np.testing.assert_allclose(csv_table["max_eta_K"], table["max_eta_K"], rtol=1e-15)
    for i, path in enumerate(table["path"]):
        with h5py.File(path, "r") as f:
            eta_K = f["observables/sharpness/eta_K/value"][()]
            lam = f["observables/sharpness/lambda_max/value"][()]
            loss = f["observables/loss/loss/value"][()]
        assert table["max_eta_K"][i] == pytest.approx(np.nanmax(eta_K), rel=1e-12)
        assert table["K_max"][i] == pytest.approx(np.nanmax(lam), rel=1e-12)
        assert table["K_mean"][i] == pytest.approx(np.nanmean(lam), rel=1e-12)
        assert table["final_loss"][i] == pytest.approx(loss[-1], rel=1e-12)
        s = summarize_run(path)
        expected = s["merges"]["first_merge_step"]
        assert table["first_merge_step"][i] == (-1 if expected is None else expected)
        assert table["topology_preserved"][i] == int(s["topology_preserved"])


def test_phase_diagram_shows_no_merges_below_eta_K_one(interrupted):
    second = interrupted[1]
    rows = second.rows
    below = [r for r in rows if r["max_eta_K"] < 1]
    above = [r for r in rows if r["max_eta_K"] > 1]
    assert len(below) >= 2 and len(above) >= 2, "the sweep must straddle eta*K = 1"
    for r in below:
        assert r["first_merge_step"] == -1 and r["merged_mass"] == 0.0 and r["n_merges"] == 0, r["run_id"]
        # and the start was below the threshold too: eta / eta* < 1
        assert r["lr_factor"] < 1
    assert png_is_drawn(second.phase_png)


def test_a_failed_run_is_recorded_and_does_not_stop_the_others(tmp_path, client):
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        SWEEP.replace("lr_factor = [0.05, 0.1, 2.0, 4.0]", "lr_factor = [0.1]").replace(
            "steps = 20", "steps = 3"
        )
    )
    (tmp_path / "out" / "runs" / "n48_seed1_x0.1.h5").mkdir(parents=True)  # cannot be written
    result = run_sweep(sweep, out=tmp_path / "out", client=client, progress=False, plot=False)
    by_id = {r["run_id"]: r for r in result.rows}
    assert by_id["n48_seed0_x0.1"]["status"] == "finished"
    failed = by_id["n48_seed1_x0.1"]
    assert failed["status"] == "failed" and "n48_seed1_x0.1.h5" in failed["error"]
    assert "\n" not in failed["error"]
    assert read_table(tmp_path / "out" / "summary.csv")["status"].tolist() == ["finished", "failed"]
    assert result.phase_png is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("[sweep]\nname='a'", "missing [grid]"),
        ("[grid]\nlr=[0.1]\nlr_factor=[1.0]", "exactly one of lr"),
        ("[grid]\nlr=[0.1, -1]", "grid.lr[1] = -1"),
        ("[grid]\nlr=[0.1]\nn=[0]", "grid.n[0] = 0"),
        ("[grid]\nlr=[0.1]\nseeds=[1]", "grid.seeds: unknown key"),
        ("[sweep]\nset={'schedule.lr'=1}\n[grid]\nlr=[0.1]", "sweep.set.schedule.lr"),
        ("[sweep]\nset={'init.shpe'='x'}\n[grid]\nlr=[0.1]", "init.shpe"),
        ("[sweep]\nbase='nowhere.toml'\n[grid]\nlr=[0.1]", "sweep.base = 'nowhere.toml'"),
        ("[grid]\nlr=[0.1]\n[cluster]\nworkers=0", "cluster.workers = 0"),
        (
            "x = " + "[" * 3000 + "]" * 3000 + "\n[grid]\nlr=[0.1]",
            "s.toml: not valid TOML for a scenario: arrays or tables nested too deeply",
        ),
    ],
)
def test_bad_sweep_files_raise_one_line_errors(text, message, tmp_path):
    with pytest.raises(SweepError, match=None) as info:
        parse_sweep(text, "s.toml", tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_byte_order_marks_are_accepted_in_sweep_files_and_their_base(tmp_path):
    (tmp_path / "base.toml").write_bytes(b"\xef\xbb\xbf" + TINY.encode())
    spec = parse_sweep("\ufeff[sweep]\nbase = 'base.toml'\n[grid]\nlr = [0.1]\n", "s.toml", tmp_path)
    assert tuple(spec.lr) == (0.1,)
    assert run_scenario(spec, (None, None), 0.1).init.n == 12


def test_sweep_main_reports_a_bad_file_with_exit_status_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nlr_factor = 'x'\n")
    assert sweep_main([str(bad)]) == 2
    assert "grid.lr_factor" in capsys.readouterr().err
