"""Packaging shim: metadata lives in setup.cfg. The card's top-level ``kernels/`` folder is the
package ``particledyn.kernels`` through the symlink ``particledyn/kernels -> ../kernels`` (so a
source checkout, mypy and an editable install all import it, and the editable install is a plain
``.pth`` of the checkout, with no setuptools warning); ``find_packages`` follows the link and the
wheel holds real files. ``particledyn.scenarios`` holds data only (``default.toml``: listed so that
setuptools installs it as a package rather than warn about data in an unlisted folder).
``build_py`` copies the paper scenarios (``scenarios/*.toml``, ``scenarios/authors/*.toml``) into
the built package as ``particledyn/scenarios/paper/`` (``particledyn scenarios list``; an editable
install reads them from the checkout)."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PAPER_SCENARIOS = ("scenarios", "scenarios/authors")


class BuildWithScenarios(build_py):
    """build_py that also ships the repository's paper scenarios inside the package."""

    def run(self):
        super().run()
        for folder in PAPER_SCENARIOS:
            target = Path(self.build_lib, "particledyn", "scenarios", "paper", *Path(folder).parts[1:])
            target.mkdir(parents=True, exist_ok=True)
            for source in sorted((HERE / folder).glob("*.toml")):
                shutil.copyfile(source, target / source.name)


setup(
    packages=find_packages(include=["particledyn", "particledyn.*"]) + ["particledyn.scenarios"],
    cmdclass={"build_py": BuildWithScenarios},
)
