"""Where a small run's step goes: the arithmetic against the Python around it (N = 1024).

The run is one of the authors' experiments (default ``scenarios/authors/authors_adam_2d_large.toml``:
N = 1024 neurons, d = 1, Adam, batches of 128 drawn per epoch), built by the runner as
``particledyn run`` builds it, without its observers. Each row is the median CPU time
(``time.process_time``) per step over ``--blocks`` blocks of ``--steps`` steps, one thread:

- ``arithmetic``: the compiled loops alone on a batch prepared once (forward, field, Adam, update);
- ``Simulation.step``: the same update through the engine (batch draw, layouts, loss gradient);
- ``Simulation.run``: the loop around it (signal checks, observer cadence checks, progress);
- ``run + H5MD frames``: as ``particledyn run`` with the scenario's ``frame_every`` (every step),
  once committing every record as it arrives (``output.commit_seconds = 0``, as before batch
  commits) and once with the scenario's ``output.commit_seconds`` (default 1 s: records staged in
  memory, committed in batches at checkpoints, every second or every 8 MiB).

``overhead`` is each row minus ``arithmetic``; the target of issue 19 is overhead <= 2 x arithmetic
for the stepping rows. Usage::

    python benchmarks/bench_overhead.py
    python benchmarks/bench_overhead.py --steps 200 --blocks 7 \\
        --scenario scenarios/authors/authors_gd_2d_large.toml
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numba
import numpy as np

from particledyn.kernels import two_layer_numba as fused
from particledyn.optimizers import apply_step
from particledyn.runner import RunSink, _metadata, prepare, sink_options
from particledyn.scenario import parse_scenario
from particledyn.sinks import MemorySink

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCENARIO = os.path.join(HERE, "..", "scenarios", "authors", "authors_adam_2d_large.toml")


def per_step(run_block, steps: int, blocks: int) -> float:
    """Median CPU seconds per step of ``run_block(steps)`` over ``blocks`` blocks (after a warm-up)."""
    run_block(steps)
    samples = []
    for _ in range(blocks):
        start = time.process_time()
        run_block(steps)
        samples.append((time.process_time() - start) / steps)
    return statistics.median(samples)


def arithmetic(sim):
    """A block runner of the compiled loops alone, on the batch of step 0 laid out once."""
    from particledyn.kernels.two_layer_reference import loss_and_output_gradient

    kernel, state = sim.kernel, sim.state
    forward, field = fused.compiled_loops(kernel.activation, state.positions.dtype)
    inputs, targets = sim.context(0)
    inputs_t = fused.pad_batch(inputs, state.positions.dtype)
    coef = kernel._coefficients(state.masses, state.positions.dtype)
    out = np.empty_like(state.positions)
    grad = np.zeros((kernel.n_outputs, inputs_t.shape[1]), dtype=state.positions.dtype)
    lr = state.positions.dtype.type(1e-6)

    def block(steps):
        for t in range(steps):
            outputs = forward(state.positions, coef, inputs_t)[:, : inputs.shape[0]].T
            grad[:, : inputs.shape[0]] = loss_and_output_gradient(outputs, targets, kernel.loss_name)[1].T
            field(state.positions, inputs_t, grad, out)
            direction = sim.optimizer.direction(state.positions, out, state.optimizer_state, t)
            apply_step(state.positions.ravel(), direction.ravel(), lr)

    return block


def build(scenario_path: str, sink_factory):
    with open(scenario_path) as f:
        text = f.read()
    # the observer tables close the authors' files: cut them off
    scenario = parse_scenario(text.split("[[observers]]")[0], scenario_path)
    prepared = prepare(scenario.resolved)
    sim = prepared.simulation(sink_factory(scenario, prepared))
    sim.defer_signals = True
    return sim, scenario


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, help="scenario TOML (observers are dropped)")
    parser.add_argument("--steps", type=int, default=100, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per figure (median)")
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    print(
        f"per-step CPU time, 1 thread, median of {args.blocks} blocks of {args.steps} steps; "
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    sim, scenario = build(args.scenario, lambda s, p: MemorySink())
    sim.frame_every = 0
    n = sim.positions.shape[0]
    print(
        f"scenario {scenario.resolved.run.name}: N = {n}, D = {sim.positions.shape[1]}, "
        f"batch {sim.batch_size}, optimizer {sim.optimizer.name}\n"
    )
    rows = [("arithmetic", per_step(arithmetic(sim), args.steps, args.blocks))]

    def steps_only(steps):
        for _ in range(steps):
            sim.step()

    rows.append(("Simulation.step", per_step(steps_only, args.steps, args.blocks)))
    rows.append(("Simulation.run", per_step(lambda k: sim.run(k, progress=False), args.steps, args.blocks)))

    from particledyn.io import H5MDSink

    with tempfile.TemporaryDirectory() as tmp:
        for label, commit_seconds in (("every record", 0.0), ("batches", None)):

            def h5md(s, p, commit_seconds=commit_seconds):  # as runner._start_run opens it
                options = sink_options(s.resolved.output)
                if commit_seconds is not None:
                    options["commit_seconds"] = commit_seconds
                sink = H5MDSink(
                    os.path.join(tmp, "run.h5"),
                    _metadata(s.text, s.source, p, 1, s.overrides),
                    every=1,
                    subset=p.subset,
                    masses=p.masses,
                    overwrite=True,
                    **options,
                )
                return RunSink(sink, 10**9)

            filed, _ = build(args.scenario, h5md)
            filed.checkpoint_every = 0
            if commit_seconds is None:
                label += f" ({filed.sink.inner.commit_seconds:g} s)"
            rows.append(
                (
                    f"run + H5MD frames/{filed.frame_every}, {label}",
                    per_step(lambda k, sim=filed: sim.run(k, progress=False), args.steps, args.blocks),
                )
            )
            filed.close()

    base = rows[0][1]
    print(f"{'what':40} {'ms/step':>9} {'overhead ms':>12} {'overhead/arith':>15}")
    for name, seconds in rows:
        overhead = seconds - base
        print(f"{name:40} {1e3 * seconds:9.3f} {1e3 * overhead:12.3f} {overhead / base:15.2f}")
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
