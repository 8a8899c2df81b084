"""The optimisers' fused updates: one entry per row of ``spec.OPTIMIZERS``.

Each update reads the raw gradient sums once and updates the parameters and
the optimiser's state in place, in one pass over the buffer ``current``,
which holds ``[theta | slot 1 | slot 2 ...]``, each part the size ``n`` of
``grad`` (``theta``'s layout; ``spec.OPTIMIZERS[name].state`` names the
slots). In place because it is faster than writing a second buffer: one
buffer less for the caches to hold (measured: a quarter of a digits32
epoch, a few percent of the MNIST-shaped ones); the training loop keeps what a failed step needs to go back to
(see :mod:`.training`). The buffer is the only array the update writes,
so the loop vectorises (one array read and written through two names
would not: LLVM's overlap check fails and it runs scalar); the parameters
and each state slot are taken as views of their own parts (:func:`parts`).
The gradient of the course is ``grad * inv_m`` (``m`` the batch's columns);
``alpha`` is this epoch's learning rate and ``t`` this update's number from 1.
Each update covers the entries of its ``spans`` ``(R, 2)``, each ``lo, ..., hi - 1``
of the layout (by default, None, all of them; a thread's share with several),
in one call whatever their number (the constants, Adam's corrections, once), and
returns their new parameters' sum, finite exactly when every one of them is. With ``other``,
a second row of raw sums (another thread's), the gradient is ``grad +
other``, added as it is read (:func:`.passes.raw`): the threads' rows are
summed in the update's one pass instead of a pass of their own before it.

:func:`optimizer_update` chooses the entry by a constant code through
:func:`.scalar.select`.
"""

from __future__ import annotations

import numpy as np

from .. import spec
from .._jit import jit, overload_kernel
from .passes import n_spans, part_of, raw, span_at, update
from .scalar import like, select


@jit
def parts(current, grad, lo, hi, other=None):
    """The views ``theta, slot 1, slot 2`` of ``current``, and those of ``grad`` and ``other``
    (None without one), over the entries ``lo .. hi - 1``. Separate names for separate
    memory, each from 0: LLVM checks once that they do not overlap and vectorises the update
    (indexing one buffer at ``i``, ``n + i``, ``2n + i`` over a range that may be shorter
    than ``n`` it cannot prove that, and ran Adam's loop scalar, 3.5x slower; indexed from
    ``lo`` instead of 0, Numba's check for negative indices kept it scalar too)."""
    n = grad.size
    slots = current.size // n - 1
    v = current[n + lo:n + hi] if slots >= 1 else current[lo:hi]
    s = current[2 * n + lo:2 * n + hi] if slots >= 2 else v
    return current[lo:hi], v, s, grad[lo:hi], part_of(other, lo, hi)


