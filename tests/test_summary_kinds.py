"""The verdict names what kind of change it saw, at which scale, with which K and prediction."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from run_files import write_records

from particledyn.summary import summarize_run
from particledyn.summary_kinds import WINDOW_RATIO, betti_window


def ring(n=40, radius=1.0, seed=0):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[np.cos(t), np.sin(t)] * radius + np.random.default_rng(seed).normal(0, 1e-3, (n, 2))


def test_a_tube_thinning_across_the_scale_is_geometric_a_hole_filling_is_persistent():
    before = np.array([[0, 0.0, np.inf], [1, 0.05, 0.20]])
    thinner = np.array([[0, 0.0, np.inf], [1, 0.05, 0.107]])
    filled = np.array([[0, 0.0, np.inf]])
    geometric = betti_window(before, thinner, 0.15, 0.3, 1)
    assert (geometric["lo"], geometric["hi"]) == (0.107, 0.20)
    assert geometric["ratio"] < WINDOW_RATIO and geometric["kind"] == "geometric"
    persistent = betti_window(before, filled, 0.15, 0.3, 1)
    assert (persistent["lo"], persistent["hi"], persistent["kind"]) == (0.05, 0.20, "persistent")
    assert betti_window(before, thinner, 0.08, 0.3, 1)["kind"] is None  # they agree at 0.08
    # the diagrams stop at the scale: a narrow window below it says nothing about above
    capped = betti_window(before, thinner, 0.15, 0.15, 1)
    assert capped["hi_capped"] and capped["kind"] == "unresolved"


def reference_window(before, after, scale, threshold, max_dim):
    """betti_window by brute force: every cut, every pair, plain Python."""
    rows = [list(map(float, r)) for d in (before, after) for r in np.asarray(d, dtype=float).reshape(-1, 3)]
    cuts = sorted({0.0, threshold} | {v for r in rows for v in r[1:] if math.isfinite(v) and v <= threshold})

    def betti(d, c):
        d = np.asarray(d, dtype=float).reshape(-1, 3)
        return [sum(1 for r in d if r[0] == k and r[1] <= c < r[2]) for k in range(max_dim + 1)]

    differs = [betti(before, c) != betti(after, c) for c in cuts[:-1]]
    k = 0
    while k + 1 < len(differs) and cuts[k + 1] <= scale:
        k += 1
    if not differs or not differs[k]:
        return {"lo": None, "hi": None, "hi_capped": False, "ratio": None, "kind": None}
    lo, hi = k, k
    while lo > 0 and differs[lo - 1]:
        lo -= 1
    while hi + 1 < len(differs) and differs[hi + 1]:
        hi += 1
    low, high = cuts[lo], cuts[hi + 1]
    ratio = high / low if low > 0 else math.inf
    capped = high >= threshold
    kind = "persistent" if ratio >= WINDOW_RATIO else ("unresolved" if capped else "geometric")
    return {"lo": low, "hi": high, "hi_capped": capped, "ratio": ratio, "kind": kind}


GRID = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, math.inf]  # few values: ties, inf, beyond 0.4


@st.composite
def diagrams(draw):
    n = draw(st.integers(0, 12))
    out = []
    for _ in range(n):
        i = draw(st.integers(0, len(GRID) - 2))
        j = draw(st.integers(i, len(GRID) - 1))
        out.append([draw(st.integers(0, 2)), GRID[i], GRID[j]])
    return np.array(out, dtype=float).reshape(-1, 3)


@settings(max_examples=300, deadline=None)
@given(
    before=diagrams(),
    after=diagrams(),
    scale=st.sampled_from(GRID[:-1] + [0.07, 0.33]),
    threshold=st.sampled_from([0.1, 0.3, 0.4]),
    max_dim=st.integers(0, 2),
)
def test_the_window_equals_a_brute_force_read_of_every_cut(before, after, scale, threshold, max_dim):
    assert betti_window(before, after, scale, threshold, max_dim) == reference_window(
        before, after, scale, threshold, max_dim
    )


def test_the_window_equals_brute_force_on_random_diagrams_in_every_branch():
    rng = np.random.default_rng(3)

    def diagram(n):
        birth = rng.uniform(0, 0.3, n)
        death = birth + rng.exponential(0.05, n)
        death[rng.random(n) < 0.1] = np.inf
        return np.c_[rng.integers(0, 2, n), birth, death]

    kinds = set()
    for _ in range(200):
        a, b, scale = diagram(rng.integers(0, 25)), diagram(rng.integers(0, 25)), rng.uniform(0, 0.4)
        got = betti_window(a, b, scale, 0.4, 1)
        assert got == reference_window(a, b, scale, 0.4, 1)
        kinds.add(got["kind"])
    assert {"persistent", "geometric", "unresolved", None} <= kinds  # every branch was compared


def betti_records(after_diagram, scale=0.15):
    rec = lambda d: {
        "betti": np.array([[1, int(np.sum((d[:, 0] == 1) & (d[:, 1] <= scale) & (scale < d[:, 2])))]]),
        "scale": np.array([scale]),
        "diagram": d,
        "threshold": 0.3,
    }
    before = np.array([[0, 0.0, np.inf], [1, 0.05, 0.20]])
    return [(0, rec(before)), (10, rec(before)), (20, rec(after_diagram))]


def test_verdict_calls_a_narrow_window_geometric(tmp_path):
    thinner = np.array([[0, 0.0, np.inf], [1, 0.05, 0.107]])
    path = write_records(tmp_path / "tube.h5", {"betti": betti_records(thinner)})
    s = summarize_run(path)
    (change,) = s["changes"]
    assert change["kind"] == "union_of_balls" and change["window"]["kind"] == "geometric"
    assert "differs over scales [0.107, 0.2]: geometric" in s["verdict"]
    assert "no theorem predicts a change at one fixed scale" in s["verdict"]


def exact_records(counts):
    return [(10 * i, {"n_merges": 0, "n_atoms": 40, "n_exact_pairs": c}) for i, c in enumerate(counts)]


@pytest.mark.parametrize(
    "eta_K, certified, expected",
    [
        (0.5, True, "certified eta*K < 1: Theorem 1 predicts no exact merge here (a contradiction)"),
        (1.5, True, "certified eta*K >= 1: Theorem 1 makes no prediction"),
        (0.5, False, "eta*K < 1 with uncertified K only (lemmas): no certified prediction"),
    ],
)
def test_an_exact_merge_and_what_the_theory_predicts_with_which_k(tmp_path, eta_K, certified, expected):
    lemmas = [(step, {"K": 1.0, "eta_K": eta_K, "certified": certified}) for step in (0, 10, 20)]
    path = write_records(tmp_path / "exact.h5", {"merges": exact_records([0, 0, 1]), "lemmas": lemmas})
    s = summarize_run(path)
    exact = next(c for c in s["changes"] if c["kind"] == "exact")
    assert exact["step"] == 20 and exact["window_start"] == 10
    assert exact["prediction"] == expected and expected in s["verdict"]
    assert s["verdict"].startswith(
        "changes: exact merge at step 20 (in (10, 20]): pairs equal at float precision 0 -> 1"
    )


def test_eta_K_from_before_the_window_is_marked_stale(tmp_path):
    sharp = [(0, {"K": 5.0, "eta_K": 0.5})]  # one record, long before the change
    path = write_records(tmp_path / "stale.h5", {"merges": exact_records([0, 0, 0, 2]), "sharpness": sharp})
    s = summarize_run(path)
    exact = s["changes"][0]
    assert exact["eta_K"]["sharpness"]["how"] == "stale"
    assert "STALE: last record step 0" in s["verdict"]
    assert exact["prediction"] == "eta*K not measured in the window: no prediction can be checked"


def test_a_landmark_change_states_its_cover_and_is_checked_on_the_full_cloud(tmp_path):
    X0, X1 = ring(), ring(radius=1.0, seed=1)  # the same circle: the full cloud keeps b1 = 1
    d0 = np.array([[0, 0.0, np.inf], [1, 0.2, 1.5]])
    d1 = np.array([[0, 0.0, np.inf]])  # the landmark estimate "lost" the hole
    rec = lambda b, d: {
        "betti": np.array([[1, b]]),
        "scale": np.array([0.5]),
        "diagram": d,
        "threshold": 0.6,
        "covering_radius": 0.3,
        "landmarks": np.arange(6),
    }
    path = write_records(
        tmp_path / "landmarks.h5", {"betti": [(0, rec(1, d0)), (10, rec(0, d1))]}, frames=[(0, X0), (10, X1)]
    )
    s = summarize_run(path)
    (change,) = s["changes"]
    assert change["kind"] == "landmark_estimate" and change["covering_radius"] == 0.3
    assert change["confirmed"] == {"before": [1, 1], "after": [1, 1], "changed": False}
    assert "6 landmarks, covering radius 0.3" in s["verdict"] and "NOT confirmed" in s["verdict"]
    assert summarize_run(path, confirm_max_n=0)["changes"][0]["confirmed"] is None


def test_every_recorded_merge_pair_is_listed_with_its_distances_and_eta_K_at_that_step(tmp_path):
    blank = {"merge_i": -1, "merge_j": -1, "merge_previous_distance": np.nan, "merge_distance": np.nan}
    merges = [
        (0, {"n_merges": 0, "n_atoms": 10, "eps": 0.1, **blank}),
        (
            1,
            {
                "n_merges": 1,
                "n_atoms": 9,
                "eps": 0.1,
                "merge_i": 2,
                "merge_j": 5,
                "merge_previous_distance": 0.104,
                "merge_distance": 0.099,
            },
        ),
        (2, {"n_merges": 0, "n_atoms": 9, "eps": 0.1, **blank}),
        (
            3,
            {
                "n_merges": 1,
                "n_atoms": 8,
                "eps": 0.1,
                "merge_i": 0,
                "merge_j": 1,
                "merge_previous_distance": 0.5,
                "merge_distance": 0.01,
            },
        ),
    ]
    pairwise = [(s, {"K": 1.0, "eta_K": e}) for s, e in ((0, np.nan), (1, 0.2), (2, 0.3), (3, 1.4))]
    frames = [(s, np.random.default_rng(s).normal(size=(10, 2))) for s in range(4)]
    path = write_records(
        tmp_path / "pairs.h5", {"merges": merges, "pairwise_lipschitz": pairwise}, frames=frames
    )
    s = summarize_run(path)
    assert s["merges"]["pairs"] == [
        {
            "step": 1,
            "i": 2,
            "j": 5,
            "previous_distance": 0.104,
            "distance": 0.099,
            "eta_K": {"pairwise_lipschitz": 0.2},
        },
        {
            "step": 3,
            "i": 0,
            "j": 1,
            "previous_distance": 0.5,
            "distance": 0.01,
            "eta_K": {"pairwise_lipschitz": 1.4},
        },
    ]
    first = s["changes"][0]
    assert first["merge_i"] == 2 and [h[0] for h in first["pair_history"]] == [0, 1]
    d = np.linalg.norm(frames[1][1][2] - frames[1][1][5])
    assert first["pair_history"][1][1] == pytest.approx(d)
    assert "pair 2-5: 0.104 -> 0.099" in s["verdict"]
