"""``particledyn run --mpi`` under real ``mpiexec -n 2`` and ``-n 3``: the sharded run's file
equals the single process's (trajectory, checkpoint and every observable to 1e-12 in float64),
resume is bit-identical to an uninterrupted sharded run, a signal to one rank stops all of
them at one step boundary with a resumable file, and a kernel not in DeepSets form exits 2."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install -e '.[dist]')")
MPIEXEC = shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(
    MPIEXEC is None, reason="mpiexec not found: install openmpi-bin (scripts/bootstrap.sh does)"
)

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "scenarios" / "sweeps" / "teacher_student_base.toml"
PLUGIN_SRC = ROOT / "docs" / "examples" / "particledyn-example-plugin" / "src"
TOL = 1e-12


def _env():
    # this process may be an MPI singleton (mpi4py imported): its OMPI_/PMIX_ variables would
    # make the child mpiexec think it is nested
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "OPAL_", "PMI_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_SRC), env.get("PYTHONPATH")]))
    return env


def _mpi_flags():
    version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout
    if "OpenRTE" in version or "Open MPI" in version:  # root needs it; 3 ranks on 2 cores need it
        return ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
    return []


def _cli(args, ranks=None, timeout=600, wait=True, plot=False):
    cmd = [sys.executable, "-m", "particledyn", "run", *map(str, args), "--plot" if plot else "--no-plot"]
    if ranks is not None:
        cmd = [MPIEXEC, *_mpi_flags(), "-n", str(ranks), *cmd[:4], "--mpi", *cmd[4:]]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


def _ok(done):
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def _scenario(tmp_path, name, text):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _two_layer(optimizer: str, scaling: str, n: int = 301, steps: int = 16) -> str:
    """The sweeps' base scenario at odd N, on mini-batches, with sharded and gathered observers."""
    text = BASE.read_text()
    text = text.replace("n = 64", f"n = {n}").replace("steps = 40", f"steps = {steps}")
    text = text.replace('scaling = "mean_field"', f'scaling = "{scaling}"')
    text = text.replace('[optimizer]\nname = "gd"', f'[optimizer]\nname = "{optimizer}"\nbatch_size = 64')
    text = text.replace("lr = 0.3", "lr = 0.05" if optimizer == "adam" else "lr = 0.3")
    text = text.replace("frame_every = 10\ncheckpoint_every = 10", "frame_every = 4\ncheckpoint_every = 4")
    assert f'name = "{optimizer}"\nbatch_size = 64' in text and f'scaling = "{scaling}"' in text
    return text


SPREAD = """
[run]
name = "spread"
steps = 20
threads = 1
dtype = "float64"
plugins = ["particledyn_example_plugin"]
[data]
kind = "teacher_student"
d = 1
n = 20
[kernel]
kind = "example_spread"
dim = 2
radius2 = 4.0
[init]
shape = "gaussian"
n = 9001
[schedule]
lr = 0.05
[output]
checkpoint_every = 5
frame_every = 5
[[observers]]
type = "loss"
every = 2
[[observers]]
type = "example_radius"
every = 2
[[observers]]
type = "merges"
every = 5
"""


