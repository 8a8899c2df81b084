"""The whole gradient-descent training loop in one compiled call.

State is kept in a few flat, preallocated buffers so that one compiled
function serves every depth (a tuple of per-layer arrays would compile
again for each number of layers) and nothing is allocated per iteration:

``theta``  ``W1 (row-major), b1, W2, b2, ..., WL, bL`` flattened; ``W{l}``
           and ``b{l}`` are C-contiguous views into it.
``acts``   ``A1, ..., AL``, each ``(n_l, m)``. The GEMM writes ``W A_prev``
           there and the fused pass turns it into ``A`` in place (``Z`` is
           not kept: every ``g'`` is computed from ``A``).
``deltas`` ``dZ1, ..., dZL``, each ``(n_l, m)``; ``dA`` is formed in place.
``grad``   raw gradients ``dZ A_prev^T`` and ``sum(dZ, axis=1)`` in
           ``theta``'s layout; ``1/m`` is folded into the update step.

Parameters alternate between two such buffers (``current`` and
``other``): an update reads one and writes the other, so when a step goes
wrong the previous parameters are still intact.
"""

from __future__ import annotations

import numpy as np
from numba import literally

from .._jit import jit
from .passes import (
    NN,
    NT,
    _bias_activation,
    _gemm,
    add_matrix,
    backward_delta,
    linear_activation,
    linear_sigmoid_cost,
    output_delta,
    sigmoid_cost,
    update,
)
from .scalar import SIGMOID, like

#: Status codes returned by :func:`train`.
OK = 0
NONFINITE_COST = 1  # the cost of the current parameters is NaN or infinite
NONFINITE_UPDATE = 2  # an update produced NaN or infinite parameters


@jit
def layer_offsets(dims, m):
    """Offsets ``(L + 1, 3)``: start of ``W{l}``, ``b{l}`` in ``theta`` and of ``A{l}`` in ``acts``.

    Row ``L`` (past the end) holds the total sizes.
    """
    L = dims.size - 1
    offsets = np.zeros((L + 1, 3), dtype=np.int64)
    w = 0
    a = 0
    for l in range(1, L + 1):
        offsets[l - 1, 0] = w
        offsets[l - 1, 1] = w + dims[l] * dims[l - 1]
        offsets[l - 1, 2] = a
        w += dims[l] * dims[l - 1] + dims[l]
        a += dims[l] * m
    offsets[L, 0] = w
    offsets[L, 1] = w
    offsets[L, 2] = a
    return offsets


@jit
def _W(theta, dims, offsets, l):
    """View of ``W{l}``, ``(n_l, n_{l-1})``, in a flat parameter vector."""
    start = offsets[l - 1, 0]
    return theta[start:start + dims[l] * dims[l - 1]].reshape((dims[l], dims[l - 1]))


@jit
def _b(theta, dims, offsets, l):
    """View of ``b{l}``, ``(n_l, 1)``, in a flat parameter vector."""
    start = offsets[l - 1, 1]
    return theta[start:start + dims[l]].reshape((dims[l], 1))


@jit
def _act(buffer, dims, offsets, l, m):
    """View of layer ``l``'s ``(n_l, m)`` block in ``acts`` or ``deltas``."""
    start = offsets[l - 1, 2]
    return buffer[start:start + dims[l] * m].reshape((dims[l], m))


@jit
def _D(buffer, dims, offsets, m):
    """View of the Gram mode's ``D`` ``(n_1, m)``, stored after the parameters."""
    start = offsets[dims.size - 1, 0]
    return buffer[start:start + dims[1] * m].reshape((dims[1], m))


@jit
def _gram_W1X(theta, dims, offsets, G, P0, out):
    """Gram mode's ``W1 X = P0 + D G`` into ``out`` ``(n_1, m)``."""
    _gemm(_D(theta, dims, offsets, out.shape[1]), G, out, NN)
    add_matrix(out, P0)


@jit
def forward(theta, X, dims, offsets, hidden, acts, Y, costs, cost_slot, gram, G, P0):
    """Forward pass: ``acts`` receives ``A1, ..., AL``; returns ``sum(ZL)``.

    ``sum(ZL)`` is finite exactly when the cost is. When ``cost_slot >= 0``
    the cost ``J`` against ``Y`` is written to ``costs[cost_slot]``, computed
    in the output layer's sigmoid pass from ``ZL``. (The output layer stands
    outside the loop over hidden layers on purpose: with the cost's loop
    inside that loop, LLVM generated code 4x slower for it.)

    In Gram mode (see :func:`train`) ``W1 X`` is ``P0 + D G``.
    """
    literally(hidden)
    L = dims.size - 1
    m = X.shape[1]
    A_prev = X
    for l in range(1, L):
        A = _act(acts, dims, offsets, l, m)
        b = _b(theta, dims, offsets, l)
        if gram and l == 1:
            _gram_W1X(theta, dims, offsets, G, P0, A)
            _bias_activation(A, b, hidden)
        else:
            linear_activation(_W(theta, dims, offsets, l), A_prev, b, hidden, A)
        A_prev = A
    AL = _act(acts, dims, offsets, L, m)
    bL = _b(theta, dims, offsets, L)
    if gram and L == 1:
        _gram_W1X(theta, dims, offsets, G, P0, AL)
        if cost_slot < 0:
            return _bias_activation(AL, bL, SIGMOID)
        total, loss = sigmoid_cost(AL, bL, Y)
    elif cost_slot < 0:
        return linear_activation(_W(theta, dims, offsets, L), A_prev, bL, SIGMOID, AL)
    else:
        total, loss = linear_sigmoid_cost(_W(theta, dims, offsets, L), A_prev, bL, Y, AL)
    costs[cost_slot] = loss / like(AL, m)
    return total


