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
    # pack = "seed"                  # run the seeds (or "lr": the rates) of each grid point as
                                     # one ensemble (particledyn.Ensemble: one fused step, one
                                     # file per pack); each replica is still its own table row,
                                     # bit-identical to the run unpacked (particledyn.sweep.pack)
    [sweep.set]                      # dotted overrides of the base scenario
    "data.n" = 500

    [grid]
    lr_factor = [0.1, 0.5, 2.0]      # multiples of eta* = 1/K0 ...
    # lr = [0.01, 0.1]               # ... or absolute learning rates (exactly one of the two)
    seed = [0, 1]                    # run.seed (default [base's]); data and cloud seeds derive
                                     # from it unless the base scenario fixes them
    n = [64, 256]                    # init.n (default [base's])
    "optimizer.name" = ["gd", "adam"]  # any other scenario key, quoted and dotted: one more axis

    # [bisect]         # instead of grid.lr / lr_factor: per grid point, the smallest eta / eta*
    # event = "merge"  # in [lo, hi] at which merge, betti_change, change (either), diverged,
    #                  # exact_merge or persistent_betti (particledyn.sweep.onset) happens (an
    #                  # array of them brackets each),
    # lo = 0.1         # bracketed by `iterations` geometric bisection steps
    # hi = 10.0        # (see particledyn.sweep.bisect)
    # iterations = 6

    [sharpness]
    every = 1        # add a sharpness observer (K along training) when the base has none; 0: no
    tol = 1e-6       # Ritz-residual tolerance of the K0 measurement

    [cluster]
    address = ""     # a running Dask scheduler ("tcp://host:8786"); empty: a LocalCluster
    workers = 2      # LocalCluster worker processes
    threads_per_worker = 1
    # jobqueue = "slurm"   # or pbs, sge, lsf, htcondor, oar, moab: workers as batch jobs
    # jobs = 4             # (dask-jobqueue); see docs/cluster.md
    # options = { queue = "short", cores = 2, memory = "8GB", walltime = "01:00:00" }
    no_worker_timeout = 120   # seconds with no worker left before the sweep stops (exit 1)

