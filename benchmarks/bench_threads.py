"""One GD step at 1 and at 2 threads, beside a CPU hog, for each threading layer / OpenMP wait policy.

On a shared machine a parallel loop whose worker threads spin at the barrier (OpenMP's default
active wait) or wait for a descheduled thread can be several times slower at 2 threads than at 1.
particledyn chooses the layer and the wait policy when it is imported (``particledyn.threads``)
and runs each step at 1 thread or at numba's count, whichever measured faster
(``particledyn.thread_governor``); this script shows what that buys. Each configuration runs in a
fresh subprocess (numba reads the layer, libgomp the wait policy, once per process) with its own
environment. Optionally ``--hogs`` busy-loop subprocesses (``while 1: pass``) run beside it for
the whole measurement.

Inside the subprocess four variants of the same simulation run in **blocks** of consecutive
steps, as a run would: a 1-thread run (``numba.set_num_threads(1)``: what ``--threads 1`` does;
its loops run as their serial twins, :mod:`particledyn.serial_twins`), the same 1-thread run
with the parallel compilations (``set_serial_twins(False)``: the 1-thread step before the
twins), a fixed 2-thread run (the governor off) and a governed 2-thread run (particledyn's
default). The order of the four blocks changes every rotation (the 24 orders in turn), so load
changes and the step that follows another variant's block hit all alike; the first step of every block is
not timed: it follows another variant's steps (a change of thread count costs that step up to
10x beside a hog, which no run of one variant pays).

Printed per configuration, N and hog count: the 1-minute load average when it finished, the
median wall milliseconds per step of each variant with its interquartile range over all timed
steps, the ratios to 1 thread (below 1: two threads help; ``1par/1`` above 1: the twins help) as the median over rotations of the
per-rotation ratio of block medians with its interquartile range, the ratio of mean wall times
(a governed run's probes of the slower count included), the median CPU milliseconds per step
(spinning threads burn CPU that other jobs on the machine could use) and the share of governed
steps that ran at 2 threads. A summary table (governed/1 thread; fixed 2/1 thread) closes it.

Usage::

    python benchmarks/bench_threads.py                       # N = 1024 .. 1e6, 0, 1, 2 hogs
    python benchmarks/bench_threads.py --n 20000 --hogs 1 --repeats 40
    python benchmarks/bench_threads.py --configs all --n 1024 20000
"""

from __future__ import annotations

import argparse
import itertools
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
MODES = {"1": (1, True, True), "1par": (1, True, False), "2": (2, False, True), "auto": (2, True, True)}
"""Variant: (numba thread count, governor on, serial twins on). At 1 thread the governor has
nothing to choose."""


