"""Array kernels: matrix products and the fused element-wise passes.

All arrays are 2-D and C-contiguous (the Python wrappers in
``fastbackprop.kernels`` make them so, copying at most once), float32 or
float64, with the course's layout: ``(n_l, m)`` for ``Z``, ``A``, ``dZ``;
``(n_l, n_{l-1})`` for ``W``; ``(n_l, 1)`` for ``b`` and ``db``.

The fusion follows ``docs/kernels.md``: BLAS computes the product (its
``beta`` is 0, so nothing else can ride inside it), then one pass adds the
bias and applies the activation; one pass forms ``dZ = dA * g'`` from ``A``
and the row sums ``db`` at the same time.
"""

from __future__ import annotations

import numpy as np
from numba import literally

from .._jit import SMALL_GEMM, SMALL_OPERAND_BY_VECTOR_BYTES, jit, overload_kernel
from . import rng
from .blas import NN, NT, TN, blas_gemm, shapes_agree
from .microgemm import VECTOR_BYTES, micro_gemm, micro_wins_nt, micro_wins_rank1
from .scalar import activation, derivative_from_output, exp, like, log1p_unit, select


#: Small operands that take the loops at any size on this CPU (``_jit.small_operand``).
SMALL_OPERAND = SMALL_OPERAND_BY_VECTOR_BYTES[VECTOR_BYTES]


@jit
def by_loops(n, k, m, small):
    """Whether a product ``(n, k) @ (k, m)`` whose small operand has ``small`` entries runs as
    plain loops: at most ``SMALL_GEMM`` multiply-adds, or ``small`` at most ``SMALL_OPERAND``
    (see :mod:`fastbackprop._jit`). The small operand: ``op(A)`` in NN and TN (the weights),
    ``out`` in NT (a weight gradient)."""
    return n * k * m <= SMALL_GEMM or small <= SMALL_OPERAND


def gemm(A, B, out, mode):
    """``out = A @ B`` (NN), ``A @ B^T`` (NT) or ``A^T @ B`` (TN); ``mode`` a constant.

    Products of at most ``SMALL_GEMM`` multiply-adds, or with a small operand
    (:func:`by_loops`), run as plain loops whose inner loop is contiguous and
    vectorises (a BLAS call costs more than the work there); others call BLAS
    (:func:`.blas.blas_gemm`: the call ``np.dot`` makes, without its argument
    checks), nothing copied. Each mode
    is its own kernel (:data:`GEMM_KERNELS`), chosen while Numba types the call and compiled
    as the call's implementation itself (no extra level of call), so a
    call compiles only its own mode. For use inside kernels; Python calls
    :func:`gemm_pass`.
    """
    raise NotImplementedError("for use inside kernels only; call gemm_pass")


def _gemm_nn(A, B, out, mode):
    """``out = A @ B``: ``out[i] = sum_p A[i, p] B[p]``, rows of ``B`` contiguous."""
    n, m = out.shape
    inner = B.shape[0]
    if micro_wins_rank1(n, inner, m):
        micro_gemm(A, B, out, NN)
        return
    if not by_loops(n, inner, m, n * inner):
        blas_gemm(A, B, out, NN)
        return
    zero = like(out, 0.0)
    for i in range(n):
        for j in range(m):
            out[i, j] = zero
        for p in range(inner):
            a = A[i, p]
            for j in range(m):
                out[i, j] += a * B[p, j]


def _gemm_nt(A, B, out, mode):
    """``out = A @ B^T``: ``out[i, p] = sum_j A[i, j] B[p, j]``, contiguous dot products."""
    n, m = out.shape
    inner = B.shape[1]
    if micro_wins_nt(n, inner, m):
        micro_gemm(A, B, out, NT)
        return
    if not by_loops(n, inner, m, n * m):
        blas_gemm(A, B, out, NT)
        return
    zero = like(out, 0.0)
    for i in range(n):
        for p in range(m):
            s = zero
            for j in range(inner):
                s += A[i, j] * B[p, j]
            out[i, p] = s


def _gemm_tn(A, B, out, mode):
    """``out = A^T @ B``: ``out[i] = sum_p A[p, i] B[p]``."""
    n, m = out.shape
    inner = A.shape[0]
    if micro_wins_rank1(n, inner, m):
        micro_gemm(A, B, out, TN)
        return
    if not by_loops(n, inner, m, n * inner):
        blas_gemm(A, B, out, TN)
        return
    zero = like(out, 0.0)
    for i in range(n):
        for j in range(m):
            out[i, j] = zero
        for p in range(inner):
            a = A[p, i]
            for j in range(m):
                out[i, j] += a * B[p, j]


