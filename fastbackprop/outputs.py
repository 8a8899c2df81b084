"""Output layers in plain NumPy: ``A_L``, the cost, ``dA_L``, the chain rule, predictions.

One entry per row of :data:`fastbackprop.spec.OUTPUTS` in :data:`FUNCTIONS`.
Arrays are ``(n_L, m)``, one example per column; every function computes
in its input's dtype.

=========  =======================  ==========================================  ==========
output     ``A_L``                  cost ``J``                                  ``dA_L``
=========  =======================  ==========================================  ==========
sigmoid    ``1 / (1 + e^-Z)``       ``-(1/m) sum [y log a + (1-y) log(1-a)]``   ``-(y/a - (1-y)/(1-a))``
softmax    ``e^Z / sum_k e^Z_k``    ``-(1/m) sum_i sum_k y_ki log a_ki``        ``-y / a``
linear     ``Z``                    ``(1/(2m)) sum (a - y)^2``                  ``a - y``
exp        ``e^Z``                  ``(1/m) sum [y log(y/a) - y + a]``          ``1 - y/a``
=========  =======================  ==========================================  ==========

The exp output's cost is the half Poisson deviance, scikit-learn's
``MLPRegressor(loss="poisson")`` loss (``y log(y/a)`` is 0 where ``y`` is 0), and
its labels are reals >= 0 (counts, rates); through ``a = e^z`` its ``dA_L``
becomes ``dZ_L = a - y`` like the others'.

Through each activation the chain rule turns ``dA_L`` into ``dZ_L``
(:func:`backward`), and for each canonical pair the result simplifies to
the same shortcut, ``dZ_L = A_L - Y``. For softmax the activation couples
the rows of a column, so the chain rule goes through its Jacobian
``dA_k/dZ_j = A_k (1[k = j] - A_j)``: per column
``dZ = A * (dA - sum_k(dA * A))``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from . import activations, spec


def _shifted_exp(Z):
    """``top`` ``(1, m)``, each column's maximum, ``E = e^(Z - top)`` and ``S = sum_k E``
    ``(1, m)``: the shared start of :func:`softmax` and :func:`log_sum_exp`."""
    top = np.max(Z, axis=0, keepdims=True)
    E = np.exp(Z - top)
    return top, E, np.sum(E, axis=0, keepdims=True)


def softmax(Z):
    """``e^Z / sum_k e^Z_k`` per column of ``Z`` ``(n_L, m)``, computed stably.

    Each column's maximum is subtracted first (softmax does not change), so
    ``exp`` never overflows and the largest term is exactly 1.
    """
    _, E, S = _shifted_exp(np.asarray(Z))
    return E / S


def log_sum_exp(Z):
    """``log sum_k e^Z_k`` per column, ``(1, m)``, finite for any finite ``Z``."""
    top, _, S = _shifted_exp(np.asarray(Z))
    return top + np.log(S)


def _tiny(A):
    return np.finfo(np.asarray(A).dtype).tiny


def mean_cost(losses, sample_weight=None):
    """``(1/m) sum_j w_j sum_k losses[k, j]``: the per-example costs averaged over the ``m``
    columns, each weighted by its ``sample_weight`` (1 when None)."""
    per_example = np.sum(losses, axis=0)
    if sample_weight is not None:
        per_example = per_example * sample_weight
    return np.sum(per_example) / losses.shape[1]


# -- costs from A_L (clipped away from log 0) and from Z_L (stable) ---------
# Each takes an optional per-column weight: J = (1/m) sum_j w_j L_j.


def sigmoid_cost(AL, Y, w=None):
    """Cross-entropy; ``AL`` clipped to the smallest normal number away from 0 and 1."""
    tiny = _tiny(AL)
    return mean_cost(-(Y * np.log(np.maximum(AL, tiny)) + (1 - Y) * np.log(np.maximum(1 - AL, tiny))), w)


def sigmoid_cost_from_logits(ZL, Y, w=None):
    """``max(z, 0) - z y + log1p(exp(-|z|))``, averaged over the columns."""
    return mean_cost(np.maximum(ZL, 0) - ZL * Y + np.log1p(np.exp(-np.abs(ZL))), w)


def softmax_cost(AL, Y, w=None):
    """``-(1/m) sum y log a``; ``AL`` clipped away from 0 inside the log."""
    return mean_cost(-Y * np.log(np.maximum(AL, _tiny(AL))), w)


def softmax_cost_from_logits(ZL, Y, w=None):
    """``-(1/m) sum y (z - logsumexp(z))`` per column: log-sum-exp, finite for finite ``ZL``."""
    return mean_cost(-Y * (ZL - log_sum_exp(ZL)), w)


def softmax_with_cost(ZL, Y, w=None):
    """``(softmax(ZL), softmax_cost_from_logits(ZL, Y, w))`` with one ``exp`` pass: both
    start from the same ``e^(Z - top)`` and its column sums, so the bits are theirs."""
    top, E, S = _shifted_exp(ZL)
    return E / S, mean_cost(-Y * (ZL - (top + np.log(S))), w)


def _separately(forward, cost_from_logits):
    """An output's ``forward_with_cost`` where the two share no work: each on its own."""
    def forward_with_cost(ZL, Y, w=None):
        return forward(ZL), cost_from_logits(ZL, Y, w)
    return forward_with_cost


