"""Throughput of one full-batch GD step of the two-layer sigmoid teacher-student net, vs PyTorch.

The step: N neurons x_i = (w_i, a_i) in R^3 (d = 2 inputs), the first B = 128 training points of
``particledyn.data.teacher_student(d=2)``, F(z) = sum_i a_i sigmoid(<w_i, z>), MSE loss, one
gradient-descent update of every particle (``Simulation.step``: field, optimizer, update).
The peer is the natural PyTorch eager CPU code for the same step, measured in the same run with
the same number of threads. Figures are medians over repeats after a warm-up step (compilation).

Also printed: the peak memory of one step (fresh subprocess per measurement: resident-set
high-water mark during the step minus the resident set before it, and numpy's allocations traced
by tracemalloc), and a scaling table in N (time per step, ns per particle-step).

Usage::

    python benchmarks/bench_step.py                      # N = 10^6, float32 and float64, vs PyTorch
    python benchmarks/bench_step.py --scaling-table      # plus N = 10^4 ... 10^7
    python benchmarks/bench_step.py --n 100000 --repeats 3 --dtype float64 --no-torch

PyTorch is a benchmark-only dependency (``pip install torch``); without it, ``--no-torch`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc

import numba
import numpy as np

from particledyn import GD, Simulation
from particledyn.data import teacher_student
from particledyn.kernels import TwoLayerNet

LR_TIMES_N = 0.5
"""Learning rate times N: standard scaling moves the output by ~N lr per step, so lr ~ 1/N keeps
every timed step finite (the cost of a step does not depend on the values)."""
MIB = 2.0**20


# -- the problem ------------------------------------------------------------------------------------


def make_problem(n: int, batch: int, dtype: str, seed: int = 0):
    """Inputs (B, 2), targets (B,) and initial positions (N, 3) = [w | a] in ``dtype``."""
    data = teacher_student(d=2)
    inputs, targets = data.z_train[:batch], data.y_train[:batch]
    rng = np.random.default_rng(seed)
    positions = np.empty((n, 3), dtype=dtype)
    positions[:, :2] = rng.standard_normal((n, 2))
    positions[:, 2] = rng.standard_normal(n) / np.sqrt(n)  # outputs of order one at any N
    return inputs, targets, positions


def ours(inputs, targets, positions, lr=None) -> Simulation:
    """The particledyn simulation of the step; ``sim.step()`` applies one update."""
    kernel = TwoLayerNet(inputs, targets, activation="sigmoid", loss="mse", scaling="standard")
    lr = LR_TIMES_N / len(positions) if lr is None else lr
    return Simulation(kernel, positions, optimizer=GD(), lr=lr, frame_every=0)


def torch_problem(inputs, targets, positions):
    import torch

    dtype = getattr(torch, str(positions.dtype))
    weights = torch.tensor(positions[:, :2], dtype=dtype, requires_grad=True)
    outer = torch.tensor(positions[:, 2], dtype=dtype, requires_grad=True)
    return weights, outer, torch.tensor(inputs, dtype=dtype), torch.tensor(targets, dtype=dtype)


def torch_step(weights, outer, inputs, targets, lr=None):
    """The natural PyTorch eager code of the same step."""
    import torch

    lr = LR_TIMES_N / len(outer) if lr is None else lr
    out = torch.sigmoid(inputs @ weights.T) @ outer
    loss = torch.mean((out - targets) ** 2)
    loss.backward()
    with torch.no_grad():
        weights -= lr * weights.grad
        outer -= lr * outer.grad
    weights.grad = None
    outer.grad = None


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def median_time(step, repeats: int) -> float:
    return statistics.median(timed(step) for _ in range(repeats))


# -- throughput vs PyTorch ------------------------------------------------------------------------------


def agreement(inputs, targets, positions) -> float:
    """One step at lr = 1 in both codes: max |x_ours - x_torch| / max |x_ours - x_start|."""
    sim = ours(inputs, targets, positions, lr=1.0)
    sim.step()
    weights, outer, z, y = torch_problem(inputs, targets, positions)
    torch_step(weights, outer, z, y, lr=1.0)
    theirs = np.concatenate([weights.detach().numpy(), outer.detach().numpy()[:, None]], axis=1)
    mine = sim.positions.astype(np.float64)
    return float(np.max(np.abs(mine - theirs)) / np.max(np.abs(mine - positions)))


def compare(n: int, batch: int, dtype: str, repeats: int, with_torch: bool) -> dict:
    """Median step times; ours and PyTorch alternate so that load changes hit both alike."""
    inputs, targets, positions = make_problem(n, batch, dtype)
    row = {"dtype": dtype}
    if with_torch:
        row["difference"] = agreement(inputs, targets, positions)  # also the warm-up of both
        tensors = torch_problem(inputs, targets, positions)
    sim = ours(inputs, targets, positions)
    sim.step()
    ours_times, torch_times = [], []
    for _ in range(repeats):
        ours_times.append(timed(sim.step))
        if with_torch:
            torch_times.append(timed(lambda: torch_step(*tensors)))
    row["ours"] = statistics.median(ours_times)
    if with_torch:
        row["torch"] = statistics.median(torch_times)
    return row


# -- the strongest peers (one fresh subprocess per thread count: XLA reads its threads at import) -----------


def peers_probe(n: int, batch: int, dtype: str, repeats: int) -> dict:
    """Run inside the subprocess: ours and every peer of ``step_peers`` alternate, one step each."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from step_peers import PEERS

    inputs, targets, positions = make_problem(n, batch, dtype)
    lr = LR_TIMES_N / n
    sim = ours(inputs, targets, positions, lr=lr)
    contestants = {"particledyn": (sim.step, lambda: sim.positions.astype(np.float64))}
    contestants.update({name: build(inputs, targets, positions, lr) for name, build in PEERS.items()})
    row = {}
    for name, (step, _result) in contestants.items():
        step()  # warm-up: compilation
        row[name] = {"difference": None, "wall": [], "cpu": []}
    reference = contestants["particledyn"][1]() - positions  # one step's change
    for name, (_, result) in contestants.items():
        change = result() - positions
        row[name]["difference"] = float(np.max(np.abs(change - reference)) / np.max(np.abs(reference)))
    for _ in range(repeats):
        for name, (step, _) in contestants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            row[name]["cpu"].append(time.process_time() - cpu)
            row[name]["wall"].append(time.perf_counter() - wall)
    return {
        name: {
            "difference": r["difference"],
            "wall": statistics.median(r["wall"]),
            "cpu": statistics.median(r["cpu"]),
        }
        for name, r in row.items()
    }


