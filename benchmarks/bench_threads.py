"""One GD step at 1 and at 2 threads, beside a CPU hog, for each threading layer / OpenMP wait policy.

On a shared machine a parallel loop whose worker threads spin at the barrier (OpenMP's default
active wait) or wait for a descheduled thread can be several times slower at 2 threads than at 1.
particledyn chooses the layer and the wait policy when it is imported (``particledyn.threads``);
this script shows what that choice buys. Each configuration runs in a fresh subprocess (numba
reads the layer, libgomp the wait policy, once per process) with its own environment; inside it,
1-thread, 2-thread and governed steps rotate so that load changes hit all alike. Optionally
``--hogs`` busy-loop subprocesses (``while 1: pass``) run beside it for the whole measurement.

Printed per configuration, N and hog count: the 1-minute load average when it finished, median
wall seconds per step at 1 thread, at 2 threads fixed (the governor off) and at 2 threads
governed (``auto``: particledyn's default, each step at 1 or 2 threads by measured time), the
ratios to 1 thread (below 1: two threads help), the median CPU seconds per step of the process
(spinning threads burn CPU that other jobs on the machine could use), the share of governed
steps that ran at 2 threads and the mean wall seconds of a governed step (probes included).

Usage::

    python benchmarks/bench_threads.py                       # N = 1024 .. 1e6, 0, 1, 2 hogs
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
    """Run inside the subprocess: rotate 1-thread, fixed 2-thread and governed 2-thread steps
    (``particledyn.thread_governor``: 1 or 2 threads per step, by measured time, after its own
    warm-up of 2 x its window), medians of wall and CPU time of each."""
    import numba

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_step import make_problem, ours

    from particledyn.threads import threading_choice

    sim = ours(*make_problem(n, 128, "float64"))
    governor = sim.thread_governor
    modes = {"1": (1, False), "2": (2, False), "auto": (2, True)}
    times: dict = {m: [] for m in modes}
    cpu: dict = {m: [] for m in modes}
    for mode in ("1", "2", "1", "2"):  # warm-up: compilation, thread pool start
        numba.set_num_threads(modes[mode][0])
        governor.enabled = False
        sim.step()
    numba.set_num_threads(2)
    governor.enabled = True
    for _ in range(2 * governor.window):  # the governor's own warm-up (its first steps try both)
        sim.step()
    order, at_two = list(modes.items()), 0
    for i in range(repeats):
        for mode, (threads, governed) in order[i % 3 :] + order[: i % 3]:  # each mode first in turn
            numba.set_num_threads(threads)
            governor.enabled = governed
            wall, proc = time.perf_counter(), time.process_time()
            sim.step()
            times[mode].append(time.perf_counter() - wall)
            cpu[mode].append(time.process_time() - proc)
            if governed:
                at_two += governor.last == 2
    return {
        "layer": numba.threading_layer(),
        "choice": threading_choice(),
        "auto_at_2": at_two / max(1, repeats),
        "mean_auto": statistics.fmean(times["auto"]),
        **{f"wall{m}": statistics.median(times[m]) for m in modes},
        **{f"cpu{m}": statistics.median(cpu[m]) for m in modes},
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
    parser.add_argument("--n", type=float, nargs="+", default=[1024, 2e4, 1e5, 1e6], help="particle counts")
    parser.add_argument(
        "--hogs", type=int, nargs="+", default=[0, 1, 2], help="busy-loop processes beside it"
    )
    parser.add_argument("--repeats", type=int, default=30, help="timed rotations per figure (median)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(int(args.n[0]), args.repeats)))
        return
    print(
        f"one GD step (float64, B = 128, d = 2), 1 vs 2 threads; median of {args.repeats} "
        f"rotations (1, 2, auto); "
        f"{os.cpu_count()} CPUs"
    )
    print(f"load average at start: {_load()}\n")
    print(
        f"{'configuration':36} {'layer':>9} {'N':>8} {'hogs':>4} {'load1':>6} {'1 thr s':>9} {'2 thr s':>9} "
        f"{'auto s':>9} {'t2/t1':>6} {'auto/t1':>7} {'cpu1 s':>8} {'cpu2 s':>8} {'cpuauto':>8} {'at 2':>5}"
    )
    for hogs in args.hogs:
        hog_procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(hogs)]
        try:
            for n in args.n:
                for name in args.configs:
                    r = run_config(CONFIGS[name], int(n), args.repeats)
                    print(
                        f"{name:36} {r['layer']:>9} {int(n):8d} {hogs:4d} {os.getloadavg()[0]:6.1f} "
                        f"{r['wall1']:9.5f} {r['wall2']:9.5f} {r['wallauto']:9.5f} "
                        f"{r['wall2'] / r['wall1']:6.2f} {r['wallauto'] / r['wall1']:7.2f} "
                        f"{r['cpu1']:8.5f} {r['cpu2']:8.5f} {r['cpuauto']:8.5f} {r['auto_at_2']:5.2f} {r['mean_auto']:9.5f}",
                        flush=True,
                    )
        finally:
            for proc in hog_procs:
                proc.kill()
                proc.wait()
    print(f"\nload average at end: {_load()}")


if __name__ == "__main__":
    main()
