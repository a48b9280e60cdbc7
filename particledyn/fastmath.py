"""Vectorisable activations for numba loops, evaluated on a whole batch buffer.

numba's ``math.exp`` calls libm and never vectorises (llvmlite ships no SVML),
which makes it the bottleneck of every activation. Here ``exp(-a)`` (a >= 0)
is ``2**-k * P(r)`` with ``k = round(a / ln 2)``, ``r = k ln 2 - a`` in
``[-ln2/2, ln2/2]`` (Cody-Waite split of ln 2) and ``P`` a near-minimax
polynomial with ``P(0) = 1`` (degree 10 in float64, 5 in float32).
``k`` is rounded with the magic-number trick (adding 1.5 * 2**52 leaves k in
the low mantissa bits), and ``2**-k`` is assembled directly in the exponent
bits through an integer view of a scratch buffer. Every step is a plain loop
over the buffer with no calls, branches or int<->float conversions, so LLVM
turns each into AVX2 code.

Rules that keep it that way (measured: breaking either costs ~10x):

* callers compile with ``error_model="numpy"`` (:data:`LOOP_OPTIONS`); Python
  semantics add a ZeroDivisionError branch to every division;
* constants carry the working dtype; a Python float literal silently promotes
  float32 math to float64.

``a`` is clamped where ``exp(-a)`` would leave the normal range (708 in float64,
87 in float32): subnormal arithmetic is ~100x slower, and a clamped value is
below every sum it can enter. Accuracy (measured against long double): exp,
sigmoid and tanh to 8e-16 relative in float64 (a few ulp) and 3.3e-7 in float32
(about five ulp: the degree-5 polynomial trades one ulp for two multiply-adds);
the tests hold them to 1e-12 and 1e-6.
"""
from __future__ import annotations

import math

import numba
import numba.extending
import numpy as np

_F64, _F32 = np.float64, np.float32

LOOP_OPTIONS = dict(parallel=True, error_model="numpy", fastmath={"contract"}, cache=True)
"""``numba.njit`` options of the kernel loops that call the activations. ``contract`` lets
LLVM fuse a multiply and an add into one FMA (1.2x on the two-layer step) and nothing else: no
reassociation, so the loops stay deterministic."""


# exp(r) ~ 1 + r + c2 r^2 + ... on [-ln2/2, ln2/2]: Chebyshev fits of expm1(r)/r in 50-digit
# arithmetic (mpmath.chebyfit), near minimax; max relative error 6e-16 (float64), 2e-7 (float32).
_EXP_POLY64 = (1.0, 1.0000000000000013, 0.5000000000000001, 0.16666666666615648, 0.041666666666624164,
               0.008333333367311603, 0.0013888888917196719, 0.0001984119064754424,
               2.4801521322368692e-05, 2.7632640675430236e-06, 2.7620075879983367e-07)
_EXP_POLY32 = (1.0, 1.0, 0.4999937117099762, 0.16666577756404877, 0.04187564551830292,
               0.008363173343241215)


def _constants(ftype, itype, mantissa_bits, bias, clamp, exp_poly, series_terms, ln2_hi, ln2_lo):
    magic = ftype(1.5 * 2.0 ** mantissa_bits)
    return dict(
        log2e=ftype(1.0 / math.log(2.0)), magic=magic,
        magic_bits=np.array([magic], dtype=ftype).view(itype)[0],
        bias=itype(bias), shift=itype(mantissa_bits), clamp=ftype(clamp),
        ln2_hi=ftype(ln2_hi), ln2_lo=ftype(ln2_lo),
        exp_poly=tuple(ftype(c) for c in exp_poly),
        series_inv=tuple(ftype(1.0 / j) for j in range(series_terms, 1, -1)),
        zero=ftype(0.0), one=ftype(1.0), two=ftype(2.0), four=ftype(4.0), half=ftype(0.5),
    )


_C64 = _constants(_F64, np.int64, 52, 1023, 708.0, _EXP_POLY64, 17,
                  0.693147180369123816490, 1.90821492927058770002e-10)
_C32 = _constants(_F32, np.int32, 23, 127, 87.0, _EXP_POLY32, 11, 0.693359375, -2.12194440e-4)


