"""Sharpness of a running simulation: wires :class:`SharpnessObserver` to its kernel and optimizer."""

from __future__ import annotations

import numpy as np

from ..observers import StepInfo
from .observers import SharpnessObserver
from .sharpness import check_eigenpair_count
from .sharpness_power import consecutive_batches


def _kernel_hvp(info: StepInfo, on: str = "train"):
    sim = info.simulation
    kernel = sim.kernel
    positions = np.asarray(info.positions, dtype=np.float64)
    masses, context = info.masses, _data(kernel, on)

    product = kernel.hvp_operator(positions, masses, context)  # shares the forward pass

    def hvp(vector):
        return product(vector.reshape(positions.shape)).ravel()

    return hvp


def _data(kernel, on: str):
    return kernel.evaluation_context() if on == "train" else (kernel.test_inputs, kernel.test_targets)


def _kernel_batch_hvps(info: StepInfo, on: str, batch_size: int | None):
    """One ``v -> H_b v`` per batch of the ``on`` set, in data order (the authors' test loader)."""
    kernel = info.simulation.kernel
    positions = np.asarray(info.positions, dtype=np.float64)
    inputs, targets = _data(kernel, on)
    products = [
        kernel.hvp_operator(positions, info.masses, batch)
        for batch in consecutive_batches(inputs, targets, batch_size)
    ]

    def flat(product):
        return lambda vector: product(vector.reshape(positions.shape)).ravel()

    return [flat(product) for product in products]


def _kernel_gradient(info: StepInfo):
    sim = info.simulation
    positions = np.asarray(info.positions, dtype=np.float64)
    return -sim.kernel.field(positions, info.masses, sim.kernel.evaluation_context()).ravel()


def _adam_preconditioner(info: StepInfo):
    sim = info.simulation
    if sim.state.step == 0:
        # no second moments yet (v = 0 would give P = eps): report the plain Hessian at step 0
        return None
    state = {name: sim.backend.to_host(array) for name, array in sim.state.optimizer_state.items()}
    return sim.optimizer.preconditioner(state, sim.state.step).ravel()


class KernelSharpnessObserver(SharpnessObserver):
    """:class:`SharpnessObserver` on the running simulation's kernel; the optimizer, known
    at :meth:`start`, decides the operator (see :func:`kernel_sharpness`)."""

    preconditioned: bool | None = None
    on: str = "train"
    #: rows per Hessian batch of the power iteration: an int, None (all rows) or "optimizer"
    hessian_batch: int | str | None = "optimizer"

    def recorded_options(self) -> dict:
        options = super().recorded_options()
        if self.on != "train" or self.method == "power_iter":
            options["on"] = self.on
        if self.method == "power_iter":
            options["batch_size"] = "all" if self.hessian_batch is None else self.hessian_batch
        return options

    def start(self, simulation) -> None:
        check_eigenpair_count(self.k, simulation.state.positions.size)
        if self.on == "test" and getattr(simulation.kernel, "test_inputs", None) is None:
            raise ValueError(
                f"sharpness on = 'test' with kernel {simulation.kernel.name!r}: expected a kernel "
                "with held-out data (test_inputs)"
            )
        if self.method == "power_iter":
            self.seed = int(simulation.state.seed)
            chosen = simulation.batch_size if self.hessian_batch == "optimizer" else self.hessian_batch
            size: int | None = None if chosen is None else int(chosen)
            self.batch_hvps = lambda info: _kernel_batch_hvps(info, self.on, size)
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
    method: str = "lanczos",
    on: str = "train",
    iterations: int = 20,
    batch_size: int | str | None = "optimizer",
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
        Cadence in steps (a cold call costs ~5-30 Hessian-vector products, a warm one, where
        the top eigenvector moved little since the last call, 1-3).
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
    method : {"lanczos", "power_iter"}
        Lanczos to ``tol``, or the paper authors' K (their ``high-dim/sharpness.py``):
        ``iterations`` power-iteration steps from a fresh uniform start, step i on the Hessian of
        batch ``i mod b`` of the ``on`` set split in data order into batches of ``batch_size``
        (:mod:`particledyn.geometry.sharpness_power`).
    on : {"train", "test"}
        The data set of the Hessian (``"test"`` needs a kernel with held-out data).
    iterations : int
        Most power-iteration steps (the authors' 20).
    batch_size : int, None or "optimizer"
        Rows per Hessian batch of the power iteration: the optimizer's batch size (the authors'
        test loader uses the training batch size), an integer, or None for one batch of all rows.
    """
    if on not in ("train", "test"):
        raise ValueError(f"on={on!r}: expected 'train' or 'test'")
    if batch_size not in (None, "optimizer") and (
        isinstance(batch_size, (bool, str)) or int(batch_size) != batch_size or int(batch_size) < 1
    ):
        raise ValueError(f"batch_size={batch_size!r}: expected a positive integer, None or 'optimizer'")
    observer = KernelSharpnessObserver(
        lambda info: _kernel_hvp(info, on),
        every,
        k=k,
        tol=tol,
        which=which,
        gradient=_kernel_gradient if gradient_fraction else None,
        method=method,
        iterations=iterations,
    )
    observer.preconditioned, observer.on, observer.hessian_batch = preconditioned, on, batch_size
    return observer
