"""What every figure shares: opening a run, its identity line, log axes, event marks, saving."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..scenario.resolved import recorded
from ..summary import scalar_series

#: Output formats :func:`save_figure` writes (matplotlib's backends: Agg, PDF, SVG).
FORMATS = ("png", "pdf", "svg")
#: Default resolution of PNG figures (vector formats ignore it).
DPI = 200


@contextlib.contextmanager
def opened(run):
    """Yield an open Run for a Run or a path; close it only if it was opened here."""
    if hasattr(run, "observables") and hasattr(run, "positions"):
        yield run
        return
    from ..io import open_run

    with open_run(run) as opened_run:
        yield opened_run


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure built without pyplot (no backend is touched)."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def learning_rate(run) -> float | None:
    """The run's (first) learning rate: the CLI's schedule, the API's ``lr`` parameter,
    else 2 / two_over_eta of the sharpness observer; None when nothing says."""
    params = run.parameters
    for lr in (recorded(params, "schedule.lr"), params.get("lr")):
        if isinstance(lr, (int, float)) and not isinstance(lr, bool):
            return float(lr)
    found = scalar_series(run, "sharpness", "two_over_eta")
    if found is not None and np.any(found[1] > 0):
        return float(2.0 / found[1][found[1] > 0][0])
    return None


def optimizer_name(run) -> str:
    """The optimizer as the file says (``gd``, ``momentum (beta 0.9)``, ``adam``), else "GD?"."""
    params = run.parameters
    opt = params.get("optimizer")
    if not isinstance(opt, dict):
        opt = recorded(params, "optimizer")
    if not isinstance(opt, dict) or "name" not in opt:
        return "optimizer not recorded"
    extra = [f"{key} {opt[key]:g}" for key in ("beta", "beta1") if isinstance(opt.get(key), (int, float))]
    return str(opt["name"]) + (f" ({', '.join(extra)})" if extra else "")


def run_identity(run) -> str:
    """One line naming the run: name, optimizer, learning rate, N (and D), for every title."""
    params = run.parameters
    name = params.get("name") or Path(run.path).stem
    lr = learning_rate(run)
    parts = [str(name), optimizer_name(run), "lr " + ("?" if lr is None else f"{lr:g}")]
    if len(run.steps):
        n, dim = run.positions(int(run.steps[0])).shape
        parts.append(f"N = {n}, D = {dim}")
    return ", ".join(parts)


def titled(fig: Figure, run, what: str) -> Figure:
    """Give ``fig`` the suptitle ``what`` over the run's identity line."""
    fig.suptitle(f"{what}\n{run_identity(run)}", fontsize="medium")
    return fig


def maybe_log(ax, *arrays) -> None:
    """Log y-axis when the positive finite values span more than two decades; symmetric log
    (linear below the smallest positive value) when zeros or negatives are among them, so a
    zero is drawn at zero rather than dropped or offset."""
    values = np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in arrays]) if arrays else np.zeros(0)
    values = values[np.isfinite(values)]
    positive = values[values > 0]
    if not positive.size or positive.max() <= 100 * positive.min():
        return
    if positive.size == values.size:
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=float(positive.min()))
        if values.min() >= 0:
            ax.set_ylim(bottom=0)


def mark_events(ax, summary: dict | None) -> None:
    """Vertical lines at the divergence, the first Betti change and the first merge, when known."""
    if not summary:
        return
    diverged = summary.get("diverged")
    if diverged:
        ax.axvline(
            diverged["step"],
            color="black",
            ls="-",
            lw=1.5,
            label=f"diverged (step {diverged['step']}: {diverged['quantity']}"
            f" {'exploded' if diverged.get('growth') else 'non-finite'})",
        )
    change = summary.get("betti", {}).get("first_change_step")
    merge = summary.get("merges", {}).get("first_merge_step")
    if change is not None:
        ax.axvline(change, color="purple", ls="-.", lw=1.2, label=f"first Betti change (step {change})")
    if merge is not None:
        ax.axvline(merge, color="darkorange", ls=":", lw=1.5, label=f"first merge (step {merge})")


def check_format(format: str, dpi) -> None:
    """Refuse an unknown output format or a non-positive dpi with a one-line error."""
    if format not in FORMATS:
        raise ValueError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not np.isfinite(dpi) or dpi <= 0:
        raise ValueError(f"dpi={dpi!r}: expected a positive number of dots per inch")


def save_figure(fig: Figure, target: Path, format: str = "png", dpi: float = DPI) -> Path:
    """Write ``fig`` to ``target`` in ``format`` (png at ``dpi``; pdf and svg are vector)."""
    check_format(format, dpi)
    fig.savefig(target, format=format, dpi=dpi)
    return target
