"""The paper's scenarios shipped with the package (``particledyn scenarios list|copy``).

They live in the repository's ``scenarios/`` (the paper's experiments) and
``scenarios/authors/`` (the authors' own setups); a wheel installs them as
``particledyn/scenarios/paper/`` (see ``setup.py``), an editable install reads them
from the checkout.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from .scenario.checks import ScenarioError


def scenario_folder():
    """The folder of the paper scenarios: inside the installed package, or the checkout's
    ``scenarios/`` for an editable install."""
    installed = resources.files("particledyn").joinpath("scenarios", "paper")
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "scenarios"


def list_scenarios() -> dict:
    """Every packaged paper scenario by name (``table1_gd_2d_small``, ``authors/authors_gd_2d_small``).

    Returns
    -------
    dict
        ``{name: resource}``, sorted by name; each resource has ``read_text``.
    """
    folder = scenario_folder()
    found = {}
    for prefix, where in (("", folder), ("authors/", folder.joinpath("authors"))):
        if where.is_dir():
            for item in where.iterdir():
                if item.name.endswith(".toml") and item.is_file():
                    found[prefix + item.name.removesuffix(".toml")] = item
    return dict(sorted(found.items()))


def describe(resource) -> str:
    """The first line of a scenario's ``run.description`` (or its first comment), for listings."""
    from .scenario import parse_toml

    text = resource.read_text(encoding="utf-8")
    description = parse_toml(text, resource.name).get("run", {}).get("description")
    if not description:
        comments = [line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")]
        description = comments[0] if comments else ""
    return " ".join(str(description).split())


def copy_scenario(name: str, dest=None) -> Path:
    """Copy the paper scenario ``name`` to ``dest`` (a file, or a folder to copy into; default:
    ``NAME.toml`` in the working directory) and return the written path.

    Raises
    ------
    ScenarioError
        No scenario of that name (the message lists close names).
    FileExistsError
        The destination exists (it is never replaced).
    """
    import difflib

    scenarios = list_scenarios()
    key = name.removesuffix(".toml")
    if key not in scenarios:
        by_file = [k for k in scenarios if k.rsplit("/", 1)[-1] == key]
        if len(by_file) != 1:
            close = difflib.get_close_matches(key, list(scenarios), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ScenarioError(
                f"scenario {name!r}: no packaged scenario of that name{hint}; see: particledyn scenarios list"
            )
        key = by_file[0]
    source = scenarios[key]
    target = Path(dest) if dest is not None else Path(source.name)
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise FileExistsError(f"{str(target)!r} exists; not replaced (choose another DEST)")
    with resources.as_file(source) as real:
        shutil.copyfile(real, target)
    return target