K0 is lambda_max of the loss Hessian at the initial state (Lanczos on the
kernel's exact Hessian-vector products, full training set), measured once per
grid point (seed, N and the values of the other axes) and cached in ``<out>/K0.json``;
the measured eta* = 1/K0 sets the learning rates of ``lr_factor`` and the eta/eta* axis
of the phase diagram.

A grid point is the tuple ``(seed, n, *axis_values)`` (None: the base scenario's value),
in the order of :func:`grid_points`; the runs of a sweep are numbered in the order of
:func:`expand_runs`, which is what ``--shard`` and ``--index`` select from.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..scenario.resolved import ResolvedScenario

__all__ = [
    "SweepError",
    "SweepSpec",
    "RunSpec",
    "parse_sweep",
    "load_sweep",
    "base_raw",
    "run_scenario",
    "expand_runs",
    "measure_K0",
    "K0_fingerprint",
    "grid_points",
    "point_overrides",
    "point_run_ids",
    "run_ids",
    "run_overrides",
    "base_scenario_text",
]

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")
# set by the sweep itself, never by sweep.set or a grid axis
_SWEEP_KEYS = ("schedule.lr", "run.seed", "init.n", "run.steps", "run.threads", "run.name", "output.path")


class SweepError(ValueError):
    """A sweep file is malformed (one-line message naming the key)."""


JOBQUEUES = ("slurm", "pbs", "sge", "lsf", "htcondor", "oar", "moab", "local")


@dataclass(frozen=True)
class ClusterSpec:
    """Where the runs go: a running scheduler's ``address``, batch jobs of a ``jobqueue``
    (dask-jobqueue; ``local`` runs its job scripts as local processes), or a LocalCluster."""

    address: str = ""
    workers: int = 2
    threads_per_worker: int = 1
    jobqueue: str = ""
    jobs: int = 1
    options: dict = field(default_factory=dict)
    no_worker_timeout: float = 120.0


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
    axes: tuple[tuple[str, tuple], ...] = ()
    bisect: BisectSpec | None = None
    pack: str = ""

    def rates(self) -> tuple[float, ...]:
        """The grid's rates as written: ``lr_factor`` (multiples of eta*) if set, else ``lr``."""
        if self.lr_factor is not None:
            return self.lr_factor
        if self.lr is None:
            raise SweepError(f"{self.source}: grid has neither lr nor lr_factor")
        return self.lr

    def bisection(self) -> BisectSpec:
        """The ``[bisect]`` table of a bisection sweep (SweepError for a plain grid)."""
        if self.bisect is None:
            raise SweepError(f"{self.source}: expected a [bisect] table, this sweep is a plain grid")
        return self.bisect


EVENTS = ("merge", "betti_change", "change", "diverged", "exact_merge", "persistent_betti")


@dataclass(frozen=True)
class BisectSpec:
    """``[bisect]``: per grid point, the smallest eta / eta* in ``[lo, hi]`` at which ``event``
    happens, bracketed by ``iterations`` geometric bisection steps. ``event`` may name several
    events (bracketed together, every run informing each bracket); ``events`` lists them."""

    event: str | tuple
    lo: float
    hi: float
    iterations: int

    @property
    def events(self) -> tuple[str, ...]:
        return (self.event,) if isinstance(self.event, str) else tuple(self.event)


def _parse_bisect(table) -> BisectSpec:
    if not isinstance(table, dict):
        raise SweepError(f"bisect = {table!r}: expected a table (event, lo, hi, iterations)")
    _check_keys(table, ("event", "lo", "hi", "iterations"), "bisect")
    event = table.get("event", "change")
    names = event if isinstance(event, list) and event else [event]
    if any(not isinstance(e, str) or e not in EVENTS for e in names) or len(set(names)) != len(names):
        raise SweepError(
            f"bisect.event = {event!r}: expected one of {', '.join(EVENTS)}, or an array of distinct ones"
        )
    event = event if isinstance(event, str) else tuple(event)
    bounds = []
    for key, default in (("lo", 0.1), ("hi", 10.0)):
        value = table.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value > 0)
        ):
            raise SweepError(f"bisect.{key} = {value!r}: expected a finite multiple of eta* > 0")
        bounds.append(float(value))
    if not bounds[0] < bounds[1]:
        raise SweepError(f"bisect.lo = {bounds[0]!r}, bisect.hi = {bounds[1]!r}: expected lo < hi")
    return BisectSpec(event, bounds[0], bounds[1], _int(table.get("iterations", 6), "bisect.iterations", 1))


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
    resolved: ResolvedScenario
    text: str
    source: str
    axes: tuple[tuple[str, object], ...] = ()
    point: tuple = ()  # the grid point, as grid_points lists it (the K0 key)
    replica: int = -1  # in a packed sweep, the run's replica in the ensemble file ``path``


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
    out: list[int | float] = []
    for i, item in enumerate(value):
        if kind is int:
            out.append(_int(item, f"{where}[{i}]", 0 if where.endswith("seed") else 1))
        else:
            if (
                isinstance(item, bool)
                or not isinstance(item, (int, float))
                or not (math.isfinite(item) and item > 0)
            ):
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
    _check_keys(raw, ("sweep", "grid", "sharpness", "cluster", "bisect"), "sweep file")
    sweep = raw.get("sweep", {})
    grid = raw.get("grid")
    if not isinstance(grid, dict):
        raise SweepError(f"{source}: missing [grid] table (lr or lr_factor, seed, n)")
    _check_keys(sweep, ("name", "base", "out", "steps", "threads", "plot", "set", "pack"), "sweep")
    _check_keys(grid, ("lr", "lr_factor", "seed", "n") + tuple(k for k in grid if "." in k), "grid")
    name = sweep.get("name", Path(source).stem if source != "<string>" else "sweep")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SweepError(f"sweep.name = {name!r}: expected a name of letters, digits and _ . + -")
    base = sweep.get("base", "default")
    if not isinstance(base, str) or not base:
        raise SweepError(f'sweep.base = {base!r}: expected "default" or a scenario path')
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
        raise SweepError(f'sweep.set = {overrides!r}: expected a table of "section.key" = value')
    for key in overrides:
        if key.count(".") != 1:
            raise SweepError(f'sweep.set.{key}: expected a dotted key "section.key"')
        if key in _SWEEP_KEYS:
            raise SweepError(f"sweep.set.{key}: set by the sweep itself; use [grid] or sweep.steps/threads")
    bisect = _parse_bisect(raw["bisect"]) if "bisect" in raw else None
    if bisect is not None:
        if "lr" in grid or "lr_factor" in grid:
            raise SweepError(
                "grid: a [bisect] sweep chooses its own rates; expected no grid.lr or grid.lr_factor"
            )
        grid = dict(grid, lr_factor=[bisect.lo, bisect.hi])
    if ("lr" in grid) == ("lr_factor" in grid):
        raise SweepError(
            "grid: expected exactly one of lr (absolute) and lr_factor (multiples of eta* = 1/K0)"
        )
    lr = _positive_list(grid["lr"], "grid.lr") if "lr" in grid else None
    factors = _positive_list(grid["lr_factor"], "grid.lr_factor") if "lr_factor" in grid else None
    seeds = _positive_list(grid["seed"], "grid.seed", int) if "seed" in grid else (None,)
    sizes = _positive_list(grid["n"], "grid.n", int) if "n" in grid else (None,)
    axes = tuple((key, _axis_values(grid[key], f"grid.{key}")) for key in grid if "." in key)
    plot = sweep.get("plot", True)
    if not isinstance(plot, bool):
        raise SweepError(f"sweep.plot = {plot!r}: expected true or false")
    pack = sweep.get("pack", "none")
    packed = {"seed": len(seeds) if seeds != (None,) else 1, "lr": len(lr or factors or ())}
    if pack != "none" and (pack not in packed or bisect is not None):
        raise SweepError(f'sweep.pack = {pack!r}: expected "seed", "lr" or "none" (and no [bisect])')
    if pack != "none" and packed[pack] < 2:
        raise SweepError(f'sweep.pack = "{pack}": expected at least 2 values of grid.{pack} to pack')
    sharp = raw.get("sharpness", {})
    _check_keys(sharp, ("every", "tol"), "sharpness")
    tol = sharp.get("tol", 1e-6)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise SweepError(f"sharpness.tol = {tol!r}: expected a number in (0, 1)")
    cluster = raw.get("cluster", {})
    _check_keys(
        cluster,
        ("address", "workers", "threads_per_worker", "jobqueue", "jobs", "options", "no_worker_timeout"),
        "cluster",
    )
    address = cluster.get("address", "")
    if not isinstance(address, str):
        raise SweepError(f"cluster.address = {address!r}: expected a scheduler address string")
    jobqueue = cluster.get("jobqueue", "")
    if jobqueue not in ("",) + JOBQUEUES:
        raise SweepError(f"cluster.jobqueue = {jobqueue!r}: expected one of {', '.join(JOBQUEUES)}")
    if jobqueue and address:
        raise SweepError("cluster: expected at most one of address and jobqueue")
    options = cluster.get("options", {})
    if not isinstance(options, dict):
        raise SweepError(f"cluster.options = {options!r}: expected a table of dask-jobqueue arguments")
    patience = cluster.get("no_worker_timeout", 120)
    if isinstance(patience, bool) or not isinstance(patience, (int, float)) or not patience > 0:
        raise SweepError(f"cluster.no_worker_timeout = {patience!r}: expected a number of seconds > 0")
    spec = SweepSpec(
        name=name,
        source=source,
        base=base_source,
        base_text=base_text,
        out=Path(out),
        lr=lr,
        lr_factor=factors,
        seeds=seeds,
        sizes=sizes,
        steps=_int(sweep["steps"], "sweep.steps") if "steps" in sweep else None,
        threads=_int(sweep.get("threads", 1), "sweep.threads", 1),
        plot=plot,
        overrides=dict(overrides),
        sharpness_every=_int(sharp.get("every", 1), "sharpness.every"),
        sharpness_tol=float(tol),
        cluster=ClusterSpec(
            address,
            _int(cluster.get("workers", 2), "cluster.workers", 1),
            _int(cluster.get("threads_per_worker", 1), "cluster.threads_per_worker", 1),
            jobqueue,
            _int(cluster.get("jobs", 1), "cluster.jobs", 1),
            dict(options),
            float(patience),
        ),
        axes=axes,
        bisect=bisect,
        pack="" if pack == "none" else pack,
    )
    # validate the base with the grid's first point, and every value of every other axis, now:
    # a bad base or axis value fails before any launch
    first = grid_points(spec)[0]
    run_scenario(spec, first, 1.0)
    for i, (_, values) in enumerate(axes):
        for value in values[1:]:
            run_scenario(spec, first[: 2 + i] + (value,) + first[3 + i :], 1.0)
    return spec


