"""Scenario configuration: the key checkers, and the kernel and observer registries.

:mod:`particledyn.scenario` holds the schema table built from these parts;
:mod:`particledyn.runner` turns a validated scenario into a running simulation.
"""
from .checks import Key, ScenarioError
from .kernels import KERNEL_TYPES, KernelType, register_kernel
from .observers import OBSERVER_TYPES, LossObserver, ObserverType, register_observer

__all__ = ["Key", "ScenarioError", "KERNEL_TYPES", "KernelType", "register_kernel",
           "OBSERVER_TYPES", "ObserverType", "LossObserver", "register_observer"]