#: mode -> the implementation of :func:`gemm` (plain functions with its signature).
GEMM_KERNELS = {NN: _gemm_nn, NT: _gemm_nt, TN: _gemm_tn}


@overload_kernel(gemm)
def _gemm(A, B, out, mode):
    return select(mode, GEMM_KERNELS, "gemm mode")


@jit(entry=True)
def gemm_pass(A, B, out, mode):
    """:func:`gemm` reachable from Python (the step API); ``mode`` an int.

    Raises ``ValueError`` when the shapes of ``op(A)``, ``op(B)`` and ``out``
    do not agree (inside the kernels they agree by construction).
    """
    literally(mode)
    if not shapes_agree(A, B, out, mode):
        raise ValueError("gemm_pass: the shapes of op(A), op(B) and out do not agree")
    gemm(A, B, out, mode)


@jit
def bias_activation(Z, b, code):
    """``Z := g(Z + b)`` in place, in one pass; returns ``sum(Z + b)``. ``code`` a constant.

    In place on purpose: with separate input and output arrays that happen
    to be the same buffer, LLVM's runtime overlap check fails and the loop
    runs scalar (6x slower with tanh). The sum is finite exactly when every
    ``Z + b`` is, which is how training notices a diverging cost without
    computing it. For use inside kernels; Python calls :func:`bias_activation_pass`.
    """
    total = like(Z, 0.0)
    for i in range(Z.shape[0]):
        total += _activation_row(Z, i, b[i, 0], code)
    return total


@jit(entry=True)
def bias_activation_pass(Z, b, code):
    """:func:`bias_activation` reachable from Python (the step API); ``code`` an int.

    A kernel of its own, so that the training loop's calls compile the
    pass without the wrappers, machine code and cache entry of a kernel
    Python calls.
    """
    literally(code)
    return bias_activation(Z, b, code)


@jit
def _activation_row(Z, i, bi, code):
    """Row ``i``: ``Z[i] := g(Z[i] + bi)``; returns ``sum(Z[i] + bi)``. ``code`` a constant."""
    total = like(Z, 0.0)
    for j in range(Z.shape[1]):
        z = Z[i, j] + bi
        total += z
        Z[i, j] = activation(code, z)
    return total


@jit
def _row_product(W, A_prev, b, i, A):
    """Row ``i`` of ``A`` := ``W[i] A_prev + b[i]``, by plain loops (small products)."""
    m = A_prev.shape[1]
    bi = b[i, 0]
    for j in range(m):
        A[i, j] = bi
    for p in range(W.shape[1]):
        w = W[i, p]
        for j in range(m):
            A[i, j] += w * A_prev[p, j]


@jit
def linear_activation(W, A_prev, b, code, A):
    """The forward step ``A = g(W A_prev + b)``; returns ``sum(W A_prev + b)``.

    W ``(n_l, n_{l-1})``, A_prev ``(n_{l-1}, m)``, b ``(n_l, 1)``, A
    ``(n_l, m)``; ``code`` a compile-time constant. Above ``SMALL_GEMM`` (:func:`by_loops`):
    BLAS, then one fused bias-and-activation pass. Below: one row at a time,
    the row's product, bias and activation done while the row sits in L1
    (30% faster than the product and the pass done apart, on the planar net).
    """
    n, k = W.shape
    m = A_prev.shape[1]
    if micro_wins_rank1(n, k, m) or not by_loops(n, k, m, n * k):
        gemm(W, A_prev, A, NN)
        return bias_activation(A, b, code)
    total = like(A, 0.0)
    for i in range(n):
        _row_product(W, A_prev, b, i, A)
        total += _activation_row(A, i, like(A, 0.0), code)
    return total


@jit
def linear_sigmoid_cost(W, A_prev, b, Y, w, AL, cost):
    """The sigmoid output step: ``AL = sigmoid(W A_prev + b)``, and the cost when ``cost``.

    Returns ``(sum(ZL), sum of the cross-entropy against Y)`` (unscaled; 0
    without ``cost``), as :func:`sigmoid_cost`, with the product done by
    BLAS or, when small, row by row as in :func:`linear_activation`.
    """
    n, k = W.shape
    m = A_prev.shape[1]
    if micro_wins_rank1(n, k, m) or not by_loops(n, k, m, n * k):
        gemm(W, A_prev, AL, NN)
        return sigmoid_cost(AL, b, Y, w, cost)
    zero = like(AL, 0.0)
    total = zero
    loss = zero
    for i in range(n):
        _row_product(W, A_prev, b, i, AL)
        row_total, row_loss = _sigmoid_cost_row(AL, i, zero, Y, w, cost)
        total += row_total
        loss += row_loss
    return total, loss


