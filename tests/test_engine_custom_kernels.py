"""User kernels: DeepSetsKernel (compiled) against deepsets_reference, the README's user kernel,
black-box rules checked for equivariance, and divergence reported with its step."""

import numpy as np
import pytest

import particledyn as pdyn
from particledyn import BlackBoxKernel, DeepSetsKernel, DivergenceError, NotEquivariantError, Simulation
from particledyn.deepsets import CHUNK, deepsets_reference

# --- the README example: a user kernel in the (phi, rho, psi) form, < 30 lines --------------------
D, R2 = 3, 4.0  # particle dimension, target mean square radius


def phi(x, ctx, out):  # what each particle contributes: x and |x|^2
    out[D] = 0.0
    for k in range(D):
        out[k] = x[k]
        out[D] += x[k] * x[k]


def rho(total, ctx):  # once per step: the mean and how far the spread is from R2
    mean = total[:D]
    spread = total[D] - mean @ mean
    return np.append(mean, R2 / spread - 1.0)


def psi(x, summary, ctx, out):  # each particle moves radially: out when too close, in when too far
    for k in range(D):
        out[k] = (x[k] - summary[k]) * summary[D]


spread_kernel = pdyn.DeepSetsKernel(phi, psi, dim=D, agg_dim=D + 1, rho=rho, name="spread")
# ---------------------------------------------------------------------------------------------------