def _axis_values(value, where: str) -> tuple:
    """The values of a grid axis over a scenario key: a non-empty array of distinct scalars."""
    if not isinstance(value, list) or not value:
        raise SweepError(f"{where} = {value!r}: expected a non-empty array of values")
    key = where.removeprefix("grid.")
    if key in _SWEEP_KEYS:
        raise SweepError(f"{where}: set by the sweep itself; use grid.lr / lr_factor, seed or n")
    if key.count(".") != 1:
        raise SweepError(f'{where}: expected a dotted key "section.key"')
    for i, item in enumerate(value):
        if not isinstance(item, (str, int, float, bool)):
            raise SweepError(f"{where}[{i}] = {item!r}: expected a string, number or boolean")
    if len({repr(v) for v in value}) != len(value):
        raise SweepError(f"{where} = {value!r}: expected distinct values")
    return tuple(value)


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
    if spec.sharpness_every and not any(
        o.get("type") == "sharpness" for o in observers if isinstance(o, dict)
    ):
        observers.append({"type": "sharpness", "every": spec.sharpness_every})
    raw["observers"] = observers
    return raw


def base_scenario_text(spec: SweepSpec) -> str:
    """TOML text whose parse is :func:`base_raw` (the base's text, with the sharpness observer
    appended when the sweep adds one): the scenario text an ensemble of the sweep's runs stores.

    Raises
    ------
    SweepError
        The base's text cannot take the appended observer (it writes ``observers = [...]``).
    """
    from ..scenario import ScenarioError, parse_toml

    raw, text = base_raw(spec), spec.base_text
    if raw["observers"] != parse_toml(text, spec.base).get("observers", []):
        text = f'{text.rstrip()}\n\n[[observers]]\ntype = "sharpness"\nevery = {spec.sharpness_every}\n'
    try:
        same = parse_toml(text, spec.base) == raw
    except ScenarioError:
        same = False
    if not same:
        raise SweepError(
            f"sweep.pack: base scenario {spec.base}: cannot append the sharpness observer to its "
            "text; expected [[observers]] tables (or [sharpness] every = 0)"
        )
    return text


