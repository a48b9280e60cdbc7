"""Every built-in observer's cost per call beside the step's, at the authors' cadence (N = 1024).

The run is one of the authors' experiments (default ``authors_adam_2d_large``: N = 1024, d = 1,
Adam, 28 steps per epoch), built as ``particledyn run`` builds it, in memory (no file: the frame
cost is ``bench_overhead.py``'s). For each observer configuration, a simulation with that observer
alone runs one epoch as a warm-up (compilation, first Lanczos solve), then ``--blocks`` blocks of
``--epochs`` epochs are timed (CPU time, one thread) against the same blocks without observers.

Printed per configuration: its cadence, the step's CPU milliseconds (the run without
observers), the median CPU milliseconds of the observer's own call (``observe``, timed around
the call), the milliseconds per call the run gained (run with the observer minus run without,
per call: the call plus its recording), and ``added``: the fraction of the run's time the
observer adds at that cadence, (observe ms x calls) / (step ms x steps) (issue 19's target:
<= 50 %; the run-based figure beside it is noisier, a difference of two timings). The cadence
is the authors' (once per epoch, as their scripts log) for every observer except
``closest_approach``, whose job is every step.

Usage::

    python benchmarks/bench_observers.py
    python benchmarks/bench_observers.py --only betti_alpha sharpness --blocks 5
    python benchmarks/bench_observers.py --baseline   # also the array code and the k-d tree, same run
    python benchmarks/bench_observers.py --scenario scenarios/authors/authors_adam_3d_large.toml \
        --set init.n=1024 --only betti_alpha_3d expansion --baseline
    # the authors' high-dim cadence (Betti recipe and power-iteration K once per epoch):
    python benchmarks/bench_observers.py --scenario scenarios/authors/authors_digits_adam_large.toml \
        --only betti_authors_recipe sharpness_authors
    python benchmarks/bench_observers.py --scenario scenarios/authors/authors_mnist_adam_large.toml \
        --mnist-shaped --epochs 1 --only betti_authors_recipe sharpness_authors

``--baseline`` times each configuration a second time, right after, with the pair observers on
their array code (``pdist`` arrays, ``np.triu_indices``: the reference of the fused loops) and
the closest approach by a k-d tree query (:func:`particledyn.geometry.closest.closest_pair_reference`),
as they ran before the fused loops, and the expansion's distinct points (S(t) as a set) by
``np.unique(axis=0)`` instead of a lexsort and its empirical K's neighbour ratios by the array
code instead of the loop, and the Betti observer's bottleneck distances (H1, H2) by gudhi's CGAL
matching on the whole diagrams instead of :func:`particledyn.topology.diagrams.exact_bottleneck`
and its alpha diagrams (and the expansion's) by gudhi's AlphaComplex instead of the numba engine:
the line ``<name> (baseline)`` is that peer in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time

import gudhi
import numba
import numpy as np

from particledyn.runner import prepare
from particledyn.scenario import parse_override, parse_scenario
from particledyn.sinks import MemorySink

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCENARIO = os.path.join(HERE, "..", "scenarios", "authors", "authors_adam_2d_large.toml")

CONFIGS = {
    "loss": 'type = "loss"',
    "sharpness": 'type = "sharpness"',  # Adam: preconditioned
    "sharpness_raw": 'type = "sharpness"\npreconditioned = false',
    # K as the authors' high-dim code measures it (their sharpness.py), once per epoch
    "sharpness_authors": 'type = "sharpness"\npreconditioned = false\nmethod = "power_iter"\non = "test"\n'
    'iterations = 20\nbatch_size = "optimizer"',
    "pairwise_lipschitz": 'type = "pairwise_lipschitz"',
    "lemmas": 'type = "lemmas"',
    "merges": 'type = "merges"\neps = 1e-4',
    "closest_approach": 'type = "closest_approach"\nevery = 1',
    "balance": 'type = "balance"',
    "betti_alpha": 'type = "betti"\ncomplex = "alpha"\nscale = 0.01\nmax_dim = 1',
    # the authors' 3-D scenarios' Betti observer (authors_adam_3d_large.toml)
    "betti_alpha_3d": 'type = "betti"\ncomplex = "alpha"\nscale = 0.05\nmax_dim = 2',
    "betti_rips_default": 'type = "betti"\nmax_dim = 1',  # 0.25 x the start's diameter, held
    "betti_rips_adaptive": 'type = "betti"\nscale = "adaptive"\nmax_dim = 1',
    "betti_authors_recipe": 'type = "betti"\nscale = "adaptive"\nmax_dim = 2\ncoeff = 11',
    "betti_landmarks": 'type = "betti"\nlandmarks = 400\nmax_dim = 1',
    "expansion": 'type = "expansion"',
    "zigzag": 'type = "zigzag"',
    # the pair observers of one step share a neighbour cache (as a scenario builds them)
    "pairs_shared": 'type = "pairwise_lipschitz"\nevery = "1 epoch"\n[[observers]]\ntype = "lemmas"\n'
    'every = "1 epoch"\n[[observers]]\ntype = "merges"\neps = 1e-4\nevery = "1 epoch"',
}
"""Observer tables (TOML) timed; ``every`` is one epoch unless the table sets it."""

BASELINE = (
    "pairwise_lipschitz",
    "lemmas",
    "merges",
    "closest_approach",
    "pairs_shared",
    "expansion",
    "betti_alpha",
    "betti_alpha_3d",
)
"""The configurations whose code ``--baseline`` swaps (the others have one code path)."""


def build(base_text: str, source: str, table: str | None, overrides=None):
    text = base_text
    if table is not None:
        every = "" if "every" in table else '\nevery = "1 epoch"'
        text += f"\n[[observers]]\n{table}{every}\n"
    scenario = parse_scenario(text, source, overrides)
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


@contextlib.contextmanager
def baseline_code():
    """The pair observers on their array code, the closest approach by a k-d tree, the
    expansion's distinct points by ``np.unique(axis=0)`` and its empirical K by the array code,
    the Betti bottleneck by gudhi's CGAL matching, and the alpha diagrams by gudhi's AlphaComplex
    (the numba engine refuses every cloud, so ``alpha_diagram`` falls back), for the duration of
    the block."""
    from particledyn.geometry.closest import closest_pair_reference
    from particledyn.geometry.neighbours import NeighbourPairs
    from particledyn.geometry.observers import ClosestApproachObserver
    from particledyn.topology import betti, diagrams, expansion
    from particledyn.topology.alpha_filtration import DegenerateCloud

    fused, observe = NeighbourPairs.fused, ClosestApproachObserver.observe
    distinct, loop_below = expansion._distinct, expansion._PAIRWISE_SUM_MIN
    exact = diagrams.exact_bottleneck
    numba_alpha = betti.numba_alpha_diagram

    def refuse(*args):
        raise DegenerateCloud("baseline: gudhi")

    def tree_observe(self, info):
        d, i, j = closest_pair_reference(info.positions)
        return {"min_distance": d, "i": i, "j": j}

    NeighbourPairs.fused = property(lambda self: False)  # type: ignore[method-assign,assignment]
    ClosestApproachObserver.observe = tree_observe  # type: ignore[method-assign]
    expansion._distinct = lambda X: np.unique(X, axis=0)  # type: ignore[assignment]
    expansion._PAIRWISE_SUM_MIN = 0  # every dimension on the array code
    diagrams.exact_bottleneck = lambda a, b: float(gudhi.bottleneck_distance(a, b))  # CGAL, as before
    betti.numba_alpha_diagram = refuse  # gudhi's AlphaComplex, as before
    try:
        yield
    finally:
        betti.numba_alpha_diagram = numba_alpha
        diagrams.exact_bottleneck = exact
        NeighbourPairs.fused = fused  # type: ignore[method-assign]
        ClosestApproachObserver.observe = observe  # type: ignore[method-assign]
        expansion._distinct = distinct
        expansion._PAIRWISE_SUM_MIN = loop_below


def time_calls(observer, own: list[float]) -> None:
    """Wrap ``observer.observe`` so that each call's CPU time is appended to ``own``."""
    inner = observer.observe

    def observe(info):
        start = time.process_time()
        out = inner(info)
        own.append(time.process_time() - start)
        return out

    observer.observe = observe


