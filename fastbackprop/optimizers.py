"""Optimisers and the learning-rate schedule in plain NumPy: one entry per row of ``spec.OPTIMIZERS``.

Per parameter ``W`` (and likewise ``b``), with ``dW`` the gradient of the
batch's cost and ``t`` counting updates from 1::

    gd        W := W - alpha dW
    momentum  v := beta v + (1 - beta) dW;                W := W - alpha v
    RMSprop   s := beta2 s + (1 - beta2) dW^2;            W := W - alpha dW / (sqrt(s) + epsilon)
    Adam      v, s as above (beta1, beta2);  v_hat = v / (1 - beta1^t);  s_hat = s / (1 - beta2^t)
              W := W - alpha v_hat / (sqrt(s_hat) + epsilon)

scikit-learn's solvers (used by :mod:`fastbackprop.sklearn`), the same in its
``_stochastic_optimizers.py``::

    sgd_momentum  v := beta v - alpha dW;                 W := W + v
    nesterov      v := beta v - alpha dW;                 W := W + beta v - alpha dW
    adam_folded   v, s as Adam;  alpha_t = alpha sqrt(1 - beta2^t) / (1 - beta1^t)
                  W := W - alpha_t v / (sqrt(s) + epsilon)

The velocity of ``sgd_momentum`` and ``nesterov`` holds the learning rate
(a changed ``alpha`` acts on new gradients only); ``adam_folded`` adds
``epsilon`` to ``sqrt(s)`` rather than to ``sqrt(s_hat)``, which weighs it
``sqrt(1 - beta2^t)`` times more in the early steps.

The state of an optimiser is a dict of its slots (``spec.OPTIMIZERS[name].state``:
``"v"``, ``"s"``), each a dict ``{"dW1": ..., "db1": ...}`` of arrays shaped
like the gradients and starting at zero, as in the course.

Learning-rate decay, per epoch ``e`` (counted from 0)::

    alpha = alpha0 / (1 + decay_rate * e)                          (time_interval None)
    alpha = alpha0 / (1 + decay_rate * floor(e / time_interval))   (the course's scheduled decay)
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from . import spec


class Hyperparameters(NamedTuple):
    """The optimisers' hyperparameters (``spec.OPTIMIZER_DEFAULTS``)."""

    beta: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8


def _gd(theta, d, slots, t, alpha, hp):
    return theta - alpha * d, {}


def _momentum(theta, d, slots, t, alpha, hp):
    v = hp.beta * slots["v"] + (1 - hp.beta) * d
    return theta - alpha * v, {"v": v}


def _rmsprop(theta, d, slots, t, alpha, hp):
    s = hp.beta2 * slots["s"] + (1 - hp.beta2) * d * d
    return theta - alpha * d / (np.sqrt(s) + hp.epsilon), {"s": s}


def _adam(theta, d, slots, t, alpha, hp):
    v = hp.beta1 * slots["v"] + (1 - hp.beta1) * d
    s = hp.beta2 * slots["s"] + (1 - hp.beta2) * d * d
    v_hat = v / (1 - hp.beta1 ** t)
    s_hat = s / (1 - hp.beta2 ** t)
    return theta - alpha * v_hat / (np.sqrt(s_hat) + hp.epsilon), {"v": v, "s": s}


def _sgd_momentum(theta, d, slots, t, alpha, hp):
    v = hp.beta * slots["v"] - alpha * d
    return theta + v, {"v": v}


def _nesterov(theta, d, slots, t, alpha, hp):
    v = hp.beta * slots["v"] - alpha * d
    return theta + (hp.beta * v - alpha * d), {"v": v}


def _adam_folded(theta, d, slots, t, alpha, hp):
    # the formula's operations in its order, each new array updated in place (the same bits
    # as the one-line expressions, with a third fewer temporaries: the drop-in's NumPy fits)
    v = hp.beta1 * slots["v"]
    v += (1 - hp.beta1) * d
    s = (1 - hp.beta2) * d
    s *= d
    s += hp.beta2 * slots["s"]  # beta2 s + (1 - beta2) d d: addition is commutative
    step = alpha * np.sqrt(1 - hp.beta2 ** t) / (1 - hp.beta1 ** t)
    denominator = np.sqrt(s)
    denominator += hp.epsilon
    change = step * v
    change /= denominator
    return theta - change, {"v": v, "s": s}


class Rule(NamedTuple):
    """One optimiser's update of one parameter: ``(theta, dtheta, slots, t, alpha, hp) -> (theta, slots)``."""

    update: Callable


#: name -> the update rule; one entry per ``spec.OPTIMIZERS`` row.
RULES = {"gd": Rule(_gd), "momentum": Rule(_momentum), "rmsprop": Rule(_rmsprop),
         "adam": Rule(_adam), "sgd_momentum": Rule(_sgd_momentum), "nesterov": Rule(_nesterov),
         "adam_folded": Rule(_adam_folded)}
assert set(RULES) == set(spec.OPTIMIZERS)


def initialize_state(parameters, optimizer):
    """The optimiser's state at ``t = 0``: ``{slot: {"dW1": zeros, ...}}`` (empty for gd)."""
    slots = spec.OPTIMIZERS[optimizer].state
    return {slot: {f"d{k}": np.zeros_like(v) for k, v in parameters.items()} for slot in slots}


def update(parameters, grads, state, t, learning_rate, optimizer="gd", hyperparameters=None):
    """One update of every parameter; returns ``(new parameters, new state)`` (inputs unchanged).

    ``t``: this update's number, from 1. The learning rate and the
    hyperparameters are cast to each parameter's dtype, so float32 stays float32.
    """
    spec.code_of(spec.OPTIMIZERS, optimizer, "optimizer")
    rule = RULES[optimizer].update
    hp = hyperparameters or Hyperparameters()
    new, new_state = {}, {slot: {} for slot in state}
    for key, theta in parameters.items():
        dtype = theta.dtype.type
        cast = Hyperparameters(*(dtype(x) for x in hp))
        slots = {slot: state[slot][f"d{key}"] for slot in state}
        new[key], updated = rule(theta, grads[f"d{key}"], slots, t, dtype(learning_rate), cast)
        for slot, value in updated.items():
            new_state[slot][f"d{key}"] = value
    return new, new_state


def learning_rate_at(learning_rate, epoch, decay_rate=0.0, time_interval=None):
    """The learning rate of epoch ``epoch`` (from 0) under the course's decay (see the module)."""
    steps = epoch if time_interval is None else epoch // time_interval
    return learning_rate / (1 + decay_rate * steps)
