"""The pieces of the MPI-sharded run on one rank (COMM_SELF), and the benchmark entry point
(``python -m particledyn.sweep.mpi``) under ``mpiexec -n 2`` equal to the single process."""

import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from particledyn.mpi.comm import shard_bounds

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


def _prepared(overrides):
    from particledyn.runner import prepare
    from particledyn.scenario import load_scenario

    return prepare(load_scenario(BASE, overrides).resolved)


@pytest.mark.parametrize("scaling", ["mean_field", "standard"])
def test_sharded_two_layer_on_one_rank_is_the_kernel(scaling):
    MPI = pytest.importorskip("mpi4py.MPI")
    from particledyn.mpi import ShardedKernel, deepsets_form, rank_order_sum

    p = _prepared({"init.n": 50, "kernel.scaling": scaling})
    sharded = ShardedKernel(deepsets_form(p.kernel), MPI.COMM_SELF)
    ctx = p.kernel.evaluation_context()
    np.testing.assert_array_equal(
        sharded.field(p.positions, p.masses, ctx), p.kernel.field(p.positions, p.masses, ctx)
    )
    assert sharded.loss(p.positions, p.masses, ctx) == p.kernel.loss(p.positions, p.masses, ctx)
    assert sharded.test_loss(p.positions, p.masses) == p.kernel.test_loss(p.positions, p.masses)
    assert rank_order_sum(MPI.COMM_SELF, np.arange(6.0).reshape(2, 3)).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_deepsets_split_equals_the_field():
    from particledyn import DeepSetsKernel

    def phi(x, ctx, out):
        out[0] = x[0]
        out[1] = x[0] * x[1]

    def psi(x, summary, ctx, out):
        out[0] = summary[0] - x[0]
        out[1] = summary[1] * x[1]

    kernel = DeepSetsKernel(phi, psi, dim=2, agg_dim=2, rho=lambda total, ctx: np.tanh(total))
    x = np.random.default_rng(1).standard_normal((9001, 2))
    m = np.full(9001, 1 / 9001)
    whole = kernel.field(x, m, ())
    parts = kernel.aggregate(x[:4000], m[:4000], ()) + kernel.aggregate(x[4000:], m[4000:], ())
    split = np.concatenate(
        [
            kernel.field_given_aggregate(x[:4000], m[:4000], (), parts),
            kernel.field_given_aggregate(x[4000:], m[4000:], (), parts),
        ]
    )
    np.testing.assert_allclose(split, whole, rtol=1e-14, atol=1e-15)
    assert not np.array_equal(kernel.field_given_aggregate(x, m, (), 2 * parts), whole)


@pytest.mark.parametrize("kind", ["multi_layer", "task_switching"])
def test_kernels_not_in_deepsets_form_are_refused(kind):
    from particledyn.kernel import Kernel
    from particledyn.mpi import NotShardable, deepsets_form

    class Coupled(Kernel):
        dim = 2

    with pytest.raises(
        NotShardable, match=f'kernel.kind = "{kind}" with --mpi: expected a kernel in DeepSets'
    ):
        deepsets_form(Coupled(), kind)


def test_agree_raises_the_same_error_on_every_rank():
    MPI = pytest.importorskip("mpi4py.MPI")
    from particledyn.divergence import DivergenceError
    from particledyn.mpi.comm import _Carried, agree

    assert agree(MPI.COMM_SELF, lambda: 3) == 3
    error = DivergenceError(4, 2, 0.1)
    with pytest.raises(DivergenceError) as caught:
        agree(MPI.COMM_SELF, lambda: (_ for _ in ()).throw(error))
    assert caught.value is error
    copy = pickle.loads(pickle.dumps(_Carried(error))).rebuild()  # what another rank raises
    assert type(copy) is DivergenceError and str(copy) == str(error) and copy.step == 4


def test_gather_and_scatter_on_one_rank_round_trip():
    MPI = pytest.importorskip("mpi4py.MPI")
    from particledyn.mpi import gather_rows, scatter_rows

    full = np.arange(14.0).reshape(7, 2)
    block = scatter_rows(MPI.COMM_SELF, full, 7)
    np.testing.assert_array_equal(block, full)
    np.testing.assert_array_equal(gather_rows(MPI.COMM_SELF, block), full)


def test_benchmark_entry_on_two_ranks_equals_the_single_process(tmp_path):
    pytest.importorskip("mpi4py")
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.skip("mpiexec not found: install openmpi-bin (scripts/bootstrap.sh does)")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    flags = (
        ["--allow-run-as-root", "--oversubscribe"] if "OpenRTE" in version or "Open MPI" in version else []
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "OPAL_", "PMI_"))}
    outs = {}
    for label, prefix in (("two", [exe, *flags, "-n", "2"]), ("one", [])):
        outs[label] = tmp_path / f"{label}.npz"
        args = [BASE, "--n", "301", "--steps", "25", "--out", str(outs[label])]
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "particledyn.sweep.mpi",
            *args,
            *([] if prefix else ["--single"]),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert "n=301 steps=25" in done.stdout and "peak_rss_mib=" in done.stdout
    two, one = np.load(outs["two"])["positions"], np.load(outs["one"])["positions"]
    assert two.shape == one.shape == (301, 2) and int(np.load(outs["two"])["ranks"]) == 2
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-12)
