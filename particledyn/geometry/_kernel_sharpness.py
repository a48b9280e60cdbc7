"""Sharpness of a running simulation: wires :class:`SharpnessObserver` to its kernel and optimizer."""

from __future__ import annotations

import numpy as np

from ..observers import StepInfo
from .observers import SharpnessObserver
from .sharpness import check_eigenpair_count


def _kernel_hvp(info: StepInfo):
    sim = info.simulation
    kernel = sim.kernel
    positions = np.asarray(info.positions, dtype=np.float64)
    masses, context = info.masses, kernel.evaluation_context()

    product = kernel.hvp_operator(positions, masses, context)  # shares the forward pass

    def hvp(vector):
        return product(vector.reshape(positions.shape)).ravel()

    return hvp


def _kernel_gradient(info: StepInfo):
    sim = info.simulation
    positions = np.asarray(info.positions, dtype=np.float64)
    return -sim.kernel.field(positions, info.masses, sim.kernel.evaluation_context()).ravel()


def _adam_preconditioner(info: StepInfo):
    sim = info.simulation
    if sim.state.step == 0:
        # no second moments yet (v = 0 would give P = eps): report the plain Hessian at step 0
        return np.ones(info.positions.size)
    state = {name: sim.backend.to_host(array) for name, array in sim.state.optimizer_state.items()}
    return sim.optimizer.preconditioner(state, sim.state.step).ravel()


class KernelSharpnessObserver(SharpnessObserver):
    """:class:`SharpnessObserver` on the running simulation's kernel; the optimizer, known
    at :meth:`start`, decides the operator (see :func:`kernel_sharpness`)."""

    preconditioned: bool | None = None

    def start(self, simulation) -> None:
        check_eigenpair_count(self.k, simulation.state.positions.size)
        if not getattr(simulation.kernel, "is_gradient", False):
            raise ValueError(
                f"sharpness on kernel {simulation.kernel.name!r}: expected a gradient kernel "
                f"(one that defines a loss)"
            )
        optimizer = simulation.optimizer
        adam = optimizer.name == "adam"
        if self.preconditioned and not adam:
            raise ValueError(
                f"preconditioned=True with optimizer {optimizer.name!r}: expected 'adam' "
                f"(only Adam has a preconditioner)"
            )
        self.momentum = float(getattr(optimizer, "beta", 0.0)) if optimizer.name == "momentum" else 0.0
        use = adam if self.preconditioned is None else self.preconditioned
        self.preconditioner = _adam_preconditioner if use else None
        # the preconditioned sharpness has Adam's own edge, 38/eta at beta1 = 0.9; the raw
        # Hessian (the paper's Figure 12) has no such line, so it keeps 2/eta for reference
        self.adam_beta1 = float(optimizer.beta1) if use else None


def kernel_sharpness(
    every: int = 1,
    *,
    k: int = 1,
    tol: float = 1e-6,
    which: str = "LA",
    preconditioned: bool | None = None,
    gradient_fraction: bool = False,
) -> KernelSharpnessObserver:
    """Top Hessian eigenvalue of the running simulation's loss, on the kernel's full
    training set (``kernel.evaluation_context()``), with the optimizer's view of it.

    GD/SGD: lambda_max of H (K = lambda_max, eta* = 1/K). Momentum: the same, with the
    stability threshold (2 + 2 beta) / eta. Adam: the preconditioned operator
    P^{-1/2} H P^{-1/2}, P = sqrt(v_hat) + eps from the current second moments
    (the plain Hessian at step 0, before any second moment exists), with the adaptive edge
    of stability (2 + 2 beta1) / ((1 - beta1) eta) = 38 / eta as its threshold; with
    ``preconditioned=False`` the raw Hessian, as the paper's Figure 12 plots K for Adam.
    Uses the kernel's exact ``hvp`` where it has one, central differences otherwise.

    Parameters
    ----------
    every : int
        Cadence in steps (each call costs ~20-60 Hessian-vector products).
    k : int
        Number of top eigenpairs.
    tol : float
        Ritz-residual tolerance, relative to lambda.
    which : {"LA", "LM"}
        Largest algebraic eigenvalue, or largest in magnitude (the spectral norm).
    preconditioned : bool or None
        Use Adam's P^{-1/2} H P^{-1/2}; None: for Adam only (True with another optimizer
        is an error at the start of the run).
    gradient_fraction : bool
        Also record the fraction of the gradient in the top-k eigenspace.
    """
    observer = KernelSharpnessObserver(
        _kernel_hvp,
        every,
        k=k,
        tol=tol,
        which=which,
        gradient=_kernel_gradient if gradient_fraction else None,
    )
    observer.preconditioned = preconditioned
    return observer
