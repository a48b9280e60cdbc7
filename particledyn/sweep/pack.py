"""``[sweep] pack``: a sweep's seeds (``"seed"``) or rates (``"lr"``) run as ensembles.

A pack is the runs of a sweep that differ only in ``run.seed`` (every seed of one N, axis values
and rate) or only in ``schedule.lr`` (every rate of one grid point); it runs as one
:class:`~particledyn.Ensemble` (``run.replicas``, ``run.replica_seeds``, ``run.replica_lrs``)
into ``<out>/runs/<pack_id>.h5``. Replica r of a pack is exactly its run's scenario
(:func:`particledyn.ensemble.scenario_keys.replica_scenarios`), so its trajectory and records
are bit-identical to the unpacked sweep's run file; only ``run.name`` and ``output.path`` (the
metadata) differ. The table keeps one row per run (its ``replica`` column the index in the
pack's file); ``elapsed`` is the pack's time shared among its replicas.

A packed sweep is sharded by packs: :func:`pack_index` numbers them (without K0, in the order
:func:`pack_runs` makes them), and ``--index I`` / ``--shard I/K`` / ``--limit N`` count packs,
so every part runs whole ensemble files, the parts are disjoint and together cover the sweep.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace

from .grid import (
    RunSpec,
    SweepSpec,
    _rate_tags,
    base_scenario_text,
    grid_points,
    point_run_ids,
    run_overrides,
)

__all__ = ["Pack", "pack_index", "pack_runs", "execute_pack", "replica_state"]


@dataclass(frozen=True)
class Pack:
    """One ensemble run of a packed sweep: its file and its runs, replica r = ``runs[r]``."""

    pack_id: str
    path: str
    runs: tuple[RunSpec, ...]
    text: str
    source: str
    overrides: dict


def _pack_id(spec: SweepSpec, run_id: str, rate_tag: str) -> str:
    if spec.pack == "seed":  # run ids begin with n<N>_seed<seed>
        return re.sub(r"_seed-?[0-9]+", "_seeds", run_id, count=1)
    return f"{run_id[: -len(rate_tag)]}lrs"


def _pack_key(spec: SweepSpec, point: tuple, k: int) -> tuple:
    """Which pack the run of rate number ``k`` at grid ``point`` belongs to: its point without
    the seed and its rate (``"seed"``), or its point (``"lr"``)."""
    return (point[1:], k) if spec.pack == "seed" else (point,)


def pack_index(spec: SweepSpec) -> list[tuple[str, tuple[int, ...]]]:
    """The packs of a packed sweep in order, without K0: what ``--index`` / ``--shard`` number.

    Returns
    -------
    list of (str, tuple of int)
        Each pack's id and its runs' numbers (in :func:`particledyn.sweep.grid.run_ids` order),
        replica r the r-th; the same packs, in the same order, as :func:`pack_runs` makes of
        every run of the sweep.
    """
    tags = _rate_tags(spec)
    groups: dict[tuple, list[tuple[int, str, str]]] = {}
    number = 0
    for point in grid_points(spec):
        for k, run_id in enumerate(point_run_ids(spec, point)):
            groups.setdefault(_pack_key(spec, point, k), []).append((number, run_id, tags[k]))
            number += 1
    return [
        (_pack_id(spec, members[0][1], members[0][2]), tuple(j for j, _, _ in members))
        for members in groups.values()
    ]


def pack_runs(spec: SweepSpec, runs: list[RunSpec]) -> tuple[list[Pack], list[RunSpec]]:
    """Group the runs of :func:`particledyn.sweep.grid.expand_runs` into packs.

    Returns
    -------
    packs : list of Pack
    runs : list of RunSpec
        The same runs, in the same order, each with ``path`` its pack's file and ``replica``
        its index there.
    """
    tags = _rate_tags(spec)
    by_point: dict[tuple, list[RunSpec]] = {}
    for run in runs:
        by_point.setdefault(run.point, []).append(run)
    groups: dict[tuple, list[tuple[RunSpec, str]]] = {}
    for point, point_runs in by_point.items():
        for k, run in enumerate(point_runs):
            groups.setdefault(_pack_key(spec, point, k), []).append((run, tags[k]))
    text = base_scenario_text(spec)
    packs, placed = [], {}
    for members in groups.values():
        first, tag = members[0]
        pack_id = _pack_id(spec, first.run_id, tag)
        path = os.path.join(os.path.dirname(first.path), f"{pack_id}.h5")
        overrides = run_overrides(spec, first.point, first.lr, {"run.name": pack_id, "output.path": path})
        overrides.pop("run.seed", None)
        overrides.pop("schedule.lr")
        overrides.update(
            {
                "run.replicas": len(members),
                "run.replica_seeds": [run.seed for run, _ in members],
                "run.replica_lrs": [run.lr for run, _ in members],
            }
        )
        packed = tuple(replace(run, path=path, replica=r) for r, (run, _) in enumerate(members))
        placed.update({run.run_id: run for run in packed})
        ids = ", ".join(run.run_id for run in packed)
        source = f"sweep {spec.name} ({spec.source}), pack {pack_id} of runs {ids}: base {spec.base}"
        packs.append(Pack(pack_id, path, packed, text, source, overrides))
    return packs, [placed[run.run_id] for run in runs]


def replica_state(path: str, steps: int, replica: int, own_claim: bool = False) -> str:
    """:func:`particledyn.sweep.executor.file_state` of one replica of a pack's file: a
    finished file's replica that diverged is ``diverged``."""
    from ..ensemble.reader import is_ensemble
    from ..io import open_run
    from .executor import file_state

    state = file_state(path, steps, own_claim)
    if state != "finished":
        return state
    with open_run(path) as run:
        checkpoint = run.checkpoint()
    if not is_ensemble(checkpoint):
        return "restart"
    return "diverged" if checkpoint["ensemble"]["diverged"][replica] else "finished"


