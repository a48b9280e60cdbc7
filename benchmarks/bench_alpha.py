"""Alpha diagrams: the numba engine against gudhi's AlphaComplex, same clouds, same run.

For each case (dimension, N, max radius) both engines compute the diagram of the same Gaussian
cloud, interleaved (numba, gudhi, numba, ...), ``--rounds`` times after one warm-up call each;
printed: median CPU ms of each, the ratio, the numba engine's parts (qhull's triangulation,
the alpha values, the persistence) and whether the diagrams agree (per dimension, sorted,
1e-12 relative and 8 ulps of the coordinates). One thread (set ``NUMBA_NUM_THREADS`` / ``OMP_NUM_THREADS`` = 1 to be sure).

Usage::

    python benchmarks/bench_alpha.py                      # 2-D and 3-D at N = 1024, 2-D at 10^5
    python benchmarks/bench_alpha.py --cases 3:1024:0.05 --rounds 21
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from particledyn.topology.alpha_filtration import _triangulate, alpha_filtration
from particledyn.topology.alpha_persistence import alpha_pairs
from particledyn.topology.betti import alpha_diagram

# the Betti observer's scales (bench_observers.py: 0.01 in 2-D, 0.05 in 3-D), the whole
# diagram, and the phase-transition campaign's N = 10^5 clouds
DEFAULT_CASES = ["2:1024:0.01", "2:1024:inf", "3:1024:0.05", "3:1024:inf", "2:100000:inf"]


def cpu_ms(fn) -> float:
    start = time.process_time()
    fn()
    return 1e3 * (time.process_time() - start)


def _rounding_pair(iv: np.ndarray) -> np.ndarray:
    finite = np.isfinite(iv[:, 1])
    return finite & (iv[:, 1] - iv[:, 0] <= 1e-12 * np.where(finite, iv[:, 1], 0.0))


def same(a: np.ndarray, b: np.ndarray, scale: float) -> bool:
    """Equal per dimension to 1e-12 relative and 8 ulps of ``scale`` (gudhi's "fast" radius of a
    short edge goes through its midpoint: a few ulps of the coordinates, absolute)."""
    for k in range(4):
        x, y = a[a[:, 0] == k][:, 1:], b[b[:, 0] == k][:, 1:]
        # gudhi's "fast" values can leave a pair of persistence ~1e-16 that its exact ones do not have
        x, y = x[~_rounding_pair(x)], y[~_rounding_pair(y)]
        x, y = x[np.lexsort((x[:, 1], x[:, 0]))], y[np.lexsort((y[:, 1], y[:, 0]))]
        if x.shape != y.shape or not np.array_equal(np.isinf(x), np.isinf(y)):
            return False
        f = np.isfinite(x)
        if not np.allclose(x[f], y[f], rtol=1e-12, atol=8 * np.finfo(float).eps * scale):
            return False
    return True


def time_case(X: np.ndarray, radius: float, rounds: int):
    """Median CPU ms: numba, gudhi, qhull, alpha values, persistence; and whether they agree."""
    ours = alpha_diagram(X, 2, radius, engine="numba")
    ref = alpha_diagram(X, 2, radius, engine="gudhi")
    t_ours, t_ref = [], []
    for _ in range(rounds):
        t_ours.append(cpu_ms(lambda: alpha_diagram(X, 2, radius, engine="numba")))
        t_ref.append(cpu_ms(lambda: alpha_diagram(X, 2, radius, engine="gudhi")))
    filt = alpha_filtration(X)
    tri = statistics.median(cpu_ms(lambda: _triangulate(X)) for _ in range(rounds))
    values = statistics.median(cpu_ms(lambda: alpha_filtration(X)) for _ in range(rounds)) - tri
    pers = statistics.median(cpu_ms(lambda: alpha_pairs(filt, 2, 2, radius**2)) for _ in range(rounds))
    a, b = statistics.median(t_ours), statistics.median(t_ref)
    return a, b, tri, values, pers, same(ours, ref, float(np.abs(X).max()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="DIM:N:MAX_RADIUS ...")
    ap.add_argument("--rounds", type=int, default=9, help="timed calls per engine (3 above N = 20000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"load {os.getloadavg()[0]:.2f}; CPU ms, medians")
    print("dim       N  max_r   numba   gudhi  gudhi/numba  qhull  values  persistence  same")
    for case in args.cases:
        d, n, r = case.split(":")
        dim, N, radius = int(d), int(n), float(r)
        X = np.random.default_rng(args.seed).standard_normal((N, dim))
        rounds = args.rounds if N <= 20000 else min(args.rounds, 3)
        a, b, tri, values, pers, agree = time_case(X, radius, rounds)
        print(
            f"{dim:3d} {N:7d} {radius:6.3g} {a:7.2f} {b:7.2f} {b / a:11.2f}x {tri:6.2f} {values:7.2f}"
            f" {pers:12.2f}  {agree}"
        )
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
