"""User kernels fail safely: bounds-checked phi and psi, their errors named with the particle and step.

Without checks an out-of-range write in psi lands in the neighbour's update (or anywhere in
memory: a segfault or a corrupted heap), and an exception inside numba's parallel loop loses
its message.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from particledyn import DeepSetsKernel, Simulation, UserKernelError
from particledyn.deepsets import deepsets_reference

X = np.arange(8.0).reshape(4, 2) / 8.0


def _phi_mean(x, ctx, out):
    out[0] = x[0]
    out[1] = x[1]


def _psi_toward(x, summary, ctx, out):
    out[0] = summary[0] - x[0]
    out[1] = summary[1] - x[1]


def _psi_one_too_many(x, summary, ctx, out):
    for k in range(x.size + 1):  # writes out[D]: the first entry of the next particle's update
        out[k] = 1.0


def _phi_one_too_many(x, ctx, out):
    for k in range(3):  # agg_dim is 2
        out[k] = x[0]


def _psi_reads_too_far(x, summary, ctx, out):
    out[0] = x[5]
    out[1] = 0.0


def _psi_raises(x, summary, ctx, out):
    if x[0] > 0.5:
        raise ValueError("x[0] above 0.5")
    out[0] = x[0]
    out[1] = x[1]


def _rho_raises(total, ctx):
    raise ZeroDivisionError("no spread")


def _rho_matrix(total, ctx):
    return np.outer(total, total)


def _psi_uses_a_dict(x, summary, ctx, out):
    out[0] = {"a": x}["b"]


def _step(kernel, positions=X):
    """One simulation step (the kernel's context is then at step 0)."""
    Simulation(kernel, positions, lr=0.1).step()


@pytest.mark.parametrize(
    "phi, psi, expected",
    [
        (_phi_mean, _psi_one_too_many, "t: psi for particle 0 at step 0 writes 3 entries: expected dim = 2"),
        (
            _phi_one_too_many,
            _psi_toward,
            "t: phi for particle 0 at step 0 writes 3 entries: expected agg_dim = 2",
        ),
        (
            _phi_mean,
            _psi_reads_too_far,
            "t: psi for particle 0 at step 0 raised IndexError: index is out of bounds",
        ),
        (_phi_mean, _psi_raises, "t: psi for particle 3 at step 0 raised ValueError: x[0] above 0.5"),
    ],
)
def test_errors_in_phi_and_psi_name_the_function_particle_step_and_message(phi, psi, expected):
    kernel = DeepSetsKernel(phi, psi, dim=2, agg_dim=2, name="t")
    with pytest.raises(UserKernelError) as info:
        _step(kernel)
    assert str(info.value) == expected
    assert info.value.step == 0 and info.value.function in ("phi", "psi")


def test_errors_in_rho_and_its_output_shape():
    raising = DeepSetsKernel(_phi_mean, _psi_toward, dim=2, agg_dim=2, rho=_rho_raises, name="r")
    with pytest.raises(UserKernelError, match=r"^r: rho at step 0 raised ZeroDivisionError: no spread$"):
        _step(raising)
    matrix = DeepSetsKernel(_phi_mean, _psi_toward, dim=2, agg_dim=2, rho=_rho_matrix, name="r")
    with pytest.raises(UserKernelError, match=r"returned an array of shape \(2, 2\): expected a 1-D array"):
        _step(matrix)


def test_code_numba_cannot_compile_is_one_line():
    kernel = DeepSetsKernel(_phi_mean, _psi_uses_a_dict, dim=2, agg_dim=2, name="d")
    with pytest.raises(UserKernelError) as info:
        _step(kernel)
    message = str(info.value)
    assert message.startswith("d: psi at step 0 could not be compiled by numba: ") and "\n" not in message


def test_boundscheck_off_runs_correct_kernels_and_is_validated():
    fast = DeepSetsKernel(_phi_mean, _psi_toward, dim=2, agg_dim=2, boundscheck=False)
    masses = np.full(4, 0.25)
    np.testing.assert_allclose(fast.field(X, masses, ()), deepsets_reference(fast, X, masses, ()), rtol=1e-15)
    unchecked = DeepSetsKernel(_phi_mean, _psi_raises, dim=2, agg_dim=2, boundscheck=False, name="u")
    with pytest.raises(UserKernelError) as info:
        _step(unchecked)
    assert str(info.value) == "u: psi for particle 3 at step 0 raised ValueError: x[0] above 0.5"
    with pytest.raises(TypeError, match="boundscheck='yes': expected True or False"):
        DeepSetsKernel(_phi_mean, _psi_toward, dim=2, agg_dim=2, boundscheck="yes")


def test_a_wild_write_is_an_error_not_a_segfault(tmp_path):
    """Unchecked, psi writing 10^7 entries past its row ends the process with SIGSEGV."""
    script = tmp_path / "wild.py"
    script.write_text(
        textwrap.dedent("""
        import numpy as np
        from particledyn import DeepSetsKernel, Simulation
        from particledyn.deepsets import UserKernelError

        def phi(x, ctx, out):
            out[0] = x[0]

        def psi(x, summary, ctx, out):
            out[0] = 0.0
            out[10_000_000] = 1.0

        try:
            Simulation(DeepSetsKernel(phi, psi, dim=1, agg_dim=1, name="wild"), np.zeros((64, 1))).step()
        except UserKernelError as exc:
            print(exc)
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == (
        "wild: psi for particle 0 at step 0 raised IndexError: index is out of bounds"
    )
