"""Batch normalisation inside the compiled loop: the forward pass's statistics and
normalisation, the backward pass's two row sums, and the running statistics.

The equations are the reference's (:func:`fastbackprop.reference.batch_norm_forward`,
:func:`~fastbackprop.reference.batch_norm_backward`); per hidden layer ``l`` with batch
norm, per unit ``i`` over the ``m`` columns of the batch::

    forward   mu_i = (1/m) sum_j Z_ij      sigma2_i = (1/m) sum_j (Z_ij - mu_i)^2
              Z_hat = (Z - mu) / sqrt(sigma2 + eps)          Z_tilde = gamma Z_hat + beta
              A = g(Z_tilde)                                  (beta added in the activation pass)
    backward  dZ_tilde = dA * g'(A)   with its row sum (beta's gradient), as for any layer
              sum_j dZ_tilde_ij Z_hat_ij                       (gamma's gradient)
              dZ = gamma / (m sqrt(sigma2 + eps)) (m dZ_tilde - sum dZ_tilde - Z_hat sum dZ_tilde Z_hat)

Where the numbers live: in ``theta`` a batch-normalised layer's arrays follow its ``W``
as :data:`fastbackprop.layout.BATCH_NORM` orders them, ``gamma``, ``beta``,
``running_mean``, ``running_var``, and the layer offsets' bias column (``offsets[l - 1,
1]``) points at ``beta``: the activation pass adds it as it adds a bias, and the backward
pass's row sum of ``dZ_tilde`` lands in ``beta``'s gradient. ``gamma`` lies just before
it, the running statistics just after. :class:`BatchNorm` holds the rest: which layers,
``Z_hat`` (in slots like ``acts``'), each unit's ``mu`` and ``1 / sqrt(sigma2 + eps)``
and ``sigma2``, and the two numbers.

A fit without batch norm passes ``None`` and compiles none of this (``training``'s
kernels test it with ``is None``). The batch's statistics are the whole batch's: a fit
with batch norm runs on one thread (:func:`fastbackprop.kernels.team.choose`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit
from .layout import layer_of, matrix_view
from .scalar import like


class BatchNorm(NamedTuple):
    """The compiled loop's batch norm: ``on`` ``(L,)`` int64, 1 for a batch-normalised layer
    (never the output layer); ``zhat``, ``Z_hat`` in slots laid out as ``acts``'; ``stats``
    ``(3 sum_l n_l,)``: per layer ``mu``, ``1 / sqrt(sigma2 + eps)``, ``sigma2`` of its
    ``n_l`` units from ``starts[l - 1]``; ``momentum``, ``epsilon`` in the data's dtype."""

    on: np.ndarray
    zhat: np.ndarray
    stats: np.ndarray
    starts: np.ndarray
    momentum: float
    epsilon: float


def make(flags, dims, capacity, dtype, momentum, epsilon):
    """A :class:`BatchNorm` for the hidden layers ``flags`` says (one bool per hidden layer)
    of the network ``dims`` with batches of up to ``capacity`` columns; None when none."""
    if not any(flags):
        return None
    n = np.asarray(dims[1:], dtype=np.int64)
    on = np.zeros(n.size, dtype=np.int64)
    on[:len(flags)] = np.asarray(flags, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(3 * n)[:-1]]).astype(np.int64)
    f = np.dtype(dtype).type
    return BatchNorm(on, np.zeros(int(n.sum()) * capacity, dtype=dtype),
                     np.zeros(3 * int(n.sum()), dtype=dtype), starts, f(momentum), f(epsilon))


@jit
def normalises(bn, l):
    """Whether layer ``l`` (from 1) is batch-normalised (``bn`` a :class:`BatchNorm`)."""
    return bn.on[l - 1] != 0


@jit
def gamma_of(theta, dims, offsets, l):
    """``gamma{l}`` ``(n_l, 1)``: just before ``beta{l}`` (the bias column's offset)."""
    return matrix_view(theta, offsets[l - 1, 1] - dims[l], dims[l], 1)


