"""One GD step at 1 and at 2 threads, beside a CPU hog, for each threading layer / OpenMP wait policy.

On a shared machine a parallel loop whose worker threads spin at the barrier (OpenMP's default
active wait) or wait for a descheduled thread can be several times slower at 2 threads than at 1.
particledyn chooses the layer and the wait policy when it is imported (``particledyn.threads``);
this script shows what that choice buys. Each configuration runs in a fresh subprocess (numba
reads the layer, libgomp the wait policy, once per process) with its own environment; inside it,
1-thread and 2-thread steps alternate so that load changes hit both alike. Optionally
``--hogs`` busy-loop subprocesses (``while 1: pass``) run beside it for the whole measurement.

Printed per configuration, N and hog count: median wall seconds per step at 1 and 2 threads, the
ratio t(2) / t(1) (below 1: two threads help), and the median CPU seconds per step of the process
(spinning threads burn CPU that other jobs on the machine could use).

Usage::

    python benchmarks/bench_threads.py                       # N = 2e4 and 1e5, 0 and 1 hog
    python benchmarks/bench_threads.py --n 20000 --hogs 1 --repeats 40
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "particledyn default": {},
    "omp, active wait (numba's default)": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "ACTIVE"},
    "omp, passive wait": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "PASSIVE"},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
}
"""Environment of each configuration (on top of the caller's, with these variables removed first)."""


def probe(n: int, repeats: int) -> dict:
    """Run inside the subprocess: alternate 1- and 2-thread steps, medians of wall and CPU time."""
    import numba

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_step import make_problem, ours

    from particledyn.threads import threading_choice

    sim = ours(*make_problem(n, 128, "float64"))
    times = {1: [], 2: []}
    cpu = {1: [], 2: []}
    for threads in (1, 2, 1, 2):  # warm-up: compilation, thread pool start
        numba.set_num_threads(threads)
        sim.step()
    for _ in range(repeats):
        for threads in (1, 2):
            numba.set_num_threads(threads)
            wall, proc = time.perf_counter(), time.process_time()
            sim.step()
            times[threads].append(time.perf_counter() - wall)
            cpu[threads].append(time.process_time() - proc)
    return {
        "layer": numba.threading_layer(),
        "choice": threading_choice(),
        **{f"wall{t}": statistics.median(times[t]) for t in (1, 2)},
        **{f"cpu{t}": statistics.median(cpu[t]) for t in (1, 2)},
    }


def run_config(env_update: dict, n: int, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")}
    env.update(env_update, NUMBA_NUM_THREADS="2")
    command = [sys.executable, os.path.abspath(__file__), "--probe", "--n", str(n), "--repeats", str(repeats)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=float, nargs="+", default=[2e4, 1e5], help="particle counts")
    parser.add_argument("--hogs", type=int, nargs="+", default=[0, 1], help="busy-loop processes beside it")
    parser.add_argument("--repeats", type=int, default=30, help="timed step pairs per figure (median)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(int(args.n[0]), args.repeats)))
        return
    print(
        f"one GD step (float64, B = 128, d = 2), 1 vs 2 threads; median of {args.repeats} "
        f"alternating pairs; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"load average at start: {_load()}\n")
    print(
        f"{'configuration':36} {'layer':>9} {'N':>8} {'hogs':>4} {'1 thr s':>9} {'2 thr s':>9} "
        f"{'t2/t1':>6} {'cpu1 s':>8} {'cpu2 s':>8}"
    )
    for hogs in args.hogs:
        hog_procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(hogs)]
        try:
            for n in args.n:
                for name in args.configs:
                    r = run_config(CONFIGS[name], int(n), args.repeats)
                    print(
                        f"{name:36} {r['layer']:>9} {int(n):8d} {hogs:4d} "
                        f"{r['wall1']:9.5f} {r['wall2']:9.5f} "
                        f"{r['wall2'] / r['wall1']:6.2f} {r['cpu1']:8.5f} {r['cpu2']:8.5f}",
                        flush=True,
                    )
        finally:
            for proc in hog_procs:
                proc.kill()
                proc.wait()
    print(f"\nload average at end: {_load()}")


if __name__ == "__main__":
    main()
