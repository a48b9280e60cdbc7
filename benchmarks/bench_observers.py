"""Every built-in observer's cost per call beside the step's, at the authors' cadence (N = 1024).

The run is one of the authors' experiments (default ``authors_adam_2d_large``: N = 1024, d = 1,
Adam, 28 steps per epoch), built as ``particledyn run`` builds it, in memory (no file: the frame
cost is ``bench_overhead.py``'s). For each observer configuration, a simulation with that observer
alone runs one epoch as a warm-up (compilation, first Lanczos solve), then ``--blocks`` blocks of
``--epochs`` epochs are timed (CPU time, one thread) against the same blocks without observers.

Printed per configuration: its cadence, the median CPU milliseconds per call, the step's
milliseconds, and ``added``: the fraction of the run's time the observer adds at that cadence
(issue 19's target: <= 50 %). The cadence is the authors' (once per epoch) for every observer
except ``closest_approach``, whose job is every step.

Usage::

    python benchmarks/bench_observers.py
    python benchmarks/bench_observers.py --only betti_alpha sharpness --blocks 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numba

from particledyn.runner import prepare
from particledyn.scenario import parse_scenario
from particledyn.sinks import MemorySink

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCENARIO = os.path.join(HERE, "..", "scenarios", "authors", "authors_adam_2d_large.toml")

CONFIGS = {
    "loss": 'type = "loss"',
    "sharpness": 'type = "sharpness"',  # Adam: preconditioned
    "sharpness_raw": 'type = "sharpness"\npreconditioned = false',
    "pairwise_lipschitz": 'type = "pairwise_lipschitz"',
    "lemmas": 'type = "lemmas"',
    "merges": 'type = "merges"\neps = 1e-4',
    "closest_approach": 'type = "closest_approach"\nevery = 1',
    "balance": 'type = "balance"',
    "betti_alpha": 'type = "betti"\ncomplex = "alpha"\nscale = 0.01\nmax_dim = 1',
    "betti_rips_adaptive": 'type = "betti"\nmax_dim = 1',
    "betti_authors_recipe": 'type = "betti"\nmax_dim = 2\ncoeff = 11',
    "betti_landmarks": 'type = "betti"\nlandmarks = 400\nmax_dim = 1',
    "expansion": 'type = "expansion"',
    "zigzag": 'type = "zigzag"',
}
"""Observer tables (TOML) timed; ``every`` is one epoch unless the table sets it."""


def build(base_text: str, source: str, table: str | None):
    text = base_text
    if table is not None:
        every = "" if "every" in table else '\nevery = "1 epoch"'
        text += f"\n[[observers]]\n{table}{every}\n"
    scenario = parse_scenario(text, source)
    sim = prepare(scenario.resolved).simulation(MemorySink())
    sim.frame_every = 0
    sim.checkpoint_every = 0
    return sim, scenario


def timed_blocks(sim, steps: int, blocks: int) -> list[float]:
    out = []
    for _ in range(blocks):
        start = time.process_time()
        sim.run(steps, progress=False)
        out.append(time.process_time() - start)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario", default=DEFAULT_SCENARIO, help="scenario TOML (its observers are dropped)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed block")
    parser.add_argument("--blocks", type=int, default=3, help="timed blocks per figure (median)")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="time these configurations only")
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    with open(args.scenario) as f:
        base_text = f.read().split("[[observers]]")[0]  # the observer tables close the authors' files

    plain, scenario = build(base_text, args.scenario, None)
    per_epoch = plain.kernel.batches.steps_per_epoch if getattr(plain.kernel, "batches", None) else 1
    steps = args.epochs * per_epoch
    print(
        f"scenario {scenario.resolved.run.name}: N = {plain.positions.shape[0]}, "
        f"{per_epoch} steps per "
        f"epoch; CPU time, 1 thread, median of {args.blocks} blocks of {steps} steps"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    plain.run(per_epoch, progress=False)
    step = statistics.median(timed_blocks(plain, steps, args.blocks)) / steps
    print(f"step alone: {1e3 * step:.3f} ms\n")
    print(f"{'observer':22} {'every':>6} {'ms/call':>10} {'calls/block':>11} {'added':>8}")
    for name in args.only or CONFIGS:
        try:
            sim, _ = build(base_text, args.scenario, CONFIGS[name])
            sim.run(per_epoch, progress=False)
        except Exception as exc:  # an observer that does not apply to this run says why
            print(f"{name:22} not applicable: {' '.join(str(exc).split())[:100]}")
            continue
        observer = sim.observers[0]
        every = observer.every
        calls = sum(1 for t in range(sim.state.step + 1, sim.state.step + steps + 1) if observer.wants(t))
        with_observer = statistics.median(timed_blocks(sim, steps, args.blocks))
        added = with_observer - step * steps
        per_call = added / calls if calls else float("nan")
        print(
            f"{name:22} {every:6d} {1e3 * per_call:10.2f} {calls:11d} {added / (step * steps):7.0%}",
            flush=True,
        )
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
