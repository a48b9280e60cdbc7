"""SIGINT/SIGTERM deferred to a step boundary (particledyn.interrupts)."""

import os
import signal
import threading

import pytest

from particledyn.interrupts import Interrupted, deferred_signals


def send(signum=signal.SIGINT):
    os.kill(os.getpid(), signum)


def test_a_signal_waits_for_the_check_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted, match="SIGTERM: stopped after step 7") as caught:
        with deferred_signals() as signals:
            send(signal.SIGTERM)
            assert signals.pending and signals.count == 1  # nothing raised yet
            with deferred_signals() as inner:  # nested blocks share the state
                assert inner is signals
            signals.check(7)
    assert caught.value.signum == signal.SIGTERM and caught.value.step == 7
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_second_signal_aborts_only_while_abortable():
    with deferred_signals() as signals:
        send()
        signals.abortable = True
        with signals.critical():
            send()  # the clean-up: only counted
        assert signals.count == 2 and signals.abortable
        with pytest.raises(KeyboardInterrupt, match="again: the step was abandoned"):
            send()
        assert not signals.abortable
        send()  # after the abort: counted, no exception
    assert signals.count == 4


def test_a_pending_signal_is_never_lost():
    with pytest.raises(Interrupted, match="SIGINT: stopped"):
        with deferred_signals():
            send()
    with deferred_signals() as signals:  # unless the caller settled it
        send()
        signals.settle()


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with deferred_signals() as signals:
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            send(signal.SIGTERM)
            assert not signals.pending
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_nothing_is_installed():
    seen = {}

    def worker():
        with deferred_signals() as signals:
            seen["handler"] = signal.getsignal(signal.SIGINT)
            signals.request_stop()
            try:
                signals.check(3)
            except Interrupted as exc:
                seen["stopped"] = str(exc)

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["handler"] is before and seen["stopped"] == "SIGINT: stopped after step 3"
    with deferred_signals() as main:  # a worker inside a main-thread block has its own state
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert not main.pending