@jit
def backward_delta(W, dZ, A_prev, code, dZ_prev, db_prev):
    """One layer back: ``dZ_prev = (W^T dZ) * g'(Z_prev)``, ``db_prev = sum(dZ_prev, axis=1)``.

    W ``(n_l, n_{l-1})``, dZ ``(n_l, m)``, A_prev = g(Z_prev) ``(n_{l-1}, m)``
    (g' is computed from it), dZ_prev ``(n_{l-1}, m)``, db_prev ``(n_{l-1}, 1)``
    unscaled. Above ``SMALL_GEMM``: BLAS, then the fused pointwise pass;
    below: one row of ``dZ_prev`` at a time.
    """
    n, k = W.shape
    m = dZ.shape[1]
    if micro_wins_rank1(k, n, m) or not by_loops(n, k, m, n * k):
        gemm(W, dZ, dZ_prev, TN)
        backward_pointwise(dZ_prev, A_prev, code, db_prev)
        return
    for p in range(k):
        for j in range(m):
            dZ_prev[p, j] = like(dZ_prev, 0.0)
        for i in range(n):
            w = W[i, p]
            for j in range(m):
                dZ_prev[p, j] += w * dZ[i, j]
        db_prev[p, 0] = _derivative_row(dZ_prev, A_prev, p, code)


@jit
def add_bias(Z, b):
    """``Z += b`` (b ``(n, 1)`` broadcast over the ``m`` columns)."""
    n, m = Z.shape
    for i in range(n):
        bi = b[i, 0]
        for j in range(m):
            Z[i, j] += bi


@jit
def add_matrix(Z, P):
    """``Z += P`` for two ``(n, m)`` arrays."""
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            Z[i, j] += P[i, j]


@jit
def backward_pointwise(dA, A, code, db):
    """``dZ = dA * g'(Z)``, in place over ``dA``, with g' from ``A = g(Z)``, and
    ``db = sum(dZ, axis=1)``, unscaled, in one pass. ``code`` a constant. For use inside
    kernels; Python calls :func:`backward_pointwise_pass`."""
    for i in range(dA.shape[0]):
        db[i, 0] = _derivative_row(dA, A, i, code)


@jit(entry=True)
def backward_pointwise_pass(dA, A, code, db):
    """:func:`backward_pointwise` reachable from Python (the step API); ``code`` an int."""
    literally(code)
    backward_pointwise(dA, A, code, db)


@jit
def _derivative_row(dA, A, i, code):
    """Row ``i``: ``dA[i] := dA[i] * g'`` (g' from ``A[i]``); returns the row's sum."""
    s = like(dA, 0.0)
    for j in range(dA.shape[1]):
        d = dA[i, j] * derivative_from_output(code, A[i, j])
        dA[i, j] = d
        s += d
    return s


@jit
def dropout_forward(A, keep, threshold, layer_key, j0=0):
    """Inverted dropout on a hidden layer's ``A`` ``(n_l, m)``, in place: ``A := A * D / keep``.

    ``D[i, j]`` is 1 when unit ``i`` of column ``j0 + j`` of the batch is
    kept under the layer's key (``fastbackprop.rng.dropout_mask``: integers
    only, the same bits as NumPy's); ``j0`` is where ``A``'s columns start
    in the batch (a thread's share of it).
    """
    scale = like(A, 1.0) / like(A, keep)
    zero = like(A, 0.0)
    for i in range(A.shape[0]):
        row = rng.absorb(layer_key, i)
        for j in range(A.shape[1]):
            A[i, j] = A[i, j] * scale if rng.kept(row, j0 + j, threshold) else zero


