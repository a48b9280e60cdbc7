"""Streaming throughput of H5MDSink beside raw h5py writes of the same frames.

Streams every step of N particles in D dimensions (float32 by default) and
prints, per variant, the median time per frame and MB/s over several repeats:

Only the frame loop is timed (file creation and close are one-off costs).

- ``raw h5py``: resize + write into a dataset chunked one frame per chunk (one flush at the end);
- ``raw h5py + flush``: the same with one flush per frame;
- ``H5MDSink``: write_frame (value, time, step committed with two flushes per
  frame, SWMR on after the first step).

Usage: python benchmarks/bench_io.py [--n 1000000] [--dim 3] [--frames 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import h5py
import numpy as np

from particledyn.io import H5MDSink


def raw_h5py(path: str, frames: np.ndarray, flush: bool) -> float:
    n_frames, n, d = frames.shape
    with h5py.File(path, "w", libver="latest") as f:
        ds = f.create_dataset(
            "value", shape=(0, n, d), maxshape=(None, n, d), dtype=frames.dtype, chunks=(1, n, d)
        )
        start = time.perf_counter()
        for k in range(n_frames):
            ds.resize(k + 1, axis=0)
            ds[k] = frames[k]
            if flush:
                f.flush()
        f.flush()
        return time.perf_counter() - start


def sink(path: str, frames: np.ndarray) -> float:
    s = H5MDSink(path, {"seed": 0}, overwrite=True)
    start = time.perf_counter()
    for k, x in enumerate(frames):
        s.write_frame(k, 0.1 * k, x)
    elapsed = time.perf_counter() - start
    s.close(finished=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**6)
    parser.add_argument("--dim", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--dir", default=None, help="directory for the files (default: a temp dir)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    # Distinct frames so nothing is cached or deduplicated.
    base = rng.normal(size=(args.n, args.dim)).astype(args.dtype)
    frames = np.stack([base + np.asarray(k, dtype=args.dtype) for k in range(args.frames)])
    megabytes = frames[0].nbytes / 1e6
    variants = {
        "raw h5py": lambda p: raw_h5py(p, frames, flush=False),
        "raw h5py + flush": lambda p: raw_h5py(p, frames, flush=True),
        "H5MDSink": lambda p: sink(p, frames),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for _ in range(args.repeats):
            for name, run in variants.items():  # interleaved, so drift hits all alike
                path = os.path.join(tmp, name.replace(" ", "_").replace("+", "") + ".h5")
                if os.path.exists(path):
                    os.remove(path)
                results[name].append(run(path) / args.frames)
                os.remove(path)

    print(
        f"N = {args.n}, D = {args.dim}, {args.dtype}: {megabytes:.1f} MB per frame, "
        f"{args.frames} frames, median of {args.repeats} repeats"
    )
    raw = statistics.median(results["raw h5py"])
    for name, times in results.items():
        per_frame = statistics.median(times)
        print(
            f"  {name:18s} {per_frame * 1e3:8.1f} ms/frame  {megabytes / per_frame:8.0f} MB/s  "
            f"{per_frame / raw:5.2f}x raw"
        )
    per_frame = statistics.median(results["H5MDSink"])
    for step_s in (0.1, 0.2):
        print(f"  streaming every step adds {100 * per_frame / step_s:5.1f}% to a {step_s:.1f} s GD step")


if __name__ == "__main__":
    main()
