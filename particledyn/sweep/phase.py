"""The phase diagram of a sweep: topology change and merged mass against eta / eta*.

Three panels from the summary table (one point per run):

1. the verdict of each run at (eta / eta*, N): preserved, Betti numbers changed, neurons merged,
   diverged (or failed / not run), with eta* = 1/K0 measured at the start;
2. the total merged mass against eta / eta*;
3. the same outcome against max_t eta(t) K(t), K measured along training: the theorems'
   threshold eta K = 1 is drawn there (K grows during training, so a run started at
   eta / eta* < 1 can cross it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..plotting.common import DPI, maybe_log

__all__ = ["plot_phase_diagram", "outcome_of", "OUTCOMES"]

#: Outcome label -> (colour, marker) of the phase diagram.
OUTCOMES = {
    "preserved": ("tab:green", "o"),
    "Betti changed": ("tab:orange", "s"),
    "merged": ("tab:red", "D"),
    "diverged": ("black", "x"),
    "not run / failed": ("0.6", "."),
}


def outcome_of(row: dict) -> str:
    """The outcome label of one table row (see :data:`OUTCOMES`)."""
    if row["status"] in ("failed", "pending", "stopped"):
        return "not run / failed"
    if row["status"] == "diverged":
        return "diverged"
    if row["first_merge_step"] >= 0:
        return "merged"
    if row["betti_change_step"] >= 0:
        return "Betti changed"
    return "preserved"


def _columns(rows, name):
    return np.array([row[name] for row in rows], dtype=float)


def plot_phase_diagram(rows: list[dict], out, title: str = "") -> Path:
    """Draw the phase diagram of a sweep's table rows into a figure file (format from its suffix:
    png at 200 dpi, pdf, svg).

    Parameters
    ----------
    rows : list of dict
        Rows of the summary table (:func:`particledyn.sweep.table.run_row`), or the
        ``{column: array}`` of :func:`particledyn.sweep.table.read_table`.
    out : str or Path
        File to write (``.png``, ``.pdf`` or ``.svg``).
    title : str

    Returns
    -------
    Path
    """
    if isinstance(rows, dict):
        names = list(rows)
        rows = [dict(zip(names, values)) for values in zip(*(rows[n] for n in names))]
    if not rows:
        raise ValueError("rows is empty: expected at least one run of the sweep")
    out = Path(out)
    factor, n = _columns(rows, "lr_factor"), _columns(rows, "n")
    mass, max_eta_K = _columns(rows, "merged_mass"), _columns(rows, "max_eta_K")
    outcomes = [outcome_of(row) for row in rows]
    sizes = sorted(set(n[n > 0]))
    rng = np.random.default_rng(0)
    jitter = 1.0 + 0.06 * rng.uniform(-1, 1, len(rows))  # seeds of one (eta, N) side by side

    fig = Figure(figsize=(15, 4.6), dpi=DPI)
    ax_phase, ax_mass, ax_K = fig.subplots(1, 3)
    for label, (colour, marker) in OUTCOMES.items():
        pick = np.array([o == label for o in outcomes])
        if not pick.any():
            continue
        ax_phase.scatter(factor[pick] * jitter[pick], n[pick], c=colour, marker=marker, s=40, label=label)
        ok = pick & np.isfinite(max_eta_K)
        ax_K.scatter(max_eta_K[ok], mass[ok], c=colour, marker=marker, s=40, label=label)
    ax_phase.axvline(1.0, color="0.3", ls="--", lw=1)
    ax_phase.set(
        xscale="log",
        yscale="log" if len(sizes) > 1 else "linear",
        xlabel="eta / eta*   (eta* = 1/K0, K0 = lambda_max at the start)",
        ylabel="N",
        title="topology of the neuron cloud",
    )
    if len(sizes) <= 8:
        ax_phase.set_yticks(sizes, [str(int(s)) for s in sizes])
    ax_phase.legend(fontsize=8, loc="best")
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for i, size in enumerate(sizes):
        pick = (n == size) & np.isfinite(mass)
        if not pick.any():
            continue
        shade = cmap(i / max(1, len(sizes) - 1))
        ax_mass.scatter(factor[pick] * jitter[pick], mass[pick], color=shade, s=25, label=f"N = {int(size)}")
        levels = np.unique(factor[pick])
        ax_mass.plot(levels, [np.mean(mass[pick & (factor == f)]) for f in levels], color=shade, lw=1)
    ax_mass.axvline(1.0, color="0.3", ls="--", lw=1)
    ax_mass.set(xscale="log", xlabel="eta / eta*", ylabel="merged mass", title="mass merged over the run")
    if sizes:
        ax_mass.legend(fontsize=8)
    ax_K.axvline(1.0, color="0.3", ls="--", lw=1, label="eta K = 1")
    ax_K.set(
        xscale="log",
        xlabel="max over training of eta K(t)",
        ylabel="merged mass",
        title="against eta K along training",
    )
    for ax in (ax_mass, ax_K):  # log above the smallest positive mass, linear below: zero drawn at zero
        maybe_log(ax, mass)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
