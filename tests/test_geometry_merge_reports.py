"""Merges reported honestly: eps tied to the start, the close start refused, pairs beside atoms,
the merging pair named, exact merges at float precision, and events between sparse records."""

import numpy as np
import pytest

from particledyn import BlackBoxKernel, Simulation
from particledyn.geometry import ClosestApproachObserver, MergeObserver
from particledyn.observers import ObserverError


def run(rule, X, steps, observers, lr=1.0):
    sim = Simulation(BlackBoxKernel(rule, dim=X.shape[1], tolerance=np.inf), X, lr=lr, observers=observers)
    sim.run(steps, progress=False)
    return sim.sink.observables


def grid(n=6, spacing=1.0):
    return np.stack(np.meshgrid(np.arange(n), np.arange(n)), -1).reshape(-1, 2) * spacing


def test_eps_relative_is_a_fraction_of_the_start_closest_pair_and_a_close_start_is_refused():
    X = grid()
    X[1] = X[0] + [0.3, 0.0]  # the closest pair: 0.3
    records = run(lambda x, m, c: 0 * x, X, 1, [MergeObserver(eps_relative=0.5)])["merges"]
    assert records["eps"][0] == pytest.approx(0.15) and records["n_atoms"][0] == 36
    with pytest.raises(
        ObserverError,
        match=r"observer 'merges' failed at step 0: ValueError: merges: eps=0\.5 but "
        r"the start already has particles 0 and 1 at distance 0\.3: "
        r"expected eps below",
    ) as info:
        run(lambda x, m, c: 0 * x, X, 1, [MergeObserver(eps=0.5)])
    assert isinstance(info.value.error, ValueError)
    allowed = run(lambda x, m, c: 0 * x, X, 1, [MergeObserver(eps=0.5, allow_close_start=True)])
    assert allowed["merges"]["n_atoms"][0] == 35


def test_pairs_beside_atoms_and_the_merging_pair_with_its_distances():
    X = grid()
    target = X[7].copy()

    def pull(x, m, c):  # particles 0, 1, 6 contract onto particle 7's start: a 4-particle atom
        u = np.zeros_like(x)
        for i in (0, 1, 6):
            u[i] = 0.45 * (target - x[i])
        return u

    records = run(pull, X, 6, [MergeObserver(eps=0.2)])["merges"]
    assert records["n_atoms"][0] == 36 and records["n_atoms"][-1] == 33
    assert records["n_close_pairs"][-1] == 6  # 4 particles within eps of each other: 6 pairs, 1 atom
    first = next(s for s, n in enumerate(records["n_merges"]) if n > 0)
    i, j = records["merge_i"][first], records["merge_j"][first]
    assert records["merge_distance"][first] <= 0.2 < records["merge_previous_distance"][first]
    assert {i, j} <= {0, 1, 6, 7}
    assert records["merge_i"][0] == -1 and np.isnan(records["merge_distance"][0])


def test_exact_merges_are_pairs_equal_at_float_precision():
    X = grid()

    def collapse(x, m, c):  # particle 0 lands on particle 1 exactly at step 1
        u = np.zeros_like(x)
        u[0] = x[1] - x[0]
        return u

    records = run(collapse, X, 2, [MergeObserver(eps=0.5)])["merges"]
    assert list(records["n_exact_pairs"]) == [0, 1, 1]


def test_closest_approach_catches_a_pair_that_closes_and_reopens_between_merge_records():
    X = grid()

    def swing(x, m, c):
        u = np.zeros_like(x)
        u[0, 0] = np.cos(np.pi * c / 6) * 0.4  # x_0 goes toward x_1 and back
        return u

    sim = Simulation(
        BlackBoxKernel(swing, dim=2, tolerance=np.inf, context=lambda step, rng, b: step),
        X,
        lr=1.0,
        observers=[MergeObserver(eps=0.2, every=12), ClosestApproachObserver()],
    )
    sim.run(12, progress=False)
    merges, closest = sim.sink.observables["merges"], sim.sink.observables["closest_approach"]
    assert sum(merges["n_merges"]) == 0 and merges["n_atoms"][-1] == 36  # records see nothing
    d = np.asarray(closest["min_distance"])
    low = int(np.argmin(d))
    assert d[low] < 0.2 and (closest["i"][low], closest["j"][low]) == (0, 1)
    assert len(d) == 13


def test_bad_merge_options():
    with pytest.raises(ValueError, match="eps_relative=-1.0: expected a positive fraction"):
        MergeObserver(eps_relative=-1)
