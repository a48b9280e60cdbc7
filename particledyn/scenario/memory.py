"""Refuse scenarios whose arrays cannot fit in memory, before anything is allocated.

A lower bound of what a run must hold (the particle arrays, the data set) is
compared with this machine's memory (physical memory, or the cgroup limit when
lower). A scenario above it gets a one-line :class:`ScenarioError` naming the
key that drives the size, instead of a MemoryError (or the kernel's OOM killer)
minutes later.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .checks import ScenarioError

if TYPE_CHECKING:
    from .resolved import ResolvedScenario


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or the cgroup v2 limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            limit = handle.read().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def _particles(init) -> int | None:
    if init.shape != "union":
        return init.n
    counts = [part.get("n") for part in init.parts]
    return sum(counts) if all(isinstance(c, int) and not isinstance(c, bool) for c in counts) else None


def estimate_bytes(resolved: ResolvedScenario) -> dict[str, tuple[object, int]]:
    """A lower bound of the memory a run needs, by the key that drives each part.

    Returns
    -------
    dict
        ``{key path: (its value, bytes)}`` for the particles (``init.n``: positions,
        field, update and optimizer state, in ``run.dtype``; the positions only with
        ``run.backend = "cupy"``) and the data set; a part whose registry entry (data kind,
        kernel) cannot say its size before building is left out.
    """
    from .kernels import KERNELS
    from .sections import DATA_KINDS, OPTIMIZERS

    data, kernel, run = resolved.data, resolved.kernel, resolved.run
    size = DATA_KINDS.get_entry(data.kind).size
    if size is None:  # a data kind that says nothing before it is built
        return {}
    d_in, d_out, key, data_bytes = size(data.to_dict())
    parts = {key: (getattr(data, key.split(".")[1]), data_bytes)}
    dim = KERNELS.get_entry(kernel.kind).dim
    n = _particles(resolved.init)
    if n is not None and dim is not None:
        itemsize = 4 if run.dtype == "float32" else 8
        # on the GPU the field and the optimizer state live on the device: the host keeps the positions
        on_host = run.backend != "cupy"
        copies = 3 + OPTIMIZERS.get_entry(resolved.optimizer.name).state_copies if on_host else 1
        parts["init.n"] = (n, n * dim(kernel.to_dict(), d_in, d_out) * itemsize * copies)
    return parts


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.3g} GB"


def check_memory(resolved: ResolvedScenario, available: int | None = None) -> None:
    """Refuse a scenario whose arrays cannot fit in memory.

    Parameters
    ----------
    resolved : ResolvedScenario
        A resolved scenario (:func:`particledyn.scenario.validate_scenario`).
    available : int, optional
        Bytes available (default: :func:`machine_memory`).

    Raises
    ------
    ScenarioError
        The lower bound of :func:`estimate_bytes` exceeds ``available``; the message
        names the key of the largest part, e.g. ``init.n = 2000000000: the run needs
        at least 160 GB of memory ...``.
    """
    available = machine_memory() if available is None else available
    parts = estimate_bytes(resolved)
    if not parts:
        return
    total = sum(size for _, size in parts.values())
    if total <= available:
        return
    key, (value, size) = max(parts.items(), key=lambda item: item[1][1])
    what = "the particles" if key == "init.n" else "the data set"
    raise ScenarioError(
        f"{key} = {value}: the run needs at least {_gb(total)} of memory ({what}: "
        f"{_gb(size)}), more than the {_gb(available)} of this machine; expected a "
        f"smaller {key}"
    )