@jit
def backward(theta, X, Y, dims, offsets, hidden, acts, deltas, grad, gram):
    """Backward pass from ``dZ_L = A_L - Y``: raw ``dW``, ``db`` into ``grad``.

    In Gram mode ``dZ1`` is written to ``D``'s slot of ``grad`` and ``dW1``
    is not computed (its slot stays 0).
    """
    literally(hidden)
    L = dims.size - 1
    m = X.shape[1]
    dZ = _D(grad, dims, offsets, m) if gram and L == 1 else _act(deltas, dims, offsets, L, m)
    output_delta(_act(acts, dims, offsets, L, m), Y, dZ, _b(grad, dims, offsets, L))
    for l in range(L, 0, -1):
        A_prev = X if l == 1 else _act(acts, dims, offsets, l - 1, m)
        if not (gram and l == 1):
            _gemm(dZ, A_prev, _W(grad, dims, offsets, l), NT)
        if l > 1:
            if gram and l == 2:
                dZ_prev = _D(grad, dims, offsets, m)
            else:
                dZ_prev = _act(deltas, dims, offsets, l - 1, m)
            backward_delta(_W(theta, dims, offsets, l), dZ, A_prev, hidden, dZ_prev,
                           _b(grad, dims, offsets, l - 1))
            dZ = dZ_prev


@jit
def train(current, other, X, Y, dims, hidden, learning_rate, start, n_iterations,
          cost_every, acts, deltas, grad, costs, gram, G, P0):
    """Run iterations ``start, ..., start + n_iterations - 1`` of full-batch gradient descent.

    current: flat parameters after ``start`` updates; other: the previous
    parameters (or scratch when ``start == 0``), same size. X ``(n_x, m)``;
    Y ``(n_L, m)``; dims ``[n_x, ..., n_L]`` (int64); hidden: activation
    code; learning_rate in X's dtype; acts, deltas ``(sum n_l m,)``; grad
    like the parameters; costs receives, at index ``i // cost_every``, the
    cost before the update of every iteration ``i`` with ``i % cost_every == 0``.

    Updates alternate between the two parameter buffers. Returns
    ``(status, n_updates, failed_at, in_other)``: ``status`` is ``OK``,
    ``NONFINITE_COST`` or ``NONFINITE_UPDATE``; the result is the last set of
    parameters whose cost was finite (the initial ones if the very first
    cost was not), ``n_updates`` (possibly -1) away from ``current``'s, and
    lies in ``other`` when ``in_other``; ``failed_at`` is the iteration that
    went wrong, or -1.

    **Gram mode** (``gram``; for a wide first layer, ``n_x >= m``): after
    ``t`` updates ``W1 = W1_0 - (alpha/m) sum_s dZ1_s X^T``, so
    ``W1 X = W1_0 X + D G`` with ``D = -(alpha/m) sum_s dZ1_s`` ``(n_1, m)``
    and ``G = X^T X`` ``(m, m)``, given. The loop keeps ``D`` after the
    parameters in each buffer (``dZ1`` is its gradient, ``dW1``'s slot stays
    0), computes ``P0 = W1_0 X`` once, and so replaces the two products
    with ``X`` per step (``2 n_1 n_x m`` multiply-adds) by ``D G``
    (``n_1 m^2``). At the end ``W1 := W1 + D X^T`` and ``D := 0`` in the
    result. The algebra is exact; only rounding differs.
    """
    literally(hidden)  # compile only the activation in use
    m = X.shape[1]
    offsets = layer_offsets(dims, m)
    step = learning_rate / like(learning_rate, m)  # folds the 1/m of dW and db into the update
    if gram:
        _gemm(_W(current, dims, offsets, 1), X, P0, NN)
        _W(grad, dims, offsets, 1)[:, :] = 0
    status = OK
    done = 0
    failed_at = -1
    for i in range(start, start + n_iterations):
        cost_slot = i // cost_every if i % cost_every == 0 else -1
        ZL_sum = forward(current, X, dims, offsets, hidden, acts, Y, costs, cost_slot,
                         gram, G, P0)
        if not np.isfinite(ZL_sum):
            status = NONFINITE_COST
            failed_at = i
            if i > 0:
                done -= 1  # back to the last parameters with a finite cost, in other
            break
        backward(current, X, Y, dims, offsets, hidden, acts, deltas, grad, gram)
        if not np.isfinite(update(current, grad, step, other)):
            status = NONFINITE_UPDATE
            failed_at = i
            break
        current, other = other, current
        done += 1
    if gram:
        result = other if status == NONFINITE_COST and failed_at > 0 else current
        _materialise_W1(result, X, dims, offsets, grad)
    return status, done, failed_at, done % 2 == 1


@jit
def _materialise_W1(theta, X, dims, offsets, scratch):
    """Gram mode: ``W1 := W1 + D X^T`` and ``D := 0`` in ``theta`` (``scratch`` holds ``D X^T``)."""
    m = X.shape[1]
    D = _D(theta, dims, offsets, m)
    DXt = _W(scratch, dims, offsets, 1)
    _gemm(D, X, DXt, NT)
    W1 = _W(theta, dims, offsets, 1)
    W1 += DXt
    D[:, :] = 0