def measure(label: str, base_text: str, args, table: str, per_epoch: int, steps: int, step: float) -> None:
    """Time one observer configuration and print its line."""
    try:
        sim, _ = build(base_text, args.scenario, table, args.overrides)
        sim.run(per_epoch, progress=False)
    except Exception as exc:  # an observer that does not apply to this run says why
        print(f"{label:28} not applicable: {' '.join(str(exc).split())[:100]}")
        return
    observer = sim.observers[0]
    calls = sum(1 for t in range(sim.state.step + 1, sim.state.step + steps + 1) if observer.wants(t))
    own: list[float] = []
    for each in sim.observers:  # several share a cadence (pairs_shared): their calls add up
        time_calls(each, own)
    with_observer = statistics.median(timed_blocks(sim, steps, args.blocks))
    added = with_observer - step * steps
    per_call = added / calls if calls else float("nan")
    if len(sim.observers) > 1:
        observe = sum(own) / (calls * args.blocks) if own else float("nan")
    else:
        observe = statistics.median(own) if own else float("nan")
    print(
        f"{label:28} {observer.every:6d} {1e3 * step:8.3f} {1e3 * observe:10.3f} {1e3 * per_call:11.3f} "
        f"{calls:5d} {observe * calls / (step * steps):7.0%} {added / (step * steps):7.0%}",
        flush=True,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario", default=DEFAULT_SCENARIO, help="scenario TOML (its observers are dropped)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed block")
    parser.add_argument("--blocks", type=int, default=3, help="timed blocks per figure (median)")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="time these configurations only")
    parser.add_argument(
        "--baseline", action="store_true", help="also time the array code / k-d tree peer, same run"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a scenario key, as `particledyn run --set` (e.g. init.n=1024)",
    )
    parser.add_argument("--threads", type=int, default=1, help="numba threads (default 1)")
    parser.add_argument(
        "--mnist-shaped",
        action="store_true",
        help="for an authors_mnist_* scenario: random uint8 images of MNIST's shapes (60000 + 10000 "
        "x 28 x 28, 10 classes) in a temporary .npz as data.path (costs depend on the shapes only)",
    )
    args = parser.parse_args(argv)
    args.overrides = dict(parse_override(item) for item in args.set)
    with contextlib.ExitStack() as stack:
        if args.mnist_shaped:
            args.overrides["data.path"] = mnist_shaped(stack.enter_context(tempfile.TemporaryDirectory()))
        run_all(args)


