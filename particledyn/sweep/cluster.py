"""Where a sweep's runs execute: a LocalCluster, a running scheduler, or batch jobs through
dask-jobqueue; checks that the workers can write the output folder; waiting on the runs
while watching that workers remain."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from .grid import ClusterSpec, SweepError

__all__ = [
    "open_client",
    "local_worker_environ",
    "check_workers_can_write",
    "wait_for_runs",
    "NoWorkersError",
]


class NoWorkersError(RuntimeError):
    """No Dask worker was left for longer than ``cluster.no_worker_timeout``."""


def local_worker_environ() -> dict:
    """The environment Dask's nanny gives new workers, without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it to 64 KiB against memory fragmentation; a run allocates a few arrays per
    step, and glibc returning memory that often made runs 1.8x slower in a worker than in
    a plain process (measured: 1.73 s against 0.95 s for one run). The BLAS/OpenMP thread
    limits (1 per worker) are kept.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def _jobqueue_cluster(cluster: ClusterSpec):
    try:
        import dask_jobqueue
    except ImportError:
        raise SweepError(
            f"cluster.jobqueue = {cluster.jobqueue!r} needs dask-jobqueue: "
            "in the particledyn checkout: pip install -e '.[dist]'"
        ) from None
    Jobs: Callable[..., Any]  # a dask-jobqueue cluster class
    if cluster.jobqueue == "local":  # dask-jobqueue's own test double: job scripts run as local processes
        from dask_jobqueue.local import LocalCluster

        Jobs = LocalCluster
    else:
        Jobs = getattr(
            dask_jobqueue,
            {
                "slurm": "SLURMCluster",
                "pbs": "PBSCluster",
                "sge": "SGECluster",
                "lsf": "LSFCluster",
                "htcondor": "HTCondorCluster",
                "oar": "OARCluster",
                "moab": "MoabCluster",
            }[cluster.jobqueue],
        )
    options: dict[str, Any] = {"cores": cluster.threads_per_worker, "memory": "4GB", "processes": 1}
    options.update(cluster.options)
    try:
        jobs = Jobs(**options)
    except (TypeError, ValueError) as exc:
        raise SweepError(
            f"cluster.options: dask-jobqueue refused them: {' '.join(str(exc).split())}"
        ) from None
    jobs.scale(jobs=cluster.jobs)
    return jobs


@contextlib.contextmanager
def open_client(cluster: ClusterSpec):
    """A dask.distributed Client: to ``cluster.address``, to batch jobs of ``cluster.jobqueue``,
    or to a new LocalCluster (the cluster this opened is closed after)."""
    from distributed import Client, LocalCluster

    if cluster.address:
        try:
            client = Client(cluster.address, timeout="30s")
        except OSError as exc:
            raise SweepError(
                f"cluster.address = {cluster.address!r}: cannot reach the scheduler: "
                f"{' '.join(str(exc).split())}"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    if cluster.jobqueue:
        owned = _jobqueue_cluster(cluster)
    else:
        import dask

        with dask.config.set({"distributed.nanny.pre-spawn-environ": local_worker_environ()}):
            owned = LocalCluster(
                n_workers=cluster.workers,
                threads_per_worker=cluster.threads_per_worker,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
    client = Client(owned)
    try:
        yield client
    finally:
        client.close()
        owned.close()


def _probe_writable(folder: str) -> str:
    """On a worker: '' when ``folder`` can be created and written there, else why not."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".probe-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        with open(probe, "w") as handle:
            handle.write("ok")
        os.unlink(probe)
    except OSError as exc:
        return f"{socket.gethostname()}: {exc.strerror or exc} ({folder})"
    return ""


def check_workers_can_write(client, folder: str, timeout: float) -> None:
    """Check from the workers (those up now, and one task wherever it lands) that ``folder``
    is writable; an absolute path on a shared file system is what a cluster needs.

    Raises
    ------
    SweepError
        A worker cannot write there (the message names the host and the reason).
    NoWorkersError
        No worker was up for ``timeout`` seconds while the probe waited (a worker that is up
        but slow to take it, e.g. still importing on a loaded node, is waited for).
    """
    problems = [
        p for p in client.run(_probe_writable, folder, on_error="return").values() if isinstance(p, str) and p
    ]
    probe = client.submit(_probe_writable, folder, pure=False)
    try:
        wait_for_runs(client, {probe: folder}, lambda future: None, patience=timeout)
    except NoWorkersError:
        raise NoWorkersError(
            f"no Dask worker up for {timeout:g} s to take a task "
            "(cluster.no_worker_timeout); are workers running?"
        ) from None
    problem = probe.result()
    problems += [problem] if problem else []
    if problems:
        raise SweepError(
            f"the output folder is not writable from a worker: {problems[0]}; "
            "use a folder on a file system every worker shares"
        )


def _worker_count(client) -> int:
    try:
        return len(client.scheduler_info(n_workers=-1).get("workers", {}))
    except Exception:  # the scheduler is away for a moment: count as none
        return 0


def wait_for_runs(client, futures: dict, on_done, patience: float, poll: float = 0.25) -> None:
    """Call ``on_done(future)`` as each future finishes; stop with :class:`NoWorkersError`
    when no worker has been left for ``patience`` seconds. Whatever ends the wait early (that
    error, a signal, ``on_done`` raising) cancels the futures still pending before it propagates
    (a task already running goes on in its thread until it stops)."""
    pending = set(futures)
    try:
        _wait(client, pending, on_done, patience, poll)
    except BaseException:
        for future in pending:
            future.cancel()
        raise


def _wait(client, pending: set, on_done, patience: float, poll: float) -> None:
    from .stop import raise_if_stopped

    alone_since = None
    last_check = 0.0
    while pending:
        finished = [f for f in pending if f.done()]
        for future in finished:
            pending.discard(future)
            on_done(future)
        if not pending:
            break
        now = time.monotonic()
        if now - last_check >= 1.0:
            last_check = now
            if _worker_count(client) == 0:
                alone_since = alone_since if alone_since is not None else now
                if now - alone_since >= patience:
                    raise NoWorkersError(
                        f"no Dask worker left for {patience:g} s "
                        f"(cluster.no_worker_timeout) with {len(pending)} runs to go"
                    )
            else:
                alone_since = None
        raise_if_stopped()
        if not finished:
            time.sleep(poll)