@jit
def gd(current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    """``W := W - alpha dW`` (over ``grad.size``: Gram mode's ``D`` included)."""
    return update(current[:grad.size], grad, inv_m, alpha, other, spans)


@jit
def momentum(current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    """``v := beta v + (1 - beta) dW``; ``W := W - alpha v``."""
    beta = hyper.beta
    keep = like(alpha, 1.0) - beta
    total = like(alpha, 0.0)
    for r in range(n_spans(spans)):
        lo, hi = span_at(spans, r, grad.size)
        W, V, _, G, O = parts(current, grad, lo, hi, other)
        for i in range(W.size):
            v = beta * V[i] + keep * (raw(G, O, i) * inv_m)
            V[i] = v
            w = W[i] - alpha * v
            W[i] = w
            total += w
    return total


@jit
def rmsprop(current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    """``s := beta2 s + (1 - beta2) dW^2``; ``W := W - alpha dW / (sqrt(s) + epsilon)``."""
    beta2, epsilon = hyper.beta2, hyper.epsilon
    keep = like(alpha, 1.0) - beta2
    total = like(alpha, 0.0)
    for r in range(n_spans(spans)):
        lo, hi = span_at(spans, r, grad.size)
        W, S, _, G, O = parts(current, grad, lo, hi, other)
        for i in range(W.size):
            g = raw(G, O, i) * inv_m
            s = beta2 * S[i] + keep * (g * g)
            S[i] = s
            w = W[i] - alpha * g / (np.sqrt(s) + epsilon)
            W[i] = w
            total += w
    return total


@jit
def adam(current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    """``v``, ``s`` as momentum and RMSprop; ``W := W - alpha v_hat / (sqrt(s_hat) + epsilon)``."""
    one = like(alpha, 1.0)
    beta1, beta2, epsilon = hyper.beta1, hyper.beta2, hyper.epsilon
    keep1, keep2 = one - beta1, one - beta2
    correct1 = one / (one - beta1 ** like(alpha, t))  # v_hat = v / (1 - beta1^t)
    correct2 = one / (one - beta2 ** like(alpha, t))
    total = like(alpha, 0.0)
    for r in range(n_spans(spans)):
        lo, hi = span_at(spans, r, grad.size)
        W, V, S, G, O = parts(current, grad, lo, hi, other)
        for i in range(W.size):
            g = raw(G, O, i) * inv_m
            v = beta1 * V[i] + keep1 * g
            s = beta2 * S[i] + keep2 * (g * g)
            V[i] = v
            S[i] = s
            w = W[i] - alpha * (v * correct1) / (np.sqrt(s * correct2) + epsilon)
            W[i] = w
            total += w
    return total


@jit
def sgd_momentum(current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    """scikit-learn's momentum: ``v := beta v - alpha dW``; ``W := W + v``."""
    beta = hyper.beta
    total = like(alpha, 0.0)
    for r in range(n_spans(spans)):
        lo, hi = span_at(spans, r, grad.size)
        W, V, _, G, O = parts(current, grad, lo, hi, other)
        for i in range(W.size):
            v = beta * V[i] - alpha * (raw(G, O, i) * inv_m)
            V[i] = v
            w = W[i] + v
            W[i] = w
            total += w
    return total


@jit
def nesterov(current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    """scikit-learn's Nesterov momentum: ``v := beta v - alpha dW``;
    ``W := W + beta v - alpha dW``."""
    beta = hyper.beta
    total = like(alpha, 0.0)
    for r in range(n_spans(spans)):
        lo, hi = span_at(spans, r, grad.size)
        W, V, _, G, O = parts(current, grad, lo, hi, other)
        for i in range(W.size):
            step = alpha * (raw(G, O, i) * inv_m)
            v = beta * V[i] - step
            V[i] = v
            w = W[i] + (beta * v - step)
            W[i] = w
            total += w
    return total


@jit
def adam_folded(current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    """scikit-learn's Adam: ``v``, ``s`` as Adam;
    ``W := W - (alpha sqrt(1 - beta2^t) / (1 - beta1^t)) v / (sqrt(s) + epsilon)``."""
    one = like(alpha, 1.0)
    beta1, beta2, epsilon = hyper.beta1, hyper.beta2, hyper.epsilon
    keep1, keep2 = one - beta1, one - beta2
    step = alpha * np.sqrt(one - beta2 ** like(alpha, t)) / (one - beta1 ** like(alpha, t))
    total = like(alpha, 0.0)
    for r in range(n_spans(spans)):
        lo, hi = span_at(spans, r, grad.size)
        W, V, S, G, O = parts(current, grad, lo, hi, other)
        for i in range(W.size):
            g = raw(G, O, i) * inv_m
            v = beta1 * V[i] + keep1 * g
            s = beta2 * S[i] + keep2 * (g * g)
            V[i] = v
            S[i] = s
            w = W[i] - step * v / (np.sqrt(s) + epsilon)
            W[i] = w
            total += w
    return total


#: Optimiser code -> its fused update; one entry per ``spec.OPTIMIZERS`` row.
OPTIMIZER_KERNELS = {spec.OPTIMIZERS[name].code: kernel
                     for name, kernel in (("gd", gd), ("momentum", momentum),
                                          ("rmsprop", rmsprop), ("adam", adam),
                                          ("sgd_momentum", sgd_momentum),
                                          ("nesterov", nesterov),
                                          ("adam_folded", adam_folded))}


def optimizer_update(code, current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    """The fused update, in place, of the optimiser with constant ``code``; see the module."""
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(optimizer_update)
def _optimizer_update(code, current, grad, inv_m, alpha, hyper, t, spans=None, other=None):
    kernel = select(code, OPTIMIZER_KERNELS, "optimizer")
    return lambda code, current, grad, inv_m, alpha, hyper, t, spans=None, other=None: kernel(
        current, grad, inv_m, alpha, hyper, t, spans, other)