@jit
def running_of(theta, dims, offsets, l, k):
    """``running_mean{l}`` (``k = 0``) or ``running_var{l}`` (``k = 1``) ``(n_l, 1)``: just
    after ``beta{l}``."""
    return matrix_view(theta, offsets[l - 1, 1] + (1 + k) * dims[l], dims[l], 1)


@jit
def normalise(bn, theta, dims, offsets, l, Z):
    """``Z := gamma Z_hat`` in place, ``Z`` ``(n_l, m)`` the layer's ``W A_prev``; ``Z_hat``
    into its slot, each unit's ``mu``, ``1 / sqrt(sigma2 + eps)``, ``sigma2`` into
    ``bn.stats``. (The activation pass then adds ``beta`` and applies ``g``.)

    Two passes over each row for the statistics (``sigma2`` from the centred values is
    never negative), a third writes. A one-column batch or a constant unit has
    ``sigma2 = 0`` and ``Z_hat = 0`` (to rounding): ``Z := 0``, then ``A = g(beta)``.
    """
    n, m = Z.shape
    gamma = gamma_of(theta, dims, offsets, l)
    Z_hat = layer_of(bn.zhat, dims, offsets, l, m)
    start = bn.starts[l - 1]
    inv_count = like(Z, 1.0) / like(Z, m)
    one = like(Z, 1.0)
    for i in range(n):
        s = like(Z, 0.0)
        for j in range(m):
            s += Z[i, j]
        mu = s * inv_count
        q = like(Z, 0.0)
        for j in range(m):
            c = Z[i, j] - mu
            q += c * c
        sigma2 = q * inv_count
        inv_std = one / np.sqrt(sigma2 + bn.epsilon)
        g = gamma[i, 0]
        for j in range(m):
            h = (Z[i, j] - mu) * inv_std
            Z_hat[i, j] = h
            Z[i, j] = g * h
        bn.stats[start + i] = mu
        bn.stats[start + n + i] = inv_std
        bn.stats[start + 2 * n + i] = sigma2


@jit
def backward(bn, theta, grad, dims, offsets, l, dZ):
    """Back through layer ``l``'s normalisation, in place: ``dZ`` ``(n_l, m)`` holds
    ``dZ_tilde`` and ``beta``'s raw gradient ``sum dZ_tilde`` (the bias slot) is already
    formed; writes ``gamma``'s, ``sum dZ_tilde Z_hat``, and turns ``dZ`` into ``dZ``::

        dZ = gamma / (m sqrt(sigma2 + eps)) (m dZ_tilde - sum dZ_tilde - Z_hat sum dZ_tilde Z_hat)
    """
    n, m = dZ.shape
    gamma = gamma_of(theta, dims, offsets, l)
    dgamma = gamma_of(grad, dims, offsets, l)
    dbeta = matrix_view(grad, offsets[l - 1, 1], dims[l], 1)
    Z_hat = layer_of(bn.zhat, dims, offsets, l, m)
    start = bn.starts[l - 1]
    count = like(dZ, m)
    inv_count = like(dZ, 1.0) / count
    for i in range(n):
        s = like(dZ, 0.0)
        for j in range(m):
            s += dZ[i, j] * Z_hat[i, j]
        dgamma[i, 0] = s
        sum_d = dbeta[i, 0]
        factor = gamma[i, 0] * bn.stats[start + n + i]
        mean_d = sum_d * inv_count
        mean_dz = s * inv_count
        for j in range(m):
            dZ[i, j] = factor * (dZ[i, j] - mean_d - Z_hat[i, j] * mean_dz)


@jit
def update_running(bn, theta, dims, offsets):
    """``running := momentum running + (1 - momentum) batch`` for ``mu`` and ``sigma2`` of
    every batch-normalised layer (after a step whose cost was finite)."""
    keep = bn.momentum
    new = like(keep, 1.0) - keep
    for l in range(1, dims.size - 1):
        if bn.on[l - 1] == 0:
            continue
        n = dims[l]
        start = bn.starts[l - 1]
        mean = running_of(theta, dims, offsets, l, 0)
        var = running_of(theta, dims, offsets, l, 1)
        for i in range(n):
            mean[i, 0] = keep * mean[i, 0] + new * bn.stats[start + i]
            var[i, 0] = keep * var[i, 0] + new * bn.stats[start + 2 * n + i]
