"""The card's top-level kernels/ folder is the package particledyn.kernels: in a source checkout
(through the symlink particledyn/kernels) and in the built wheel (as real files)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_particledyn_kernels_is_the_top_level_kernels_folder():
    link = ROOT / "particledyn" / "kernels"
    assert link.is_symlink() and link.resolve() == (ROOT / "kernels").resolve()


def test_a_source_checkout_imports_particledyn_kernels():
    # -S: no site module, so no .pth of the editable install; the dependencies come from site-packages
    path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    code = (
        "import particledyn.kernels as k, particledyn.kernels.fastmath as f; "
        "print(k.__file__); print(f.LOOP_OPTIONS['fastmath'])"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    first = result.stdout.splitlines()[0]
    assert Path(first).resolve() == (ROOT / "kernels" / "__init__.py").resolve()


def test_the_wheel_holds_the_kernels_and_nothing_top_level(tmp_path):
    # built from a copy: an in-tree build would leave build/ behind, whose stale files reach later wheels
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "out", "_build"
        ),
    )
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(source),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("particledyn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    kernels = {Path(name).name for name in names if name.startswith("particledyn/kernels/")}
    assert {path.name for path in (ROOT / "kernels").glob("*.py")} <= kernels
    assert {"fastmath.py", "llvm_ops.py", "two_layer_cuda.py"} <= kernels
    assert all(name.startswith(("particledyn/", "particledyn-")) for name in names)
