"""Refuse scenarios whose arrays cannot fit in memory, before anything is allocated.

A lower bound of what a run must hold (the particle arrays, the data set) is
compared with this machine's memory (physical memory, or the cgroup limit when
lower). A scenario above it gets a one-line :class:`ScenarioError` naming the
key that drives the size, instead of a MemoryError (or the kernel's OOM killer)
minutes later.
"""
from __future__ import annotations

import os

from .checks import ScenarioError

#: Input and output dimensions of the data sets whose size the scenario does not set.
_FIXED_DIMENSIONS = {"digits": (64, 10), "mnist": (784, 10)}
_OPTIMIZER_COPIES = {"gd": 0, "sgd": 0, "momentum": 1, "adam": 2}


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or the cgroup v2 limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            limit = handle.read().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def _particles(init: dict) -> int | None:
    if init["shape"] != "union":
        return init["n"]
    counts = [part.get("n") for part in init["parts"]]
    return sum(counts) if all(isinstance(c, int) and not isinstance(c, bool) for c in counts) else None


def _dimensions(resolved: dict) -> tuple[int, int]:
    """(input dimension, particle dimension D) of a resolved scenario."""
    data, kernel = resolved["data"], resolved["kernel"]
    kind = data["kind"]
    if kind == "teacher_student":
        d_in, d_out = data["d"], 1
    elif kind == "linear_teacher_task":
        d_in, d_out = data["d_in"], data["d_out"]
    else:
        d_in, d_out = _FIXED_DIMENSIONS[kind]
    if kernel["kind"] == "multi_layer":
        return d_in, 2
    return d_in, d_in + d_out + int(bool(kernel.get("hidden_bias")))


def _data_bytes(resolved: dict, d_in: int) -> tuple[str, int, int]:
    """(key, its value, bytes) for the data set: inputs, targets and the teacher's activations."""
    data = resolved["data"]
    if data["kind"] == "teacher_student":
        return "data.n", data["n"], data["n"] * (d_in + 1 + data["teacher_width"]) * 8
    if data["kind"] == "linear_teacher_task":
        samples = data["n_train"] + data["n_eval"]
        return "data.n_train", data["n_train"], samples * (d_in + 2 * data["d_out"]) * 8
    return "data.kind", data["kind"], 0  # digits and mnist: bounded by the files they read


def estimate_bytes(resolved: dict) -> dict[str, tuple[object, int]]:
    """A lower bound of the memory a run needs, by the key that drives each part.

    Returns
    -------
    dict
        ``{key path: (its value, bytes)}`` for the particles (``init.n``: positions,
        field, update and optimizer state, in ``run.dtype``; the positions only with
        ``run.backend = "cupy"``) and the data set.
    """
    d_in, dim = _dimensions(resolved)
    itemsize = 4 if resolved["run"]["dtype"] == "float32" else 8
    # on the GPU the field and the optimizer state live on the device: the host keeps the positions
    on_host = resolved["run"]["backend"] != "cupy"
    copies = 3 + _OPTIMIZER_COPIES[resolved["optimizer"]["name"]] if on_host else 1
    key, value, data_bytes = _data_bytes(resolved, d_in)
    parts = {key: (value, data_bytes)}
    n = _particles(resolved["init"])
    if n is not None:
        parts["init.n"] = (n, n * dim * itemsize * copies)
    return parts


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.3g} GB"


def check_memory(resolved: dict, available: int | None = None) -> None:
    """Refuse a scenario whose arrays cannot fit in memory.

    Parameters
    ----------
    resolved : dict
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
    total = sum(size for _, size in parts.values())
    if total <= available:
        return
    key, (value, size) = max(parts.items(), key=lambda item: item[1][1])
    what = "the particles" if key == "init.n" else "the data set"
    raise ScenarioError(f"{key} = {value}: the run needs at least {_gb(total)} of memory ({what}: "
                        f"{_gb(size)}), more than the {_gb(available)} of this machine; expected a "
                        f"smaller {key}")
