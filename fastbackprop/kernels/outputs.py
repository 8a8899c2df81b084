"""The output layers' kernels: one entry per row of ``spec.OUTPUTS``.

Each entry is three compiled functions:

``layer(W, A_prev, b, Y, w, A, cost, cols)``
    the output step from ``A_prev``: ``A = output(W A_prev + b)``;
``apply(A, b, Y, w, cost, cols)``
    the same when ``A`` already holds the product ``W A_prev`` (Gram mode,
    and the step API);
``cost_from_A(AL, Y, w)``
    the unscaled cost from the output itself (the step API's ``compute_cost``).

``layer`` and ``apply`` return ``(sum(Z_L), loss)`` (exp: ``sum(Z_L) + sum(A_L)``,
since ``e^z`` overflows for a finite ``z``): the first is finite exactly when the
cost is (training's divergence check), and ``loss`` is
the unscaled sum of the per-example costs against ``Y``, each times its
column's weight ``w[j]``, when ``cost`` is true, else 0 (``Y`` and ``w``
are then not read). ``cols`` is scratch of at least
``(4, m)`` for passes that work per column (softmax). Every output layer
starts backprop from ``dZ_L = A_L - Y`` (:func:`.passes.output_delta`).

:func:`output_layer`, :func:`output_apply` and :func:`output_cost` choose
the entry by a compile-time constant code through :func:`.scalar.select`;
an unknown code does not compile.
"""

from __future__ import annotations

import numpy as np
from numba import literally

from .. import spec
from .._jit import jit, overload_kernel
from .passes import (
    NN,
    cost_from_probabilities,
    gemm,
    linear_sigmoid_cost,
    sigmoid_cost,
)
from .scalar import exp, like, select

# -- sigmoid: one pass, the cost fused in when wanted, sharing exp(-|z|) ----


@jit
def sigmoid_layer(W, A_prev, b, Y, w, A, cost, cols):
    """Sigmoid output from ``A_prev``; small products row by row (see ``linear_activation``)."""
    return linear_sigmoid_cost(W, A_prev, b, Y, w, A, cost)


@jit
def sigmoid_apply(A, b, Y, w, cost, cols):
    """Sigmoid output on ``A = W A_prev``, in place."""
    return sigmoid_cost(A, b, Y, w, cost)


# -- softmax: vectorised across the m columns, running max and sum per column


@jit
def softmax_apply(A, b, Y, w, cost, cols):
    """``A := softmax(A + b)`` per column, in place, in three row-major passes.

    A ``(n_L, m)``, b ``(n_L, 1)``; cols ``(>= 4, >= m)`` scratch. Every
    inner loop runs along a row (contiguous), across the columns: the
    column maxima, then ``e = exp(z - max)`` with the column sums (and, for
    the cost, ``sum_k y (z - max)`` and ``sum_k y``), then the scaling by
    ``1 / sum``. The cost per column is ``sum_k y * log(sum) - sum_k y (z - max)``
    (log-sum-exp; finite for any finite ``Z``), times the column's weight.
    """
    n, m = A.shape
    top, total_e, yz, ysum = cols[0, :m], cols[1, :m], cols[2, :m], cols[3, :m]
    zero = like(A, 0.0)
    total = zero
    for j in range(m):
        top[j] = -np.inf
        total_e[j] = zero
        yz[j] = zero
        ysum[j] = zero
    for i in range(n):
        bi = b[i, 0]
        for j in range(m):
            z = A[i, j] + bi
            A[i, j] = z
            total += z
            top[j] = max(top[j], z)
    for i in range(n):
        if cost:
            for j in range(m):
                z = A[i, j] - top[j]
                e = exp(z)
                A[i, j] = e
                total_e[j] += e
                y = Y[i, j]
                yz[j] += y * z
                ysum[j] += y
        else:
            for j in range(m):
                e = exp(A[i, j] - top[j])
                A[i, j] = e
                total_e[j] += e
    loss = zero
    if cost:
        for j in range(m):
            loss += (ysum[j] * np.log(total_e[j]) - yz[j]) * w[j]
    for j in range(m):
        total_e[j] = like(A, 1.0) / total_e[j]
    for i in range(n):
        for j in range(m):
            A[i, j] *= total_e[j]
    return total, loss


@jit
def softmax_layer(W, A_prev, b, Y, w, A, cost, cols):
    """Softmax output from ``A_prev``: the product (BLAS or small loops), then :func:`softmax_apply`."""
    gemm(W, A_prev, A, NN)
    return softmax_apply(A, b, Y, w, cost, cols)


@jit
def softmax_cost_from_A(AL, Y, w):
    """``-sum w Y log AL``, unscaled, ``AL`` clipped to the smallest normal number away from 0."""
    tiny = like(AL, np.finfo(AL.dtype).tiny)
    total = like(AL, 0.0)
    for i in range(AL.shape[0]):
        for j in range(AL.shape[1]):
            total -= Y[i, j] * np.log(max(AL[i, j], tiny)) * w[j]
    return total


# -- linear: A = Z, half the squared error -----------------------------------


@jit
def linear_apply(A, b, Y, w, cost, cols):
    """``A := A + b`` in place; the loss ``sum w (a - y)^2 / 2`` when ``cost``."""
    half = like(A, 0.5)
    total = like(A, 0.0)
    loss = like(A, 0.0)
    for i in range(A.shape[0]):
        bi = b[i, 0]
        if cost:
            for j in range(A.shape[1]):
                z = A[i, j] + bi
                A[i, j] = z
                total += z
                d = z - Y[i, j]
                loss += half * d * d * w[j]
        else:
            for j in range(A.shape[1]):
                z = A[i, j] + bi
                A[i, j] = z
                total += z
    return total, loss


