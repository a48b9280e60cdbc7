"""Topology observers driven by hand-made StepInfo objects."""

import numpy as np
import pytest

from particledyn.observers import Observer, StepInfo
from particledyn.sinks import MemorySink
from particledyn.topology import (
    BettiObserver,
    ExpansionObserver,
    ZigzagObserver,
    betti_numbers,
    betti_series,
    bottleneck_distances,
    expansion_check,
    pack_diagrams,
    unpack_diagrams,
    zigzag_barcode,
)


def ring(n, arc=1.0, radius=1.0):
    t = 2 * np.pi * arc * np.arange(n) / n
    return np.c_[radius * np.cos(t), radius * np.sin(t), np.zeros(n)]


def info(step, positions, previous=None, lr=0.1):
    return StepInfo(
        step=step,
        time=step * lr,
        positions=positions,
        masses=np.full(len(positions), 1.0 / len(positions)),
        lr=lr,
        previous_positions=previous,
    )


def test_betti_observer_records_betti_diagram_and_bottleneck():
    frames = [ring(60), ring(60, radius=1.05), ring(60, arc=0.7)]
    obs = BettiObserver(every=1, scale=0.4, max_dim=1)
    assert isinstance(obs, Observer) and obs.name == "betti"
    sink = MemorySink()
    for step, X in enumerate(frames):
        sink.write_observables(obs.name, step, 0.0, obs.observe(info(step, X)))
    _, betti = sink.series("betti", "betti")
    assert betti[:, 0].tolist() == [[1, 1], [1, 1], [1, 0]]
    bn = sink.observables["betti"]["bottleneck"]
    assert np.all(np.isnan(bn[0]))
    diagrams = sink.observables["betti"]["diagram"]
    for a, b, d in zip(diagrams, diagrams[1:], bn[1:]):
        assert np.allclose(d, bottleneck_distances(a, b, 1, cap=0.4))
    assert bn[2][1] > bn[1][1]  # the loop vanished: a far bigger change in H1
    pairs, index = pack_diagrams(diagrams)  # the ragged layout a sink stores
    assert index[-1, 1] == len(pairs)
    assert sink.observables["betti"]["covering_radius"] == [0.0, 0.0, 0.0]


def test_betti_observer_adaptive_matches_the_function():
    x = np.random.default_rng(0).normal(size=(300, 3))
    X = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = BettiObserver(every=5, scale="adaptive").observe(info(0, X))
    ref = betti_numbers(X)
    assert np.array_equal(out["betti"], ref.betti) and np.array_equal(out["diagram"], ref.diagram)
    assert out["scale"] == pytest.approx(ref.diameter / 4)
    assert BettiObserver(every=5).wants(10) and not BettiObserver(every=5).wants(11)


def test_default_scale_is_a_quarter_of_the_start_diameter_held_fixed():
    # the cloud spreads: the authors' per-frame rule moves its scale, the default does not
    start = ring(80)
    frames = [start, 1.5 * start, 10.0 * start]
    default, authors = BettiObserver(max_dim=1), BettiObserver(max_dim=1, scale="adaptive")
    assert default.scale is None and default.scale_relative == 0.25
    fixed = betti_numbers(start, "adaptive", max_dim=1).diameter / 4
    outs = [default.observe(info(t, X)) for t, X in enumerate(frames)]
    theirs = [authors.observe(info(t, X)) for t, X in enumerate(frames)]
    assert [float(o["scale"][0]) for o in outs] == [fixed] * 3
    assert np.array_equal(outs[0]["betti"], theirs[0]["betti"])  # the same at the start
    assert theirs[2]["scale"][0] == pytest.approx(10 * fixed)
    for o, X in zip(outs, frames):
        ref = betti_numbers(X, fixed, max_dim=1)
        assert np.array_equal(o["betti"], ref.betti) and np.array_equal(o["diagram"], ref.diagram)
    # spread tenfold, the ring of 80 points falls apart at the start's scale (b0 grows)
    assert outs[0]["betti"][0][0] == 1 and outs[2]["betti"][0][0] == 80
    assert np.isfinite(outs[0]["diameter"]) and np.isnan(outs[1]["diameter"])
    # a resumed observer keeps the start's scale, a fresh one would take the frame's
    resumed = BettiObserver(max_dim=1)
    resumed.load_state_dict(default.state_dict())
    assert resumed.observe(info(3, frames[2]))["scale"][0] == fixed
    assert BettiObserver(max_dim=1).observe(info(3, frames[2]))["scale"][0] == pytest.approx(10 * fixed)


