"""The whole training loop in one compiled call, split by job.

State lives in flat, preallocated buffers (see :mod:`.layout`), so one
compiled function serves every depth and nothing is allocated per
iteration. The jobs, each a kernel of its own taking a few named tuples:

:func:`gather_batch`  the next batch (shuffled at an epoch's first): its first-layer input (one of
                      :mod:`.first_layer`'s forms), labels and weights;
:func:`forward`, :func:`backward`  the passes over one batch;
:func:`step`          forward, cost, backward and the optimiser's update of
                      one batch; returns its status and loss;
:func:`train`         the epoch driver: the schedule, the shuffles, the
                      cost record, the checkpoint and the replay after a
                      failure (Python calls it).

The named tuples: :class:`Data` (the examples), :class:`Work` (the
buffers), :class:`Hyper` (the numbers), :class:`Parts` (the optional
parts: mini-batches, Gram mode, L2, dropout), :class:`Run` (the epochs to
make and the counters) and :class:`Batch` (one batch, made inside).

The hidden activation, the output layer and the optimiser are
compile-time constants (``literally`` in the entry points; Numba passes the
constant types on to the kernels they call, which need no ``literally`` of
their own and so are not compiled twice), and the optional parts are
``None`` when unused: a kernel that takes one as an argument tests it with
``is None``, which Numba prunes before it types the branch, so a model
compiles only the code it runs (a full-batch fit with neither L2 nor
dropout compiles none of them; the cold first fit is the first thing a new
user waits for). Only kernels that take a part as an argument of their own
test it (a test on a field of :class:`Parts` would not be pruned).

The updates are made in place in one buffer (``current``); a second
(``other``) keeps the state a failed step goes back to (see :func:`train`).
Subnormal numbers are flushed to zero while the loop runs (:mod:`.fpenv`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import literally

from .. import spec
from .._jit import jit, overload_kernel
from . import first_layer, fpenv
from . import gram as gram_mode
from . import rng
from .layout import W_of, b_of, layer_of, layer_offsets, matrix_view, n_parameters
from .optimizers import optimizer_update
from .outputs import output_layer
from .passes import (
    NT,
    TN,
    add_scaled,
    backward_delta,
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
    """The loop's buffers, allocated once: ``acts`` and ``deltas`` (slots of ``n_l x
    capacity``), ``grad`` (raw gradients ``dZ A_prev^T``, ``sum(dZ)`` in ``theta``'s
    layout), ``costs`` (one per recorded epoch), ``cols`` (per-column scratch of the output
    pass, ``(4, capacity)``), and ``offsets``, where each layer's part of them lies
    (``layout.layer_offsets`` of their ``capacity`` columns; see :mod:`.layout`)."""

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
    epoch's column order. ``None`` for full-batch training."""

    X: np.ndarray
    Y: np.ndarray
    w: np.ndarray
    perm: np.ndarray


class Dropout(NamedTuple):
    """Inverted dropout on the hidden layers: ``keep`` ``(L-1,)`` the keep probabilities,
    ``threshold`` ``(L-1,)`` uint64 their integer form (``fastbackprop.rng.keep_threshold``),
    ``seed`` (uint64) the masks' seed. ``None`` when no layer drops."""

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


class Parts(NamedTuple):
    """The optional parts, each ``None`` when unused: ``batches`` (:class:`Batches`),
    ``gram`` (:class:`~.gram.Gram`), ``l2`` (a float of the data's dtype), ``dropout``
    (:class:`Dropout`)."""

    batches: object
    gram: object
    l2: object
    dropout: object


class Run(NamedTuple):
    """What one call of :func:`train` does: epochs ``start, ..., start + n_epochs - 1``
    after ``t`` updates; ``have_previous``: ``other`` holds the state before update ``t``."""

    start: int
    n_epochs: int
    t: int
    have_previous: bool


class Batch(NamedTuple):
    """One batch: ``input``, its examples in a form of :mod:`.first_layer`; ``Y`` ``(n_L,
    m_b)`` its labels (columns); ``w`` ``(m_b,)`` their weights."""

    input: object
    Y: np.ndarray
    w: np.ndarray


def workspace(dims, capacity, dtype, n_grad=None):
    """A :class:`Work` for batches of up to ``capacity`` columns of the network
    ``dims``: activation and delta slots, a gradient of ``n_grad`` entries (default the
    parameters'), ``(4, capacity)`` column scratch, the layer offsets, and no costs yet."""
    acts = np.empty(int(np.sum(dims[1:])) * capacity, dtype=dtype)
    n_grad = n_parameters(dims) if n_grad is None else n_grad
    return Work(acts, np.empty_like(acts), np.zeros(n_grad, dtype=dtype),
                np.full(0, np.nan, dtype=dtype), np.empty((4, capacity), dtype=dtype),
                layer_offsets(dims, capacity))


