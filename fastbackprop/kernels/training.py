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

The hidden activation and the output layer are compile-time constants
(``literally``): a model compiles only the ones it uses.

Parameters alternate between two buffers (``current`` and ``other``): an
update reads one and writes the other, so when a step goes wrong the
previous parameters are still intact.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import literally

from .. import spec
from .._jit import jit
from . import gram as gram_mode
from .layout import W_of, b_of, layer_of, layer_offsets
from .outputs import output_apply, output_layer
from .passes import (
    NT,
    backward_delta,
    bias_activation,
    gemm,
    linear_activation,
    output_delta,
    update,
)
from .scalar import like

OK, NONFINITE_COST, NONFINITE_UPDATE = spec.OK, spec.NONFINITE_COST, spec.NONFINITE_UPDATE


class Data(NamedTuple):
    """The training data: ``X`` ``(n_x, m)``, ``Y`` ``(n_L, m)``, C-contiguous, one dtype."""

    X: np.ndarray
    Y: np.ndarray


class Work(NamedTuple):
    """The loop's buffers, allocated once (see :mod:`.layout`)."""

    acts: np.ndarray
    deltas: np.ndarray
    grad: np.ndarray
    costs: np.ndarray
    cols: np.ndarray


class Hyper(NamedTuple):
    """``learning_rate`` (a scalar of the data's dtype) and ``cost_every`` (int)."""

    learning_rate: float
    cost_every: int


@jit
def capacity_of(work, dims):
    """The number of columns the ``acts``/``deltas`` slots hold."""
    return work.acts.size // dims[1:].sum()


@jit
def forward(theta, X, Y, dims, offsets, hidden, output, acts, cols, cost, gram):
    """Forward pass: ``acts`` receives ``A1, ..., AL``; returns ``(sum(ZL), loss)``.

    ``sum(ZL)`` is finite exactly when the cost is. When ``cost`` the
    unscaled loss against ``Y`` is computed in the output layer's pass from
    ``ZL``, else it is 0 and ``Y`` is not read. (The output layer stands
    outside the loop over hidden layers on purpose: with the cost's loop
    inside that loop, LLVM generated code 4x slower for it.)
    """
    literally(hidden)
    literally(output)
    L = dims.size - 1
    m = X.shape[1]
    A_prev = X
    for l in range(1, L):
        A = layer_of(acts, dims, offsets, l, m)
        b = b_of(theta, dims, offsets, l)
        if gram.enabled and l == 1:
            gram_mode.W1X(theta, dims, offsets, gram, A)
            bias_activation(A, b, hidden)
        else:
            linear_activation(W_of(theta, dims, offsets, l), A_prev, b, hidden, A)
        A_prev = A
    AL = layer_of(acts, dims, offsets, L, m)
    bL = b_of(theta, dims, offsets, L)
    if gram.enabled and L == 1:
        gram_mode.W1X(theta, dims, offsets, gram, AL)
        return output_apply(output, AL, bL, Y, cost, cols)
    return output_layer(output, W_of(theta, dims, offsets, L), A_prev, bL, Y, AL, cost, cols)


@jit
def backward(theta, X, Y, dims, offsets, hidden, acts, deltas, grad, gram):
    """Backward pass from ``dZ_L = A_L - Y``: raw ``dW``, ``db`` into ``grad``.

    In Gram mode ``dZ1`` is written to ``D``'s slot of ``grad`` and ``dW1``
    is not computed (its slot stays 0).
    """
    literally(hidden)
    L = dims.size - 1
    m = X.shape[1]
    if gram.enabled and L == 1:
        dZ = gram_mode.D_of(grad, dims, offsets, m)
    else:
        dZ = layer_of(deltas, dims, offsets, L, m)
    output_delta(layer_of(acts, dims, offsets, L, m), Y, dZ, b_of(grad, dims, offsets, L))
    for l in range(L, 0, -1):
        A_prev = X if l == 1 else layer_of(acts, dims, offsets, l - 1, m)
        if not (gram.enabled and l == 1):
            gemm(dZ, A_prev, W_of(grad, dims, offsets, l), NT)
        if l > 1:
            if gram.enabled and l == 2:
                dZ_prev = gram_mode.D_of(grad, dims, offsets, m)
            else:
                dZ_prev = layer_of(deltas, dims, offsets, l - 1, m)
            backward_delta(W_of(theta, dims, offsets, l), dZ, A_prev, hidden, dZ_prev,
                           b_of(grad, dims, offsets, l - 1))
            dZ = dZ_prev


@jit
def train(current, other, data, work, hyper, gram, dims, hidden, output, start, n_iterations):
    """Run iterations ``start, ..., start + n_iterations - 1`` of full-batch gradient descent.

    current: flat parameters after ``start`` updates; other: the previous
    parameters (or scratch when ``start == 0``), same size; dims
    ``[n_x, ..., n_L]`` (int64); hidden, output: the codes of
    ``spec.ACTIVATIONS`` and ``spec.OUTPUTS``. ``work.costs`` receives, at
    index ``i // cost_every``, the cost before the update of every
    iteration ``i`` with ``i % cost_every == 0``.

    Returns ``(status, n_updates, failed_at, in_other)``: ``status`` is
    ``OK``, ``NONFINITE_COST`` or ``NONFINITE_UPDATE``; the result is the
    last set of parameters whose cost was finite (the initial ones if the
    very first cost was not), ``n_updates`` (possibly -1) away from
    ``current``'s, and lies in ``other`` when ``in_other``; ``failed_at``
    is the iteration that went wrong, or -1.
    """
    literally(hidden)  # compile only the activation and the output layer in use
    literally(output)
    X, Y = data.X, data.Y
    m = X.shape[1]
    offsets = layer_offsets(dims, capacity_of(work, dims))
    inv_m = like(hyper.learning_rate, 1.0) / like(hyper.learning_rate, m)
    if gram.enabled:
        gram_mode.start(current, X, dims, offsets, gram, work.grad)
    status = OK
    done = 0
    failed_at = -1
    for i in range(start, start + n_iterations):
        cost = i % hyper.cost_every == 0
        ZL_sum, loss = forward(current, X, Y, dims, offsets, hidden, output, work.acts,
                               work.cols, cost, gram)
        if cost:
            work.costs[i // hyper.cost_every] = loss * inv_m
        if not np.isfinite(ZL_sum):
            status = NONFINITE_COST
            failed_at = i
            if i > 0:
                done -= 1  # back to the last parameters with a finite cost, in other
            break
        backward(current, X, Y, dims, offsets, hidden, work.acts, work.deltas, work.grad, gram)
        if not np.isfinite(update(current, work.grad, inv_m, hyper.learning_rate, other)):
            status = NONFINITE_UPDATE
            failed_at = i
            break
        current, other = other, current
        done += 1
    if gram.enabled:
        result = other if status == NONFINITE_COST and failed_at > 0 else current
        gram_mode.finish(result, X, dims, offsets, work.grad)
    return status, done, failed_at, done % 2 == 1


@jit
def predict(theta, X, dims, hidden, output, acts):
    """``A_L`` of the network on ``X`` ``(n_x, m)``, into ``acts``'s last slot; no cost.

    ``acts`` holds ``sum(n_l) m`` entries.
    """
    literally(hidden)
    literally(output)
    m = X.shape[1]
    offsets = layer_offsets(dims, m)
    empty = np.empty((0, 0), dtype=X.dtype)
    cols = np.empty((4, m), dtype=X.dtype)
    forward(theta, X, X, dims, offsets, hidden, output, acts, cols, False,  # Y is not read
            gram_mode.Gram(False, empty, empty))
