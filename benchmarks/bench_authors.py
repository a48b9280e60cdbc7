"""One of the paper's experiments end to end: particledyn against the authors' own PyTorch loop.

The experiment is a file of ``scenarios/authors/`` (default ``authors_adam_2d_large``: N = 1024,
d = 1, Adam at 1e-2, batches of 128 drawn per epoch, 40 epochs = 1120 steps, every neuron logged
after every step as their weight logger does). Both sides get the same start, data and batches:

- the authors' loop is ``tests/authors_reference.py`` (their model, ``F.mse_loss``, ``torch.optim``,
  ``zero_grad`` / ``backward`` / ``step`` per batch, the neurons copied out after every step),
  float32 as their code runs and float64;
- particledyn is the scenario's simulation without its observers, every frame kept in memory
  (``MemorySink``, as their logger keeps them), and the same through ``particledyn run``'s
  H5MD file (``--file``): with ``output.commit_seconds`` as the scenario has it (default 1 s:
  frames committed in batches) and with ``output.commit_seconds = 0`` (every frame committed as
  it is written, as before batch commits).

Printed: median CPU seconds of the whole run over ``--repeats`` runs, one thread each, and the
ratio; the positions of both at the end agree to ~1e-13 (float64). Usage::

    python benchmarks/bench_authors.py
    python benchmarks/bench_authors.py --scenario scenarios/authors/authors_gd_2d_large.toml --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numba
import numpy as np

from particledyn.runner import prepare
from particledyn.scenario import parse_scenario
from particledyn.sinks import MemorySink

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCENARIO = os.path.join(HERE, "..", "scenarios", "authors", "authors_adam_2d_large.toml")
THEIR_OPTIMIZER = {"sgd": "SGD", "gd": "SGD", "momentum": "momentum", "adam": "adam"}


def load(path: str, dtype: str, **overrides):
    with open(path) as f:
        text = f.read().split("[[observers]]")[0]  # the observer tables close the authors' files
    return parse_scenario(text, path, {"run.dtype": dtype, **overrides})


def ours(scenario, sink=None):
    prepared = prepare(scenario.resolved)
    sim = prepared.simulation(sink if sink is not None else MemorySink())
    sim.checkpoint_every = 0
    start = time.process_time()
    sim.run(scenario.resolved.run.steps, progress=False)
    sim.close()
    return time.process_time() - start, sim.positions.astype(np.float64)


def ours_file(scenario, tmp: str):
    from particledyn.runner import start_run

    start = time.process_time()
    start_run(scenario, os.path.join(tmp, "run.h5"), overwrite=True, progress=False)
    return time.process_time() - start


def theirs(scenario, dtype: str):
    import torch
    from authors_reference import authors_train

    prepared = prepare(scenario.resolved)
    kernel, resolved = prepared.kernel, scenario.resolved
    name = THEIR_OPTIMIZER[resolved.optimizer.name]
    if name == "momentum" and getattr(resolved.optimizer, "beta", 0.9) != 0.9:
        raise SystemExit("the authors' momentum is 0.9")
    lr = resolved.schedule.lr
    start = time.process_time()
    frames = []
    for neurons in authors_train(
        prepared.positions.astype(dtype),
        kernel.inputs,
        kernel.targets,
        kernel.loss_name,
        name,
        lr,
        resolved.optimizer.weight_decay,
        kernel.batches.indices,
        resolved.run.steps,
        dtype=getattr(torch, dtype),
    ):
        frames.append(neurons)
    return time.process_time() - start, frames[-1].astype(np.float64)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO)
    parser.add_argument("--repeats", type=int, default=3, help="whole runs per figure (median)")
    parser.add_argument("--file", action="store_true", help="also time particledyn writing its H5MD file")
    args = parser.parse_args(argv)
    import torch

    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    print(
        f"one thread each; CPU seconds of the whole run, median of {args.repeats}; load average at start: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for dtype in ("float32", "float64"):
        scenario = load(args.scenario, dtype)
        run = scenario.resolved.run
        ours(scenario)  # warm-up: compilation
        mine = [ours(scenario) for _ in range(args.repeats)]
        them = [theirs(scenario, dtype) for _ in range(args.repeats)]
        t_mine, t_them = statistics.median(m[0] for m in mine), statistics.median(t[0] for t in them)
        end_mine, end_them = mine[0][1], them[0][1]
        diff = np.linalg.norm(end_mine - end_them) / np.linalg.norm(end_them)
        print(
            f"{run.name} {dtype}: {run.steps} steps, N = {len(end_mine)}; "
            f"particledyn (frames in memory) "
            f"{t_mine:.2f} s, the authors' PyTorch loop {t_them:.2f} s: {t_them / t_mine:.1f}x; "
            f"end positions differ by {diff:.1e} (relative)",
            flush=True,
        )
        if args.file:
            for label, overrides in (
                ("batch commits", {}),
                ("every frame committed", {"output.commit_seconds": 0}),
            ):
                with tempfile.TemporaryDirectory() as tmp:
                    scenario = load(args.scenario, dtype, **overrides)
                    t_file = statistics.median(ours_file(scenario, tmp) for _ in range(args.repeats))
                seconds = scenario.resolved.output.commit_seconds
                print(
                    f"  `particledyn run` (H5MD file, a frame every step, {label}, commit_seconds = "
                    f"{seconds:g}): {t_file:.2f} s: {t_them / t_file:.1f}x the authors' loop",
                    flush=True,
                )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