def _divergence_message(record: dict) -> str:
    from ..divergence import DivergenceError

    error = DivergenceError(
        record["step"], record["count"], record["lr"], record["quantity"], record.get("growth")
    )
    return f"DivergenceError: {' '.join(str(error).split())}"


def execute_pack(pack: Pack, progress: bool = False, stop_event: str | None = None) -> list[dict]:
    """Run (or resume, or skip) one pack; one outcome per replica, as
    :func:`particledyn.sweep.executor.execute_run` returns for a run (never raises for the
    pack's own errors)."""
    from ..interrupts import Interrupted
    from ..scenario import Scenario, validate_scenario
    from ..scenario import parse_toml as parse
    from .claims import ClaimHeld, acquire
    from .executor import DONE, _one_line, _stop_when, continue_or_start

    began = time.perf_counter()
    steps = int(pack.runs[0].resolved.run.steps)

    def outcomes(status: str, error: str, action: str) -> list[dict]:
        elapsed = (time.perf_counter() - began) / len(pack.runs) if action != "skip" else 0.0
        out = []
        for run in pack.runs:
            state, message = status, error
            if status == "finished":
                state = replica_state(pack.path, steps, run.replica, own_claim=True)
                if state == "diverged":
                    message = _divergence_message(_diverged_record(pack.path, run.replica))
            out.append(
                {
                    "run_id": run.run_id,
                    "status": state,
                    "error": message,
                    "elapsed": elapsed,
                    "action": action,
                }
            )
        return out

    try:
        os.makedirs(os.path.dirname(pack.path) or ".", exist_ok=True)
        claim = acquire(pack.path)
    except ClaimHeld as exc:
        return [
            {
                "run_id": r.run_id,
                "status": "running",
                "error": _one_line(exc),
                "elapsed": 0.0,
                "action": "skip",
            }
            for r in pack.runs
        ]
    except OSError as exc:
        return outcomes("failed", _one_line(exc), "start")
    status, error, action = "finished", "", "start"
    with claim, _stop_when(stop_event):
        try:
            scenario = Scenario(
                validate_scenario(parse(pack.text, pack.source), pack.overrides),
                pack.text,
                pack.source,
                pack.overrides,
            )
            state = replica_state(pack.path, steps, 0, own_claim=True)
            if state in DONE:
                return outcomes("finished", "", "skip")
            action = continue_or_start(pack.path, scenario, state, steps, progress)
        except Interrupted as exc:
            status, error = "stopped", f"stopped by the sweep: {exc}"
        except Exception as exc:  # a failed pack is recorded, the sweep goes on
            status, error = "failed", _one_line(exc)
    return outcomes(status, error, action)


def _diverged_record(path: str, replica: int) -> dict:
    from ..io import open_run

    with open_run(path) as run:
        return dict(run.checkpoint()["ensemble"]["diverged"][replica])