def point_overrides(spec: SweepSpec, point: tuple) -> dict:
    """The dotted overrides a grid point ``(seed, n, *axis_values)`` sets (None: not set)."""
    seed, n, values = point[0], point[1], point[2:]
    overrides = {key: value for (key, _), value in zip(spec.axes, values)}
    if seed is not None:
        overrides["run.seed"] = seed
    if n is not None:
        overrides["init.n"] = n
    return overrides


def run_scenario(spec: SweepSpec, point: tuple, lr: float, extra: dict | None = None) -> ResolvedScenario:
    """The resolved scenario of one grid point (base + ``sweep.set`` + grid values).

    Parameters
    ----------
    spec : SweepSpec
    point : tuple
        ``(seed, n, *axis_values)``, as :func:`grid_points` lists them.
    lr : float
    extra : dict, optional
        Further dotted overrides.

    Raises
    ------
    SweepError
        The base scenario rejects a value (the message names the scenario key).
    """
    from ..scenario import validate_scenario
    from ..scenario.checks import ScenarioError

    try:
        return validate_scenario(base_raw(spec), run_overrides(spec, point, lr, extra))
    except ScenarioError as exc:
        raise SweepError(f"{spec.source}: base scenario {spec.base}: {exc}") from None


def run_overrides(spec: SweepSpec, point: tuple, lr: float, extra: dict | None = None) -> dict:
    """The dotted overrides of :func:`base_raw` that make one run's scenario (see :func:`run_scenario`)."""
    overrides = dict(spec.overrides)
    overrides.update({"schedule.lr": lr, "run.threads": spec.threads})
    overrides.update(point_overrides(spec, point))
    if spec.steps is not None:
        overrides["run.steps"] = spec.steps
    overrides.update(extra or {})
    return overrides


