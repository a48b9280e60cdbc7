"""SWEEP.toml: a grid over learning rate, seed and N for a base scenario, expanded into runs.

A sweep file::

    [sweep]
    name = "teacher_student_phase"   # letters, digits and _ . + -
    base = "default"                 # the base scenario: "default" (built in) or a path,
                                     # relative to this file
    out = "teacher_student_phase"    # output folder, relative to the working directory
                                     # (default: the name)
    steps = 40                       # run.steps of every run (default: the base's)
    threads = 1                      # numba threads of each run (run.threads)
    plot = true                      # write the phase diagram PNG
    [sweep.set]                      # dotted overrides of the base scenario
    "data.n" = 500

    [grid]
    lr_factor = [0.1, 0.5, 2.0]      # multiples of eta* = 1/K0 ...
    # lr = [0.01, 0.1]               # ... or absolute learning rates (exactly one of the two)
    seed = [0, 1]                    # run.seed (default [base's]); data and cloud seeds derive
                                     # from it unless the base scenario fixes them
    n = [64, 256]                    # init.n (default [base's])

    [sharpness]
    every = 1        # add a sharpness observer (K along training) when the base has none; 0: no
    tol = 1e-6       # Ritz-residual tolerance of the K0 measurement

    [cluster]
    address = ""     # a running Dask scheduler ("tcp://host:8786"); empty: a LocalCluster
    workers = 2      # LocalCluster worker processes
    threads_per_worker = 1

K0 is lambda_max of the loss Hessian at the initial state (Lanczos on the
kernel's exact Hessian-vector products, full training set), measured once per
(seed, N) and cached in ``<out>/K0.json``; the measured eta* = 1/K0 sets the
learning rates of ``lr_factor`` and the eta/eta* axis of the phase diagram.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SweepError", "SweepSpec", "RunSpec", "parse_sweep", "load_sweep", "base_raw",
           "run_scenario", "expand_runs", "measure_K0", "K0_fingerprint"]

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class SweepError(ValueError):
    """A sweep file is malformed (one-line message naming the key)."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where the runs go: a running scheduler's ``address``, or a LocalCluster."""

    address: str = ""
    workers: int = 2
    threads_per_worker: int = 1


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file (see the module docstring for the keys)."""

    name: str
    source: str
    base: str
    base_text: str
    out: Path
    lr: tuple[float, ...] | None
    lr_factor: tuple[float, ...] | None
    seeds: tuple[int | None, ...]
    sizes: tuple[int | None, ...]
    steps: int | None = None
    threads: int = 1
    plot: bool = True
    overrides: dict = field(default_factory=dict)
    sharpness_every: int = 1
    sharpness_tol: float = 1e-6
    cluster: ClusterSpec = ClusterSpec()


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its grid point, learning rate and the resolved scenario it runs."""

    run_id: str
    path: str
    seed: int
    n: int
    lr: float
    lr_factor: float
    K0: float
    resolved: dict
    text: str
    source: str


# ---------------------------------------------------------------- parsing
def _check_keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SweepError(f"{where}.{key}: unknown key; expected one of {', '.join(allowed)}")


