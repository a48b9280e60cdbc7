"""Conformance checks for update kernels: :func:`check_kernel`, the analogue of scikit-learn's
``check_estimator``.

Run it on a kernel of your own before simulating with it::

    from particledyn.testing import check_kernel
    report = check_kernel(my_kernel)          # raises KernelCheckError naming the failed check
    print(report)

Each check is also a function of its own (``check_shapes_and_dtypes``, ...), for tests that feed it
chosen inputs (e.g. permutations drawn by hypothesis). See ``docs/testing_kernels.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernel import Kernel, finite_difference_jvp

__all__ = [
    "KernelCheckError",
    "KernelReport",
    "CHECKS",
    "check_kernel",
    "check_shapes_and_dtypes",
    "check_permutation_equivariance",
    "check_gradient",
    "check_hvp",
    "check_thread_determinism",
    "gradient_metric",
]

#: The checks :func:`check_kernel` runs, in order.
CHECKS = ("shapes_and_dtypes", "permutation_equivariance", "gradient", "hvp", "thread_determinism")


class KernelCheckError(AssertionError):
    """A kernel failed one conformance check; ``check`` names it."""

    def __init__(self, check: str, kernel: Any, message: str):
        self.check = check
        super().__init__(
            f"check_kernel({getattr(kernel, 'name', type(kernel).__name__)}): {check} failed: {message}"
        )


@dataclass
class KernelReport:
    """What :func:`check_kernel` checked: ``passed`` (check names), ``not_run`` ({check: why})
    and ``errors`` ({quantity: the largest relative error measured})."""

    kernel: str
    passed: list[str] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.kernel}: passed {', '.join(self.passed) or 'nothing'}"]
        lines += [f"  not run: {name} ({why})" for name, why in self.not_run.items()]
        lines += [f"  {name}: max relative error {value:.2e}" for name, value in self.errors.items()]
        return "\n".join(lines)


def _relative(a, b) -> tuple[float, tuple]:
    """Largest |a - b| relative to max |b| (1 when b is 0), and the index where it is."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = np.abs(a - b)
    if not np.all(np.isfinite(diff)):
        index = np.unravel_index(int(np.argmax(~np.isfinite(diff))), diff.shape) if diff.ndim else ()
        return np.inf, tuple(int(i) for i in index)
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, np.finfo(np.float64).tiny)
    index = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    return float(np.max(diff)) / scale if diff.size else 0.0, tuple(int(i) for i in index)


def gradient_metric(kernel: Kernel) -> str:
    """``"mass"`` when the field is -dL/dx_i per unit mass (mean-field scaling, DeepSets gradient
    kernels), else ``"identity"`` (U = -dL/dX)."""
    from .deepsets import DeepSetsKernel

    if isinstance(kernel, DeepSetsKernel) or getattr(kernel, "scaling", None) == "mean_field":
        return "mass"
    return "identity"


def _inputs(kernel: Kernel, n: int, seed: int):
    """Positions (N, D) around the origin, positive masses summing to one per group."""
    rng = np.random.default_rng(seed)
    groups = kernel.groups or (n,)
    x = 0.5 * rng.standard_normal((sum(groups), kernel.dim))
    m = np.concatenate([(w := rng.uniform(0.5, 1.5, g)) / w.sum() for g in groups])
    return x, m


