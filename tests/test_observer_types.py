"""Observers are found by type, not by name: renamed observers keep their verdict, figures and
sweep-table columns; files without recorded types are read by name."""

import shutil
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from run_files import make_run, png_is_drawn, write_records

from particledyn.geometry.observers import ClosestApproachObserver
from particledyn.io import H5MDSink, open_run
from particledyn.io.observer_attrs import TYPE_ATTR, write_description
from particledyn.observers import LossObserver
from particledyn.plotting import plot_run
from particledyn.scenario.observers import OBSERVER_TYPES
from particledyn.sinks import MemorySink
from particledyn.summary import read_series, summarize_run
from particledyn.sweep.table import run_row

ALL = ("betti", "geometry", "sharpness", "loss", "topology", "extra")
#: every built-in observer type, as the registry names it
BUILT_IN = {
    "loss",
    "pairwise_lipschitz",
    "lemmas",
    "merges",
    "closest_approach",
    "balance",
    "sharpness",
    "betti",
    "expansion",
    "zigzag",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("types")
    plain = make_run(root / "plain.h5", lr=2.0, steps=20, observers=ALL)
    renamed = make_run(root / "renamed.h5", lr=2.0, steps=20, observers=ALL, rename="my_")
    return plain, renamed


def _without_path(summary):
    return {k: v for k, v in summary.items() if k != "path"}


def _group_attrs(path):
    """``{group path: attrs}`` of every observer group, read with plain h5py."""
    out = {}
    with h5py.File(path, "r") as f:
        for root in ("observables", "particledyn/ragged"):
            for name, group in f[root].items():
                out[f"{root}/{name}"] = dict(group.attrs)
    return out


def test_the_registry_covers_every_built_in_type():
    assert set(OBSERVER_TYPES) == BUILT_IN


def test_every_built_in_type_is_stored_with_its_class_and_options(runs):
    _, renamed = runs
    attrs = _group_attrs(renamed)
    types = {path: a[TYPE_ATTR].decode() for path, a in attrs.items()}
    assert set(types.values()) == BUILT_IN
    for path, kind in types.items():
        assert path.rsplit("/", 1)[1] == "my_" + kind
        assert attrs[path]["every"] == 5
        assert attrs[path]["class"].decode().startswith("particledyn.")
    betti = attrs["observables/my_betti"]
    assert betti["max_dim"] == 1 and betti["complex"].decode() == "alpha"
    assert betti["scale_relative"] == 0.25 and "scale" not in betti  # the default: relative to the start
    merges = attrs["observables/my_merges"]
    assert merges["eps"] == pytest.approx(1e-2) and "eps_relative" not in merges  # None: not stored
    assert attrs["observables/my_pairwise_lipschitz"]["source"].decode() == "update"
    np.testing.assert_array_equal(attrs["observables/my_expansion"]["radii"], [0.25, 0.5])
    assert attrs["observables/my_sharpness"]["preconditioned"] == np.False_
    with open_run(renamed) as run:
        assert run.observers_of_type("betti") == ["my_betti"]
        assert run.observer_descriptions["my_merges"]["eps"] == pytest.approx(1e-2)


def test_renamed_observers_keep_their_verdict(runs):
    plain, renamed = runs
    a, b = summarize_run(plain), summarize_run(renamed)
    assert b["topology_preserved"] is not None and b["betti"]["recorded"] and b["merges"]["recorded"]
    assert set(b["eta_K"]["sources"]) == {"sharpness", "pairwise_lipschitz", "lemmas", "expansion"}
    assert _without_path(a) == _without_path(b)


def test_renamed_observers_keep_their_figures(runs, tmp_path):
    plain, renamed = runs
    made = [plot_run(p, out_dir=tmp_path / name) for p, name in ((plain, "plain"), (renamed, "renamed"))]
    names = [sorted(path.name.replace("renamed", "plain") for path in paths) for paths in made]
    assert names[0] == names[1]
    for name in ("betti", "merges", "loss", "stability", "lemmas", "expansion", "diagrams", "zigzag"):
        assert any(name in n for n in names[1]), name
    assert all(png_is_drawn(p) for p in made[1] if p.suffix == ".png")


def test_renamed_observers_keep_their_sweep_table_columns(runs):
    rows = []
    for path in runs:
        spec = SimpleNamespace(
            run_id="r", path=str(path), replica=-1, seed=0, n=120, axes=(), lr_factor=1.0, lr=2.0, K0=1.0
        )
        rows.append({k: v for k, v in run_row(spec, "finished").items() if k != "path"})
    assert rows[1]["K_source"] == "sharpness" and np.isfinite(rows[1]["max_eta_K"])
    assert rows[1]["topology_preserved"] in (0, 1) and np.isfinite(rows[1]["final_loss"])
    np.testing.assert_equal(rows[0], rows[1])


def test_files_without_recorded_types_are_read_by_name(runs, tmp_path):
    plain, _ = runs
    copy = tmp_path / "untyped.h5"
    shutil.copy(plain, copy)
    with h5py.File(copy, "r+") as f:
        for root in ("observables", "particledyn/ragged"):
            for group in f[root].values():
                for key in list(group.attrs):
                    del group.attrs[key]
    with open_run(copy) as run:
        assert run.observer_descriptions["betti"] == {"type": "betti"}
    untyped, typed = _without_path(summarize_run(copy)), _without_path(summarize_run(plain))
    # only the scale rule, an option of the observer, is unknown without the descriptions
    rule = typed["betti"].pop("scale_rule")
    assert "scale_rule" not in untyped["betti"]
    typed["verdict"] = typed["verdict"].replace(f" ({rule})", "")
    for change in typed["changes"]:
        change.pop("scale_rule", None)
    assert untyped == typed


def test_the_type_wins_over_the_name(tmp_path):
    """An observer named like another type is not read as that type."""
    closest = ClosestApproachObserver()
    closest.name = "merges"
    sink = MemorySink()
    path = tmp_path / "imposter.h5"
    h5 = H5MDSink(path)
    for target in (sink, h5):
        target.describe_observer("merges", closest.description())
        target.describe_observer("loss", LossObserver().description())
    h5.write_frame(0, 0.0, np.zeros((3, 2)), {})
    h5.write_observables("merges", 0, 0.0, {"n_merges": 2, "n_atoms": 3})
    h5.write_observables("loss", 0, 0.0, {"loss": 1.0})
    h5.close(True)
    assert sink.descriptions["merges"]["type"] == "closest_approach"
    summary = summarize_run(path)
    assert summary["merges"] == {"recorded": False} and summary["loss"]["final_train"] == 1.0
    with open_run(path) as run:
        assert read_series(run, "merges", "n_merges") is None
        assert run.observers_of_type("closest_approach") == ["merges"]


def test_the_observer_named_after_its_type_comes_first(tmp_path):
    path = tmp_path / "two.h5"
    h5 = H5MDSink(path)
    for name in ("a_loss", "loss"):
        h5.describe_observer(name, LossObserver().description())
    h5.write_frame(0, 0.0, np.zeros((3, 2)), {})
    h5.write_observables("a_loss", 0, 0.0, {"loss": 5.0})
    h5.write_observables("loss", 0, 0.0, {"loss": 1.0})
    h5.close(True)
    with open_run(path) as run:
        assert run.observers_of_type("loss") == ["loss", "a_loss"]
        assert read_series(run, "loss", "loss")[1][0] == 1.0


def test_a_hand_written_file_without_descriptions_reads_by_name(tmp_path):
    path = write_records(
        tmp_path / "r.h5",
        {"loss": [(0, {"loss": 2.0}), (1, {"loss": 1.0})]},
        frames=[(0, np.zeros((3, 2))), (1, np.ones((3, 2)))],
    )
    assert summarize_run(path)["loss"] == {"initial_train": 2.0, "final_train": 1.0}


def test_a_description_needs_a_type(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        with pytest.raises(ValueError, match="expected a 'type' entry"):
            write_description(f.create_group("g"), {"every": 1})


def test_options_that_are_not_numbers_or_strings_are_stored_as_text(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        group = f.create_group("g")
        write_description(
            group,
            {"type": "t", "K": len, "scale": [0.1, 0.2], "landmarks": None, "output_columns": slice(1, None)},
        )
        assert group.attrs["K"].decode() == "callable len"
        np.testing.assert_array_equal(group.attrs["scale"], [0.1, 0.2])
        assert "landmarks" not in group.attrs
        assert group.attrs["output_columns"].decode() == "slice(1, None, None)"


SCENARIO = """\
[run]
name = "renamed"
steps = 4
seed = 0
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 40
[init]
shape = "genus_region"
n = 24
[schedule]
lr = 0.05
[output]
frame_every = 2
"""


def test_scenario_names_keep_the_registry_type(tmp_path):
    """``name = ...`` of a scenario's observers: the file records the registry type of each."""
    from particledyn.runner import start_run
    from particledyn.scenario import parse_scenario

    entries = "".join(
        f'[[observers]]\ntype = "{kind}"\nname = "renamed_{kind}"\nevery = 2\n'
        + ("allow_close_start = true\n" if kind == "merges" else "")
        for kind in sorted(BUILT_IN)
    )
    start_run(parse_scenario(SCENARIO + entries), out=str(tmp_path / "run.h5"), progress=False)
    with open_run(tmp_path / "run.h5") as run:
        found = {name: d["type"] for name, d in run.observer_descriptions.items()}
    assert found == {f"renamed_{kind}": kind for kind in BUILT_IN}
    summary = summarize_run(tmp_path / "run.h5")
    assert summary["betti"]["recorded"] and summary["merges"]["recorded"]
    assert summary["K_source"] == "sharpness" and "final_train" in summary["loss"]


@pytest.mark.parametrize(
    ("table", "rule"),
    [
        ("", "0.25 x the start's diameter"),
        ("scale_relative = [0.1, 0.3]\n", "0.1, 0.3 x the start's diameter"),
        ('scale = "adaptive"\n', "the authors' diameter/4 of each frame"),
        ("scale = 0.4\n", "fixed"),
    ],
)
def test_the_betti_scale_rule_is_recorded_and_named_in_the_verdict(tmp_path, table, rule):
    from particledyn.runner import start_run
    from particledyn.scenario import parse_scenario

    entry = f'[[observers]]\ntype = "betti"\nevery = 2\nmax_dim = 1\n{table}'
    start_run(parse_scenario(SCENARIO + entry), out=str(tmp_path / "run.h5"), progress=False)
    summary = summarize_run(tmp_path / "run.h5")
    assert summary["betti"]["scale_rule"] == rule
    assert f"({rule})" in summary["verdict"]
    with open_run(tmp_path / "run.h5") as run:
        steps, scales = run.observable("betti", "scale")
    assert len(steps) == 3
    if table in ("", "scale_relative = [0.1, 0.3]\n"):  # fixed at the start for the whole run
        assert all(np.array_equal(s, scales[0]) for s in scales)


def test_a_betti_scale_and_a_relative_scale_together_are_refused():
    from particledyn.runner import prepare
    from particledyn.scenario import ScenarioError, parse_scenario

    entry = '[[observers]]\ntype = "betti"\nscale = 0.3\nscale_relative = 0.25\n'
    with pytest.raises(ScenarioError, match="scale = 0.3 and scale_relative = 0.25: expected one of them"):
        prepare(parse_scenario(SCENARIO + entry).resolved).simulation(MemorySink())
