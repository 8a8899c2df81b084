"""Register-blocked small matrix products: the kernels' products where they beat BLAS.

:func:`micro_gemm` computes ``out = A @ B`` (NN), ``A @ B^T`` (NT) or
``A^T @ B`` (TN), ``mode`` a compile-time constant, for C-contiguous 2-D
float32 or float64 arrays, as ``passes.gemm`` does, but with no BLAS call:
a block of ``out`` is kept in vector registers across the whole inner
dimension, and written once. ``passes.gemm`` (every product of the
kernels) calls it where :func:`micro_wins` says it is the faster: the
narrow layers and the small batches a thread gets.

Why intrinsics. Numba has no vector type, and the loops it compiles are
vectorised by LLVM's loop vectoriser, which keeps the accumulators of a
loop that updates ``out`` in memory: the package's hand loops
(``passes.gemm`` below ``SMALL_GEMM``) load and store ``out`` around every
multiply-add. So this module adds a type, :class:`Vector` (an LLVM
``<L x double>`` or ``<L x float>`` of one register of the target CPU:
64 bytes with AVX-512, 32 with AVX2, :func:`target_vector_bytes`), and a few
intrinsics that update a whole tile of accumulators, held as a tuple of
vectors, in one step of the inner dimension. The loops stay in Numba; the
tuple lives in registers (LLVM's SROA splits it), and the machine code is
packed FMAs on ``zmm`` or ``ymm`` registers (``tools/small_gemm.py --asm``
counts them).

Two tile shapes, one per access pattern, sized per vector width
(:data:`TILE_PLANS`: the accumulators must fit the registers, 32 with
AVX-512, 16 with AVX2):

* **NN and TN** (``rank1_update``): ``out[i:i+R, j:j+V*L] += a b^T``, the
  column ``a`` of ``op(A)`` broadcast one element at a time, ``b`` the row
  ``p`` of ``B`` (contiguous), ``V`` vectors of it. ``R x V`` accumulators;
  the block of columns is swept over every row block while ``B``'s panel
  stays in L1.
* **NT** (``dot_update``): every ``out[i, j]`` is a dot product of two
  contiguous rows, ``A[i]`` and ``B[j]``. The tile is ``R`` rows by ``S``
  columns (at most ``L``), each accumulator a vector of partial sums along
  the inner dimension, reduced at the end to one vector of ``S`` sums per
  row (a butterfly of shuffles and adds: 7 adds for 8 outputs, not 8
  horizontal reductions).

Edges are exact: columns past the end are masked off (masked loads and
stores; a masked-off lane is neither read nor written), rows past the end
of an ``R``-row block are done by a smaller tile whose extra rows repeat
the last one (computed, not stored), and NT's inner dimension ends with a
masked step (the missing lanes read as 0). Whole vectors take plain loads
and stores (the literal ``full``): masked ones cost 1.5x in the NN loop on
the AVX2 EPYC. Sums are associated differently from BLAS's (per-lane
partial sums in NT), which is within the kernels' tolerances: 1e-12
(float64), 1e-5 (float32) norm-wise.

The tiles and the rule were chosen by ``tools/small_gemm.py`` on the
development machines (docs/threads.md).
"""

from __future__ import annotations

from llvmlite import ir
from numba import literally, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from .._jit import jit, overload_kernel, target_vector_bytes
from .blas import NN, NT, TN, shapes_agree
from .scalar import select


#: The tiles per vector width, each chosen by ``tools/small_gemm.py``: with 32 AVX-512
#: registers, 8 rows x 2 vectors of ``out`` (16 accumulators); with 16 AVX2 registers, 6 x 2
#: (12 accumulators, 2 rows of ``B`` and a broadcast: 15 registers; 8 x 2 spilled and ran
#: at a third of the speed on the AVX2 EPYC). NT's tile has at most ``lanes`` columns.
TILE_PLANS = {
    64: dict(nn=(8, 2), nn_tail=4, nn_narrow=8, nt=(2, 8), nt_narrow=(4, 4)),
    32: dict(nn=(6, 2), nn_tail=4, nn_narrow=8, nt=(2, 4), nt_narrow=(2, 4)),
}

