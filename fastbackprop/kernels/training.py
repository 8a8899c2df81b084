"""The whole training loop in one compiled call.

State lives in flat, preallocated buffers (see :mod:`.layout`), so one
compiled function serves every depth and nothing is allocated per
iteration. The loop takes them as a few named tuples:

:class:`Data`     ``X`` ``(n_x, m)`` and ``Y`` ``(n_L, m)``;
:class:`Work`     ``acts`` and ``deltas`` (slots of ``n_l x capacity``),
                  ``grad`` (raw gradients ``dZ A_prev^T``, ``sum(dZ)`` in
                  ``theta``'s layout), ``costs`` and ``cols`` (per-column
                  scratch of the output pass, ``(4, capacity)``);
:class:`Hyper`    the learning rate (in the data's dtype) and ``cost_every``;
:class:`~.gram.Gram`  Gram mode's state (see :mod:`.gram`).

The hidden activation, the output layer and the optimiser are
compile-time constants (``literally`` in the entry points; Numba passes the
constant types on to the kernels they call, which need no ``literally`` of
their own and so are not compiled twice), and the optional parts are
arguments that are ``None`` when unused (mini-batches, Gram mode, L2,
dropout): Numba prunes ``if x is None`` branches before it types them, so
a model compiles only the code it runs (a full-batch fit with neither L2
nor dropout compiles none of them; the cold first fit is the first thing
a new user waits for).

The updates are made in place in one buffer (``current``); a second
(``other``) keeps the state a failed step goes back to (see :func:`train`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import literally

from .. import spec
from .._jit import jit
from . import gram as gram_mode
from . import rng
from .layout import W_of, b_of, layer_of, matrix_view
from .optimizers import optimizer_update
from .outputs import output_apply, output_layer
from .passes import (
    NN,
    NT,
    TN,
    add_scaled,
    backward_delta,
    bias_activation,
    dropout_backward,
    dropout_forward,
    gemm,
    linear_activation,
    output_delta,
)
from .scalar import like

OK, NONFINITE_COST, NONFINITE_UPDATE = spec.OK, spec.NONFINITE_COST, spec.NONFINITE_UPDATE


class Data(NamedTuple):
    """The training data, C-contiguous, one dtype: for full batches ``X`` ``(n_x, m)`` and
    ``Y`` ``(n_L, m)``; for mini-batches their transposes ``(m, n_x)`` and ``(m, n_L)``, so
    that gathering an example reads one contiguous row (gathering a column of a row-major
    ``(n_x, m)`` array misses the cache on every entry: 10x slower on MNIST shapes).
    ``w`` ``(m,)``: the examples' weights (ones when unweighted)."""

    X: np.ndarray
    Y: np.ndarray
    w: np.ndarray


class Work(NamedTuple):
    """The loop's buffers, allocated once, and ``offsets``, where each layer's part of
    them lies (``layout.layer_offsets`` of their ``capacity`` columns; see :mod:`.layout`)."""

    acts: np.ndarray
    deltas: np.ndarray
    grad: np.ndarray
    costs: np.ndarray
    cols: np.ndarray
    offsets: np.ndarray


class Batches(NamedTuple):
    """Mini-batch buffers: ``X``, ``Y`` flat, for ``capacity x n_x`` and ``n_L x capacity``
    entries, ``w`` ``(capacity,)`` (each batch is gathered there, contiguous: ``X`` as
    rows ``(m_b, n_x)``, ``Y`` as columns ``(n_L, m_b)``), and ``perm`` ``(m,)`` int64, the
    epoch's column order. Passed as ``None`` for full-batch training."""

    X: np.ndarray
    Y: np.ndarray
    w: np.ndarray
    perm: np.ndarray


class Dropout(NamedTuple):
    """Inverted dropout on the hidden layers: ``keep`` ``(L-1,)`` the keep probabilities,
    ``threshold`` ``(L-1,)`` uint64 their integer form (``fastbackprop.rng.keep_threshold``),
    ``seed`` (uint64) the masks' seed. Passed as ``None`` when no layer drops."""

    keep: np.ndarray
    threshold: np.ndarray
    seed: np.uint64