@jit
def dropout_backward(dA, A, code, db, keep, threshold, layer_key, j0=0):
    """Back through a dropped layer: ``dZ = dA * D / keep * g'(Z)`` in place, and ``db``
    (``D`` of the batch's columns from ``j0``, as :func:`dropout_forward`).

    ``A`` is the dropped and rescaled activation of the forward pass, so
    ``g'`` is computed from ``A * keep`` where the unit was kept (dropped
    units give 0 whatever ``g'``); ``db`` receives the rows' sums, unscaled.
    """
    scale = like(A, 1.0) / like(A, keep)
    keep_ = like(A, keep)
    zero = like(A, 0.0)
    for i in range(dA.shape[0]):
        row = rng.absorb(layer_key, i)
        s = zero
        for j in range(dA.shape[1]):
            if rng.kept(row, j0 + j, threshold):
                d = dA[i, j] * scale * derivative_from_output(code, A[i, j] * keep_)
            else:
                d = zero
            dA[i, j] = d
            s += d
        db[i, 0] = s


@jit
def add_scaled(out, X, factor):
    """``out += factor * X`` for two ``(n, k)`` arrays (the L2 term of ``dW``)."""
    n, k = out.shape
    for i in range(n):
        for j in range(k):
            out[i, j] += factor * X[i, j]


@jit
def output_delta(AL, Y, w, dZ, db):
    """``dZ_L = (AL - Y) * w`` (every output layer with its cost; ``w`` ``(m,)`` the columns'
    weights) and ``db = sum(dZ, axis=1)``, unscaled."""
    n, m = AL.shape
    for i in range(n):
        s = like(dZ, 0.0)
        for j in range(m):
            d = (AL[i, j] - Y[i, j]) * w[j]
            dZ[i, j] = d
            s += d
        db[i, 0] = s


@jit
def row_sum(dZ, db):
    """``db = sum(dZ, axis=1, keepdims=True)``, reassociated so it vectorises."""
    n, m = dZ.shape
    for i in range(n):
        s = like(db, 0.0)
        for j in range(m):
            s += dZ[i, j]
        db[i, 0] = s


@jit
def scale(X, factor):
    """``X *= factor`` in place, ``X`` ``(n, k)``."""
    n, k = X.shape
    for i in range(n):
        for j in range(k):
            X[i, j] *= factor


@jit
def sigmoid_cost(Z, b, Y, w, cost):
    """The sigmoid output layer's pass: ``Z := sigmoid(Z + b)`` in place, and the cost when ``cost``.

    Returns ``(sum(Z + b), sum of the cross-entropy against Y)``, unscaled,
    each column's cost times its weight ``w[j]`` (0, and ``Y``, ``w`` not
    read, without ``cost``). With ``e = exp(-|z|)`` shared: ``sigmoid = 1/(1+e)`` or ``e/(1+e)``,
    ``loss = max(z, 0) - z y + log1p(e)``; one exp for both, stable for any
    finite ``z``. One kernel for both cases, so that a sigmoid output
    compiles no separate sigmoid activation pass (the cold first fit).
    """
    total = like(Z, 0.0)
    loss = like(Z, 0.0)
    for i in range(Z.shape[0]):
        row_total, row_loss = _sigmoid_cost_row(Z, i, b[i, 0], Y, w, cost)
        total += row_total
        loss += row_loss
    return total, loss


@jit
def _sigmoid_cost_row(Z, i, bi, Y, w, cost):
    """:func:`sigmoid_cost` on row ``i`` with bias ``bi``."""
    zero = like(Z, 0.0)
    one = like(Z, 1.0)
    total = zero
    loss = zero
    for j in range(Z.shape[1]):
        z = Z[i, j] + bi
        total += z
        e = exp(-abs(z))
        r = one / (one + e)
        Z[i, j] = r if z >= zero else e * r
        if cost:
            loss += (max(z, zero) - z * Y[i, j] + log1p_unit(e)) * w[j]
    return total, loss


@jit
def cost_from_probabilities(AL, Y, w):
    """``-sum[Y log AL + (1 - Y) log(1 - AL)]``, unscaled, with AL clipped to the
    smallest normal number away from 0 and 1 inside the logs (as the reference)."""
    n, m = AL.shape
    tiny = like(AL, np.finfo(AL.dtype).tiny)
    one = like(AL, 1.0)
    total = like(AL, 0.0)
    for i in range(n):
        for j in range(m):
            a = AL[i, j]
            y = Y[i, j]
            total -= (y * np.log(max(a, tiny)) + (one - y) * np.log(max(one - a, tiny))) * w[j]
    return total


