"""One panel of eta*K over training, with the lines that apply to the run's optimizer."""

from __future__ import annotations

import numpy as np

from ..summary import eta_K_series, scalar_series
from .common import mark_events, maybe_log, new_figure, opened, optimizer_name, titled


def _certified(run, source: str) -> bool | None:
    found = scalar_series(run, source, "certified")
    return None if found is None or not len(found[1]) else bool(np.all(found[1]))


def _label(run, source: str) -> str:
    """Which K a curve is, in words."""
    if source == "sharpness":
        adam = optimizer_name(run).startswith("adam")
        return "K = lambda_max of the " + ("preconditioned Hessian (Adam)" if adam else "loss Hessian")
    if source == "pairwise_lipschitz":
        return "K = pairwise Lipschitz constant of the update (Lemma 4)"
    certified = _certified(run, source)
    kind = {True: "certified a-priori bound", False: "not certified", None: "certification not recorded"}[
        certified
    ]
    what = "Lemma 2 checks" if source == "lemmas" else "Theorem 2 check" if source == "expansion" else source
    return f"K of the {what} ({kind})"


def _edge(run) -> tuple[float, str] | None:
    """The edge of stability in eta*K units as the sharpness observer recorded it, with its formula:
    eta * stability_threshold = 2 (GD), 2 + 2 beta (momentum), (2 + 2 beta1) / (1 - beta1) (Adam)."""
    threshold = scalar_series(run, "sharpness", "stability_threshold")
    two_over_eta = scalar_series(run, "sharpness", "two_over_eta")
    if threshold is None or two_over_eta is None or len(threshold[1]) != len(two_over_eta[1]):
        return None
    ok = np.isfinite(threshold[1]) & (two_over_eta[1] > 0)
    if not ok.any():
        return None
    edge = float(np.median(2.0 * threshold[1][ok] / two_over_eta[1][ok]))
    name = optimizer_name(run)
    if name.startswith("adam"):
        formula = "(2 + 2 beta1) / (1 - beta1)"
    elif name.startswith("momentum"):
        formula = "2 + 2 beta"
    else:
        formula = "2"
    return edge, formula


def figure_stability(run, summary: dict | None = None):
    """eta*K over training, one curve per recorded K, with the thresholds that apply.

    The lines: eta*K = 1, the topological threshold of Theorem 1 (below it the update
    is a homeomorphism); and, when the sharpness observer recorded it, the edge of
    stability of the run's optimizer in the same units, eta * stability_threshold: 2 for
    GD, 2 + 2 beta with momentum, (2 + 2 beta1) / (1 - beta1) (38 at beta1 = 0.9) for
    Adam's preconditioned sharpness. The legend says which K each curve is
    (lambda_max, pairwise, a certified a-priori bound, ...). Non-finite values (a diverged
    run) are left out; a log axis is used when the curves span decades.

    Returns
    -------
    Figure or None
        None when no observer recorded ``eta_K``.
    """
    with opened(run) as run:
        series = eta_K_series(run)
        if "pairwise_lipschitz" in series and _certified(run, "lemmas") is not True:
            series.pop("lemmas", None)  # the Lemma checks' default K is the same pairwise K
        if not series:
            return None
        labels = {source: _label(run, source) for source in series}
        edge = _edge(run)
        fig = titled(new_figure(7.5, 5.6), run, "Learning rate against the Lipschitz constant K")
    ax = fig.add_subplot()
    shown: list[np.ndarray | list[float]] = [[1.0]]  # what the axis must show
    for source, (steps, values) in series.items():
        values = np.where(np.isfinite(values), values, np.nan)
        ax.plot(steps, values, marker="o", ms=3, label=f"eta*K, {labels[source]}")
        shown.append(values)
    ax.axhline(1.0, color="crimson", ls="--", lw=1, label="eta*K = 1 (topological threshold)")
    if edge is not None:
        value, formula = edge
        label = f"eta*K = {value:.3g} (edge of stability" + ("" if formula == "2" else f", {formula}") + ")"
        ax.axhline(value, color="black", ls=":", lw=1.2, label=label)
        shown.append([value])
    maybe_log(ax, *shown)
    mark_events(ax, summary)
    ax.set(xlabel="step", ylabel="eta*K", title="eta*K over training")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize="x-small")
    return fig