class Hyper(NamedTuple):
    """The hyperparameters, floats in the data's dtype.

    ``batch_size`` 0 means the whole batch (no gather, no shuffle);
    ``time_interval`` 0 means decay every epoch; ``seed`` is a uint64.
    """

    learning_rate: float
    cost_every: int
    beta: float
    beta1: float
    beta2: float
    epsilon: float
    decay_rate: float
    time_interval: int
    batch_size: int
    shuffle: bool
    seed: np.uint64


@jit
def drops(dropout, l):
    """Whether hidden layer ``l`` (from 1) drops units (``dropout`` a :class:`Dropout`)."""
    return dropout.keep[l - 1] < like(dropout.keep, 1.0)


@jit
def forward(theta, X, rows, Y, w, dims, offsets, hidden, output, acts, cols, cost, gram, dropout,
            t):
    """Forward pass: ``acts`` receives ``A1, ..., AL``; returns ``(sum(ZL), loss)``.

    ``X`` holds the examples as columns ``(n_x, m)`` when ``rows`` is
    ``None``, else as rows ``(m, n_x)`` (a gathered mini-batch; the loop
    passes its :class:`Batches`): copying whole rows is 3 to 5 times faster
    than gathering them into columns, and BLAS takes either layout at the
    same speed. ``None``, so that a full-batch fit compiles none of it.
    ``sum(ZL)`` is finite exactly when the cost is. When ``cost`` the
    unscaled loss against ``Y`` (each column's times its weight ``w``) is
    computed in the output layer's pass from ``ZL``, else it is 0 and ``Y``,
    ``w`` are not read. Hidden layers that drop units (``dropout``) do so
    with the masks of update ``t``; ``gram``, ``dropout`` are ``None`` when
    unused. (The output layer stands outside the loop
    over hidden layers on purpose: with the cost's loop inside that loop,
    LLVM generated code 4x slower for it.)
    """
    L = dims.size - 1
    m = X.shape[1] if rows is None else X.shape[0]
    A_prev = X
    for l in range(1, L):
        A = layer_of(acts, dims, offsets, l, m)
        b = b_of(theta, dims, offsets, l)
        if gram is not None and l == 1:
            gram_mode.W1X(theta, dims, offsets, gram, A)
            bias_activation(A, b, hidden)
        elif rows is not None and l == 1:
            gemm(W_of(theta, dims, offsets, l), X, A, NT)  # W1 X^T
            bias_activation(A, b, hidden)
        else:
            linear_activation(W_of(theta, dims, offsets, l), A_prev, b, hidden, A)
        if dropout is not None and drops(dropout, l):
            dropout_forward(A, dropout.keep[l - 1], dropout.threshold[l - 1],
                            rng.layer_key(dropout.seed, t, l))
        A_prev = A
    AL = layer_of(acts, dims, offsets, L, m)
    bL = b_of(theta, dims, offsets, L)
    if gram is not None and L == 1:
        gram_mode.W1X(theta, dims, offsets, gram, AL)
        return output_apply(output, AL, bL, Y, w, cost, cols)
    if rows is not None and L == 1:
        gemm(W_of(theta, dims, offsets, L), X, AL, NT)
        return output_apply(output, AL, bL, Y, w, cost, cols)
    return output_layer(output, W_of(theta, dims, offsets, L), A_prev, bL, Y, w, AL, cost,
                        cols)


