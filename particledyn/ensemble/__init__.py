"""Ensembles: R independent replicas of a run stepped as one simulation, one file with a replica axis.

:class:`Ensemble` steps them (one fused kernel call for two-layer networks);
:class:`ReplicaRun` reads replica i of an ensemble file with the API of a single run's
:class:`~particledyn.io.reader.Run`.
"""
from .ensemble import Ensemble, replica_name
from .reader import ReplicaRun, is_ensemble

__all__ = ["Ensemble", "ReplicaRun", "is_ensemble", "replica_name"]
