"""Throughput of an ensemble of R replicas against the same R runs made one by one.

The problem: the default two-layer settings of ``bench_step.py`` (sigmoid teacher-student net,
d = 2, MSE, standard scaling, GD, lr = 0.5 / N), N = 1024 neurons per replica, and SGD batches
of B = 128 rows drawn from ``teacher_student(d=2)``'s 3500 training rows; replica r has its own
start, seed (its batches) and learning rate (0.5 / N * (1 + r / R)). Three ways to make R
runs of S steps:

* ``ensemble``: one :class:`particledyn.Ensemble` (one fused step over R x N particles);
* ``sequential``: R :class:`particledyn.Simulation` runs one after another in one process;
* ``field only``: ``kernel.field`` of one replica R x S times (forward and field passes, no
  batch draw, no optimizer): the arithmetic every replica-step needs, so the ceiling of what
  fusing replicas can gain over ``sequential`` is sequential's time over this one;
* ``field, one N = R x N run``: ``kernel.field`` of all R starts as one cloud of R x N particles,
  S times: the same arithmetic in the large-N path (8 chunks of 2048 at R = 16), so its ratio to
  ``field only`` is what the small-N path loses per particle;
* ``processes``: R separate processes, each one ``Simulation`` run (what R runs of
  ``particledyn run`` are), as many at a time as there are cores divided by the thread count;
  their figures are the step loops' own times (``loop``, startup and compilation excluded) and
  the batch's wall time from the first start to the last exit (``batch``, everything included).

For each thread count: the median over ``--repeats`` of CPU time (all threads, the fair figure
on a shared machine) and wall time, as replica-steps per second, the ensemble's ratios, the load
average before and after, and whether every replica ended bit-identical to its run alone.

``--grid S R`` makes the replicas a seeds x rates grid instead (the paper's 10 seeds x 8 rates):
replica (s, k) has seed s (its start and batches) and learning rate 0.5 / N * 2**(k / 2 - 1),
and the ensemble of all S * R replicas is compared with the same S * R runs one by one.

Usage::

    python benchmarks/bench_ensemble.py                         # R = 16, N = 1024, 1 and 2 threads
    python benchmarks/bench_ensemble.py --threads 2 --repeats 5 --steps 300 --dtype float64
    python benchmarks/bench_ensemble.py --no-processes          # skip the separate processes
    python benchmarks/bench_ensemble.py --grid 10 8 --no-processes --steps 100   # 80 replicas
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numba
import numpy as np

from particledyn import GD, Simulation
from particledyn.data import teacher_student
from particledyn.ensemble import Ensemble
from particledyn.kernels import TwoLayerNet

LR_TIMES_N = 0.5


def problem(replicas: int, n: int, grid: tuple[int, int] | None = None):
    """The kernel, the starts (R, N, 3), the learning rates and the seeds of the replicas."""
    data = teacher_student(d=2)
    kernel = TwoLayerNet(data.z_train, data.y_train, activation="sigmoid", loss="mse", scaling="standard")
    if grid is None:
        seeds = list(range(replicas))
        lrs = [LR_TIMES_N / n * (1 + r / replicas) for r in range(replicas)]
    else:
        seeds = [s for s in range(grid[0]) for _ in range(grid[1])]
        lrs = [LR_TIMES_N / n * 2.0 ** (k / 2 - 1) for _ in range(grid[0]) for k in range(grid[1])]
    starts = np.empty((len(seeds), n, 3))
    for r, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        starts[r, :, :2] = rng.standard_normal((n, 2))
        starts[r, :, 2] = rng.standard_normal(n) / np.sqrt(n)
    return kernel, starts, lrs, seeds


def timed(function) -> tuple[float, float]:
    """(CPU seconds of all threads, wall seconds) of ``function()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    function()
    return time.process_time() - cpu, time.perf_counter() - wall


def single(kernel, start, lr, seed, batch, dtype) -> Simulation:
    return Simulation(
        kernel, start, optimizer=GD(), lr=lr, seed=seed, batch_size=batch, frame_every=0, dtype=dtype
    )