def _permutation(kernel: Kernel, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of the particles within each group."""
    out, start = [], 0
    for size in kernel.groups or (n,):
        out.append(start + rng.permutation(size))
        start += size
    return np.concatenate(out)


def check_shapes_and_dtypes(kernel: Kernel, positions, masses, context) -> None:
    """Field (N, D) finite in the positions' dtype (float64 and float32), inputs left unchanged,
    loss a finite scalar and hvp (N, D) finite for gradient kernels, wrong shapes refused."""
    name = "shapes_and_dtypes"
    x, m = np.array(positions, np.float64), np.array(masses, np.float64)
    n, d = x.shape
    if d != kernel.dim:
        raise KernelCheckError(name, kernel, f"positions have D = {d}, but kernel.dim = {kernel.dim}")
    for dtype in (np.float64, np.float32):
        xd = x.astype(dtype)
        before = xd.copy()
        u = np.asarray(kernel.field(xd, m, context))
        if u.shape != (n, d):
            raise KernelCheckError(
                name,
                kernel,
                f"field of {dtype.__name__} positions ({n}, {d}) has shape {u.shape}: expected ({n}, {d})",
            )
        if u.dtype != np.dtype(dtype):
            raise KernelCheckError(
                name,
                kernel,
                f"field of {dtype.__name__} positions has dtype {u.dtype}: expected {np.dtype(dtype)}",
            )
        if not np.all(np.isfinite(u)):
            raise KernelCheckError(
                name,
                kernel,
                f"field of {dtype.__name__} positions is not finite "
                f"at particle {int(np.argwhere(~np.isfinite(u))[0, 0])}",
            )
        if not np.array_equal(xd, before):
            raise KernelCheckError(name, kernel, "field modified the positions it was given")
    try:
        kernel.check_positions(np.zeros((n, d + 1)))
    except ValueError:
        pass
    else:
        raise KernelCheckError(
            name,
            kernel,
            f"check_positions accepted positions of shape "
            f"({n}, {d + 1}): expected a ValueError (kernel.dim = {d})",
        )
    if not kernel.is_gradient:
        return
    loss = kernel.loss(x, m, context)
    if np.ndim(loss) != 0 or not np.isfinite(float(loss)):
        raise KernelCheckError(name, kernel, f"loss is {loss!r}: expected a finite scalar")
    h = np.asarray(kernel.hvp(x, m, context, np.ones_like(x)))
    if h.shape != (n, d) or not np.all(np.isfinite(h)):
        raise KernelCheckError(
            name,
            kernel,
            f"hvp has shape {h.shape}"
            + ("" if h.shape != (n, d) else " with non-finite values")
            + f": expected finite ({n}, {d})",
        )


def check_permutation_equivariance(
    kernel: Kernel, positions, masses, context, permutation, rtol: float = 1e-10
) -> float:
    """U(P x, P m) = P U(x, m) (and the loss invariant, hvp equivariant) for one permutation P
    that keeps every particle in its group; returns the largest relative error."""
    name = "permutation_equivariance"
    p = np.asarray(permutation)
    x, m = np.asarray(positions, np.float64), np.asarray(masses, np.float64)
    start = 0
    for size in kernel.groups or (len(x),):
        block = p[start : start + size]
        if block.size != size or np.any((block < start) | (block >= start + size)):
            raise ValueError(
                f"permutation moves particles between groups {kernel.groups}: expected one within each group"
            )
        start += size
    pairs: list[tuple[str, Any, Any]] = [
        ("field", kernel.field(x[p], m[p], context), kernel.field(x, m, context)[p])
    ]
    if kernel.is_gradient:
        v = np.random.default_rng(0).standard_normal(x.shape)
        pairs.append(("loss", kernel.loss(x[p], m[p], context), kernel.loss(x, m, context)))
        pairs.append(("hvp", kernel.hvp(x[p], m[p], context, v[p]), kernel.hvp(x, m, context, v)[p]))
    worst = 0.0
    for what, permuted, expected in pairs:
        error, index = _relative(permuted, expected)
        if not error <= rtol:
            at = f" at particle {index[0]} (of the permuted order)" if index else ""
            raise KernelCheckError(
                name,
                kernel,
                f"{what}(P x) differs from P {what}(x) by {error:.3g} relative{at}; tolerance {rtol:g}",
            )
        worst = max(worst, error)
    return worst


def _loss_gradient(kernel, x, m, context) -> np.ndarray:
    """dL/dX by central differences, one coordinate at a time."""
    grad = np.empty_like(x)
    h0 = np.cbrt(np.finfo(np.float64).eps)
    for index in np.ndindex(x.shape):
        h = h0 * max(1.0, abs(x[index]))
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        grad[index] = (kernel.loss(plus, m, context) - kernel.loss(minus, m, context)) / (2 * h)
    return grad


def check_gradient(
    kernel: Kernel, positions, masses, context, rtol: float = 1e-5, metric: str | None = None
) -> float:
    """U = -dL/dX (``metric`` "identity") or -dL/dx_i / m_i ("mass"; default
    :func:`gradient_metric`), dL/dX by central differences of ``kernel.loss``; returns the
    largest relative error."""
    name = "gradient"
    metric = gradient_metric(kernel) if metric is None else metric
    if metric not in ("identity", "mass"):
        raise ValueError(f"metric={metric!r}: expected 'identity' or 'mass'")
    x, m = np.array(positions, np.float64), np.asarray(masses, np.float64)
    grad = _loss_gradient(kernel, x, m, context)
    expected = -grad / m[:, None] if metric == "mass" else -grad
    error, index = _relative(kernel.field(x, m, context), expected)
    if not error <= rtol:
        per_mass = " per unit mass" if metric == "mass" else ""
        raise KernelCheckError(
            name,
            kernel,
            f"field differs from -dL/dX{per_mass} (central differences "
            f"of the loss) by {error:.3g} relative at particle {index[0]}, coordinate "
            f"{index[1]}; tolerance {rtol:g}",
        )
    return error


def check_hvp(
    kernel: Kernel,
    positions,
    masses,
    context,
    rtol: float = 1e-5,
    n_vectors: int = 2,
    seed: int = 0,
    metric: str | None = None,
) -> float:
    """hvp(v) = the Jacobian of -U along v by central differences of the field, for random v, and
    symmetric in the gradient's metric: <u, S hvp(v)> = <v, S hvp(u)>; returns the largest
    relative error."""
    name = "hvp"
    metric = gradient_metric(kernel) if metric is None else metric
    x, m = np.array(positions, np.float64), np.asarray(masses, np.float64)
    rng = np.random.default_rng(seed)
    vectors = [rng.standard_normal(x.shape) for _ in range(max(n_vectors, 2))]
    products = [np.asarray(kernel.hvp(x, m, context, v)) for v in vectors]
    worst = 0.0
    for v, hv in zip(vectors, products):
        error, index = _relative(hv, finite_difference_jvp(kernel, x, m, context, v))
        if not error <= rtol:
            raise KernelCheckError(
                name,
                kernel,
                f"hvp differs from the finite-difference Jacobian of "
                f"-field by {error:.3g} relative at particle {index[0]}, coordinate "
                f"{index[1]}; tolerance {rtol:g}",
            )
        worst = max(worst, error)
    s = m[:, None] if metric == "mass" else np.ones_like(m)[:, None]
    (u, v), (hu, hv) = vectors[:2], products[:2]
    left, right = float(np.sum(u * s * hv)), float(np.sum(v * s * hu))
    error = abs(left - right) / max(abs(left), abs(right), np.finfo(np.float64).tiny)
    if not error <= rtol:
        raise KernelCheckError(
            name,
            kernel,
            f"hvp is not symmetric: <u, S H v> = {left:.6g} but "
            f"<v, S H u> = {right:.6g} (S the {metric} metric); tolerance {rtol:g}",
        )
    return max(worst, error)


def check_thread_determinism(kernel: Kernel, positions, masses, context, threads=(1, 2)) -> None:
    """Field, loss and hvp bit-identical under each numba thread count in ``threads``."""
    import numba

    name = "thread_determinism"
    x, m = np.asarray(positions, np.float64), np.asarray(masses, np.float64)
    v = np.random.default_rng(1).standard_normal(x.shape)
    before = numba.get_num_threads()
    results = {}
    try:
        for count in threads:
            numba.set_num_threads(count)
            out = {
                "field": np.asarray(kernel.field(x, m, context)),
                "field (float32)": np.asarray(kernel.field(x.astype(np.float32), m, context)),
            }
            if kernel.is_gradient:
                out["loss"] = np.asarray(kernel.loss(x, m, context))
                out["hvp"] = np.asarray(kernel.hvp(x, m, context, v))
            results[count] = out
    finally:
        numba.set_num_threads(before)
    first = threads[0]
    for count in threads[1:]:
        for what, value in results[count].items():
            if not np.array_equal(value, results[first][what]):
                error, _ = _relative(value, results[first][what])
                raise KernelCheckError(
                    name,
                    kernel,
                    f"{what} with {count} numba threads differs from "
                    f"{first} thread(s) by {error:.3g} relative: expected "
                    "bit-identical results",
                )


def check_kernel(
    kernel: Kernel,
    positions=None,
    masses=None,
    context=None,
    *,
    n: int = 12,
    seed: int = 0,
    n_permutations: int = 3,
    metric: str | None = None,
    thread_invariant: bool = True,
    rtol: float = 1e-5,
) -> KernelReport:
    """Run every conformance check (:data:`CHECKS`) on ``kernel``; raise at the first failure.

    Parameters
    ----------
    kernel : Kernel
    positions, masses : ndarray, optional
        Where to check; by default N = ``n`` (or ``sum(kernel.groups)``) particles drawn around
        the origin with unequal masses summing to one per group.
    context : optional
        The kernel's context (default ``kernel.evaluation_context()``, the full training set).
    n, seed : int
        Size and seed of the default positions, masses, permutations and directions.
    n_permutations : int
        Random permutations (within each particle group) the equivariance check tries.
    metric : {None, "identity", "mass"}
        The gradient's metric: U = -dL/dX, or -dL/dx_i / m_i (per unit mass); None:
        :func:`gradient_metric`.
    thread_invariant : bool
        Whether the kernel promises results independent of the numba thread count (the built-in
        kernels do: their sums run over fixed chunks in a fixed order); False reports the
        determinism check as not run.
    rtol : float
        Tolerance of the finite-difference checks (gradient, hvp); equivariance uses 1e-10.

    Returns
    -------
    KernelReport
        The checks passed, those not run and why (a non-gradient kernel has no gradient or hvp
        check; one numba thread allows no thread comparison), and the errors measured.

    Raises
    ------
    KernelCheckError
        The first check that fails, named, with the largest error and where it is.
    """
    import numba

    if not isinstance(kernel, Kernel):
        raise TypeError(f"kernel is {type(kernel).__name__}: expected a particledyn.Kernel")
    if positions is None:
        positions, default_masses = _inputs(kernel, n, seed)
        masses = default_masses if masses is None else masses
    x = np.asarray(positions, np.float64)
    m = np.full(len(x), 1.0 / len(x)) if masses is None else np.asarray(masses, np.float64)
    context = kernel.evaluation_context() if context is None else context
    report = KernelReport(getattr(kernel, "name", type(kernel).__name__))
    check_shapes_and_dtypes(kernel, x, m, context)
    report.passed.append("shapes_and_dtypes")
    rng = np.random.default_rng(seed)
    report.errors["permutation_equivariance"] = max(
        check_permutation_equivariance(kernel, x, m, context, _permutation(kernel, len(x), rng))
        for _ in range(max(n_permutations, 1))
    )
    report.passed.append("permutation_equivariance")
    if kernel.is_gradient:
        report.errors["gradient"] = check_gradient(kernel, x, m, context, rtol, metric)
        report.errors["hvp"] = check_hvp(kernel, x, m, context, rtol, seed=seed, metric=metric)
        report.passed += ["gradient", "hvp"]
    else:
        report.not_run.update(gradient="not a gradient kernel", hvp="not a gradient kernel")
    if not thread_invariant:
        report.not_run["thread_determinism"] = "the kernel does not promise it (thread_invariant=False)"
    elif numba.config.NUMBA_NUM_THREADS < 2:  # type: ignore[attr-defined]
        report.not_run["thread_determinism"] = "numba has 1 thread here (NUMBA_NUM_THREADS)"
    else:
        check_thread_determinism(kernel, x, m, context)
        report.passed.append("thread_determinism")
    return report
