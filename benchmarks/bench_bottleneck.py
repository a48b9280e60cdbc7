"""Bottleneck distance of the 3-D Betti observer's diagrams: gudhi's CGAL matching against hera.

The diagrams are those ``BettiObserver`` compares in ``authors_adam_3d_large`` at N = 1024 (alpha
radius 0.05, b0..b2): the start's and one epoch (28 steps) later's, truncated as the observer
truncates them. For each dimension it prints the pairs on each side, the CPU milliseconds
(median of ``--repeats``) of ``gudhi.bottleneck_distance`` (CGAL, what the observer calls for
H1/H2; H0 takes the exact same-birth path) and of ``gudhi.hera.bottleneck_distance`` with
``delta = 0`` (exact), and both distances, which must agree.

Usage::

    python benchmarks/bench_bottleneck.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gudhi
import gudhi.hera
import numba
import numpy as np

from particledyn.runner import prepare
from particledyn.scenario import parse_override, parse_scenario
from particledyn.sinks import MemorySink
from particledyn.topology.betti import alpha_diagram
from particledyn.topology.diagrams import _truncate

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, "..", "scenarios", "authors", "authors_adam_3d_large.toml")


def cpu_ms(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        f()
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure (median)")
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    with open(SCENARIO) as f:
        text = f.read().split("[[observers]]")[0]
    scenario = parse_scenario(text, SCENARIO, dict([parse_override("init.n=1024")]))
    sim = prepare(scenario.resolved).simulation(MemorySink())
    sim.frame_every = sim.checkpoint_every = 0
    before = np.array(sim.positions, dtype=np.float64)
    sim.run(28, progress=False)
    after = np.array(sim.positions, dtype=np.float64)
    radius = 0.05
    A, B = alpha_diagram(before, 2, radius), alpha_diagram(after, 2, radius)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'dim':>3} {'pairs':>11} {'CGAL ms':>9} {'hera ms':>9} {'CGAL d_B':>14} {'hera d_B':>14}")
    for k in (1, 2):
        a, b = _truncate(A, k, radius), _truncate(B, k, radius)
        cgal = cpu_ms(lambda a=a, b=b: gudhi.bottleneck_distance(a, b), args.repeats)
        hera = cpu_ms(lambda a=a, b=b: gudhi.hera.bottleneck_distance(a, b, 0.0), args.repeats)
        d_cgal, d_hera = gudhi.bottleneck_distance(a, b), gudhi.hera.bottleneck_distance(a, b, 0.0)
        print(f"{k:3d} {len(a):5d}/{len(b):5d} {cgal:9.2f} {hera:9.2f} {d_cgal:14.10g} {d_hera:14.10g}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
