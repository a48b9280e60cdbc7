"""The scenario keys of an ensemble run: ``run.replicas``, ``run.replica_seeds``, ``run.replica_lrs``.

Replica r of a scenario with ``run.replicas = R`` is exactly the scenario run alone with
``run.seed = replica_seeds[r]`` (so also its data and initial cloud, where their seeds
derive from ``run.seed``) and ``schedule.lr = replica_lrs[r]``; the ensemble writes one
file (see :mod:`particledyn.ensemble.reader`).
"""

from __future__ import annotations

import math

from ..scenario.checks import OPTIONAL, Custom, Int, Invalid, Key, ScenarioError

MAX_REPLICAS = 4096


def _seeds(value):
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in value)
    ):
        raise Invalid("expected a non-empty array of integer seeds in [0, 2^63)")
    return [int(v) for v in value]


def _lrs(value):
    if (
        not isinstance(value, list)
        or not value
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)
            for v in value
        )
    ):
        raise Invalid("expected a non-empty array of positive finite learning rates")
    return [float(v) for v in value]


KEYS = (
    Key(
        "run.replicas",
        Int(1, MAX_REPLICAS),
        "Number of replicas R run together as one ensemble "
        "(one fused step, one file); replica r is this scenario run alone with run.seed = "
        "run.replica_seeds[r] and schedule.lr = run.replica_lrs[r].",
        1,
    ),
    Key(
        "run.replica_seeds",
        Custom("an array of R seeds", _seeds, "tuple[int, ...]"),
        "The replicas' run.seed (default: run.seed + r).",
        OPTIONAL,
    ),
    Key(
        "run.replica_lrs",
        Custom("an array of R learning rates", _lrs, "tuple[float, ...]"),
        "The replicas' schedule.lr (default: schedule.lr for all).",
        OPTIONAL,
    ),
)


def check_replicas(resolved) -> None:
    """Raise ScenarioError when the per-replica arrays do not have run.replicas entries, or an
    ensemble is asked of the GPU backend or of a subset of the particles."""
    run = resolved.run
    count = run.replicas
    for key in ("replica_seeds", "replica_lrs"):
        values = getattr(run, key)
        if values is not None and len(values) != count:
            raise ScenarioError(f"run.{key} with {len(values)} entries: expected run.replicas = {count}")
    if count > 1 and resolved.output.subset is not None:
        raise ScenarioError(
            f"output.subset with run.replicas = {count}: expected every particle written "
            "(an ensemble file holds whole replicas)"
        )
    if count > 1 and run.backend != "numba":
        raise ScenarioError(
            f'run.replicas = {count}: expected run.backend = "numba" (ensembles run on '
            f'the CPU), got "{run.backend}"'
        )


def replica_scenarios(raw: dict, overrides: dict, resolved) -> list[tuple[dict, dict]]:
    """(parsed scenario, dotted overrides) of each replica alone: ``raw`` (the parsed TOML) and
    ``overrides`` without the ensemble keys, with run.seed and schedule.lr set to the replica's
    (``resolved``: the ensemble's :class:`~particledyn.scenario.ResolvedScenario`)."""
    run = resolved.run
    count = run.replicas
    seeds = list(run.replica_seeds or [run.seed + r for r in range(count)])
    lrs = list(run.replica_lrs or [resolved.schedule.lr] * count)
    names = {f"run.{key.path.split('.')[1]}" for key in KEYS}
    raw = {**raw, "run": {k: v for k, v in raw.get("run", {}).items() if f"run.{k}" not in names}}
    if not isinstance(raw.get("schedule", {}), dict):  # the shorthand schedule = lr
        raw["schedule"] = {"lr": raw["schedule"]}
    kept = {k: v for k, v in overrides.items() if k not in names}
    return [(raw, {**kept, "run.seed": seeds[r], "schedule.lr": lrs[r]}) for r in range(count)]
