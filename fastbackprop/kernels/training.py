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
from . import batch_norm as bn_kernels
from . import clock as clocks
from . import first_layer, fpenv, sync
from . import sparse as sparse_kernels
from . import gram as gram_mode
from . import rng
from .layout import W_of, b_of, layer_of, layer_offsets, matrix_view, n_parameters
from .optimizers import optimizer_update
from .outputs import output_layer
from .passes import (
    NN,
    NT,
    TN,
    bias_activation,
    backward_delta,
    dropout_backward,
    dropout_forward,
    gemm,
    linear_activation,
    output_delta,
)
from .scalar import like
from .units import passes as unit_passes

OK, NONFINITE_COST, NONFINITE_UPDATE, ABORTED = (spec.OK, spec.NONFINITE_COST,
                                               spec.NONFINITE_UPDATE, spec.ABORTED)


class Data(NamedTuple):
    """The training data, C-contiguous, one dtype: for full batches ``X`` ``(n_x, m)`` and
    ``Y`` ``(n_L, m)``; for mini-batches their transposes ``(m, n_x)`` and ``(m, n_L)``, so
    that gathering an example reads one contiguous row (gathering a column of a row-major
    ``(n_x, m)`` array misses the cache on every entry: 10x slower on MNIST shapes).
    ``w`` ``(m,)``: the examples' weights (ones when unweighted)."""

    X: np.ndarray
    Y: np.ndarray
    w: np.ndarray


class RowData(NamedTuple):
    """The training data as rows, C-contiguous, one dtype: ``X`` ``(m, n_x)``, ``Y`` ``(m, n_L)``,
    ``w`` ``(m,)``. What threads share a batch of (a thread's rows of it are contiguous),
    and what mini-batches gather from (:class:`Data` holds columns, for one thread's full
    batches and Gram mode)."""

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
    """One thread's batch buffers: ``X``, ``Y`` flat, for ``capacity x n_x`` and ``n_L x
    capacity`` entries, ``w`` ``(capacity,)`` (its share of each batch is gathered there,
    contiguous: ``X`` as rows ``(m_t, n_x)``, ``Y`` as columns ``(n_L, m_t)``), and ``perm``
    ``(m,)`` int64, the epoch's column order (each thread draws it). ``None`` when the data
    are :class:`Data` (columns, one thread, full batches)."""

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
    """The optional parts, each ``None`` when unused: ``gram`` (:class:`~.gram.Gram`, one
    thread only), ``l2`` (a float of the data's dtype), ``dropout`` (:class:`Dropout`),
    ``batch_norm`` (:class:`~.batch_norm.BatchNorm`, one thread only), ``clock`` (a
    :mod:`.clock` array: each thread's cycles per phase of a step, for ``tools/``)."""

    gram: object
    l2: object
    dropout: object
    batch_norm: object = None
    clock: object = None


class Run(NamedTuple):
    """What one call of :func:`train` does: epochs ``start, ..., start + n_epochs - 1``
    after ``t`` updates; ``have_previous``: ``other`` holds the state before update ``t``.

    Gram mode's state lasts from call to call: ``gram_start`` computes ``P0`` first (the
    first call, and the first after a fold), ``gram_fold`` folds ``D`` into ``W1`` in both
    buffers last (when the parameters are read: :mod:`.gram`). Without Gram mode both
    do nothing."""

    start: int
    n_epochs: int
    t: int
    have_previous: bool
    gram_start: bool = True
    gram_fold: bool = True


class Batch(NamedTuple):
    """One thread's share of a batch: ``input``, its examples in a form of
    :mod:`.first_layer`; ``Y`` ``(n_L, m_t)`` its labels (columns); ``w`` ``(m_t,)`` their
    weights; ``first``, where its columns start in the batch (dropout's masks); ``m``, the
    whole batch's columns (the gradient's ``1/m``)."""

    input: object
    Y: np.ndarray
    w: np.ndarray
    first: int
    m: int


