"""Topology diagnostics of the neuron cloud: Betti numbers, landmarks, Theorem 2, zigzags.

Conventions (all modules): a Rips complex at scale ``r`` holds the simplices
whose edges all have length ``<= r`` (``r`` is an edge length, as in the paper
and GUDHI); the alpha / union-of-balls model takes ``r`` as a ball radius.
``b_k(r)`` counts the dimension-``k`` persistence pairs with
``birth <= r < death``. Diagrams are ``(n_pairs, 3)`` arrays of
``[dim, birth, death]``.
"""

from .betti import (
    ADAPTIVE_FRACTION,
    BettiResult,
    alpha_diagram,
    betti_numbers,
    betti_series,
    cloud_diameter,
    resolve_scales,
    rips_diagram,
)
from .diagrams import betti_from_diagram, bottleneck_distances, pack_diagrams, unpack_diagrams
from .expansion import (
    ExpansionResult,
    empirical_lipschitz,
    expansion_check,
    min_separation,
    union_of_balls_betti,
)
from .landmarks import covering_radius, maxmin_landmarks, maxmin_landmarks_reference
from .observers import BettiObserver, ExpansionObserver, ZigzagObserver
from .zigzag import frame_simplices, zigzag_barcode

__all__ = [
    "ADAPTIVE_FRACTION",
    "BettiResult",
    "alpha_diagram",
    "betti_numbers",
    "betti_series",
    "cloud_diameter",
    "resolve_scales",
    "rips_diagram",
    "betti_from_diagram",
    "bottleneck_distances",
    "pack_diagrams",
    "unpack_diagrams",
    "ExpansionResult",
    "empirical_lipschitz",
    "expansion_check",
    "min_separation",
    "union_of_balls_betti",
    "covering_radius",
    "maxmin_landmarks",
    "maxmin_landmarks_reference",
    "BettiObserver",
    "ExpansionObserver",
    "ZigzagObserver",
    "frame_simplices",
    "zigzag_barcode",
]
