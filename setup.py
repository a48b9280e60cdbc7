"""Packaging shim: metadata lives in setup.cfg; this only lists the packages,
because ``kernels/`` installs as ``particledyn.kernels``, which ``find:`` cannot see."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["particledyn", "particledyn.*"]) + ["particledyn.kernels"])
