"""``particledyn run`` of a scenario with ``run.replicas > 1``: one :class:`Ensemble`, one file.

Each replica's parts are built exactly as ``particledyn run`` builds that replica's scenario
alone (:func:`.scenario_keys.replica_scenarios`), so replica r of the file reads (through
``Run.replica(r)``) as the file of that single run.
"""

from __future__ import annotations

import time

import numpy as np

from ..divergence import GrowthRule
from ..runner import (
    ResumeError,
    RunResult,
    RunSink,
    _metadata,
    _prepare_interruptibly,
    reopen_run_file,
    set_threads,
    sink_options,
)
from ..scenario import ResolvedScenario, parse_toml, validate_scenario
from .ensemble import Ensemble
from .scenario_keys import replica_scenarios


def _prepared_replicas(
    signals, text: str, overrides: dict, resolved: ResolvedScenario, positions: bool = True
) -> list:
    return [
        _prepare_interruptibly(signals, validate_scenario(raw, extra), positions=positions)
        for raw, extra in replica_scenarios(parse_toml(text), overrides, resolved)
    ]


def _ensemble(prepared: list, sink, positions=None) -> Ensemble:
    first = prepared[0]
    run, output = first.resolved.run, first.resolved.output
    starts = np.stack([p.positions for p in prepared]) if positions is None else positions
    return Ensemble(
        [p.kernel for p in prepared],
        starts,
        optimizer=first.optimizer,
        lr=[p.schedule for p in prepared],
        seed=[p.resolved.run.seed for p in prepared],
        batch_size=first.resolved.optimizer.batch_size,
        observers=lambda r: prepared[r].observers,
        sink=sink,
        frame_every=output.frame_every,
        checkpoint_every=output.checkpoint_every,
        dtype=run.dtype,
        divergence=[GrowthRule.of_scenario(p.resolved.run) for p in prepared],
    )


def _run(ens: Ensemble, sink: RunSink, total: int, progress) -> None:
    try:
        ens.run(total - ens.step_count, progress=progress)
        ens.close()
    except BaseException:
        if sink.failed is not None:
            sink.abandon()
        raise


def start_ensemble_run(scenario, path: str, overwrite: bool, progress, signals) -> RunResult:
    """Run an ensemble scenario from its start into ``path`` (called by ``runner.start_run``)."""
    from ..io import H5MDSink

    resolved = scenario.resolved
    threads = set_threads(resolved.run.threads)
    prepared = _prepared_replicas(signals, scenario.text, scenario.overrides, resolved)
    output = resolved.output
    metadata = _metadata(scenario.text, scenario.source, prepared[0], threads, scenario.overrides)
    metadata.update(
        resolved=resolved.to_dict(),
        seed=resolved.run.seed,
        ensemble={
            "replicas": len(prepared),
            "seeds": [p.resolved.run.seed for p in prepared],
            "schedules": [p.schedule.describe() for p in prepared],
        },
    )
    inner = H5MDSink(
        path,
        metadata,
        every=1,
        masses=np.concatenate([p.masses for p in prepared]),
        overwrite=overwrite,
        **sink_options(output),
    )
    total = resolved.run.steps
    sink = RunSink(inner, total)
    began = time.perf_counter()
    try:
        ens = _ensemble(prepared, sink)
    except BaseException:
        sink.failed = sink.failed or RuntimeError("not started")
        sink.abandon()
        raise
    _run(ens, sink, total, progress)
    return RunResult(path, 0, ens.step_count, total, time.perf_counter() - began, True)


def resume_ensemble_run(
    path: str, parameters: dict, checkpoint: dict, steps, progress, signals, force: bool = False
) -> RunResult:
    """Continue an ensemble file from its checkpoint (called by ``runner.resume_run``)."""

    stored = ResolvedScenario.from_dict(parameters["resolved"])
    start = int(checkpoint["step"])
    total = int(
        steps if steps is not None else checkpoint.get("run", {}).get("total_steps", stored.run.steps)
    )
    if total < start:
        raise ResumeError(f"cannot resume {path!r} to {total} steps: it is already at step {start}")
    set_threads(int(checkpoint.get("threads", parameters.get("threads", 0))))
    prepared = _prepared_replicas(
        signals, parameters["scenario_toml"], parameters.get("overrides", {}), stored, positions=False
    )

    def restorable(state):  # restore on a throw-away ensemble before the file is cut
        _ensemble(prepared, None, state["positions"]).restore(state)

    inner, checkpoint = reopen_run_file(path, stored.output, restorable, force)
    sink = RunSink(inner, total)
    began = time.perf_counter()
    try:
        ens = _ensemble(prepared, sink, checkpoint["positions"]).restore(checkpoint)
    except BaseException:
        sink.failed = sink.failed or RuntimeError("not started")
        sink.abandon()
        raise
    _run(ens, sink, total, progress)
    return RunResult(path, start, ens.step_count, total, time.perf_counter() - began, True)