def measure_peers(n: int, batch: int, dtype: str, threads: int, repeats: int) -> dict:
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--peers-probe",
        "--n",
        str(n),
        "--batch",
        str(batch),
        "--dtype",
        dtype,
        "--threads",
        str(threads),
        "--repeats",
        str(repeats),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_peers(sizes, batch: int, dtypes, threads_list, repeats: int) -> None:
    print(
        "\nagainst the strongest peers (each thread count in a fresh subprocess; CPU seconds per step, "
        f"median of {repeats}; ratio = peer / particledyn, above 1: particledyn is faster)"
    )
    for threads in threads_list:
        for dtype in dtypes:
            for size in sizes:
                rows = measure_peers(size, batch, dtype, threads, repeats)
                mine = rows["particledyn"]
                cells = "  ".join(
                    f"{name} {r['cpu']:.4f} s ({r['cpu'] / mine['cpu']:.2f}x, diff {r['difference']:.0e})"
                    for name, r in rows.items()
                    if name != "particledyn"
                )
                print(
                    f"{threads} thr {dtype:8} N = {size:>9,}  particledyn {mine['cpu']:.4f} s "
                    f"(wall {mine['wall']:.4f})  {cells}",
                    flush=True,
                )


# -- memory (one fresh subprocess per measurement) -------------------------------------------------------


