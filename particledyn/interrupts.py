"""Ctrl-C and SIGTERM deferred to the simulation loop's step boundary.

A step updates positions and optimizer state in place, then records its frame,
observables and checkpoint; a run stopped in between would checkpoint a state
that matches no recorded step. While :func:`deferred_signals` is active (the loop
enters it for each :meth:`Simulation.run`), SIGINT and SIGTERM only set a flag;
the loop calls :meth:`Deferral.check` once a step is fully recorded, which raises
:class:`Interrupted` there, after the loop has checkpointed that step.

A second signal while a step is still computing aborts it at once (the run then
keeps its last checkpoint, an earlier fully recorded step); during the clean-up
(the final checkpoint, closing the file) further signals are ignored, so a
hammered Ctrl-C never interrupts the clean-up itself.

Handlers can only be installed in the main thread; elsewhere (a Dask worker
thread) nested blocks share one Deferral per thread, and another thread stops the
run at its next step boundary with :func:`request_stop` (a sweep's Ctrl-C does).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Interrupted", "Deferral", "deferred_signals", "request_stop"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal at a step boundary, after checkpointing ``step``."""

    def __init__(self, signum: int | None, step: int | None = None):
        self.signum, self.step = signum, step
        name = signal.Signals(signum).name if signum is not None else "a stop request"
        where = "" if step is None else f" after step {step}"
        super().__init__(f"{name}: stopped{where}")


class Deferral:
    """The signal state shared by the nested users of :func:`deferred_signals`.

    Attributes
    ----------
    signum : int or None
        The first signal received (or ``SIGINT`` after :meth:`request_stop`).
    count : int
        Signals received so far.
    abortable : bool
        Whether a second signal raises KeyboardInterrupt at once (set by the loop
        while a step computes; False during the clean-up).
    """

    def __init__(self):
        self.signum: int | None = None
        self.count = 0
        self.abortable = False
        self.raised = False

    @property
    def pending(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    def request_stop(self, signum: int = signal.SIGINT) -> None:
        """Ask the loop to stop at its next step boundary (from any thread)."""
        if self.signum is None:
            self.signum = signum

    def check(self, step: int | None = None) -> None:
        """Raise :class:`Interrupted` if a stop is pending (call at a step boundary)."""
        if self.signum is not None:
            self.abortable, self.raised = False, True
            raise Interrupted(self.signum, step)

    def settle(self) -> None:
        """Count a pending signal as acted on: the caller has already decided how to end."""
        self.raised = True

    def _handle(self, signum, frame):
        self.count += 1
        self.request_stop(signum)
        if self.count > 1 and self.abortable:
            self.abortable, self.raised = False, True
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} again: the step was abandoned")

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A block no signal interrupts (a second signal is only counted)."""
        was, self.abortable = self.abortable, False
        try:
            yield
        finally:
            self.abortable = was


_active: Deferral | None = None
_by_thread: dict[int, Deferral] = {}  # the Deferrals of threads other than the main one
_by_thread_lock = threading.Lock()


def request_stop(thread_id: int) -> bool:
    """Ask the run in thread ``thread_id`` (a ``threading.get_ident()``) to stop at its next
    step boundary; False when that thread is in no :func:`deferred_signals` block now."""
    if thread_id == threading.main_thread().ident:
        deferral = _active
    else:
        with _by_thread_lock:
            deferral = _by_thread.get(thread_id)
    if deferral is None:
        return False
    deferral.request_stop()
    return True


@contextlib.contextmanager
def _thread_deferral() -> Iterator[Deferral]:
    ident = threading.get_ident()
    with _by_thread_lock:
        existing = _by_thread.get(ident)
        deferral = _by_thread[ident] = Deferral() if existing is None else existing
    if existing is not None:
        yield deferral
        return
    try:
        yield deferral
    finally:
        with _by_thread_lock:
            _by_thread.pop(ident, None)
    if deferral.pending and not deferral.raised:
        raise Interrupted(deferral.signum)


@contextlib.contextmanager
def deferred_signals(deferral: Deferral | None = None) -> Iterator[Deferral]:
    """Defer SIGINT and SIGTERM to :meth:`Deferral.check` for the duration of the block.

    ``deferral``: the outermost block's Deferral (default a new :class:`Deferral`; an MPI run
    passes one whose check is a collective, :class:`particledyn.mpi.signals.CollectiveDeferral`).

    Nested blocks share the outermost block's :class:`Deferral`; the handlers in
    place before it (a signal ignored with ``SIG_IGN`` stays ignored) come back
    when it ends. A signal that no :meth:`Deferral.check` acted on is raised as
    :class:`Interrupted` when the outermost block ends, so none is lost.
    Outside the main thread the block installs nothing (signals go to the main thread
    only); nested blocks of one thread share its Deferral, which :func:`request_stop` reaches.
    """
    global _active
    if threading.current_thread() is not threading.main_thread():
        with _thread_deferral() as deferral:
            yield deferral
        return
    if _active is not None:
        yield _active
        return
    deferral = Deferral() if deferral is None else deferral
    previous = {}
    try:
        for signum in SIGNALS:
            handler = signal.getsignal(signum)
            if handler is not signal.SIG_IGN:
                signal.signal(signum, deferral._handle)
                # None: a handler not set from Python; put the default back afterwards
                previous[signum] = signal.SIG_DFL if handler is None else handler
        _active = deferral
        yield deferral
    finally:
        _active = None
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if deferral.pending and not deferral.raised:
        raise Interrupted(deferral.signum)