#: Bytes in a :class:`Vector`: one register of the target CPU (:func:`target_vector_bytes`).
VECTOR_BYTES = target_vector_bytes()
_PLAN = TILE_PLANS[VECTOR_BYTES]

#: NN/TN tile: rows of ``out`` times vectors of columns (AVX-512: 8 x 2 x 8 float64 = 8 x
#: 16); the rows of the tile at the bottom edge when at most ``NN_ROWS_TAIL`` rows are
#: left; the rows of the tile for a last block of at most one vector.
NN_ROWS, NN_VECTORS = _PLAN["nn"]
NN_ROWS_TAIL = _PLAN["nn_tail"]
NN_ROWS_NARROW = _PLAN["nn_narrow"]

#: NT tile: rows by columns of ``out``, each entry a vector of partial sums along the inner
#: dimension; for ``out`` of at most ``NT_COLS_NARROW`` columns, the narrow tile.
NT_ROWS, NT_COLS = _PLAN["nt"]
NT_ROWS_NARROW, NT_COLS_NARROW = _PLAN["nt_narrow"]

#: NT: the inner dimension is done in chunks of this many bytes of each row.
NT_CHUNK_BYTES = 2048


class Vector(types.Type):
    """An LLVM vector of ``VECTOR_BYTES`` bytes of ``dtype`` (8 float64 or 16 float32)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VECTOR_BYTES * 8 // dtype.bitwidth
        super().__init__(name=f"Vector({dtype} x {self.lanes})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


# -- code generation helpers ------------------------------------------------------------

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _float_array(a):
    return (isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
            and a.dtype in (types.float32, types.float64))


def _literal_int(x):
    return isinstance(x, types.IntegerLiteral)


def _element_pointer(context, builder, aty, aval, i, j):
    """Pointer to ``a[i, j]`` (C layout; no bounds check)."""
    a = context.make_array(aty)(context, builder, aval)
    shape = cgutils.unpack_tuple(builder, a.shape)
    strides = cgutils.unpack_tuple(builder, a.strides)
    return cgutils.get_item_pointer2(context, builder, a.data, shape, strides, "C", [i, j])


def _as_i64(builder, x):
    return builder.sext(x, _I64) if x.type.width < 64 else x


def _lane_mask(builder, lanes, count):
    """``<lanes x i1>``: lane ``x`` is on when ``x < count`` (count an i64, any value)."""
    vty = ir.VectorType(_I64, lanes)
    splat = builder.insert_element(ir.Constant(vty, None), count, ir.Constant(_I32, 0))
    splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes))
    return builder.icmp_signed("<", ir.Constant(vty, list(range(lanes))), splat)


def _vector_suffix(vty):
    bits = 32 if isinstance(vty.element, ir.FloatType) else 64
    return f"v{vty.count}f{bits}"


def _masked_load(builder, ptr, vty, mask, align):
    fnty = ir.FunctionType(vty, [ptr.type, _I32, mask.type, vty])
    fn = cgutils.get_or_insert_function(builder.module, fnty,
                                        f"llvm.masked.load.{_vector_suffix(vty)}.p0")
    return builder.call(fn, [ptr, ir.Constant(_I32, align), mask, ir.Constant(vty, None)])


def _masked_store(builder, value, ptr, mask, align):
    fnty = ir.FunctionType(ir.VoidType(), [value.type, ptr.type, _I32, mask.type])
    fn = cgutils.get_or_insert_function(builder.module, fnty,
                                        f"llvm.masked.store.{_vector_suffix(value.type)}.p0")
    builder.call(fn, [value, ptr, ir.Constant(_I32, align), mask])


def _load(builder, ptr, vty, count, lanes, align, full):
    """The vector at ``ptr``: a plain load when ``full`` (every lane is there), else a masked
    load of the first ``count`` lanes (the rest read as 0). Masked loads cost about 1.5x a
    plain one in the NN loop on the AVX2 EPYC, so whole vectors never take them."""
    if full:
        return builder.load(builder.bitcast(ptr, vty.as_pointer()), align=align)
    return _masked_load(builder, ptr, vty, _lane_mask(builder, lanes, count), align)


def _store(builder, value, ptr, count, lanes, align, full):
    """Store ``value`` at ``ptr``: all of it when ``full``, else its first ``count`` lanes."""
    if full:
        builder.store(value, builder.bitcast(ptr, value.type.as_pointer()), align=align)
    else:
        _masked_store(builder, value, ptr, _lane_mask(builder, lanes, count), align)


def _fma(builder, a, b, c):
    """``a * b + c``, lane by lane, one rounding."""
    fnty = ir.FunctionType(a.type, [a.type] * 3)
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.{_vector_suffix(a.type)}")
    return builder.call(fn, [a, b, c])


def _splat(builder, x, vty):
    v = builder.insert_element(ir.Constant(vty, None), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count))


def _clamp_count(builder, width, start, lanes):
    """``min(max(width - start, 0), lanes)``: the live lanes of the vector at column ``start``."""
    c = builder.sub(width, ir.Constant(_I64, start))
    c = builder.select(builder.icmp_signed("<", c, ir.Constant(_I64, 0)), ir.Constant(_I64, 0), c)
    return builder.select(builder.icmp_signed(">", c, ir.Constant(_I64, lanes)),
                          ir.Constant(_I64, lanes), c)


# -- intrinsics ---------------------------------------------------------------------------


@intrinsic
def lanes(typingctx, a):
    """The number of lanes of a :class:`Vector` of ``a``'s dtype (a constant: 8 or 16)."""
    if not _float_array(a):
        return None
    n = Vector(a.dtype).lanes

    def codegen(context, builder, signature, args):
        return ir.Constant(_I64, n)

    return types.int64(a), codegen