def test_readme_user_kernel():
    x0 = np.random.default_rng(0).normal(size=(1000, D))
    sim = pdyn.simulate(spread_kernel, x0, steps=200, lr=0.1, frame_every=0)
    x = sim.positions
    mean0, mean = x0.mean(axis=0), x.mean(axis=0)
    # the mean is conserved (sum_i m_i U_i = 0), the spread reaches R2, the shape is only rescaled
    np.testing.assert_allclose(mean, mean0, atol=1e-12)
    assert np.mean(np.sum((x - mean) ** 2, axis=1)) == pytest.approx(R2, rel=1e-10)
    scale = np.sqrt(R2 / np.mean(np.sum((x0 - mean0) ** 2, axis=1)))
    np.testing.assert_allclose(x - mean, scale * (x0 - mean0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        spread_kernel.field(x0, np.full(1000, 1e-3), ()),
        deepsets_reference(spread_kernel, x0, np.full(1000, 1e-3), ()),
        rtol=1e-12,
        atol=1e-14,
    )


# --- a gradient kernel with a per-step context: L = 1/2 |sum_j m_j sin(x_j) - c|^2 -----------------


def _phi_sin(x, ctx, out):
    for k in range(x.size):
        out[k] = np.sin(x[k])


def _rho_residual(total, ctx):
    return total - ctx[0]


def _psi_sin(x, residual, ctx, out):
    for k in range(x.size):
        out[k] = -residual[k] * np.cos(x[k])


def _target(step, rng, batch_size):
    return (rng.standard_normal(2),)


def _sin_loss(positions, masses, ctx):
    residual = masses @ np.sin(positions) - ctx[0]
    return 0.5 * float(residual @ residual)


SIN_KERNEL = DeepSetsKernel(
    _phi_sin,
    _psi_sin,
    dim=2,
    agg_dim=2,
    rho=_rho_residual,
    context=_target,
    loss=_sin_loss,
    name="sin_target",
)


@pytest.mark.parametrize("n", [1, 7, CHUNK, 2 * CHUNK + 5])
def test_deepsets_matches_reference(n, rng):
    x = rng.standard_normal((n, 2))
    m = rng.uniform(0.5, 1.5, n)
    m /= m.sum()
    context = SIN_KERNEL.context(3, np.random.default_rng(1), None)
    expected = deepsets_reference(SIN_KERNEL, x, m, context)
    field = SIN_KERNEL.field(x, m, context)
    assert field.dtype == np.float64
    np.testing.assert_allclose(field, expected, rtol=1e-12, atol=1e-12 * np.max(np.abs(expected)))
    expected32 = deepsets_reference(SIN_KERNEL, x.astype(np.float32), m, context)
    field32 = SIN_KERNEL.field(x.astype(np.float32), m, context)
    assert field32.dtype == np.float32
    np.testing.assert_allclose(field32, expected32, rtol=1e-5, atol=1e-6 * np.max(np.abs(expected32)))


def test_deepsets_gradient_kernel_is_minus_gradient_per_unit_mass(rng):
    """psi was written as -(1/m_i) dL/dx_i: check by central differences of the declared loss."""
    x = rng.standard_normal((5, 2))
    m = rng.uniform(0.5, 1.5, 5)
    context = SIN_KERNEL.context(0, np.random.default_rng(2), None)
    assert SIN_KERNEL.is_gradient
    gradient = -SIN_KERNEL.field(x, m, context) * m[:, None]
    numeric = np.empty_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6
        numeric[index] = (
            SIN_KERNEL.loss(x + step, m, context) - SIN_KERNEL.loss(x - step, m, context)
        ) / 2e-6
    np.testing.assert_allclose(gradient, numeric, rtol=1e-7, atol=1e-9)


def test_deepsets_context_comes_from_seed_and_step():
    sim = Simulation(SIN_KERNEL, np.zeros((3, 2)), seed=4)
    assert np.array_equal(sim.context(5)[0], Simulation(SIN_KERNEL, np.ones((2, 2)), seed=4).context(5)[0])
    assert not np.array_equal(sim.context(5)[0], sim.context(6)[0])


# --- black-box rules ------------------------------------------------------------------------------


def _toward_mean(positions, masses, context):
    return masses @ positions - positions


def _per_particle_noise(positions, masses, context):
    return _toward_mean(positions, masses, context) + np.random.default_rng().standard_normal(positions.shape)


def _index_dependent(positions, masses, context):
    return _toward_mean(positions, masses, context) + 0.1 * np.arange(len(positions))[:, None]


def test_blackbox_equivariant_rule_runs_and_matches_the_rule(rng):
    kernel = BlackBoxKernel(_toward_mean, dim=2)
    x = rng.standard_normal((20, 2))
    assert kernel.check_equivariance(x, np.full(20, 0.05), None) <= 1e-14
    sim = pdyn.simulate(kernel, x, steps=3, lr=0.5, frame_every=0)
    expected = x.copy()
    for _ in range(3):
        expected = expected + 0.5 * (expected.mean(axis=0) - expected)
    np.testing.assert_allclose(sim.positions, expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("rule", [_per_particle_noise, _index_dependent])
def test_non_equivariant_blackbox_is_refused(rule, rng):
    kernel = BlackBoxKernel(rule, dim=2, name=rule.__name__)
    sim = Simulation(kernel, rng.standard_normal((10, 2)))
    with pytest.raises(
        NotEquivariantError,
        match=rf"{rule.__name__} is not permutation equivariant: "
        r"max\|U\(PX\) - P U\(X\)\| = [0-9.e+-]+ x max\|U\|",
    ):
        sim.step()
    assert sim.state.step == 0 and not kernel.checked


def test_blackbox_tolerance_is_respected(rng):
    """A tiny index-dependent term passes under a loose tolerance and fails under the default."""

    def slightly_off(positions, masses, context):
        return _toward_mean(positions, masses, context) + 1e-7 * np.arange(len(positions))[:, None]

    x, m = rng.standard_normal((10, 2)), np.full(10, 0.1)
    assert BlackBoxKernel(slightly_off, dim=2, tolerance=1e-3).check_equivariance(x, m, None) > 1e-10
    with pytest.raises(NotEquivariantError, match="tolerance 1e-10"):
        BlackBoxKernel(slightly_off, dim=2).check_equivariance(x, m, None)


# --- divergence -----------------------------------------------------------------------------------


def _explode(positions, masses, context):
    with np.errstate(over="ignore"):
        return 1e100 * positions


def test_divergence_names_the_step():
    """x_t = (1 + 1e100)^t: 1e100, 1e200, 1e300, then overflow at update 4."""
    sim = Simulation(BlackBoxKernel(_explode, dim=1), np.ones((3, 1)), lr=1.0)
    with pytest.raises(DivergenceError, match=r"non-finite at step 4 \(3 entries NaN or inf, lr=1\)") as info:
        sim.run(10, progress=False)
    assert info.value.step == 4 and info.value.count == 3 and sim.state.step == 4
    assert sim.sink.finished is False and sim.sink.checkpoint["step"] == 4
