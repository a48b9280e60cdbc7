"""Small real run files for the plotting, summary and notebook tests.

A two-layer sigmoid net (mean-field scaling) on the paper's teacher-student data
(d = D - 1), neurons started on a genus-2 shape, trained by GD and streamed to an
H5MD file with the Betti, pairwise-K, Lemma, merge, sharpness and loss observers (and on request
the Theorem 2, zigzag, closest-approach and balance ones).
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from particledyn import simulate
from particledyn.clouds import make_cloud
from particledyn.data import teacher_student
from particledyn.geometry.observers import (
    BalanceObserver,
    ClosestApproachObserver,
    SharpnessObserver,
    geometry_observers,
)
from particledyn.io import H5MDSink
from particledyn.kernels import TwoLayerNet
from particledyn.observers import LossObserver
from particledyn.topology.observers import BettiObserver, ExpansionObserver, ZigzagObserver

_SHAPES = {2: {"shape": "genus_region", "genus": 2}, 3: {"shape": "genus_surface", "genus": 2}}


def make_run(
    path,
    lr: float,
    steps: int,
    dim: int = 2,
    n: int = 120,
    every: int = 5,
    observers: tuple[str, ...] = ("betti", "geometry", "sharpness", "loss"),
    eps: float = 1e-2,
    size: float = 1.0,
    rename: str = "",
) -> Path:
    """Train and write a run file at ``path``; returns the path.

    ``dim`` 2 or 3 starts on a genus-2 region or surface, any other ``dim`` on a
    Gaussian cloud. ``observers`` picks the groups of observers to attach; ``eps``
    is the merge scale (the paper's 0.01); "topology" adds the Theorem 2 and zigzag observers,
    "extra" the closest-approach and balance ones. ``rename`` prefixes every observer's name.
    """
    data = teacher_student(d=dim - 1, n=240, seed=0)
    kernel = TwoLayerNet(
        data.z_train, data.y_train, scaling="mean_field", test_inputs=data.z_test, test_targets=data.y_test
    )
    spec = dict(_SHAPES.get(dim, {"shape": "gaussian", "dim": dim}), n=n, size=size, seed=1)
    x = make_cloud(spec)
    context = kernel.evaluation_context()

    def hvp(info):
        return lambda v: kernel.hvp(info.positions, info.masses, context, v)

    chosen = []
    if "betti" in observers:
        chosen.append(BettiObserver(every, max_dim=min(dim - 1, 2), complex="alpha" if dim <= 3 else "rips"))
    if "geometry" in observers:
        # the paper's absolute 0.01: this start already has pairs within it, accepted as asked
        chosen.extend(geometry_observers(eps=eps, every=every, allow_close_start=True))
    if "sharpness" in observers:
        chosen.append(SharpnessObserver(hvp, every=every))
    if "loss" in observers:
        chosen.append(LossObserver(every))
    if "topology" in observers:
        chosen.extend([ExpansionObserver(every, radii=[0.25, 0.5], relative=True), ZigzagObserver(every)])
    if "extra" in observers:
        chosen.extend([ClosestApproachObserver(every), BalanceObserver(every)])
    for observer in chosen:
        observer.name = rename + observer.name
    sink = H5MDSink(path, {"lr": lr, "note": "test run"})
    # one thread: for 120 neurons parallel loops only add overhead, a lot on a busy machine
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        simulate(kernel, x, steps, lr=lr, observers=chosen, sink=sink, frame_every=every, progress=False)
    finally:
        numba.set_num_threads(threads)
    return Path(path)


def png_is_drawn(path) -> bool:
    """Whether a PNG exists, is a real image (>= 200 x 200) and not blank (many colours, much ink)."""
    from matplotlib.image import imread

    image = imread(str(path))[..., :3]
    if image.shape[0] < 200 or image.shape[1] < 200:
        return False
    ink = np.mean(np.any(image < 0.9, axis=-1))  # fraction of non-white pixels
    colours = len(np.unique((image.reshape(-1, 3) * 255).astype(np.uint8), axis=0))
    return ink > 0.01 and colours > 20


def write_records(
    path, observables: dict, frames=None, finished: bool = True, parameters: dict | None = None
) -> Path:
    """Write a run file by hand: ``observables[name] = [(step, {key: value}), ...]``.

    ``frames`` is a list of (step, positions); one frame of 10 points in R^2 by default;
    ``parameters`` go to the file's parameters group.
    """
    frames = frames or [(0, np.random.default_rng(0).normal(size=(10, 2)))]
    events = [(step, 0, "frame", x) for step, x in frames]
    events += [(step, 1, name, values) for name, records in observables.items() for step, values in records]
    sink = H5MDSink(path, parameters)
    for step, _, name, payload in sorted(events, key=lambda e: (e[0], e[1])):  # the loop's order
        if name == "frame":
            sink.write_frame(step, float(step), np.asarray(payload, dtype=np.float64), {})
        else:
            sink.write_observables(name, step, float(step), payload)
    sink.close(finished=finished)
    return Path(path)
