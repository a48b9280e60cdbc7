"""Geometry observers: thin wrappers that run the pure functions on a cadence.

The per-pair observers (pairwise K, Lemma checks, merges) share a
:class:`~particledyn.geometry.neighbours.NeighbourCache`, so one k-d tree and
one neighbour list per configuration serve all of them; build them with
:func:`geometry_observers` or pass the same ``cache`` to each.

Values that need x(t-1) are NaN (floats) or 0 (counts) at step 0, where no
step has been taken yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..observers import Observer, StepInfo
from .apriori import APRIORI_KINDS, check_applicable, step_lipschitz
from .closest import closest_pair_sweep
from .conserved import balance_drift, invariant_set_components, relu_balance
from .lemmas import bounds_check, bounds_check_all_pairs, extreme_pairs, lemma_tolerances, rounding_atol
from .lipschitz import max_ratio, pairwise_lipschitz
from .merges import DEFAULT_EPS, atom_masses, default_mass_bins, mass_histogram, merge_statistics
from .neighbours import NeighbourCache, pair_norms
from .sharpness import gradient_fraction, preconditioned_hvp, stability_thresholds, top_eigenpairs
from .sharpness_power import power_iteration

_NAN = float("nan")


def _cache(cache: NeighbourCache | None, k: int) -> NeighbourCache:
    if cache is None:
        return NeighbourCache(k=k)
    if not isinstance(cache, NeighbourCache):
        raise TypeError(f"cache is {type(cache).__name__}: expected a NeighbourCache or None")
    return cache


def _source(info: StepInfo, source: str) -> np.ndarray:
    values = info.update if source == "update" else info.field
    if values is None:
        raise ValueError(
            f"StepInfo.{source} is None at step {info.step}: the loop must pass it "
            "to observers with needs_previous = True"
        )
    return values


class PairwiseLipschitzObserver(Observer):
    """Pairwise K of Lemma 4 on the step x(t-1) -> x(t), over neighbour pairs of x(t-1).

    Parameters
    ----------
    every : int
        Cadence in steps.
    cache : NeighbourCache, optional
        Shared neighbour lists; a private one (k nearest) otherwise.
    k : int
        Neighbours per particle for a private cache.
    source : {'update', 'field'}
        Measure K of the optimizer's update (default: the map of Lemma 2) or
        of the kernel's raw field.

    Records ``K``, ``eta_K``, ``eta_star``, ``n_pairs``, ``n_coincident``.
    """

    name = "pairwise_lipschitz"
    needs_previous = True

    def __init__(
        self, every: int = 1, *, cache: NeighbourCache | None = None, k: int = 6, source: str = "update"
    ):
        super().__init__(every)
        if source not in ("update", "field"):
            raise ValueError(f"source={source!r}: expected 'update' or 'field'")
        self.cache = _cache(cache, k)
        self.source = source

    def recorded_options(self) -> dict[str, Any]:
        return {"source": self.source, "k": self.cache.options["k"]}

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        if info.previous_positions is None:
            return {"K": _NAN, "eta_K": _NAN, "eta_star": _NAN, "n_pairs": 0, "n_coincident": 0}
        pairs = self.cache.get(info.step - 1, info.previous_positions)
        result = pairwise_lipschitz(pairs, _source(info, self.source))
        return {
            "K": result.K,
            "eta_K": info.lr * result.K,
            "eta_star": 1.0 / result.K if result.K > 0 else float("inf"),
            "n_pairs": result.n_pairs,
            "n_coincident": result.n_coincident,
        }


class LemmaObserver(Observer):
    """Lemma 1 and Lemma 2 checks on the step x(t-1) -> x(t).

    Parameters
    ----------
    K : float, callable or str
        The Lipschitz constant to test. Only a K obtained outside the checked pairs and step
        makes a check that can fail:

        * a number, or ``K(info) -> float``;
        * ``'apriori'``: the certified bound from the per-neuron Jacobian of the two-layer net
          under GD/SGD (:func:`particledyn.geometry.apriori.lipschitz_bound`);
        * ``'jacobian_sup'``: the per-neuron Jacobian's norm maximised over the cloud (an
          estimate, :func:`particledyn.geometry.apriori.jacobian_sup`);
        * ``'previous'``: the pairwise K measured at the previous observed step predicting this
          one (no check at the first);
        * ``'held_out'``: the pairwise K of a random half of the pairs (seeded by ``seed`` and
          the step) checked on the other half. By rank statistics alone the held-out maximum
          beats the training one in about half the steps whatever the dynamics, so a few
          violations mean little: read ``fraction_used`` (near 1 for a Lipschitz rule, far
          above it when the ratios are heavy-tailed, as near a kink);
        * ``'pairwise'``: the same step's pairwise K -- a tautology (0 violations for any
          dynamics), kept for the record of eta*K.
    every : int
    cache : NeighbourCache, optional
    k : int
    rtol, equal_tol : float, optional
        See :func:`particledyn.geometry.lemmas.lemma_check` (None: tied to the run's dtype).
    source : {'update', 'field'}
        What the pairwise kinds measure K of.
    n_sample : int
        When the cache uses kNN pairs (N above its all-pairs limit), this many random particles
        also contribute their most contracted and most expanded partner over all particles
        (:func:`particledyn.geometry.lemmas.extreme_pairs`).
    seed : int
        Seed of the sampled particles and of the held-out split.

    Records ``K``, ``eta_K``, ``certified`` (K is the certified a-priori bound),
    ``fraction_used``, ``min_ratio``, ``max_ratio``, ``lower_bound``,
    ``upper_bound``, ``n_pairs``, ``n_sampled`` (pairs added by sampling), ``sample_size``
    (particles sampled), ``n_violations``,
    ``n_lower_violations``, ``n_upper_violations``, ``n_equal``, ``n_split``.
    """

    name = "lemmas"
    needs_previous = True
    KINDS = ("pairwise", "previous", "held_out", "apriori", "jacobian_sup")

    def __init__(
        self,
        K="pairwise",
        every: int = 1,
        *,
        cache: NeighbourCache | None = None,
        k: int = 6,
        rtol: float | None = None,
        equal_tol: float | None = None,
        source: str = "update",
        n_sample: int = 64,
        seed: int = 0,
    ):
        super().__init__(every)
        if isinstance(K, str):
            if K not in self.KINDS:
                raise ValueError(f"K={K!r}: expected a number, a callable(info) or one of {self.KINDS}")
        elif not callable(K):
            K = float(K)
            if not (np.isfinite(K) and K >= 0):
                raise ValueError(f"K={K!r}: expected a finite non-negative Lipschitz constant")
        if source not in ("update", "field"):
            raise ValueError(f"source={source!r}: expected 'update' or 'field'")
        if int(n_sample) != n_sample or n_sample < 0:
            raise ValueError(f"n_sample={n_sample!r}: expected a non-negative integer")
        self.K, self.rtol, self.equal_tol, self.source = K, rtol, equal_tol, source
        self.n_sample, self.seed = int(n_sample), int(seed)
        self.cache = _cache(cache, k)
        self._previous_K = _NAN

    def recorded_options(self) -> dict[str, Any]:
        return {
            "K": self.K,
            "source": self.source,
            "k": self.cache.options["k"],
            "rtol": self.rtol,
            "equal_tol": self.equal_tol,
        }

    def start(self, simulation) -> None:
        if self.K in APRIORI_KINDS:
            check_applicable(simulation, self.K)

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        if info.previous_positions is None:
            return self._empty()
        pairs = self.cache.get(info.step - 1, info.previous_positions)
        # every pair, in fused loops (the same numbers as the arrays below, tested); the held-out
        # split draws a mask over the pair array, so it keeps the arrays
        fused = pairs.fused and self.K != "held_out"
        n_sampled = 0
        extra = None
        if fused:
            before = after = np.empty(0)
        else:
            before, after = pairs.distances, pairs.norms(info.positions)
        if not pairs.all_pairs and self.n_sample:
            rng = np.random.default_rng([self.seed, info.step])
            extra = extreme_pairs(info.previous_positions, info.positions, self.n_sample, rng)
            n_sampled = len(extra[0])
            before = np.concatenate([before, pair_norms(pairs.positions, *extra)])
            after = np.concatenate([after, pair_norms(np.asarray(info.positions, float), *extra)])
        checked = np.ones(len(before), dtype=bool)
        if self.K in ("pairwise", "previous", "held_out"):
            values = np.asarray(_source(info, self.source), dtype=np.float64)
            if fused:
                measured, _, _, n_positive, _ = pairs.ratio_max(values)
                measured = measured if n_positive else 0.0
            else:
                spread = pairs.norms(values)
                if extra is not None:
                    spread = np.concatenate([spread, pair_norms(values, *extra)])
                measured = max_ratio(spread, before)
            if self.K == "pairwise":
                K = measured
            elif self.K == "previous":
                K, self._previous_K = self._previous_K, measured
                if not np.isfinite(K):
                    return self._empty(n_sampled)
            else:
                rng = np.random.default_rng([self.seed, info.step, 1])
                checked = rng.random(len(before)) < 0.5
                K = max_ratio(spread[~checked], before[~checked])
        elif self.K in APRIORI_KINDS:
            K = step_lipschitz(info, self.K)
        elif callable(self.K):
            K = float(self.K(info))
        else:
            K = self.K
        rtol, atol = lemma_tolerances(info.positions.dtype, pairs.positions, info.positions)
        if self.rtol is not None:
            rtol = self.rtol
        if fused:
            check = bounds_check_all_pairs(
                pairs.positions, info.positions, info.lr, K, rtol=rtol, atol=atol, equal_tol=self.equal_tol
            )
        else:
            check = bounds_check(
                before[checked], after[checked], info.lr, K, rtol=rtol, atol=atol, equal_tol=self.equal_tol
            )
        return {
            "K": K,
            "eta_K": info.lr * K,
            "certified": self.K == "apriori",
            "fraction_used": check.fraction_used,
            "min_ratio": check.min_ratio,
            "max_ratio": check.max_ratio,
            "lower_bound": check.lower_bound,
            "upper_bound": check.upper_bound,
            "n_pairs": check.n_pairs,
            "n_sampled": n_sampled,
            "sample_size": min(self.n_sample, pairs.n) if extra is not None else 0,
            "n_violations": check.n_violations,
            "n_lower_violations": check.n_lower_violations,
            "n_upper_violations": check.n_upper_violations,
            "n_equal": check.n_equal,
            "n_split": check.n_split,
        }

    def _empty(self, n_sampled: int = 0) -> dict[str, Any]:
        return {
            "K": _NAN,
            "eta_K": _NAN,
            "certified": self.K == "apriori",
            "fraction_used": _NAN,
            "min_ratio": _NAN,
            "max_ratio": _NAN,
            "lower_bound": _NAN,
            "upper_bound": _NAN,
            "n_pairs": 0,
            "n_sampled": n_sampled,
            "sample_size": 0,
            "n_violations": 0,
            "n_lower_violations": 0,
            "n_upper_violations": 0,
            "n_equal": 0,
            "n_split": 0,
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"previous_K": np.array(self._previous_K)}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self._previous_K = float(state.get("previous_K", _NAN))


class MergeObserver(Observer):
    """Atoms at scale eps, merges and merged mass (Theorems 1 and 3), and the pairs that merged.

    Parameters
    ----------
    eps : float
        Atom scale (default 0.01, as the paper's Figure 14).
    every : int
    cache : NeighbourCache, optional
    k : int
    mass_bins : ndarray, optional
        Fixed histogram edges for atom masses (default: log-spaced 1e-9 .. 10).
    eps_relative : float, optional
        Atom scale as a fraction of the start's own closest-pair distance delta_0 (replaces
        ``eps``): a pair then merges only after it has closed to ``eps_relative`` of the closest
        start distance, not by drifting across a fixed threshold it started near.
    allow_close_start : bool
        Accept a start that already has a pair within eps (refused otherwise: such pairs are
        merged before any step, and the count would mix the start with the dynamics).

    Notes
    -----
    Records ``n_atoms``, ``n_close_pairs`` (pairs within eps: the paper's Figure 14 count),
    ``n_exact_pairs`` (pairs equal at the run's float precision, 8 ulps of the largest
    coordinate: an exact merge of the finite set when it grows),
    ``min_distance`` (the closest pair now), ``eps`` (the absolute scale used), ``n_merges``,
    ``n_splits``, ``merged_mass``, ``n_merged_particles``, ``largest_atom_mass``,
    ``mass_in_multi_atoms`` (mass in atoms of two or more particles), ``mass_histogram``
    (array), ``mass_underflow``, ``mass_overflow``, and for the closest pair that joined two
    atoms of the previous step (-1 and NaN when none did): ``merge_i``, ``merge_j``,
    ``merge_distance``, ``merge_previous_distance`` (its distance one step before). Pair counts
    are counted without listing the pairs; above the all-pairs limit the merge pair is the
    closest joining one among the edges that chain the atoms (the neighbour lists, and inside
    clusters denser than k within eps one chaining pair per pair of grid cells), so the cost
    stays linear in N when a cluster holds most of the cloud.
    """

    name = "merges"
    needs_previous = True

    def __init__(
        self,
        eps: float = DEFAULT_EPS,
        every: int = 1,
        *,
        cache: NeighbourCache | None = None,
        k: int = 6,
        mass_bins=None,
        eps_relative: float | None = None,
        allow_close_start: bool = False,
    ):
        super().__init__(every)
        eps = float(eps)
        if not (np.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps={eps!r}: expected a finite non-negative distance")
        if eps_relative is not None:
            eps_relative = float(eps_relative)
            if not (np.isfinite(eps_relative) and eps_relative > 0):
                raise ValueError(
                    f"eps_relative={eps_relative!r}: expected a positive fraction of "
                    "the start's closest-pair distance"
                )
        self.eps, self.eps_relative = eps, eps_relative
        self.allow_close_start = bool(allow_close_start)
        self.start_delta = _NAN
        self.cache = _cache(cache, k)
        self.mass_bins = default_mass_bins() if mass_bins is None else np.asarray(mass_bins, float)
        mass_histogram(np.empty(0), self.mass_bins)  # validate the edges now

    def recorded_options(self) -> dict[str, Any]:
        # a relative eps is resolved at the first observation: the ``eps`` key records it
        eps = self.eps if self.eps_relative is None else None
        return {
            "eps": eps,
            "eps_relative": self.eps_relative,
            "k": self.cache.options["k"],
            "allow_close_start": self.allow_close_start,
        }

    def _fix_scale(self, pairs) -> None:
        """At the first observation: delta_0, the relative scale, the close-start refusal."""
        delta, (i, j) = closest_pair(pairs)
        self.start_delta = delta
        if self.eps_relative is not None:
            self.eps = self.eps_relative * delta
        if delta <= self.eps and not self.allow_close_start:
            raise ValueError(
                f"merges: eps={self.eps:.6g} but the start already has particles {i} "
                f"and {j} at distance {delta:.6g}: expected eps below the start's "
                "closest-pair distance (use eps_relative < 1, or allow_close_start)"
            )

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        pairs = self.cache.get(info.step, info.positions)
        if not np.isfinite(self.start_delta):
            self._fix_scale(pairs)
        n_atoms, labels = pairs.atoms(self.eps)
        masses = atom_masses(labels, info.masses)
        sizes = np.bincount(labels)
        counts, under, over = mass_histogram(masses, self.mass_bins)
        # counted, not listed, and the merge pair sought among the edges that chain the atoms:
        # linear in N also when a cluster holds most of the cloud
        close_i, close_j = pairs.close_edges(self.eps, spanning=True)
        exact = pairs.count_close_pairs(rounding_atol(pairs.positions, dtype=info.positions.dtype))
        values = {
            "n_atoms": n_atoms,
            "n_close_pairs": pairs.count_close_pairs(self.eps),
            "n_exact_pairs": exact,
            "min_distance": closest_pair(pairs)[0],
            "eps": self.eps,
            "n_merges": 0,
            "n_splits": 0,
            "merged_mass": 0.0,
            "n_merged_particles": 0,
            "largest_atom_mass": float(masses.max()) if len(masses) else 0.0,
            "mass_in_multi_atoms": float(masses[sizes >= 2].sum()),
            "mass_histogram": counts,
            "mass_underflow": under,
            "mass_overflow": over,
            "merge_i": -1,
            "merge_j": -1,
            "merge_distance": _NAN,
            "merge_previous_distance": _NAN,
        }
        if info.previous_positions is not None:
            _, before = self.cache.get(info.step - 1, info.previous_positions).atoms(self.eps)
            stats = merge_statistics(before, labels, info.masses)
            values.update(
                n_merges=stats.n_merges,
                n_splits=stats.n_splits,
                merged_mass=stats.merged_mass,
                n_merged_particles=stats.n_merged_particles,
            )
            joining = (before[close_i] != before[close_j]) & (close_i != close_j)
            if joining.any():
                i, j = close_i[joining], close_j[joining]
                now = pair_norms(pairs.positions, i, j)
                best = int(np.argmin(now))
                i, j = int(i[best]), int(j[best])
                previous = np.asarray(info.previous_positions, dtype=np.float64)
                values.update(
                    merge_i=i,
                    merge_j=j,
                    merge_distance=float(now[best]),
                    merge_previous_distance=float(np.linalg.norm(previous[i] - previous[j])),
                )
        return values

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"start_delta": np.array(self.start_delta), "eps": np.array(self.eps)}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        if "start_delta" in state:
            self.start_delta = float(state["start_delta"])
            self.eps = float(state["eps"])


class ClosestApproachObserver(Observer):
    """The closest pair at every step: a cheap tracker of merges between sparse records.

    An exact sort-and-sweep per step (:func:`particledyn.geometry.closest.closest_pair_sweep`,
    its window bounded by the previous step's pair; about 20 us at N = 1024, D = 2, against
    0.47 ms for a k-d tree query); a record at every step, so a pair that closes below a merge
    scale between two merge records is seen at the step it did.

    Records ``min_distance`` and the pair ``i < j`` attaining it (distinct particles; 0.0
    when two coincide; of tied pairs the one with the smallest ``(i, j)``).
    """

    name = "closest_approach"

    def __init__(self, every: int = 1):
        super().__init__(every)
        self._hint = (-1, -1)  # only bounds the sweep: any pair gives the same record

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        X = np.asarray(info.positions, dtype=np.float64)
        if len(X) < 2:
            return {"min_distance": float("inf"), "i": -1, "j": -1}
        d, i, j = closest_pair_sweep(X, self._hint)
        self._hint = (i, j)
        return {"min_distance": d, "i": i, "j": j}


def closest_pair(pairs) -> tuple[float, tuple[int, int]]:
    """Smallest distance over a configuration's pairs and the pair, (inf, (-1, -1)) without any
    (:meth:`~particledyn.geometry.neighbours.NeighbourPairs.closest_pair`)."""
    return pairs.closest_pair()


class BalanceObserver(Observer):
    """ReLU balance ``c_i = |a_i|^2 - |w_i|^2``, its drift, and the invariant set's components.

    Parameters
    ----------
    every : int
    output_columns : int or sequence of int
        Columns of a neuron holding its output weight(s) (default: the last).
    tol : float
        ``|c_i| <= tol`` counts as balanced (not pathological).

    Records ``c_min``, ``c_max``, ``c_mean``, ``max_drift``, ``max_first_order``,
    ``max_second_order`` (the O(eta^2) expectation), ``n_pathological``,
    ``n_pathological_positive``, ``log2_components``, ``n_effective_components``.
    """

    name = "balance"
    needs_previous = True

    def __init__(self, every: int = 1, *, output_columns=-1, tol: float = 0.0):
        super().__init__(every)
        self.output_columns = output_columns
        self.tol = float(tol)

    def recorded_options(self) -> dict[str, Any]:
        return {"output_columns": self.output_columns, "tol": self.tol}

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        c = relu_balance(info.positions, self.output_columns)
        parts = invariant_set_components(info.positions, self.output_columns, self.tol)
        values = {
            "c_min": float(c.min()),
            "c_max": float(c.max()),
            "c_mean": float(c.mean()),
            "max_drift": _NAN,
            "max_first_order": _NAN,
            "max_second_order": _NAN,
            "n_pathological": parts.n_pathological,
            "n_pathological_positive": parts.n_pathological_positive,
            "log2_components": parts.log2_components,
            "n_effective_components": parts.n_effective_components,
        }
        if info.previous_positions is not None and info.update is not None:
            drift = balance_drift(
                info.previous_positions, info.positions, info.update, info.lr, self.output_columns
            )
            values.update(
                max_drift=drift.max_drift,
                max_first_order=drift.max_first_order,
                max_second_order=drift.max_second_order,
            )
        return values


class SharpnessObserver(Observer):
    """Top Hessian eigenvalue(s) by warm-started Lanczos, and the stability thresholds.

    Parameters
    ----------
    hvp : callable
        ``hvp(info) -> (v -> H v)``: given the step, a flat Hessian-vector
        product of the loss at ``info.positions`` (length N*D, row-major).
    every : int
    k : int
        Number of top eigenpairs (the gradient fraction uses all k).
    tol, ncv, which
        See :func:`particledyn.geometry.sharpness.top_eigenpairs`.
    momentum : float
        Heavy-ball beta for the threshold (2 + 2 beta) / eta.
    adam_beta1 : float, optional
        With Adam's ``preconditioner``: its beta1, for the adaptive edge
        (2 + 2 beta1) / ((1 - beta1) eta) (38 / eta at 0.9).
    preconditioner : callable, optional
        ``preconditioner(info) -> diagonal of P`` (e.g. Adam's sqrt(v_hat) + eps):
        the operator becomes P^{-1/2} H P^{-1/2} (preconditioned sharpness); None at a step
        means no preconditioner yet (the plain H, e.g. Adam's step 0). The warm start carries
        the previous eigenvector y over to the new P as the same parameter-space direction
        P^{-1/2} y (:meth:`_carried`).
    gradient : callable, optional
        ``gradient(info) -> flat dL/dx at info.positions``; adds ``grad_fraction``,
        the fraction ||P_k g||^2 / ||g||^2 of the gradient in the top-k eigenspace.
    method : {"lanczos", "power_iter"}
        Lanczos to ``tol`` (warm-started), or the paper authors' power iteration
        (:func:`particledyn.geometry.sharpness_power.power_iteration`: ``iterations`` steps from a
        fresh uniform start drawn from ``(seed, step)``, step i on ``batch_hvps(info)[i mod b]``).
    batch_hvps : callable, optional
        ``batch_hvps(info) -> [v -> H_b v, ...]``, one per batch, for ``method="power_iter"``
        (default: ``[hvp(info)]``).
    iterations : int
        Most power-iteration steps.
    power_tol : float
        Relative change that stops the power iteration early (the authors' 1e-4).
    seed : int
        Seeds the power iteration's start vectors (with the step).

    Records ``lambda_max``, ``K`` (= lambda_max), ``eta_star``, ``eta_K``,
    ``two_over_eta``, ``stability_threshold``, ``n_hvp``, ``residual``,
    ``converged``, and with k > 1 ``eigenvalues``.
    """

    name = "sharpness"

    def __init__(
        self,
        hvp: Callable[[StepInfo], Callable],
        every: int = 1,
        *,
        k: int = 1,
        tol: float = 1e-6,
        ncv: int | None = None,
        which: str = "LA",
        momentum: float = 0.0,
        preconditioner: Callable | None = None,
        gradient: Callable | None = None,
        adam_beta1: float | None = None,
        method: str = "lanczos",
        batch_hvps: Callable[[StepInfo], list] | None = None,
        iterations: int = 20,
        power_tol: float = 1e-4,
        seed: int = 0,
    ):
        super().__init__(every)
        if method not in ("lanczos", "power_iter"):
            raise ValueError(f"method={method!r}: expected 'lanczos' or 'power_iter'")
        if method == "power_iter" and k != 1:
            raise ValueError(f"k={k!r} with method='power_iter': expected k = 1 (power iteration finds one)")
        self.method, self.batch_hvps, self.iterations, self.power_tol = (
            method,
            batch_hvps,
            iterations,
            power_tol,
        )
        self.seed = seed
        for label, f in (("hvp", hvp), ("preconditioner", preconditioner), ("gradient", gradient)):
            if f is not None and not callable(f):
                raise TypeError(f"{label} is {type(f).__name__}: expected a callable(info)")
        if hvp is None:
            raise TypeError("hvp is None: expected a callable(info) returning v -> H v")
        self.hvp, self.preconditioner, self.gradient = hvp, preconditioner, gradient
        self.k, self.tol, self.ncv, self.which, self.momentum = k, tol, ncv, which, momentum
        self.adam_beta1 = adam_beta1
        self.eigenvector: np.ndarray | None = None
        # the diagonal of P of the operator the warm-start vector belongs to (ones for plain H)
        self.eigenvector_diagonal: np.ndarray | None = None

    def recorded_options(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "which": self.which,
            "momentum": self.momentum,
            "tol": self.tol,
            "preconditioned": self.preconditioner is not None,
            "adam_beta1": self.adam_beta1,
            **(
                {"method": self.method, "iterations": self.iterations, "power_tol": self.power_tol}
                if self.method == "power_iter"
                else {}
            ),
        }

    def _operators(self, info: StepInfo) -> tuple[list, np.ndarray | None]:
        """The operators of this call, and the flat diagonal of their preconditioner (or None)."""
        operators = (
            [self.hvp(info)] if self.method == "lanczos" or self.batch_hvps is None else self.batch_hvps(info)
        )
        operators = [_finite_or_diverged(op, info) for op in operators]
        diagonal = None if self.preconditioner is None else self.preconditioner(info)
        if diagonal is not None:
            diagonal = np.asarray(diagonal, dtype=np.float64).reshape(-1)
            operators = [preconditioned_hvp(op, diagonal) for op in operators]
        return operators, diagonal

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        n = int(np.size(info.positions))
        operators, diagonal = self._operators(info)
        if self.method == "power_iter":
            # a fresh start at every call, as the authors' code draws one: no state to resume
            rng = np.random.default_rng([self.seed, int(info.step)])
            result = power_iteration(operators, n, self.iterations, self.power_tol, rng)
        else:
            v0 = self.eigenvector
            if v0 is not None and v0.size != n:
                v0 = None
            elif v0 is not None:
                v0 = self._carried(v0, diagonal, n)
            result = top_eigenpairs(
                operators[0], n, self.k, v0=v0, tol=self.tol, ncv=self.ncv, which=self.which
            )
            self.eigenvector = result.eigenvector
            self.eigenvector_diagonal = np.ones(n) if diagonal is None else diagonal
        values: dict[str, Any] = {"lambda_max": result.lambda_max}
        values.update(stability_thresholds(result.lambda_max, info.lr, self.momentum, self.adam_beta1))
        values.update(n_hvp=result.n_hvp, residual=result.residual, converged=result.converged)
        if self.k > 1:
            values["eigenvalues"] = result.eigenvalues
        if self.gradient is not None:
            values["grad_fraction"] = gradient_fraction(self.gradient(info), result.eigenvectors)
        return values

    def _carried(self, vector: np.ndarray, diagonal: np.ndarray | None, n: int) -> np.ndarray:
        """The previous eigenvector y of P_old^-1/2 H P_old^-1/2 as a start for this call's
        operator: the same direction in parameter space, x = P^-1/2 y, so y P_new^1/2 / P_old^1/2
        (P = 1 for the plain H; unchanged when neither call is preconditioned)."""
        old = self.eigenvector_diagonal
        new = np.ones(n) if diagonal is None else diagonal
        if old is None or old.size != n or np.array_equal(old, new):
            return vector
        return vector * np.sqrt(new / old)

    def state_dict(self) -> dict[str, np.ndarray]:
        if self.eigenvector is None:
            return {}
        state = {"eigenvector": self.eigenvector.copy()}
        if self.eigenvector_diagonal is not None:
            state["eigenvector_diagonal"] = self.eigenvector_diagonal.copy()
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        vector = state.get("eigenvector")
        self.eigenvector = None if vector is None else np.asarray(vector, dtype=np.float64)
        diagonal = state.get("eigenvector_diagonal")
        self.eigenvector_diagonal = None if diagonal is None else np.asarray(diagonal, dtype=np.float64)


def _finite_or_diverged(operator: Callable, info: StepInfo) -> Callable:
    """``operator`` that raises DivergenceError when H v overflows (positions still finite but
    huge: the run is diverging, and Lanczos would go on with NaN to an illegible error)."""
    from ..simulation import DivergenceError

    def checked(vector):
        product = operator(vector)
        bad = np.count_nonzero(~np.isfinite(product))
        if bad:
            raise DivergenceError(info.step, int(bad), info.lr, "Hessian-vector products")
        return product

    return checked


def geometry_observers(
    K="pairwise",
    eps: float | None = None,
    every: int = 1,
    *,
    k: int = 6,
    source: str = "update",
    eps_relative: float | None = None,
    allow_close_start: bool = False,
) -> list[Observer]:
    """Pairwise K, Lemma checks and merges sharing one neighbour cache (options as the observers').

    With neither ``eps`` nor ``eps_relative`` the merge scale is half the start's closest-pair
    distance (``eps_relative = 0.5``).

    Returns
    -------
    list of Observer
        ``[PairwiseLipschitzObserver, LemmaObserver, MergeObserver]``.
    """
    cache = NeighbourCache(k=k)
    return [
        PairwiseLipschitzObserver(every, cache=cache, source=source),
        LemmaObserver(K, every, cache=cache, source=source),
        MergeObserver(
            DEFAULT_EPS if eps is None else eps,
            every,
            cache=cache,
            eps_relative=0.5 if eps is None and eps_relative is None else eps_relative,
            allow_close_start=allow_close_start,
        ),
    ]