# ---------------------------------------------------------------------------
# The passes over one batch
# ---------------------------------------------------------------------------


@jit
def drops(dropout, l):
    """Whether hidden layer ``l`` (from 1) drops units (``dropout`` a :class:`Dropout`)."""
    return dropout.keep[l - 1] < like(dropout.keep, 1.0)


@jit
def forward(theta, batch, dims, work, hidden, output, cost, dropout, t):
    """Forward pass: ``work.acts`` receives ``A1, ..., AL``; returns ``(sum(ZL), loss)``.

    ``sum(ZL)`` is finite exactly when the cost is. When ``cost`` the
    unscaled loss against ``batch.Y`` (each column's times its weight
    ``batch.w``) is computed in the output layer's pass from ``ZL``, else it
    is 0 and ``Y``, ``w`` are not read. Hidden layers that drop units
    (``dropout``) do so with the masks of update ``t``. (The output layer
    stands outside the loop over hidden layers on purpose: with the cost's
    loop inside that loop, LLVM generated code 4x slower for it.)
    """
    offsets = work.offsets
    L = dims.size - 1
    inp = batch.input
    m = batch.w.size
    AL = layer_of(work.acts, dims, offsets, L, m)
    if L == 1:
        return first_layer.output(inp, theta, dims, offsets, output, batch.Y, batch.w, AL, cost,
                                  work.cols)
    A_prev = layer_of(work.acts, dims, offsets, first_layer.FIRST, m)
    first_layer.hidden(inp, theta, dims, offsets, hidden, A_prev)
    for l in range(1, L):
        if l > 1:
            A = layer_of(work.acts, dims, offsets, l, m)
            linear_activation(W_of(theta, dims, offsets, l), A_prev,
                              b_of(theta, dims, offsets, l), hidden, A)
            A_prev = A
        if dropout is not None and drops(dropout, l):
            dropout_forward(A_prev, dropout.keep[l - 1], dropout.threshold[l - 1],
                            rng.layer_key(dropout.seed, t, l))
    return output_layer(output, W_of(theta, dims, offsets, L), A_prev,
                        b_of(theta, dims, offsets, L), batch.Y, batch.w, AL, cost, work.cols)


@jit
def backward(theta, batch, dims, work, hidden, l2, dropout, t):
    """Backward pass from ``dZ_L = (A_L - Y) * w``: raw ``dW``, ``db`` into ``work.grad``.

    Layers that dropped units in the forward pass (update ``t``) mask
    ``dA`` with the same masks; ``l2`` (``None`` for none) adds ``l2 W`` to
    each raw ``dW`` (``(l2 / m) W`` once divided by ``m``). The first
    layer's gradient is :mod:`.first_layer`'s (in Gram mode ``dZ1`` is
    ``D``'s gradient and ``dW1`` is not formed: its slot stays 0).
    """
    offsets, grad = work.offsets, work.grad
    L = dims.size - 1
    inp = batch.input
    m = batch.w.size
    if L == 1:
        dZ = first_layer.delta(inp, work.deltas, grad, dims, offsets, m)
    else:
        dZ = layer_of(work.deltas, dims, offsets, L, m)
    output_delta(layer_of(work.acts, dims, offsets, L, m), batch.Y, batch.w, dZ,
                 b_of(grad, dims, offsets, L))
    for l in range(L, 1, -1):
        A_prev = layer_of(work.acts, dims, offsets, l - 1, m)
        dW = W_of(grad, dims, offsets, l)
        gemm(dZ, A_prev, dW, NT)
        W = W_of(theta, dims, offsets, l)
        if l2 is not None:
            add_scaled(dW, W, l2)
        if l == 2:
            dZ_prev = first_layer.delta(inp, work.deltas, grad, dims, offsets, m)
        else:
            dZ_prev = layer_of(work.deltas, dims, offsets, l - 1, m)
        db_prev = b_of(grad, dims, offsets, l - 1)
        if dropout is not None and drops(dropout, l - 1):  # D / keep where layer l-1 dropped
            gemm(W, dZ, dZ_prev, TN)
            dropout_backward(dZ_prev, A_prev, hidden, db_prev, dropout.keep[l - 2],
                             dropout.threshold[l - 2], rng.layer_key(dropout.seed, t, l - 1))
        else:
            backward_delta(W, dZ, A_prev, hidden, dZ_prev, db_prev)
        dZ = dZ_prev
    first_layer.weight_gradient(inp, dZ, theta, grad, dims, offsets, l2)


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
def step(current, other, batch, dims, work, hyper, l2, dropout, hidden, output, optimizer, alpha,
         t, cost, checkpoint):
    """One update from one batch: forward, cost, backward, the optimiser's fused update.

    ``current`` ``[theta | optimiser state]`` is updated in place; when
    ``checkpoint``, ``other`` receives a copy of it first (after the passes,
    before the update). ``t`` is this update's number (dropout's masks,
    Adam's corrections). The gradient is divided by the batch's own number
    of columns. Returns ``(status, loss)``: the batch's unscaled loss (with
    ``(l2 / 2) sum ||W||^2`` when ``cost``); status ``NONFINITE_COST`` when
    the cost of ``current`` is not finite (nothing changed), ``NONFINITE_UPDATE``
    when the update made it so (``current`` then holds it).
    """
    ZL_sum, loss = forward(current, batch, dims, work, hidden, output, cost, dropout, t)
    if cost and l2 is not None:
        loss += like(loss, 0.5) * l2 * squared_norm_of_weights(current, dims, work.offsets)
    if not np.isfinite(ZL_sum):
        return NONFINITE_COST, loss
    backward(current, batch, dims, work, hidden, l2, dropout, t)
    if checkpoint:
        copy_into(other, current)
    inv_m = like(alpha, 1.0) / like(alpha, batch.w.size)
    if not np.isfinite(optimizer_update(optimizer, current, work.grad, inv_m, alpha, hyper, t)):
        return NONFINITE_UPDATE, loss
    return OK, loss


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


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


