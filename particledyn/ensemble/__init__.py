"""Ensembles: R independent replicas of a run stepped as one simulation, one file with a replica axis.

:class:`Ensemble` steps them (one fused kernel call for two-layer networks);
:class:`ReplicaRun` reads replica i of an ensemble file with the API of a single run's
:class:`~particledyn.io.reader.Run`. The names load on first use (the scenario schema imports
:mod:`.scenario_keys` without the kernels).
"""

from importlib import import_module

__all__ = ["Ensemble", "ReplicaRun", "is_ensemble", "replica_name"]
_HOMES = {
    "Ensemble": ".ensemble",
    "replica_name": ".ensemble",
    "ReplicaRun": ".reader",
    "is_ensemble": ".reader",
}


def __getattr__(name):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
