"""The BLAS matrix product, called straight from the kernels.

:func:`blas_gemm` is the call ``np.dot(A, B, out)`` makes inside Numba
(``numba_xxgemm`` of Numba's helper library, which calls SciPy's
``sgemm``/``dgemm``), emitted at the call site without what ``np.dot``
compiles around it: its argument checks are a function that Numba compiles,
with its own machine code, for every layout of the arguments (three here,
one per product mode), about 0.13 s each of a cold first fit. The kernels'
shapes are right by construction; the one kernel Python calls with a
product (``passes.gemm_pass``) checks them first.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._jit import jit

#: Modes of the product: ``A @ B`` (NN), ``A @ B^T`` (NT), ``A^T @ B`` (TN).
NN, NT, TN = 0, 1, 2


@intrinsic
def blas_gemm(typingctx, A, B, out, mode):
    """``out = op(A) op(B)`` by BLAS, ``mode`` (a constant) naming the transposes.

    ``A``, ``B``, ``out``: 2-D, C-contiguous, one float dtype, with shapes that
    agree (not checked); at least one column, row and inner dimension, each
    below 2**31 (checked by Numba's ``check_c_int``, which raises).
    """
    arrays = (A, B, out)
    if not (isinstance(mode, types.IntegerLiteral) and mode.literal_value in (NN, NT, TN)
            and all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
                    for a in arrays)
            and A.dtype == B.dtype == out.dtype
            and A.dtype in (types.float32, types.float64)):
        return None
    transpose_A, transpose_B = mode.literal_value == TN, mode.literal_value == NT

    def codegen(context, builder, signature, args):
        from numba.np.linalg import call_xxgemm, check_c_int, ensure_blas

        ensure_blas()
        a, b, c = (context.make_array(t)(context, builder, v) for t, v in zip(arrays, args))

        def operand(ty, array, transpose):
            """Numba's view of ``op(array)``: the transpose of a C array is an F array."""
            shapes = cgutils.unpack_tuple(builder, array.shape)
            if transpose:
                return ty.copy(layout="F"), shapes[::-1], array.data
            return ty, shapes, array.data

        a_ty, a_shapes, a_data = operand(A, a, transpose_A)
        b_ty, b_shapes, b_data = operand(B, b, transpose_B)
        c_shapes = cgutils.unpack_tuple(builder, c.shape)
        for size in (a_shapes[0], a_shapes[1], b_shapes[1]):
            check_c_int(context, builder, size)
        call_xxgemm(context, builder, a_ty, a_shapes, a_data, b_ty, b_shapes, b_data,
                    out, c_shapes, c.data)
        return context.get_dummy_value()

    return types.none(A, B, out, mode), codegen


@jit
def shapes_agree(A, B, out, mode):
    """Whether ``op(A) op(B)`` (``mode`` NN, NT or TN) has ``out``'s shape."""
    rows = A.shape[1] if mode == TN else A.shape[0]
    inner = A.shape[0] if mode == TN else A.shape[1]
    inner_B = B.shape[1] if mode == NT else B.shape[0]
    cols = B.shape[0] if mode == NT else B.shape[1]
    return inner == inner_B and out.shape[0] == rows and out.shape[1] == cols
