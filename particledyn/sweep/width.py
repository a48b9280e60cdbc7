"""The infinite-width view: the same dynamics as N grows, replicas against each other and
against a large-N reference, and Theorem 3's density check.

Under mean-field scaling (F = sum_i m_i a_i sigma(<w_i, z>), m_i = 1/N, field per unit mass)
the particles follow a discretised Wasserstein gradient flow of their empirical measure, and
the time scale does not depend on N. Two independent replicas -- N particles sampled from
the same initial measure with different seeds, trained on the same data -- then stay close
in Wasserstein distance, with the distance set by sampling: for two i.i.d. samples of a
measure on R^D, W_p ~ N^{-1/D} for D >= 3 (N^{-1/2} up to a log for D = 2, N^{-1/2} for D = 1).

Distances:

- :func:`wasserstein_exact`: W_2 between two equal-size uniform empirical measures is an
  assignment problem; solved exactly by ``scipy.optimize.linear_sum_assignment`` on the
  N x N squared-distance matrix (O(N^3) time, O(N^2) memory), the reference of
- :func:`wasserstein_pot`: the same exact W_2 by POT's network simplex (``ot.emd2``), which
  also takes samples of different sizes (a replica against the reference) and is ~2x faster
  at N = 5000; the study uses it up to ``exact_max`` (and N x N_ref <= ``exact_cells``).
- :func:`sliced_wasserstein`: SW_2, the root mean over random unit directions of the 1-D
  W_2^2 of the projections (exact in 1-D by sorting): O(P N log N), any N. SW_2 <= W_2, and
  it converges like N^{-1/2} whatever D, so it tracks the sampling error, not the D-dependent
  rate. Samples of different sizes are compared through their quantile functions. The study
  records both where the exact one is affordable.

:func:`width_study` runs R replica pairs per N and one reference run at ``reference_n`` on Dask
(or in-process), each run's start and end clouds and loss into one HDF5 file as it finishes
(a rerun skips the runs already there), then the distances with error bars (mean and standard
error over the R pairs), the fitted rate d ~ N^slope with its standard error, and the density
check of :mod:`particledyn.sweep.density` on the first GD step at each N.
  (Subsampling to an exact problem is not used: the subsample's own error, ~ M^{-1/D} for M
  points, would hide the N dependence.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..scenario.resolved import ResolvedScenario

__all__ = [
    "wasserstein_exact",
    "wasserstein_pot",
    "sliced_wasserstein",
    "replica_distances",
    "width_study",
    "fit_rate",
    "plot_width_study",
]


def _pair(x, y, same_size: bool = True) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mismatch = x.shape != y.shape if same_size else x.ndim == 2 and y.ndim == 2 and x.shape[1] != y.shape[1]
    if x.ndim != 2 or y.ndim != 2 or mismatch or x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(
            f"samples of shapes {x.shape} and {y.shape}: expected two non-empty (N, D) "
            "arrays of the same shape"
        )
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


def wasserstein_pot(x, y) -> float:
    """Exact W_2 between the uniform empirical measures of two samples (sizes may differ), by POT.

    Parameters
    ----------
    x : array_like, shape (N, D)
    y : array_like, shape (M, D)

    Returns
    -------
    float
    """
    try:
        import ot
    except ImportError:
        raise ImportError(
            "the exact W_2 of the width study needs POT: pip install pot "
            "(in the particledyn checkout: pip install -e '.[dist]')"
        ) from None
    from scipy.spatial.distance import cdist

    x, y = _pair(x, y, same_size=False)
    cost = cdist(x, y, "sqeuclidean")
    a, b = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    return float(np.sqrt(max(ot.emd2(a, b, cost, numItermax=10**8), 0.0)))


def _quantile_gap(px: np.ndarray, py: np.ndarray) -> float:
    """Sum over columns of int_0^1 (F_x^-1(u) - F_y^-1(u))^2 du for sorted columns of any lengths."""
    n, m = len(px), len(py)
    u = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    width = np.diff(np.r_[0.0, u])
    middle = u - width / 2
    ix = np.minimum((middle * n).astype(np.int64), n - 1)
    iy = np.minimum((middle * m).astype(np.int64), m - 1)
    return float(np.sum(width[:, None] * (px[ix] - py[iy]) ** 2))


def sliced_wasserstein(x, y, n_projections: int = 200, seed: int = 0, chunk: int = 16) -> float:
    """Sliced W_2 between two samples: sqrt(mean over directions of W_2^2 in 1-D) (sizes may differ).

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
    x, y = _pair(x, y, same_size=False)
    if int(n_projections) != n_projections or n_projections < 1:
        raise ValueError(f"n_projections={n_projections!r}: expected a positive integer")
    directions = np.random.default_rng(seed).standard_normal((int(n_projections), x.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    total = 0.0
    for lo in range(0, len(directions), chunk):
        block = directions[lo : lo + chunk].T
        px, py = np.sort(x @ block, axis=0), np.sort(y @ block, axis=0)
        total += float(np.sum((px - py) ** 2)) / x.shape[0] if len(px) == len(py) else _quantile_gap(px, py)
    return float(np.sqrt(total / len(directions)))


def replica_distances(
    x, y, exact_max: int = 5000, n_projections: int = 200, seed: int = 0, exact_cells: float = 2.5e7
) -> dict:
    """``{"sliced": SW_2, "exact": W_2 or None}``: the exact one (POT) only while both samples have
    at most ``exact_max`` particles and their cost matrix at most ``exact_cells`` entries."""
    x, y = _pair(x, y, same_size=False)
    affordable = max(len(x), len(y)) <= exact_max and len(x) * len(y) <= exact_cells
    return {
        "sliced": sliced_wasserstein(x, y, n_projections, seed),
        "exact": wasserstein_pot(x, y) if affordable else None,
    }


# ---------------------------------------------------------------- the study
_FORMAT = "particledyn-width-study-1"


def _prepared(raw: dict, n: int, seed: int, steps: int):
    from ..runner import prepare
    from ..scenario import validate_scenario

    return prepare(validate_scenario(raw, {"init.n": n, "init.seed": seed, "run.steps": steps}))


def run_replica(raw: dict, n: int, seed: int, steps: int) -> dict:
    """One run of the study (a task on a worker): ``initial`` and ``final`` positions (float64),
    the ``loss`` record (steps, values) and ``seconds``."""
    import time

    from ..sinks import MemorySink

    began = time.perf_counter()
    prepared = _prepared(raw, n, seed, steps)
    initial = np.array(prepared.positions, dtype=np.float64)
    sink = MemorySink(keep_frames=False)
    sim = prepared.simulation(sink)
    sim.frame_every = 0
    sim.run(steps, progress=False)
    sim.close()
    loss = _series(sink, "loss", "loss")
    return {
        "initial": initial,
        "final": np.array(sim.positions, dtype=np.float64),
        "loss_steps": np.asarray([] if loss is None else loss[0], dtype=np.int64),
        "loss": np.asarray([] if loss is None else loss[1], dtype=np.float64),
        "seconds": time.perf_counter() - began,
    }


def _series(sink, name, key):
    table = sink.observables.get(name)
    if table is None or key not in table:
        return None
    return np.asarray(table["step"]), list(table[key])


def _plan(sizes, replicas, steps, reference_n, seeds) -> dict:
    return {
        "format": _FORMAT,
        "sizes": [int(n) for n in sizes],
        "replicas": int(replicas),
        "steps": int(steps),
        "reference_n": int(reference_n),
        "seeds": [int(s) for s in seeds],
    }


def _run_ids(plan: dict) -> dict[str, tuple[int, int]]:
    ids = {f"n{n}_s{s}": (n, s) for n in plan["sizes"] for s in plan["seeds"]}
    ids[f"reference_n{plan['reference_n']}"] = (plan["reference_n"], 0)
    return ids


def _open_store(path: Path, plan: dict, scenario_text: str):
    """The study's HDF5 file, created or reopened for a resume (same plan and scenario only)."""
    import h5py

    if path.exists():
        with h5py.File(path, "r") as f:
            stored = json.loads(f.attrs.get("plan", "{}"))
            text = f.attrs.get("scenario", "")
        if stored != plan or text != scenario_text:
            raise ValueError(
                f"{path} holds another width study (plan {stored}): expected {plan} on the "
                "same scenario; choose another --out or delete the file"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["plan"] = json.dumps(plan)
        f.attrs["scenario"] = scenario_text
        f.create_group("runs")


def _stored_runs(path: Path) -> set[str]:
    import h5py

    with h5py.File(path, "r") as f:
        return {name for name, group in f["runs"].items() if group.attrs.get("complete", False)}


def _store_run(path: Path, run_id: str, n: int, seed: int, result: dict) -> None:
    import h5py

    with h5py.File(path, "a") as f:
        if run_id in f["runs"]:
            del f["runs"][run_id]  # an incomplete one from a killed study
        group = f["runs"].create_group(run_id)
        for key in ("initial", "final", "loss_steps", "loss"):
            group.create_dataset(key, data=result[key])
        group.attrs.update(n=n, seed=seed, seconds=float(result["seconds"]))
        group.attrs["complete"] = True  # written last: a run cut short is redone


def _load_run(path: Path, run_id: str) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        group = f["runs"][run_id]
        return {key: group[key][()] for key in ("initial", "final", "loss_steps", "loss")} | {
            "seconds": float(group.attrs["seconds"])
        }


def _execute(path: Path, raw: dict, plan: dict, client, progress) -> int:
    """Run the runs not yet in the file, storing each as it finishes; returns how many ran."""
    done = _stored_runs(path)
    todo = {rid: ns for rid, ns in _run_ids(plan).items() if rid not in done}
    steps = plan["steps"]
    if client is None:
        for rid, (n, seed) in todo.items():
            _store_run(path, rid, n, seed, run_replica(raw, n, seed, steps))
            progress(rid)
        return len(todo)
    from distributed import as_completed

    futures = {
        client.submit(run_replica, raw, n, seed, steps, pure=False): rid for rid, (n, seed) in todo.items()
    }
    try:
        for future in as_completed(futures):
            rid = futures[future]
            n, seed = todo[rid]
            _store_run(path, rid, n, seed, future.result())
            progress(rid)
    except BaseException:
        client.cancel(list(futures))
        raise
    return len(todo)


def fit_rate(sizes, values, errors=None) -> dict:
    """Least-squares slope of log(value) against log(N): ``{"slope", "slope_se", "n_points"}``
    (weighted by the relative errors where given; NaN with fewer than 3 points)."""
    sizes, values = np.asarray(sizes, float), np.asarray(values, float)
    keep = np.isfinite(values) & (values > 0)
    if keep.sum() < 3:
        return {"slope": float("nan"), "slope_se": float("nan"), "n_points": int(keep.sum())}
    x, y = np.log(sizes[keep]), np.log(values[keep])
    w = np.ones_like(x)
    if errors is not None:
        rel = np.asarray(errors, float)[keep] / values[keep]
        if np.all(np.isfinite(rel)) and np.all(rel > 0):
            w = 1.0 / rel**2
    A = np.stack([np.ones_like(x), x], axis=1)
    W = np.diag(w)
    cov = np.linalg.inv(A.T @ W @ A)
    beta = cov @ A.T @ W @ y
    residual = y - A @ beta
    dof = max(len(x) - 2, 1)
    scale = float(residual @ W @ residual) / dof
    return {"slope": float(beta[1]), "slope_se": float(np.sqrt(cov[1, 1] * scale)), "n_points": int(len(x))}


def _mean_se(values) -> tuple[float, float]:
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return float(values.mean()), se


def _analyse(path: Path, raw: dict, plan: dict, exact_max: int, n_projections: int, density: bool) -> dict:
    """Distances, error bars, rates and the density check from the runs in the file."""
    from .density import density_check, step_map

    seeds, R = plan["seeds"], plan["replicas"]
    reference = _load_run(path, f"reference_n{plan['reference_n']}")
    rows = []
    for n in plan["sizes"]:
        runs = [_load_run(path, f"n{n}_s{s}") for s in seeds]
        row = {"n": n, "seconds": float(sum(r["seconds"] for r in runs))}
        for when in ("initial", "final"):
            pairs = [
                replica_distances(runs[2 * r][when], runs[2 * r + 1][when], exact_max, n_projections, seed=r)
                for r in range(R)
            ]
            to_ref = [
                replica_distances(run[when], reference[when], exact_max, n_projections, seed=i)
                for i, run in enumerate(runs)
            ]
            for kind in ("sliced", "exact"):
                row[f"replicas_{when}_{kind}"] = _mean_se([p[kind] for p in pairs])
                row[f"reference_{when}_{kind}"] = _mean_se([p[kind] for p in to_ref])
        row["final_loss"] = _mean_se([r["loss"][-1] for r in runs if len(r["loss"])])
        if density:
            prepared = _prepared(raw, n, seeds[0], plan["steps"])
            lr = float(prepared.schedule(0))
            f, log_det = step_map(prepared.kernel, runs[0]["initial"], prepared.masses, lr)
            check = density_check(runs[0]["initial"], runs[1]["initial"], f, log_det)
            row["density"] = {k: v for k, v in check.__dict__.items()}
        rows.append(row)
    sizes = [r["n"] for r in rows]
    rates = {}
    for key in (
        "replicas_initial_sliced",
        "replicas_final_sliced",
        "replicas_initial_exact",
        "replicas_final_exact",
        "reference_final_sliced",
        "reference_final_exact",
    ):
        usable = [
            (n, r[key])
            for n, r in zip(sizes, rows)
            if not key.startswith("reference") or n <= plan["reference_n"] // 4
        ]
        rates[key] = fit_rate([u[0] for u in usable], [u[1][0] for u in usable], [u[1][1] for u in usable])
    dim = int(reference["initial"].shape[1])
    return {
        "plan": plan,
        "dim": dim,
        "rows": rows,
        "rates": rates,
        "reference_seconds": reference["seconds"],
        "expected_slope": -1.0 / dim if dim >= 3 else -0.5,
    }


def width_study(
    resolved: ResolvedScenario,
    sizes,
    *,
    replicas: int = 4,
    reference_n: int | None = None,
    steps: int | None = None,
    out="width_study.h5",
    client=None,
    exact_max: int = 5000,
    n_projections: int = 100,
    density: bool = True,
    scenario_text: str = "",
    progress=None,
) -> dict:
    """Train R replica pairs at every N and one large-N reference, compare them, test Theorem 3.

    Parameters
    ----------
    resolved : ResolvedScenario
        A resolved scenario (:func:`particledyn.scenario.validate_scenario`) with a mean-field
        kernel; its observers run on every run (keep only cheap ones: the study reads the loss).
    sizes : sequence of int
        The N to study.
    replicas : int
        R: replica pairs per N (init.seed 1 .. 2R; the data and the mini-batches are shared).
    reference_n : int, optional
        N of the reference run (init.seed 0; default 10 x the largest size).
    steps : int, optional
        Steps per run (default: ``run.steps``).
    out : path
        The study's HDF5 file: each run's start and end clouds and loss, written as it finishes;
        a rerun with the same plan skips the runs already there (resume).
    client : distributed.Client, optional
        Run on Dask (one task per run); None runs them in this process.
    exact_max, n_projections
        See :func:`replica_distances`.
    density : bool
        Add the density check of the first GD step (:mod:`particledyn.sweep.density`).
    scenario_text : str
        Stored with the plan, so that a resume on another scenario is refused.
    progress : callable, optional
        Called with each finished run's id.

    Returns
    -------
    dict
        ``plan``, ``dim``, ``rows`` (per N: each distance as (mean, standard error) over the R
        pairs, or over the 2R runs against the reference; ``final_loss``; ``density``),
        ``rates`` (:func:`fit_rate` of each distance; the reference's only for
        N <= reference_n / 4, before it meets the reference's own error) and ``expected_slope``.
        Also written to the file's ``results`` attribute.
    """
    import h5py

    scaling = getattr(resolved.kernel, "scaling", None)
    if scaling != "mean_field":
        raise ValueError(
            f"kernel.scaling = {scaling!r}: expected "
            '"mean_field" (the infinite-width limit needs the 1/N output scaling)'
        )
    sizes = sorted({int(n) for n in sizes})
    if not sizes or min(sizes) < 20:
        raise ValueError(f"sizes={sizes!r}: expected particle counts >= 20")
    if int(replicas) != replicas or replicas < 2:
        raise ValueError(f"replicas={replicas!r}: expected an integer >= 2 (pairs per N, for error bars)")
    reference_n = int(10 * sizes[-1] if reference_n is None else reference_n)
    if reference_n <= sizes[-1]:
        raise ValueError(
            f"reference_n={reference_n}: expected more particles than the largest size {sizes[-1]}"
        )
    steps = int(resolved.run.steps if steps is None else steps)
    raw = resolved.to_raw()  # data.seed stays the study's while init.seed varies
    plan = _plan(sizes, replicas, steps, reference_n, range(1, 2 * int(replicas) + 1))
    path = Path(out)
    _open_store(path, plan, scenario_text)
    _execute(path, raw, plan, client, progress or (lambda rid: None))
    results = _analyse(path, raw, plan, exact_max, n_projections, density)
    with h5py.File(path, "a") as f:
        f.attrs["results"] = json.dumps(_plain(results))
    return results


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(u) for u in v]
    if isinstance(v, dict):
        return {k: _plain(u) for k, u in v.items()}
    return v


def plot_width_study(results: dict, out) -> Path:
    """Three panels into a PNG: distance between replicas, distance to the reference (both with
    error bars over the replicas, sliced and exact, with the fitted slopes), the density check."""
    from matplotlib.figure import Figure

    out = Path(out)
    rows, rates, dim = results["rows"], results["rates"], results["dim"]
    sizes = np.array([r["n"] for r in rows], dtype=float)
    fig = Figure(figsize=(15, 4.4), dpi=110)
    ax_rep, ax_ref, ax_den = fig.subplots(1, 3)
    styles = {"sliced": ("o", "tab:blue"), "exact": ("s", "tab:red")}
    for ax, prefix in ((ax_rep, "replicas"), (ax_ref, "reference")):
        for when, line in (("initial", "--"), ("final", "-")):
            for kind, (marker, colour) in styles.items():
                key = f"{prefix}_{when}_{kind}"
                mean = np.array([r[key][0] for r in rows], dtype=float)
                se = np.array([r[key][1] for r in rows], dtype=float)
                if not np.isfinite(mean).any():
                    continue
                rate = rates.get(key, {})
                slope = (
                    f", slope {rate['slope']:.2f} ± {rate['slope_se']:.2f}"
                    if rate and np.isfinite(rate.get("slope", np.nan))
                    else ""
                )
                ax.errorbar(
                    sizes,
                    mean,
                    yerr=np.nan_to_num(se),
                    fmt=marker + line,
                    color=colour,
                    alpha=1.0 if when == "final" else 0.5,
                    capsize=3,
                    label=f"{kind}, {when}{slope}",
                )
        anchor = rows[0][f"{prefix}_initial_sliced"][0]
        ax.plot(sizes, anchor * (sizes / sizes[0]) ** -0.5, ":", color="0.4", label="N^(-1/2)")
        if dim >= 3:
            ax.plot(
                sizes, anchor * (sizes / sizes[0]) ** (-1 / dim), "-.", color="0.6", label=f"N^(-1/{dim})"
            )
        ax.set(xscale="log", yscale="log", xlabel="N", ylabel="W2")
        ax.legend(fontsize=7)
    R, ref = results["plan"]["replicas"], results["plan"]["reference_n"]
    ax_rep.set_title(f"between replicas ({R} pairs per N, mean ± s.e.)", fontsize=9)
    ax_ref.set_title(f"to the reference run (N = {ref:,}; {2 * R} runs per N)", fontsize=9)
    if all("density" in r for r in rows):
        worst = [r["density"]["worst_bin"] for r in rows]
        median = [abs(r["density"]["median_residual"]) for r in rows]
        logdet = [r["density"]["mean_abs_log_det"] for r in rows]
        ax_den.plot(sizes, worst, "o-", label="largest |slab median| of the residual")
        ax_den.plot(sizes, median, "s--", label="|median residual|")
        ax_den.plot(sizes, logdet, "^:", color="0.4", label="mean |log det Df| (what a wrong J would miss)")
        ax_den.axhline(rows[0]["density"]["tol"], color="tab:red", lw=1, label="tolerance")
        ax_den.set(xscale="log", yscale="log", xlabel="N", ylabel="log-density residual")
        ax_den.legend(fontsize=7)
    ax_den.set_title("Theorem 3: p1(f(x)) |det Df(x)| = p0(x), first GD step", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def width_main(argv=None, prog: str = "python -m particledyn.sweep.width") -> int:
    """``particledyn width SCENARIO.toml --sizes 100 1000 ... [--replicas R] [--reference-n M]
    [--workers W | --address ADDR | --serial] [--out DIR]``: writes ``width_study.h5`` (runs and
    results; a rerun resumes) and ``width_study.png`` into DIR and prints the table; a bad
    scenario or plan is a one-line error with exit status 2."""
    import argparse
    import sys

    from ..scenario import load_scenario
    from ..scenario.checks import ScenarioError
    from .cluster import open_client
    from .grid import ClusterSpec, SweepError

    parser = argparse.ArgumentParser(
        prog=prog, description="Infinite-width convergence study of a mean-field scenario."
    )
    parser.add_argument("scenario", metavar="SCENARIO.toml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000, 10_000])
    parser.add_argument("--replicas", type=int, default=4, help="replica pairs per N (default 4)")
    parser.add_argument("--reference-n", type=int, help="N of the reference run (default 10 x the largest)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--exact-max", type=int, default=5000)
    parser.add_argument("--projections", type=int, default=100)
    parser.add_argument("--no-density", action="store_true", help="skip Theorem 3's density check")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    where.add_argument("--address", help="a running Dask scheduler")
    where.add_argument("--serial", action="store_true", help="run in this process, no Dask")
    parser.add_argument("--out", default="width_study")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        scenario = load_scenario(args.scenario)
        options = dict(
            replicas=args.replicas,
            reference_n=args.reference_n,
            steps=args.steps,
            out=out / "width_study.h5",
            exact_max=args.exact_max,
            n_projections=args.projections,
            density=not args.no_density,
            scenario_text=scenario.text,
            progress=lambda rid: print(f"ran {rid}", flush=True),
        )
        if args.serial:
            results = width_study(scenario.resolved, args.sizes, **options)
        else:
            spec = ClusterSpec(address=args.address or "", workers=args.workers)
            with open_client(spec) as client:
                results = width_study(scenario.resolved, args.sizes, client=client, **options)
    except (ScenarioError, SweepError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    plot_width_study(results, out / "width_study.png")
    for row in results["rows"]:
        rep, ref = row["replicas_final_sliced"], row["reference_final_sliced"]
        exact = row["replicas_final_exact"]
        density = row.get("density")
        print(
            f"N={row['n']}: replicas end sliced {rep[0]:.4g} ± {rep[1]:.2g}, exact "
            f"{exact[0]:.4g} ± {exact[1]:.2g}; to reference sliced {ref[0]:.4g} ± {ref[1]:.2g}"
            + (
                f"; density residual {density['worst_bin']:.3g} (tol {density['tol']:g}, "
                f"{'VIOLATED' if density['violated'] else 'ok'})"
                if density
                else ""
            )
        )
    for key, rate in results["rates"].items():
        print(f"rate {key}: N^{rate['slope']:.3f} ± {rate['slope_se']:.3f} over {rate['n_points']} sizes")
    print(f"wrote {out / 'width_study.h5'} and {out / 'width_study.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(width_main())