@jit
def linear_layer(W, A_prev, b, Y, w, A, cost, cols):
    """Linear output from ``A_prev``: the product, then :func:`linear_apply`."""
    gemm(W, A_prev, A, NN)
    return linear_apply(A, b, Y, w, cost, cols)


@jit
def squared_error_from_A(AL, Y, w):
    """``sum w (AL - Y)^2 / 2``, unscaled."""
    half = like(AL, 0.5)
    total = like(AL, 0.0)
    for i in range(AL.shape[0]):
        for j in range(AL.shape[1]):
            d = AL[i, j] - Y[i, j]
            total += half * d * d * w[j]
    return total


# -- exp: A = e^Z, the half Poisson deviance ---------------------------------


@jit
def exp_apply(A, b, Y, w, cost, cols):
    """``A := exp(A + b)`` in place; the loss ``sum w [y log y - y z - y + e^z]`` when ``cost``.

    Returns ``sum(Z_L) + sum(A_L)`` as the first value: ``e^z`` overflows to inf (the cost
    with it) for a large finite ``z``, where ``sum(Z_L)`` alone would stay finite. The
    loss is the half Poisson deviance ``y log(y / a) - y + a`` from the logit (no log of
    ``a``, so no overflow from ``a`` rounding to 0); ``y log y`` is 0 where ``y`` is 0.
    """
    zero = like(A, 0.0)
    total = zero
    loss = zero
    for i in range(A.shape[0]):
        bi = b[i, 0]
        if cost:
            for j in range(A.shape[1]):
                z = A[i, j] + bi
                a = exp(z)
                A[i, j] = a
                total += z + a
                y = Y[i, j]
                y_log_y = y * np.log(y) if y > zero else zero
                loss += (y_log_y - y * z - y + a) * w[j]
        else:
            for j in range(A.shape[1]):
                z = A[i, j] + bi
                a = exp(z)
                A[i, j] = a
                total += z + a
    return total, loss


@jit
def exp_layer(W, A_prev, b, Y, w, A, cost, cols):
    """Exp output from ``A_prev``: the product, then :func:`exp_apply`."""
    gemm(W, A_prev, A, NN)
    return exp_apply(A, b, Y, w, cost, cols)


@jit
def poisson_deviance_from_A(AL, Y, w):
    """``sum w [y log(y / a) - y + a]``, unscaled; ``AL`` clipped to the smallest normal
    number away from 0 inside the log."""
    tiny = like(AL, np.finfo(AL.dtype).tiny)
    zero = like(AL, 0.0)
    total = zero
    for i in range(AL.shape[0]):
        for j in range(AL.shape[1]):
            a = AL[i, j]
            y = Y[i, j]
            term = a - y
            if y > zero:
                term += y * (np.log(y) - np.log(max(a, tiny)))
            total += term * w[j]
    return total


#: Output code -> ``(layer, apply, cost_from_A)``; one entry per ``spec.OUTPUTS`` row.
OUTPUT_KERNELS = {
    spec.OUTPUTS["sigmoid"].code: (sigmoid_layer, sigmoid_apply, cost_from_probabilities),
    spec.OUTPUTS["softmax"].code: (softmax_layer, softmax_apply, softmax_cost_from_A),
    spec.OUTPUTS["linear"].code: (linear_layer, linear_apply, squared_error_from_A),
    spec.OUTPUTS["exp"].code: (exp_layer, exp_apply, poisson_deviance_from_A),
}


def output_layer(code, W, A_prev, b, Y, w, A, cost, cols):
    """The output step of the output layer with constant ``code``; see the module."""
    raise NotImplementedError("for use inside kernels only")


def output_apply(code, A, b, Y, w, cost, cols):
    """The output pass on a computed product, for constant ``code``; see the module."""
    raise NotImplementedError("for use inside kernels only")


def output_cost(code, AL, Y, w):
    """The unscaled cost from ``AL`` for constant ``code``; see the module."""
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(output_layer)
def _output_layer(code, W, A_prev, b, Y, w, A, cost, cols):
    layer = select(code, OUTPUT_KERNELS, "output layer")[0]
    return lambda code, W, A_prev, b, Y, w, A, cost, cols: layer(W, A_prev, b, Y, w, A, cost,
                                                                 cols)


@overload_kernel(output_apply)
def _output_apply(code, A, b, Y, w, cost, cols):
    apply = select(code, OUTPUT_KERNELS, "output layer")[1]
    return lambda code, A, b, Y, w, cost, cols: apply(A, b, Y, w, cost, cols)


@overload_kernel(output_cost)
def _output_cost(code, AL, Y, w):
    cost = select(code, OUTPUT_KERNELS, "output layer")[2]
    return lambda code, AL, Y, w: cost(AL, Y, w)


@jit(entry=True)
def apply_pass(code, A, b, Y, w, cost):
    """:func:`output_apply` reachable from Python (the step API); allocates its scratch."""
    literally(code)
    return output_apply(code, A, b, Y, w, cost, np.empty((4, A.shape[1]), dtype=A.dtype))


@jit(entry=True)
def cost_pass(code, AL, Y, w):
    """:func:`output_cost` reachable from Python (the step API)."""
    literally(code)
    return output_cost(code, AL, Y, w)


__all__ = ["OUTPUT_KERNELS", "output_layer", "output_apply", "output_cost", "apply_pass",
           "cost_pass"]