class Own(NamedTuple):
    """A thread's own buffers: ``work`` (:class:`Work`, its ``grad`` the thread's row of
    :attr:`Team.grads`), ``batches`` (:class:`Batches`, or None with :class:`Data`) and
    ``units`` (its :class:`.units.Units` when the step is split by hidden units, else
    None: the batch's columns are split)."""

    work: object
    batches: object
    units: object = None


class Team(NamedTuple):
    """What the ``P`` threads of a fit share (one thread is a team of one).

    ``grads`` ``(P, >= n)``: each thread's raw gradient in its row (rows on cache lines of
    their own); the update of each share adds them up (:func:`partner_row`). ``values`` ``(P,
    16)``: what each thread reports at the barriers (``sum(Z_L)``, its loss, its share of
    ``||W||^2``, its update's sum). ``spans`` ``(P, R, 2)`` int64: thread ``p``'s share of
    the layout, which it sums and updates: the entries ``lo .. hi - 1`` of each span ``(lo,
    hi) = spans[p, r]`` (empty spans ``lo == hi`` pad a share of fewer). ``sync``: the
    barrier's state (:func:`.sync.new_barrier`), None for a team of one."""

    grads: np.ndarray
    values: np.ndarray
    spans: np.ndarray
    sync: np.ndarray


def workspace(dims, capacity, dtype, n_grad=None, kinds=None):
    """A :class:`Work` for batches of up to ``capacity`` columns of the network
    ``dims`` (each layer's ``kinds``, default dense): activation and delta slots, a
    gradient of ``n_grad`` entries (default the parameters'), ``(4, capacity)`` column
    scratch, the layer offsets, and no costs yet."""
    acts = np.empty(int(np.sum(dims[1:])) * capacity, dtype=dtype)
    n_grad = n_parameters(dims) if n_grad is None else n_grad
    return Work(acts, np.empty_like(acts), np.zeros(n_grad, dtype=dtype),
                np.full(0, np.nan, dtype=dtype), np.empty((4, capacity), dtype=dtype),
                layer_offsets(dims, capacity, kinds))


# ---------------------------------------------------------------------------
# The passes over one batch
# ---------------------------------------------------------------------------


@jit
def drops(dropout, l):
    """Whether hidden layer ``l`` (from 1) drops units (``dropout`` a :class:`Dropout`)."""
    return dropout.keep[l - 1] < like(dropout.keep, 1.0)