@intrinsic
def zeros(typingctx, a, rows, vectors):
    """A tile of ``rows * vectors`` zero :class:`Vector`\\ s of ``a``'s dtype (a tuple)."""
    if not (_float_array(a) and _literal_int(rows) and _literal_int(vectors)):
        return None
    tile = types.UniTuple(Vector(a.dtype), rows.literal_value * vectors.literal_value)

    def codegen(context, builder, signature, args):
        zero = ir.Constant(context.get_value_type(tile.dtype), None)
        return context.make_tuple(builder, tile, [zero] * tile.count)

    return tile(a, rows, vectors), codegen


def _clamped(builder, index, last):
    """``min(index, last)`` (i64)."""
    return builder.select(builder.icmp_signed(">", index, last), last, index)


def _tile_ok(acc, rows, dtype):
    return (isinstance(acc, types.UniTuple) and isinstance(acc.dtype, Vector)
            and acc.dtype.dtype == dtype and _literal_int(rows)
            and acc.count % rows.literal_value == 0)


@intrinsic
def rank1_update(typingctx, A, B, acc, i, j, p, width, rows, sa, sb, last, full):
    """NN/TN step: ``acc[r, v] += op(A)[min(i + r, last), p] * B[p, j + v L : j + (v + 1) L]``.

    ``acc`` is a tile from :func:`zeros` (``rows`` literal, ``vectors`` =
    ``len(acc) // rows``); only the first ``width`` columns from ``j`` are
    read (the rest of the last vectors is masked off and reads as 0), or,
    when the literal ``full`` is true, every lane of every vector (``width``
    is then at least ``vectors * L``; plain loads). Rows past ``last`` repeat
    row ``last`` (the tile at the bottom edge; not stored). ``op(A)[r, p]``
    is the element ``r * sa + p * sb`` of ``A``'s data (element strides at
    run time: ``A`` for NN, ``A^T`` for TN, one compiled loop for both).
    """
    if not (_float_array(A) and _float_array(B) and A.dtype == B.dtype
            and _tile_ok(acc, rows, A.dtype) and isinstance(full, types.BooleanLiteral)
            and all(isinstance(x, types.Integer) for x in (sa, sb))):
        return None
    whole = full.literal_value
    R = rows.literal_value
    V = acc.count // R
    L = acc.dtype.lanes
    align = A.dtype.bitwidth // 8

    def codegen(context, builder, signature, args):
        a, b, tile, i_, j_, p_, w_, _, sa_, sb_, last_, _ = args
        i_, j_, p_, w_, sa_, sb_, last_ = (_as_i64(builder, x)
                                           for x in (i_, j_, p_, w_, sa_, sb_, last_))
        vty = context.get_value_type(acc.dtype)
        accs = cgutils.unpack_tuple(builder, tile, acc.count)
        row = []
        for v in range(V):
            ptr = _element_pointer(context, builder, B, b, p_, builder.add(j_, ir.Constant(_I64, v * L)))
            count = None if whole else _clamp_count(builder, w_, v * L, L)
            row.append(_load(builder, ptr, vty, count, L, align, whole))
        data = context.make_array(A)(context, builder, a).data
        column = builder.mul(p_, sb_)
        out = []
        for r in range(R):
            ir_ = _clamped(builder, builder.add(i_, ir.Constant(_I64, r)), last_)
            x = builder.load(builder.gep(data, [builder.add(builder.mul(ir_, sa_), column)]))
            x = _splat(builder, x, vty)
            out.extend(_fma(builder, x, row[v], accs[r * V + v]) for v in range(V))
        return context.make_tuple(builder, acc, out)

    return acc(A, B, acc, i, j, p, width, rows, sa, sb, last, full), codegen


