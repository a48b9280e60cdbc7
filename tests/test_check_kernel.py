"""particledyn.testing.check_kernel: every built-in kernel passes; a kernel broken in each way fails
the check that names that way."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_custom_kernels import SIN_KERNEL, spread_kernel

from particledyn import Kernel
from particledyn.data import teacher_student
from particledyn.kernels import MultiLayerNet, TwoLayerNet
from particledyn.kernels.task_switching import TaskSwitchingNet
from particledyn.testing import (
    CHECKS,
    KernelCheckError,
    check_hvp,
    check_kernel,
    check_permutation_equivariance,
)

DATA = teacher_student(d=2, n=50, seed=0)
DATA_1D = teacher_student(d=1, n=50, seed=0)


def _built_in():
    kernels = {
        f"two_layer_{a}_{s}": TwoLayerNet(DATA.z_train, DATA.y_train, activation=a, scaling=s)
        for a in ("sigmoid", "tanh", "relu")
        for s in ("standard", "mean_field")
    }
    labels = (DATA.z_train[:, 0] > 0).astype(np.int64) + (DATA.z_train[:, 1] > 0)
    kernels["two_layer_cross_entropy"] = TwoLayerNet(DATA.z_train, labels, loss="cross_entropy")
    kernels["multi_layer"] = MultiLayerNet(
        DATA_1D.z_train, DATA_1D.y_train, groups=(5, 4), scaling="mean_field"
    )
    kernels["task_switching"] = TaskSwitchingNet(
        epoch_steps=4, d_in=3, d_out=2, n_train=64, n_eval=16, seed=5
    )
    kernels["deepsets_gradient"] = SIN_KERNEL
    kernels["deepsets_rule"] = spread_kernel
    return kernels


BUILT_IN = _built_in()


def test_every_kernel_kind_registered_by_the_package_is_among_the_checked_kernels():
    # a new built-in kernel (its KernelType in scenario/builtin_kernels.py) must be added to
    # _built_in above, or check_kernel would not run over it
    from particledyn.scenario import KERNELS

    kinds = [n for n in KERNELS.names() if KERNELS.origin(n) == "particledyn.scenario.builtin_kernels"]
    assert {"two_layer", "multi_layer", "task_switching"} <= set(kinds)
    missing = [k for k in kinds if not any(name == k or name.startswith(f"{k}_") for name in BUILT_IN)]
    assert not missing, f"built-in kernel kinds not run through check_kernel: {missing}"


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_kernel_passes(name):
    kernel = BUILT_IN[name]
    report = check_kernel(kernel)
    assert numba.config.NUMBA_NUM_THREADS >= 2, "the thread check needs two numba threads"
    if kernel.is_gradient:
        assert report.passed == list(CHECKS) and not report.not_run
        assert report.errors["gradient"] < 1e-6 and report.errors["hvp"] < 1e-6
    else:
        assert report.passed == ["shapes_and_dtypes", "permutation_equivariance", "thread_determinism"]
        assert set(report.not_run) == {"gradient", "hvp"}
    assert f"passed {report.passed[0]}" in str(report)


@settings(max_examples=15, deadline=None)
@given(first=st.permutations(range(5)), second=st.permutations(range(4)))
def test_the_multi_layer_kernel_is_equivariant_within_each_group(first, second):
    kernel = BUILT_IN["multi_layer"]
    rng = np.random.default_rng(3)
    x, m = rng.normal(size=(9, kernel.dim)), np.full(9, 0.2)
    p = np.concatenate([np.asarray(first), 5 + np.asarray(second)])
    assert check_permutation_equivariance(kernel, x, m, kernel.evaluation_context(), p) <= 1e-10


@settings(max_examples=15, deadline=None)
@given(permutation=st.permutations(range(8)))
def test_the_two_layer_kernel_is_equivariant_under_any_permutation(permutation):
    kernel = BUILT_IN["two_layer_tanh_mean_field"]
    rng = np.random.default_rng(4)
    x, m = rng.normal(size=(8, kernel.dim)), rng.uniform(0.5, 1.5, 8)
    assert (
        check_permutation_equivariance(kernel, x, m, kernel.evaluation_context(), np.asarray(permutation))
        <= 1e-10
    )


def test_a_permutation_across_groups_is_refused():
    kernel = BUILT_IN["multi_layer"]
    with pytest.raises(ValueError, match="moves particles between groups"):
        check_permutation_equivariance(
            kernel, np.zeros((9, kernel.dim)), np.ones(9), kernel.evaluation_context(), np.arange(9)[::-1]
        )


# ------------------------------------------------------------------ kernels broken on purpose
class Quadratic(Kernel):
    """L = 1/2 sum_i m_i |x_i - c|^2 + 1/2 |sum_i m_i x_i|^2; U per unit mass (mean-field)."""

    dim, scaling, name = 2, "mean_field", "quadratic"
    centre = np.array([0.3, -0.2])

    def context(self, step, rng, batch_size):
        return ()

    def field(self, positions, masses, context):
        mean = masses @ positions
        return (-(positions - self.centre) - mean).astype(positions.dtype)

    def loss(self, positions, masses, context):
        mean = masses @ positions
        return 0.5 * float(masses @ np.sum((positions - self.centre) ** 2, axis=1)) + 0.5 * float(mean @ mean)

    def hvp(self, positions, masses, context, vector):
        return vector + masses @ vector


def test_the_quadratic_kernel_passes():
    assert check_kernel(Quadratic()).passed == list(CHECKS)


class WrongShape(Quadratic):
    def field(self, positions, masses, context):
        return super().field(positions, masses, context)[:, :1]


class WrongDtype(Quadratic):
    def field(self, positions, masses, context):
        return super().field(positions, masses, context).astype(np.float64)


class InPlace(Quadratic):
    def field(self, positions, masses, context):
        out = super().field(positions, masses, context)
        positions[0, 0] += 1.0
        return out


class AcceptsAnyShape(Quadratic):
    def check_positions(self, positions):
        pass


class NaNLoss(Quadratic):
    def loss(self, positions, masses, context):
        return float("nan")


class FirstParticleSpecial(Quadratic):
    def field(self, positions, masses, context):
        out = super().field(positions, masses, context)
        out[0] += 1.0
        return out


class LossNotInvariant(Quadratic):
    def loss(self, positions, masses, context):
        return super().loss(positions, masses, context) + float(positions[0, 0])


class TwiceTheGradient(Quadratic):
    def field(self, positions, masses, context):
        return 2 * super().field(positions, masses, context)


class PlainGradient(Quadratic):
    """Says mean-field but returns -dL/dX without dividing by the mass."""

    def field(self, positions, masses, context):
        out = super().field(positions, masses, context)
        return (out * masses[:, None]).astype(positions.dtype)


class WrongHvp(Quadratic):
    def hvp(self, positions, masses, context, vector):
        return 1.1 * super().hvp(positions, masses, context, vector)


class ThreadDependent(Quadratic):
    def field(self, positions, masses, context):
        return super().field(positions, masses, context) * (1 + 1e-12 * numba.get_num_threads())


@pytest.mark.parametrize(
    "kernel, check, message",
    [
        (WrongShape(), "shapes_and_dtypes", r"has shape \(12, 1\): expected \(12, 2\)"),
        (WrongDtype(), "shapes_and_dtypes", "has dtype float64: expected float32"),
        (InPlace(), "shapes_and_dtypes", "modified the positions"),
        (AcceptsAnyShape(), "shapes_and_dtypes", r"check_positions accepted positions of shape \(12, 3\)"),
        (NaNLoss(), "shapes_and_dtypes", "loss is nan: expected a finite scalar"),
        (FirstParticleSpecial(), "permutation_equivariance", r"field\(P x\) differs from P field\(x\)"),
        (LossNotInvariant(), "permutation_equivariance", r"loss\(P x\) differs"),
        (TwiceTheGradient(), "gradient", "field differs from -dL/dX per unit mass"),
        (PlainGradient(), "gradient", "field differs from -dL/dX per unit mass"),
        (WrongHvp(), "hvp", "hvp differs from the finite-difference Jacobian"),
        (ThreadDependent(), "thread_determinism", "with 2 numba threads differs from 1 thread"),
    ],
)
def test_a_broken_kernel_fails_the_check_that_names_its_fault(kernel, check, message):
    with pytest.raises(KernelCheckError, match=message) as caught:
        check_kernel(kernel)
    assert caught.value.check == check
    assert str(caught.value).startswith(f"check_kernel(quadratic): {check} failed: ")


def test_an_hvp_that_is_not_symmetric_fails():
    class Rotation(Quadratic):
        """U = -A x with A not symmetric: hvp = A v matches the field's Jacobian, but no loss has it."""

        A = np.array([[1.0, 2.0], [0.0, 1.0]])

        def field(self, positions, masses, context):
            return -positions @ self.A.T

        def hvp(self, positions, masses, context, vector):
            return vector @ self.A.T

    x = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(KernelCheckError, match="hvp is not symmetric") as caught:
        check_hvp(Rotation(), x, np.full(5, 0.2), ())
    assert caught.value.check == "hvp"


def test_the_thread_check_can_be_declined_and_says_so():
    report = check_kernel(ThreadDependent(), thread_invariant=False)
    assert "thread_determinism" not in report.passed
    assert "does not promise it" in report.not_run["thread_determinism"]


def test_check_kernel_refuses_what_is_not_a_kernel():
    with pytest.raises(TypeError, match="expected a particledyn.Kernel"):
        check_kernel(object())
