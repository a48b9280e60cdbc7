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
# a run file's datasets that name the sweep file and the output folder (compared with those replaced)
PLACES = ("parameters/overrides", "parameters/resolved", "parameters/scenario_source")


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


# ---------------------------------------------------------------- packed sweeps as a job array
def _datasets(path):
    """Every dataset of an HDF5 file as ``{name: array}``."""
    import h5py

    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: found.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None
        )
    return found


def _replaced(text, places):
    for old in sorted(places, key=len, reverse=True):
        text = text.replace(old, places[old])
    return text


@pytest.mark.parametrize("pack, parts", [("seed", 2), ("lr", 4)])
def test_a_packed_sweep_in_parts_collects_into_the_packed_sweeps_table_and_files(
    sweeps, tmp_path, client, pack, parts
):
    from particledyn.sweep import collect_sweep, read_table

    path = tmp_path / f"{pack}.toml"
    path.write_text(SWEEP.format(pack=f'pack = "{pack}"'))
    out = tmp_path / "parts"
    seen: list[str] = []
    for i in range(parts):  # 3 packs: with 4 parts the last part is empty
        part = run_sweep(path, out=out, client=client, progress=False, plot=False, shard=(i, parts))
        assert part.table_csv is None and not (out / "summary.csv").exists()
        ids = [r["run_id"] for r in part.rows]
        assert not set(ids) & set(seen)  # disjoint
        seen += ids
        for file in {r["path"] for r in part.rows}:  # whole packs only: every replica of its file
            assert sorted(r["replica"] for r in part.rows if r["path"] == file) == [0, 1, 2]
    whole = sweeps[pack]
    assert sorted(seen) == sorted(r["run_id"] for r in whole.rows)  # covering
    collected = collect_sweep(path, out=out, plot=False)
    # the packed sweep's rows as its call returned them (a later test reruns it into its folder)
    a, b = whole.rows, read_table(collected.table_h5)
    assert [r["run_id"] for r in a] == list(b["run_id"]) and set(a[0]) == set(b)
    for column in b:
        if column in ("path", "elapsed"):
            continue
        want = [r[column] for r in a]
        if b[column].dtype.kind == "f":
            np.testing.assert_array_equal(np.array(want, dtype=float), b[column], err_msg=column)
        else:
            assert want == list(b[column]), column
    assert [os.path.basename(r["path"]) for r in a] == [os.path.basename(p) for p in b["path"]]
    whole_runs = os.path.dirname(a[0]["path"])
    assert sorted(os.listdir(out / "runs")) == sorted(os.listdir(whole_runs))
    whole_out = os.path.dirname(whole_runs)
    places = {whole_out: "<out>", str(out): "<out>", f"{whole_out}.toml": "<sweep>", str(path): "<sweep>"}
    for name in sorted(os.listdir(whole_runs)):
        x, y = _datasets(os.path.join(whole_runs, name)), _datasets(out / "runs" / name)
        assert set(x) == set(y) and set(PLACES) <= set(x)
        for key in x:
            if key in PLACES:
                x[key], y[key] = (_replaced(v.decode(), places) for v in (x[key], y[key]))
                assert x[key] == y[key], (name, key)
            else:  # NaN equal to NaN in the same place
                np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}: {key}")


def _packed_file(tmp_path, pack="seed"):
    path = tmp_path / f"{pack}.toml"
    path.write_text(SWEEP.format(pack=f'pack = "{pack}"'))
    return path


