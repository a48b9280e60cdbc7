"""Geometry diagnostics of the particle cloud: pairwise K (Lemma 4), Lemma 1/2
checks, merges and atom masses (Theorems 1 and 3), sharpness by Lanczos, and
the conserved balance of ReLU networks.

Pure functions do the work; the observers in :mod:`.observers` run them on a
cadence and share one :class:`NeighbourPairs` per configuration;
:func:`kernel_sharpness` wires the sharpness observer to a running simulation.
"""

from ._kernel_sharpness import KernelSharpnessObserver, kernel_sharpness
from .conserved import (
    BalanceDrift,
    InvariantSetComponents,
    balance_drift,
    invariant_set_components,
    relu_balance,
    split_neurons,
)
from .lemmas import (
    LEMMA_RTOL,
    LemmaCheck,
    bounds_check,
    extreme_pairs,
    lemma_check,
    lemma_tolerances,
    rounding_atol,
)
from .lipschitz import PairwiseLipschitz, pairwise_lipschitz
from .merges import (
    DEFAULT_EPS,
    MergeStatistics,
    atom_masses,
    default_mass_bins,
    mass_histogram,
    merge_statistics,
)
from .neighbours import ALL_PAIRS_MAX_N, NeighbourCache, NeighbourPairs, connected_atoms
from .observers import (
    BalanceObserver,
    ClosestApproachObserver,
    LemmaObserver,
    MergeObserver,
    PairwiseLipschitzObserver,
    SharpnessObserver,
    closest_pair,
    geometry_observers,
)
from .sharpness import (
    SharpnessResult,
    adam_preconditioner,
    finite_difference_hvp,
    gradient_fraction,
    preconditioned_hvp,
    stability_thresholds,
    top_eigenpairs,
)

__all__ = [
    "ALL_PAIRS_MAX_N",
    "DEFAULT_EPS",
    "LEMMA_RTOL",
    "NeighbourPairs",
    "NeighbourCache",
    "connected_atoms",
    "PairwiseLipschitz",
    "pairwise_lipschitz",
    "LemmaCheck",
    "lemma_check",
    "rounding_atol",
    "MergeStatistics",
    "merge_statistics",
    "atom_masses",
    "mass_histogram",
    "default_mass_bins",
    "SharpnessResult",
    "top_eigenpairs",
    "finite_difference_hvp",
    "preconditioned_hvp",
    "adam_preconditioner",
    "stability_thresholds",
    "gradient_fraction",
    "BalanceDrift",
    "InvariantSetComponents",
    "relu_balance",
    "split_neurons",
    "balance_drift",
    "invariant_set_components",
    "PairwiseLipschitzObserver",
    "LemmaObserver",
    "MergeObserver",
    "ClosestApproachObserver",
    "closest_pair",
    "bounds_check",
    "extreme_pairs",
    "lemma_tolerances",
    "BalanceObserver",
    "SharpnessObserver",
    "geometry_observers",
    "KernelSharpnessObserver",
    "kernel_sharpness",
]
