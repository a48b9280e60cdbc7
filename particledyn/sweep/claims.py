"""Claims on the runs of a sweep: which process, on which host, is running a run right now.

A claim is a small file ``<run file>.claim`` beside the run file, created atomically
(``O_CREAT | O_EXCL``: atomic on local file systems and on NFS v3 and later) and holding the
claimer's host, PID and a random token. A heartbeat thread touches it every ``heartbeat``
seconds while the run goes on. Another process, on any host, treats the claim as live while
its last heartbeat is younger than ``stale`` seconds; on the claimer's own host a dead PID
makes it stale at once. So two sweeps sharing a file system (two SLURM jobs, two
``--limit 1`` calls, two schedulers) never run one run at the same time, and a run whose
claimer died is taken over after ``stale`` seconds. Heartbeat ages are read from the file
system's modification times, so the hosts' clocks must agree to well within ``stale``
(NTP does that on every cluster).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from ..io.locking import process_alive

__all__ = ["HEARTBEAT_S", "STALE_S", "Claim", "ClaimHeld", "acquire", "holder", "claim_path"]

HEARTBEAT_S = 5.0
STALE_S = 30.0


class ClaimHeld(RuntimeError):
    """Another live process holds the claim on a run."""


def claim_path(run_path: str) -> str:
    """Where the claim on the run file ``run_path`` lives."""
    return f"{run_path}.claim"


def _read(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        age = time.time() - os.stat(path).st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    try:
        info = json.loads(text)
    except ValueError:
        info = {}  # being written right now, or damaged: judged by its age alone
    if not isinstance(info, dict):
        info = {}
    info["age"] = age
    return info


def _is_live(info: dict, stale: float) -> bool:
    if info["age"] >= stale:
        return False
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return process_alive(info["pid"])
    return True


def holder(run_path: str, stale: float = STALE_S) -> dict | None:
    """The live claim on ``run_path`` (``host``, ``pid``, ``age`` in seconds), or None."""
    info = _read(claim_path(run_path))
    return info if info is not None and _is_live(info, stale) else None


def _describe(info: dict) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} (heartbeat {info['age']:.0f} s ago)"


@dataclass
class Claim:
    """A held claim; :meth:`release` (or leaving the ``with`` block) gives it up."""

    run_path: str
    token: str
    heartbeat: float = HEARTBEAT_S
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _beat(self) -> None:
        path = claim_path(self.run_path)
        while not self._stop.wait(self.heartbeat):
            try:
                os.utime(path)
            except OSError:
                pass  # removed or unreachable for a moment; the next beat tries again

    def start(self) -> Claim:
        self._thread = threading.Thread(target=self._beat, name="particledyn-claim", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still this claim's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        path = claim_path(self.run_path)
        info = _read(path)
        if info is not None and info.get("token") == self.token:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _break_stale(path: str, seen: dict) -> None:
    """Remove a stale claim, unless a new claim replaced it meanwhile."""
    aside = f"{path}.stale-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    taken = _read(aside)
    if taken is not None and taken.get("token") != seen.get("token") and _is_live(taken, STALE_S):
        try:  # it was a fresh claim made after we looked: put it back
            os.link(aside, path)
        except OSError:
            pass
    try:
        os.unlink(aside)
    except FileNotFoundError:
        pass


def acquire(run_path: str, heartbeat: float = HEARTBEAT_S, stale: float = STALE_S) -> Claim:
    """Claim ``run_path`` for this process and start its heartbeat.

    Raises
    ------
    ClaimHeld
        Another live process holds it (the message names host and PID).
    """
    if not 0 < heartbeat < stale:
        raise ValueError(f"heartbeat={heartbeat!r}, stale={stale!r}: expected 0 < heartbeat < stale")
    path = claim_path(run_path)
    token = uuid.uuid4().hex
    body = json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "token": token, "since": time.time()}
    )
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read(path)
            if info is None:
                continue  # released between our two looks
            if _is_live(info, stale):
                raise ClaimHeld(f"{run_path} is being run by {_describe(info)}") from None
            _break_stale(path, info)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        return Claim(run_path, token, heartbeat).start()
    raise ClaimHeld(f"{run_path}: its claim changed hands three times while we looked; try again")