@pytest.mark.parametrize("pack", ["seed", "lr"])
def test_parts_of_a_packed_sweep_are_whole_packs_disjoint_and_covering(tmp_path, pack):
    from particledyn.sweep.executor import selected_indices
    from particledyn.sweep.grid import run_ids
    from particledyn.sweep.pack import pack_index

    spec = parse_sweep(_packed_file(tmp_path, pack).read_text(), "s.toml", tmp_path)
    packs = pack_index(spec)
    ids = run_ids(spec)
    assert len(packs) == 3 and all(len(members) == 3 for _, members in packs)
    if pack == "seed":  # one rate, every seed
        assert [pid for pid, _ in packs] == ["n48_seeds_x0.1", "n48_seeds_x2", "n48_seeds_x4"]
        assert [ids[j] for j in packs[1][1]] == ["n48_seed0_x2", "n48_seed1_x2", "n48_seed2_x2"]
    else:  # one seed, every rate
        assert [pid for pid, _ in packs] == ["n48_seed0_lrs", "n48_seed1_lrs", "n48_seed2_lrs"]
        assert [ids[j] for j in packs[1][1]] == ["n48_seed1_x0.1", "n48_seed1_x2", "n48_seed1_x4"]
    for k in range(1, 6):
        parts = [selected_indices(spec, shard=(i, k)) for i in range(k)]
        assert sorted(j for part in parts for j in part) == list(range(9))
        assert parts == [sorted(j for p in range(i, 3, k) for j in packs[p][1]) for i in range(k)]
    assert selected_indices(spec, index=2) == sorted(packs[2][1])
    assert selected_indices(spec) == list(range(9))


def test_list_numbers_the_packs_as_index_selects_them(tmp_path, capsys):
    from particledyn.sweep import sweep_main
    from particledyn.sweep.pack import pack_index

    path = _packed_file(tmp_path)
    assert sweep_main([str(path), "--list", "--out", str(tmp_path / "o")]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    spec = parse_sweep(path.read_text(), str(path), tmp_path)
    assert [(int(n), pid) for n, pid, _, _ in lines] == list(enumerate(pid for pid, _ in pack_index(spec)))
    assert lines[0][2] == "missing" and lines[0][3] == "n48_seed0_x0.1,n48_seed1_x0.1,n48_seed2_x0.1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--index", "3"], "--index 3: expected an integer 0 <= I < 3 (this sweep has 3 packs)"),
        (["--index", "-1"], "--index -1: expected an integer 0 <= I < 3 (this sweep has 3 packs)"),
        (["--shard", "3/3"], "--shard '3/3': expected I/K with integers 0 <= I < K"),
        (["--shard", "1/0"], "--shard '1/0': expected I/K with integers 0 <= I < K"),
        (["--shard", "a/b"], "--shard 'a/b': expected I/K with integers 0 <= I < K"),
        (["--limit", "-1"], "limit=-1: expected an integer >= 0 or None"),
    ],
)
def test_bad_parts_of_a_packed_sweep_are_one_line_errors(tmp_path, capsys, args, message):
    from particledyn.sweep import sweep_main

    assert sweep_main([str(_packed_file(tmp_path)), *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o" / "runs").exists()


def test_a_claimed_pack_is_not_run_twice_and_limit_counts_packs(tmp_path, client):
    from particledyn.sweep.claims import acquire

    path, out = _packed_file(tmp_path), tmp_path / "out"
    first = run_sweep(path, out=out, client=client, progress=False, plot=False, limit=0)
    assert {r["status"] for r in first.rows} == {"pending"}
    target = str(out / "runs" / "n48_seeds_x0.1.h5")
    with acquire(target):  # another invocation (another job of the array) runs pack 0
        again = run_sweep(path, out=out, client=client, progress=False, plot=False, index=0)
        assert {r["status"] for r in again.rows} == {"running"} and not os.path.exists(target)
        second = run_sweep(path, out=out, client=client, progress=False, plot=False, limit=1)
    by_file: dict = {}
    for row in second.rows:
        by_file.setdefault(os.path.basename(row["path"]), set()).add(row["status"])
    assert by_file["n48_seeds_x0.1.h5"] == {"running"}
    ran = [f for f, states in by_file.items() if states != {"pending"} and f != "n48_seeds_x0.1.h5"]
    assert ran == ["n48_seeds_x2.h5"]  # --limit 1 took the next pack, whole
    assert by_file["n48_seeds_x2.h5"] <= {"finished", "diverged"} and by_file["n48_seeds_x4.h5"] == {
        "pending"
    }