def measure_in_process(args) -> dict:
    kernel, starts, lrs, seeds = problem(args.replicas, args.n, args.grid)
    ens = Ensemble(
        kernel,
        starts,
        optimizer=GD(),
        lr=lrs,
        seed=seeds,
        batch_size=args.batch,
        frame_every=0,
        dtype=args.dtype,
    )
    sims = [single(kernel, starts[r], lrs[r], seeds[r], args.batch, args.dtype) for r in range(args.replicas)]
    ens.run(3, progress=False)
    for sim in sims:
        sim.run(3, progress=False)
    out = {"ensemble": [], "sequential": [], "field only": [], "field, one N = R x N run": []}
    sim = sims[0]
    context = sim.context(0)

    def fields():  # the arithmetic every replica-step must do: the kernel's two fused passes
        for _ in range(args.replicas * args.steps):
            sim.kernel.field(sim.state.positions, sim.state.masses, context)

    whole = starts.reshape(-1, starts.shape[2]).astype(args.dtype)
    whole_masses = np.ones(len(whole))

    def whole_fields():  # the same particles as one large run
        for _ in range(args.steps):
            sim.kernel.field(whole, whole_masses, context)

    for _ in range(args.repeats):
        out["ensemble"].append(timed(lambda: ens.run(args.steps, progress=False)))
        out["sequential"].append(timed(lambda: [sim.run(args.steps, progress=False) for sim in sims]))
        out["field only"].append(timed(fields))
        out["field, one N = R x N run"].append(timed(whole_fields))
    same = all(np.array_equal(ens.positions[r], sims[r].state.positions) for r in range(args.replicas))
    return out, same


def child(args) -> None:
    """One separate run: print the step loop's (CPU, wall) as JSON."""
    numba.set_num_threads(args.threads[0])
    kernel, starts, lrs, seeds = problem(args.replicas, args.n, args.grid)
    sim = single(kernel, starts[args.child], lrs[args.child], seeds[args.child], args.batch, args.dtype)
    sim.run(3, progress=False)
    print(json.dumps(timed(lambda: sim.run(args.steps, progress=False))))


def measure_processes(args, threads: int) -> list[tuple[float, float, float]]:
    """Per repeat: (sum of the loops' CPU, sum of the loops' wall / concurrency, the batch's wall)."""
    at_once = max(1, (os.cpu_count() or 1) // threads)
    command = [
        sys.executable,
        __file__,
        "--n",
        str(args.n),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--replicas",
        str(args.replicas),
        "--dtype",
        args.dtype,
        "--threads",
        str(threads),
    ] + ([] if args.grid is None else ["--grid", *map(str, args.grid)])
    out = []
    for _ in range(args.repeats):
        began, loops, pending = time.perf_counter(), [], list(range(args.replicas))
        running = []
        while pending or running:
            while pending and len(running) < at_once:
                r = pending.pop(0)
                running.append(
                    subprocess.Popen(command + ["--child", str(r)], stdout=subprocess.PIPE, text=True)
                )
            process = running.pop(0)
            stdout, _ = process.communicate()
            if process.returncode:
                raise SystemExit(f"a separate run exited with {process.returncode}")
            loops.append(json.loads(stdout))
        loop_cpu, loop_wall = sum(c for c, _ in loops), sum(w for _, w in loops)
        out.append((loop_cpu, loop_wall / at_once, time.perf_counter() - began))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-processes", action="store_true")
    parser.add_argument("--grid", type=int, nargs=2, metavar=("SEEDS", "RATES"), default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.grid is not None:
        args.replicas = args.grid[0] * args.grid[1]
    if args.child is not None:
        child(args)
        return
    work = args.replicas * args.steps
    print(
        ("" if args.grid is None else f"{args.grid[0]} seeds x {args.grid[1]} rates: ")
        + f"R = {args.replicas} replicas x N = {args.n}, B = {args.batch}, d = 2, {args.dtype}, "
        f"{args.steps} steps, median of {args.repeats}, {os.cpu_count()} cores, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}; throughput in replica-steps/s"
    )
    for threads in args.threads:
        numba.set_num_threads(threads)
        load = os.getloadavg()[0]
        measured, same = measure_in_process(args)
        rows = {k: [(work / c, work / w) for c, w in v] for k, v in measured.items()}
        if threads == args.threads[0]:
            print(f"numba threading layer: {numba.threading_layer()}")
        if not args.no_processes:
            runs = measure_processes(args, threads)
            rows["processes (loop)"] = [(work / c, work / w) for c, w, _ in runs]
            rows["processes (batch)"] = [(float("nan"), work / b) for _, _, b in runs]
        medians = {
            k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
            for k, v in rows.items()
        }
        ens_cpu, ens_wall = medians["ensemble"]
        print(
            f"\n{threads} thread(s), load average {load:.2f} -> {os.getloadavg()[0]:.2f}, replicas "
            f"bit-identical to their runs alone: {same}"
        )
        print("                     CPU thr.   wall thr.   ensemble / this (CPU, wall)")
        for name, (cpu, wall) in medians.items():
            print(f"  {name:18s} {cpu:9.0f}  {wall:10.0f}    {ens_cpu / cpu:5.2f}x  {ens_wall / wall:6.2f}x")


if __name__ == "__main__":
    main()
