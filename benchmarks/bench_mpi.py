"""MPI-sharded step vs one process: seconds per step at N = 10^6 on 1 and 2 ranks (numba 1 thread each),
and one rank with 2 numba threads as the shared-memory peer (mean over the steps after a warm-up
step; OpenMPI gets --bind-to none so that a rank may use 2 threads).

    python benchmarks/bench_mpi.py [--n 1000000] [--steps 6]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

BASE = os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps", "teacher_student_base.toml")


def run(ranks: int, threads: int, n: int, steps: int) -> float:
    exe = shutil.which("mpiexec")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    flags = (
        ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
        if "OpenRTE" in version or "Open MPI" in version
        else []
    )
    cmd = [
        exe,
        *flags,
        "-n",
        str(ranks),
        sys.executable,
        "-m",
        "particledyn.sweep.mpi",
        BASE,
        "--n",
        str(n),
        "--steps",
        str(steps),
        "--threads",
        str(threads),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_"))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return float(re.search(r"seconds_per_step=([0-9.eE+-]+)", done.stdout).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    one = run(1, 1, args.n, args.steps)
    two = run(2, 1, args.n, args.steps)
    threads = run(1, 2, args.n, args.steps)
    print(f"N = {args.n}, full batch 350, float64, seconds per step (mean of {args.steps - 1} after warm-up)")
    print(f"  1 rank  x 1 thread : {one:.4f} s")
    print(f"  2 ranks x 1 thread : {two:.4f} s   speed-up vs 1 rank {one / two:.2f}x")
    print(
        f"  1 rank  x 2 threads: {threads:.4f} s   (shared-memory peer; 2 ranks / this = {two / threads:.2f})"
    )


if __name__ == "__main__":
    main()
