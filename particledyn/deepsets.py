"""User kernels in the equivariant-by-construction form, compiled with numba.

    U_i = psi(x_i, rho(sum_j m_j phi(x_j, ctx), ctx), ctx)

Every permutation-equivariant map can be written this way (DeepSets); a kernel
written as (phi, rho, psi) cannot break equivariance. ``phi`` and ``psi`` are
plain Python functions on one particle that write into an output vector; they
are compiled with ``numba.njit`` and called inside parallel loops over the
particles. ``rho`` runs once per step on the M-vector aggregate, in Python.
The aggregate is summed in float64 over fixed chunks of particles, in order,
so results do not depend on the number of threads.

User code is checked: array accesses are bounds-checked (unless turned off), and
an error inside phi, rho or psi becomes a one-line :class:`UserKernelError`
naming the function, the particle, the step and the message (numba's parallel
loops drop the message: the failing call is found again by a serial pass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import prange

from .kernel import Kernel

CHUNK = 4096
_PAD = 64  # extra room given to phi's and psi's output when measuring how far they write


class UserKernelError(RuntimeError):
    """phi, rho or psi of a :class:`DeepSetsKernel` failed (one-line message).

    Attributes
    ----------
    function : str
        ``"phi"``, ``"rho"`` or ``"psi"``.
    particle : int or None
        Index of the particle whose call failed (None for rho).
    step : int or None
        The step of the last context the kernel gave out (None before the first).
    """

    def __init__(self, message: str, function: str, particle: int | None, step: int | None):
        super().__init__(" ".join(message.split()))
        self.function, self.particle, self.step = function, particle, step


def _compile(phi, psi, boundscheck: bool):
    """The parallel loops over the particles, in chunks of CHUNK particles.

    Exceptions do not leave numba's parallel loops reliably (some are dropped, the others
    lose their message), and a try inside the prange body would make numba run it serially:
    each chunk runs in a function of its own that catches a failure and reports the index + 1
    of the particle it was at (0: no failure). These loops index only within their arrays
    (i < n, q < agg_dim), so only phi and psi carry bounds checks (a few per cent of the
    time of a small kernel).
    """
    phi_jit = numba.njit(boundscheck=boundscheck)(phi)
    psi_jit = numba.njit(boundscheck=boundscheck)(psi)

    @numba.njit(error_model="numpy")
    def phi_chunk(positions, masses, context, lo, hi, buf, partial):
        i = lo
        try:
            while i < hi:
                phi_jit(positions[i], context, buf)
                for q in range(buf.size):
                    partial[q] += masses[i] * buf[q]
                i += 1
        except Exception:
            return i + 1
        return 0

    @numba.njit(error_model="numpy")
    def psi_chunk(positions, summary, context, out, lo, hi):
        i = lo
        try:
            while i < hi:
                psi_jit(positions[i], summary, context, out[i])
                i += 1
        except Exception:
            return i + 1
        return 0

    @numba.njit(parallel=True, error_model="numpy")
    def aggregate(positions, masses, context, agg_dim):
        n = positions.shape[0]
        n_chunks = (n + CHUNK - 1) // CHUNK
        partial = np.zeros((n_chunks, agg_dim), dtype=np.float64)
        failed = np.zeros(n_chunks, dtype=np.int64)
        for chunk in prange(n_chunks):
            buf = np.empty(agg_dim, dtype=positions.dtype)
            failed[chunk] = phi_chunk(
                positions, masses, context, chunk * CHUNK, min(n, (chunk + 1) * CHUNK), buf, partial[chunk]
            )
        total = np.zeros(agg_dim, dtype=np.float64)
        for chunk in range(n_chunks):
            total += partial[chunk]
        for chunk in range(n_chunks):
            if failed[chunk] != 0:
                return total, failed[chunk]
        return total, 0

    @numba.njit(parallel=True, error_model="numpy")
    def apply(positions, summary, context, out):
        n = positions.shape[0]
        n_chunks = (n + CHUNK - 1) // CHUNK
        failed = np.zeros(n_chunks, dtype=np.int64)
        for chunk in prange(n_chunks):
            failed[chunk] = psi_chunk(
                positions, summary, context, out, chunk * CHUNK, min(n, (chunk + 1) * CHUNK)
            )
        for chunk in range(n_chunks):
            if failed[chunk] != 0:
                return failed[chunk]
        return 0

    return aggregate, apply


def _numba_message(exc: BaseException) -> str:
    """The informative lines of a numba compile error (its report is many lines)."""
    skip = ("Failed in", "During:", "File ", "^", "<source", "Resolution failure", "- Of which")
    lines = [line.strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(skip)]
    return " ".join(useful[:3]) or type(exc).__name__


class DeepSetsKernel(Kernel):
    """A user kernel U_i = psi(x_i, rho(sum_j m_j phi(x_j, ctx), ctx), ctx), numba-compiled.

    Parameters
    ----------
    phi : function (x, ctx, out) -> None
        Writes the M-vector phi(x) of one particle ``x`` (a length-D array) into ``out``.
    psi : function (x, summary, ctx, out) -> None
        Writes the update U of one particle into ``out`` (length D), given the
        summary vector returned by ``rho``.
    dim : int
        Particle dimension D.
    agg_dim : int
        Length M of phi's output.
    rho : function (aggregate, ctx) -> ndarray, optional
        Runs once per step in Python on the float64 aggregate; identity by default.
        It must return a 1-D array.
    context : function (step, rng, batch_size) -> tuple of arrays, or a tuple, optional
        The per-step context handed to phi, rho and psi (a tuple of numpy arrays,
        possibly empty). ``rng`` depends only on (seed, step).
    loss : function (positions, masses, ctx) -> float, optional
        Declares a gradient kernel: ``psi`` must then give -dL/dx_i (per unit mass).
    name : str
    boundscheck : bool
        Bounds-check every array access of phi and psi and of the loops that call
        them (default). An index out of range then raises :class:`UserKernelError`
        instead of corrupting memory, crashing the process or silently writing
        into a neighbour's update. Pass False for speed once the kernel is
        tested: out-of-range accesses are then undefined behaviour.

    Raises
    ------
    UserKernelError
        From :meth:`field` and :meth:`summary` when phi, rho or psi raise or fail
        to compile, when phi writes more than ``agg_dim`` entries or psi more than
        ``dim``, or when rho returns an array that is not 1-D; the message names
        the function, the particle, the step and the original message.

    Notes
    -----
    phi and psi are compiled at the first call for the dtypes seen (a few seconds).
    They must use only what numba supports; cast constants to the particle dtype
    in float32 code to keep it float32. The step in error messages is the step
    of the last :meth:`context` the simulation asked for.
    """

    thread_invariant = True  # sums over fixed chunks in a fixed order

    def __init__(
        self,
        phi: Callable,
        psi: Callable,
        dim: int,
        agg_dim: int,
        rho: Callable | None = None,
        context: Any = (),
        loss: Callable | None = None,
        name: str = "deepsets",
        boundscheck: bool = True,
    ):
        for label, value in (("dim", dim), ("agg_dim", agg_dim)):
            if int(value) != value or value < 1:
                raise ValueError(f"{label}={value!r}: expected a positive integer")
        for label, fn in (("phi", phi), ("psi", psi)):
            if not callable(fn):
                raise TypeError(f"{label}={fn!r}: expected a function")
        if not isinstance(boundscheck, bool):
            raise TypeError(f"boundscheck={boundscheck!r}: expected True or False")
        self.phi, self.psi, self.rho = phi, psi, rho
        self.dim, self.agg_dim = int(dim), int(agg_dim)
        self._context = context
        self._loss = loss
        self.is_gradient = loss is not None
        self.name = name
        self.boundscheck = boundscheck
        self._step: int | None = None
        self._aggregate, self._apply = _compile(phi, psi, boundscheck)
        self._checked: dict[str, Any] = {}

    def context(self, step, rng, batch_size):
        self._step = int(step)
        ctx = self._context(step, rng, batch_size) if callable(self._context) else self._context
        return tuple(ctx) if isinstance(ctx, (tuple, list)) else (ctx,)

    def evaluation_context(self):
        step = self._step
        try:
            return super().evaluation_context()
        finally:
            self._step = step

    def summary(self, positions, masses, context) -> np.ndarray:
        """rho(sum_j m_j phi(x_j)), the vector every particle's psi sees."""
        return self.summary_given_aggregate(
            self.aggregate(positions, masses, context), context, positions.dtype
        )

    def aggregate(self, positions, masses, context) -> np.ndarray:
        """sum_j m_j phi(x_j), float64 (M,): the sum over the particles; a sharded run adds
        the ranks' partial sums (:mod:`particledyn.mpi`)."""
        masses = np.asarray(masses, dtype=np.float64)
        try:
            total, failed = self._aggregate(positions, masses, context, self.agg_dim)
        except Exception as exc:  # numba could not compile phi, or the loop failed outside phi
            raise self._diagnose("phi", positions, (context,), self.agg_dim, exc) from None
        if failed:
            raise self._diagnose("phi", positions[failed - 1 :], (context,), self.agg_dim, None, failed - 1)
        return total

    def summary_given_aggregate(self, total: np.ndarray, context, dtype) -> np.ndarray:
        """rho(total) in ``dtype``: the summary once the aggregate is known."""
        if self.rho is None:
            return total.astype(dtype)
        try:
            out = np.asarray(self.rho(total, context), dtype=np.float64)
        except Exception as exc:
            raise self._error("rho", None, f"raised {type(exc).__name__}: {exc}") from exc
        if out.ndim != 1:
            raise self._error("rho", None, f"returned an array of shape {out.shape}: expected a 1-D array")
        return out.astype(dtype)

    def field(self, positions, masses, context):
        return self.field_given_aggregate(
            positions, masses, context, self.aggregate(positions, masses, context)
        )

    def field_given_aggregate(self, positions, masses, context, total) -> np.ndarray:
        """The field once the aggregate (:meth:`aggregate`, summed over every particle) is known."""
        out = np.empty_like(positions)
        summary = self.summary_given_aggregate(total, context, positions.dtype)
        try:
            failed = self._apply(positions, summary, context, out)
        except Exception as exc:
            raise self._diagnose("psi", positions, (summary, context), self.dim, exc) from None
        if failed:
            raise self._diagnose(
                "psi", positions[failed - 1 :], (summary, context), self.dim, None, failed - 1
            )
        return out

    def to_device(self, backend):
        """phi and psi compiled as ``numba.cuda`` device functions
        (:class:`~particledyn.deepsets_cuda.CudaDeepSetsKernel`)."""
        from .deepsets_cuda import CudaDeepSetsKernel

        return CudaDeepSetsKernel(self, backend)

    def loss(self, positions, masses, context):
        if self._loss is None:
            raise NotImplementedError(f"{self.name} was built without a loss")
        return float(self._loss(positions, masses, context))

    # ------------------------------------------------------------ errors of user code
    def _error(self, function: str, particle: int | None, text: str) -> UserKernelError:
        where = "" if particle is None else f" for particle {particle}"
        when = "" if self._step is None else f" at step {self._step}"
        return UserKernelError(f"{self.name}: {function}{where}{when} {text}", function, particle, self._step)

    def _checked_function(self, function: str):
        if function not in self._checked:
            self._checked[function] = numba.njit(boundscheck=True)(getattr(self, function))
        return self._checked[function]

    def _diagnose(self, function, positions, args, size, original, first=0) -> UserKernelError:
        """Rerun ``function`` particle by particle from ``positions[0]`` (particle ``first``),
        bounds-checked, to name the failing call and recover its message."""
        if isinstance(original, numba.core.errors.NumbaError):
            return self._error(function, None, f"could not be compiled by numba: {_numba_message(original)}")
        checked = self._checked_function(function)
        label = "agg_dim" if function == "phi" else "dim"
        for i in range(positions.shape[0]):
            try:
                checked(positions[i], *args, np.empty(size, dtype=positions.dtype))
            except Exception as exc:
                written = self._extent(checked, positions[i], args, size)
                if written is not None:
                    return self._error(
                        function, first + i, f"writes {written} entries: expected {label} = {size}"
                    )
                return self._error(function, first + i, f"raised {type(exc).__name__}: {exc}")
        cause = "" if original is None else f" ({type(original).__name__}: {original})"
        return self._error(function, None, f"failed in the parallel loop{cause} but not when rerun serially")

    @staticmethod
    def _extent(checked, x, args, size) -> int | None:
        """How many entries ``checked`` writes when given room beyond ``size``; None if it still fails."""
        sentinel = -np.finfo(x.dtype).max
        wide = np.full(size + _PAD, sentinel, dtype=x.dtype)
        try:
            checked(x, *args, wide)
        except Exception:
            return None
        touched = np.flatnonzero(wide != sentinel)
        return int(touched[-1]) + 1 if touched.size and touched[-1] >= size else None


def deepsets_reference(kernel: DeepSetsKernel, positions, masses, context) -> np.ndarray:
    """The same field by plain Python loops over the uncompiled phi and psi (for tests)."""
    n, _ = positions.shape
    total = np.zeros(kernel.agg_dim)
    buf = np.empty(kernel.agg_dim, dtype=positions.dtype)
    for i in range(n):
        kernel.phi(positions[i], context, buf)
        total += masses[i] * buf
    summary = total if kernel.rho is None else np.asarray(kernel.rho(total, context), dtype=np.float64)
    summary = summary.astype(positions.dtype)
    out = np.empty_like(positions)
    for i in range(n):
        kernel.psi(positions[i], summary, context, out[i])
    return out
