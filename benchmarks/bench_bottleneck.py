"""Bottleneck distance of the 3-D Betti observer's diagrams: ours against gudhi's CGAL matching and hera.

The diagrams are those ``BettiObserver`` compares in ``authors_adam_3d_large`` at N = 1024 (alpha
radius 0.05, b0..b2): the start's and one epoch (28 steps) later's, truncated as the observer
truncates them. For each dimension it prints the pairs on each side, the CPU milliseconds
(median of ``--repeats``) of :func:`particledyn.topology.diagrams.exact_bottleneck` (what the
observer calls for H1/H2; H0 takes the exact same-birth path), of ``gudhi.bottleneck_distance``
(CGAL, default ``e``: what the observer called before) and of ``gudhi.hera.bottleneck_distance``
with ``delta = 0`` (exact), and the three distances (ours and hera's must agree; CGAL's may differ
in the last bits).

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
from particledyn.topology.diagrams import _truncate, exact_bottleneck

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
    exact_bottleneck(A[:4, 1:], B[:4, 1:])  # compile
    print(
        f"{'dim':>3} {'pairs':>11} {'ours ms':>9} {'CGAL ms':>9} {'hera ms':>9} "
        f"{'ours d_B':>22} {'CGAL d_B':>22} {'hera d_B':>22}"
    )
    for k in (1, 2):
        a, b = _truncate(A, k, radius), _truncate(B, k, radius)
        ours = cpu_ms(lambda a=a, b=b: exact_bottleneck(a, b), args.repeats)
        cgal = cpu_ms(lambda a=a, b=b: gudhi.bottleneck_distance(a, b), args.repeats)
        hera = cpu_ms(lambda a=a, b=b: gudhi.hera.bottleneck_distance(a, b, 0.0), args.repeats)
        d_ours, d_cgal = exact_bottleneck(a, b), gudhi.bottleneck_distance(a, b)
        d_hera = gudhi.hera.bottleneck_distance(a, b, 0.0)
        print(
            f"{k:3d} {len(a):5d}/{len(b):5d} {ours:9.2f} {cgal:9.2f} {hera:9.2f} "
            f"{d_ours!r:>22} {d_cgal!r:>22} {d_hera!r:>22}"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