def mnist_shaped(folder: str) -> str:
    """An .npz of random uint8 images and labels in MNIST's layout and shapes, in ``folder``."""
    rng = np.random.default_rng(0)
    path = os.path.join(folder, "mnist_shaped.npz")
    np.savez(
        path,
        x_train=rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 60000).astype(np.uint8),
        x_test=rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 10000).astype(np.uint8),
    )
    return path


def run_all(args) -> None:
    numba.set_num_threads(args.threads)
    with open(args.scenario) as f:
        base_text = f.read().split("[[observers]]")[0]  # the observer tables close the authors' files

    plain, scenario = build(base_text, args.scenario, None, args.overrides)
    per_epoch = plain.kernel.batches.steps_per_epoch if getattr(plain.kernel, "batches", None) else 1
    steps = args.epochs * per_epoch
    print(
        f"scenario {scenario.resolved.run.name}: N = {plain.positions.shape[0]}, "
        f"{per_epoch} steps per "
        f"epoch; CPU time, {args.threads} thread(s), median of {args.blocks} blocks of {steps} steps"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    plain.run(per_epoch, progress=False)
    step = statistics.median(timed_blocks(plain, steps, args.blocks)) / steps
    print(f"step alone: {1e3 * step:.3f} ms\n")
    print(
        f"{'observer':28} {'every':>6} {'step ms':>8} {'observe ms':>10} {'run ms/call':>11} "
        f"{'calls':>5} {'added':>7} {'(run)':>7}"
    )
    for name in args.only or CONFIGS:
        variants = [("", contextlib.nullcontext)]
        if args.baseline and name in BASELINE:
            variants.append((" (baseline)", baseline_code))
        for suffix, context in variants:
            with context():
                measure(f"{name}{suffix}", base_text, args, CONFIGS[name], per_epoch, steps, step)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