def default_block(n: int) -> int:
    """Steps per block: ~20 at N = 1024 down to 3 at N >= 10^5 (the first is not timed)."""
    return max(3, min(20, 200_000 // n))


def default_repeats(n: int) -> int:
    """Rotations: 30 up to N = 2*10^4, 16 at 10^5, 6 at 10^6 (a 1-thread step ~0.3 s there)."""
    return 30 if n <= 20_000 else 16 if n <= 100_000 else 6


def _quartiles(values) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return q1, q2, q3


def probe(n: int, repeats: int, block: int) -> dict:
    """Run inside the subprocess: blocks of 1-thread (serial twins; parallel compilations), fixed
    2-thread and governed steps in rotating orders; per-step wall and CPU times, per-rotation
    ratios of block medians."""
    import numba

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_step import make_problem, ours

    from particledyn.serial_twins import set_serial_twins
    from particledyn.threads import threading_choice

    sim = ours(*make_problem(n, 128, "float64"))
    governor = sim.thread_governor

    def steps(mode: str, count: int, timed: list | None = None, cpu: list | None = None) -> list:
        threads, governed, twins = MODES[mode]
        numba.set_num_threads(threads)
        governor.enabled = governed
        set_serial_twins(twins)
        counts = []
        for _ in range(count):
            wall, proc = time.perf_counter(), time.process_time()
            sim.step()
            if timed is not None:
                timed.append(time.perf_counter() - wall)
                cpu.append(time.process_time() - proc)
            counts.append(governor.last)
        return counts

    for mode in ("1", "1par", "2", "1", "1par", "2"):  # compilation, the thread pool
        steps(mode, 1)
    steps("auto", 2 * (governor.warmup + 1) + 2)  # the governor's warm-up: both counts sampled
    times: dict = {m: [] for m in MODES}
    cpu: dict = {m: [] for m in MODES}
    ratios: dict = {"1par": [], "2": [], "auto": []}
    orders = list(itertools.permutations(MODES))
    at_two = governed_steps = 0
    for i in range(repeats):
        medians = {}
        for mode in orders[i % len(orders)]:
            steps(mode, 1)  # follows another variant: not timed
            wall: list = []
            counts = steps(mode, block - 1, wall, cpu[mode])
            times[mode] += wall
            medians[mode] = statistics.median(wall)
            if mode == "auto":
                at_two += sum(c == 2 for c in counts)
                governed_steps += len(counts)
        for mode in ratios:
            ratios[mode].append(medians[mode] / medians["1"])
    out = {
        "layer": numba.threading_layer(),
        "choice": threading_choice(),
        "auto_at_2": at_two / max(1, governed_steps),
        "block": block,
        "steps": len(times["1"]),
    }
    for mode in MODES:
        out[f"wall{mode}"] = _quartiles(times[mode])
        out[f"mean{mode}"] = statistics.fmean(times[mode])
        out[f"cpu{mode}"] = statistics.median(cpu[mode])
    for mode in ratios:
        out[f"ratio{mode}"] = _quartiles(ratios[mode])
    return out


def run_config(env_update: dict, n: int, repeats: int, block: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")}
    env.update(env_update, NUMBA_NUM_THREADS="2")
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--probe",
        "--n",
        str(n),
        "--repeats",
        str(repeats),
        "--block",
        str(block),
    ]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ms(q) -> str:
    return f"{1e3 * q[1]:.3f} [{1e3 * q[0]:.3f}-{1e3 * q[2]:.3f}]"


def _ratio(q) -> str:
    return f"{q[1]:.2f} [{q[0]:.2f}-{q[2]:.2f}]"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=float, nargs="+", default=[1024, 2e4, 1e5, 1e6], help="particle counts")
    parser.add_argument(
        "--hogs", type=int, nargs="+", default=[0, 1, 2], help="busy-loop processes beside it"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="rotations of the four blocks (default: by N, 6-30)"
    )
    parser.add_argument("--block", type=int, default=None, help="steps per block (default: by N, 3-20)")
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=[*CONFIGS, "all"],
        default=["particledyn default"],
        help="threading configurations ('all': every one)",
    )
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, value in (("repeats", args.repeats), ("block", args.block)):
        if value is not None and value < (1 if name == "repeats" else 2):
            raise SystemExit(f"--{name}={value}: expected at least {1 if name == 'repeats' else 2}")
    if args.probe:
        n = int(args.n[0])
        repeats = args.repeats or default_repeats(n)
        print(json.dumps(probe(n, repeats, args.block or default_block(n))))
        return
    configs = list(CONFIGS) if "all" in args.configs else args.configs
    print(
        "one GD step (float64, B = 128, d = 2): blocks of 1-thread (serial twins; parallel "
        "compilations), fixed 2-thread and governed steps "
        f"in rotating orders; {os.cpu_count()} CPUs"
    )
    print(f"load average at start: {_load()}")
    print(
        "wall ms per step: median [interquartile range] over the timed steps; ratios to 1 thread: "
        "median [IQR] over rotations of block medians; mean: ratio of mean wall times\n"
    )
    print(
        f"{'configuration':24} {'layer':>9} {'N':>8} {'hogs':>4} {'load1':>5} {'steps':>5}  "
        f"{'1 thread ms':>22} {'1 thread par ms':>22} {'fixed 2 ms':>22} {'governed ms':>22}  "
        f"{'1par/1':>17} {'2/1':>17} {'gov/1':>17} "
        f"{'mean gov/1':>10} {'cpu1 ms':>8} {'cpu2 ms':>8} {'cpugov':>8} {'at 2':>5}"
    )
    summary: dict = {}
    for hogs in args.hogs:
        hog_procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(hogs)]
        try:
            for n in args.n:
                n = int(n)
                for name in configs:
                    repeats = args.repeats or default_repeats(n)
                    r = run_config(CONFIGS[name], n, repeats, args.block or default_block(n))
                    load = os.getloadavg()[0]
                    print(
                        f"{name[:24]:24} {r['layer']:>9} {n:8d} {hogs:4d} {load:5.1f} {r['steps']:5d}  "
                        f"{_ms(r['wall1']):>22} {_ms(r['wall1par']):>22} {_ms(r['wall2']):>22} "
                        f"{_ms(r['wallauto']):>22}  {_ratio(r['ratio1par']):>17} "
                        f"{_ratio(r['ratio2']):>17} {_ratio(r['ratioauto']):>17} "
                        f"{r['meanauto'] / r['mean1']:10.2f} {1e3 * r['cpu1']:8.3f} {1e3 * r['cpu2']:8.3f} "
                        f"{1e3 * r['cpuauto']:8.3f} {r['auto_at_2']:5.2f}",
                        flush=True,
                    )
                    summary[name, n, hogs] = (r["ratioauto"][1], r["ratio2"][1], r["ratio1par"][1], load)
        finally:
            for proc in hog_procs:
                proc.kill()
                proc.wait()
    print(f"\nload average at end: {_load()}")
    for name in configs:
        print(
            f"\n{name}: governed/1 thread; fixed 2/1 thread; 1 thread parallel compilations/1 thread "
            "(median ratios), load1 at the row's end"
        )
        print("| N | " + " | ".join(f"{h} hogs" for h in args.hogs) + " |")
        print("|---|" + "---|" * len(args.hogs))
        for n in args.n:
            cells = [summary[name, int(n), h] for h in args.hogs]
            print(
                f"| {int(n)} | "
                + " | ".join(f"{a:.2f}; {b:.2f}; {c:.2f} (load {x:.0f})" for a, b, c, x in cells)
                + " |"
            )


if __name__ == "__main__":
    main()
