"""Pairwise Lipschitz constant of an update (Lemma 4 of the main paper).

For a permutation-equivariant, K-Lipschitz update U, Lemma 4 gives
``||U_i - U_j|| <= K ||x_i - x_j||`` for every pair. The largest ratio over
neighbour pairs is therefore a lower bound on K measured from the cloud itself,
the "pairwise K"; it sits beside lambda_max of the Hessian (for gradient
descent U = -grad L, so K <= ||H||_2). Being measured on the pairs, it cannot
test Lemma 2 on the same pairs and step (see :mod:`.lemmas`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .neighbours import NeighbourPairs, as_positions


@dataclass(frozen=True)
class PairwiseLipschitz:
    """Result of :func:`pairwise_lipschitz`.

    Attributes
    ----------
    K : float
        max over pairs with ``d_ij > 0`` of ``||U_i - U_j|| / d_ij``; 0.0 when
        there is no such pair.
    pair : tuple of int
        The pair (i, j) attaining K, or (-1, -1).
    n_pairs : int
        Pairs with ``d_ij > 0`` that entered the maximum.
    n_coincident : int
        Pairs excluded because ``d_ij == 0`` exactly.
    """

    K: float
    pair: tuple[int, int]
    n_pairs: int
    n_coincident: int


def max_ratio(spread, distances) -> float:
    """``max spread / distances`` over entries with ``distances > 0`` (0.0 when there is none)."""
    positive = distances > 0
    if not positive.any():
        return 0.0
    return float((spread[positive] / distances[positive]).max())


def pairwise_lipschitz(pairs: NeighbourPairs, update) -> PairwiseLipschitz:
    """Largest ``||U_i - U_j|| / ||x_i - x_j||`` over the neighbour pairs.

    Parameters
    ----------
    pairs : NeighbourPairs
        Pairs of the configuration x at which ``update`` was evaluated.
    update : array_like, shape (N, D)
        The update U(x) (for gradient descent, the negative gradient).

    Returns
    -------
    PairwiseLipschitz
    """
    if not isinstance(pairs, NeighbourPairs):
        raise TypeError(f"pairs is {type(pairs).__name__}: expected a NeighbourPairs")
    update = np.asarray(update)
    if update.shape != pairs.positions.shape:
        raise ValueError(
            f"update has shape {update.shape}: expected the positions' shape {pairs.positions.shape}"
        )
    if pairs.fused:  # every pair, in one loop (equal to the array code below, tested)
        K, a, b, n_positive, n_none = pairs.ratio_max(as_positions(update, "update"))
        if not n_positive:
            return PairwiseLipschitz(0.0, (-1, -1), 0, n_none)
        return PairwiseLipschitz(K, (a, b), n_positive, n_none)
    distances = pairs.distances
    spread = pairs.norms(update)
    positive = distances > 0
    n_coincident = int(len(distances) - np.count_nonzero(positive))
    if not positive.any():
        return PairwiseLipschitz(0.0, (-1, -1), 0, n_coincident)
    ratio = np.where(positive, spread / np.where(positive, distances, 1.0), -np.inf)
    best = int(np.argmax(ratio))
    i, j = pairs.pairs
    return PairwiseLipschitz(
        float(ratio[best]), (int(i[best]), int(j[best])), int(np.count_nonzero(positive)), n_coincident
    )
