"""The former home of the scenario configuration, now :mod:`particledyn.scenario`.

``particledyn.config.checks``, ``.kernels``, ``.observers``, ``.registry``, ``.sections`` and
``.memory`` are the modules of :mod:`particledyn.scenario` of those names (the same module
objects), so older imports keep working.
"""

import sys

from ..scenario import (
    KERNEL_TYPES,
    KERNELS,
    OBSERVER_TYPES,
    OBSERVERS,
    Entry,
    KernelType,
    Key,
    ObserverType,
    Registry,
    ScenarioError,
    checks,
    kernels,
    memory,
    observers,
    register_kernel,
    register_observer,
    registry,
    sections,
)

for _module in (checks, kernels, memory, observers, registry, sections):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module

__all__ = [
    "Key",
    "ScenarioError",
    "Entry",
    "Registry",
    "KERNELS",
    "KERNEL_TYPES",
    "KernelType",
    "register_kernel",
    "OBSERVERS",
    "OBSERVER_TYPES",
    "ObserverType",
    "register_observer",
]
