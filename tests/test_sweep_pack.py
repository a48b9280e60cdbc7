"""``[sweep] pack``: a sweep's seeds or rates run as ensembles, every replica its own table row and
bit-identical to the same sweep run unpacked."""

import math
import os

import numpy as np
import pytest

from particledyn import open_run
from particledyn.sweep import SweepError, parse_sweep, run_sweep

BASE = os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps", "teacher_student_base.toml")
SWEEP = f"""
[sweep]
name = "packed"
base = "{os.path.abspath(BASE)}"
steps = 20
{{pack}}
[grid]
lr_factor = [0.1, 2.0, 4.0]
seed = [0, 1, 2]
n = [48]
"""
# the table's columns that say where and how long, not what the run did
WHERE = ("path", "replica", "elapsed")


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


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, client):
    root = tmp_path_factory.mktemp("pack")
    results = {}
    for pack in ("none", "seed", "lr"):
        path = root / f"{pack}.toml"
        path.write_text(SWEEP.format(pack=f'pack = "{pack}"'))
        results[pack] = run_sweep(path, out=root / pack, client=client, progress=False, plot=False)
    return results


def _same(a, b):
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("pack, files", [("seed", 3), ("lr", 3)])
def test_packed_rows_and_replicas_are_the_unpacked_runs(sweeps, pack, files):
    plain = {row["run_id"]: row for row in sweeps["none"].rows}
    packed = sweeps[pack].rows
    assert [r["run_id"] for r in packed] == list(plain) and len(packed) == 9
    assert {r["status"] for r in packed} == {"finished", "diverged"}  # 4 eta* explodes
    assert len({r["path"] for r in packed}) == files and sorted({r["replica"] for r in packed}) == [0, 1, 2]
    assert all(r["replica"] == -1 for r in plain.values())
    for row in packed:
        alone = plain[row["run_id"]]
        differ = [k for k in row if k not in WHERE and not _same(row[k], alone[k])]
        assert differ == [], (row["run_id"], {k: (row[k], alone[k]) for k in differ})
        with open_run(row["path"]) as ens, open_run(alone["path"]) as single:
            view = ens.replica(row["replica"])
            assert view.parameters["replica_seed"] == alone["seed"]
            np.testing.assert_array_equal(view.steps, single.steps)
            np.testing.assert_array_equal(view.positions(), single.positions())
            assert view.observables == single.observables
            for name, keys in single.observables.items():
                for key in keys:
                    got, want = view.observable(name, key), single.observable(name, key)
                    np.testing.assert_array_equal(got[0], want[0])
                    for a, b in zip(got[1], want[1]):
                        np.testing.assert_array_equal(a, b)


def test_a_packed_sweep_run_again_skips_its_finished_packs(sweeps, tmp_path, client):
    out = sweeps["seed"].rows[0]["path"].rsplit("/runs/", 1)[0]
    path = tmp_path / "seed.toml"
    path.write_text(SWEEP.format(pack='pack = "seed"'))
    again = run_sweep(path, out=out, client=client, progress=False, plot=False)
    assert again.counts["ran"] == 0 and again.counts["skipped"] == 9
    assert [r["status"] for r in again.rows] == [r["status"] for r in sweeps["seed"].rows]


@pytest.mark.parametrize(
    "pack, grid, message",
    [
        ('"seeds"', "seed = [0, 1]", r'sweep.pack = .seeds.: expected "seed", "lr" or "none"'),
        ('"seed"', "seed = [0]", r'sweep.pack = "seed": expected at least 2 values of grid.seed'),
        ('"lr"', "seed = [0, 1]\nlr = [0.1]", r'sweep.pack = "lr": expected at least 2 values of grid.lr'),
    ],
)
def test_bad_pack_keys_raise_one_line_errors(pack, grid, message):
    grid = grid if "lr" in grid else grid + "\nlr_factor = [0.1, 0.2]"
    text = f'[sweep]\nbase = "{os.path.abspath(BASE)}"\npack = {pack}\n[grid]\n{grid}\n'
    with pytest.raises(SweepError, match=message):
        parse_sweep(text)