@jit
def forward(theta, batch, dims, work, hidden, output, cost, dropout, t, bn=None):
    """Forward pass: ``work.acts`` receives ``A1, ..., AL``; returns ``(sum(ZL), loss)``.

    Batch-normalised hidden layers (``bn``, a :class:`~.batch_norm.BatchNorm`, or None):
    ``Z = W A_prev`` without a bias, normalised by the batch's statistics and scaled by
    ``gamma`` (:func:`.batch_norm.normalise`), then the activation pass adds ``beta``.

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
    if bn is not None and bn_kernels.normalises(bn, 1):
        first_layer.product(inp, theta, dims, offsets, A_prev)
        bn_kernels.normalise(bn, theta, dims, offsets, first_layer.FIRST, A_prev)
        bias_activation(A_prev, b_of(theta, dims, offsets, first_layer.FIRST), hidden)
    else:
        first_layer.hidden(inp, theta, dims, offsets, hidden, A_prev)
    for l in range(1, L):
        if l > 1:
            A = layer_of(work.acts, dims, offsets, l, m)
            if bn is not None and bn_kernels.normalises(bn, l):
                gemm(W_of(theta, dims, offsets, l), A_prev, A, NN)
                bn_kernels.normalise(bn, theta, dims, offsets, l, A)
                bias_activation(A, b_of(theta, dims, offsets, l), hidden)
            else:
                linear_activation(W_of(theta, dims, offsets, l), A_prev,
                                  b_of(theta, dims, offsets, l), hidden, A)
            A_prev = A
        if dropout is not None and drops(dropout, l):
            dropout_forward(A_prev, dropout.keep[l - 1], dropout.threshold[l - 1],
                            rng.layer_key(dropout.seed, t, l), batch.first)
    return output_layer(output, W_of(theta, dims, offsets, L), A_prev,
                        b_of(theta, dims, offsets, L), batch.Y, batch.w, AL, cost, work.cols)


@jit
def backward(theta, batch, dims, work, hidden, dropout, t, bn=None):
    """Backward pass from ``dZ_L = (A_L - Y) * w``: raw ``dW``, ``db`` into ``work.grad``.

    A batch-normalised layer's ``dZ_tilde`` and its row sum (``beta``'s gradient) come
    from the same fused pass as any layer's ``dZ`` and ``db``; then
    :func:`.batch_norm.backward` forms ``gamma``'s gradient and ``dZ``.

    Layers that dropped units in the forward pass (update ``t``) mask
    ``dA`` with the same masks. The first layer's gradient is
    :mod:`.first_layer`'s (in Gram mode ``dZ1`` is ``D``'s gradient and
    ``dW1`` is not formed: its slot stays 0). L2 is added once the threads'
    gradients are summed (:func:`step`).
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
        if l == 2:
            dZ_prev = first_layer.delta(inp, work.deltas, grad, dims, offsets, m)
        else:
            dZ_prev = layer_of(work.deltas, dims, offsets, l - 1, m)
        db_prev = b_of(grad, dims, offsets, l - 1)
        if dropout is not None and drops(dropout, l - 1):  # D / keep where layer l-1 dropped
            gemm(W, dZ, dZ_prev, TN)
            dropout_backward(dZ_prev, A_prev, hidden, db_prev, dropout.keep[l - 2],
                             dropout.threshold[l - 2], rng.layer_key(dropout.seed, t, l - 1),
                             batch.first)
        else:
            backward_delta(W, dZ, A_prev, hidden, dZ_prev, db_prev)
        if bn is not None and bn_kernels.normalises(bn, l - 1):
            bn_kernels.backward(bn, theta, grad, dims, offsets, l - 1, dZ_prev)
        dZ = dZ_prev
    first_layer.weight_gradient(inp, dZ, grad, dims, offsets)


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
def squared_norm_share(theta, dims, offsets, spans):
    """``sum W^2`` over the weights (not the biases) among the entries of ``spans`` ``(R,
    2)`` (each ``lo .. hi - 1``)."""
    total = like(theta, 0.0)
    for r in range(spans.shape[0]):
        lo, hi = spans[r, 0], spans[r, 1]
        for l in range(1, dims.size):
            start = offsets[l - 1, 0]
            for k in range(max(lo, start), min(hi, start + dims[l] * dims[l - 1])):
                total += theta[k] * theta[k]
    return total


@jit
def add_l2_share(grad, theta, l2, dims, offsets, spans):
    """``dW += l2 W`` over the weights among the entries of ``spans`` ``(R, 2)`` (raw sums)."""
    for r in range(spans.shape[0]):
        lo, hi = spans[r, 0], spans[r, 1]
        for l in range(1, dims.size):
            start = offsets[l - 1, 0]
            for k in range(max(lo, start), min(hi, start + dims[l] * dims[l - 1])):
                grad[k] += l2 * theta[k]