@intrinsic
def tile_store(typingctx, out, acc, i, j, width, rows, nrows, full):
    """``out[i + r, j + v L ...] = acc[r, v]`` for the first ``width`` columns from ``j``
    (every lane of every vector, by plain stores, when the literal ``full`` is true) and
    the first ``nrows`` rows of the tile."""
    if not (_float_array(out) and _tile_ok(acc, rows, out.dtype)
            and isinstance(full, types.BooleanLiteral)):
        return None
    whole = full.literal_value
    R = rows.literal_value
    V = acc.count // R
    L = acc.dtype.lanes
    align = out.dtype.bitwidth // 8

    def codegen(context, builder, signature, args):
        o, tile, i_, j_, w_, _, n_, _ = args
        i_, j_, w_, n_ = (_as_i64(builder, x) for x in (i_, j_, w_, n_))
        accs = cgutils.unpack_tuple(builder, tile, acc.count)
        for r in range(R):
            live = builder.icmp_signed("<", ir.Constant(_I64, r), n_)
            with builder.if_then(live, likely=True):
                for v in range(V):
                    ptr = _element_pointer(context, builder, out, o, builder.add(i_, ir.Constant(_I64, r)),
                                           builder.add(j_, ir.Constant(_I64, v * L)))
                    count = None if whole else _clamp_count(builder, w_, v * L, L)
                    _store(builder, accs[r * V + v], ptr, count, L, align, whole)
        return context.get_dummy_value()

    return types.none(out, acc, i, j, width, rows, nrows, full), codegen


