"""Gram mode: training a wide first layer through ``G = X^T X``.

**The algebra.** With full-batch gradient descent the first layer's
update is ``W1 := W1 - (alpha/m) dZ1 X^T``, so after ``t`` updates

    W1 = W1_0 + D X^T,    D = -(alpha/m) sum_s dZ1_s    (n_1, m)

and therefore ``W1 X = W1_0 X + D (X^T X) = P0 + D G``. The loop keeps
``D`` after the parameters in each parameter buffer (``dZ1`` is its
gradient; ``dW1``'s slot stays 0), computes ``P0 = W1_0 X`` once, and
replaces the two products with ``X`` per step (``W1 X`` and
``dW1 = dZ1 X^T``, ``2 n_1 n_x m`` multiply-adds) by one ``D G``
(``n_1 m^2``). When a run ends, ``W1 := W1 + D X^T`` and ``D := 0``. The
algebra is exact; only rounding differs.

**Preconditions** (:func:`applies`): the same ``m`` columns every step
(full batch) and an update that is linear in the gradient with a fixed
step (gradient descent); it pays when ``n_x >= m`` and the run is long
enough to repay ``G``'s ``n_x m^2``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit
from ..variants import gram_applies as applies  # noqa: F401 - the rule, without Numba
from .layout import W_of, matrix_view
from .passes import NN, NT, add_matrix, gemm


class Gram(NamedTuple):
    """Gram mode's state: ``G = X^T X`` ``(m, m)``; ``P0 = W1_0 X`` ``(n_1, m)``.

    Without Gram mode the kernels receive ``None`` instead.
    """

    G: np.ndarray
    P0: np.ndarray


def make(enabled, X, n_1, dtype):
    """A :class:`Gram` for data ``X`` ``(n_x, m)``, ``G`` computed now; ``None`` unless ``enabled``."""
    if not enabled:
        return None
    return Gram(gram_matrix(X, dtype), np.empty((n_1, X.shape[1]), dtype=dtype))


def gram_matrix(X, dtype):
    """``G = X^T X`` ``(m, m)`` in ``dtype``, by the BLAS the kernels call (SciPy's ``syrk``).

    Not NumPy's ``X.T @ X``: NumPy links its own OpenBLAS, whose threads spin for
    a while after a product, and the training loop that starts next ran its
    first epochs with them on its cores (``mlp``, 2 cores: the first runs of one
    epoch took 11 to 27 ms instead of 6.5, with involuntary context switches;
    ``tools/fit_fixed_cost.py``).
    """
    from scipy.linalg.blas import get_blas_funcs

    A = np.asarray(X, dtype=dtype).T  # (m, n_x): Fortran-ordered for a C X, not copied
    syrk = get_blas_funcs("syrk", (A,))
    upper = syrk(1.0, A)  # A A^T = X^T X, its upper triangle
    G = np.triu(upper)
    G += np.triu(upper, 1).T
    return np.ascontiguousarray(G)


@jit
def D_of(buffer, dims, offsets, m):
    """View of ``D`` ``(n_1, m)``, stored after the parameters in a parameter buffer."""
    return matrix_view(buffer, offsets[dims.size - 1, 0], dims[1], m)


@jit
def start(theta, X, dims, offsets, gram, grad):
    """Before a run: ``P0 = W1 X`` and ``dW1``'s gradient slot zeroed."""
    gemm(W_of(theta, dims, offsets, 1), X, gram.P0, NN)
    W_of(grad, dims, offsets, 1)[:, :] = 0


@jit
def W1X(theta, dims, offsets, gram, out):
    """``W1 X = P0 + D G`` into ``out`` ``(n_1, m)``."""
    gemm(D_of(theta, dims, offsets, out.shape[1]), gram.G, out, NN)
    add_matrix(out, gram.P0)


@jit
def finish(theta, X, dims, offsets, scratch):
    """After a run: ``W1 := W1 + D X^T`` and ``D := 0`` in ``theta`` (``scratch`` holds ``D X^T``)."""
    m = X.shape[1]
    D = D_of(theta, dims, offsets, m)
    DXt = W_of(scratch, dims, offsets, 1)
    gemm(D, X, DXt, NT)
    W1 = W_of(theta, dims, offsets, 1)
    W1 += DXt
    D[:, :] = 0
