"""Scalar LLVM operations that numba does not expose, for the vectorised kernel loops.

Each is one LLVM instruction, so inside a loop the vectoriser sees exactly what it would see in C:

* :func:`float_bits` / :func:`bits_to_float`: reinterpret a float as an integer and back (the
  exponent-bit trick of :mod:`particledyn.kernels.fastmath` without a round trip through memory);
* :func:`select`: ``a if cond else b`` without the branch and phi numba emits for a
  conditional expression;
* :func:`add_reassoc`: ``a + b`` marked ``reassoc``, on the accumulator of a running sum only. It
  lets LLVM split that one sum into vector lanes; nothing else in the loop may be reassociated
  (``fastmath=True`` on the whole loop would fold the rounding trick of exp away). The lane order
  is fixed by the compiled code, so results stay bit-identical from run to run on one machine.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["add_reassoc", "bits_to_float", "float_bits", "select"]


@intrinsic
def add_reassoc(typingctx, a, b):
    """``a + b`` with LLVM's ``reassoc`` flag (for the accumulator of a reduction)."""
    if not isinstance(a, types.Float) or a != b:
        return None

    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1], flags=("reassoc", "contract"))

    return a(a, b), codegen


@intrinsic
def float_bits(typingctx, x):
    """The bits of float ``x`` as a signed integer of the same width."""
    if not isinstance(x, types.Float):
        return None
    width = x.bitwidth

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(width))

    return types.int64(x) if width == 64 else types.int32(x), codegen


@intrinsic
def bits_to_float(typingctx, bits, like):
    """The float of ``like``'s type whose bits are the low bits of the integer ``bits``."""
    if not isinstance(bits, types.Integer) or not isinstance(like, types.Float):
        return None
    width = like.bitwidth

    def codegen(context, builder, signature, args):
        value = args[0]
        if bits.bitwidth > width:
            value = builder.trunc(value, ir.IntType(width))
        elif bits.bitwidth < width:
            value = builder.sext(value, ir.IntType(width))
        return builder.bitcast(value, ir.DoubleType() if width == 64 else ir.FloatType())

    return like(bits, like), codegen


@intrinsic
def select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select`` (no branch)."""
    if not isinstance(cond, types.Boolean) or a != b:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])

    return a(cond, a, b), codegen
