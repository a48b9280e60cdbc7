"""MPI-sharded step vs the single process, in one run: seconds per step and peak resident memory
per rank at N = 10^6 (and 10^7), the single process, 1 rank and 2 ranks, numba 1 thread each
(full batch, float64, no observers, no file: ``python -m particledyn.sweep.mpi``, the sharded
step of ``particledyn run --mpi``). Each configuration runs ``--repeat`` times; the median is
quoted, with the load average before and after.

    python benchmarks/bench_mpi.py [--n 1000000 10000000] [--steps 4] [--repeat 3] [--ranks 0 1 2]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

BASE = os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps", "teacher_student_base.toml")


def run(ranks: int, n: int, steps: int) -> tuple[float, list[float], list[float]]:
    """(wall seconds per step, [CPU seconds per step per rank], [peak RSS MiB per rank]);
    ranks = 0: the single process."""
    cmd = [sys.executable, "-m", "particledyn.sweep.mpi", BASE, "--n", str(n), "--steps", str(steps)]
    if ranks == 0:
        cmd.append("--single")
    else:
        exe = shutil.which("mpiexec")
        version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        openmpi = "OpenRTE" in version or "Open MPI" in version
        flags = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"] if openmpi else []
        cmd = [exe, *flags, "-n", str(ranks), *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "OPAL_", "PMI_"))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    seconds = float(re.search(r"seconds_per_step=([0-9.eE+-]+)", done.stdout).group(1))
    cpu = [
        float(v)
        for v in re.search(r"cpu_seconds_per_step=([0-9.eE+\- ]+) peak", done.stdout).group(1).split()
    ]
    rss = [float(v) for v in re.search(r"peak_rss_mib=([0-9. ]+)", done.stdout).group(1).split()]
    return seconds, cpu, rss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ranks", type=int, nargs="+", default=[0, 1, 2], help="0: the single process")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    for n in args.n:
        print(
            f"N = {n}, full training batch, float64, 1 numba thread per process; median of {args.repeat} runs "
            f"of {args.steps - 1} timed steps after a warm-up step"
        )
        single = None
        for ranks in args.ranks:
            label = "single process" if ranks == 0 else f"{ranks} rank" + "s" * (ranks > 1)
            results = [run(ranks, n, args.steps) for _ in range(args.repeat)]
            seconds = statistics.median(r[0] for r in results)
            cpu = [statistics.median(r[1][i] for r in results) for i in range(len(results[0][1]))]
            rss = [statistics.median(r[2][i] for r in results) for i in range(len(results[0][2]))]
            single = (seconds, max(cpu)) if ranks == 0 else single
            ratios = (
                ""
                if single is None
                else f" ({single[0] / seconds:.2f}x the single process; slowest rank's CPU "
                f"{single[1] / max(cpu):.2f}x)"
            )
            print(
                f"  {label:15s}: wall {seconds:.4f} s/step, CPU per rank {', '.join(f'{v:.4f}' for v in cpu)}"
                f" s/step{ratios}; peak RSS per rank {', '.join(f'{v:.0f}' for v in rss)} MiB"
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