def test_relative_scales_several_fractions_and_alpha_radius():
    start = ring(60)
    diameter = betti_numbers(start, "adaptive", max_dim=1).diameter
    rips = BettiObserver(max_dim=1, scale_relative=[0.1, 0.3]).observe(info(0, start))
    assert np.allclose(rips["scale"], [0.1 * diameter, 0.3 * diameter], rtol=1e-15)
    alpha = BettiObserver(max_dim=1, complex="alpha", scale_relative=0.2).observe(info(0, start))
    assert alpha["scale"][0] == pytest.approx(0.1 * diameter, rel=1e-15)
    assert BettiObserver(scale_relative=[0.1, 0.3]).recorded_options()["scale_relative"] == [0.1, 0.3]


def test_fixed_landmarks_follow_the_same_particles_and_resume():
    rng = np.random.default_rng(1)
    X0 = ring(2000) + rng.normal(scale=0.01, size=(2000, 3))
    obs = BettiObserver(scale=0.5, max_dim=1, landmarks=50, fixed_landmarks=True)
    first = obs.observe(info(0, X0))
    X1 = 1.1 * X0
    second = obs.observe(info(1, X1))
    assert np.array_equal(first["landmarks"], second["landmarks"])
    assert second["covering_radius"] == pytest.approx(
        np.min(np.linalg.norm(X1[:, None] - X1[second["landmarks"]][None], axis=2), axis=1).max()
    )
    assert first["betti"].tolist() == second["betti"].tolist() == [[1, 1]]
    # resume: a fresh observer with the saved state carries on identically
    resumed = BettiObserver(scale=0.5, max_dim=1, landmarks=50, fixed_landmarks=True)
    resumed.load_state_dict(obs.state_dict())
    a, b = obs.observe(info(2, X0)), resumed.observe(info(2, X0))
    assert np.array_equal(a["landmarks"], b["landmarks"])
    assert np.allclose(a["bottleneck"], b["bottleneck"])
    # without fixed_landmarks the landmarks are re-chosen each time
    free = BettiObserver(scale=0.5, max_dim=1, landmarks=50)
    assert not np.array_equal(
        free.observe(info(0, X0))["landmarks"], free.observe(info(1, X0[::-1].copy()))["landmarks"]
    )


def test_expansion_observer_matches_expansion_check():
    rng = np.random.default_rng(2)
    X0 = rng.uniform(-3, 3, size=(30, 3))
    X1 = X0 + 0.05 * 0.8 * (X0 - X0.mean(axis=0))
    obs = ExpansionObserver(every=1, radii=[0.2, 0.45, 0.8], K=0.8, relative=True)
    assert obs.needs_previous
    first = obs.observe(info(0, X0, lr=0.05))
    later = obs.observe(info(1, X1, X0, lr=0.05))
    assert set(first) == set(later)  # every key exists from step 0 on (HDF5 declares them then)
    for key, value in later.items():
        assert np.shape(first[key]) == np.shape(value), key
    assert np.all(first["betti_before"] == -1) and np.isnan(first["delta"])
    out = obs.observe(info(1, X1, previous=X0, lr=0.05))
    delta = out["delta"]
    ref = expansion_check(X0, X1, np.array([0.2, 0.45, 0.8]) * delta, 0.05, 0.8)
    assert np.array_equal(out["betti_before"], ref.betti_before)
    assert np.array_equal(out["betti_after"], ref.betti_after)
    assert out["disjoint"].tolist() == [True, True, False]
    assert out["eta_K"] == pytest.approx(0.04)


def test_expansion_observer_K_callable_and_empirical():
    X0 = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    X1 = X0 + 0.1 * 0.9 * (X0 - X0.mean(axis=0))
    seen = []
    by_callable = ExpansionObserver(radii=[0.52], K=lambda i: seen.append(i.step) or 0.9)
    empirical = ExpansionObserver(radii=[0.52], K="empirical")
    for obs in (by_callable, empirical):
        out = obs.observe(info(3, X1, previous=X0, lr=0.1))
        assert out["eta_K"] == pytest.approx(0.09)
        # r = 0.52 delta lies in delta/2 < r < delta, where the printed statement fails for any
        # dynamics: reported as the misstatement, never as a contradiction
        assert out["misstatement"].tolist() == [True]
        assert out["contradicts_theorem"].tolist() == [False]
    assert (by_callable.certified, empirical.certified) == (True, False)
    assert seen == [3]


def test_expansion_observer_flags_a_contradiction_only_with_a_certified_k():
    X0 = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    X1 = X0 - 0.1 * 2.0 * (X0 - X0.mean(axis=0))  # contracts 40 %, beyond eta K = 0.1
    declared = ExpansionObserver(radii=[0.45], K=1.0)
    measured = ExpansionObserver(radii=[0.45], K=1.0, certified=False)
    assert declared.observe(info(1, X1, previous=X0, lr=0.1))["contradicts_theorem"].tolist() == [True]
    assert measured.observe(info(1, X1, previous=X0, lr=0.1))["contradicts_theorem"].tolist() == [False]