def gather_batch(data, batches, gram, hyper, epoch, first, m_b):
    """The batch of columns ``first, ..., first + m_b - 1`` of the epoch's order, a :class:`Batch`.

    Full batches (``batches`` None): the data themselves, as
    :class:`.first_layer.Columns` (or Gram mode's input when ``gram`` is
    set). Mini-batches: gathered into ``batches``' buffers, ``X`` as
    :class:`.first_layer.Rows`, ``Y`` as columns; the epoch's first batch
    (``first`` 0) puts the columns in the order of ``rng.permutation(m, seed,
    epoch)`` first (with ``shuffle``).
    """
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(gather_batch)
def _gather_batch(data, batches, gram, hyper, epoch, first, m_b):
    from numba import types

    if isinstance(batches, types.NoneType):
        if isinstance(gram, types.NoneType):
            return lambda data, batches, gram, hyper, epoch, first, m_b: Batch(
                first_layer.Columns(data.X), data.Y, data.w)
        return lambda data, batches, gram, hyper, epoch, first, m_b: Batch(gram, data.Y, data.w)

    def gathered(data, batches, gram, hyper, epoch, first, m_b):
        if first == 0 and hyper.shuffle:
            rng.permute(batches.perm, hyper.seed, epoch)
        X_b = batch_view(batches.X, m_b, data.X.shape[1])
        Y_b = batch_view(batches.Y, data.Y.shape[1], m_b)
        w_b = batches.w[:m_b]
        gather_rows(data.X, batches.perm, first, X_b)
        gather(data.Y, batches.perm, first, Y_b)
        for j in range(m_b):
            w_b[j] = data.w[batches.perm[first + j]]
        return Batch(first_layer.Rows(X_b), Y_b, w_b)
    return gathered


@jit
def copy_into(out, source):
    """``out[:] = source`` for two flat arrays of one size."""
    for i in range(source.size):
        out[i] = source[i]


# ---------------------------------------------------------------------------
# The epoch driver
# ---------------------------------------------------------------------------


@jit
def start_run(gram, current, data, dims, work):
    """Before a run: Gram mode's ``P0`` (nothing without Gram mode)."""
    if gram is not None:
        gram_mode.start(current, data.X, dims, work.offsets, gram, work.grad)


@jit
def finish_run(gram, theta, data, dims, work):
    """After a run: Gram mode's ``W1 := W1 + D X^T`` (nothing without Gram mode)."""
    if gram is not None:
        gram_mode.finish(theta, data.X, dims, work.offsets, work.grad)


