"""The run verdict: preserved vs changed topology, when, and eta*K there."""

import json

import h5py
import numpy as np
import pytest
from run_files import make_run, write_records

from particledyn.summary import summarize_run, summary_path, write_summary


@pytest.fixture(scope="module")
def small_lr_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "small_lr.h5", lr=0.01, steps=40)


@pytest.fixture(scope="module")
def large_lr_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "large_lr.h5", lr=2.0, steps=40)


def _series(path, name, key):
    """(steps, values) read with plain h5py, independently of the project's reader."""
    with h5py.File(path, "r") as f:
        where = f"observables/{name}/{key}"
        group = f[where] if where in f else f[f"particledyn/ragged/{name}/{key}"]
        return group["step"][()], group["value"][()]


def test_small_learning_rate_keeps_the_topology(small_lr_run):
    s = summarize_run(small_lr_run)
    assert s["topology_preserved"] is True
    assert s["finished"] is True and s["last_step"] == 40
    assert s["n_particles"] == 120 and s["dimension"] == 2
    # a genus-2 region: one component, two holes
    assert s["betti"]["initial"] == (1, 2) and s["betti"]["constant"]
    assert s["betti"]["first_change_step"] is None and s["change_step"] is None
    assert s["merges"]["first_merge_step"] is None and s["merges"]["total_merges"] == 0
    steps, eta_K = _series(small_lr_run, "sharpness", "eta_K")
    assert s["K_source"] == "sharpness"
    assert s["eta_K"]["max"]["sharpness"] == pytest.approx(eta_K.max(), rel=1e-12)
    assert s["eta_K"]["max_step"]["sharpness"] == steps[np.argmax(eta_K)]
    assert s["eta_K"]["max"]["sharpness"] < 1
    assert set(s["eta_K"]["sources"]) == {"sharpness", "pairwise_lipschitz", "lemmas"}
    _, loss = _series(small_lr_run, "loss", "loss")
    assert s["loss"]["final_train"] == pytest.approx(loss[-1]) and loss[-1] < loss[0]
    _, pairwise = _series(small_lr_run, "pairwise_lipschitz", "eta_K")
    scale = s["betti"]["initial_scales"][0]
    assert s["changes"] == [] and s["exact"] is True
    # constant Betti numbers at the recorded scale and no merges: a measurement, not "topology
    # preserved" (that needs every scale and a certified K)
    assert s["verdict"] == (
        f"no change seen: Betti (1, 2) constant at scale {scale:.3g} (radius 0.25 x the start's "
        "diameter / 2) over 40 steps, "
        "no atom merges, no exact merges; "
        f"max eta*K = {eta_K.max():.3g} (sharpness), "
        f"{np.nanmax(pairwise):.3g} (pairwise_lipschitz)"
    )


def test_large_learning_rate_changes_the_topology(large_lr_run):
    s = summarize_run(large_lr_run)
    assert s["topology_preserved"] is False
    b_steps, _ = _series(large_lr_run, "betti", "betti")
    with h5py.File(large_lr_run, "r") as f:
        group = f["particledyn/ragged/betti/betti"]  # array-valued: the module's ragged group
        index, flat = group["index"][()], group["value"][()]
    records = [flat[a:b] for a, b in index]
    first = next(i for i, r in enumerate(records) if not np.array_equal(r, records[0]))
    assert s["betti"]["first_change_step"] == b_steps[first]
    assert s["betti"]["before_change"] == tuple(records[first - 1][0])
    assert s["betti"]["after_change"] == tuple(records[first][0])

    m_steps, n_merges = _series(large_lr_run, "merges", "n_merges")
    _, n_atoms = _series(large_lr_run, "merges", "n_atoms")
    seen = (n_merges > 0) | np.r_[False, np.diff(n_atoms) < 0]
    assert seen.any(), "lr = 2 should merge neurons in this setting"
    assert s["merges"]["first_merge_step"] == m_steps[seen][0]
    assert s["change_step"] == min(s["betti"]["first_change_step"], s["merges"]["first_merge_step"])

    steps, eta_K = _series(large_lr_run, "sharpness", "eta_K")
    change = s["betti"]["first_change_step"]
    expected = eta_K[steps <= change][-1]
    assert s["eta_K"]["at_betti_change"]["sharpness"] == pytest.approx(expected, rel=1e-12)
    assert expected > 1  # the topology broke with eta*K above the threshold
    # each change named by its kind, with eta*K measured in its window and which K that is
    betti_change = next(c for c in s["changes"] if c.get("what") == "Betti numbers changed")
    assert betti_change["kind"] == "union_of_balls" and betti_change["step"] == change
    assert betti_change["eta_K"]["sharpness"] == {
        "value": pytest.approx(expected, rel=1e-12),
        "step": change,
        "how": "at the step",
        "certified": False,
        "name": "lambda_max of the Hessian, not a Lipschitz bound",
    }
    assert betti_change["window"]["lo"] < betti_change["window"]["hi"]
    assert s["verdict"].startswith(
        f"changes: Betti ({', '.join(map(str, s['betti']['before_change']))}) "
        f"-> ({', '.join(map(str, s['betti']['after_change']))}) at step {change}"
    )
    assert f"{expected:.3g} (sharpness: lambda_max of the Hessian, not a Lipschitz bound)" in s["verdict"]
    assert f"atoms at eps = 0.01 merged at step {s['merges']['first_merge_step']}" in s["verdict"]
    assert "not an exact merge" in s["verdict"] and "topology changed" not in s["verdict"]