@jit
def backward(theta, X, rows, Y, w, dims, offsets, hidden, acts, deltas, grad, gram, l2, dropout,
             t):
    """Backward pass from ``dZ_L = (A_L - Y) * w``: raw ``dW``, ``db`` into ``grad``.

    ``X``, ``rows`` as in :func:`forward`.
    Layers that dropped units in the forward pass (update ``t``) mask
    ``dA`` with the same masks; ``l2`` (``None`` for none) adds ``l2 W``
    to each raw ``dW`` (``(l2 / m) W`` once divided by ``m``). In Gram mode ``dZ1`` is written
    to ``D``'s slot of ``grad`` and ``dW1`` is not computed (its slot stays 0).
    """
    L = dims.size - 1
    m = X.shape[1] if rows is None else X.shape[0]
    if gram is not None and L == 1:
        dZ = gram_mode.D_of(grad, dims, offsets, m)
    else:
        dZ = layer_of(deltas, dims, offsets, L, m)
    output_delta(layer_of(acts, dims, offsets, L, m), Y, w, dZ, b_of(grad, dims, offsets, L))
    for l in range(L, 0, -1):
        A_prev = X if l == 1 else layer_of(acts, dims, offsets, l - 1, m)
        if gram is None or l != 1:
            dW = W_of(grad, dims, offsets, l)
            if rows is not None and l == 1:
                gemm(dZ, X, dW, NN)  # dZ1 X, X as rows
            else:
                gemm(dZ, A_prev, dW, NT)
            if l2 is not None:
                add_scaled(dW, W_of(theta, dims, offsets, l), l2)
        if l > 1:
            if gram is not None and l == 2:
                dZ_prev = gram_mode.D_of(grad, dims, offsets, m)
            else:
                dZ_prev = layer_of(deltas, dims, offsets, l - 1, m)
            W = W_of(theta, dims, offsets, l)
            db_prev = b_of(grad, dims, offsets, l - 1)
            if dropout is not None and drops(dropout, l - 1):
                gemm(W, dZ, dZ_prev, TN)
                dropout_backward(dZ_prev, A_prev, hidden, db_prev, dropout.keep[l - 2],
                                 dropout.threshold[l - 2], rng.layer_key(dropout.seed, t, l - 1))
            else:
                backward_delta(W, dZ, A_prev, hidden, dZ_prev, db_prev)
            dZ = dZ_prev


@jit
def squared_norm_of_weights(theta, dims, offsets):
    """``sum_l ||W{l}||_F^2`` (the biases left out)."""
    total = like(theta, 0.0)
    for l in range(1, dims.size):
        start = offsets[l - 1, 0]
        for k in range(start, start + dims[l] * dims[l - 1]):
            total += theta[k] * theta[k]
    return total


@jit
def learning_rate_at(hyper, epoch):
    """``alpha0 / (1 + decay_rate * k)``, ``k`` the epoch or ``floor(epoch / time_interval)``."""
    k = epoch if hyper.time_interval == 0 else epoch // hyper.time_interval
    one = like(hyper.learning_rate, 1.0)
    return hyper.learning_rate / (one + hyper.decay_rate * like(hyper.learning_rate, k))


@jit
def gather(rows, perm, first, out):
    """``out[:, j] = rows[perm[first + j], :]`` for the ``out.shape[1]`` columns of a batch.

    ``rows`` holds one example per row (the transposed data), so each read
    is contiguous; the batch ``out`` ``(n, width)`` is small enough to stay
    in cache while its columns are written.
    """
    n, width = out.shape
    for j in range(width):
        row = rows[perm[first + j]]
        for i in range(n):
            out[i, j] = row[i]


@jit
def gather_rows(rows, perm, first, out):
    """``out[j] = rows[perm[first + j]]`` for the ``out.shape[0]`` rows of a batch: whole
    contiguous rows copied, in the order of ``perm``."""
    width, n = out.shape
    for j in range(width):
        row = rows[perm[first + j]]
        for i in range(n):
            out[j, i] = row[i]


@jit
def batch_view(buffer, rows, width):
    """The first ``rows x width`` entries of a flat buffer as a C-contiguous ``(rows, width)``."""
    return matrix_view(buffer, 0, rows, width)


@jit
def copy_into(out, source):
    """``out[:] = source`` for two flat arrays of one size."""
    for i in range(source.size):
        out[i] = source[i]


