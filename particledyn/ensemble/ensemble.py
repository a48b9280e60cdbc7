"""R independent runs stepped together: :class:`Ensemble`."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import numba
import numpy as np

from ..divergence import DivergenceError, FloatWarnings, GrowthRule, cloud_radius, non_finite_keys
from ..interrupts import Deferral, deferred_signals
from ..kernel import Kernel
from ..observers import Observer, ObserverError, StepInfo, start_observer
from ..optimizers import apply_step
from ..simulation import Simulation
from ..sinks import MemorySink, Sink
from ..state import validate_masses
from ..thread_governor import ThreadGovernor
from .fields import ReplicaFields
from .updates import fused_update, is_fused

OBSERVER_SUFFIX = "@r"
"""Replica i's records of observer ``name`` are the observables ``name@r<i>``."""
META = "ensemble"
"""The observer name of the per-replica step, time and liveness recorded with every frame."""


def replica_name(name: str, replica: int) -> str:
    """The observable name of replica ``replica``'s records of observer ``name``."""
    return f"{name}{OBSERVER_SUFFIX}{replica}"


def _per_replica(name: str, value, count: int | None, is_single: Callable) -> list | None:
    """``value`` as a list of ``count`` per-replica values (None: ``value`` is one shared value)."""
    if is_single(value):
        return None
    values = list(value)
    if count is not None and len(values) != count:
        raise ValueError(f"{name} with {len(values)} entries: expected {count}, one per replica")
    return values