def K0_fingerprint(resolved: ResolvedScenario) -> str:
    """A hash of everything in a resolved scenario that can change K0 (not lr, steps, output, observers)."""
    record = resolved.to_dict()
    keep = {k: v for k, v in record.items() if k not in ("output", "observers", "schedule")}
    keep["run"] = {"seed": resolved.run.seed, "dtype": resolved.run.dtype}
    text = json.dumps(keep, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def measure_K0(resolved: ResolvedScenario, tol: float = 1e-6) -> float:
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
    result = top_eigenpairs(
        lambda v: kernel.hvp(x, masses, context, v.reshape(x.shape)).ravel(),
        x.size,
        tol=tol,
        seed=int(resolved.run.seed),
    )
    if not (math.isfinite(result.lambda_max) and result.lambda_max > 0):
        raise ValueError(
            f"lambda_max = {result.lambda_max!r} at the initial state: expected > 0 (no eta* = 1/K)"
        )
    return float(result.lambda_max)


def grid_points(spec: SweepSpec) -> list[tuple]:
    """The points ``(seed, n, *axis_values)`` of the grid, in order (None: the base's value):
    by N, then the other axes in the file's order, then seed."""
    import itertools

    points = []
    for n in spec.sizes:
        for values in itertools.product(*(v for _, v in spec.axes)):
            points += [(seed, n, *values) for seed in spec.seeds]
    return points


def _label(x) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return _UNSAFE.sub("_", str(x).lower() if isinstance(x, bool) else str(x))


def _rate_tags(spec: SweepSpec) -> list[str]:
    if spec.lr_factor is not None:
        return [f"x{_label(f)}" for f in spec.lr_factor]
    return [f"lr{_label(lr)}" for lr in spec.rates()]


def _point_id(spec: SweepSpec, point: tuple) -> str:
    probe = run_scenario(spec, point, 1.0)
    axes = "".join(f"_{key}-{_label(value)}" for (key, _), value in zip(spec.axes, point[2:]))
    return f"n{getattr(probe.init, 'n', None)}_seed{probe.run.seed}{axes}"


def point_run_ids(spec: SweepSpec, point: tuple) -> list[str]:
    """The run ids of one grid point, one per rate (no K0 needed)."""
    point_id = _point_id(spec, point)
    return [f"{point_id}_{tag}" for tag in _rate_tags(spec)]


def run_ids(spec: SweepSpec) -> list[str]:
    """The run ids of the sweep in run order (no K0 needed: the index ``--shard``/``--index`` use)."""
    return [run_id for point in grid_points(spec) for run_id in point_run_ids(spec, point)]


def expand_runs(spec: SweepSpec, K0: dict[tuple, float], out: Path | None = None) -> list[RunSpec]:
    """Every run of the sweep, ordered by N, seed, then learning rate.

    Parameters
    ----------
    spec : SweepSpec
    K0 : dict
        ``{point: K0}`` for every grid point (see :func:`grid_points`, :func:`measure_K0`).
    out : Path, optional
        Output folder (default ``spec.out``); run files go to ``<out>/runs/<run_id>.h5``.
    """
    out = Path(out if out is not None else spec.out)
    runs = []
    for point in grid_points(spec):
        if point not in K0:
            continue
        k0 = K0[point]
        probe = run_scenario(spec, point, 1.0)
        real_seed, real_n = probe.run.seed, getattr(probe.init, "n", None)
        if spec.lr_factor is not None:
            rates = [(f / k0, f) for f in spec.lr_factor]
        else:
            rates = [(lr, lr * k0) for lr in spec.rates()]
        axes = tuple((key, value) for (key, _), value in zip(spec.axes, point[2:]))
        for (lr, factor), run_id in zip(rates, point_run_ids(spec, point)):
            path = str(out / "runs" / f"{run_id}.h5")
            resolved = run_scenario(spec, point, lr, {"run.name": run_id, "output.path": path})
            set_axes = "".join(f", {key} = {value!r}" for key, value in axes)
            source = (
                f"sweep {spec.name} ({spec.source}), run {run_id}: base {spec.base} with "
                f"schedule.lr = {lr!r}, run.seed = {real_seed}, init.n = {real_n}{set_axes}"
            )
            runs.append(
                RunSpec(
                    run_id,
                    path,
                    int(real_seed),
                    int(real_n or 0),
                    float(lr),
                    float(factor),
                    float(k0),
                    resolved,
                    spec.base_text,
                    source,
                    axes,
                    point,
                )
            )
    return runs
