"""The first layer's products with the data, in one place: one dispatch on how the batch is held.

The first layer is the only one that reads the data, and the data come in
several forms; every other layer reads activations, which are always
``(n_l, m)`` arrays. A batch's first-layer input is one of:

:class:`Columns`  ``X`` ``(n_x, m)``, examples as columns (full-batch fits);
:class:`Rows`     ``X`` ``(m, n_x)``, examples as rows (a gathered mini-batch:
                  copying whole rows is 3 to 5 times faster than gathering
                  them into columns, and BLAS takes either layout at the
                  same speed);
:class:`~.gram.Gram`  Gram mode (see :mod:`.gram`): ``W1 X = P0 + D G``, and
                  ``dZ1`` is ``D``'s gradient, so ``dW1`` is never formed;
:class:`~.sparse.SparseRows`  sparse examples as CSR rows (see :mod:`.sparse`):
                  the products run over the nonzeros, and ``W1``'s slot holds
                  ``W1^T``.

The functions here are the first layer's jobs: :func:`hidden` (``A1 = g(W1 X + b1)``), :func:`output` (the same when the
first layer is the output layer), :func:`delta` (where ``dZ1`` goes) and
:func:`weight_gradient` (``dW1 = dZ1 X^T``, plus the L2 term). Each
chooses its implementation from the input's type while Numba types the
call, so a fit compiles only the form it uses, and a new form is one more
class and one more branch per job, here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types

from .._jit import overload_kernel
from . import gram as gram_mode
from . import sparse
from .blas import NN, NT
from .layout import W_of, b_of, layer_of
from .outputs import output_apply, output_layer
from .passes import bias_activation, gemm, linear_activation
from .scalar import select


#: The first layer's number, typed as the loop's layer numbers are (an int64 variable, not a
#: constant): the views then share the loop's compiled signature instead of one of their own.
FIRST = np.int64(1)


class Columns(NamedTuple):
    """A batch held as columns: ``X`` ``(n_x, m)``, C-contiguous."""

    X: np.ndarray


class Rows(NamedTuple):
    """A batch held as rows: ``X`` ``(m, n_x)``, C-contiguous."""

    X: np.ndarray


#: Codes of the forms a Python caller hands over a bare ``X`` in (:func:`input_of`).
COLUMNS, ROWS = 0, 1


def input_of(X, form):
    """``X`` in the form ``form`` names (a constant: :data:`COLUMNS` or :data:`ROWS`)."""
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(input_of)
def _input_of(X, form):
    return select(form, {COLUMNS: lambda X, form: Columns(X), ROWS: lambda X, form: Rows(X)},
                  "input form")


def store(AL, out, form):
    """``A_L`` ``(n_L, m)`` into ``out`` in the layout of the form ``form`` names (a constant):
    ``out`` ``(n_L, m)`` for :data:`COLUMNS`, ``(m, n_L)`` for :data:`ROWS`."""
    raise NotImplementedError("for use inside kernels only")


def _store_columns(AL, out, form):
    for i in range(AL.shape[0]):
        for j in range(AL.shape[1]):
            out[i, j] = AL[i, j]


def _store_rows(AL, out, form):
    for j in range(AL.shape[1]):
        for i in range(AL.shape[0]):
            out[j, i] = AL[i, j]


@overload_kernel(store)
def _store(AL, out, form):
    return select(form, {COLUMNS: _store_columns, ROWS: _store_rows}, "input form")


def _form(inp):
    """The class of the first-layer input type ``inp`` (a Numba named-tuple type)."""
    if isinstance(inp, types.BaseNamedTuple):
        for form in (Columns, Rows, gram_mode.Gram, sparse.SparseRows):
            if inp.instance_class is form:
                return form
    raise TypeError(f"not a first-layer input: {inp}")


def hidden(inp, theta, dims, offsets, code, A):
    """``A = g(W1 X + b1)`` into ``A`` ``(n_1, m)``, ``code`` the hidden activation."""
    raise NotImplementedError("for use inside kernels only")


def product(inp, theta, dims, offsets, Z):
    """``Z = W1 X`` into ``Z`` ``(n_1, m)``, no bias (a batch-normalised first layer)."""
    raise NotImplementedError("for use inside kernels only")


def output(inp, theta, dims, offsets, code, Y, w, A, cost, cols):
    """The output layer's step when it is the first (``L = 1``); returns ``(sum(Z_L), loss)``."""
    raise NotImplementedError("for use inside kernels only")


def delta(inp, deltas, grad, dims, offsets, m):
    """Where ``dZ1`` ``(n_1, m)`` is written: its slot of ``deltas`` (Gram mode: ``D``'s of ``grad``)."""
    raise NotImplementedError("for use inside kernels only")


