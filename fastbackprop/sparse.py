"""Sparse data: SciPy sparse matrices and arrays as ``X``, checked and held once per fit.

``X`` is ``(n_x, m)``, one example per column, as everywhere in the package.
A fit reads it one example at a time, so the form every sparse path works on
is the CSR matrix of ``X^T`` ``(m, n_x)``: one row per example, its nonzeros'
feature indices and values contiguous. That is the same three arrays as ``X``
held in CSC: a CSC ``X`` (or, in the scikit-learn classes, a CSR
``(n_samples, n_features)``) is used as it is, with no copy, when it is
already canonical (sorted indices, no duplicates) in the fit's dtype; any
other SciPy format, an unsorted or duplicated one, or integer or boolean
values are converted **once**, into one new CSR copy of ``X^T``.

What each kind of input gets (:func:`rows`):

* NaN or infinite stored values: ``ValueError`` naming the argument, as for
  dense ``X``;
* explicit zeros: kept (they multiply to exact zeros; they cost time, not
  accuracy);
* unsorted indices or duplicate entries: duplicates summed and indices sorted
  (SciPy's ``sum_duplicates``), in the one converted copy: the caller's
  matrix is never modified;
* int or bool values: converted to the fit's float dtype (the one copy);
* COO, LIL, DOK, BSR, DIA, CSR ``(n_x, m)``: converted once (``tocsr``);
* empty examples (all-zero columns of ``X``) and features (all-zero rows):
  allowed, as in dense ``X``; no stored value at all is allowed too.

This module imports SciPy's sparse package only when a sparse matrix is
given (a sparse ``X`` means it is loaded already): ``import fastbackprop``
stays as fast as it was.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

__all__ = ["is_sparse", "SparseRows", "rows", "check_sparse_X", "first_layer_transposed"]


def is_sparse(a):
    """Whether ``a`` is a SciPy sparse matrix or array (without importing SciPy)."""
    if type(a) is np.ndarray:  # the common case, without SciPy's checks
        return False
    module = sys.modules.get("scipy.sparse")
    return module is not None and module.issparse(a)


class SparseRows(NamedTuple):
    """The examples as CSR rows: example ``j``'s features are ``indices[indptr[j]:indptr[j +
    1]]`` with the values ``values[...]`` (``dtype`` float), ``shape`` ``(m, n_x)``."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    shape: tuple

    @property
    def m(self):
        return self.shape[0]

    @property
    def nnz(self):
        return int(self.indptr[-1] - self.indptr[0])

    def take(self, examples):
        """The rows ``examples`` (an index array) as new :class:`SparseRows`."""
        return _of_csr(self.csr()[np.asarray(examples)])

    def csr(self):
        """A SciPy ``csr_array`` ``(m, n_x)`` over the same arrays (no copy)."""
        from scipy import sparse

        return sparse.csr_array((self.values, self.indices, self.indptr), shape=self.shape,
                                copy=False)

    def columns(self):
        """``X`` ``(n_x, m)`` as a SciPy ``csc_array`` over the same arrays (no copy)."""
        return self.csr().T


def _of_csr(csr):
    return SparseRows(csr.indptr, csr.indices, csr.data, tuple(int(n) for n in csr.shape))


def rows(X, dtype, n_x=None, argument="X", examples_as_rows=False):
    """``X`` ``(n_x, m)`` (a SciPy sparse matrix or array) as checked :class:`SparseRows` of
    ``dtype`` (float32 or float64).

    ``examples_as_rows``: ``X`` is ``(m, n_x)`` (scikit-learn's layout). The
    arrays are ``X``'s own when it is canonical CSR of the examples in
    ``dtype``, else one converted copy (see the module). Raises ``ValueError``
    for a wrong shape or non-finite values, ``TypeError`` for complex values,
    naming ``argument``.
    """
    from scipy import sparse

    dtype = np.dtype(dtype)
    if not sparse.issparse(X):
        raise TypeError(f"{argument} must be a SciPy sparse matrix or array; got "
                        f"{type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"{argument} must be 2-D; got shape {X.shape}")
    shape = X.shape if examples_as_rows else X.shape[::-1]  # (m, n_x)
    expected = (f"(m, {'n_x' if n_x is None else n_x})" if examples_as_rows
                else f"({'n_x' if n_x is None else n_x}, m)")
    layout = "one example per row" if examples_as_rows else "one example per column"
    if n_x is not None and shape[1] != n_x:
        raise ValueError(f"{argument} must have shape {expected} ({layout}); got shape "
                         f"{X.shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{argument} must have at least one row and one column (m >= 1); "
                         f"got shape {X.shape}")
    if np.issubdtype(X.dtype, np.complexfloating) or not (
            np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise TypeError(f"{argument} must hold real numbers; got dtype {X.dtype}")
    csr = X if examples_as_rows else X.T  # a CSC X is a CSR X^T: the same arrays
    converted = False  # does csr own its arrays (so that they may change in place)?
    if csr.format != "csr":
        csr = csr.tocsr()  # COO, LIL, ...: the one converted copy
        converted = True
    if csr.dtype != dtype:
        csr = csr.astype(dtype)  # a copy (and SciPy keeps the structure as it was)
        converted = True
    if not csr.has_canonical_format:
        if not converted:
            csr = csr.copy()  # never the caller's matrix
        csr.sum_duplicates()  # sums duplicates and sorts the indices, in place
    if not np.all(np.isfinite(csr.data)):
        raise ValueError(f"{argument} must be finite; it holds NaN or infinity "
                         f"({int(np.sum(~np.isfinite(csr.data)))} stored values)")
    return _of_csr(csr)


def check_sparse_X(X, n_x=None, dtype=None, argument="X"):
    """``X`` ``(n_x, m)`` sparse, checked, as a SciPy ``csc_array`` of ``dtype`` (default
    float64, or float32 when ``X`` is float32): what :func:`fastbackprop.validation.check_X`
    returns for a sparse ``X``. Its arrays are those of :func:`rows`."""
    if dtype is None:
        dtype = np.float32 if X.dtype == np.float32 else np.float64
    return rows(X, dtype, n_x=n_x, argument=argument).columns()


def first_layer_transposed(theta, dims):
    """``theta`` (the flat layout, a new array) with ``W1``'s ``(n_1, n_x)`` entries stored as
    ``W1^T`` ``(n_x, n_1)``, C order: what the sparse kernels read (and the reverse, applied
    to such a vector, gives the usual layout back: the same call with ``dims`` whose first
    two entries are swapped)."""
    n_1, n_x = dims[1], dims[0]
    out = np.array(theta, copy=True)
    out[:n_1 * n_x] = np.asarray(theta[:n_1 * n_x]).reshape(n_1, n_x).T.reshape(-1)
    return out