def _int(value, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SweepError(f"{where} = {value!r}: expected an integer >= {low}")
    return int(value)


def _positive_list(value, where: str, kind=float) -> tuple:
    if not isinstance(value, list) or not value:
        raise SweepError(f"{where} = {value!r}: expected a non-empty array")
    out = []
    for i, item in enumerate(value):
        if kind is int:
            out.append(_int(item, f"{where}[{i}]", 0 if where.endswith("seed") else 1))
        else:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not (
                    math.isfinite(item) and item > 0):
                raise SweepError(f"{where}[{i}] = {item!r}: expected a finite number > 0")
            out.append(float(item))
    if len(set(out)) != len(out):
        raise SweepError(f"{where} = {value!r}: expected distinct values")
    return tuple(out)


def parse_sweep(text: str, source: str = "<string>", base_dir: Path | str = ".") -> SweepSpec:
    """Parse and validate the TOML text of a sweep file.

    Parameters
    ----------
    text : str
    source : str
        Where it came from (for messages and run metadata).
    base_dir : path
        Folder against which a relative ``sweep.base`` is read.

    Raises
    ------
    SweepError
        One line naming the bad key and what was expected.
    """
    from ..scenario import ScenarioError, default_scenario_text, parse_toml

    try:
        raw = parse_toml(text, source)
    except ScenarioError as exc:
        raise SweepError(str(exc)) from None
    _check_keys(raw, ("sweep", "grid", "sharpness", "cluster"), "sweep file")
    sweep = raw.get("sweep", {})
    grid = raw.get("grid")
    if not isinstance(grid, dict):
        raise SweepError(f"{source}: missing [grid] table (lr or lr_factor, seed, n)")
    _check_keys(sweep, ("name", "base", "out", "steps", "threads", "plot", "set"), "sweep")
    _check_keys(grid, ("lr", "lr_factor", "seed", "n"), "grid")
    name = sweep.get("name", Path(source).stem if source != "<string>" else "sweep")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SweepError(f"sweep.name = {name!r}: expected a name of letters, digits and _ . + -")
    base = sweep.get("base", "default")
    if not isinstance(base, str) or not base:
        raise SweepError(f"sweep.base = {base!r}: expected \"default\" or a scenario path")
    if base == "default":
        base_text, base_source = default_scenario_text(), "<default>"
    else:
        path = Path(base_dir) / base
        try:
            base_text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SweepError(f"sweep.base = {base!r}: cannot read {str(path)!r}: {exc}") from None
        base_source = str(path)
    out = sweep.get("out", name)
    if not isinstance(out, str) or not out:
        raise SweepError(f"sweep.out = {out!r}: expected a folder path")
    overrides = sweep.get("set", {})
    if not isinstance(overrides, dict):
        raise SweepError(f"sweep.set = {overrides!r}: expected a table of \"section.key\" = value")
    for key in overrides:
        if key.count(".") != 1:
            raise SweepError(f"sweep.set.{key}: expected a dotted key \"section.key\"")
        if key in ("schedule.lr", "run.seed", "init.n", "run.steps", "run.threads"):
            raise SweepError(f"sweep.set.{key}: set by the sweep itself; use [grid] or sweep.steps/threads")
    if ("lr" in grid) == ("lr_factor" in grid):
        raise SweepError("grid: expected exactly one of lr (absolute) and lr_factor (multiples of eta* = 1/K0)")
    lr = _positive_list(grid["lr"], "grid.lr") if "lr" in grid else None
    factors = _positive_list(grid["lr_factor"], "grid.lr_factor") if "lr_factor" in grid else None
    seeds = _positive_list(grid["seed"], "grid.seed", int) if "seed" in grid else (None,)
    sizes = _positive_list(grid["n"], "grid.n", int) if "n" in grid else (None,)
    plot = sweep.get("plot", True)
    if not isinstance(plot, bool):
        raise SweepError(f"sweep.plot = {plot!r}: expected true or false")
    sharp = raw.get("sharpness", {})
    _check_keys(sharp, ("every", "tol"), "sharpness")
    tol = sharp.get("tol", 1e-6)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise SweepError(f"sharpness.tol = {tol!r}: expected a number in (0, 1)")
    cluster = raw.get("cluster", {})
    _check_keys(cluster, ("address", "workers", "threads_per_worker"), "cluster")
    address = cluster.get("address", "")
    if not isinstance(address, str):
        raise SweepError(f"cluster.address = {address!r}: expected a scheduler address string")
    spec = SweepSpec(
        name=name, source=source, base=base_source, base_text=base_text, out=Path(out),
        lr=lr, lr_factor=factors, seeds=seeds, sizes=sizes,
        steps=_int(sweep["steps"], "sweep.steps") if "steps" in sweep else None,
        threads=_int(sweep.get("threads", 1), "sweep.threads", 1), plot=plot,
        overrides=dict(overrides), sharpness_every=_int(sharp.get("every", 1), "sharpness.every"),
        sharpness_tol=float(tol),
        cluster=ClusterSpec(address, _int(cluster.get("workers", 2), "cluster.workers", 1),
                            _int(cluster.get("threads_per_worker", 1), "cluster.threads_per_worker", 1)))
    # validate the base with the grid's first point now: a bad base fails before any launch
    run_scenario(spec, spec.seeds[0], spec.sizes[0], 1.0)
    return spec


def load_sweep(path) -> SweepSpec:
    """Read and validate a sweep file; a relative ``sweep.base`` is read beside it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"cannot read sweep file {str(path)!r}: {exc}") from None
    return parse_sweep(text, str(path), path.parent)


# ---------------------------------------------------------------- runs
def base_raw(spec: SweepSpec) -> dict:
    """The base scenario as parsed TOML, with a sharpness observer added when asked and missing."""
    from ..scenario import parse_toml

    raw = parse_toml(spec.base_text, spec.base)  # ScenarioError, made a SweepError by run_scenario
    observers = list(raw.get("observers", []))
    if spec.sharpness_every and not any(o.get("type") == "sharpness" for o in observers
                                        if isinstance(o, dict)):
        observers.append({"type": "sharpness", "every": spec.sharpness_every})
    raw["observers"] = observers
    return raw


def run_scenario(spec: SweepSpec, seed: int | None, n: int | None, lr: float,
                 extra: dict | None = None) -> dict:
    """The resolved scenario of one grid point (base + ``sweep.set`` + grid values).

    Raises
    ------
    SweepError
        The base scenario rejects a value (the message names the scenario key).
    """
    from ..config.checks import ScenarioError
    from ..scenario import validate_scenario

    overrides = dict(spec.overrides)
    overrides.update({"schedule.lr": lr, "run.threads": spec.threads})
    if seed is not None:
        overrides["run.seed"] = seed
    if n is not None:
        overrides["init.n"] = n
    if spec.steps is not None:
        overrides["run.steps"] = spec.steps
    overrides.update(extra or {})
    try:
        return validate_scenario(base_raw(spec), overrides)
    except ScenarioError as exc:
        raise SweepError(f"{spec.source}: base scenario {spec.base}: {exc}") from None


def K0_fingerprint(resolved: dict) -> str:
    """A hash of everything in a resolved scenario that can change K0 (not lr, steps, output, observers)."""
    keep = {k: v for k, v in resolved.items() if k not in ("output", "observers", "schedule")}
    keep["run"] = {k: v for k, v in resolved["run"].items() if k in ("seed", "dtype")}
    text = json.dumps(keep, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def measure_K0(resolved: dict, tol: float = 1e-6) -> float:
    """lambda_max of the loss Hessian at the initial state of a resolved scenario.

    Lanczos (:func:`particledyn.geometry.sharpness.top_eigenpairs`) on the kernel's
    Hessian-vector products over its full training set (``evaluation_context``);
    for mean-field kernels the Hessian is in the mass metric, so K0 does not scale with N.

    Raises
    ------
    ValueError
        The kernel is not a gradient kernel, or lambda_max <= 0 (no eta* = 1/K).
    """
    import numpy as np

    from ..geometry.sharpness import top_eigenpairs
    from ..runner import prepare

    prepared = prepare(resolved)
    kernel = prepared.kernel
    if not getattr(kernel, "is_gradient", False):
        raise ValueError(f"kernel {kernel.name!r}: expected a gradient kernel to measure K0 = lambda_max")
    x = np.asarray(prepared.positions, dtype=np.float64)
    masses, context = prepared.masses, kernel.evaluation_context()
    result = top_eigenpairs(lambda v: kernel.hvp(x, masses, context, v.reshape(x.shape)).ravel(),
                            x.size, tol=tol, seed=int(resolved["run"]["seed"]))
    if not (math.isfinite(result.lambda_max) and result.lambda_max > 0):
        raise ValueError(f"lambda_max = {result.lambda_max!r} at the initial state: expected > 0 "
                         "(no eta* = 1/K)")
    return float(result.lambda_max)


def grid_points(spec: SweepSpec) -> list[tuple[int | None, int | None]]:
    """The (seed, N) pairs of the grid, in order (None: the base scenario's value)."""
    return [(seed, n) for n in spec.sizes for seed in spec.seeds]


def _label(x: float) -> str:
    return f"{x:.6g}"


def expand_runs(spec: SweepSpec, K0: dict[tuple, float], out: Path | None = None) -> list[RunSpec]:
    """Every run of the sweep, ordered by N, seed, then learning rate.

    Parameters
    ----------
    spec : SweepSpec
    K0 : dict
        ``{(seed, n): K0}`` for every grid point (see :func:`measure_K0`).
    out : Path, optional
        Output folder (default ``spec.out``); run files go to ``<out>/runs/<run_id>.h5``.
    """
    out = Path(out if out is not None else spec.out)
    runs = []
    for seed, n in grid_points(spec):
        k0 = K0[(seed, n)]
        probe = run_scenario(spec, seed, n, 1.0)
        real_seed, real_n = probe["run"]["seed"], probe["init"].get("n")
        if spec.lr_factor is not None:
            rates = [(f / k0, f) for f in spec.lr_factor]
        else:
            rates = [(lr, lr * k0) for lr in spec.lr]
        for lr, factor in rates:
            tag = f"x{_label(factor)}" if spec.lr_factor is not None else f"lr{_label(lr)}"
            run_id = f"n{real_n}_seed{real_seed}_{tag}"
            path = str(out / "runs" / f"{run_id}.h5")
            resolved = run_scenario(spec, seed, n, lr, {"run.name": run_id, "output.path": path})
            source = (f"sweep {spec.name} ({spec.source}), run {run_id}: base {spec.base} with "
                      f"schedule.lr = {lr!r}, run.seed = {real_seed}, init.n = {real_n}")
            runs.append(RunSpec(run_id, path, int(real_seed), int(real_n or 0), float(lr), float(factor),
                                float(k0), resolved, spec.base_text, source))
    return runs
