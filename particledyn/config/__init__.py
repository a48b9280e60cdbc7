"""Scenario configuration: the key checkers and the registries of each section.

:mod:`particledyn.scenario` holds the schema table built from these parts;
:mod:`particledyn.runner` turns a validated scenario into a running simulation.
The built-in entries register as plugins (:mod:`particledyn.plugins`).
"""
from .checks import Key, ScenarioError
from .kernels import KERNEL_TYPES, KERNELS, KernelType, register_kernel
from .observers import OBSERVER_TYPES, OBSERVERS, ObserverType, register_observer
from .registry import Entry, Registry

__all__ = ["Key", "ScenarioError", "Entry", "Registry", "KERNELS", "KERNEL_TYPES", "KernelType",
           "register_kernel", "OBSERVERS", "OBSERVER_TYPES", "ObserverType", "register_observer"]
