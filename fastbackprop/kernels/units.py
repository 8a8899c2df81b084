"""A step split by hidden units: each thread owns some of the hidden layer's units.

For a network of one hidden layer, ``[n_x, n_1, n_L]``, and small batches, a
split of the batch's columns (:mod:`.team`) leaves each thread a few columns
and the whole network to read, and its update then reads the other threads'
gradients and parameters from their cores. Split by units instead, thread
``p`` owns the units ``first .. first + h_p - 1``: their rows of ``W1``, their
entries of ``b1``, their columns of ``W2`` (and thread 0 ``b2``), and runs the
whole batch through them (every thread gathers all of it):

    A1_p = g(W1_p X + b1_p)                (h_p, m)
    Z2_p = W2_p A1_p                       (n_L, m), its part of Z2, shared
    -- the threads meet: Z2 = sum_p Z2_p + b2 (in the threads' order), A2
       and the cost, the same in every thread
    dZ2 = (A2 - Y) * w, db2 = sum(dZ2)
    dW2_p = dZ2 A1_p^T                     (n_L, h_p)
    dZ1_p = (W2_p^T dZ2) * g'(Z1_p), db1_p = sum(dZ1_p)
    dW1_p = dZ1_p X^T                      (h_p, n_x)

Each gradient lands in the thread's own row of the team's gradients at its
place in the layout, so the update of its share (its spans: ``W1``'s rows,
``b1``'s entries, a piece of each of ``W2``'s rows, ``b2``) reads only its own
row and its own parameters: what crosses between the cores a step is the
``n_L x m`` parts of ``Z2``. The products are those of a one-thread step of
the network ``[n_x, h_p, n_L]``; the output layer's pointwise work is done in
every thread (``n_L x m`` entries).

:func:`passes` is the forward and backward pass of one thread; the rest of
the step (the barrier after the update, L2, the checkpoint, the update) is
:func:`.training.step`'s, over the spans of :class:`.training.Team`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit
from . import first_layer, sync
from .first_layer import FIRST
from .layout import b_of, layer_of, matrix_view
from .outputs import output_apply
from .passes import NN, NT, backward_delta, gemm, output_delta
from .scalar import like


class Units(NamedTuple):
    """One thread's part of a step split by units.

    ``dims`` ``[n_x, h_p, n_L]`` (int64) and ``offsets``: the thread's network, whose
    ``W1`` and ``b1`` are its rows of the layout's (``offsets``: the layout's, with
    ``W1``'s and ``b1``'s starts moved to the thread's first unit; the activation slots
    are the workspace's); ``W2`` ``(n_L, h_p)``: its columns of ``W2``, and ``b2`` ``(n_L,
    1)``, copied each step before the threads meet (thread 0 updates ``b2`` while the
    others may still read it); ``dW2`` ``(n_L, h_p)``: the gradient of its columns,
    before it goes to the layout's places (``offsets[1]``: where ``W2`` and ``b2`` start);
    ``first``: its first unit; ``n_1``: the layer's units; ``partials`` ``(P, >= n_L x
    capacity)``: each thread's part of ``Z2`` (shared by the team, rows on cache lines of
    their own)."""

    dims: np.ndarray
    offsets: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    dW2: np.ndarray
    first: int
    n_1: int
    partials: np.ndarray


@jit
def take_columns(theta, units):
    """``units.W2 = W2[:, first:first + h_p]`` from the layout's ``W2`` ``(n_L, n_1)``, and
    ``units.b2 = b2``."""
    W2, b2 = units.W2, units.b2
    W2_at, b2_at = units.offsets[1, 0], units.offsets[1, 1]
    for i in range(W2.shape[0]):
        start = W2_at + i * units.n_1 + units.first
        for j in range(W2.shape[1]):
            W2[i, j] = theta[start + j]
        b2[i, 0] = theta[b2_at + i]


@jit
def put_columns(grad, units):
    """The layout's ``dW2[:, first:first + h_p] = units.dW2``."""
    dW2 = units.dW2
    for i in range(dW2.shape[0]):
        start = units.offsets[1, 0] + i * units.n_1 + units.first
        for j in range(dW2.shape[1]):
            grad[start + j] = dW2[i, j]


@jit
def add_parts(partials, AL):
    """``AL = sum_p partials[p]`` (each ``(n_L, m)`` at the start of its row), in the
    threads' order, so that every thread makes the same sums."""
    n, m = AL.shape
    for i in range(n):
        for j in range(m):
            AL[i, j] = partials[0, i * m + j]
    for p in range(1, partials.shape[0]):
        for i in range(n):
            for j in range(m):
                AL[i, j] += partials[p, i * m + j]


@jit
def passes(tid, theta, batch, work, units, state, hidden, output, cost):
    """Thread ``tid``'s forward and backward pass over the whole ``batch`` (see the module):
    ``A1``, its part of ``Z2`` and, after meeting the team at the barrier ``state``
    (:mod:`.sync`), ``A2``, the cost, and its units' raw gradients (and ``db2``) into
    ``work.grad`` at their places in the layout. Returns ``(met, sum(Z_L), loss)``; not
    ``met`` when the team was aborted (then nothing after the meeting was done)."""
    dims, offsets = units.dims, units.offsets
    inp = batch.input
    m = batch.w.size
    grad = work.grad
    zero = like(theta, 0.0)
    A1 = layer_of(work.acts, dims, offsets, FIRST, m)
    first_layer.hidden(inp, theta, dims, offsets, hidden, A1)
    W2 = units.W2
    take_columns(theta, units)
    n_L = dims[2]
    gemm(W2, A1, matrix_view(units.partials[tid], 0, n_L, m), NN)
    if not sync.barrier(state, tid, units.partials.shape[0]):
        return False, zero, zero
    last = np.int64(2)
    AL = layer_of(work.acts, dims, offsets, last, m)
    add_parts(units.partials, AL)
    ZL_sum, loss = output_apply(output, AL, units.b2, batch.Y, batch.w, cost, work.cols)
    dZ2 = layer_of(work.deltas, dims, offsets, last, m)
    output_delta(AL, batch.Y, batch.w, dZ2, b_of(grad, dims, offsets, last))
    gemm(dZ2, A1, units.dW2, NT)
    put_columns(grad, units)
    dZ1 = layer_of(work.deltas, dims, offsets, FIRST, m)
    backward_delta(W2, dZ2, A1, hidden, dZ1, b_of(grad, dims, offsets, FIRST))
    first_layer.weight_gradient(inp, dZ1, grad, dims, offsets)
    return True, ZL_sum, loss


__all__ = ["Units", "passes", "take_columns", "put_columns", "add_parts"]