@jit(entry=True)
def train(current, other, data, batches, work, hyper, gram, l2, dropout, dims, hidden, output,
          optimizer, start, n_epochs, t, have_previous):
    """Run epochs ``start, ..., start + n_epochs - 1``; ``t`` updates were made before.

    current: ``[theta | optimiser state]`` after ``t`` updates (and Gram
    mode's ``D`` after ``theta``); other: the state after ``t - 1`` updates
    when ``have_previous``, else scratch, same size; dims ``[n_x, ..., n_L]`` (int64); hidden,
    output, optimizer: codes of ``spec``'s tables (constants). ``batches``
    (:class:`Batches`), ``gram`` (:class:`~.gram.Gram`), ``l2`` (a float)
    and ``dropout`` (:class:`Dropout`) are ``None`` when unused: full
    batches, no Gram mode, no L2, no dropout; their code is then not compiled.

    Each epoch ``e`` takes the learning rate :func:`learning_rate_at`, puts
    the columns in the order of ``fastbackprop.rng.permutation(m, seed, e)``
    (unless ``shuffle`` is off), and cuts them in order into batches of
    ``batch_size`` columns (the last keeps the rest), each gathered into
    ``batches``; without ``batches`` an epoch is one full-batch step on
    ``X`` itself. Each batch: forward (dropout with the masks of the
    update's number), backward from ``dZ_L = (A_L - Y) * w`` (``l2``
    added to ``dW``), and the optimiser's fused update with the batch's
    own ``1/m_b``. ``work.costs[e // cost_every]`` receives, for epochs
    with ``e % cost_every == 0``, the sum of the batches' losses (each
    before its update, with ``l2 / 2 sum ||W||^2`` each) over ``m``.

    The updates are made in place in ``current``. ``other`` keeps what a
    failure needs: until the first update, the previous state (a
    non-finite cost of ``current`` steps back to it); then a copy of the
    state the call started from, the checkpoint; and from before the
    call's last update, the state before it, which ``other`` holds after
    the call. A failure after the first update restores the checkpoint and
    runs the epochs again, replaying the updates up to the last good state
    (the batches, the masks and the arithmetic are those of the first time,
    so the states are too) with nothing recorded or copied. The replay goes
    through the same loop, not a second copy of it: in Numba every level of
    calls and every call site of a large kernel is compiled again, and
    the cold first fit is the first thing a new user waits for.

    Returns ``(status, epochs, updates, failed_at, in_other)``: ``epochs``
    completed; ``updates`` the net number of updates from ``current`` to
    the result (possibly -1: a non-finite cost steps back to the previous
    parameters), which lies in ``other`` when ``in_other``; ``failed_at``
    the epoch that went wrong, or -1.
    """
    literally(hidden)  # compile only the activation, output layer and optimiser in use
    literally(output)
    literally(optimizer)
    X, Y = data.X, data.Y
    m = data.w.size
    offsets = work.offsets
    width = m if batches is None else hyper.batch_size
    n_batches = (m + width - 1) // width
    inv_m = like(hyper.learning_rate, 1.0) / like(hyper.learning_rate, m)
    planned = n_epochs * n_batches  # the call's updates
    if gram is not None:
        gram_mode.start(current, X, dims, offsets, gram, work.grad)
    status, epochs, failed_at, in_other = OK, 0, -1, False  # of the first attempt
    limit = planned  # the updates to make: all, or those to replay
    for attempt in range(2):  # the second only replays
        replaying = attempt > 0
        done = completed = 0
        failed = OK
        for e in range(start, start + n_epochs):
            if done == limit:
                break
            alpha = learning_rate_at(hyper, e)
            record = e % hyper.cost_every == 0 and not replaying
            if batches is not None and hyper.shuffle:
                rng.permute(batches.perm, hyper.seed, e)
            loss = like(alpha, 0.0)
            for k in range(min(n_batches, limit - done)):
                if batches is None:
                    X_b, Y_b, w_b = X, Y, data.w
                else:  # X_b as rows (see forward), Y_b as columns
                    first = k * width
                    m_b = min(width, m - first)
                    X_b = batch_view(batches.X, m_b, X.shape[1])
                    Y_b = batch_view(batches.Y, Y.shape[1], m_b)
                    w_b = batches.w[:m_b]
                    gather_rows(X, batches.perm, first, X_b)
                    gather(Y, batches.perm, first, Y_b)
                    for j in range(m_b):
                        w_b[j] = data.w[batches.perm[first + j]]
                update = t + done + 1
                ZL_sum, batch_loss = forward(current, X_b, batches, Y_b, w_b, dims, offsets,
                                             hidden, output, work.acts, work.cols, record, gram,
                                             dropout, update)
                loss += batch_loss
                if l2 is not None and record:
                    half = like(alpha, 0.5)
                    loss += half * l2 * squared_norm_of_weights(current, dims, offsets)
                if not np.isfinite(ZL_sum):
                    failed = NONFINITE_COST
                    break
                backward(current, X_b, batches, Y_b, w_b, dims, offsets, hidden, work.acts,
                         work.deltas, work.grad, gram, l2, dropout, update)
                if not replaying and (done == 0 or done == planned - 1):
                    copy_into(other, current)  # the checkpoint; the state before the last
                step = like(alpha, 1.0) / like(alpha, w_b.size)
                if not np.isfinite(optimizer_update(optimizer, current, work.grad, step, alpha,
                                                    hyper, update)):
                    failed = NONFINITE_UPDATE
                    break
                done += 1
            if record:
                work.costs[e // hyper.cost_every] = loss * inv_m
            if failed != OK:
                break
            completed += 1
        if replaying:
            break
        status, epochs = failed, completed
        failed_at = e if failed != OK else -1
        limit = -1  # the updates to make again from the checkpoint, if any
        if status == NONFINITE_COST and done > 0:
            limit = done - 1  # the cost of the state after the last update
        elif status == NONFINITE_COST and have_previous:
            done, in_other = -1, True  # the call's first cost: the previous call's state
        elif status == NONFINITE_UPDATE and done == planned - 1:
            in_other = True  # the call's last update: other holds the state before it
        elif status == NONFINITE_UPDATE:
            limit = done
        if limit < 0:
            break
        copy_into(current, other)
    if gram is not None:
        gram_mode.finish(other if in_other else current, X, dims, offsets, work.grad)
    return status, epochs, done, failed_at, in_other


@jit(entry=True)
def gradient_sums(theta, X, Y, w, dims, offsets, hidden, output, acts, deltas, grad, cols):
    """One forward and backward pass over all columns of ``X``, ``Y``: raw sums, no update.

    ``grad`` (``theta``'s layout) receives ``dZ A_prev^T`` and ``sum(dZ)``
    summed over the columns (not divided by ``m``); returns ``(sum(ZL),
    loss)``, the loss summed over the columns, each column's times its weight
    ``w`` ``(m,)``. ``acts``, ``deltas`` hold slots of ``capacity >= m``
    columns, ``sum(n_l) capacity`` entries, and ``offsets`` is
    ``layout.layer_offsets(dims, capacity)``; ``cols`` is ``(4, >= m)``.
    (Every array comes from Python: one made here would compile ``np.empty``
    and its allocator into the entry.) The block step of data-parallel
    training: the sums of blocks add up to the whole batch's.
    """
    literally(hidden)
    literally(output)
    total, loss = forward(theta, X, None, Y, w, dims, offsets, hidden, output, acts, cols, True,
                          None, None, 0)
    backward(theta, X, None, Y, w, dims, offsets, hidden, acts, deltas, grad, None, None, None,
             0)
    return total, loss


@jit(entry=True)
def predict(theta, X, dims, offsets, hidden, output, acts, cols):
    """``A_L`` of the network on ``X`` ``(n_x, m)``, into ``acts``'s last slot; no cost.

    ``acts`` holds ``sum(n_l) m`` entries, ``cols`` ``(4, m)`` (scratch); ``offsets`` is
    ``layout.layer_offsets(dims, m)``, or of any capacity ``>= m`` that ``acts`` holds.
    """
    literally(hidden)
    literally(output)
    forward(theta, X, None, X, cols[0], dims, offsets, hidden, output, acts, cols,
            False, None, None, 0)  # no cost: Y, w (X and a row of cols here) are not read