@intrinsic
def dot_update(typingctx, A, B, acc, i, j, p, count, rows, last_i, last_j, full):
    """NT step: ``acc[r, s] += A[min(i + r, last_i), p : p + L] * B[min(j + s, last_j), p : p + L]``.

    ``acc`` holds ``rows`` x ``S`` vectors (``S = len(acc) // rows`` columns
    of ``out``). Lanes from ``count`` on read as 0 (the end of the inner
    dimension); when the literal ``full`` is true, ``count`` is ``L`` and the
    loads are plain. Clamped rows repeat the last (their sums are not
    stored), so the tile never reads outside ``A`` or ``B``.
    """
    if not (_float_array(A) and _float_array(B) and A.dtype == B.dtype
            and _tile_ok(acc, rows, A.dtype) and isinstance(full, types.BooleanLiteral)):
        return None
    whole = full.literal_value
    R = rows.literal_value
    S = acc.count // R
    align = A.dtype.bitwidth // 8
    L = acc.dtype.lanes

    def codegen(context, builder, signature, args):
        a, b, tile, i_, j_, p_, c_, _, li_, lj_, _ = args
        i_, j_, p_, c_, li_, lj_ = (_as_i64(builder, x) for x in (i_, j_, p_, c_, li_, lj_))
        vty = context.get_value_type(acc.dtype)
        accs = cgutils.unpack_tuple(builder, tile, acc.count)

        def row(x, aty, index, last, k):
            index = _clamped(builder, builder.add(index, ir.Constant(_I64, k)), last)
            return _load(builder, _element_pointer(context, builder, aty, x, index, p_),
                         vty, c_, L, align, whole)

        arow = [row(a, A, i_, li_, r) for r in range(R)]
        brow = [row(b, B, j_, lj_, s) for s in range(S)]
        out = [_fma(builder, arow[r], brow[s], accs[r * S + s]) for r in range(R) for s in range(S)]
        return context.make_tuple(builder, acc, out)

    return acc(A, B, acc, i, j, p, count, rows, last_i, last_j, full), codegen


def _fold(builder, x, y, h, lanes):
    """Pairwise sums of blocks of ``h`` lanes: lanes that held partial sums of ``x``'s and
    ``y``'s outputs ``t`` and ``t + h`` now hold sums of outputs ``t`` (from x) and ``t + h`` (y)."""
    lo, hi = [], []
    for q in range(0, lanes, 2 * h):
        lo += list(range(q, q + h)) + list(range(lanes + q, lanes + q + h))
        hi += list(range(q + h, q + 2 * h)) + list(range(lanes + q + h, lanes + q + 2 * h))
    mask = lambda idx: ir.Constant(ir.VectorType(_I32, lanes), idx)
    return builder.fadd(builder.shuffle_vector(x, y, mask(lo)), builder.shuffle_vector(x, y, mask(hi)),
                        flags=("reassoc",))


@intrinsic
def dot_store(typingctx, out, acc, i, j, ncols, rows, nrows, accumulate):
    """``out[i + r, j + s] = sum(acc[r, s])`` (``+=`` when ``accumulate``) for ``s < ncols``,
    ``r < nrows``; the tile has ``S = len(acc) // rows`` columns, a power of 2 up to ``L``."""
    if not (_float_array(out) and _tile_ok(acc, rows, out.dtype)
            and isinstance(accumulate, types.Boolean)):
        return None
    R = rows.literal_value
    S = acc.count // R
    L = acc.dtype.lanes
    if S & (S - 1) or S > L:
        return None
    align = out.dtype.bitwidth // 8

    def codegen(context, builder, signature, args):
        o, tile, i_, j_, c_, _, n_, add = args
        i_, j_, c_, n_ = (_as_i64(builder, x) for x in (i_, j_, c_, n_))
        vty = context.get_value_type(acc.dtype)
        accs = cgutils.unpack_tuple(builder, tile, acc.count)
        mask = _lane_mask(builder, L, c_)
        for r in range(R):
            vs, h = list(accs[r * S:(r + 1) * S]), 1
            while len(vs) > 1:  # S vectors -> S/2 -> ... -> 1; lane x holds output x mod S
                vs = [_fold(builder, vs[q], vs[q + 1], h, L) for q in range(0, len(vs), 2)]
                h *= 2
            w = vs[0]
            while h < L:  # add the upper lanes onto the lower until each output has one lane
                rot = ir.Constant(ir.VectorType(_I32, L), [(x + h) % L for x in range(L)])
                w = builder.fadd(w, builder.shuffle_vector(w, w, rot), flags=("reassoc",))
                h *= 2
            live = builder.icmp_signed("<", ir.Constant(_I64, r), n_)
            with builder.if_then(live, likely=True):
                ptr = _element_pointer(context, builder, out, o, builder.add(i_, ir.Constant(_I64, r)), j_)
                with builder.if_then(add):
                    old = _masked_load(builder, ptr, vty, mask, align)
                    _masked_store(builder, builder.fadd(w, old), ptr, mask, align)
                with builder.if_then(builder.not_(add)):
                    whole = builder.icmp_signed("==", c_, ir.Constant(_I64, L))
                    with builder.if_else(whole, likely=True) as (then, otherwise):
                        with then:
                            _store(builder, w, ptr, None, L, align, True)
                        with otherwise:
                            _masked_store(builder, w, ptr, mask, align)
        return context.get_dummy_value()

    return types.none(out, acc, i, j, ncols, rows, nrows, accumulate), codegen


