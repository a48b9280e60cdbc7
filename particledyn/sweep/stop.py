"""Ctrl-C and SIGTERM (a batch job's time limit) stop a sweep or a campaign on its client.

The handler raises KeyboardInterrupt where the main thread happens to be. When that is inside a
weakref callback or a ``__del__`` (Dask's futures run many), Python prints "Exception ignored"
and the interrupt is lost, so the handler also records the signal and the client's loops call
:func:`raise_if_stopped` at each poll: a signal is never swallowed.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_RECEIVED: list[int] = []  # the signals received while stop_on_signals is active


def raise_if_stopped() -> None:
    """Raise KeyboardInterrupt if a stop signal arrived (its own raise may have been lost)."""
    if _RECEIVED:
        raise KeyboardInterrupt(signal.Signals(_RECEIVED[0]).name)


@contextlib.contextmanager
def stop_on_signals():
    """While active, SIGINT and SIGTERM raise KeyboardInterrupt and are recorded for
    :func:`raise_if_stopped` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        _RECEIVED.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    _RECEIVED.clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _RECEIVED.clear()
