"""Replica i of an ensemble file, read with the API of a single run: :class:`ReplicaRun`.

An ensemble file is an ordinary particledyn H5MD file: frames of R x N rows (replica-major),
replica i's observer ``name`` as the observables ``name@r<i>``, the per-replica step, time and
liveness as ``ensemble/*``, and a checkpoint whose ``ensemble`` entry holds the per-replica
counters. The view slices these back into what the replica's single run would have written.
"""

from __future__ import annotations

import numpy as np

from .ensemble import META, OBSERVER_SUFFIX, replica_name


def is_ensemble(checkpoint) -> bool:
    """Whether a checkpoint (a dict, or None) is an :class:`~particledyn.Ensemble`'s."""
    return isinstance(checkpoint, dict) and isinstance(checkpoint.get("ensemble"), dict)


class ReplicaRun:
    """Replica ``index`` of an open ensemble :class:`~particledyn.io.reader.Run`.

    Offers what a single run's ``Run`` offers (``steps``, ``times``, ``positions``,
    ``particle_series``, ``ids``, ``masses``, ``observables``, ``observer_descriptions``,
    ``observers_of_type``, ``series``, ``observable``,
    ``parameters``, ``finished``, ``checkpoint``, ``path``, ``file``), each as the replica's
    own run would show it: a replica that diverged shows the frames it recorded before.

    Parameters
    ----------
    run : particledyn.io.reader.Run
        An open ensemble file (it stays open as long as the view is used).
    index : int

    Raises
    ------
    ValueError
        ``run`` is not an ensemble file.
    IndexError
        ``index`` outside [0, R).
    """

    def __init__(self, run, index: int):
        checkpoint = run.checkpoint()
        if not is_ensemble(checkpoint):
            raise ValueError(f"{run.path!r} is not an ensemble file (its checkpoint has no 'ensemble' entry)")
        replicas = int(checkpoint["ensemble"]["replicas"])
        if isinstance(index, bool) or int(index) != index or not 0 <= index < replicas:
            raise IndexError(f"replica {index!r}: expected an integer in [0, {replicas})")
        self.run, self.index, self.replicas = run, int(index), replicas
        self.path, self.file = run.path, run.file
        self._n = int(checkpoint["positions"].shape[1])
        self._rows = slice(self.index * self._n, (self.index + 1) * self._n)

    def _counters(self) -> dict:
        info = self.run.checkpoint()["ensemble"]
        return {key: info[key][self.index] for key in ("steps", "times", "seeds", "recorded", "diverged")}

    def _frame_mask(self, steps: np.ndarray) -> np.ndarray:
        counters = self._counters()
        if counters["diverged"]:
            return steps <= int(counters["recorded"])
        return np.ones(len(steps), dtype=bool)

    @property
    def steps(self) -> np.ndarray:
        """Steps of the replica's committed frames."""
        steps = self.run.steps
        return steps[self._frame_mask(steps)]

    @property
    def times(self) -> np.ndarray:
        """The replica's times (sums of its learning rates) at those frames."""
        steps, times = self.run.observable(META, "time")
        wanted = self.steps
        return times[np.searchsorted(steps, wanted), self.index] if len(wanted) else np.zeros(0)

    def positions(self, step: int | None = None, name: str = "position") -> np.ndarray:
        """Positions at ``step`` (N, D), or all the replica's frames (n, N, D)."""
        if step is None:
            frames = self.run.positions(None, name)
            return frames[self._frame_mask(self.run.steps)][:, self._rows]
        if not self._frame_mask(np.array([int(step)]))[0]:
            raise KeyError(f"no committed frame at step {step} of replica {self.index} in {self.path!r}")
        return self.run.positions(step, name)[self._rows]

    @property
    def particle_series(self) -> list[str]:
        """Names of the per-particle time series (position and optimizer state)."""
        return self.run.particle_series

    @property
    def ids(self) -> np.ndarray | None:
        """Indices of the replica's particles."""
        ids = self.run.ids
        return None if ids is None else ids[self._rows] - self._rows.start

    @property
    def masses(self) -> np.ndarray | None:
        """Masses of the replica's particles, when stored."""
        masses = self.run.masses
        return None if masses is None else masses[self._rows]

    @property
    def observables(self) -> dict[str, list[str]]:
        """The replica's observer names mapped to their keys."""
        tail = f"{OBSERVER_SUFFIX}{self.index}"
        return {
            name[: -len(tail)]: keys for name, keys in self.run.observables.items() if name.endswith(tail)
        }

    @property
    def observer_descriptions(self) -> dict[str, dict]:
        """The replica's observer names mapped to what each is (as ``Run.observer_descriptions``)."""
        tail = f"{OBSERVER_SUFFIX}{self.index}"
        return {
            name[: -len(tail)]: description
            for name, description in self.run.observer_descriptions.items()
            if name.endswith(tail)
        }

    def observers_of_type(self, kind: str) -> list[str]:
        """Names of the replica's observers of type ``kind`` (as ``Run.observers_of_type``)."""
        from ..io.observer_attrs import observers_of_type

        return observers_of_type(self.observer_descriptions, kind)

    def series(self, name: str, key: str):
        """The HDF5 time series group of the replica's observable ``name``/``key``."""
        return self.run.series(replica_name(name, self.index), key)

    def observable(self, name: str, key: str):
        """Steps and values of the replica's observable ``name``/``key`` (as ``Run.observable``)."""
        return self.run.observable(replica_name(name, self.index), key)

    @property
    def parameters(self) -> dict:
        """The file's parameters, with ``replica`` (the index) and ``replica_seed``."""
        return {**self.run.parameters, "replica": self.index, "replica_seed": int(self._counters()["seeds"])}

    @property
    def finished(self) -> bool:
        """Whether the ensemble's writer closed the file as finished."""
        return self.run.finished

    def checkpoint(self) -> dict | None:
        """The replica's part of the newest checkpoint, shaped as a single run's."""
        full = self.run.checkpoint()
        counters = self._counters()
        tail = f"{OBSERVER_SUFFIX}{self.index}"
        out = {
            "step": int(counters["steps"]),
            "time": float(counters["times"]),
            "seed": int(counters["seeds"]),
            "positions": full["positions"][self.index],
            "masses": full["masses"][self.index],
            "optimizer_state": {k: v[self.index] for k, v in full["optimizer_state"].items()},
            "observers": {
                k[: -len(tail)]: v for k, v in full.get("observers", {}).items() if k.endswith(tail)
            },
            "threads": full.get("threads"),
        }
        if counters["diverged"]:
            out["diverged"] = dict(counters["diverged"])
        rules = full["ensemble"].get("divergence")
        if rules is not None:
            out["divergence"] = rules[self.index]
        return out

    def close(self) -> None:
        """Close the underlying file."""
        self.run.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"ReplicaRun({self.path!r}, replica {self.index} of {self.replicas})"