def squared_error(AL, Y, w=None):
    """``(1/(2m)) sum (a - y)^2``."""
    D = AL - Y
    return mean_cost(D * D / 2, w)


def _y_log_y(Y):
    """``y log y``, 0 where ``y`` is 0 (scipy's ``xlogy(y, y)``)."""
    Y = np.asarray(Y)
    positive = Y > 0
    return np.where(positive, Y * np.log(np.where(positive, Y, 1)), 0)


def poisson_deviance(AL, Y, w=None):
    """``(1/m) sum [y log(y/a) - y + a]`` (the half Poisson deviance); ``AL`` clipped to the
    smallest normal number away from 0 inside the log."""
    AL = np.asarray(AL)
    log_a = np.log(np.maximum(AL, _tiny(AL)))
    return mean_cost(_y_log_y(Y) - Y * log_a - Y + AL, w)


def poisson_deviance_from_logits(ZL, Y, w=None):
    """``(1/m) sum [y log y - y z - y + e^z]``: no log of ``e^z``, so finite for any finite
    ``ZL`` whose ``e^z`` is (infinite when ``e^z`` overflows: the cost is)."""
    return mean_cost(_y_log_y(Y) - Y * ZL - Y + np.exp(ZL), w)


# -- the chain rule through the output activation ---------------------------


def sigmoid_backward(dA, Z):
    """``dZ = dA * s (1 - s)``, ``s = sigmoid(Z)``."""
    return dA * activations.sigmoid_backward_factor(Z)


def softmax_backward(dA, Z):
    """``dZ = A * (dA - sum_k(dA * A))`` per column, ``A = softmax(Z)`` (the Jacobian)."""
    A = softmax(Z)
    return A * (dA - np.sum(dA * A, axis=0, keepdims=True))


def exp_backward(dA, Z):
    """``dZ = dA * e^Z`` (``e^z`` is its own derivative)."""
    return dA * np.exp(Z)


def identity_backward(dA, Z):
    """``dZ = dA`` (the linear output's ``g'`` is 1)."""
    return dA


def _copy(Z):
    """The linear output's ``A_L``: a copy of ``Z_L``."""
    return np.array(Z, copy=True)


class OutputFunctions(NamedTuple):
    """One output layer in NumPy (see the module's table)."""

    forward: Callable  # A_L = f(Z_L)
    cost: Callable  # J from (A_L, Y)
    cost_from_logits: Callable  # J from (Z_L, Y), stable
    dA: Callable  # dA_L from (A_L, Y), the course's general start
    backward: Callable  # dZ_L from (dA_L, Z_L)
    predict: Callable  # what a user of this output expects, from A_L
    forward_with_cost: Callable  # (A_L, J from Z_L) from (Z_L, Y, w): the bits of both above


FUNCTIONS = {
    "sigmoid": OutputFunctions(
        activations.sigmoid, sigmoid_cost, sigmoid_cost_from_logits,
        lambda AL, Y: -(Y / AL - (1 - Y) / (1 - AL)), sigmoid_backward,
        lambda AL: (AL > 0.5).astype(AL.dtype),
        _separately(activations.sigmoid, sigmoid_cost_from_logits)),
    "softmax": OutputFunctions(
        softmax, softmax_cost, softmax_cost_from_logits,
        lambda AL, Y: -Y / AL, softmax_backward,
        lambda AL: np.argmax(AL, axis=0),
        softmax_with_cost),
    "linear": OutputFunctions(
        _copy, squared_error, squared_error,
        lambda AL, Y: AL - Y, identity_backward,
        lambda AL: AL, _separately(_copy, squared_error)),
    "exp": OutputFunctions(
        np.exp, poisson_deviance, poisson_deviance_from_logits,
        lambda AL, Y: 1 - Y / AL, exp_backward,
        lambda AL: AL, _separately(np.exp, poisson_deviance_from_logits)),
}
assert set(FUNCTIONS) == set(spec.OUTPUTS)


def check_output_name(name, argument="output_activation"):
    """The code of output layer ``name``; ``TypeError``/``ValueError`` naming ``argument``."""
    return spec.code_of(spec.OUTPUTS, name, argument)


def functions(name, argument="output_activation"):
    """The :class:`OutputFunctions` of output layer ``name`` (checked)."""
    check_output_name(name, argument)
    return FUNCTIONS[name]