class Ensemble:
    """R independent runs of one kernel family stepped as one simulation.

    Replica r is exactly the :class:`~particledyn.Simulation` built from its own start,
    seed, learning rate (schedule) and kernel (data draw), with the shared optimizer
    rule: the same seed and thread count give bit-identical positions, optimizer state
    and observables. For :class:`~particledyn.kernels.TwoLayerNet` (both scalings,
    every activation and loss, d + C <= 16) each step is one fused kernel call over
    R x N particles plus one fused optimizer update; other kernels are called replica by
    replica. A replica whose positions or loss become NaN or inf is frozen there (its
    ``diverged`` record says when); the others go on.

    Parameters
    ----------
    kernel : Kernel or sequence of R Kernel
        Shared, or one per replica (e.g. different data draws of one teacher).
    positions : array_like, shape (N, D) or (R, N, D)
        One start shared by all replicas, or one per replica.
    optimizer : Optimizer, optional
        One rule for all (GD by default); each replica has its own state.
    lr : float, Schedule, callable, or sequence of R of those
    seed : int or sequence of R int
        Root of replica r's batch draws (as ``Simulation(seed=...)``).
    replicas : int, optional
        R, when no other argument is per replica.
    masses, batch_size, frame_every, checkpoint_every, dtype
        As for :class:`~particledyn.Simulation` (masses: (N,) or (R, N)).
    observers : sequence of Observer, or callable replica -> sequence of Observer
        A sequence is deep-copied for every replica; replica r's records of observer
        ``name`` go to the sink as ``name@r<r>`` (:func:`replica_name`).
    divergence : GrowthRule or sequence of R GrowthRule, optional
        The growth test of every replica (deep-copied for each; default ``GrowthRule()``,
        as a :class:`~particledyn.Simulation`'s), or one per replica.
    sink : Sink, optional
        Frames of shape (R * N, D), replica-major, their ``time`` the ensemble step;
        per-replica step, time and liveness as the observables ``ensemble/*``.

    Examples
    --------
    >>> import numpy as np
    >>> from particledyn import Ensemble
    >>> from particledyn.kernels import TwoLayerNet
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(256, 2))
    >>> kernel = TwoLayerNet(z, np.tanh(z @ [1.0, -0.5]), scaling="mean_field")
    >>> starts = rng.normal(size=(4, 64, 3))
    >>> ens = Ensemble(kernel, starts, lr=[0.1, 0.2, 0.4, 0.8], seed=[0, 1, 2, 3], batch_size=32)
    >>> ens.run(100).close()
    >>> ens.positions.shape
    (4, 64, 3)
    """

    defer_signals = True

    def __init__(
        self,
        kernel,
        positions,
        optimizer=None,
        lr=0.01,
        masses=None,
        seed=0,
        batch_size: int | None = None,
        observers=(),
        sink: Sink | None = None,
        frame_every: int = 1,
        checkpoint_every: int = 0,
        dtype=None,
        replicas: int | None = None,
        divergence=None,
    ):
        x = np.asarray(positions)
        count = None if replicas is None else self._check_count(replicas)
        counts = {"replicas": count, "positions": x.shape[0] if x.ndim == 3 else None}
        kernels = _per_replica("kernel", kernel, None, lambda v: isinstance(v, Kernel))
        lrs = _per_replica("lr", lr, None, lambda v: isinstance(v, (int, float)) or not np.iterable(v))
        seeds = _per_replica("seed", seed, None, lambda v: not np.iterable(v))
        counts.update(
            {k: None if v is None else len(v) for k, v in (("kernel", kernels), ("lr", lrs), ("seed", seeds))}
        )
        given = {k: v for k, v in counts.items() if v is not None}
        if not given:
            raise ValueError(
                "replicas=None and no per-replica argument: expected replicas=R or a "
                "sequence of positions, lrs, seeds or kernels"
            )
        if len(set(given.values())) > 1:
            raise ValueError(f"per-replica arguments of different lengths {given}: expected one R")
        self.replicas = n = next(iter(given.values()))
        if n < 1:
            raise ValueError(f"{n} replicas: expected at least 1")
        kernels = kernels or [kernel] * n
        lrs, seeds = lrs or [lr] * n, seeds or [seed] * n
        starts = x if x.ndim == 3 else [x] * n
        if masses is not None:
            m = np.asarray(masses, dtype=np.float64)
            if m.ndim == 2 and len(m) != n:
                raise ValueError(f"masses of shape {m.shape}: expected (N,) or ({n}, N), one row per replica")
            masses = list(m) if m.ndim == 2 else [m] * n
        else:
            masses = [None] * n
        rules = _per_replica("divergence", divergence, n, lambda v: v is None or isinstance(v, GrowthRule))
        rules = [copy.deepcopy(rule or GrowthRule()) for rule in (rules or [divergence] * n)]
        self.optimizer = optimizer
        self.members: list[Simulation] = [
            Simulation(
                kernels[r],
                starts[r],
                optimizer=optimizer,
                lr=lrs[r],
                masses=masses[r],
                seed=int(seeds[r]),
                batch_size=batch_size,
                sink=MemorySink(keep_frames=False),
                frame_every=frame_every,
                checkpoint_every=checkpoint_every,
                dtype=dtype,
                divergence=rules[r],
            )
            for r in range(n)
        ]
        first = self.members[0]
        self.optimizer, self.batch_size = first.optimizer, first.batch_size
        self.frame_every, self.checkpoint_every = first.frame_every, first.checkpoint_every
        for member in self.members[1:]:
            if member.state.positions.shape != first.state.positions.shape:
                raise ValueError(
                    f"replica starts of shapes {member.state.positions.shape} and "
                    f"{first.state.positions.shape}: expected one (N, D)"
                )
        self.observers = self._replica_observers(observers)
        # 1 thread or numba's count for each step, whichever is faster now (results are the same)
        invariant = all(m.kernel.thread_invariant for m in self.members) and self.optimizer.thread_invariant
        self.thread_governor = ThreadGovernor(enabled=None if invariant else False)
        self.sink = sink if sink is not None else MemorySink()
        self._gather_state()
        self.fields = ReplicaFields(kernels, self.masses, self.dtype)
        self.step_count = 0
        self.diverged: dict[int, dict] = {}
        self.recorded = [0] * n  # the last step each replica fully recorded
        self._started = False
        self._checkpointed: int | None = None

    @staticmethod
    def _check_count(replicas):
        if isinstance(replicas, bool) or int(replicas) != replicas or replicas < 1:
            raise ValueError(f"replicas={replicas!r}: expected a positive integer")
        return int(replicas)

    def _replica_observers(self, observers) -> list[list[Observer]]:
        lists = []
        for r in range(self.replicas):
            chosen = list(observers(r)) if callable(observers) else copy.deepcopy(list(observers))
            for observer in chosen:
                if not isinstance(observer, Observer):
                    raise TypeError(f"observer {observer!r}: expected a particledyn Observer")
            lists.append(chosen)
        return lists

    def _gather_state(self) -> None:
        """One (R, N, D) array per state field; each member's state becomes views of its row."""
        members = self.members
        self.positions = np.stack([m.state.positions for m in members])
        self.dtype = self.positions.dtype
        self.masses = np.stack([m.state.masses for m in members])
        self.optimizer_state = {
            k: np.stack([m.state.optimizer_state[k] for m in members])
            for k in members[0].state.optimizer_state
        }
        for r, member in enumerate(members):
            member.state.positions = self.positions[r]
            member.state.masses = self.masses[r]
            member.state.optimizer_state = {k: v[r] for k, v in self.optimizer_state.items()}
        self._field = np.zeros_like(self.positions)
        self._direction = np.zeros_like(self.positions)

    # -- stepping ---------------------------------------------------------------------
    @property
    def live(self) -> list[int]:
        """The replicas still running (not diverged)."""
        return [r for r in range(self.replicas) if r not in self.diverged]

    def replica(self, i: int) -> Simulation:
        """Replica ``i`` as a :class:`~particledyn.Simulation` (its state is a view of the ensemble's)."""
        if isinstance(i, bool) or int(i) != i or not 0 <= i < self.replicas:
            raise IndexError(f"replica {i!r}: expected an integer in [0, {self.replicas})")
        return self.members[int(i)]

    def step(self) -> list[int]:
        """One update of every live replica; returns the replicas that diverged in it (frozen)."""
        t = self.step_count
        live = self.live
        lrs = np.zeros(self.replicas, dtype=self.dtype)
        for r in live:
            lrs[r] = self.members[r].schedule(t)
        contexts = {r: self.members[r].context(t) for r in live}
        with self.thread_governor:
            self.fields(self.positions, contexts, self._field)
            bad = self._update(t, live, lrs)
        self.step_count = t + 1
        failed = []
        for r in live:
            state = self.members[r].state
            lr = float(self.members[r].schedule(t))
            state.step, state.time = t + 1, state.time + lr
            if bad[r]:
                self.diverged[r] = DivergenceError(t + 1, int(bad[r]), lr).record()
                failed.append(r)
        return failed

    def _update(self, t: int, live: list[int], lrs: np.ndarray) -> np.ndarray:
        r_count = self.replicas
        flat = lambda a: a.reshape(r_count, -1)  # noqa: E731
        bad = np.zeros(r_count, dtype=np.int64)
        if is_fused(self.optimizer):
            fused_update(
                self.optimizer,
                flat(self.positions),
                flat(self._field),
                {k: flat(v) for k, v in self.optimizer_state.items()},
                t,
                lrs,
                np.asarray(live, dtype=np.int64),
                flat(self._direction),
                bad,
            )
            return bad
        for r in live:
            state = self.members[r].state
            self._direction[r] = self.optimizer.direction(
                state.positions, self._field[r], state.optimizer_state, t
            )
            bad[r] = apply_step(state.positions.ravel(), self._direction[r].ravel(), lrs[r])
        return bad

    def run(self, steps: int, progress: bool | None = None) -> Ensemble:
        """Run ``steps`` more updates (fewer if every replica diverges), observing and writing on cadence.

        Parameters
        ----------
        steps : int
        progress : bool or None
            A progress bar; None shows it on a terminal only.

        Returns
        -------
        Ensemble
            ``self``; the diverged replicas are in :attr:`diverged` (replica -> record).

        Raises
        ------
        particledyn.interrupts.Interrupted
            SIGINT or SIGTERM: the step it arrived in was recorded and checkpointed.
        """
        if int(steps) != steps or steps < 0:
            raise ValueError(f"steps={steps!r}: expected an integer >= 0")
        if progress not in (True, False, None):
            raise ValueError(f"progress={progress!r}: expected True, False or None")
        from tqdm.auto import tqdm

        end = self.step_count + int(steps)
        bar = tqdm(
            total=int(steps),
            disable={True: False, False: True, None: None}[progress],
            unit="step",
            dynamic_ncols=True,
            desc=f"ensemble of {self.replicas}",
        )
        finished = False
        guard = deferred_signals() if self.defer_signals else contextlib.nullcontext(Deferral())
        with guard as signals, FloatWarnings():
            recorded = self._started
            try:
                signals.abortable = True
                if not self._started:
                    self._start()
                recorded = True
                signals.check(self.step_count)
                while self.step_count < end and self.live:
                    recorded = False
                    wants_previous = any(
                        o.needs_previous and o.wants(self.step_count + 1)
                        for obs in self.observers
                        for o in obs
                    )
                    previous = self.positions.copy() if wants_previous else None
                    failed = self.step()
                    self._after_step(previous, failed, end)
                    recorded = True
                    bar.update(1)
                    signals.check(self.step_count)
                finished = True
            finally:
                signals.abortable = False
                bar.close()
                if not finished:
                    if recorded and self._checkpointed != self.step_count:
                        self._send_checkpoint()
                    self.sink.close(finished=False)
        return self

    def _start(self) -> None:
        for r in self.live:
            for observer in self.observers[r]:
                start_observer(observer, self.members[r], replica_name(observer.name, r))
                self.sink.describe_observer(replica_name(observer.name, r), observer.description())
        if self.step_count == 0 or self.frame_every and self.step_count % self.frame_every == 0:
            self._write_frame()
        self._observe(self.live, None)
        self._send_checkpoint()
        self._started = True

    def _after_step(self, previous, failed: list[int], end: int) -> None:
        t = self.step_count
        live = self.live
        for r in live:
            self.recorded[r] = t
        if self.frame_every and t % self.frame_every == 0:
            self._write_frame()
        self._observe([r for r in live if any(o.wants(t) for o in self.observers[r])], previous)
        stopped = bool(failed) or len(self.live) < len(live)
        if stopped or self.checkpoint_every and t % self.checkpoint_every == 0 and t < end:
            self._send_checkpoint()

    def _observe(self, replicas: list[int], previous) -> None:
        """Record each replica's observers at its step; a replica whose ``divergence_keys``
        (the loss) come out NaN or inf is frozen there."""
        for r in replicas:
            member = self.members[r]
            state, bad = member.state, []
            lr = member.schedule(max(state.step - 1, 0))
            info = StepInfo(
                step=state.step,
                time=state.time,
                positions=state.positions,
                masses=state.masses,
                lr=lr,
                previous_positions=None if previous is None else previous[r],
                update=None if previous is None else self._direction[r],
                field=None if previous is None else self._field[r],
                simulation=member,
            )
            grown = {}
            for observer in self.observers[r]:
                if state.step and not observer.wants(state.step):
                    continue
                try:
                    values = observer.observe(info)
                except (ObserverError, MemoryError):
                    raise
                except Exception as exc:
                    raise ObserverError(replica_name(observer.name, r), state.step, exc) from exc
                self.sink.write_observables(replica_name(observer.name, r), state.step, state.time, values)
                if "loss" in getattr(observer, "divergence_keys", ()) and "loss" in values:
                    grown["loss"] = float(values["loss"])
                bad += [f"{observer.name}/{key}" for key in non_finite_keys(observer, values)]
            if bad:
                quantity = bad[0].split("/", 1)[1] if bad[0].startswith("loss/") else bad[0]
                self.diverged[r] = DivergenceError(state.step, 0, lr, quantity).record()
            elif member.divergence.enabled:  # the single run's growth test, on the same records
                found = member.divergence.check({**grown, "positions": cloud_radius(state.positions)})
                if found is not None:
                    self.diverged[r] = DivergenceError(state.step, 0, lr, found[0], growth=found[1]).record()

    def _write_frame(self) -> None:
        n = self.replicas
        t = self.step_count
        self.sink.write_observables(
            META,
            t,
            float(t),
            {
                "step": np.array([m.state.step for m in self.members], dtype=np.int64),
                "time": np.array([m.state.time for m in self.members], dtype=np.float64),
                "live": np.array([r not in self.diverged for r in range(n)]),
            },
        )
        flat = lambda a: a.reshape(n * a.shape[1], a.shape[2])  # noqa: E731
        self.sink.write_frame(
            t, float(t), flat(self.positions), {k: flat(v) for k, v in self.optimizer_state.items()}
        )

    def close(self) -> None:
        """Final frame and checkpoint, then close the sink as finished (signals wait until then)."""
        with deferred_signals() as signals:
            with signals.critical():
                if self.frame_every == 0 or self.step_count % self.frame_every:
                    self._write_frame()
                for r in range(self.replicas):
                    for observer in self.observers[r]:
                        observer.finish(self.members[r])
                self._send_checkpoint()
                self.sink.close(finished=True)
            signals.check(self.step_count)

    # -- checkpoints ----------------------------------------------------------------------
    def _send_checkpoint(self) -> None:
        self.sink.write_checkpoint(self.checkpoint())
        self._checkpointed = self.step_count

    def checkpoint(self) -> dict:
        """Everything needed to continue exactly: the (R, N, D) state, every replica's step,
        time, seed, divergence and last recorded step, every replica's observer states."""
        members = self.members
        return {
            "step": self.step_count,
            "time": float(self.step_count),
            "seed": members[0].state.seed,
            "positions": self.positions.copy(),
            "masses": self.masses.copy(),
            "optimizer_state": {k: v.copy() for k, v in self.optimizer_state.items()},
            "ensemble": {
                "replicas": self.replicas,
                "steps": [m.state.step for m in members],
                "times": [m.state.time for m in members],
                "seeds": [m.state.seed for m in members],
                "recorded": list(self.recorded),
                "diverged": [self.diverged.get(r) for r in range(self.replicas)],
                "divergence": [m.divergence.state_dict() for m in members],
            },
            "observers": {
                replica_name(o.name, r): o.state_dict()
                for r in range(self.replicas)
                for o in self.observers[r]
            },
            "threads": numba.get_num_threads(),
        }

    def restore(self, checkpoint: dict) -> Ensemble:
        """Continue from a :meth:`checkpoint`; the next :meth:`run` does not re-record its step."""
        info = checkpoint.get("ensemble")
        if not isinstance(info, dict) or info.get("replicas") != self.replicas:
            found = None if not isinstance(info, dict) else info.get("replicas")
            raise ValueError(
                f"checkpoint of {found} replicas: expected an ensemble checkpoint of {self.replicas}"
            )
        x = np.asarray(checkpoint["positions"])
        if x.shape != self.positions.shape:
            raise ValueError(f"checkpoint positions of shape {x.shape}: expected {self.positions.shape}")
        self.positions[...] = x
        self.masses[...] = np.stack([validate_masses(m, x.shape[1]) for m in checkpoint["masses"]])
        for key, value in self.optimizer_state.items():
            value[...] = checkpoint["optimizer_state"][key]
        self.step_count = int(checkpoint["step"])
        self.recorded = [int(s) for s in info["recorded"]]
        self.diverged = {r: dict(d) for r, d in enumerate(info["diverged"]) if d}
        states = checkpoint.get("observers", {})
        for r, member in enumerate(self.members):
            member.state.step, member.state.time = int(info["steps"][r]), float(info["times"][r])
            member.state.seed = int(info["seeds"][r])
            member.divergence.load_state_dict((info.get("divergence") or [None] * self.replicas)[r])
            for observer in self.observers[r]:
                start_observer(observer, member, replica_name(observer.name, r))
                if replica_name(observer.name, r) in states:
                    observer.load_state_dict(states[replica_name(observer.name, r)])
        self._started = True
        self._checkpointed = self.step_count
        return self