@jit
def copy_share(out, source, n, spans):
    """``out[j n + i] = source[j n + i]`` for ``i`` in every span ``lo .. hi - 1`` of ``spans``
    ``(R, 2)`` and every part ``j`` of a ``[theta | state ...]`` buffer (a thread's share of
    a checkpoint)."""
    for j in range(source.size // n):
        for r in range(spans.shape[0]):
            for i in range(j * n + spans[r, 0], j * n + spans[r, 1]):
                out[i] = source[i]


def partner_row(units, sync, grads, tid, spans, n):
    """The second row of raw sums thread ``tid``'s update adds to its own over its share
    (``spans`` ``(R, 2)``) of ``grads`` ``(P, >= n)`` as it reads them (:func:`.passes.raw`),
    saving a pass over the share: its partner's (thread 1's for thread 0, else thread
    0's), after every other row but the partner's was added into the thread's own, in the
    threads' order. None for a team of one (``sync`` None: nothing compiled for it) and for
    a step split by units (``units`` not None: each thread's gradients are all in its row).

    For two threads the sums are those of ``grads[0] + grads[1]`` (addition commutes). A
    row is written only by its thread, so the lines of a gradient that cross between the
    cores are only read there."""
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(partner_row)
def _partner_row(units, sync, grads, tid, spans, n):
    from numba import types

    if isinstance(sync, types.NoneType) or not isinstance(units, types.NoneType):
        return lambda units, sync, grads, tid, spans, n: None

    def partner_of(units, sync, grads, tid, spans, n):
        partner = 1 if tid == 0 else 0
        own = grads[tid]
        for p in range(grads.shape[0]):
            if p != tid and p != partner:
                part = grads[p]
                for r in range(spans.shape[0]):
                    for i in range(spans[r, 0], spans[r, 1]):
                        own[i] += part[i]
        return grads[partner][:n]
    return partner_of


@jit
def team_sums(values):
    """The column sums of ``values`` ``(P, >= 4)``, in the threads' order (the same in every
    thread): ``(sum(Z_L), loss, ||W||^2, the update's sum)``."""
    totals = (values[0, 0], values[0, 1], values[0, 2], values[0, 3])
    for p in range(1, values.shape[0]):
        totals = (totals[0] + values[p, 0], totals[1] + values[p, 1],
                  totals[2] + values[p, 2], totals[3] + values[p, 3])
    return totals


@jit
def meet(team, tid):
    """The threads' barrier; False when the team was aborted."""
    return sync_at(team.sync, tid, team.spans.shape[0])


@jit
def sync_at(state, tid, P):
    """:func:`.sync.barrier` on ``state``; nothing for a team of one (``state`` None: its
    fit compiles no barrier)."""
    if state is None:
        return True
    return sync.barrier(state, tid, P)


@jit
def step(tid, current, other, batch, dims, work, team, hyper, l2, dropout, bn, hidden, output,
         optimizer, alpha, t, cost, checkpoint, units=None, clock=None, since=np.uint64(0)):
    """One update from one batch, by thread ``tid`` of the team (see :class:`Team`).

    Each thread: forward and backward over its share of the batch's columns,
    its raw gradient into its row of ``team.grads``; at the barrier the
    threads learn every ``sum(Z_L)`` and loss. Then each makes the optimiser's
    fused update of its share of the parameters with the whole batch's ``1/m``,
    summing the team's gradients as it reads them (:func:`partner_row`), after
    adding ``l2 W`` and copying its share into ``other`` when ``checkpoint``;
    at the second barrier they learn whether every new parameter is finite.
    ``current`` ``[theta | optimiser state]`` is updated in place; ``t`` is
    this update's number (dropout's masks, Adam's corrections). Every thread
    returns the same ``(status, loss)``: the batch's unscaled loss (with
    ``(l2 / 2) sum ||W||^2`` when ``cost``); status ``NONFINITE_COST`` when
    the cost of ``current`` is not finite (nothing changed),
    ``NONFINITE_UPDATE`` when the update made it so (``current`` then holds
    it), ``ABORTED`` when another thread gave up. With batch norm (``bn``; one thread), the
    running statistics are updated in ``current`` from the batch's once its cost is
    finite, after the checkpoint's copy (their gradient is 0: the optimiser keeps them).
    With a ``clock`` (:mod:`.clock`; ``since`` the counter when the step's gather began)
    each phase's cycles are added to the thread's row; without one (None) Numba prunes
    every reading before typing. Split by hidden units (``units``, the thread's
    :class:`.units.Units`; None splits the batch's columns), each thread runs the whole
    batch through its units (:func:`.units.passes`, which meets the team once, in the
    forward pass: the clock counts it all as the forward phase) and every thread knows
    the batch's whole loss.
    """
    spans = team.spans[tid]
    offsets = work.offsets
    values = team.values
    zero = like(alpha, 0.0)
    if clock is not None:
        now = clocks.tock(clock, tid, clocks.GATHER, since)
    values[tid, 2] = zero
    if cost and l2 is not None:
        values[tid, 2] = squared_norm_share(current, dims, offsets, spans)
    if units is not None:  # split by units: the whole batch, and one meeting inside
        met, ZL_sum, loss = unit_passes(tid, current, batch, work, units, team.sync, hidden,
                                        output, cost)
        if not met:
            return ABORTED, zero
        if clock is not None:
            now = clocks.tock(clock, tid, clocks.FORWARD, now)
        squares = team_sums(values)[2]
    else:
        if batch.w.size > 0:
            ZL_sum, loss = forward(current, batch, dims, work, hidden, output, cost, dropout,
                                   t, bn)
            if clock is not None:
                now = clocks.tock(clock, tid, clocks.FORWARD, now)
            backward(current, batch, dims, work, hidden, dropout, t, bn)
            if clock is not None:
                now = clocks.tock(clock, tid, clocks.BACKWARD, now)
        else:  # a batch shorter than the team: this thread adds nothing
            ZL_sum, loss = zero, zero
            grad = work.grad
            for i in range(grad.size):
                grad[i] = zero
        values[tid, 0] = ZL_sum
        values[tid, 1] = loss
        if not meet(team, tid):
            return ABORTED, zero
        if clock is not None:
            now = clocks.tock(clock, tid, clocks.WAIT, now)
        ZL_sum, loss, squares, _ = team_sums(values)
    if cost and l2 is not None:
        loss += like(alpha, 0.5) * l2 * squares
    if not np.isfinite(ZL_sum):
        return NONFINITE_COST, loss
    n = work.grad.size
    partner = partner_row(units, team.sync, team.grads, tid, spans, n)
    grad = team.grads[tid][:n]  # a row's start: C-contiguous, so the update vectorises
    if clock is not None:
        now = clocks.tock(clock, tid, clocks.SUM, now)
    if l2 is not None:
        add_l2_share(grad, current, l2, dims, offsets, spans)
    if checkpoint:
        copy_share(other, current, n, spans)
    if bn is not None:
        bn_kernels.update_running(bn, current, dims, offsets)
    inv_m = like(alpha, 1.0) / like(alpha, batch.m)
    values[tid, 3] = optimizer_update(optimizer, current, grad, inv_m, alpha, hyper, t, spans,
                                      partner)
    if clock is not None:
        now = clocks.tock(clock, tid, clocks.UPDATE, now)
    if not meet(team, tid):
        return ABORTED, zero
    if clock is not None:
        clocks.tock(clock, tid, clocks.WAIT_UPDATE, now)
        clocks.count_step(clock, tid)
    if not np.isfinite(team_sums(values)[3]):
        return NONFINITE_UPDATE, loss
    return OK, loss


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


@jit
def columns_split(units, tid, P):
    """``(tid, P)``: thread ``tid`` gathers its share of ``P`` of each batch's columns; split
    by units (``units`` not None) every thread gathers all of them, ``(0, 1)``."""
    if units is None:
        return tid, P
    return 0, 1


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


def gather_batch(data, batches, gram, hyper, epoch, first, m_b, tid, P):
    """Thread ``tid``'s share of the batch of columns ``first, ..., first + m_b - 1`` of the
    epoch's order, a :class:`Batch`: the columns ``first + tid m_b // P`` up to (not
    including) ``first + (tid + 1) m_b // P``.

    :class:`Data` (columns; one thread, full batches): the data themselves,
    as :class:`.first_layer.Columns` (or Gram mode's input when ``gram`` is
    set). :class:`.sparse.SparseData` (one thread): the batch's rows as
    :class:`.sparse.SparseRows`, gathered (their nonzeros) into ``batches`` as
    for :class:`RowData`. :class:`RowData`: the thread's rows, as :class:`.first_layer.Rows`
    (of the data themselves for full batches, with the labels the trainer put in
    ``batches`` once, :meth:`.team.Team.hold_labels`; else gathered into
    ``batches``, the epoch's first batch putting the columns in the order of
    ``rng.permutation(m, seed, epoch)`` first, with ``shuffle``), its labels
    gathered as columns.
    """
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(gather_batch)
def _gather_batch(data, batches, gram, hyper, epoch, first, m_b, tid, P):
    from numba import types

    if data.instance_class is Data:
        if isinstance(gram, types.NoneType):
            return lambda data, batches, gram, hyper, epoch, first, m_b, tid, P: Batch(
                first_layer.Columns(data.X), data.Y, data.w, 0, m_b)
        return lambda data, batches, gram, hyper, epoch, first, m_b, tid, P: Batch(
            gram, data.Y, data.w, 0, m_b)
    if data.instance_class is sparse_kernels.SparseData:
        return lambda data, batches, gram, hyper, epoch, first, m_b, tid, P: _gather_sparse(
            data, batches, hyper, epoch, first, m_b)

    def rows(data, batches, gram, hyper, epoch, first, m_b, tid, P):
        start = tid * m_b // P
        lo = first + start
        m_t = first + (tid + 1) * m_b // P - lo
        n_x, n_L = data.X.shape[1], data.Y.shape[1]
        Y_t = batch_view(batches.Y, n_L, m_t)
        if hyper.batch_size == 0:  # full batches, in order: the data's own rows, and the
            # labels as columns, put in the thread's buffer once (Team.hold_labels)
            return Batch(first_layer.Rows(data.X[lo:lo + m_t]), Y_t, data.w[lo:lo + m_t],
                         start, m_b)
        perm = batches.perm
        if first == 0 and hyper.shuffle:
            rng.permute(perm, hyper.seed, epoch)
        X_t = batch_view(batches.X, m_t, n_x)
        gather_rows(data.X, perm, lo, X_t)
        w_t = batches.w[:m_t]
        for j in range(m_t):
            w_t[j] = data.w[perm[lo + j]]
        gather(data.Y, perm, lo, Y_t)
        return Batch(first_layer.Rows(X_t), Y_t, w_t, start, m_b)
    return rows


@jit
def _gather_sparse(data, batches, hyper, epoch, first, m_b):
    """:func:`gather_batch` for :class:`.sparse.SparseData` (one thread)."""
    perm = batches.perm
    if hyper.batch_size == 0:  # full batches, in order: the data's own rows
        inp = sparse_kernels.SparseRows(data.indptr[first:first + m_b + 1], data.indices,
                                        data.values, batches.scratch)
        w = data.w[first:first + m_b]
    else:
        if first == 0 and hyper.shuffle:
            rng.permute(perm, hyper.seed, epoch)
        inp = sparse_kernels.gather(data, perm, first, m_b, batches)
        w = batches.w[:m_b]
        for j in range(m_b):
            w[j] = data.w[perm[first + j]]
    Y = batch_view(batches.Y, data.Y.shape[1], m_b)
    gather(data.Y, perm, first, Y)
    return Batch(inp, Y, w, 0, m_b)


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
def train(tid, current, other, data, own, team, hyper, parts, dims, hidden, output, optimizer,
          run):
    """Thread ``tid``'s part of epochs ``run.start, ..., run.start + run.n_epochs - 1``;
    ``run.t`` updates were made before. Every thread of the team (:class:`Team`; one is a
    team of one) runs this call at once, on the same arguments but its ``tid`` and ``own``
    buffers, meeting the others twice a step (:func:`step`).

    current: ``[theta | optimiser state]`` after ``run.t`` updates (and Gram
    mode's ``D`` after ``theta``); other: the state after ``run.t - 1``
    updates when ``run.have_previous``, else scratch, same size; data:
    :class:`Data` (columns: one thread, full batches) or :class:`RowData`;
    dims ``[n_x, ..., n_L]`` (int64); hidden, output, optimizer: codes of
    ``spec``'s tables (constants); ``parts``: the optional parts
    (:class:`Parts`), whose code is compiled only when present.

    Each epoch ``e`` takes the learning rate :func:`learning_rate_at` and
    cuts the columns, in the order of ``fastbackprop.rng.permutation(m, seed,
    e)`` for shuffled mini-batches, into batches of ``batch_size`` columns
    (the last keeps the rest), each split between the threads and gathered
    by :func:`gather_batch`; with full batches an epoch is one step on all
    the columns. Each batch is one :func:`step` with the batch's own
    ``1/m_b``. Thread 0 writes ``own.work.costs[e // cost_every]`` for epochs
    with ``e % cost_every == 0``: the sum of the batches' losses (each before
    its update, with ``l2 / 2 sum ||W||^2`` each) over ``m``.

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
    the cold first fit is the first thing a new user waits for. Every
    thread takes every decision from the values the team shares, so all
    take the same.

    Returns ``(status, epochs, updates, failed_at, in_other)``: ``epochs``
    completed; ``updates`` the net number of updates from ``current`` to
    the result (possibly -1: a non-finite cost steps back to the previous
    parameters), which lies in ``other`` when ``in_other``; ``failed_at``
    the epoch that went wrong, or -1. Status ``ABORTED``: another thread
    gave up (the caller re-raises its error).
    """
    literally(hidden)  # compile only the activation, output layer and optimiser in use
    literally(output)
    literally(optimizer)
    control = fpenv.flush_subnormals()  # restored before returning
    work = own.work
    P = team.spans.shape[0]
    spans = team.spans[tid]
    column_tid, column_P = columns_split(own.units, tid, P)
    n = work.grad.size
    m = data.w.size
    width = m if hyper.batch_size == 0 else hyper.batch_size
    n_batches = (m + width - 1) // width
    inv_m = like(hyper.learning_rate, 1.0) / like(hyper.learning_rate, m)
    planned = run.n_epochs * n_batches  # the call's updates
    if run.gram_start:
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
                since = clocks.tick(parts.clock)
                batch = gather_batch(data, own.batches, parts.gram, hyper, e, first,
                                     min(width, m - first), column_tid, column_P)
                checkpoint = not replaying and (done == 0 or done == planned - 1)
                failed, batch_loss = step(tid, current, other, batch, dims, work, team, hyper,
                                          parts.l2, parts.dropout, parts.batch_norm, hidden,
                                          output, optimizer, alpha, run.t + done + 1, record,
                                          checkpoint, own.units, parts.clock, since)
                loss += batch_loss
                if failed != OK:
                    break
                done += 1
            if record and tid == 0:
                work.costs[e // hyper.cost_every] = loss * inv_m
            if failed != OK:
                break
            completed += 1
        if failed == ABORTED:
            status, failed_at = ABORTED, -1
            break
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
        copy_share(current, other, n, spans)
        if not meet(team, tid):
            status = ABORTED
            break
    if run.gram_fold:  # both buffers: each folds its own D (a result in other is kept)
        finish_run(parts.gram, current, data, dims, work)
        finish_run(parts.gram, other, data, dims, work)
    fpenv.restore(control)
    return status, epochs, done, failed_at, in_other


def as_input(X):
    """``X`` as a first-layer input: an array ``(n_x, m)`` as :class:`.first_layer.Columns`,
    a form (:class:`.sparse.SparseRows`, ...) as it is."""
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(as_input)
def _as_input(X):
    from numba import types

    if isinstance(X, types.Array):
        return lambda X: first_layer.Columns(X)
    return lambda X: X


@jit(entry=True)
def gradient_sums(theta, X, Y, w, dims, hidden, output, work):
    """One forward and backward pass over all columns of ``X``, ``Y``: raw sums, no update.

    ``X``: ``(n_x, m)``, or a first-layer form (:class:`.sparse.SparseRows`, whose
    ``theta`` and ``work.grad`` hold ``W1^T`` in ``W1``'s slot).

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
    batch = Batch(as_input(X), Y, w, 0, w.size)
    # A constant argument is typed as a literal (Literal[int](0)): the passes, typed again
    # for it, would compile again in a process that has compiled the training loop. As
    # np.bool_ and np.int64 they have train's types (a third off the first predict's
    # compilation after a fit), and every optional part is passed, as None.
    cost, t = np.bool_(True), np.int64(0)
    total, loss = forward(theta, batch, dims, work, hidden, output, cost, None, t, None)
    backward(theta, batch, dims, work, hidden, None, t, None)
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
    batch = Batch(inp, work.cols, work.cols[0, :m], 0, m)  # no cost: Y, w are not read
    cost, t = np.bool_(False), np.int64(0)  # train's types, not literals (see gradient_sums)
    forward(theta, batch, dims, work, hidden, output, cost, None, t, None)


@jit(entry=True)
def predict_into(theta, X, form, dims, hidden, output, acts, cols, offsets, out, tile):
    """``A_L`` of the network on ``X`` into ``out`` ``(n_L, m)``, after checking that ``X`` is
    finite; returns whether it is (when not, ``out`` holds nothing meaningful).

    ``X`` C-contiguous, of ``theta``'s dtype, in the form ``form`` names (a constant,
    :data:`.first_layer.COLUMNS`: ``(n_x, m)``, or :data:`.first_layer.ROWS`: ``(m, n_x)``);
    ``acts``, ``cols``, ``offsets``: a :class:`Work`'s, for ``capacity >= min(m, tile)``
    columns. ``out``: C-contiguous, ``(n_L, m)``, or for rows ``(m, n_L)`` (always C, so
    that its type, and the compiled entry point, does not change with ``m``: the transpose
    of a one-row array would be typed C, of a larger one F).

    Rows: the examples go through in tiles of ``tile`` rows (each tile a C-contiguous
    block of ``X``), checked and pushed through the whole network one tile at a time, so
    that its activations stay in cache between the layers. Columns: one tile (a block of
    columns is not contiguous).
    One call does all of a prediction, so that Python's share is one call.
    """
    literally(form)
    literally(hidden)
    literally(output)
    work = Work(acts, acts, acts[:0], acts[:0], cols, offsets)
    last = dims.size - 1
    cost, update = np.bool_(False), np.int64(0)  # train's types, not literals (see gradient_sums)
    if form == first_layer.ROWS:
        m = X.shape[0]
        for start in range(0, m, tile):
            stop = min(start + tile, m)
            block = X[start:stop]
            if not is_finite(block):
                return False
            t = stop - start
            batch = Batch(first_layer.Rows(block), cols, cols[0, :t], 0, t)  # Y, w not read
            forward(theta, batch, dims, work, hidden, output, cost, None, update, None)
            first_layer.store(layer_of(acts, dims, offsets, last, t), out[start:stop], form)
        return True
    if not is_finite(X):
        return False
    m = X.shape[1]
    batch = Batch(first_layer.input_of(X, form), cols, cols[0, :m], 0, m)  # Y, w not read
    forward(theta, batch, dims, work, hidden, output, cost, None, update, None)
    first_layer.store(layer_of(acts, dims, offsets, last, m), out, form)
    return True


@jit
def is_finite(X):
    """Whether every entry of the 2-D ``X`` is finite: ``|x| < inf`` is false for NaN and the
    infinities (a comparison the fast-math flags keep; ``x - x``, NaN for them, is folded to
    0 under ``reassoc``). Counted without an early exit, so the loop vectorises."""
    infinity = like(X, np.inf)
    n_bad = 0
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            n_bad += 0 if abs(X[i, j]) < infinity else 1
    return n_bad == 0
