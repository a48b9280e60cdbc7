"""A stop signal on a sweep's client is never lost, even when its KeyboardInterrupt is raised inside
a weakref callback (where Python only prints "Exception ignored")."""

import gc
import os
import signal
import time
import weakref

import distributed
import pytest

from particledyn.sweep.cluster import wait_for_runs
from particledyn.sweep.stop import raise_if_stopped, stop_on_signals


class _Thing:
    pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_swallowed_by_a_weakref_callback_still_stops_the_wait():
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        slow = client.submit(time.sleep, 6.0, pure=False)
        with stop_on_signals():
            handler = signal.getsignal(signal.SIGTERM)
            thing = _Thing()
            ref = weakref.ref(thing, lambda _: handler(signal.SIGTERM, None))
            del thing  # the handler runs in the callback: its KeyboardInterrupt is swallowed
            gc.collect()
            assert ref() is None  # and this line runs: the raise was lost
            began = time.monotonic()
            with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
                wait_for_runs(client, {slow: None}, lambda future: None, patience=60.0)
            assert time.monotonic() - began < 4
        slow.cancel()


def test_sigterm_and_sigint_raise_while_active_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    for signum in (signal.SIGTERM, signal.SIGINT):
        with stop_on_signals():
            with pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name):
                os.kill(os.getpid(), signum)
                time.sleep(5)
            with pytest.raises(KeyboardInterrupt):
                raise_if_stopped()  # recorded: later polls raise again
        raise_if_stopped()  # cleared on exit
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
