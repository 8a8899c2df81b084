"""Subnormal numbers flushed to zero inside the training loop (x86's MXCSR FTZ and DAZ bits).

A float below the smallest normal number (about 1e-38 in float32, 2e-308 in
float64) is *subnormal*, and on x86 every operation that reads or writes one
takes a microcode assist of a hundred cycles or more. Training makes them:
once a network stops learning from part of its data, Adam's first moment
decays towards zero by ``beta1`` an update, and after a few thousand
updates half of it is subnormal. Measured on the MNIST-shaped random data of
``fastbackprop bench`` (``mnist128``, float32, the 2-core AVX-512 Xeon): an
epoch took 0.66 s, then 0.73 s, then 1.01 s as the subnormals spread, and
0.36 s with them flushed. XLA (JAX) runs its CPU code with them flushed too.

:func:`flush_subnormals` sets FTZ (results that would be subnormal are 0)
and DAZ (subnormal inputs read as 0) for the calling thread and returns the
previous control word; :func:`restore` puts it back. The training loop
brackets its epochs with them, so nothing outside it (NumPy, the caller's
code, the prediction kernels) sees the change. On other architectures both
are no-ops. The cost: values below the smallest normal number become 0 in
training, a relative change of at most that number, far below the
tolerances at which the kernels agree with the reference.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._jit import jit

#: MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
FTZ_DAZ = 0x8040

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _mxcsr_call(builder, name, slot):
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])


@intrinsic
def _swap_control(typingctx, value, mask):
    """Set the bits ``mask`` of the thread's MXCSR to ``value``'s; return the old MXCSR (x86);
    return 0 and change nothing elsewhere."""
    if not (isinstance(value, types.Integer) and isinstance(mask, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        v = builder.trunc(args[0], i32) if args[0].type.width > 32 else args[0]
        m = builder.trunc(args[1], i32) if args[1].type.width > 32 else args[1]
        new = builder.or_(builder.and_(old, builder.not_(m)), builder.and_(v, m))
        builder.store(new, slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old

    return types.uint32(value, mask), codegen


@jit
def flush_subnormals():
    """Flush subnormals to zero in this thread (FTZ and DAZ); returns the previous control
    word for :func:`restore`."""
    return _swap_control(FTZ_DAZ, FTZ_DAZ)


@jit
def restore(control):
    """Put back the FTZ and DAZ bits of ``control`` (from :func:`flush_subnormals`)."""
    _swap_control(control, FTZ_DAZ)


@jit(entry=True)
def control_word():
    """This thread's MXCSR (0 off x86): for tests."""
    return _swap_control(0, 0)