def test_write_summary_stores_the_verdict_as_json_beside_the_run(large_lr_run, tmp_path):
    target = write_summary(large_lr_run)
    assert target == summary_path(large_lr_run) == large_lr_run.with_name("large_lr_summary.json")
    stored = json.loads(target.read_text())
    assert stored == json.loads(json.dumps(summarize_run(large_lr_run)))
    elsewhere = write_summary(large_lr_run, tmp_path / "verdict.json")
    assert json.loads(elsewhere.read_text())["verdict"] == stored["verdict"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_summary(large_lr_run, tmp_path / "missing" / "verdict.json")


def test_atom_drop_between_records_counts_as_a_merge_and_eta_K_is_read_at_or_before(tmp_path):
    # merges are compared step to step only: the drop 10 -> 9 atoms between records
    # at steps 10 and 20 is a merge in (10, 20] although n_merges is 0 at step 20
    merges = [
        (0, {"n_merges": 0, "n_atoms": 10}),
        (10, {"n_merges": 0, "n_atoms": 10}),
        (20, {"n_merges": 0, "n_atoms": 9}),
        (30, {"n_merges": 1, "n_atoms": 8}),
    ]
    pairwise = [
        (0, {"K": np.nan, "eta_K": np.nan}),
        (5, {"K": 4.0, "eta_K": 0.4}),
        (15, {"K": 9.0, "eta_K": 0.9}),
        (25, {"K": 30.0, "eta_K": 3.0}),
    ]
    path = write_records(tmp_path / "hand.h5", {"merges": merges, "pairwise_lipschitz": pairwise})
    s = summarize_run(path)
    assert s["merges"]["first_merge_step"] == 20 and s["merges"]["records_with_merges"] == 2
    assert s["merges"]["initial_atoms"] == 10 and s["merges"]["final_atoms"] == 8
    assert s["eta_K"]["at_first_merge"] == {"pairwise_lipschitz": 0.9}
    assert s["eta_K"]["max"] == {"pairwise_lipschitz": 3.0}
    assert s["eta_K"]["max_step"] == {"pairwise_lipschitz": 25}
    assert s["betti"] == {"recorded": False}
    # quoted over the window (10, 20] where the atoms dropped: the record at 15, not a stale one
    assert s["changes"][0]["eta_K"]["pairwise_lipschitz"]["how"] == "max in window"
    assert s["verdict"] == (
        "changes: atoms at eps = n/a merged at step 20 (in (10, 20]), a union-of-balls "
        "change (b0 at radius eps/2), not an exact merge; eta*K 0.9 "
        "(pairwise_lipschitz: pairwise K, a lower bound, max in window at step 15); "
        "no theorem predicts a change at one fixed scale (Theorem 2 covers "
        "r <= delta/2 only); max eta*K = 3 (pairwise_lipschitz)"
    )


def test_betti_change_several_scales_and_unfinished_run(tmp_path):
    betti = [
        (0, {"betti": np.array([[1, 2, 0], [1, 0, 0]])}),
        (10, {"betti": np.array([[1, 2, 0], [1, 0, 0]])}),
        (20, {"betti": np.array([[1, 1, 0], [1, 0, 0]])}),
    ]
    sharp = [
        (step, {"K": K, "eta_K": 0.1 * K, "two_over_eta": 20.0})
        for step, K in ((0, 5.0), (10, 12.0), (20, 30.0))
    ]
    loss = [(0, {"loss": 2.0, "test_loss": 2.5}), (20, {"loss": 0.5, "test_loss": np.nan})]
    path = write_records(
        tmp_path / "unfinished.h5", {"betti": betti, "sharpness": sharp, "loss": loss}, finished=False
    )
    s = summarize_run(path)
    assert s["finished"] is False and s["topology_preserved"] is False
    assert s["betti"]["before_change"] == [(1, 2, 0), (1, 0, 0)]
    assert s["eta_K"]["at_betti_change"]["sharpness"] == pytest.approx(3.0)
    assert s["loss"] == {"initial_train": 2.0, "final_train": 0.5, "initial_test": 2.5, "final_test": None}
    assert s["verdict"] == (
        "changes: Betti [(1, 2, 0), (1, 0, 0)] -> [(1, 1, 0), (1, 0, 0)] at step 20 "
        "(in (10, 20]) at scale n/a; a union-of-balls change at that scale; eta*K 3 "
        "(sharpness: lambda_max of the Hessian, not a Lipschitz bound); no theorem "
        "predicts a change at one fixed scale (Theorem 2 covers r <= delta/2 only); "
        "max eta*K = 3 (sharpness); run not finished (last record at step 20)"
    )
    json.dumps(s, allow_nan=False)  # NaN became None


def test_run_without_topology_observables_has_no_verdict_on_topology(tmp_path):
    path = write_records(tmp_path / "loss_only.h5", {"loss": [(0, {"loss": 1.0}), (5, {"loss": 0.2})]})
    s = summarize_run(path)
    assert s["topology_preserved"] is None and s["change_step"] is None and s["K_source"] is None
    assert s["verdict"].startswith("no topology observables recorded")
    assert s["last_step"] == 5


def test_bad_paths_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run file"):
        summarize_run(tmp_path / "absent.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="not a particledyn H5MD file"):
        summarize_run(other)


@pytest.fixture
def probe_types():
    """Observer types ``probe_peak`` (a working summarize hook) and ``probe_broken`` (one that raises)."""
    from particledyn.scenario import OBSERVERS, ObserverType, register_observer

    def peak(run, name):
        steps, values = run.observable(name, "value")
        return {"max": float(np.max(values)), "max_step": int(steps[np.argmax(values)])}

    def broken(run, name):
        raise RuntimeError(f"cannot read {name}\nsecond line")

    made = [
        register_observer(ObserverType(kind, "a probe", (), lambda options, context: None, summarize=hook))
        for kind, hook in (("probe_peak", peak), ("probe_broken", broken))
    ]
    yield
    for entry in made:
        OBSERVERS.unregister(entry.name)


def test_an_observer_types_summarize_hook_adds_its_result_to_the_verdict(tmp_path, probe_types):
    records = [(0, {"value": 1.0}), (5, {"value": 4.5}), (10, {"value": 2.0})]
    path = write_records(tmp_path / "hooked.h5", {"probe_peak": records, "loss": [(0, {"loss": 1.0})]})
    s = summarize_run(path)
    assert s["observers"] == [
        {
            "type": "probe_peak",
            "name": "probe_peak",
            "label": "probe_peak",
            "result": {"max": 4.5, "max_step": 5},
            "text": "max 4.5, max_step 5",
            "error": None,
        }
    ]
    assert s["verdict"].endswith("max eta*K = n/a; probe_peak: max 4.5, max_step 5")
    stored = json.loads(write_summary(path).read_text())
    assert stored["observers"][0]["result"] == {"max": 4.5, "max_step": 5}


def test_a_summarize_hook_that_raises_leaves_the_verdict_and_a_one_line_note(tmp_path, probe_types):
    records = [(0, {"value": 1.0}), (5, {"value": 3.0})]
    path = write_records(
        tmp_path / "broken.h5",
        {"probe_broken": records, "probe_peak": records, "loss": [(0, {"loss": 1.0}), (5, {"loss": 0.5})]},
    )
    s = summarize_run(path)
    note = "probe_broken: summarize failed (RuntimeError: cannot read probe_broken second line)"
    assert s["observer_notes"] == [note] and "\n" not in s["verdict"]
    assert s["verdict"] == (
        "no topology observables recorded (add the betti and merges observers); "
        f"max eta*K = n/a; probe_peak: max 3, max_step 5; {note}"
    )
    broken = s["observers"][0]
    assert broken["name"] == "probe_broken" and broken["result"] is None and broken["text"] is None
    assert s["loss"]["final_train"] == 0.5  # nothing else lost
    assert json.loads(write_summary(path).read_text())["observer_notes"] == [note]


def test_a_summarize_hook_must_return_a_json_ready_dict(tmp_path, probe_types):
    from particledyn.scenario import OBSERVERS, ObserverType, register_observer

    path = write_records(tmp_path / "nan.h5", {"probe_peak": [(0, {"value": np.nan})]})
    (note,) = summarize_run(path)["observer_notes"]
    assert note.startswith(
        "probe_peak: summarize failed (ValueError: returned fields that are not JSON-ready (ValueError: "
    ) and note.endswith("lists and dicts)")
    assert json.loads(write_summary(path).read_text())["observers"][0]["error"] in note
    register_observer(
        ObserverType(
            "probe_list", "a probe", (), lambda options, context: None, summarize=lambda run, name: [1.0]
        )
    )
    try:
        path = write_records(tmp_path / "list.h5", {"probe_list": [(0, {"value": 1.0})]})
        assert summarize_run(path)["observer_notes"] == [
            "probe_list: summarize failed (TypeError: returned list, expected a dict)"
        ]
    finally:
        OBSERVERS.unregister("probe_list")
