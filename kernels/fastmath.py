"""Vectorisable activations for numba loops: scalar functions that inline into a loop body.

numba's ``math.exp`` calls libm and never vectorises (llvmlite ships no SVML),
which makes it the bottleneck of every activation. Here ``exp(-a)`` (a >= 0)
is ``2**-k * P(r)`` with ``k = round(a / ln 2)``, ``r = k ln 2 - a`` in
``[-ln2/2, ln2/2]`` (Cody-Waite split of ln 2) and ``P`` a near-minimax
polynomial with ``P(0) = 1`` (degree 10 in float64, 5 in float32).
``k`` is rounded with the magic-number trick (adding 1.5 * 2**52 leaves k in
the low mantissa bits), and ``2**-k`` is assembled directly in the exponent
bits (:func:`particledyn.kernels.llvm_ops.bits_to_float`). There are no calls, branches
or int<->float conversions, so a loop that calls :func:`activation` on each
entry becomes one vector loop (AVX-512 here), with every intermediate in registers.

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
from typing import Any

import numba
import numba.extending
import numpy as np

from .llvm_ops import bits_to_float, float_bits, select

_F64, _F32 = np.float64, np.float32

LOOP_OPTIONS: dict[str, Any] = dict(parallel=True, error_model="numpy", fastmath={"contract"}, cache=True)
"""``numba.njit`` options of the kernel loops that call the activations. ``contract`` lets
LLVM fuse a multiply and an add into one FMA (1.2x on the two-layer step) and nothing else: no
reassociation (a sum that may be split into lanes says so itself, with
:func:`particledyn.kernels.llvm_ops.add_reassoc`), so the loops stay deterministic."""


# exp(r) ~ 1 + r + c2 r^2 + ... on [-ln2/2, ln2/2]: Chebyshev fits of expm1(r)/r in 50-digit
# arithmetic (mpmath.chebyfit), near minimax; max relative error 6e-16 (float64), 2e-7 (float32).
_EXP_POLY64 = (
    1.0,
    1.0000000000000013,
    0.5000000000000001,
    0.16666666666615648,
    0.041666666666624164,
    0.008333333367311603,
    0.0013888888917196719,
    0.0001984119064754424,
    2.4801521322368692e-05,
    2.7632640675430236e-06,
    2.7620075879983367e-07,
)
_EXP_POLY32 = (1.0, 1.0, 0.4999937117099762, 0.16666577756404877, 0.04187564551830292, 0.008363173343241215)


def _constants(ftype, itype, mantissa_bits, bias, clamp, exp_poly, series_terms, ln2_hi, ln2_lo):
    magic = ftype(1.5 * 2.0**mantissa_bits)
    return dict(
        log2e=ftype(1.0 / math.log(2.0)),
        magic=magic,
        magic_bits=np.array([magic], dtype=ftype).view(itype)[0],
        bias=itype(bias),
        shift=itype(mantissa_bits),
        clamp=ftype(clamp),
        ln2_hi=ftype(ln2_hi),
        ln2_lo=ftype(ln2_lo),
        exp_poly=tuple(ftype(c) for c in exp_poly),
        series_inv=tuple(ftype(1.0 / j) for j in range(series_terms, 1, -1)),
        zero=ftype(0.0),
        one=ftype(1.0),
        two=ftype(2.0),
        four=ftype(4.0),
        half=ftype(0.5),
    )


_C64 = _constants(
    _F64, np.int64, 52, 1023, 708.0, _EXP_POLY64, 17, 0.693147180369123816490, 1.90821492927058770002e-10
)
_C32 = _constants(_F32, np.int32, 23, 127, 87.0, _EXP_POLY32, 11, 0.693359375, -2.12194440e-4)


def _straight_line(step, start, constants, **names):
    """An inlined ``f(x)``: p = start, then ``step`` once per constant c (unrolled source)."""
    scope = dict(names, start=start, **{f"c{j}": value for j, value in enumerate(constants)})
    lines = "".join(f"    {step}{j}\n" for j in range(len(constants)))
    exec(f"def f(x):\n    p = start\n{lines}    return p\n", scope)
    return numba.njit(inline="always")(scope["f"])


def _build(c):
    log2e, magic, magic_bits = c["log2e"], c["magic"], c["magic_bits"]
    bias, shift, clamp = c["bias"], c["shift"], c["clamp"]
    ln2_hi, ln2_lo, exp_poly = c["ln2_hi"], c["ln2_lo"], c["exp_poly"]
    zero, one, two, four, half = c["zero"], c["one"], c["two"], c["four"], c["half"]
    degree, series_inv = len(exp_poly) - 1, c["series_inv"]

    # straight-line code: a loop here would leave numba loop-carried temporaries in every caller
    horner = _straight_line("p = p * x + c", exp_poly[degree], exp_poly[degree - 1 :: -1])  # P(x)
    series = _straight_line("p = one - x * p * c", one, series_inv, one=one)  # (1 - e^-x) / x

    @numba.njit(inline="always")
    def exp_neg(a):
        """exp(-a) for a >= 0."""
        x = min(a, clamp)
        y = x * log2e + magic
        k = y - magic
        scale = bits_to_float((bias - (float_bits(y) - magic_bits)) << shift, x)  # 2**-k
        return horner((k * ln2_hi - x) + k * ln2_lo) * scale

    @numba.njit(inline="always")
    def sigmoid(t):
        """(sigmoid(t), sigmoid'(t))."""
        e = exp_neg(abs(t))
        inv = one / (one + e)
        e_inv = e * inv
        return select(t >= zero, inv, e_inv), e_inv * inv

    @numba.njit(inline="always")
    def tanh(t):
        """(tanh(t), tanh'(t)); 1 - exp(-2|t|) by its series near 0 (no cancellation)."""
        y = two * abs(t)
        e = exp_neg(y)
        inv = one / (one + e)
        th = select(y < half, y * series(y), one - e) * inv
        return select(t >= zero, th, -th), four * e * inv * inv

    @numba.njit(inline="always")
    def relu(t):
        """(max(t, 0), 1 where t > 0 else 0)."""
        positive = t > zero
        return select(positive, t, zero), select(positive, one, zero)

    return exp_neg, {"sigmoid": sigmoid, "tanh": tanh, "relu": relu}


exp_neg_f64, _SCALAR64 = _build(_C64)
exp_neg_f32, _SCALAR32 = _build(_C32)
"""``exp_neg_f64(a)`` / ``exp_neg_f32(a)``: exp(-a) for a >= 0, scalar, from numba code."""

ACTIVATION_TAGS = {"sigmoid": np.int8(0), "tanh": np.int16(0), "relu": np.int32(0)}
"""The activation as the *type* of a scalar (int8, int16, int32), for :func:`activation`: numba
compiles one loop per argument type, so the choice is made at compile time and the loop that
calls it holds no branch on it (a branch per entry would stop vectorisation)."""
_TAG_ACTIVATIONS = {numba.typeof(tag): name for name, tag in ACTIVATION_TAGS.items()}


def activation_tag(activation: str, dtype):
    """The tag of ``activation`` for :func:`activation`, checking the dtype too."""
    if activation not in ACTIVATION_TAGS or np.dtype(dtype) not in (
        np.dtype(np.float32),
        np.dtype(np.float64),
    ):
        raise ValueError(
            f"activation={activation!r} with dtype {np.dtype(dtype)}: expected one of "
            f"{sorted(ACTIVATION_TAGS)} with float32 or float64"
        )
    return ACTIVATION_TAGS[activation]


def activation(tag, t):
    """(sigma(t), sigma'(t)) for the activation tagged ``tag`` (see ACTIVATION_TAGS), from numba
    code. Inlined: where only sigma is used, LLVM drops the derivative's arithmetic."""
    raise NotImplementedError("activation is callable from numba-compiled code only")


@numba.extending.overload(activation, inline="always")
def _activation_overload(tag, t):
    if tag not in _TAG_ACTIVATIONS or not isinstance(t, numba.types.Float):
        return None
    function = (_SCALAR64 if t == numba.types.float64 else _SCALAR32)[_TAG_ACTIVATIONS[tag]]
    return lambda tag, t: function(t)


def activation_curvature(tag, value, deriv):
    """sigma''(t) from sigma(t) and sigma'(t) for the activation tagged ``tag``, from numba code
    (sigmoid: sigma' (1 - 2 sigma); tanh: -2 sigma sigma'; relu: 0 away from the kink)."""
    raise NotImplementedError("activation_curvature is callable from numba-compiled code only")


@numba.extending.overload(activation_curvature, inline="always")
def _activation_curvature_overload(tag, value, deriv):
    if tag not in _TAG_ACTIVATIONS:
        return None
    name = _TAG_ACTIVATIONS[tag]
    # written without integer constants, which would promote float32 to float64
    if name == "sigmoid":
        return lambda tag, value, deriv: deriv - (value + value) * deriv
    if name == "tanh":
        return lambda tag, value, deriv: -((value + value) * deriv)
    return lambda tag, value, deriv: deriv - deriv


@numba.njit(inline="always")
def activation_batch(tag, t, value, deriv, n):
    """value[b], deriv[b] = :func:`activation` (tag, t[b]) for b < n, from numba code."""
    for b in range(n):
        value[b], deriv[b] = activation(tag, t[b])