# -- the products -------------------------------------------------------------------------


@jit
def _rank1_columns(A, B, out, j, stop, width, sa, sb, R, R_TAIL, V, full):
    """Blocks of ``width`` columns of ``out = op(A) B`` from column ``j`` while ``j < stop``
    (the last one ending at ``stop``), each by ``R``-row tiles of ``V`` vectors, the last
    rows by one tile of ``R`` or, when at most ``R_TAIL`` are left, of ``R_TAIL`` rows (its
    extra rows clamped, not stored). ``op(A)`` by its element strides ``sa``, ``sb``
    (:func:`rank1_update`); ``full`` (a literal) says every block is ``V`` whole vectors.

    One call does many tiles: a call per tile, with its reference counting,
    costs as much as a small tile's arithmetic."""
    n = out.shape[0]
    k = B.shape[0]
    while j < stop:
        count = min(width, stop - j)
        i = 0
        while n - i > R_TAIL:
            acc = zeros(out, R, V)
            for p in range(k):
                acc = rank1_update(A, B, acc, i, j, p, count, R, sa, sb, n - 1, full)
            tile_store(out, acc, i, j, count, R, min(R, n - i), full)
            i += R
        if i < n:
            tail = zeros(out, R_TAIL, V)
            for p in range(k):
                tail = rank1_update(A, B, tail, i, j, p, count, R_TAIL, sa, sb, n - 1, full)
            tile_store(out, tail, i, j, count, R_TAIL, n - i, full)
        j += width


@jit
def _rank1_product(A, B, out, sa, sb):
    """``out = op(A) B`` (NN and TN alike, ``op(A)`` by its element strides): the whole blocks
    of ``NN_VECTORS`` vectors of columns by the ``NN_ROWS``-row tile, with plain loads and
    stores; the rest, one vector (the last one masked) at a time, by the ``NN_ROWS_NARROW``-row
    tile. The mode is not an argument (its strides are), so both modes share one compiled
    function, and ``_rank1_columns`` compiles once per tile (each distinct literal argument
    of a Numba call compiles another instance: 0.18 s apiece, measured)."""
    m = out.shape[1]
    L = lanes(out)
    W = NN_VECTORS * L
    full = m - m % W
    _rank1_columns(A, B, out, 0, full, W, sa, sb, NN_ROWS, NN_ROWS_TAIL, NN_VECTORS, True)
    _rank1_columns(A, B, out, full, m, L, sa, sb, NN_ROWS_NARROW, NN_ROWS_TAIL, 1, False)


