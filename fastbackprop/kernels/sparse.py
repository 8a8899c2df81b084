"""The first layer on sparse data: its two products with ``X`` over the nonzeros only.

A sparse batch is held as CSR rows, one example a row
(:class:`SparseRows`): row ``j``'s nonzeros are ``indices[indptr[j]:indptr[j
+ 1]]`` (feature numbers) with ``values[...]``. The two products with ``X``:

forward   ``Z1[:, j] = sum_k values[k] W1[:, indices[k]]``   (``W1 X_b``)
gradient  ``dW1[:, indices[k]] += values[k] dZ1[:, j]``       (``dZ1 X_b^T``, raw)

(the first layer's ``dA0`` is never needed). Both walk a column of ``W1``
per nonzero, so in a sparse fit **``W1``'s slot of the flat layout holds
``W1^T`` ``(n_x, n_1)``**, C order (and so do ``dW1``'s slot and the
optimiser's state): each nonzero then reads or writes ``n_1`` contiguous
entries instead of ``n_1`` entries ``n_x`` apart, one cache line each.
Nothing else reads ``W1`` as a matrix (the updates, L2 and ``||W||^2`` go
entry by entry), so the dense forms are unchanged and pay nothing: the
trainer transposes ``W1`` when it packs and unpacks a sparse fit's
parameters (:func:`fastbackprop.sparse.first_layer_transposed`).

Per step, the products cost ``2 nnz(X_b) n_1`` multiply-adds. ``dW1`` is
cleared over the whole slot before it is accumulated (``n_1 n_x`` stores, the
same order as the optimiser's update, which reads and writes all of ``W1``
and its state every step in every optimiser here and in scikit-learn).

:class:`SparseData` is a fit's data, CSR rows of the whole ``X^T`` made
once; :func:`gather` copies a shuffled batch's rows (their indices and
values, not a dense block) into :class:`SparseBatches`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit
from .layout import matrix_view


class SparseRows(NamedTuple):
    """A batch of ``m_t`` examples as CSR rows: ``indptr`` ``(m_t + 1,)`` (row ``j``'s
    nonzeros are ``indptr[j] .. indptr[j + 1] - 1``, absolute positions into ``indices``,
    ``values``), ``indices`` the feature numbers, ``values`` of the fit's dtype, and
    ``scratch`` ``(n_1,)`` of that dtype, a column's worth of room."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    scratch: np.ndarray


class SparseData(NamedTuple):
    """The training data, sparse: ``X^T`` ``(m, n_x)`` as CSR (``indptr`` ``(m + 1,)``,
    ``indices``, ``values``), ``Y`` ``(m, n_L)`` (rows, C order), ``w`` ``(m,)``."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    Y: np.ndarray
    w: np.ndarray


class SparseBatches(NamedTuple):
    """One thread's batch buffers for :class:`SparseData`: ``indptr`` ``(capacity + 1,)``,
    ``indices`` and ``values`` with room for the ``capacity`` longest rows' nonzeros,
    ``Y`` (``n_L x capacity`` entries, the batch's labels as columns), ``w``
    ``(capacity,)``, ``perm`` ``(m,)`` int64 (the epoch's order) and ``scratch`` ``(n_1,)``."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    Y: np.ndarray
    w: np.ndarray
    perm: np.ndarray
    scratch: np.ndarray


def writeable(a):
    """``a``, or a copy when it is read-only (Numba types those apart: another compile)."""
    return a if a.flags.writeable else a.copy()


def batch_buffers(indptr, capacity, n_1, n_L, dtype, index_dtype):
    """:class:`SparseBatches` for batches of up to ``capacity`` of the rows of ``indptr``
    ``(m + 1,)`` (room for the ``capacity`` longest rows' nonzeros: any batch fits)."""
    lengths = np.diff(indptr)
    m = lengths.size
    room = int(np.sum(np.sort(lengths)[m - min(capacity, m):])) if m else 0
    return SparseBatches(np.zeros(capacity + 1, dtype=np.int64), np.zeros(room, dtype=index_dtype),
                         np.zeros(room, dtype=dtype), np.empty(n_L * capacity, dtype=dtype),
                         np.empty(capacity, dtype=dtype), np.arange(m, dtype=np.int64),
                         np.zeros(n_1, dtype=dtype))


@jit
def W1T_of(theta, dims, offsets):
    """View of ``W1^T`` ``(n_x, n_1)``: how a sparse fit holds ``W1``'s slot."""
    return matrix_view(theta, offsets[0, 0], dims[0], dims[1])


@jit
def W1X(inp, W1T, Z):
    """``Z`` ``(n_1, m_t)`` := ``W1 X_b``, over the nonzeros of ``inp`` (:class:`SparseRows`).

    Each row's sum is made in ``inp.scratch`` (``W1^T``'s rows added, contiguous), then
    written to its column of ``Z``.
    """
    n_1, m_t = Z.shape
    z = inp.scratch
    for j in range(m_t):
        for i in range(n_1):
            z[i] = 0
        for k in range(inp.indptr[j], inp.indptr[j + 1]):
            v = inp.values[k]
            row = W1T[inp.indices[k]]
            for i in range(n_1):
                z[i] += v * row[i]
        for i in range(n_1):
            Z[i, j] = z[i]


@jit
def dZX(inp, dZ, dW1T):
    """``dW1^T`` ``(n_x, n_1)`` := ``(dZ X_b^T)^T``, raw (no ``1/m``), over the nonzeros:
    the slot cleared, then each nonzero adds ``value dZ[:, j]`` to its row."""
    n_1, m_t = dZ.shape
    flat = dW1T.reshape(-1)
    for i in range(flat.size):
        flat[i] = 0
    d = inp.scratch
    for j in range(m_t):
        for i in range(n_1):
            d[i] = dZ[i, j]
        for k in range(inp.indptr[j], inp.indptr[j + 1]):
            v = inp.values[k]
            row = dW1T[inp.indices[k]]
            for i in range(n_1):
                row[i] += v * d[i]


@jit
def gather(data, perm, first, m_t, out):
    """The rows ``perm[first], ..., perm[first + m_t - 1]`` of ``data`` (:class:`SparseData`)
    copied into ``out`` (:class:`SparseBatches`): their nonzeros, one row after another;
    returns the batch as :class:`SparseRows`."""
    out.indptr[0] = 0
    n = 0
    for j in range(m_t):
        r = perm[first + j]
        for k in range(data.indptr[r], data.indptr[r + 1]):
            out.indices[n] = data.indices[k]
            out.values[n] = data.values[k]
            n += 1
        out.indptr[j + 1] = n
    return SparseRows(out.indptr[:m_t + 1], out.indices, out.values, out.scratch)


__all__ = ["SparseRows", "SparseData", "SparseBatches", "writeable", "batch_buffers", "W1T_of", "W1X",
           "dZX", "gather"]
