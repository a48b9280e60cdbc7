"""Issue 16's hygiene: the type check has no baseline of ignored modules, CI runs ruff and mypy,
and every file the developer guide names exists."""

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "particledyn-example-plugin"
# where a path in the guide is relative to: the checkout, the package, or (a bare file name
# after a fuller one) the folder of the files named beside it
PLACES = (
    ROOT,
    ROOT / "particledyn",
    ROOT / "particledyn" / "scenario",
    EXAMPLE,
    EXAMPLE / "src" / "particledyn_example_plugin",
)


def test_mypy_ignores_errors_of_no_module_of_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config["files"] == ["particledyn"]
    for override in config.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not override.get("ignore_errors"), f"mypy ignores the errors of {modules}"
        assert not any(m.startswith("particledyn") for m in modules), modules


def test_ci_runs_the_linter_the_formatter_check_and_mypy():
    lines = [line.split("#")[0].split() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [" ".join(words) for words in lines if words]
    for needed in (".venv/bin/ruff check .", ".venv/bin/ruff format --check .", ".venv/bin/mypy"):
        assert needed in commands


def _named_paths(text: str) -> set[str]:
    found = set()
    for quoted in re.findall(r"`([^`]+)`", text):
        for word in re.split(r"[\s,]+", quoted):
            if re.fullmatch(r"[\w./-]+\.(py|md|toml|cfg)|[\w.-]+(/[\w.-]+)*/", word):
                found.add(word)
    return found


def test_every_file_the_developer_guide_names_exists():
    names = _named_paths((ROOT / "docs" / "developer.md").read_text(encoding="utf-8"))
    assert {"scenario/builtin_kernels.py", "kernels/", "tests/test_check_kernel.py"} <= names
    missing = sorted(n for n in names if not any((place / n).exists() for place in PLACES))
    assert not missing, f"docs/developer.md names files that do not exist: {missing}"


def test_a_stale_path_in_the_guide_is_found():
    names = _named_paths("see `fastmath.py` and `kernels/fastmath.py`")
    assert [n for n in names if not any((p / n).exists() for p in PLACES)] == ["fastmath.py"]
