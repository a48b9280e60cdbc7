"""Sweep overhead: the same runs through dask.distributed vs one after another in this process.

Eight teacher-student runs (by default N = 128, 30 steps; --n and --steps make them longer),
with sharpness and merges every step. Both sides are
warmed up first (numba compiled in this process and in the worker), K0 is measured once and
shared, and each side is timed --repeats times (median):

- serial: :func:`particledyn.sweep.execute_run` on each run, in this process;
- sweep, 1 worker: :func:`particledyn.sweep.run_sweep` on a LocalCluster of one 1-thread worker
  (the same work, one run at a time: its extra time is the sweep's overhead -- scheduling,
  pickling, file-state checks and the summary table; the phase diagram is timed apart);
- sweep, 2 workers: the speed-up on this 2-core machine.

    python benchmarks/bench_sweep.py [--repeats 3] [--steps 30] [--n 128]
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

BASE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps",
                                    "teacher_student_base.toml"))
SWEEP = """
[sweep]
name = "bench"
base = "{base}"
steps = {steps}
[sweep.set]
"output.checkpoint_every" = 10
[grid]
lr_factor = [0.05, 0.1, 0.5, 1.0]
seed = [0, 1]
n = [{n}]
"""


def main():
    import numba

    from particledyn.sweep import execute_run, load_sweep, run_sweep
    from particledyn.sweep.executor import measure_grid_K0
    from particledyn.sweep.grid import expand_runs

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="steps per run (longer runs: less overhead)")
    parser.add_argument("--n", type=int, default=128, help="particles per run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    sweep = root / "bench.toml"
    sweep.write_text(SWEEP.format(base=BASE, steps=args.steps, n=args.n))
    spec = load_sweep(sweep)
    numba.set_num_threads(1)

    def fresh(tag):
        out = root / tag
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        shutil.copy(root / "K0.json", out / "K0.json")  # K0 measured once, shared by every side
        return out

    results = {}
    for workers in (1, 2):
        from particledyn.sweep.executor import open_client
        from particledyn.sweep.grid import ClusterSpec

        with open_client(ClusterSpec("", workers, 1)) as client:
            if not (root / "K0.json").exists():
                K0, _ = measure_grid_K0(spec, client, root)
            run_sweep(sweep, out=fresh("warm"), client=client, progress=False)  # compile on the workers
            times = []
            for r in range(args.repeats):
                began = time.perf_counter()
                result = run_sweep(sweep, out=fresh(f"w{workers}_{r}"), client=client, progress=False,
                                   plot=False)
                times.append(time.perf_counter() - began)
                assert result.counts.get("finished", 0) == 8, result.counts
            results[f"sweep, {workers} worker{'s' * (workers > 1)}"] = statistics.median(times)

    import json
    K0 = {}
    cache = json.loads((root / "K0.json").read_text())
    runs_template = None
    for key, value in cache.items():
        seed, n, _ = key.split(",")
        K0[(int(seed), int(n))] = value
    runs_template = expand_runs(spec, K0, root / "serial_warm")
    execute_run(runs_template[0])  # compile in this process
    times = []
    for r in range(args.repeats):
        runs = expand_runs(spec, K0, fresh(f"serial_{r}"))
        began = time.perf_counter()
        for run in runs:
            outcome = execute_run(run)
            assert outcome["status"] == "finished", outcome
        times.append(time.perf_counter() - began)
    serial = statistics.median(times)
    n_runs = len(runs)
    print(f"{n_runs} runs (N = {args.n}, {args.steps} steps), median of {args.repeats}, wall seconds:")
    print(f"  serial, in process : {serial:.2f} s  ({serial / n_runs:.3f} s/run)")
    for label, value in results.items():
        print(f"  {label:<19}: {value:.2f} s  ({value / n_runs:.3f} s/run)  ratio to serial {value / serial:.3f}"
              f"  per-run overhead {(value - serial) / serial * 100:+.1f}%")
    from particledyn.sweep import plot_phase_diagram

    began = time.perf_counter()
    plot_phase_diagram(result.rows, root / "phase.png")
    print(f"  (the phase diagram, drawn once per sweep call and left out above: "
          f"{time.perf_counter() - began:.2f} s)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
