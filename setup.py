"""Packaging shim: metadata lives in setup.cfg; this only lists the packages, because two
folders outside ``particledyn/`` install inside it, which ``find:`` cannot see:
``kernels/`` as ``particledyn.kernels`` and the paper scenarios ``scenarios/`` (and
``scenarios/authors/``) as ``particledyn.scenarios.paper`` (``particledyn scenarios list``).
``particledyn.scenarios`` itself holds data only (``default.toml``): listed so that setuptools
installs it as a package rather than warning about data in an unlisted folder."""
from setuptools import find_packages, setup

DATA_PACKAGES = ["particledyn.scenarios", "particledyn.scenarios.paper", "particledyn.scenarios.paper.authors"]

setup(packages=find_packages(include=["particledyn", "particledyn.*"]) + ["particledyn.kernels"]
      + DATA_PACKAGES)
