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

Serial and sweep rounds alternate (this machine is noisy) and each ratio is taken against the
serial round just before; the median ratio is printed.

    python benchmarks/bench_sweep.py [--repeats 3] [--steps 30] [--n 128]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

BASE = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps", "teacher_student_base.toml")
)
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

    def serial_round(tag):
        runs = expand_runs(spec, K0, fresh(tag))
        began = time.perf_counter()
        for run in runs:
            outcome = execute_run(run)
            assert outcome["status"] == "finished", outcome
        return time.perf_counter() - began, len(runs)

    def sweep_round(tag, client):
        began = time.perf_counter()
        result = run_sweep(sweep, out=fresh(tag), client=client, progress=False, plot=False)
        assert result.counts.get("finished", 0) == 8, result.counts
        return time.perf_counter() - began, result

    # Serial and sweep rounds alternate, so that the load changes of this noisy machine hit
    # both alike; each sweep round is compared with the serial round just before it.
    from particledyn.sweep.executor import open_client
    from particledyn.sweep.grid import ClusterSpec

    rows, K0 = {}, None
    for workers in (1, 2):
        with open_client(ClusterSpec("", workers, 1)) as client:
            if K0 is None:
                K0, _ = measure_grid_K0(spec, client, root)
                execute_run(expand_runs(spec, K0, fresh("serial_warm"))[0])  # compile in this process
            sweep_round("warm", client)  # compile on the workers
            serial_times, sweep_times = [], []
            for r in range(args.repeats):
                serial, n_runs = serial_round(f"serial_{workers}_{r}")
                elapsed, result = sweep_round(f"w{workers}_{r}", client)
                serial_times.append(serial)
                sweep_times.append(elapsed)
            rows[workers] = (serial_times, sweep_times)
    print(
        f"{n_runs} runs (N = {args.n}, {args.steps} steps), {args.repeats} alternating rounds, "
        "wall seconds (medians):"
    )
    for workers, (serial_times, sweep_times) in rows.items():
        serial, swept = statistics.median(serial_times), statistics.median(sweep_times)
        ratio = statistics.median(s / t for s, t in zip(sweep_times, serial_times))
        label = f"sweep, {workers} worker{'s' * (workers > 1)}"
        print(f"  serial, in process : {serial:.2f} s  ({serial / n_runs:.3f} s/run)")
        print(
            f"  {label:<19}: {swept:.2f} s  ({swept / n_runs:.3f} s/run)  ratio to serial {ratio:.3f}"
            f"  per-run overhead {(ratio - 1) * 100:+.1f}%"
        )
    from particledyn.sweep import plot_phase_diagram

    began = time.perf_counter()
    plot_phase_diagram(result.rows, root / "phase.png")
    print(
        f"  (the phase diagram, drawn once per sweep call and left out above: "
        f"{time.perf_counter() - began:.2f} s)"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
