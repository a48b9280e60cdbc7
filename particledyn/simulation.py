"""The simulation loop: steps the particles, calls observers on a cadence, feeds a sink."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numba
import numpy as np

from .backends import Backend, get_backend
from .divergence import DivergenceError, FloatWarnings, GrowthRule, cloud_radius, non_finite_keys
from .interrupts import Deferral, deferred_signals
from .kernel import Kernel
from .observers import Observer, ObserverError, StepInfo, start_observer
from .optimizers import GD, Optimizer
from .schedules import Schedule, as_schedule
from .sinks import MemorySink, Sink
from .state import ParticleState, default_masses, step_rng, validate_masses, validate_positions
from .thread_governor import ThreadGovernor


class Simulation:
    """N particles in R^D moved by x <- x + lr(t) * S(t), S the optimizer's step from the kernel's field.

    Parameters
    ----------
    kernel : Kernel
        The update kernel (e.g. ``particledyn.kernels.TwoLayerNet``).
    positions : array_like, shape (N, D)
        Initial positions (copied; float32 or float64 kept, anything else as float64).
    optimizer : Optimizer, default GD()
    lr : float, Schedule or callable
        Learning rate, constant or a schedule of the step.
    masses : array_like, optional
        Per-particle masses; 1/N by default (1/N_g within each group).
    seed : int
        Root of the per-step randomness (mini-batches): the context at step t depends
        only on (seed, t), so reruns and resumed runs are identical.
    batch_size : int, optional
        Mini-batch size shared by all particles; None for the full batch.
    observers : sequence of Observer
    sink : Sink, optional
        Where frames, observables and checkpoints go; a :class:`MemorySink` by default.
    frame_every : int
        Cadence of position frames sent to the sink (0: only the last frame).
    checkpoint_every : int
        Cadence of checkpoints sent to the sink (0: only at the end).
    dtype : {None, "float32", "float64"}
        Working precision; None keeps the dtype of ``positions`` (float64 for others).
    backend : {"numba", "cupy", "cudasim"} or Backend
        Where the state lives and what steps it (:mod:`particledyn.backends`): host arrays
        and the numba loops, or device arrays and the kernel's and optimizer's
        ``to_device`` twins ('cudasim': numba's CUDA simulator, for tests). On a device,
        ``state`` holds device arrays; observers, frames and checkpoints get host copies.

    Attributes
    ----------
    kernel, optimizer
        The host kernel and optimizer (diagnostics call their ``loss``, ``hvp``,
        ``preconditioner`` on host arrays).
    stepping_kernel, stepping_optimizer
        What steps ``state`` on this backend: ``kernel`` and ``optimizer`` themselves on
        'numba', their device twins otherwise.
    divergence : GrowthRule, optional
        The growth test judging a finite but exploding loss or cloud diverged (default
        ``GrowthRule()``; ``GrowthRule(0)`` switches it off).

    Notes
    -----
    :meth:`run` defers SIGINT and SIGTERM (in the main thread) to the end of the step
    they arrive in: the step is recorded and checkpointed, then
    :class:`~particledyn.interrupts.Interrupted` (a KeyboardInterrupt) is raised; a second
    signal abandons the step at once and the sink keeps its last checkpoint. Set
    ``defer_signals = False`` for a run whose steps must all stop together or not at
    all (MPI ranks in a collective): a signal then raises where it lands.
    """

    defer_signals = True

    def __init__(
        self,
        kernel: Kernel,
        positions,
        optimizer: Optimizer | None = None,
        lr=0.01,
        masses=None,
        seed: int = 0,
        batch_size: int | None = None,
        observers: Sequence[Observer] = (),
        sink: Sink | None = None,
        frame_every: int = 1,
        checkpoint_every: int = 0,
        dtype=None,
        backend: str | Backend = "numba",
        divergence: GrowthRule | None = None,
    ):
        self.backend = get_backend(backend)
        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel={kernel!r}: expected a particledyn Kernel")
        x = validate_positions(positions, dtype)
        kernel.check_positions(x)
        groups = getattr(kernel, "groups", None)
        m = default_masses(x.shape[0], groups) if masses is None else validate_masses(masses, x.shape[0])
        self.kernel = kernel
        self.optimizer = optimizer if optimizer is not None else GD()
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError(f"optimizer={optimizer!r}: expected a particledyn Optimizer")
        self.schedule: Schedule = as_schedule(lr)
        self.schedule(0)
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size={batch_size!r}: expected a positive integer or None (full batch)")
        self.batch_size = None if batch_size is None else int(batch_size)
        for name, value in (("frame_every", frame_every), ("checkpoint_every", checkpoint_every)):
            if int(value) != value or value < 0:
                raise ValueError(f"{name}={value!r}: expected an integer >= 0")
        self.frame_every, self.checkpoint_every = int(frame_every), int(checkpoint_every)
        self.observers = list(observers)
        self.divergence = divergence if divergence is not None else GrowthRule()
        # the progress bar's label (default: the kernel's name) and its latest loss
        self.progress_label: str | None = None
        self.latest_loss: float | None = None
        for observer in self.observers:
            if not isinstance(observer, Observer):
                raise TypeError(f"observer {observer!r}: expected a particledyn Observer")
        self.sink = sink if sink is not None else MemorySink()
        self.state = ParticleState(
            positions=x, masses=m, optimizer_state=self.optimizer.init_state(x), seed=int(seed)
        )
        self.stepping_kernel, self.stepping_optimizer = self.backend.prepare(kernel, self.optimizer)
        self._frames = self.backend.frame_writer()
        self._upload()
        self._started = False
        self._checkpointed: int | None = None  # step of the last checkpoint sent to the sink
        self.last_field: np.ndarray | None = None
        # 1 thread or numba's count for each step, whichever is faster now (results are the same)
        invariant = (
            self.backend.name == "numba" and kernel.thread_invariant and self.optimizer.thread_invariant
        )
        self.thread_governor = ThreadGovernor(enabled=None if invariant else False)

    # -- stepping -----------------------------------------------------------------
    def _upload(self) -> None:
        """Move the (host) state into the backend's memory (nothing to move on the host)."""
        state, to_backend = self.state, self.backend.to_backend
        state.positions = to_backend(state.positions)
        state.masses = to_backend(state.masses)
        state.optimizer_state = {k: to_backend(v) for k, v in state.optimizer_state.items()}

    @property
    def positions(self) -> np.ndarray:
        """Current positions (N, D) on the host: the live array on 'numba' (do not
        modify), a copy on a device backend."""
        return self.backend.to_host(self.state.positions)

    def context(self, step: int):
        """The kernel context of update ``step`` (deterministic in seed and step)."""
        rng = step_rng(self.state.seed, step) if self.kernel.draws_context(self.batch_size) else None
        return self.kernel.context(step, rng, self.batch_size)

    def step(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Apply one update; returns (field, direction, lr) of that update.

        Raises
        ------
        DivergenceError
            When an entry of the new positions is NaN or inf.
        """
        state = self.state
        t = state.step
        lr = self.schedule(t)
        with self.thread_governor:
            field, direction, bad = self._update(t, lr)
        state.step = t + 1
        state.time += lr
        self.last_field = field
        if bad:
            raise DivergenceError(state.step, int(bad), lr)
        return field, direction, lr

    def _update(self, t: int, lr: float):
        """Field, step direction and the in-place update of update ``t`` (arrays of the
        backend); returns (field, direction, number of non-finite entries)."""
        state = self.state
        field = self.stepping_kernel.field(state.positions, state.masses, self.context(t))
        direction = self.stepping_optimizer.direction(state.positions, field, state.optimizer_state, t)
        return field, direction, self.backend.apply_step(state.positions, direction, lr)

    def run(self, steps: int, progress: bool | None = None) -> Simulation:
        """Run ``steps`` more updates, observing and writing on cadence.

        Parameters
        ----------
        steps : int
            Number of updates to apply (>= 0).
        progress : bool or None
            Show a progress bar with rate and ETA; None shows it on a terminal only.

        Returns
        -------
        Simulation
            ``self``, for chaining; results are in ``self.sink``.

        Raises
        ------
        particledyn.interrupts.Interrupted
            SIGINT or SIGTERM arrived: the step it arrived in was recorded and
            checkpointed, and the sink closed as not finished.
        DivergenceError
            Positions, or an observer's ``divergence_keys`` (the loss), became NaN
            or inf; the checkpoint sent last carries a ``diverged`` entry.
        """
        if int(steps) != steps or steps < 0:
            raise ValueError(f"steps={steps!r}: expected an integer >= 0")
        if progress not in (True, False, None):
            raise ValueError(f"progress={progress!r}: expected True, False or None")
        from tqdm.auto import tqdm

        state = self.state
        end = state.step + int(steps)
        # tqdm: disable=None hides the bar when stderr is not a terminal
        bar = tqdm(
            total=int(steps),
            disable={True: False, False: True, None: None}[progress],
            unit="step",
            dynamic_ncols=True,
            desc=self.progress_label or self.kernel.name,
        )
        shown_loss = self.latest_loss
        finished, diverged = False, None
        # The step's in-place updates, frame, observables and checkpoint happen between two
        # boundaries; a signal is acted on only at a boundary (see particledyn.interrupts), and
        # an error between two leaves the last checkpoint, a fully recorded step, as it is.
        guard = deferred_signals() if self.defer_signals else contextlib.nullcontext(Deferral())
        with guard as signals, FloatWarnings() as float_warnings:
            recorded = self._started
            try:
                signals.abortable = True
                if not self._started:
                    self._start()
                recorded = True
                signals.check(state.step)
                while state.step < end:
                    recorded = False
                    wants_previous = any(o.needs_previous and o.wants(state.step + 1) for o in self.observers)
                    previous = state.positions.copy() if wants_previous else None
                    field, direction, lr = self.step()
                    self._after_step(previous, field, direction, lr, end)
                    recorded = True
                    if self.latest_loss is not shown_loss:
                        shown_loss = self.latest_loss
                        bar.set_postfix(loss=f"{shown_loss:.4g}", refresh=False)
                    bar.update(1)
                    signals.check(state.step)
                finished = True
            except DivergenceError as exc:
                exc.numpy_warnings = float_warnings.take()
                diverged = exc
                raise
            finally:
                signals.abortable = False
                bar.close()
                if not finished:
                    self._stop(recorded, diverged)
        return self

    def _stop(self, recorded: bool, diverged: DivergenceError | None) -> None:
        """Checkpoint the last fully recorded step (or the divergence) and close the sink unfinished."""
        if diverged is not None:
            self._send_checkpoint({**self.checkpoint(), "diverged": diverged.record()})
        elif recorded and self._checkpointed != self.state.step:
            self._send_checkpoint(self.checkpoint())
        self.sink.close(finished=False)

    def _send_checkpoint(self, checkpoint: dict) -> None:
        self.sink.write_checkpoint(checkpoint)
        self._checkpointed = int(checkpoint["step"])

    def close(self) -> None:
        """Final frame and checkpoint, then close the sink as finished.

        A SIGINT or SIGTERM arriving meanwhile waits until the sink is closed, then
        raises :class:`~particledyn.interrupts.Interrupted`.
        """
        state = self.state
        with deferred_signals() as signals:
            with signals.critical():
                if self.frame_every == 0 or state.step % self.frame_every:
                    self._write_frame()
                for observer in self.observers:
                    observer.finish(self)
                self._send_checkpoint(self.checkpoint())
                self.sink.close(finished=True)
            signals.check(state.step)

    def _start(self):
        state = self.state
        for observer in self.observers:
            start_observer(observer, self)
            self.sink.describe_observer(observer.name, observer.description())
        if state.step == 0 or self.frame_every and state.step % self.frame_every == 0:
            self._write_frame()
        info = self._info(None, None, None, self.schedule(state.step))
        self._observe(self.observers, info)
        # a checkpoint at the first step: a run killed before its first periodic one resumes
        self._send_checkpoint(self.checkpoint())
        self._started = True

    def _after_step(self, previous, field, direction, lr, end):
        state = self.state
        t = state.step
        if self.frame_every and t % self.frame_every == 0:
            self._write_frame()
        active = [o for o in self.observers if o.wants(t)]
        if active:
            self._observe(active, self._info(previous, field, direction, lr))
        if self.checkpoint_every and t % self.checkpoint_every == 0 and t < end:
            self._send_checkpoint(self.checkpoint())

    def _observe(self, observers, info: StepInfo) -> None:
        """Record each observer's values at ``info.step``; then raise DivergenceError if one
        of their ``divergence_keys`` (the loss) is NaN or inf. An observer's error is raised
        as :class:`~particledyn.observers.ObserverError` (MemoryError as it is)."""
        state, bad, grown = self.state, [], {}
        for observer in observers:
            try:
                values = observer.observe(info)
            except (DivergenceError, ObserverError, MemoryError):
                raise
            except Exception as exc:
                raise ObserverError(observer.name, state.step, exc) from exc
            self.sink.write_observables(observer.name, state.step, state.time, values)
            if "loss" in getattr(observer, "divergence_keys", ()) and "loss" in values:
                self.latest_loss = grown["loss"] = float(values["loss"])
            bad += [f"{observer.name}/{key}" for key in non_finite_keys(observer, values)]
        if bad:
            quantity = bad[0].split("/", 1)[1] if bad[0].startswith("loss/") else bad[0]
            raise DivergenceError(state.step, 0, info.lr, quantity)
        if self.divergence.enabled:
            found = self.divergence.check({**grown, "positions": self._cloud_radius(info.positions)})
            if found is not None:
                raise DivergenceError(state.step, 0, info.lr, found[0], growth=found[1])

    def _cloud_radius(self, positions) -> float:
        """max |x| of the cloud for the growth test (a sharded run reduces it over the ranks)."""
        return cloud_radius(positions)

    def _write_frame(self):
        """The current frame to the sink (host copies of what it writes, from a device)."""
        state = self.state
        self._frames.write_frame(self.sink, state.step, state.time, state.positions, state.optimizer_state)

    def _info(self, previous, field, direction, lr):
        """The StepInfo observers see: host arrays (one copy shared by all, from a device)."""
        state, to_host = self.state, self.backend.to_host
        moved = previous is not None
        return StepInfo(
            step=state.step,
            time=state.time,
            positions=to_host(state.positions),
            masses=to_host(state.masses),
            lr=lr,
            previous_positions=to_host(previous) if moved else None,
            update=to_host(direction) if moved else None,
            field=to_host(field) if moved else None,
            simulation=self,
        )

    # -- checkpoints ----------------------------------------------------------------
    def checkpoint(self) -> dict:
        """Everything needed to continue this run exactly: positions, optimizer state,
        step, time, seed (the RNG state: contexts derive from (seed, step)), schedule
        position (the step), every observer's state, numba's thread count and the
        backend's name. Arrays are host copies, on every backend."""
        state, copy = self.state, self.backend.asnumpy
        return {
            "step": state.step,
            "time": state.time,
            "seed": state.seed,
            "positions": copy(state.positions),
            "masses": copy(state.masses),
            "optimizer_state": {k: copy(v) for k, v in state.optimizer_state.items()},
            "observers": {o.name: o.state_dict() for o in self.observers},
            "threads": numba.get_num_threads(),
            "backend": self.backend.name,
            "divergence": self.divergence.state_dict(),
        }

    def restore(self, checkpoint: dict) -> Simulation:
        """Continue from a :meth:`checkpoint` (positions, optimizer state, step, observers).

        The next :meth:`run` does not re-record step ``checkpoint['step']``'s frame
        and observables (they were written before the checkpoint). A checkpoint of
        any backend restores on any backend."""
        x = np.asarray(checkpoint["positions"])
        self.kernel.check_positions(x)
        state = self.state
        if x.shape != state.positions.shape:
            raise ValueError(f"checkpoint positions of shape {x.shape}: expected {state.positions.shape}")
        dtype = state.positions.dtype
        state.positions = np.array(x, dtype=dtype, order="C", copy=True)
        state.masses = validate_masses(checkpoint["masses"], x.shape[0])
        state.optimizer_state = {
            k: np.array(v, dtype=dtype, order="C", copy=True)
            for k, v in checkpoint["optimizer_state"].items()
        }
        self._upload()
        state.step, state.time, state.seed = (
            int(checkpoint["step"]),
            float(checkpoint["time"]),
            int(checkpoint["seed"]),
        )
        observer_states = checkpoint.get("observers", {})
        for observer in self.observers:
            start_observer(observer, self)
            if observer.name in observer_states:
                observer.load_state_dict(observer_states[observer.name])
        self.divergence.load_state_dict(checkpoint.get("divergence"))
        self._started = True
        self._checkpointed = state.step
        return self


def make_simulation(kernel: Kernel, positions, backend: str | Backend = "numba", **options) -> Simulation:
    """``Simulation(kernel, positions, backend=backend, **options)``: 'numba' (CPU) or 'cupy'
    (GPU, state on the device; 'cudasim' runs the GPU code in numba's CUDA simulator, for tests)."""
    return Simulation(kernel, positions, backend=backend, **options)


def simulate(
    kernel: Kernel, positions, steps: int, backend: str | Backend = "numba", **options
) -> Simulation:
    """Build a simulation on ``backend``, run ``steps`` updates, close it, and return it."""
    progress = options.pop("progress", None)
    sim = make_simulation(kernel, positions, backend=backend, **options)
    sim.run(steps, progress=progress)
    sim.close()
    return sim
