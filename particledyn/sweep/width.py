"""The infinite-width view: the same dynamics as N grows, and the distance between replicas.

Under mean-field scaling (F = sum_i m_i a_i sigma(<w_i, z>), m_i = 1/N, field per unit mass)
the particles follow a discretised Wasserstein gradient flow of their empirical measure, and
the time scale does not depend on N. Two independent replicas -- N particles sampled from
the same initial measure with different seeds, trained on the same data -- then stay close
in Wasserstein distance, with the distance set by sampling: for two i.i.d. samples of a
measure on R^D, W_p ~ N^{-1/D} for D >= 3 (N^{-1/2} up to a log for D = 2, N^{-1/2} for D = 1).

Distances:

- :func:`wasserstein_exact`: W_2 between two equal-size uniform empirical measures is an
  assignment problem; solved exactly by ``scipy.optimize.linear_sum_assignment`` on the
  N x N squared-distance matrix (O(N^3) time, O(N^2) memory: used up to ``exact_max``).
- :func:`sliced_wasserstein`: SW_2, the root mean over random unit directions of the 1-D
  W_2^2 of the projections (exact in 1-D by sorting): O(P N log N), any N. SW_2 <= W_2, and
  it converges like N^{-1/2} whatever D, so it tracks the sampling error, not the D-dependent
  rate. The study records both where the exact one is affordable.
  (Subsampling to an exact problem is not used: the subsample's own error, ~ M^{-1/D} for M
  points, would hide the N dependence.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["wasserstein_exact", "sliced_wasserstein", "replica_distances", "WidthStudy", "width_study",
           "plot_width_study"]


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape != y.shape or x.shape[0] == 0:
        raise ValueError(f"samples of shapes {x.shape} and {y.shape}: expected two non-empty (N, D) "
                         "arrays of the same shape")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("samples contain NaN or inf: expected finite positions")
    return x, y


def wasserstein_exact(x, y) -> float:
    """W_2 between the uniform empirical measures of two equal-size samples (exact).

    Parameters
    ----------
    x, y : array_like, shape (N, D)

    Returns
    -------
    float
        sqrt(min over permutations s of (1/N) sum_i |x_i - y_s(i)|^2).
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    x, y = _pair(x, y)
    cost = cdist(x, y, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def sliced_wasserstein(x, y, n_projections: int = 200, seed: int = 0, chunk: int = 16) -> float:
    """Sliced W_2 between two equal-size samples: sqrt(mean over directions of W_2^2 in 1-D).

    Parameters
    ----------
    x, y : array_like, shape (N, D)
    n_projections : int
        Random unit directions (uniform on the sphere, from ``seed``). In D = 1 the only
        directions are +-1 and the value is exact.
    seed : int
    chunk : int
        Directions projected at once (memory N * chunk).
    """
    x, y = _pair(x, y)
    if int(n_projections) != n_projections or n_projections < 1:
        raise ValueError(f"n_projections={n_projections!r}: expected a positive integer")
    directions = np.random.default_rng(seed).standard_normal((int(n_projections), x.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    total = 0.0
    for lo in range(0, len(directions), chunk):
        block = directions[lo: lo + chunk].T
        px, py = np.sort(x @ block, axis=0), np.sort(y @ block, axis=0)
        total += float(np.sum((px - py) ** 2))
    return float(np.sqrt(total / (x.shape[0] * len(directions))))


def replica_distances(x, y, exact_max: int = 2000, n_projections: int = 200, seed: int = 0) -> dict:
    """``{"sliced": SW_2, "exact": W_2 or None}``: the exact one only up to ``exact_max`` particles."""
    x, y = _pair(x, y)
    return {"sliced": sliced_wasserstein(x, y, n_projections, seed),
            "exact": wasserstein_exact(x, y) if x.shape[0] <= exact_max else None}


@dataclass
class WidthStudy:
    """Results of :func:`width_study`, one entry per N (lists in the order of ``sizes``).

    Attributes
    ----------
    sizes : list of int
    steps : int
    dim : int
        D of a particle (the N^{-1/D} reference).
    loss : list of (steps, values)
        Training loss of replica 0 over the run.
    sharpness : list of (steps, values)
        lambda_max over the run (replica 0), when the scenario records it.
    betti : list of list
        Betti numbers at each record (replica 0), when recorded.
    W_initial, W_final : list of dict
        :func:`replica_distances` of the two replicas at step 0 and at the end.
    seconds : list of float
        Wall time of both replicas' runs.
    """

    sizes: list
    steps: int
    dim: int
    loss: list = field(default_factory=list)
    sharpness: list = field(default_factory=list)
    betti: list = field(default_factory=list)
    W_initial: list = field(default_factory=list)
    W_final: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def to_json(self) -> str:
        def plain(v):
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, (np.integer, np.floating)):
                return v.item()
            if isinstance(v, (list, tuple)):
                return [plain(u) for u in v]
            if isinstance(v, dict):
                return {k: plain(u) for k, u in v.items()}
            return v
        return json.dumps({k: plain(v) for k, v in self.__dict__.items()}, indent=1)


def _series(sink, name, key):
    table = sink.observables.get(name)
    if table is None or key not in table:
        return None
    return np.asarray(table["step"]), list(table[key])


def width_study(resolved: dict, sizes, steps: int | None = None, replica_seeds=(1, 2),
                exact_max: int = 2000, n_projections: int = 200) -> WidthStudy:
    """Train two replicas at every N from the same initial measure and compare them.

    Parameters
    ----------
    resolved : dict
        A resolved scenario (:func:`particledyn.scenario.validate_scenario`) with a
        mean-field kernel; its observers run on each replica (give its ``betti`` observer
        ``landmarks`` for large N, and keep ``sharpness`` sparse).
    sizes : sequence of int
        The N to study (e.g. 10^2 ... 10^6).
    steps : int, optional
        Steps per run (default: ``run.steps``).
    replica_seeds : (int, int)
        ``init.seed`` of the two replicas; the data (``data.seed``) and the mini-batches
        (``run.seed``) are shared.
    exact_max, n_projections
        See :func:`replica_distances`.

    Returns
    -------
    WidthStudy
    """
    import time

    from ..runner import prepare
    from ..scenario import validate_scenario
    from ..sinks import MemorySink

    if resolved["kernel"].get("scaling") != "mean_field":
        raise ValueError(f"kernel.scaling = {resolved['kernel'].get('scaling')!r}: expected "
                         "\"mean_field\" (the infinite-width limit needs the 1/N output scaling)")
    if len(replica_seeds) != 2 or replica_seeds[0] == replica_seeds[1]:
        raise ValueError(f"replica_seeds={replica_seeds!r}: expected two different seeds")
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 2:
        raise ValueError(f"sizes={sizes!r}: expected particle counts >= 2")
    steps = int(resolved["run"]["steps"] if steps is None else steps)
    raw = {s: ({k: v for k, v in t.items() if v is not None} if isinstance(t, dict)
               else [{k: v for k, v in e.items() if v is not None} for e in t])
           for s, t in resolved.items()}
    raw["data"]["seed"] = resolved["data"]["seed"]
    study = None
    for n in sizes:
        finals, initials, sinks = [], [], []
        began = time.perf_counter()
        for seed in replica_seeds:
            run = validate_scenario(raw, {"init.n": n, "init.seed": seed, "run.steps": steps})
            prepared = prepare(run)
            initials.append(prepared.positions.copy())
            sink = MemorySink(keep_frames=False)
            sim = prepared.simulation(sink)
            sim.frame_every = 0
            sim.run(steps, progress=False)
            sim.close()
            finals.append(np.array(sim.positions, dtype=np.float64))
            sinks.append(sink)
        if study is None:
            study = WidthStudy(sizes, steps, int(initials[0].shape[1]))
        study.seconds.append(time.perf_counter() - began)
        study.W_initial.append(replica_distances(*initials, exact_max, n_projections))
        study.W_final.append(replica_distances(*finals, exact_max, n_projections))
        study.loss.append(_series(sinks[0], "loss", "loss"))
        study.sharpness.append(_series(sinks[0], "sharpness", "lambda_max"))
        betti = _series(sinks[0], "betti", "betti")
        study.betti.append(None if betti is None else (betti[0], [np.asarray(b).tolist() for b in betti[1]]))
    return study


def plot_width_study(study: WidthStudy, out) -> Path:
    """Four panels into a PNG: loss curves, Betti numbers, sharpness, and W_2 between replicas vs N."""
    import matplotlib
    from matplotlib.figure import Figure

    out = Path(out)
    fig = Figure(figsize=(16, 4.2), dpi=110)
    ax_loss, ax_betti, ax_sharp, ax_W = fig.subplots(1, 4)
    cmap = matplotlib.colormaps["viridis"]
    k = len(study.sizes)
    for i, n in enumerate(study.sizes):
        colour = cmap(i / max(1, k - 1))
        if study.loss[i] is not None:
            ax_loss.plot(study.loss[i][0], study.loss[i][1], color=colour, label=f"N = {n}")
        if study.sharpness[i] is not None:
            ax_sharp.plot(study.sharpness[i][0], study.sharpness[i][1], color=colour, label=f"N = {n}")
    ax_loss.set(yscale="log", xlabel="step", ylabel="training loss", title="loss (replica 0)")
    ax_loss.legend(fontsize=7)
    ax_sharp.set(xlabel="step", ylabel="lambda_max", title="sharpness (replica 0)")
    final_betti = [None if b is None else np.atleast_2d(b[1][-1])[0] for b in study.betti]
    if any(b is not None for b in final_betti):
        width = max(len(b) for b in final_betti if b is not None)
        for dim in range(width):
            ax_betti.plot(study.sizes, [np.nan if b is None else b[dim] for b in final_betti], "o-",
                          label=f"b{dim}")
        ax_betti.legend(fontsize=7)
    ax_betti.set(xscale="log", xlabel="N", ylabel="Betti number", title="Betti numbers at the end")
    sizes = np.asarray(study.sizes, dtype=float)
    for label, records, style in (("start", study.W_initial, "--"), ("end", study.W_final, "-")):
        sliced = np.array([r["sliced"] for r in records])
        ax_W.plot(sizes, sliced, "o" + style, color="tab:blue", label=f"sliced W2, {label}")
        exact = np.array([np.nan if r["exact"] is None else r["exact"] for r in records])
        if np.isfinite(exact).any():
            ax_W.plot(sizes, exact, "s" + style, color="tab:red", label=f"exact W2, {label}")
    anchor = study.W_initial[0]["exact"] or study.W_initial[0]["sliced"]
    ax_W.plot(sizes, anchor * (sizes / sizes[0]) ** (-1.0 / study.dim), ":", color="0.3",
              label=f"N^(-1/{study.dim})")
    ax_W.plot(sizes, anchor * (sizes / sizes[0]) ** -0.5, "-.", color="0.6", label="N^(-1/2)")
    ax_W.set(xscale="log", yscale="log", xlabel="N", ylabel="W2 between replicas",
             title="distance between two replicas")
    ax_W.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def width_main(argv=None, prog: str = "python -m particledyn.sweep.width") -> int:
    """``particledyn width SCENARIO.toml --sizes 100 1000 ... [--steps] [--out DIR]``:
    writes ``width_study.json`` and ``width_study.png`` into DIR; a bad scenario is a one-line
    error with exit status 2."""
    import argparse
    import sys

    from ..config.checks import ScenarioError
    from ..scenario import load_scenario

    parser = argparse.ArgumentParser(prog=prog,
                                     description="Infinite-width convergence study of a mean-field scenario.")
    parser.add_argument("scenario", metavar="SCENARIO.toml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int)
    parser.add_argument("--exact-max", type=int, default=2000)
    parser.add_argument("--projections", type=int, default=200)
    parser.add_argument("--out", default="width_study")
    args = parser.parse_args(argv)
    try:
        study = width_study(load_scenario(args.scenario).resolved, args.sizes, args.steps,
                            exact_max=args.exact_max, n_projections=args.projections)
    except ScenarioError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "width_study.json").write_text(study.to_json() + "\n")
    plot_width_study(study, out / "width_study.png")
    for n, w0, w1, s in zip(study.sizes, study.W_initial, study.W_final, study.seconds):
        print(f"N={n}: W2 start sliced={w0['sliced']:.4g} exact={w0['exact']}, end sliced={w1['sliced']:.4g} "
              f"exact={w1['exact']}; {s:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(width_main())
