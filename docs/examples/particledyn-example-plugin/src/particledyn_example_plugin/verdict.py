"""The example observer's verdict and figure: hooks of its observer type (see ``__init__.py``)."""

import numpy as np

from particledyn.scenario.resolved import recorded


def _radius(run, name):
    steps, radius = run.observable(name, "radius")
    return np.asarray(steps, dtype=np.int64), np.asarray(radius, dtype=np.float64)


def _target(run):
    """sqrt(kernel.radius2) when the run's kernel is ``example_spread``, else None."""
    # read as the package's own summary reads a file's scenario: without validating it, so
    # that a file of another kernel, or written through the Python API, is no error
    if recorded(run.parameters, "kernel.kind") != "example_spread":
        return None
    return float(np.sqrt(recorded(run.parameters, "kernel.radius2")))


def summarize_radius(run, name):
    """Verdict fields of observer ``name``: the first, last and largest recorded radius.

    Parameters
    ----------
    run : particledyn.io.Run
        The open run file.
    name : str
        The observer's name in the file.

    Returns
    -------
    dict
        ``initial``, ``final``, ``final_step``, ``max``, ``max_step``, ``target`` (sqrt(radius2)
        of an ``example_spread`` kernel, else None) and ``verdict``, the phrase the verdict shows.
    """
    steps, radius = _radius(run, name)
    if not len(steps):
        return {"verdict": "no record yet"}
    i = int(np.argmax(radius))
    out = {
        "initial": float(radius[0]),
        "final": float(radius[-1]),
        "final_step": int(steps[-1]),
        "max": float(radius[i]),
        "max_step": int(steps[i]),
        "target": _target(run),
    }
    target = "" if out["target"] is None else f", target {out['target']:.3g}"
    out["verdict"] = (
        f"radius {out['final']:.3g} at step {out['final_step']} (initial {out['initial']:.3g}, "
        f"max {out['max']:.3g} at step {out['max_step']}{target})"
    )
    return out


def figure_radius(run, name, summary):
    """The radius of observer ``name`` against the step, with the kernel's target radius.

    Parameters
    ----------
    run : particledyn.io.Run
    name : str
    summary : dict
        :func:`particledyn.summary.summarize_run` of the run (its divergence and first
        Betti change and merge are marked).

    Returns
    -------
    matplotlib.figure.Figure or None
        None when nothing is recorded yet.
    """
    from particledyn.plotting.common import mark_events, new_figure

    steps, radius = _radius(run, name)
    if not len(steps):
        return None
    fig = new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    ax.plot(steps, radius, marker="o", ms=3, label=f"{name}: p-mean distance to the mean")
    target = _target(run)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", label=f"target sqrt(radius2) = {target:.3g}")
    mark_events(ax, summary)
    ax.set_xlabel("step")
    ax.set_ylabel("radius")
    ax.legend(fontsize="small")
    fig.suptitle("Radius of the cloud (example plugin)")
    return fig
