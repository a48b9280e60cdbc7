"""Conserved quantities of homogeneous (ReLU) two-layer networks (seeds 002, 004).

A neuron ``x_i = (w_i, a_i)`` of ``f(z) = sum_i a_i relu(w_i . z)`` enters the
output through ``a_i relu(w_i . z)``, which is invariant under
``(w, a) -> (s w, a / s)``, s > 0. Differentiating that invariance gives
``a_i dL/da_i = w_i . dL/dw_i``, so under gradient flow the *balance*
``c_i = ||a_i||^2 - ||w_i||^2`` is conserved. One gradient-descent step with
update ``U = -grad L`` changes it by exactly

    c_i(t+1) - c_i(t) = 2 eta (a_i . U_a - w_i . U_w) + eta^2 (||U_a||^2 - ||U_w||^2),

whose first term vanishes by the identity: the drift is O(eta^2).

Invariant set. With every c_i fixed, the reachable set is the product over
neurons of the quadrics ``Q(c) = {(w, a) in R^q x R^p : |a|^2 - |w|^2 = c}``:

* c > 0: Q is diffeomorphic to ``S^(p-1) x R^q`` (a = sqrt(c + |w|^2) * unit);
* c < 0: ``R^p x S^(q-1)``;
* c = 0: the cone |a| = |w|, connected (through the origin).

A sphere ``S^(m-1)`` is connected for m >= 2 and is two points for m = 1, so a
neuron contributes a factor 2 to the number of connected components exactly
when (c > 0 and p = 1): a scalar output weight that can never change sign, the
*pathological* neurons of seed 004; or (c < 0 and q = 1): a scalar input
weight that can never change sign. The product has ``2^m`` components, m the
number of such neurons. Up to permutations of the neurons (which map a
component to one realising the same functions), a component is determined by
how many of the sign-fixed output weights are positive and how many of the
sign-fixed input weights are positive: ``(m_a + 1)(m_w + 1)`` effective
components, linear in the number of pathological neurons as seed 004 states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .neighbours import as_positions


def _output_columns(dim: int, output_columns) -> np.ndarray:
    columns = np.atleast_1d(np.asarray(output_columns))
    if not np.issubdtype(columns.dtype, np.integer) or columns.ndim != 1:
        raise TypeError(f"output_columns={output_columns!r}: expected an int or a list of ints")
    if (columns < -dim).any() or (columns >= dim).any():
        raise ValueError(f"output_columns={output_columns!r}: out of range for D = {dim}")
    columns = np.unique(columns % dim)
    if len(columns) == dim:
        raise ValueError(
            f"output_columns={output_columns!r}: covers every column; expected at "
            "least one input-weight column"
        )
    return columns


def split_neurons(positions, output_columns=-1) -> tuple[np.ndarray, np.ndarray]:
    """Split neurons into input weights w (N, q) and output weights a (N, p).

    Parameters
    ----------
    positions : array_like, shape (N, D)
    output_columns : int or sequence of int
        Columns holding the output weight(s); the rest are input weights
        (a bias folded into w keeps the homogeneity).
    """
    positions = as_positions(positions)
    columns = _output_columns(positions.shape[1], output_columns)
    mask = np.zeros(positions.shape[1], dtype=bool)
    mask[columns] = True
    return positions[:, ~mask], positions[:, mask]


def relu_balance(positions, output_columns=-1) -> np.ndarray:
    """Per-neuron balance ``c_i = ||a_i||^2 - ||w_i||^2``.

    Returns
    -------
    ndarray, shape (N,)
    """
    w, a = split_neurons(positions, output_columns)
    return np.einsum("np,np->n", a, a) - np.einsum("nq,nq->n", w, w)


@dataclass(frozen=True)
class BalanceDrift:
    """Result of :func:`balance_drift` (all maxima over neurons).

    Attributes
    ----------
    max_drift : float
        ``max |c_i(t+1) - c_i(t)|`` measured from the positions.
    max_first_order : float
        ``max |2 eta (a . U_a - w . U_w)|``: zero up to round-off for a
        homogeneous net under gradient descent.
    max_second_order : float
        ``max |eta^2 (||U_a||^2 - ||U_w||^2)|``, the expected O(eta^2) drift.
    max_mismatch : float
        ``max |measured - (first + second order)|`` (round-off only: the
        expansion is exact for one step).
    """

    max_drift: float
    max_first_order: float
    max_second_order: float
    max_mismatch: float


def balance_drift(previous_positions, positions, update, lr: float, output_columns=-1) -> BalanceDrift:
    """Drift of the balance over one step ``x(t+1) = x(t) + lr * U``.

    Parameters
    ----------
    previous_positions, positions : array_like, shape (N, D)
        x(t) and x(t+1).
    update : array_like, shape (N, D)
        U(t).
    lr : float
    output_columns : int or sequence of int

    Returns
    -------
    BalanceDrift
    """
    before = as_positions(previous_positions, "previous_positions")
    after = as_positions(positions, "positions")
    update = as_positions(update, "update")
    if not before.shape == after.shape == update.shape:
        raise ValueError(
            f"shapes {before.shape}, {after.shape}, {update.shape}: expected "
            "previous_positions, positions and update alike"
        )
    lr = float(lr)
    drift = relu_balance(after, output_columns) - relu_balance(before, output_columns)
    w, a = split_neurons(before, output_columns)
    uw, ua = split_neurons(update, output_columns)
    first = 2.0 * lr * (np.einsum("np,np->n", a, ua) - np.einsum("nq,nq->n", w, uw))
    second = lr * lr * (np.einsum("np,np->n", ua, ua) - np.einsum("nq,nq->n", uw, uw))
    peak = lambda v: float(np.abs(v).max()) if v.size else 0.0  # noqa: E731
    return BalanceDrift(peak(drift), peak(first), peak(second), peak(drift - first - second))


@dataclass(frozen=True)
class InvariantSetComponents:
    """Result of :func:`invariant_set_components`.

    Attributes
    ----------
    n_pathological : int
        Neurons with c > tol and a scalar output weight (sign of a fixed).
    n_pathological_positive : int
        Of those, how many have a > 0 now (which component the cloud is in).
    n_fixed_input_sign : int
        Neurons with c < -tol and a scalar input weight (sign of w fixed).
    log2_components : int
        The invariant set has ``2 ** log2_components`` connected components.
    n_effective_components : int
        Components up to permutations of the neurons: ``(m_a + 1)(m_w + 1)``.
    """

    n_pathological: int
    n_pathological_positive: int
    n_fixed_input_sign: int
    log2_components: int
    n_effective_components: int

    @property
    def n_components(self) -> int:
        """The exact number of components (a Python int; can be huge)."""
        return 2**self.log2_components


def invariant_set_components(positions, output_columns=-1, tol: float = 0.0) -> InvariantSetComponents:
    """Connected components of the invariant set through the current cloud.

    Parameters
    ----------
    positions : array_like, shape (N, D)
    output_columns : int or sequence of int
    tol : float
        ``|c_i| <= tol`` counts as c = 0 (a connected cone).

    Returns
    -------
    InvariantSetComponents
    """
    w, a = split_neurons(positions, output_columns)
    tol = float(tol)
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol={tol!r}: expected a non-negative tolerance")
    c = np.einsum("np,np->n", a, a) - np.einsum("nq,nq->n", w, w)
    scalar_out, scalar_in = a.shape[1] == 1, w.shape[1] == 1
    pathological = (c > tol) if scalar_out else np.zeros(len(c), dtype=bool)
    fixed_input = (c < -tol) if scalar_in else np.zeros(len(c), dtype=bool)
    m_a, m_w = int(pathological.sum()), int(fixed_input.sum())
    positive = int((a[pathological, 0] > 0).sum()) if scalar_out else 0
    return InvariantSetComponents(m_a, positive, m_w, m_a + m_w, (m_a + 1) * (m_w + 1))
