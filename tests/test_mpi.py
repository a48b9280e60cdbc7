"""The MPI-sharded run equals the single-process run (mpiexec -n 2), and its pieces."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from particledyn.sweep.mpi import ShardedTwoLayer, rank_order_sum, shard_bounds

BASE = os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps", "teacher_student_base.toml")


@pytest.mark.parametrize("n, size", [(10, 3), (7, 7), (2, 5), (1_000_001, 2)])
def test_shards_cover_the_particles_once_in_order(n, size):
    bounds = [shard_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    lengths = [hi - lo for lo, hi in bounds]
    assert max(lengths) - min(lengths) <= 1
    with pytest.raises(ValueError, match="rank=3"):
        shard_bounds(n, 3, 3)


def test_sharded_kernel_on_one_rank_is_the_kernel():
    MPI = pytest.importorskip("mpi4py.MPI")
    from particledyn.runner import prepare
    from particledyn.scenario import load_scenario

    p = prepare(load_scenario(BASE, {"init.n": 50}).resolved)
    sharded = ShardedTwoLayer(p.kernel, MPI.COMM_SELF)
    ctx = p.kernel.evaluation_context()
    np.testing.assert_array_equal(
        sharded.field(p.positions, p.masses, ctx), p.kernel.field(p.positions, p.masses, ctx)
    )
    assert sharded.loss(p.positions, p.masses, ctx) == p.kernel.loss(p.positions, p.masses, ctx)
    assert rank_order_sum(MPI.COMM_SELF, np.arange(6.0).reshape(2, 3)).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(TypeError, match="TwoLayerNet"):
        ShardedTwoLayer(object(), MPI.COMM_SELF)


def _mpiexec():
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.skip("mpiexec not found: install openmpi-bin (scripts/bootstrap.sh does)")
    return exe


def test_two_ranks_equal_the_single_process_run(tmp_path):
    pytest.importorskip("mpi4py")
    from particledyn.runner import prepare
    from particledyn.scenario import load_scenario
    from particledyn.simulation import Simulation

    exe = _mpiexec()
    out = tmp_path / "final.npz"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    openmpi = "OpenRTE" in version or "Open MPI" in version
    flags = ["--allow-run-as-root", "--oversubscribe"] if openmpi else []  # OpenMPI refuses root without it
    overrides = {"init.n": 301, "optimizer.batch_size": 64}  # odd N; mini-batches from (seed, step)
    cmd = [
        exe,
        *flags,
        "-n",
        "2",
        sys.executable,
        "-m",
        "particledyn.sweep.mpi",
        BASE,
        "--n",
        "301",
        "--steps",
        "25",
        "--out",
        str(out),
    ]
    scenario_text = (
        open(BASE).read().replace('[optimizer]\nname = "gd"', '[optimizer]\nname = "gd"\nbatch_size = 64')
    )
    scenario = tmp_path / "s.toml"
    scenario.write_text(scenario_text)
    cmd[cmd.index(BASE)] = str(scenario)
    # this process may be an MPI singleton already (mpi4py imported above): its OMPI_/PMIX_
    # variables would make the child mpiexec think it is nested and exit
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "OPAL_", "PMI_"))}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "ranks=2 n=301 steps=25" in done.stdout
    sharded = np.load(out)["positions"]

    resolved = load_scenario(BASE, overrides).resolved
    p = prepare(resolved)
    sim = Simulation(
        p.kernel,
        p.positions,
        optimizer=p.optimizer,
        lr=p.schedule,
        masses=p.masses,
        seed=resolved.run.seed,
        batch_size=64,
        frame_every=0,
    )
    sim.run(25, progress=False)
    assert sharded.shape == sim.positions.shape == (301, 2)
    assert not np.array_equal(sim.positions, p.positions)
    np.testing.assert_allclose(sharded, sim.positions, rtol=0, atol=1e-12)