def _status(field: str) -> float | None:
    """A VmRSS / VmHWM line of /proc/self/status, in MiB (None off Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / MIB
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the resident-set high-water mark (Linux: clear_refs 5), so compilation is not counted."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def memory_probe(which: str, n: int, batch: int, dtype: str) -> dict:
    """Run inside the subprocess: warm up at small N, then measure one step at N."""
    import gc
    import resource

    if which == "ours":
        ours(*make_problem(4096, batch, dtype)).step()
        sim = ours(*make_problem(n, batch, dtype))
        step, state_bytes = sim.step, sim.positions.nbytes
    else:
        tensors = torch_problem(*make_problem(4096, batch, dtype))
        torch_step(*tensors)
        tensors = torch_problem(*make_problem(n, batch, dtype))
        step, state_bytes = (lambda: torch_step(*tensors)), tensors[0].nbytes + tensors[1].nbytes
    gc.collect()
    reset = _reset_peak()
    before = _status("VmRSS")
    tracemalloc.start()
    step()
    traced = tracemalloc.get_traced_memory()[1] / MIB
    tracemalloc.stop()
    peak = _status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "state": state_bytes / MIB,
        "increase": None if before is None else peak - before,
        "traced": traced,
        "peak": peak,
        "exact": reset,
    }


def measure_memory(which: str, n: int, batch: int, dtype: str, threads: int) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-probe",
        which,
        "--n",
        str(n),
        "--batch",
        str(batch),
        "--dtype",
        dtype,
        "--threads",
        str(threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- report ----------------------------------------------------------------------------------------------


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=float, default=1e6, help="number of particles (default 1e6)")
    parser.add_argument("--batch", type=int, default=128, help="batch size B (default 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per figure (median; default 5)")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    parser.add_argument("--threads", type=int, default=2, help="numba and PyTorch threads (default 2)")
    parser.add_argument("--scaling-table", action="store_true", help="also time N = 1e4 ... --scaling-max")
    parser.add_argument("--scaling-max", type=float, default=1e7, help="largest N of the scaling table")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also time the strongest peers (JAX lax.scan "
        "chunks, torch.compile fused, PyTorch eager) at N = 1e4, 1e5, 1e6, 1 and 2 threads",
    )
    parser.add_argument("--peer-sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6], help="N of --peers")
    parser.add_argument("--memory-probe", choices=["ours", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--peers-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = int(args.n)
    numba.set_num_threads(args.threads)
    with_torch = not args.no_torch
    if with_torch or args.memory_probe == "torch" or args.peers_probe:
        import torch

        torch.set_num_threads(args.threads)
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]

    if args.peers_probe:
        print(json.dumps(peers_probe(n, args.batch, dtypes[0], args.repeats)))
        return
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, n, args.batch, dtypes[0])))
        return

    print(
        f"one full-batch GD step, two-layer sigmoid teacher-student net (MSE): N = {n:,}, B = {args.batch}, "
        f"d = 2 (D = 3); {args.threads} threads; median of {args.repeats} steps after a warm-up"
    )
    print(
        f"numpy {np.__version__}, numba {numba.__version__}"
        + (f", torch {torch.__version__}" if with_torch else "")
    )
    print(f"load average at start: {_load()}\n")

    header = f"{'dtype':8} {'particledyn s/step':>19} {'particle-steps/s':>17}"
    if with_torch:
        header += f" {'PyTorch s/step':>15} {'speed-up':>9} {'rel. diff':>10}"
    print(header)
    for dtype in dtypes:
        row = compare(n, args.batch, dtype, args.repeats, with_torch)
        line = f"{dtype:8} {row['ours']:19.4f} {n / row['ours']:17.3e}"
        if with_torch:
            line += f" {row['torch']:15.3f} {row['torch'] / row['ours']:8.1f}x {row['difference']:10.1e}"
        print(line, flush=True)
    if with_torch:
        print(
            "(rel. diff: one step at lr = 1 from the same start, max |x_ours - x_torch| / max |x_ours - x_start|)"
        )

    if not args.no_memory:
        print(
            f"\npeak memory of one step at N = {n:,} (fresh subprocess each; increase = resident-set high-water "
            f"mark during the step minus the resident set before it)"
        )
        print(
            f"{'dtype':8} {'':12} {'state MiB':>10} {'step +MiB':>10} {'numpy traced MiB':>17} {'process peak MiB':>17}"
        )
        for dtype in dtypes:
            for which in ["ours"] + (["torch"] if with_torch else []):
                m = measure_memory(which, n, args.batch, dtype, args.threads)
                label = "particledyn" if which == "ours" else "PyTorch"
                traced = f"{m['traced']:17.1f}" if which == "ours" else f"{'-':>17}"
                note = "" if m["exact"] else "  (no /proc: ru_maxrss, includes compilation)"
                print(
                    f"{dtype:8} {label:12} {m['state']:10.1f} {m['increase']:10.1f} {traced} {m['peak']:17.1f}{note}",
                    flush=True,
                )

    if args.peers:
        sizes = [int(x) for x in args.peer_sizes]
        print_peers(sizes, args.batch, dtypes, sorted({1, args.threads}), args.repeats)

    if args.scaling_table:
        print("\nscaling in N (particledyn only)")
        print(f"{'dtype':8} {'N':>12} {'s/step':>10} {'ns/particle-step':>17}")
        sizes = [10**k for k in range(4, 16) if 10**k <= args.scaling_max]
        for dtype in dtypes:
            for size in sizes:
                sim = ours(*make_problem(size, args.batch, dtype))
                sim.step()
                repeats = max(3, min(args.repeats * 10, int(2e6 // size)))
                seconds = median_time(sim.step, repeats)
                print(f"{dtype:8} {size:12,} {seconds:10.4f} {1e9 * seconds / size:17.1f}", flush=True)
                del sim
    print(f"\nload average at end: {_load()}")


if __name__ == "__main__":
    main()
