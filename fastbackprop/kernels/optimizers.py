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
would not: LLVM's overlap check fails and it runs scalar).
The gradient of the course is ``grad * inv_m`` (``m`` the batch's columns);
``alpha`` is this epoch's learning rate and ``t`` this update's number from 1.
Every update returns ``sum(new theta)``, finite exactly when every new
parameter is.

:func:`optimizer_update` chooses the entry by a constant code through
:func:`.scalar.select`.
"""

from __future__ import annotations

import numpy as np

from .. import spec
from .._jit import jit, overload_kernel
from .passes import update
from .scalar import like, select


@jit
def gd(current, grad, inv_m, alpha, hyper, t):
    """``W := W - alpha dW`` (over ``grad.size``: Gram mode's ``D`` included)."""
    return update(current[:grad.size], grad, inv_m, alpha)


@jit
def momentum(current, grad, inv_m, alpha, hyper, t):
    """``v := beta v + (1 - beta) dW``; ``W := W - alpha v``."""
    n = grad.size
    beta = hyper.beta
    keep = like(alpha, 1.0) - beta
    total = like(alpha, 0.0)
    for i in range(n):
        v = beta * current[n + i] + keep * (grad[i] * inv_m)
        current[n + i] = v
        w = current[i] - alpha * v
        current[i] = w
        total += w
    return total


@jit
def rmsprop(current, grad, inv_m, alpha, hyper, t):
    """``s := beta2 s + (1 - beta2) dW^2``; ``W := W - alpha dW / (sqrt(s) + epsilon)``."""
    n = grad.size
    beta2, epsilon = hyper.beta2, hyper.epsilon
    keep = like(alpha, 1.0) - beta2
    total = like(alpha, 0.0)
    for i in range(n):
        g = grad[i] * inv_m
        s = beta2 * current[n + i] + keep * (g * g)
        current[n + i] = s
        w = current[i] - alpha * g / (np.sqrt(s) + epsilon)
        current[i] = w
        total += w
    return total


@jit
def adam(current, grad, inv_m, alpha, hyper, t):
    """``v``, ``s`` as momentum and RMSprop; ``W := W - alpha v_hat / (sqrt(s_hat) + epsilon)``."""
    n = grad.size
    one = like(alpha, 1.0)
    beta1, beta2, epsilon = hyper.beta1, hyper.beta2, hyper.epsilon
    keep1, keep2 = one - beta1, one - beta2
    correct1 = one / (one - beta1 ** like(alpha, t))  # v_hat = v / (1 - beta1^t)
    correct2 = one / (one - beta2 ** like(alpha, t))
    total = like(alpha, 0.0)
    for i in range(n):
        g = grad[i] * inv_m
        v = beta1 * current[n + i] + keep1 * g
        s = beta2 * current[2 * n + i] + keep2 * (g * g)
        current[n + i] = v
        current[2 * n + i] = s
        w = current[i] - alpha * (v * correct1) / (np.sqrt(s * correct2) + epsilon)
        current[i] = w
        total += w
    return total


@jit
def sgd_momentum(current, grad, inv_m, alpha, hyper, t):
    """scikit-learn's momentum: ``v := beta v - alpha dW``; ``W := W + v``."""
    n = grad.size
    beta = hyper.beta
    total = like(alpha, 0.0)
    for i in range(n):
        v = beta * current[n + i] - alpha * (grad[i] * inv_m)
        current[n + i] = v
        w = current[i] + v
        current[i] = w
        total += w
    return total


@jit
def nesterov(current, grad, inv_m, alpha, hyper, t):
    """scikit-learn's Nesterov momentum: ``v := beta v - alpha dW``;
    ``W := W + beta v - alpha dW``."""
    n = grad.size
    beta = hyper.beta
    total = like(alpha, 0.0)
    for i in range(n):
        step = alpha * (grad[i] * inv_m)
        v = beta * current[n + i] - step
        current[n + i] = v
        w = current[i] + (beta * v - step)
        current[i] = w
        total += w
    return total


@jit
def adam_folded(current, grad, inv_m, alpha, hyper, t):
    """scikit-learn's Adam: ``v``, ``s`` as Adam;
    ``W := W - (alpha sqrt(1 - beta2^t) / (1 - beta1^t)) v / (sqrt(s) + epsilon)``."""
    n = grad.size
    one = like(alpha, 1.0)
    beta1, beta2, epsilon = hyper.beta1, hyper.beta2, hyper.epsilon
    keep1, keep2 = one - beta1, one - beta2
    step = alpha * np.sqrt(one - beta2 ** like(alpha, t)) / (one - beta1 ** like(alpha, t))
    total = like(alpha, 0.0)
    for i in range(n):
        g = grad[i] * inv_m
        v = beta1 * current[n + i] + keep1 * g
        s = beta2 * current[2 * n + i] + keep2 * (g * g)
        current[n + i] = v
        current[2 * n + i] = s
        w = current[i] - step * v / (np.sqrt(s) + epsilon)
        current[i] = w
        total += w
    return total


#: Optimiser code -> its fused update; one entry per ``spec.OPTIMIZERS`` row.
OPTIMIZER_KERNELS = {spec.OPTIMIZERS[name].code: kernel
                     for name, kernel in (("gd", gd), ("momentum", momentum),
                                          ("rmsprop", rmsprop), ("adam", adam),
                                          ("sgd_momentum", sgd_momentum),
                                          ("nesterov", nesterov),
                                          ("adam_folded", adam_folded))}


def optimizer_update(code, current, grad, inv_m, alpha, hyper, t):
    """The fused update, in place, of the optimiser with constant ``code``; see the module."""
    raise NotImplementedError("for use inside kernels only")


@overload_kernel(optimizer_update)
def _optimizer_update(code, current, grad, inv_m, alpha, hyper, t):
    kernel = select(code, OPTIMIZER_KERNELS, "optimizer")
    return lambda code, current, grad, inv_m, alpha, hyper, t: kernel(
        current, grad, inv_m, alpha, hyper, t)