@jit(entry=True)
def train(current, other, data, work, hyper, parts, dims, hidden, output, optimizer, run):
    """Run epochs ``run.start, ..., run.start + run.n_epochs - 1``; ``run.t`` updates were
    made before.

    current: ``[theta | optimiser state]`` after ``run.t`` updates (and Gram
    mode's ``D`` after ``theta``); other: the state after ``run.t - 1``
    updates when ``run.have_previous``, else scratch, same size; dims ``[n_x,
    ..., n_L]`` (int64); hidden, output, optimizer: codes of ``spec``'s
    tables (constants); ``parts``: the optional parts (:class:`Parts`),
    whose code is compiled only when present.

    Each epoch ``e`` takes the learning rate :func:`learning_rate_at`, puts
    the columns in the order of ``fastbackprop.rng.permutation(m, seed, e)``
    (mini-batches with ``shuffle``), and cuts them in order into batches of
    ``batch_size`` columns (the last keeps the rest), each gathered by
    :func:`gather_batch`; without mini-batches an epoch is one full-batch
    step on ``X`` itself. Each batch is one :func:`step` with the batch's own
    ``1/m_b``. ``work.costs[e // cost_every]`` receives, for epochs with
    ``e % cost_every == 0``, the sum of the batches' losses (each before its
    update, with ``l2 / 2 sum ||W||^2`` each) over ``m``.

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
    control = fpenv.flush_subnormals()  # restored before returning
    m = data.w.size
    width = m if hyper.batch_size == 0 else hyper.batch_size
    n_batches = (m + width - 1) // width
    inv_m = like(hyper.learning_rate, 1.0) / like(hyper.learning_rate, m)
    planned = run.n_epochs * n_batches  # the call's updates
    start_run(parts.gram, current, data, dims, work)
    status, epochs, failed_at, in_other = OK, 0, -1, False  # of the first attempt
    limit = planned  # the updates to make: all, or those to replay
    for attempt in range(2):  # the second only replays
        replaying = attempt > 0
        done = completed = 0
        failed = OK
        for e in range(run.start, run.start + run.n_epochs):
            if done == limit:
                break
            alpha = learning_rate_at(hyper, e)
            record = e % hyper.cost_every == 0 and not replaying
            loss = like(alpha, 0.0)
            for k in range(min(n_batches, limit - done)):
                first = k * width
                batch = gather_batch(data, parts.batches, parts.gram, hyper, e, first,
                                     min(width, m - first))
                checkpoint = not replaying and (done == 0 or done == planned - 1)
                failed, batch_loss = step(current, other, batch, dims, work, hyper, parts.l2,
                                          parts.dropout, hidden, output, optimizer, alpha,
                                          run.t + done + 1, record, checkpoint)
                loss += batch_loss
                if failed != OK:
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
        elif status == NONFINITE_COST and run.have_previous:
            done, in_other = -1, True  # the call's first cost: the previous call's state
        elif status == NONFINITE_UPDATE and done == planned - 1:
            in_other = True  # the call's last update: other holds the state before it
        elif status == NONFINITE_UPDATE:
            limit = done
        if limit < 0:
            break
        copy_into(current, other)
    finish_run(parts.gram, other if in_other else current, data, dims, work)
    fpenv.restore(control)
    return status, epochs, done, failed_at, in_other


@jit(entry=True)
def gradient_sums(theta, X, Y, w, dims, hidden, output, work):
    """One forward and backward pass over all columns of ``X``, ``Y``: raw sums, no update.

    ``work.grad`` (``theta``'s layout) receives ``dZ A_prev^T`` and
    ``sum(dZ)`` summed over the columns (not divided by ``m``); returns
    ``(sum(ZL), loss)``, the loss summed over the columns, each column's
    times its weight ``w`` ``(m,)``. ``work`` (:class:`Work`; ``costs`` is
    not used) holds slots of ``capacity >= m`` columns. (Every array comes
    from Python: one made here would compile ``np.empty`` and its allocator
    into the entry.) The block step of data-parallel training: the sums of
    blocks add up to the whole batch's.
    """
    literally(hidden)
    literally(output)
    control = fpenv.flush_subnormals()
    batch = Batch(first_layer.Columns(X), Y, w)
    total, loss = forward(theta, batch, dims, work, hidden, output, True, None, 0)
    backward(theta, batch, dims, work, hidden, None, None, 0)
    fpenv.restore(control)
    return total, loss


@jit(entry=True)
def predict(theta, inp, m, dims, hidden, output, work):
    """``A_L`` of the network on the ``m`` examples ``inp`` (:class:`.first_layer.Columns`:
    ``X`` ``(n_x, m)``, or :class:`.first_layer.Rows`: ``X`` ``(m, n_x)``), into
    ``work.acts``'s last slot; no cost.

    ``work`` (:class:`Work`; only ``acts``, ``cols`` ``(4, >= m)`` and ``offsets`` are
    used) holds slots of ``capacity >= m`` columns.
    """
    literally(hidden)
    literally(output)
    batch = Batch(inp, work.cols, work.cols[0, :m])  # no cost: Y, w are not read
    forward(theta, batch, dims, work, hidden, output, False, None, 0)
