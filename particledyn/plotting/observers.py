"""Figures drawn by observer types' ``figure`` hooks (a plugin's observer, say)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

from matplotlib.figure import Figure

from ..summary_hooks import failure, hooked_observers, observer_label
from .common import run_identity


def figure_stem(kind: str, name: str, taken) -> str:
    """File stem of an observer's figure: its type (``<type>_<name>`` when renamed), prefixed by
    ``observer_`` when a built-in figure in ``taken`` has that stem."""
    stem = kind if name == kind else f"{kind}_{name}"
    return f"observer_{stem}" if stem in taken else stem


def _with_identity(fig: Figure, run, label: str) -> Figure:
    """Put the run's identity line under the figure's suptitle (the label when it has none)."""
    identity = run_identity(run)
    title = fig.get_suptitle()
    if identity not in title:
        fig.suptitle(f"{title or label}\n{identity}", fontsize="medium")
    return fig


def observer_figures(run, summary: dict, taken) -> Iterator[tuple[str, Figure]]:
    """``(file stem, figure)`` for every observer of ``run`` whose type has a ``figure`` hook.

    A hook that raises, or returns something other than a Figure or None, is skipped with a
    :class:`UserWarning` naming the observer and the error; the other figures are still drawn.
    """
    observers, _ = hooked_observers(run, "figure")
    for kind, name, draw in observers:
        label = observer_label(kind, name)
        try:
            fig = draw(run, name, summary)
            if fig is not None and not isinstance(fig, Figure):
                raise TypeError(f"returned {type(fig).__name__}, expected a matplotlib Figure or None")
        except Exception as exc:  # noqa: BLE001 - a plugin's failure costs only its own figure
            warnings.warn(f"figure of {label} not drawn ({failure(exc)})", stacklevel=2)
            continue
        if fig is not None:
            yield figure_stem(kind, name, taken), _with_identity(fig, run, label)
