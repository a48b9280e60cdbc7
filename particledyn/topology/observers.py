"""Topology observers: thin wrappers that call the pure functions on a cadence."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..observers import Observer, StepInfo
from .betti import (
    ADAPTIVE_FRACTION,
    COMPLEXES,
    DEFAULT_SCALE_RELATIVE,
    _check_coeff,
    _check_max_dim,
    betti_numbers,
    check_alpha_dimension,
    check_fractions,
    resolve_scales,
)
from .diagrams import bottleneck_distances
from .expansion import MODELS, empirical_lipschitz, expansion_check, min_separation
from .zigzag import zigzag_barcode

__all__ = ["BettiObserver", "ExpansionObserver", "ZigzagObserver"]


class BettiObserver(Observer):
    """Betti numbers b_0..b_max_dim of the particle cloud, with diagrams.

    Parameters
    ----------
    every : int
        Cadence in steps.
    scale : "adaptive", float or list of float, optional
        A fixed scale (or several), or ``"adaptive"``: the authors' recipe, Rips edge length
        diameter / 4 of *each frame* (so the scale moves when the cloud spreads or shrinks).
    scale_relative : float or list of float, optional
        Scale(s) as fractions of the *start's* diameter (of the cloud the complex is built on:
        the landmarks, if any), fixed at the first observation and kept for the whole run: a
        Rips edge length ``scale_relative * diameter_0``, an alpha radius half of it, as for
        ``"adaptive"``. The default when neither ``scale`` nor ``scale_relative`` is given is
        :data:`DEFAULT_SCALE_RELATIVE` (1/4: the authors' scale at the start, then held).
        Merges' ``eps_relative`` is likewise relative to the start (its closest pair).
    max_dim : int
    complex : {"rips", "alpha"}
        Rips (default, scale = edge length) or the union-of-balls alpha
        complex (scale = ball radius; clouds of dimension <= 6,
        :data:`~particledyn.topology.betti.ALPHA_MAX_DIMENSION`, refused above at the start).
    landmarks : int, optional
        Build the complex on this many max-min landmarks.
    fixed_landmarks : bool
        With ``landmarks``: choose them at the first observed step and keep
        those particle indices afterwards (the same neurons are followed).
    n_threads : int, optional
    coeff : int
        Prime p of the coefficient field Z/p (default 2; the paper's code: 11).

    Notes
    -----
    Recorded keys: ``betti`` (n_scales, max_dim + 1), ``scale`` (n_scales,), the absolute
    scales used, ``diagram`` (ragged, rows [dim, birth, death]), ``threshold``,
    ``bottleneck`` (max_dim + 1,) to the previous diagram, both truncated at
    the smaller threshold (nan at the first record), exact
    (:func:`~particledyn.topology.diagrams.exact_bottleneck`, recorded option
    ``bottleneck = "exact"``; runs without that option took gudhi's default matching, which
    can be off in the last bits and, on diagrams with ties, by more), ``covering_radius``,
    ``diameter`` (the frame's with ``"adaptive"``; with ``scale_relative`` the start's at the
    first record; nan otherwise); with landmarks also ``landmarks`` (their indices).
    """

    name = "betti"

    def __init__(
        self,
        every: int = 1,
        scale=None,
        max_dim: int = 2,
        complex: str = "rips",
        landmarks: int | None = None,
        fixed_landmarks: bool = False,
        n_threads: int | None = None,
        coeff: int = 2,
        scale_relative=None,
    ):
        super().__init__(every)
        self.coeff = _check_coeff(coeff)
        self.max_dim = _check_max_dim(max_dim)
        if complex not in COMPLEXES:
            raise ValueError(f"complex={complex!r}: expected one of {COMPLEXES}")
        if landmarks is not None and (
            isinstance(landmarks, bool) or int(landmarks) != landmarks or landmarks < 1
        ):
            raise ValueError(f"landmarks={landmarks!r}: expected None or a positive integer")
        if fixed_landmarks and landmarks is None:
            raise ValueError("fixed_landmarks=True needs landmarks=<count>")
        if scale is not None and scale_relative is not None:
            raise ValueError(
                f"scale={scale!r} and scale_relative={scale_relative!r}: expected one of them "
                "(a scale, or fractions of the start's diameter)"
            )
        if scale is None and scale_relative is None:
            scale_relative = DEFAULT_SCALE_RELATIVE
        if scale is not None:
            resolve_scales(scale, 1.0, complex)  # validate now, not at the first step
        else:
            fractions = check_fractions(scale_relative, "scale_relative")
            scale_relative = float(fractions[0]) if fractions.size == 1 else [float(f) for f in fractions]
        self.scale = scale
        self.scale_relative = scale_relative
        self.complex = complex
        self.landmarks = landmarks
        self.fixed_landmarks = bool(fixed_landmarks)
        self.n_threads = n_threads
        self._indices: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._previous_threshold = np.nan
        self._start_scales: np.ndarray | None = None  # scale_relative resolved at the first observation

    def recorded_options(self) -> dict[str, Any]:
        # a relative scale is resolved at the first observation: the ``scale`` key records it
        return {
            "scale": self.scale,
            "scale_relative": self.scale_relative,
            "max_dim": self.max_dim,
            "complex": self.complex,
            "landmarks": self.landmarks,
            "fixed_landmarks": self.fixed_landmarks,
            "coeff": self.coeff,
            "bottleneck": "exact",  # diagrams.exact_bottleneck (gudhi's default before)
        }

    def start(self, simulation) -> None:
        if self.complex == "alpha":  # refuse before step 0, not at the first frame
            check_alpha_dimension(simulation.state.dim)

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        relative_start = self.scale is None and self._start_scales is None
        if self.scale is not None:
            scale, fraction = self.scale, ADAPTIVE_FRACTION
        elif relative_start:  # the start's diameter, once: the scales then stay fixed
            scale, fraction = "adaptive", self.scale_relative
        else:
            scale, fraction = self._start_scales, ADAPTIVE_FRACTION
        result = betti_numbers(
            info.positions,
            scale,
            self.max_dim,
            self.complex,
            landmarks=self.landmarks,
            landmark_indices=self._indices if self.fixed_landmarks else None,
            n_threads=self.n_threads,
            adaptive_fraction=fraction,
            coeff=self.coeff,
        )
        if relative_start:
            self._start_scales = np.array(result.scales, dtype=np.float64)
        if self.fixed_landmarks and self._indices is None:
            self._indices = result.indices
        if self._previous is None:
            bottleneck = np.full(self.max_dim + 1, np.nan)
        else:
            cap = min(self._previous_threshold, result.threshold)
            bottleneck = bottleneck_distances(self._previous, result.diagram, self.max_dim, cap)
        self._previous = result.diagram
        self._previous_threshold = result.threshold
        values = {
            "betti": result.betti,
            "scale": result.scales,
            "diagram": result.diagram,
            "threshold": result.threshold,
            "bottleneck": bottleneck,
            "covering_radius": result.covering_radius,
            "diameter": result.diameter,
        }
        if result.indices is not None:
            values["landmarks"] = result.indices
        return values

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {}
        if self._previous is not None:
            state["previous_diagram"] = self._previous
            state["previous_threshold"] = np.asarray(self._previous_threshold)
        if self._indices is not None:
            state["landmarks"] = self._indices
        if self._start_scales is not None:
            state["start_scales"] = self._start_scales
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self._previous = None if "previous_diagram" not in state else np.asarray(state["previous_diagram"])
        self._previous_threshold = float(state.get("previous_threshold", np.nan))
        self._indices = None if "landmarks" not in state else np.asarray(state["landmarks"], np.int64)
        if "start_scales" in state:
            self._start_scales = np.asarray(state["start_scales"], dtype=np.float64)


def _resolve_K(K, info: StepInfo) -> float:
    if callable(K):
        return float(K(info))
    if K == "empirical":
        return empirical_lipschitz(info.previous_positions, info.positions, info.lr)
    if isinstance(K, str):  # an a-priori kind, validated in __init__
        from ..geometry.apriori import step_lipschitz

        return step_lipschitz(info, K)
    return float(K)


class ExpansionObserver(Observer):
    """Theorem 2 per step: S(t)^r beside S(t+1)^((1 - eta K) r).

    Parameters
    ----------
    every : int
    radii : float or list of float
        Ball radii r around the previous positions S(t).
    K : float, callable, "apriori" or "empirical"
        Lipschitz constant of the update: a number, a function of the
        :class:`StepInfo`, ``"apriori"`` (the certified per-neuron Jacobian bound of the
        two-layer net under GD, :mod:`particledyn.geometry.apriori`), or ``"empirical"``
        (largest neighbour-pair ratio ||U_i - U_j|| / ||x_i - x_j|| of the step itself, a
        lower bound on K: it never certifies a contradiction).
    certified : bool, optional
        Whether K is an upper bound (default: True for numbers, callables and "apriori",
        False for "empirical").
    relative : bool
        Read ``radii`` as fractions of the current minimum separation delta_t
        (e.g. [0.25, 0.5, 0.9]), so they stay in the theorem's range as the
        cloud contracts.
    max_dim : int
    model : {"auto", "alpha", "rips"}

    Notes
    -----
    Theorem 2 as printed claims r < delta_t; it holds only for r <= delta_t / 2 (balls
    disjoint), see :mod:`particledyn.topology.expansion`. Balls are open (tangency at
    r = delta_t / 2 is not contact). ``contradicts_theorem`` flags a disagreement in the
    corrected range with a certified K; ``misstatement`` one in delta_t / 2 < r < delta_t.

    Recorded keys: ``delta`` (min separation of S(t)), ``eta_K``, ``certified``, ``radius``,
    ``radius_after``, ``betti_before``, ``betti_after``, ``lower_before``,
    ``lower_after``, ``equal``, ``below_separation``, ``disjoint``,
    ``contradicts_theorem``, ``misstatement`` (arrays over radii), ``delta_after`` (min
    separation of S(t+1)). At step 0 there is no previous step: every key is
    recorded with the same shape (so the HDF5 file can declare it), filled with
    NaN, -1 (Betti numbers) or False, beside the real ``delta_after``.
    """

    name = "expansion"
    needs_previous = True

    def __init__(
        self,
        every: int = 1,
        radii=(0.25,),
        K: float | Callable | str = "empirical",
        relative: bool = False,
        max_dim: int = 2,
        model: str = "auto",
        certified: bool | None = None,
    ):
        super().__init__(every)
        r = np.atleast_1d(np.asarray(radii, dtype=np.float64))
        if r.ndim != 1 or r.size == 0 or np.any(~np.isfinite(r)) or np.any(r <= 0):
            raise ValueError(f"radii={radii!r}: expected positive finite radii")
        if isinstance(K, str) and K not in ("empirical", "apriori"):
            raise ValueError(f"K={K!r}: expected a number, a callable(info), 'apriori' or 'empirical'")
        if not (callable(K) or isinstance(K, str)) and not float(K) >= 0:
            raise ValueError(f"K={K!r}: expected a non-negative Lipschitz constant")
        if model not in MODELS:
            raise ValueError(f"model={model!r}: expected one of {MODELS}")
        self.radii = r
        self.K = K
        self.certified = (K != "empirical") if certified is None else bool(certified)
        self.relative = bool(relative)
        self.max_dim = _check_max_dim(max_dim)
        self.model = model

    def recorded_options(self) -> dict[str, Any]:
        return {
            "radii": self.radii,
            "K": self.K,
            "certified": self.certified,
            "relative": self.relative,
            "max_dim": self.max_dim,
            "model": self.model,
        }

    def start(self, simulation) -> None:
        if self.model == "alpha":
            check_alpha_dimension(simulation.state.dim)
        if self.K == "apriori":
            from ..geometry.apriori import check_applicable

            check_applicable(simulation, self.K)

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        if info.previous_positions is None:
            return self._no_previous_step(info)
        radii = self.radii
        if self.relative:
            delta = min_separation(info.previous_positions)
            if not np.isfinite(delta) or delta == 0:
                raise ValueError(f"relative radii need a positive finite separation, got delta={delta}")
            radii = radii * delta
        K = _resolve_K(self.K, info)
        res = expansion_check(
            info.previous_positions,
            info.positions,
            radii,
            info.lr,
            K,
            self.max_dim,
            self.model,
            certified=self.certified,
        )
        return {
            "delta": res.delta,
            "eta_K": res.eta_K,
            "certified": res.certified,
            "radius": res.radii,
            "radius_after": res.radii_after,
            "betti_before": res.betti_before,
            "betti_after": res.betti_after,
            "lower_before": res.lower_before,
            "lower_after": res.lower_after,
            "equal": res.equal,
            "below_separation": res.below_separation,
            "disjoint": res.disjoint,
            "contradicts_theorem": res.contradicts_theorem,
            "misstatement": res.misstatement,
            "delta_after": min_separation(info.positions),
        }

    def _no_previous_step(self, info):
        n_radii, width = self.radii.size, self.max_dim + 1
        nan = np.full(n_radii, np.nan)
        unknown = np.full((n_radii, width), -1, dtype=np.int64)
        no = np.zeros(n_radii, dtype=bool)
        return {
            "delta": np.nan,
            "eta_K": np.nan,
            "certified": self.certified,
            "radius": nan,
            "radius_after": nan,
            "betti_before": unknown,
            "betti_after": unknown,
            "lower_before": unknown,
            "lower_after": unknown,
            "equal": no,
            "below_separation": no,
            "disjoint": no,
            "contradicts_theorem": no,
            "misstatement": no,
            "delta_after": min_separation(info.positions),
        }


class ZigzagObserver(Observer):
    """Records frames on a cadence for :func:`zigzag_barcode` after (or during) a run.

    Parameters
    ----------
    every : int
    scale : float
        Rips edge length of the zigzag.
    max_dim : int

    Notes
    -----
    Each call records ``frame`` (the positions, float64) and ``n_frames`` (frames
    recorded so far). The frames live where the run's records go (the run file,
    or a :class:`~particledyn.sinks.MemorySink`), not in the observer: its memory
    and its checkpoint state (the number of frames, a reference to the first
    ``n_frames`` records of ``observables/<name>/frame``) do not grow with the run.
    :meth:`barcode` reads the frames back; bars are in units of recorded frames,
    and the ``frame`` records' steps map frame index to step.
    """

    name = "zigzag"

    def __init__(self, every: int = 1, scale: float = 0.25, max_dim: int = 1):
        super().__init__(every)
        if not (np.isfinite(scale) and scale >= 0):
            raise ValueError(f"scale={scale!r}: expected a finite non-negative edge length")
        self.scale = float(scale)
        self.max_dim = _check_max_dim(max_dim)
        self.n_frames = 0
        self._sink = None

    def recorded_options(self) -> dict[str, Any]:
        return {"scale": self.scale, "max_dim": self.max_dim}

    def start(self, simulation: Any) -> None:
        self._sink = getattr(simulation, "sink", None)

    def observe(self, info: StepInfo) -> Mapping[str, Any]:
        self.n_frames += 1
        return {"frame": np.array(info.positions, dtype=np.float64), "n_frames": self.n_frames}

    def frames(self, source=None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Steps and positions of the recorded frames.

        Parameters
        ----------
        source : path, Run or MemorySink, optional
            Where the run's records are: a run file (its path or an open
            :class:`~particledyn.io.Run`) or a MemorySink; by default the sink of
            the simulation this observer ran in (the file once the run is closed).
        """
        from ..sinks import MemorySink

        source = self._sink if source is None else source
        source = getattr(source, "inner", source)  # the runner's wrapper of the file's sink
        if source is None:
            raise ValueError(
                "no source: expected a run file, a Run or a MemorySink (the observer "
                "has not run in a simulation)"
            )
        if isinstance(source, MemorySink):
            table = source.observables.get(self.name, {"step": [], "frame": []})
            steps, frames = table["step"], table.get("frame", [])
        elif hasattr(source, "observable"):
            steps, frames = source.observable(self.name, "frame")
        else:
            from ..io import open_run

            with open_run(getattr(source, "path", source)) as run:
                steps, frames = run.observable(self.name, "frame")
        count = self.n_frames if self.n_frames else len(steps)
        return np.asarray(steps[:count], dtype=np.int64), [np.asarray(f) for f in frames[:count]]

    def barcode(self, source=None) -> np.ndarray:
        """Zigzag barcode of the recorded frames (see :meth:`frames` for ``source``), rows
        [dim, birth, death] in frame units."""
        return zigzag_barcode(self.frames(source)[1], self.scale, self.max_dim)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"n_frames": np.asarray(self.n_frames, dtype=np.int64)}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self.n_frames = int(state.get("n_frames", 0))