@jit
def raw(grad, other, i):
    """The raw gradient sum at ``i``: ``grad[i]``, plus ``other[i]`` when there is a second row
    (another thread's, added as it is read: :func:`.training.partner_row`)."""
    if other is None:
        return grad[i]
    return grad[i] + other[i]


def n_spans(spans):
    """How many spans ``spans`` ``(R, 2)`` holds (None: one, the whole)."""
    raise NotImplementedError("for use inside kernels only")


def span_at(spans, r, n):
    """Span ``r`` of ``spans`` as ``(lo, hi)``: the entries ``lo .. hi - 1``; ``(0, n)`` when
    ``spans`` is None (the whole of ``n`` entries)."""
    raise NotImplementedError("for use inside kernels only")


def part_of(x, lo, hi):
    """``x[lo:hi]``, or None when ``x`` is None."""
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(part_of)
def _part_of(x, lo, hi):
    from numba import types

    if isinstance(x, types.NoneType):
        return lambda x, lo, hi: None
    return lambda x, lo, hi: x[lo:hi]


@overload_kernel(n_spans)
def _n_spans(spans):
    from numba import types

    if isinstance(spans, types.NoneType):
        return lambda spans: 1
    return lambda spans: spans.shape[0]


@overload_kernel(span_at)
def _span_at(spans, r, n):
    from numba import types

    if isinstance(spans, types.NoneType):
        return lambda spans, r, n: (0, n)
    return lambda spans, r, n: (spans[r, 0], spans[r, 1])


@jit
def update(theta, grad, inv_m, learning_rate, other=None, spans=None):
    """``theta := theta - alpha (grad / m)`` in place over flat arrays; returns ``sum(theta)``.

    ``grad`` holds raw sums over a batch's ``m`` columns and ``inv_m = 1/m``
    turns them into the course's gradients as they are read (1 for
    gradients already averaged); ``other``, a second row of raw sums added
    to ``grad`` as it is read (:func:`raw`). In place, and ``theta`` the only
    array written, so that the loop vectorises (see ``kernels/optimizers.py``; each span
    as views from 0, as there).
    The sum is finite exactly when every new parameter is. ``spans`` ``(R, 2)``: only the
    entries of its spans (:func:`span_at`), the sum theirs; None: all.
    """
    total = like(theta, 0.0)
    for r in range(n_spans(spans)):
        lo, hi = span_at(spans, r, theta.size)
        W, G, O = theta[lo:hi], grad[lo:hi], part_of(other, lo, hi)  # from 0: see parts()
        for i in range(W.size):
            v = W[i] - learning_rate * (raw(G, O, i) * inv_m)
            W[i] = v
            total += v
    return total


# ---------------------------------------------------------------------------
# The step API's entries: the kernels above that Python calls (kernels/steps.py). An
# internal kernel called from Python compiles a wrapped twin in memory in every process
# (_jit.KernelDispatcher); these are compiled once and cached, like gemm_pass.
# ---------------------------------------------------------------------------


@jit(entry=True)
def add_bias_pass(Z, b):
    """:func:`add_bias` reachable from Python."""
    add_bias(Z, b)


@jit(entry=True)
def add_scaled_pass(out, X, factor):
    """:func:`add_scaled` reachable from Python."""
    add_scaled(out, X, factor)


@jit(entry=True)
def output_delta_pass(AL, Y, w, dZ, db):
    """:func:`output_delta` reachable from Python."""
    output_delta(AL, Y, w, dZ, db)


@jit(entry=True)
def row_sum_pass(dZ, db):
    """:func:`row_sum` reachable from Python."""
    row_sum(dZ, db)


@jit(entry=True)
def scale_pass(X, factor):
    """:func:`scale` reachable from Python."""
    scale(X, factor)


@jit(entry=True)
def update_pass(theta, grad, inv_m, learning_rate):
    """:func:`update` reachable from Python; returns ``sum(theta)``."""
    return update(theta, grad, inv_m, learning_rate)


__all__ = [
    "NN", "NT", "TN", "gemm", "linear_activation", "linear_sigmoid_cost", "backward_delta",
    "dropout_forward", "dropout_backward", "add_scaled",
    "add_bias", "add_matrix", "bias_activation", "backward_pointwise", "output_delta",
    "gemm_pass", "bias_activation_pass", "backward_pointwise_pass", "add_bias_pass",
    "add_scaled_pass", "output_delta_pass", "row_sum_pass", "scale_pass", "update_pass",
    "row_sum", "sigmoid_cost", "scale", "cost_from_probabilities", "update",
]