@jit
def _dot_product(A, B, out, R, S):
    """``out = A B^T`` as dot products: tiles of ``R`` rows by ``S`` columns (the last
    tile's extra rows and columns clamped, not stored), the inner dimension in
    chunks of ``NT_CHUNK_BYTES`` per row so that a tile's rows of ``B`` stay in L1
    while every row of ``A`` passes (the sums of each chunk added to ``out``)."""
    n, m = out.shape
    k = A.shape[1]
    L = lanes(out)
    chunk = max(L, NT_CHUNK_BYTES // out.itemsize)
    for c in range(0, max(k, 1), chunk):
        stop = min(c + chunk, k)
        full = stop - (stop - c) % L
        for j in range(0, m, S):
            ncols = min(S, m - j)
            for i in range(0, n, R):
                acc = zeros(out, R, S)
                for p in range(c, full, L):
                    acc = dot_update(A, B, acc, i, j, p, L, R, n - 1, m - 1, True)
                if full < stop:
                    acc = dot_update(A, B, acc, i, j, full, stop - full, R, n - 1, m - 1, False)
                dot_store(out, acc, i, j, ncols, R, min(R, n - i), c > 0)


def _micro_nn(A, B, out, mode):
    _rank1_product(A, B, out, A.strides[0] // A.itemsize, A.strides[1] // A.itemsize)


def _micro_tn(A, B, out, mode):
    _rank1_product(A, B, out, A.strides[1] // A.itemsize, A.strides[0] // A.itemsize)


def _micro_nt(A, B, out, mode):
    if out.shape[1] <= NT_COLS_NARROW:
        _dot_product(A, B, out, NT_ROWS_NARROW, NT_COLS_NARROW)
    else:
        _dot_product(A, B, out, NT_ROWS, NT_COLS)


#: mode -> the implementation of :func:`micro_gemm`.
MICRO_GEMM_KERNELS = {NN: _micro_nn, NT: _micro_nt, TN: _micro_tn}


def micro_gemm(A, B, out, mode):
    """``out = A @ B`` (NN), ``A @ B^T`` (NT) or ``A^T @ B`` (TN) by register-blocked loops.

    ``mode`` a compile-time constant; ``A``, ``B``, ``out`` C-contiguous, 2-D,
    one float dtype, with shapes that agree (not checked here: inside the
    kernels they agree by construction; :func:`micro_gemm_pass` checks).
    Nothing is allocated; BLAS is not called. For use inside kernels.
    """
    raise NotImplementedError("for use inside kernels only; call micro_gemm_pass")


@overload_kernel(micro_gemm)
def _micro_gemm(A, B, out, mode):
    return select(mode, MICRO_GEMM_KERNELS, "gemm mode")


@jit(entry=True)
def micro_gemm_pass(A, B, out, mode):
    """:func:`micro_gemm` reachable from Python; ``mode`` an int.

    Raises ``ValueError`` when the shapes of ``op(A)``, ``op(B)`` and ``out`` do not agree.
    """
    literally(mode)
    if not shapes_agree(A, B, out, mode):
        raise ValueError("micro_gemm_pass: the shapes of op(A), op(B) and out do not agree")
    micro_gemm(A, B, out, mode)


# -- the size rule: micro_gemm, or the loops and OpenBLAS of passes.gemm -------------------

#: Where :func:`micro_gemm` is the faster (``tools/small_gemm.py``, against SciPy's OpenBLAS
#: held to one thread and the hand loops of ``passes.gemm``), per vector width:
#:
#: * NN and TN when ``out`` has at least ``min_rows`` rows, the inner dimension is at least
#:   ``min_inner`` and ``op(A)`` (the weights ``W`` of ``W A_prev``, ``W^T dZ``) has at most
#:   ``max_weights`` entries, or, wider, an inner dimension of at least ``min_inner_wide``, at
#:   most ``max_weights_wide`` entries and a product of at most ``max_product_wide``
#:   multiply-adds (0: no wider case);
#: * NT when ``out`` (a weight gradient) has at least ``min_rows_nt`` rows and columns and
#:   at most ``max_out_nt`` entries, and the inner dimension is at least ``min_inner``.
#:
#: The upper bounds keep larger products on OpenBLAS, which runs them on both cores where it
#: is not held to one (the one-thread step); ``micro_gemm`` is one thread's. AVX-512 (the
#: 2-core Xeon, OpenBLAS 0.3.30): micro by 1.0 to 2.6x from 16 rows and an inner dimension of
#: 16 (OpenBLAS by 1.1 to 1.4x on the 10-row output layers and inner dimensions of 1 to 10).
#: AVX2 (the 2-core EPYC, family 25 model 1): micro by 1.0 to 5.0x over OpenBLAS on every
#: product of ``chains``, ``digits32``, ``small`` and the drop-in's defaults with 4 rows and
#: an inner dimension of 4, and by 2 to 3x over the hand loops (``chains``' products: 300
#: against 671 us per 5000 columns), but for the drop-in's 100 x 64 weights (OpenBLAS 1.0 to
#: 1.2x) and the 1-row layers (the hand loops). The wider case, AVX-512 on a Zen 4 EPYC
#: (family 25 model 17, OpenBLAS 0.3.30's SkylakeX kernels, ``taskset -c 0 python
#: tools/small_gemm.py mnist64d mnist128``): the products a thread gets of ``[784, 256, 128,
#: 10]``, 32 to 256 columns, float64 and float32, micro by 1.11 to 1.41x on ``W2 A1``
#: (128 x 256 weights), ``W2^T dZ2`` and ``dZ1 X`` (256 x 32 to 256 x 64); OpenBLAS by 1.0
#: to 1.4x on 1024 x 1024 weights (``wide1024``) and inner dimensions of 16 with 100 to 128
#: rows. Its product bound keeps a one-thread step's larger products on OpenBLAS's two cores.
RULES = {
    64: dict(min_rows=16, min_inner=16, max_weights=4096, min_rows_nt=4, max_out_nt=2048,
             min_inner_wide=32, max_weights_wide=32768, max_product_wide=32768 * 256),
    32: dict(min_rows=4, min_inner=4, max_weights=4096, min_rows_nt=4, max_out_nt=4096,
             min_inner_wide=0, max_weights_wide=0, max_product_wide=0),
}
_RULE = RULES[VECTOR_BYTES]
MICRO_MIN_ROWS = _RULE["min_rows"]
MICRO_MIN_INNER = _RULE["min_inner"]
MICRO_MAX_WEIGHTS = _RULE["max_weights"]
MICRO_NT_MIN_ROWS = _RULE["min_rows_nt"]
MICRO_NT_MAX_OUT = _RULE["max_out_nt"]
MICRO_WIDE_MIN_INNER = _RULE["min_inner_wide"]
MICRO_WIDE_MAX_WEIGHTS = _RULE["max_weights_wide"]
MICRO_WIDE_MAX_PRODUCT = _RULE["max_product_wide"]


@jit
def micro_wins(mode, n, k, m):
    """True when :func:`micro_gemm` is the faster for an ``n x k x m`` product of ``mode``
    (``out`` ``n x m``, inner dimension ``k``) by the rule of :data:`RULES`."""
    return micro_wins_nt(n, k, m) if mode == NT else micro_wins_rank1(n, k, m)


@jit
def micro_wins_rank1(n, k, m):
    """:func:`micro_wins` for NN and TN (``op(A)`` ``n x k``, ``m`` columns). Its own function,
    called without a constant, so it compiles once (a literal mode compiled it per mode)."""
    if k < MICRO_MIN_INNER or n < MICRO_MIN_ROWS:
        return False
    weights = n * k
    return weights <= MICRO_MAX_WEIGHTS or (
        k >= MICRO_WIDE_MIN_INNER and weights <= MICRO_WIDE_MAX_WEIGHTS
        and weights * m <= MICRO_WIDE_MAX_PRODUCT)


@jit
def micro_wins_nt(n, k, m):
    """:func:`micro_wins` for NT (``out`` ``n x m``, inner dimension ``k``)."""
    return k >= MICRO_MIN_INNER and min(n, m) >= MICRO_NT_MIN_ROWS and n * m <= MICRO_NT_MAX_OUT
