"""Each observer's type and options, stored as attributes of its groups in a run file.

An observer's :meth:`~particledyn.observers.Observer.description` (``type``, ``class``,
``every`` and the options that say what it measures: scale, eps, K source, dims ...) is
written as attributes of ``observables/<name>`` and ``particledyn/ragged/<name>``, so
analysis finds an observable by what it is, not by the name it was given. A ``None``
option is not stored; a callable one is stored as ``"callable <qualified name>"``.
Groups without a ``type`` attribute (files written before types were recorded, or by
a sink fed without descriptions) count as being of the type their name says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from .layout import OBSERVABLES_ROOT, RAGGED_ROOT, fixed_string, observable_groups

__all__ = ["TYPE_ATTR", "write_description", "observer_descriptions", "observers_of_type"]

TYPE_ATTR = "type"


def _encoded(value: Any):
    """``value`` as an HDF5 attribute value (None: not stored)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value)
    if isinstance(value, (int, np.integer)):
        return np.int64(value)
    if isinstance(value, (float, np.floating)):
        return np.float64(value)
    if isinstance(value, str):
        return fixed_string(value)
    if callable(value):
        return fixed_string(f"callable {getattr(value, '__qualname__', type(value).__name__)}")
    array = np.asarray(value)
    if array.dtype.kind in "biuf" and array.ndim == 1:
        return array.astype(np.float64 if array.dtype.kind == "f" else np.int64)
    return fixed_string(str(value))


def write_description(group: h5py.Group, description: Mapping[str, Any]) -> None:
    """Store ``description`` (needs a ``type`` entry) as attributes of ``group``."""
    if TYPE_ATTR not in description:
        raise ValueError(f"observer description {dict(description)!r}: expected a {TYPE_ATTR!r} entry")
    for key, value in description.items():
        encoded = _encoded(value)
        if encoded is not None:
            group.attrs[key] = encoded


def _decoded(value: Any):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
        return value.decode("utf-8") if isinstance(value, bytes) else value
    if isinstance(value, np.generic):
        return value.item()
    return value


def observer_descriptions(file) -> dict[str, dict[str, Any]]:
    """``{observer name: {"type": ..., "class": ..., "every": ..., options}}`` of a run file.

    The attributes of a name's scalar group win over its ragged group's; a name with no
    ``type`` attribute anywhere gets ``{"type": name}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in observable_groups(file):
        found: dict[str, Any] = {}
        for root in (RAGGED_ROOT, OBSERVABLES_ROOT):
            group = file.get(f"{root}/{name}")
            if isinstance(group, h5py.Group) and TYPE_ATTR in group.attrs:
                found.update({key: _decoded(v) for key, v in group.attrs.items()})
        out[name] = found or {TYPE_ATTR: name}
    return out


def observers_of_type(descriptions: Mapping[str, Mapping[str, Any]], kind: str) -> list[str]:
    """Names of the observers of type ``kind``: the one named ``kind`` first, then by name."""
    names = sorted(name for name, d in descriptions.items() if d.get(TYPE_ATTR) == kind)
    return sorted(names, key=lambda name: name != kind)