def weight_gradient(inp, dZ, grad, dims, offsets):
    """``dW1 = dZ1 X^T`` (raw); nothing in Gram mode; sparse: into ``dW1^T``'s slot."""
    raise NotImplementedError("for use inside kernels only")


def _constant(code):
    """Refuse a non-constant code while typing (as :func:`.scalar.select` does), so that Numba
    does not compile an implementation for ``int64`` first and then for the constant."""
    from numba.core.errors import TypingError

    if not isinstance(code, types.IntegerLiteral):
        raise TypingError(f"the activation code must be a compile-time constant; got {code}")


@overload_kernel(hidden)
def _hidden(inp, theta, dims, offsets, code, A):
    _constant(code)
    form = _form(inp)
    if form is Columns:
        def columns(inp, theta, dims, offsets, code, A):
            return linear_activation(W_of(theta, dims, offsets, FIRST), inp.X,
                                     b_of(theta, dims, offsets, FIRST), code, A)
        return columns
    if form is Rows:
        def rows(inp, theta, dims, offsets, code, A):
            gemm(W_of(theta, dims, offsets, FIRST), inp.X, A, NT)  # W1 X^T, X as rows
            return bias_activation(A, b_of(theta, dims, offsets, FIRST), code)
        return rows
    if form is sparse.SparseRows:
        def sparse_rows(inp, theta, dims, offsets, code, A):
            sparse.W1X(inp, sparse.W1T_of(theta, dims, offsets), A)
            return bias_activation(A, b_of(theta, dims, offsets, FIRST), code)
        return sparse_rows

    def gram(inp, theta, dims, offsets, code, A):
        gram_mode.W1X(theta, dims, offsets, inp, A)
        return bias_activation(A, b_of(theta, dims, offsets, FIRST), code)
    return gram


@overload_kernel(product)
def _product(inp, theta, dims, offsets, Z):
    form = _form(inp)
    if form is gram_mode.Gram:
        def gram(inp, theta, dims, offsets, Z):
            gram_mode.W1X(theta, dims, offsets, inp, Z)
        return gram
    mode = NN if form is Columns else NT  # W1 X, or W1 X^T with X as rows

    def plain(inp, theta, dims, offsets, Z):
        gemm(W_of(theta, dims, offsets, FIRST), inp.X, Z, mode)
    return plain


@overload_kernel(output)
def _output(inp, theta, dims, offsets, code, Y, w, A, cost, cols):
    _constant(code)
    form = _form(inp)
    if form is Columns:
        def columns(inp, theta, dims, offsets, code, Y, w, A, cost, cols):
            return output_layer(code, W_of(theta, dims, offsets, FIRST), inp.X,
                                b_of(theta, dims, offsets, FIRST), Y, w, A, cost, cols)
        return columns
    if form is Rows:
        def rows(inp, theta, dims, offsets, code, Y, w, A, cost, cols):
            gemm(W_of(theta, dims, offsets, FIRST), inp.X, A, NT)
            return output_apply(code, A, b_of(theta, dims, offsets, FIRST), Y, w, cost, cols)
        return rows
    if form is sparse.SparseRows:
        def sparse_rows(inp, theta, dims, offsets, code, Y, w, A, cost, cols):
            sparse.W1X(inp, sparse.W1T_of(theta, dims, offsets), A)
            return output_apply(code, A, b_of(theta, dims, offsets, FIRST), Y, w, cost, cols)
        return sparse_rows

    def gram(inp, theta, dims, offsets, code, Y, w, A, cost, cols):
        gram_mode.W1X(theta, dims, offsets, inp, A)
        return output_apply(code, A, b_of(theta, dims, offsets, FIRST), Y, w, cost, cols)
    return gram


@overload_kernel(delta)
def _delta(inp, deltas, grad, dims, offsets, m):
    if _form(inp) is gram_mode.Gram:
        return lambda inp, deltas, grad, dims, offsets, m: gram_mode.D_of(grad, dims, offsets, m)
    return lambda inp, deltas, grad, dims, offsets, m: layer_of(deltas, dims, offsets, FIRST, m)


@overload_kernel(weight_gradient)
def _weight_gradient(inp, dZ, grad, dims, offsets):
    form = _form(inp)
    if form is gram_mode.Gram:
        return lambda inp, dZ, grad, dims, offsets: None  # D's gradient is dZ1
    if form is sparse.SparseRows:
        return lambda inp, dZ, grad, dims, offsets: sparse.dZX(
            inp, dZ, sparse.W1T_of(grad, dims, offsets))
    mode = NT if form is Columns else NN  # dZ1 X^T: X as columns, or X as rows

    def product(inp, dZ, grad, dims, offsets):
        gemm(dZ, inp.X, W_of(grad, dims, offsets, FIRST), mode)
    return product