def _compare(sharded, single, exact=False):
    """Every committed frame, the checkpoint and every numeric observable of two run files agree."""
    from particledyn.io import open_run

    with open_run(sharded) as a, open_run(single) as b:
        assert list(a.steps) == list(b.steps) and len(a.steps) >= 3
        assert a.observables == b.observables and a.observables
        close = np.testing.assert_array_equal if exact else _close
        close(a.positions(), b.positions())
        ca, cb = a.checkpoint(), b.checkpoint()
        assert ca["step"] == cb["step"] and ca["time"] == cb["time"]
        close(ca["positions"], cb["positions"])
        assert sorted(ca["optimizer_state"]) == sorted(cb["optimizer_state"])
        for key in ca["optimizer_state"]:
            close(ca["optimizer_state"][key], cb["optimizer_state"][key])
        for name, keys in a.observables.items():
            for key in keys:
                sa, va = a.observable(name, key)
                sb, vb = b.observable(name, key)
                np.testing.assert_array_equal(sa, sb)
                if isinstance(va, list):
                    assert len(va) == len(vb)
                    for x, y in zip(va, vb):
                        close(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
                elif np.asarray(va).dtype.kind in "fiub":
                    close(np.asarray(va, dtype=float), np.asarray(vb, dtype=float))
        return a.parameters, ca


def _close(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, equal_nan=True)


@pytest.fixture(scope="module")
def gd_runs(tmp_path_factory):
    """GD (mean-field, mini-batches) on 1 process, 2 ranks and 3 ranks."""
    tmp = tmp_path_factory.mktemp("gd")
    scenario = _scenario(tmp, "gd", _two_layer("gd", "mean_field"))
    files = {r: tmp / f"gd_{r}.h5" for r in (None, 2, 3)}
    for ranks, path in files.items():
        done = _ok(_cli([scenario, "--out", path], ranks))
        if ranks is not None:
            assert done.stdout.count("wrote ") == 1  # rank 0 says it, once
    return scenario, files


@pytest.mark.parametrize("ranks", [2, 3])
def test_gd_run_equals_the_single_process(gd_runs, ranks):
    _, files = gd_runs
    parameters, checkpoint = _compare(files[ranks], files[None])
    assert parameters["mpi"] == {"ranks": ranks} and checkpoint["mpi"] == {"ranks": ranks}
    with pytest.raises(AssertionError):  # the comparison can fail: 2 and 3 ranks are not bit-equal
        _compare(files[2], files[3], exact=True)


def test_the_file_is_an_ordinary_run_file(gd_runs):
    from particledyn.io import open_run
    from particledyn.runner import run_info

    _, files = gd_runs
    info = run_info(str(files[3]))
    assert info["status"] == "finished" and info["n_particles"] == 301
    assert info["other_parameters"]["mpi"] == {"ranks": 3}
    with open_run(files[3]) as run:  # every observer of the scenario, none dropped
        assert sorted(run.observables) == ["betti", "loss", "merges", "sharpness"]
    shown = subprocess.run(
        [sys.executable, "-m", "particledyn", "info", str(files[3])],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert shown.returncode == 0 and "mpi = {'ranks': 3}" in shown.stdout


def test_adam_standard_scaling_on_three_ranks(tmp_path):
    scenario = _scenario(tmp_path, "adam", _two_layer("adam", "standard"))
    _ok(_cli([scenario, "--out", tmp_path / "one.h5"]))
    _ok(_cli([scenario, "--out", tmp_path / "three.h5"], 3))
    _, checkpoint = _compare(tmp_path / "three.h5", tmp_path / "one.h5")
    assert sorted(checkpoint["optimizer_state"]) == ["adam_m", "adam_v"]


def test_deepsets_plugin_kernel_on_two_ranks(tmp_path):
    scenario = _scenario(tmp_path, "spread", SPREAD)
    _ok(_cli([scenario, "--out", tmp_path / "one.h5"]))
    done = _ok(_cli([scenario, "--out", tmp_path / "two.h5"], 2, plot=True))
    # the DeepSets kernel's loss is a function of all positions: gathered, and said so
    assert "gathered to rank 0: loss" in done.stderr and "example_radius" in done.stderr
    _compare(tmp_path / "two.h5", tmp_path / "one.h5")
    # rank 0 drew the figures and the verdict of the file, as after any run
    assert (tmp_path / "two_summary.json").exists()
    assert sorted(p.name for p in (tmp_path / "two_figures").glob("*.png"))


def test_resume_is_bit_identical_and_needs_the_same_rank_count(gd_runs, tmp_path):
    scenario, files = gd_runs
    path = tmp_path / "cut.h5"
    _ok(_cli([scenario, "--out", path, "--steps", "7"], 2))
    _ok(_cli(["--resume", "--out", path, "--steps", "16"], 2))
    from particledyn.io import open_run

    with open_run(path) as cut, open_run(files[2]) as whole:
        a, b = cut.checkpoint(), whole.checkpoint()
        assert a["step"] == b["step"] == 16
        np.testing.assert_array_equal(a["positions"], b["positions"])
        for name in ("loss", "sharpness"):
            key = "loss" if name == "loss" else "lambda_max"
            np.testing.assert_array_equal(cut.observable(name, key)[1], whole.observable(name, key)[1])
    refused = _cli(["--resume", "--out", path, "--steps", "20"], 3)
    assert _errors(refused) == [
        f"error: cannot resume {str(path)!r} on 3 MPI ranks: it ran on 2; "
        f"use: mpiexec -n 2 particledyn run --mpi --resume --out {path} "
        "(another count adds the sums in another order: not bit-identical)"
    ]


def _errors(refused):
    """The one error line of a refused resume (exit 2, no traceback)."""
    assert refused.returncode == 2, (refused.stdout + refused.stderr)[-3000:]
    assert "Traceback" not in refused.stderr
    return [line for line in refused.stderr.splitlines() if line.startswith("error:")]


def _untouched(path, refuse):
    before = (Path(path).read_bytes(), os.stat(path).st_mtime_ns)
    errors = refuse()
    assert (Path(path).read_bytes(), os.stat(path).st_mtime_ns) == before
    return errors


def test_an_mpi_file_is_not_resumed_without_mpi(gd_runs, tmp_path):
    scenario, _ = gd_runs
    path = tmp_path / "cut.h5"
    _ok(_cli([scenario, "--out", path, "--steps", "8"], 2))
    errors = _untouched(path, lambda: _errors(_cli(["--resume", "--out", path, "--steps", "16"])))
    assert errors == [
        f"error: cannot resume {str(path)!r} without --mpi: it ran on 2 MPI ranks; "
        f"use: mpiexec -n 2 particledyn run --mpi --resume --out {path} "
        "(one process adds the sums in another order: not bit-identical)"
    ]
    # a scenario given to check against the file changes nothing
    assert _errors(_cli([scenario, "--resume", "--out", path, "--steps", "16"])) == errors


def test_a_single_process_file_is_not_resumed_with_mpi(gd_runs, tmp_path):
    scenario, _ = gd_runs
    path = tmp_path / "one.h5"
    _ok(_cli([scenario, "--out", path, "--steps", "8"]))
    errors = _untouched(path, lambda: _errors(_cli(["--resume", "--out", path, "--steps", "16"], 2)))
    assert errors == [
        f"error: cannot resume {str(path)!r} with --mpi: a single-process run wrote it; "
        f"use: particledyn run --resume --out {path}"
    ]


def test_a_start_of_several_blocks_is_built_by_shard_and_equals_the_single_process(tmp_path):
    """N over two sampling blocks: each rank builds only the blocks that hold its rows (the
    rank boundaries fall inside blocks for 2 and 3 ranks), and the start is the single
    process's bit for bit; the run after it equals it to 1e-12."""
    from particledyn.clouds import BLOCK
    from particledyn.io import open_run

    n = 2 * BLOCK + 1001
    text = _two_layer("gd", "mean_field", n=n, steps=2)
    text = text[: text.index("[[observers]]")] + '[[observers]]\ntype = "loss"\nevery = 1\n'
    text = text.replace("frame_every = 4\ncheckpoint_every = 4", "frame_every = 1\ncheckpoint_every = 2")
    scenario = _scenario(tmp_path, "blocks", text)
    files = {r: tmp_path / f"blocks_{r}.h5" for r in (None, 2, 3)}
    for ranks, path in files.items():
        _ok(_cli([scenario, "--out", path], ranks))
    with open_run(files[None]) as one:
        start, end = one.positions()[0], one.checkpoint()["positions"]
        assert start.shape[0] == n
    for ranks in (2, 3):
        with open_run(files[ranks]) as run:
            np.testing.assert_array_equal(run.positions()[0], start)
            _close(run.checkpoint()["positions"], end)


def test_kernel_not_in_deepsets_form_exits_2_with_one_line(tmp_path):
    done = _cli([ROOT / "scenarios" / "multi_layer_small.toml", "--out", tmp_path / "m.h5"], 2)
    assert done.returncode == 2
    ours = [line for line in done.stderr.splitlines() if "multi_layer" in line]
    assert len(ours) == 1 and ours[0].startswith('error: kernel.kind = "multi_layer" with --mpi')
    assert "Traceback" not in done.stderr and not (tmp_path / "m.h5").exists()


def _rank_pids(parent: int, ranks: int, deadline: float) -> dict[int, int]:
    """{rank: pid} of mpiexec ``parent``'s rank processes (from their environment)."""
    found: dict[int, int] = {}
    while len(found) < ranks and time.time() < deadline:
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        for pid in map(int, children):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for entry in env:
                if entry.startswith(b"OMPI_COMM_WORLD_RANK="):
                    found[int(entry.split(b"=")[1])] = pid
        time.sleep(0.2)
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the rank processes in /proc")
def test_sigterm_on_one_rank_stops_every_rank_with_a_resumable_file(tmp_path):
    from particledyn.io import open_run
    from particledyn.runner import run_info

    text = _two_layer("gd", "mean_field", n=2001, steps=4000)
    text = text[: text.index("[[observers]]")] + '[[observers]]\ntype = "loss"\nevery = 50\n'
    text = text.replace("frame_every = 4\ncheckpoint_every = 4", "frame_every = 500\ncheckpoint_every = 100")
    scenario = _scenario(tmp_path, "long", text)
    path = tmp_path / "long.h5"
    proc = _cli([scenario, "--out", path], 2, wait=False)
    deadline = time.time() + 300
    pids = _rank_pids(proc.pid, 2, deadline)
    assert sorted(pids) == [0, 1], pids
    while time.time() < deadline and proc.poll() is None:  # signal once a checkpoint past 0 exists
        try:
            if (run_info(str(path))["checkpoint_step"] or 0) >= 100:
                break
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.2)
    os.kill(pids[1], signal.SIGTERM)  # rank 1 only
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out + err)[-3000:]
    assert "Traceback" not in err
    info = run_info(str(path))
    stopped = info["checkpoint_step"]
    assert info["status"] == "stopped" and 100 <= stopped < 4000
    assert f"interrupted: {path} keeps" in err and err.count("interrupted:") == 1
    assert f"continue with: mpiexec -n 2 particledyn run --mpi --resume --out {path}" in err
    shown = subprocess.run(
        [sys.executable, "-m", "particledyn", "info", str(path)], capture_output=True, text=True, env=_env()
    )
    assert f"continue with: mpiexec -n 2 particledyn run --mpi --resume --out {path}" in shown.stdout
    # resumed to a total a little past the stop, it equals a run never interrupted
    total = stopped + 30
    _ok(_cli(["--resume", "--out", path, "--steps", total], 2))
    whole = tmp_path / "whole.h5"
    _ok(_cli([scenario, "--out", whole, "--steps", total], 2))
    with open_run(path) as a, open_run(whole) as b:
        np.testing.assert_array_equal(a.checkpoint()["positions"], b.checkpoint()["positions"])
        np.testing.assert_array_equal(a.observable("loss", "loss")[1], b.observable("loss", "loss")[1])