def _build(c, itype):
    log2e, magic, magic_bits = c["log2e"], c["magic"], c["magic_bits"]
    bias, shift, clamp = c["bias"], c["shift"], c["clamp"]
    ln2_hi, ln2_lo, exp_poly = c["ln2_hi"], c["ln2_lo"], c["exp_poly"]
    zero, one, two, four, half = c["zero"], c["one"], c["two"], c["four"], c["half"]
    degree, series_inv = len(exp_poly) - 1, c["series_inv"]
    terms = len(series_inv)

    @numba.njit(inline="always")
    def horner(r):
        p = exp_poly[degree]
        for j in range(degree - 1, -1, -1):  # constant trip count: fully unrolled
            p = p * r + exp_poly[j]
        return p

    @numba.njit(inline="always")
    def exp_neg(a, out, scratch, n):
        """out[b] = exp(-a[b]) for a[b] >= 0; ``scratch`` is a float buffer of length >= n."""
        for b in range(n):
            x = min(a[b], clamp)
            y = x * log2e + magic
            k = y - magic
            out[b] = horner((k * ln2_hi - x) + k * ln2_lo)
            scratch[b] = y
        bits = scratch.view(itype)
        for b in range(n):
            bits[b] = (bias - (bits[b] - magic_bits)) << shift  # the float 2**-k
        for b in range(n):
            out[b] *= scratch[b]

    @numba.njit(inline="always")
    def sigmoid(t, value, deriv, scratch, n):
        """value = sigmoid(t), deriv = sigmoid'(t) on the first n entries."""
        for b in range(n):
            value[b] = abs(t[b])
        exp_neg(value, deriv, scratch, n)
        for b in range(n):
            e = deriv[b]
            inv = one / (one + e)
            value[b] = inv if t[b] >= zero else e * inv
            deriv[b] = e * inv * inv

    @numba.njit(inline="always")
    def tanh(t, value, deriv, scratch, n):
        """value = tanh(t), deriv = tanh'(t); 1 - exp(-2|t|) by its series near 0 (no cancellation)."""
        for b in range(n):
            value[b] = two * abs(t[b])
        exp_neg(value, deriv, scratch, n)
        for b in range(n):
            y = value[b]
            e = deriv[b]
            series = one
            for j in range(terms):  # (1 - e^-y) / y = 1 - y/2 (1 - y/3 (1 - ...))
                series = one - y * series * series_inv[j]
            num = y * series if y < half else one - e
            inv = one / (one + e)
            th = num * inv
            value[b] = th if t[b] >= zero else -th
            deriv[b] = four * e * inv * inv

    @numba.njit(inline="always")
    def relu(t, value, deriv, scratch, n):
        """value = max(t, 0), deriv = 1 where t > 0 else 0."""
        for b in range(n):
            positive = t[b] > zero
            value[b] = t[b] if positive else zero
            deriv[b] = one if positive else zero

    return exp_neg, {"sigmoid": sigmoid, "tanh": tanh, "relu": relu}


exp_neg_f64, _ACT64 = _build(_C64, np.int64)
exp_neg_f32, _ACT32 = _build(_C32, np.int32)

ACTIVATIONS = {name: {np.dtype(np.float64): _ACT64[name], np.dtype(np.float32): _ACT32[name]}
               for name in _ACT64}
"""Batch activations ``f(t, value, deriv, scratch, n)`` by name and dtype."""

ACTIVATION_IDS = {"sigmoid": 0, "tanh": 1, "relu": 2}
"""Integer codes of the activations, for :func:`activation_batch`."""


def activation_id(activation: str, dtype) -> int:
    """The code of ``activation`` for :func:`activation_batch`, checking the dtype too."""
    if activation not in ACTIVATION_IDS or np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"activation={activation!r} with dtype {np.dtype(dtype)}: expected one of "
                         f"{sorted(ACTIVATION_IDS)} with float32 or float64")
    return ACTIVATION_IDS[activation]


def activation_batch(activation_id, t, value, deriv, scratch, n):
    """Activation ``activation_id`` (see ACTIVATION_IDS) on a batch buffer, from numba code.

    A module-level entry point (resolved at compile time on the dtype of ``t``) so
    that the kernels calling it can be cached on disk (``cache=True``); the branch
    on ``activation_id`` is taken once per batch, not per entry.
    """
    raise NotImplementedError("activation_batch is callable from numba-compiled code only")


@numba.extending.overload(activation_batch, inline="always")
def _activation_batch_overload(activation_id, t, value, deriv, scratch, n):
    table = _ACT64 if t.dtype == numba.types.float64 else _ACT32
    sigmoid, tanh, relu = table["sigmoid"], table["tanh"], table["relu"]

    def implementation(activation_id, t, value, deriv, scratch, n):
        if activation_id == 0:
            sigmoid(t, value, deriv, scratch, n)
        elif activation_id == 1:
            tanh(t, value, deriv, scratch, n)
        else:
            relu(t, value, deriv, scratch, n)

    return implementation