def test_zigzag_observer_records_frames_where_the_run_records_go(tmp_path):
    from particledyn.sinks import MemorySink

    obs = ZigzagObserver(every=2, scale=0.3, max_dim=1)
    frames = [ring(40) if t < 3 else ring(40, arc=0.8) for t in range(5)]
    sink = MemorySink()
    for t, X in enumerate(frames):
        values = obs.observe(info(2 * t, X))
        assert values["n_frames"] == t + 1 and np.array_equal(values["frame"], X)
        sink.write_observables("zigzag", 2 * t, float(t), values)
    steps, stored = obs.frames(sink)
    assert steps.tolist() == [0, 2, 4, 6, 8] and all(np.array_equal(a, b) for a, b in zip(stored, frames))
    assert np.array_equal(obs.barcode(sink), zigzag_barcode(frames, 0.3, 1))
    restored = ZigzagObserver(every=2, scale=0.3, max_dim=1)
    restored.load_state_dict(obs.state_dict())
    assert np.array_equal(restored.barcode(sink), obs.barcode(sink))


@pytest.mark.parametrize(
    "make",
    [
        lambda: BettiObserver(every=0),
        lambda: BettiObserver(scale="diam"),
        lambda: BettiObserver(scale=0.3, scale_relative=0.25),
        lambda: BettiObserver(scale_relative=0.0),
        lambda: BettiObserver(scale_relative=[0.2, float("nan")]),
        lambda: BettiObserver(complex="cech"),
        lambda: BettiObserver(landmarks=-3),
        lambda: BettiObserver(fixed_landmarks=True),
        lambda: ExpansionObserver(radii=[]),
        lambda: ExpansionObserver(K="hessian"),
        lambda: ExpansionObserver(K=-1.0),
        lambda: ZigzagObserver(scale=float("nan")),
    ],
)
def test_bad_configuration(make):
    with pytest.raises(ValueError):
        make()


def test_offline_betti_series_equals_the_observer_frame_by_frame():
    rng = np.random.default_rng(5)
    frames = [ring(300) + rng.normal(scale=0.01, size=(300, 3)) for _ in range(3)]
    frames.append(ring(300, arc=0.6))
    series = betti_series(frames, scale=[0.3, 0.6], max_dim=1, landmarks=80, fixed_landmarks=True)
    obs = BettiObserver(scale=[0.3, 0.6], max_dim=1, landmarks=80, fixed_landmarks=True)
    diagrams = unpack_diagrams(series["pairs"], series["index"])
    for t, X in enumerate(frames):
        out = obs.observe(info(t, X))
        assert np.array_equal(series["betti"][t], out["betti"])
        assert np.array_equal(diagrams[t], out["diagram"])
        assert np.allclose(series["bottleneck"][t], out["bottleneck"], equal_nan=True)
        assert series["covering_radius"][t] == out["covering_radius"]
    assert series["betti"][:, 1, 1].tolist() == [1, 1, 1, 0]


@pytest.mark.parametrize(
    "observer",
    [BettiObserver(complex="alpha", scale=0.3, max_dim=1), ExpansionObserver(model="alpha", K=1.0)],
    ids=["betti", "expansion"],
)
def test_alpha_on_a_cloud_above_its_dimension_limit_is_refused_before_step_0(observer):
    from particledyn import GD, BlackBoxKernel, Simulation
    from particledyn.observers import ObserverError
    from particledyn.topology.betti import ALPHA_MAX_DIMENSION, alpha_diagram, check_alpha_dimension

    check_alpha_dimension(ALPHA_MAX_DIMENSION)
    too_many = ALPHA_MAX_DIMENSION + 1
    cloud = np.random.default_rng(0).normal(size=(30, too_many))
    with pytest.raises(
        ValueError, match=f"alpha complex of a {too_many}-dimensional cloud: expected dimension <= "
    ):
        alpha_diagram(cloud)  # before gudhi's Delaunay, which would not finish at D = 794
    sim = Simulation(BlackBoxKernel(lambda x, m, c: -x, dim=too_many), cloud, GD(), observers=[observer])
    with pytest.raises(
        ObserverError, match=f"observer '{observer.name}' failed at step 0: ValueError: an alpha"
    ):
        sim.run(3)
    assert sim.state.step == 0 and np.array_equal(sim.state.positions, cloud)
    rips = BettiObserver(complex="rips", scale=0.3, max_dim=1)
    Simulation(BlackBoxKernel(lambda x, m, c: -x, dim=too_many), cloud, GD(), observers=[rips]).run(1)
