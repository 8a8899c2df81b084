"""The course's equations in plain NumPy: the oracle every kernel is tested against.

Conventions (kept exactly as in the course):

* examples are **columns**: ``X`` is ``(n_x, m)``, ``Y`` is ``(n_y, m)``;
* ``layer_dims = [n_x, n_1, ..., n_L]`` and ``L = len(layer_dims) - 1``;
* ``W{l}`` is ``(n_l, n_{l-1})``, ``b{l}`` is ``(n_l, 1)``, kept in a dict
  ``parameters = {"W1": ..., "b1": ..., ...}``;
* ``Z{l}`` and ``A{l}`` are ``(n_l, m)`` and ``A0 = X``;
* every gradient ``dfoo`` has the shape of ``foo``.

The network is ``[LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT``, the output
layer one of ``sigmoid``, ``softmax`` or ``linear`` (:mod:`fastbackprop.outputs`)::

    forward   Z = W A_prev + b          A = g(Z)            A_L = output(Z_L)
    cost      sigmoid: J = -(1/m) sum [Y log A_L + (1 - Y) log(1 - A_L)]
              softmax: J = -(1/m) sum Y log A_L      linear: J = (1/(2m)) sum (A_L - Y)^2
    output    dA_L from the cost, then dZ_L by the chain rule, or directly dZ_L = A_L - Y
    backward  dZ = dA * g'(Z)
              dW = (1/m) dZ A_prev^T
              db = (1/m) sum(dZ, axis=1, keepdims=True)
              dA_prev = W^T dZ
    update    W := W - alpha dW,   b := b - alpha db

Batch normalisation (a hidden layer whose parameters hold ``gamma{l}``, ``beta{l}``,
``running_mean{l}`` and ``running_var{l}`` in place of ``b{l}``; see
:func:`batch_norm_forward`)::

    forward   Z = W A_prev;  per unit over the m columns: mu = mean(Z), sigma2 = mean((Z - mu)^2)
              Z_hat = (Z - mu) / sqrt(sigma2 + eps);  Z_tilde = gamma Z_hat + beta;  A = g(Z_tilde)
    predict   Z_hat from running_mean, running_var in place of mu, sigma2
    backward  dZ_tilde = dA * g'(Z_tilde);  dbeta = (1/m) sum dZ_tilde;  dgamma = (1/m) sum dZ_tilde Z_hat
              dZ = gamma / (m sqrt(sigma2 + eps)) (m dZ_tilde - sum dZ_tilde - Z_hat sum dZ_tilde Z_hat)
              dW = (1/m) dZ A_prev^T;  dA_prev = W^T dZ
    running   running_mean := momentum running_mean + (1 - momentum) mu   (likewise sigma2, biased)

Every function computes in the dtype of its inputs (float32 stays float32).
The step functions check shapes, which is cheap; the entry points that take
data from a user (:func:`L_layer_model`, :func:`nn_model`,
:func:`gradient_check`) also check values (NaN, labels outside {0, 1}).
"""

from __future__ import annotations

import numpy as np

from . import activations, optimizers, outputs, rng
from .activations import check_activation_name
from .layout import BATCH_NORM, BATCH_NORM_START, DENSE, KINDS, Schema
from .sparse import is_sparse
from .validation import (
    check_batch_norm_layers,
    check_dtype,
    check_labels,
    check_layer_activation,
    check_init,
    check_layer_dims,
    check_linear,
    check_keep_prob,
    check_learning_rate,
    check_matrix,
    check_sample_weight,
    check_parameters,
    check_positive_int,
    check_X,
)

# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------

#: Scale of W{l} for each named scheme, as a function of n_{l-1}.
INIT_SCALES = {
    "scaled": lambda n_prev: 0.01,
    "he": lambda n_prev: np.sqrt(2.0 / n_prev),
    "xavier": lambda n_prev: np.sqrt(1.0 / n_prev),
}


def initialize_parameters(layer_dims, init="he", seed=None, dtype=np.float64):
    """Random ``W{l}``, zero ``b{l}`` for ``layer_dims = [n_x, n_1, ..., n_L]``.

    ``W{l}`` is ``(n_l, n_{l-1})`` drawn from N(0, 1) times the scheme's scale:
    ``"scaled"`` 0.01 (the course's shallow network), ``"he"``
    sqrt(2 / n_{l-1}), ``"xavier"`` sqrt(1 / n_{l-1}). ``b{l}`` is
    ``(n_l, 1)`` of zeros. W is never zero: zeros would keep every hidden
    unit of a layer identical forever.

    The numbers are drawn in float64 from ``numpy.random.default_rng(seed)``
    and then cast, so float32 and float64 parameters from one seed agree to
    float32 rounding.
    """
    dims = check_layer_dims(layer_dims)
    init = check_init(init)
    dtype = check_dtype(dtype)
    rng = np.random.default_rng(seed)
    parameters = {}
    for l in range(1, len(dims)):
        scale = INIT_SCALES[init](dims[l - 1])
        parameters[f"W{l}"] = (rng.standard_normal((dims[l], dims[l - 1])) * scale).astype(dtype)
        parameters[f"b{l}"] = np.zeros((dims[l], 1), dtype=dtype)
    return parameters


def initialize_batch_norm(parameters, batch_norm):
    """``parameters`` with batch normalisation in the hidden layers ``batch_norm`` says (one
    bool per hidden layer): ``b{l}`` dropped, ``gamma{l}`` 1, ``beta{l}`` 0, ``running_mean{l}``
    0 and ``running_var{l}`` 1 (each ``(n_l, 1)``, in ``W{l}``'s dtype). A new dict; the
    arrays of the other layers are shared."""
    dims = check_parameters(parameters)
    flags = check_batch_norm_layers(batch_norm, len(dims) - 2)
    out = {}
    for l in range(1, len(dims)):
        W = parameters[f"W{l}"]
        out[f"W{l}"] = W
        if l < len(dims) - 1 and flags[l - 1]:
            for kind, value in BATCH_NORM_START.items():
                out[f"{kind}{l}"] = np.full((dims[l], 1), value, dtype=W.dtype)
        else:
            out[f"b{l}"] = parameters[f"b{l}"] if f"b{l}" in parameters else np.zeros(
                (dims[l], 1), dtype=W.dtype)
    return out


# ---------------------------------------------------------------------------
# Batch normalisation (a hidden layer's Z, per unit over the batch)
# ---------------------------------------------------------------------------

#: The defaults of ``batch_norm_epsilon`` and ``batch_norm_momentum`` (PyTorch's epsilon; the
#: course's ``v = beta v + (1 - beta) x`` with beta 0.9, which is PyTorch's momentum=0.1).
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9


def batch_norm_forward(Z, gamma, beta, epsilon=BATCH_NORM_EPSILON):
    """Normalise each unit (row) of ``Z`` ``(n_l, m)`` over the batch's ``m`` columns, then
    scale and shift::

        mu = (1/m) sum_i Z_i          sigma2 = (1/m) sum_i (Z_i - mu)^2     (biased)
        Z_hat = (Z - mu) / sqrt(sigma2 + epsilon)
        Z_tilde = gamma Z_hat + beta

    gamma, beta: ``(n_l, 1)``. Returns ``Z_tilde`` ``(n_l, m)`` and ``cache = (Z_hat, gamma,
    std, mu, sigma2)`` with ``std = sqrt(sigma2 + epsilon)``, ``mu``, ``sigma2`` ``(n_l, 1)``.

    A batch of one column, or a unit whose ``Z`` is constant over the batch, has
    ``sigma2 = 0`` (two passes: ``sigma2`` is never negative), so ``Z_hat`` is 0 (or the
    rounding of ``Z - mu`` over ``sqrt(epsilon)``), ``Z_tilde = beta``, and nothing is NaN
    for any ``epsilon > 0`` that is a normal number of ``Z``'s dtype.
    """
    m = Z.shape[1]
    eps = np.asarray(epsilon, dtype=Z.dtype)
    mu = np.sum(Z, axis=1, keepdims=True) / np.asarray(m, dtype=Z.dtype)
    centred = Z - mu
    sigma2 = np.sum(centred * centred, axis=1, keepdims=True) / np.asarray(m, dtype=Z.dtype)
    std = np.sqrt(sigma2 + eps)
    Z_hat = centred / std
    return gamma * Z_hat + beta, (Z_hat, gamma, std, mu, sigma2)


def batch_norm_predict(Z, gamma, beta, running_mean, running_var, epsilon=BATCH_NORM_EPSILON):
    """``Z_tilde = gamma (Z - running_mean) / sqrt(running_var + epsilon) + beta``: the
    prediction-time normalisation, with the running statistics (all ``(n_l, 1)``)."""
    eps = np.asarray(epsilon, dtype=Z.dtype)
    return gamma * (Z - running_mean) / np.sqrt(running_var + eps) + beta


def batch_norm_backward(dZ_tilde, cache):
    """Gradients of :func:`batch_norm_forward` from ``dZ_tilde`` ``(n_l, m)`` (in the course's
    per-example scale: ``dZ_L = A_L - Y``, each ``dW = (1/m) dZ A_prev^T``)::

        dbeta = (1/m) sum_i dZ_tilde_i          dgamma = (1/m) sum_i dZ_tilde_i Z_hat_i
        dZ = gamma / (m sqrt(sigma2 + eps)) (m dZ_tilde - sum_i dZ_tilde_i
                                              - Z_hat sum_i dZ_tilde_i Z_hat_i)

    ``cache`` from :func:`batch_norm_forward`. Returns ``dZ`` ``(n_l, m)``, ``dgamma``,
    ``dbeta`` ``(n_l, 1)``. A one-column batch gives ``dZ = 0``.
    """
    Z_hat, gamma, std, _, _ = cache
    m = np.asarray(dZ_tilde.shape[1], dtype=dZ_tilde.dtype)
    sum_d = np.sum(dZ_tilde, axis=1, keepdims=True)
    sum_dz = np.sum(dZ_tilde * Z_hat, axis=1, keepdims=True)
    dZ = gamma / (m * std) * (m * dZ_tilde - sum_d - Z_hat * sum_dz)
    return dZ, sum_dz / m, sum_d / m


def running_statistics(parameters, caches, momentum=BATCH_NORM_MOMENTUM):
    """The running averages after one training batch, for every batch-normalised layer::

        running_mean := momentum running_mean + (1 - momentum) mu
        running_var  := momentum running_var  + (1 - momentum) sigma2     (biased sigma2)

    (the course's exponentially weighted average; PyTorch's ``momentum`` is ``1 -
    momentum`` here). ``caches`` from ``L_model_forward(..., training=True)``. Returns a
    dict ``{"running_mean{l}": ..., "running_var{l}": ...}`` of new arrays.
    """
    new = {}
    for l, cache in enumerate(caches, start=1):
        if len(cache) < 3:
            continue
        _, _, _, mu, sigma2 = cache[2]
        keep = np.asarray(momentum, dtype=mu.dtype)
        for kind, batch in (("running_mean", mu), ("running_var", sigma2)):
            old = parameters[f"{kind}{l}"]
            new[f"{kind}{l}"] = keep * old + (np.asarray(1, dtype=mu.dtype) - keep) * batch
    return new


def fold_batch_norm(parameters, epsilon=BATCH_NORM_EPSILON):
    """The dense network that predicts as ``parameters`` does with its running statistics:
    each batch-normalised layer's ``W{l}``, ``b{l}`` become::

        s = gamma / sqrt(running_var + epsilon)
        W{l} := s * W{l}  (each row scaled)      b{l} := beta - s * running_mean

    A new dict of ``W1, b1, ..., WL, bL`` (the other layers' arrays shared); ``parameters``
    without batch norm is returned as it is."""
    schema = Schema.of(parameters)
    if not schema.has_batch_norm:
        return parameters
    out = {}
    for l, kinds in enumerate(schema.kinds, start=1):
        W = parameters[f"W{l}"]
        if "b" in kinds:
            out[f"W{l}"], out[f"b{l}"] = W, parameters[f"b{l}"]
            continue
        eps = np.asarray(epsilon, dtype=W.dtype)
        s = parameters[f"gamma{l}"] / np.sqrt(parameters[f"running_var{l}"] + eps)
        out[f"W{l}"] = s * W
        out[f"b{l}"] = parameters[f"beta{l}"] - s * parameters[f"running_mean{l}"]
    return out


# ---------------------------------------------------------------------------
# Forward propagation
# ---------------------------------------------------------------------------


def linear_forward(A_prev, W, b):
    """Z = W A_prev + b.

    A_prev: ``(n_{l-1}, m)``; W: ``(n_l, n_{l-1})``; b: ``(n_l, 1)``.
    Returns ``Z`` ``(n_l, m)`` and ``cache = (A_prev, W, b)``.
    """
    check_linear(A_prev, W, b)
    return _linear_forward(A_prev, W, b)


def _linear_forward(A_prev, W, b):
    """:func:`linear_forward` on arrays its callers have checked."""
    Z = W @ A_prev
    if Z.dtype == np.result_type(Z, b):
        Z += b  # in place: the same sums as ``W @ A_prev + b``, without a second array
    else:
        Z = Z + b
    return Z, (A_prev, W, b)


def linear_activation_forward(A_prev, W, b, activation):
    """A = g(W A_prev + b) for the activation named ``activation``.

    ``activation``: a hidden activation or an output layer (``"softmax"``
    works per column, ``"linear"`` is the identity).
    A_prev: ``(n_{l-1}, m)``; W: ``(n_l, n_{l-1})``; b: ``(n_l, 1)``.
    Returns ``A`` ``(n_l, m)`` and ``cache = (linear_cache, Z)`` where
    ``linear_cache = (A_prev, W, b)`` and ``Z`` is ``(n_l, m)``.
    """
    check_layer_activation(activation)
    check_linear(A_prev, W, b)
    return _linear_activation_forward(A_prev, W, b, activation)


def _linear_activation_forward(A_prev, W, b, activation):
    """:func:`linear_activation_forward` on arrays and a name its callers have checked."""
    Z, linear_cache = _linear_forward(A_prev, W, b)
    if activation in outputs.FUNCTIONS:
        A = outputs.FUNCTIONS[activation].forward(Z)
    else:
        A = activations.FUNCTIONS[activation][0](Z)
    return A, (linear_cache, Z)


def linear_batch_norm_activation_forward(A_prev, W, gamma, beta, activation, *,
                                         running=None, epsilon=BATCH_NORM_EPSILON):
    """``A = g(batch_norm(W A_prev))`` for a hidden layer with batch normalisation.

    A_prev: ``(n_{l-1}, m)``; W: ``(n_l, n_{l-1})``; gamma, beta: ``(n_l, 1)``.
    ``running``: None in training (the batch's own statistics, :func:`batch_norm_forward`),
    or ``(running_mean, running_var)`` for prediction (:func:`batch_norm_predict`).
    Returns ``A`` ``(n_l, m)`` and ``cache = ((A_prev, W, None), Z_tilde, bn_cache)``
    (``bn_cache`` None for prediction).
    """
    check_activation_name(activation, "activation")
    check_matrix(W, "W", row_name="n_l", col_name="n_{l-1}")
    check_matrix(A_prev, "A_prev", rows=W.shape[1], row_name="n_{l-1}")
    return _linear_batch_norm_activation_forward(A_prev, W, gamma, beta, activation,
                                                 running, epsilon)


def _linear_batch_norm_activation_forward(A_prev, W, gamma, beta, activation, running, epsilon):
    """:func:`linear_batch_norm_activation_forward` on arrays its callers have checked."""
    Z = W @ A_prev
    if running is None:
        Z_tilde, bn_cache = batch_norm_forward(Z, gamma, beta, epsilon)
    else:
        Z_tilde, bn_cache = batch_norm_predict(Z, gamma, beta, *running, epsilon), None
    return (activations.FUNCTIONS[activation][0](Z_tilde),
            ((A_prev, W, None), Z_tilde, bn_cache))


def L_model_forward(X, parameters, hidden_activation="relu", output_activation="sigmoid",
                    dropout=None, *, training=False, batch_norm_epsilon=BATCH_NORM_EPSILON):
    """``[LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT`` on ``X`` ``(n_x, m)``.

    ``dropout``: None, or one entry per hidden layer, each None or
    ``(D, keep_prob)`` with ``D`` a 0/1 mask ``(n_l, m)``: inverted dropout,
    ``A{l} := A{l} * D / keep_prob`` (training only; see
    :func:`fastbackprop.rng.dropout_mask` for the masks training draws).

    Batch-normalised layers (``gamma{l}`` in ``parameters``): with ``training``, normalised
    by the batch's own statistics (:func:`linear_batch_norm_activation_forward`), else by
    the running ones; ``batch_norm_epsilon`` is their ``epsilon``. Without batch norm
    ``training`` changes nothing.

    Returns ``AL`` ``(n_L, m)`` and ``caches``: a list of L caches, one per
    layer, each as returned by :func:`linear_activation_forward` (with
    dropout, ``A`` is the dropped and rescaled one), or by
    :func:`linear_batch_norm_activation_forward` for a batch-normalised layer.
    """
    check_activation_name(hidden_activation, "hidden_activation")
    outputs.check_output_name(output_activation)
    dims = check_parameters(parameters)
    check_matrix(X, "X", rows=dims[0], row_name="n_x")
    return _L_model_forward(X, parameters, len(dims) - 1, hidden_activation, output_activation,
                            dropout, training, batch_norm_epsilon)


def _L_model_forward(X, parameters, L, hidden_activation, output_activation, dropout, training,
                     batch_norm_epsilon):
    """:func:`L_model_forward` of an ``L``-layer network, on arguments its callers have
    checked (the NumPy backend's trainer checks them once, before its first step)."""
    A, caches = _hidden_layers_forward(X, parameters, L, hidden_activation, dropout, training,
                                       batch_norm_epsilon)
    AL, cache = _linear_activation_forward(
        A, parameters[f"W{L}"], parameters[f"b{L}"], output_activation
    )
    caches.append(cache)
    return AL, caches


def _hidden_layers_forward(X, parameters, L, hidden_activation, dropout, training,
                           batch_norm_epsilon):
    """Layers ``1 .. L-1`` of :func:`_L_model_forward`: ``A{L-1}`` ``(n_{L-1}, m)`` (``X``
    when ``L = 1``) and their ``L - 1`` caches, a list the output layer's cache is appended
    to."""
    caches = []
    A = X
    for l in range(1, L):
        if f"gamma{l}" in parameters:
            running = None if training else (parameters[f"running_mean{l}"],
                                             parameters[f"running_var{l}"])
            A, cache = _linear_batch_norm_activation_forward(
                A, parameters[f"W{l}"], parameters[f"gamma{l}"], parameters[f"beta{l}"],
                hidden_activation, running, batch_norm_epsilon)
        else:
            A, cache = _linear_activation_forward(
                A, parameters[f"W{l}"], parameters[f"b{l}"], hidden_activation
            )
        if dropout is not None and dropout[l - 1] is not None:
            D, keep_prob = dropout[l - 1]
            A = A * D / np.asarray(keep_prob, dtype=A.dtype)
        caches.append(cache)
    return A, caches


# ---------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------


def compute_cost(AL, Y, output_activation="sigmoid", sample_weight=None):
    """The cost ``J`` of the output layer from ``AL``, a Python float.

    ``sample_weight``: None, or a weight per column ``(m,)``:
    ``J = (1/m) sum_j w_j L_j`` with ``L_j`` the column's cost.

    AL, Y: ``(n_y, m)``. sigmoid: cross-entropy ``-(1/m) sum [Y log AL +
    (1 - Y) log(1 - AL)]``; softmax: ``-(1/m) sum Y log AL``; linear:
    ``(1/(2m)) sum (AL - Y)^2``. ``AL`` is clipped to the smallest positive
    normal number of its dtype away from 0 (and 1) inside the logs, so the
    cost stays finite when a probability rounds to 0 or 1 (each such term
    then counts about 708 in float64, 87 in float32). For a cost that stays
    exact in the saturated regime, use :func:`compute_cost_from_logits` on ``ZL``.
    """
    cost = outputs.functions(output_activation).cost
    AL = np.asarray(AL)
    Y = np.asarray(Y)
    check_matrix(AL, "AL", row_name="n_y")
    check_matrix(Y, "Y", rows=AL.shape[0], cols=AL.shape[1], row_name="n_y")
    return float(cost(AL, Y, check_sample_weight(sample_weight, AL.shape[1], AL.dtype)))


def compute_cost_from_logits(ZL, Y, output_activation="sigmoid", sample_weight=None):
    """The same cost ``J``, computed stably from ``ZL`` (``AL = output(ZL)``).

    ZL, Y: ``(n_y, m)``. sigmoid: ``max(z, 0) - z y + log1p(exp(-|z|))``;
    softmax: ``-y (z - logsumexp(z))`` per column, log-sum-exp taken after
    subtracting the column's maximum; linear: as :func:`compute_cost`.
    Finite for any finite ``ZL``.
    """
    cost = outputs.functions(output_activation).cost_from_logits
    ZL = np.asarray(ZL)
    Y = np.asarray(Y)
    check_matrix(ZL, "ZL", row_name="n_y")
    check_matrix(Y, "Y", rows=ZL.shape[0], cols=ZL.shape[1], row_name="n_y")
    return float(cost(ZL, Y, check_sample_weight(sample_weight, ZL.shape[1], ZL.dtype)))


def l2_cost(parameters, l2, m):
    """The course's L2 term ``(l2 / (2m)) sum_l ||W{l}||_F^2`` (biases are not penalised)."""
    if l2 == 0:
        return 0.0
    weights = [value for key, value in parameters.items() if key[0] == "W"]
    return float(l2 / (2 * m) * sum(np.sum(np.square(W)) for W in weights))


# ---------------------------------------------------------------------------
# Backward propagation
# ---------------------------------------------------------------------------


def linear_backward(dZ, cache, input_gradient=True):
    """Gradients of the linear step from ``dZ`` ``(n_l, m)``.

    ``cache = (A_prev, W, b)``. Returns ``dA_prev = W^T dZ``
    ``(n_{l-1}, m)``, ``dW = (1/m) dZ A_prev^T`` ``(n_l, n_{l-1})`` and
    ``db = (1/m) sum(dZ, axis=1, keepdims=True)`` ``(n_l, 1)``.
    ``input_gradient=False`` skips ``dA_prev`` (None): training needs no ``dA0``.
    """
    A_prev, W, b = cache
    check_linear(A_prev, W, b)
    check_matrix(dZ, "dZ", rows=W.shape[0], cols=A_prev.shape[1], row_name="n_l")
    return _linear_backward(dZ, cache, input_gradient)


def _linear_backward(dZ, cache, input_gradient, out=None):
    """:func:`linear_backward` on arrays its callers have checked. ``out``: None, or the
    arrays ``(dW, db)`` to write into (views of a flat gradient): the same bits."""
    A_prev, W, _ = cache
    m = A_prev.shape[1]
    if out is None:
        dW = (dZ @ A_prev.T) / m
        db = dZ.sum(axis=1, keepdims=True) / m
    else:
        dW, db = out
        if isinstance(A_prev, np.ndarray):
            np.matmul(dZ, A_prev.T, out=dW)
        else:  # a sparse X: SciPy's product
            dW[...] = dZ @ A_prev.T
        dW /= m
        np.sum(dZ, axis=1, keepdims=True, out=db)
        db /= m
    dA_prev = W.T @ dZ if input_gradient else None
    return dA_prev, dW, db


def linear_activation_backward(dA, cache, activation, input_gradient=True):
    """Gradients of ``A = g(W A_prev + b)`` from ``dA`` ``(n_l, m)``.

    ``cache = ((A_prev, W, b), Z)`` as returned by
    :func:`linear_activation_forward`. Computes ``dZ = dA * g'(Z)`` (for
    ``"softmax"`` through its Jacobian, per column ``dZ = A * (dA -
    sum_k(dA * A))``) and returns ``dA_prev, dW, db`` as
    :func:`linear_backward` does (``input_gradient``: as there).
    """
    check_layer_activation(activation)
    linear_cache, Z = cache
    check_matrix(dA, "dA", rows=Z.shape[0], cols=Z.shape[1], row_name="n_l")
    return linear_backward(_chain(dA, Z, activation), linear_cache, input_gradient)


def _linear_activation_backward(dA, cache, activation, input_gradient, A, out=None):
    """:func:`linear_activation_backward` on arguments its callers have checked; ``A``: None,
    or the layer's ``g(Z)`` (see :func:`_chain`); ``out`` as :func:`_linear_backward`'s."""
    linear_cache, Z = cache
    return _linear_backward(_chain(dA, Z, activation, A), linear_cache, input_gradient, out)


def _chain(dA, Z, activation, A=None):
    """``dZ = dA * g'(Z)`` (an output layer: through its Jacobian). With ``A = g(Z)`` given
    (a hidden layer's), ``g'`` is computed from ``A``, as the course's planar network
    does (``1 - A^2``): the same values, without computing ``g`` again."""
    if A is not None:
        return dA * activations.FUNCTIONS[activation][2](A)
    if activation in outputs.FUNCTIONS:
        return outputs.FUNCTIONS[activation].backward(dA, Z)
    return dA * activations.FUNCTIONS[activation][1](Z)


def linear_batch_norm_activation_backward(dA, cache, activation, input_gradient=True):
    """Gradients of :func:`linear_batch_norm_activation_forward` (in training) from ``dA``
    ``(n_l, m)``: ``dZ_tilde = dA * g'(Z_tilde)``, then :func:`batch_norm_backward` and the
    linear step without a bias. Returns ``dA_prev`` ``(n_{l-1}, m)`` (None without
    ``input_gradient``), ``dW``, ``dgamma``, ``dbeta``."""
    check_activation_name(activation, "activation")
    (A_prev, W, _), Z_tilde, bn_cache = cache
    if bn_cache is None:
        raise ValueError("cache: a batch-normalised layer's backward pass needs the forward "
                         "pass's batch statistics (L_model_forward(..., training=True))")
    check_matrix(dA, "dA", rows=Z_tilde.shape[0], cols=Z_tilde.shape[1], row_name="n_l")
    return _linear_batch_norm_activation_backward(dA, cache, activation, input_gradient, None)


def _linear_batch_norm_activation_backward(dA, cache, activation, input_gradient, A):
    """:func:`linear_batch_norm_activation_backward` on arguments its callers have checked;
    ``A``: None, or the layer's ``g(Z_tilde)`` (see :func:`_chain`)."""
    (A_prev, W, _), Z_tilde, bn_cache = cache
    dZ, dgamma, dbeta = batch_norm_backward(_chain(dA, Z_tilde, activation, A), bn_cache)
    m = A_prev.shape[1]
    return W.T @ dZ if input_gradient else None, (dZ @ A_prev.T) / m, dgamma, dbeta


OUTPUT_STARTS = ("dA", "dZ")


def L_model_backward(AL, Y, caches, hidden_activation="relu", output_start="dA",
                     output_activation="sigmoid", *, l2=0.0, dropout=None, sample_weight=None,
                     input_gradient=True):
    """Backward pass of ``[LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT``.

    AL, Y: ``(n_L, m)``; ``caches`` from :func:`L_model_forward`.

    ``output_start="dA"`` (the course's general start) begins from the
    cost's ``dA_L`` (sigmoid: ``-(Y / AL - (1 - Y) / (1 - AL))``; softmax:
    ``-Y / AL``; linear: ``AL - Y``) and the chain rule through the output
    activation; ``output_start="dZ"`` uses the shortcut ``dZ_L = AL - Y``
    they all simplify to, which also stays finite when ``AL`` rounds to
    exactly 0 or 1.

    Regularisation, as the forward pass had it: ``l2`` adds ``(l2 / m) W{l}``
    to every ``dW{l}``; ``dropout`` (the forward pass's masks) sets
    ``dA{l} := dA{l} * D / keep_prob`` on the hidden layers;
    ``sample_weight`` ``(m,)`` multiplies each column's ``dA_L`` (or
    ``dZ_L``) by its weight.

    Returns ``grads`` with ``dW{l}`` ``(n_l, n_{l-1})``, ``db{l}``
    ``(n_l, 1)`` for l = 1..L and ``dA{l}`` ``(n_l, m)`` for l = 0..L-1; a
    batch-normalised layer (``caches`` from ``L_model_forward(..., training=True)``) has
    ``dgamma{l}``, ``dbeta{l}`` ``(n_l, 1)`` in place of ``db{l}``.
    ``input_gradient=False`` leaves out ``dA0`` (``W1^T dZ1``), which no update reads.
    """
    check_activation_name(hidden_activation, "hidden_activation")
    outputs.check_output_name(output_activation)
    if output_start not in OUTPUT_STARTS:
        raise ValueError(f"output_start must be one of {list(OUTPUT_STARTS)}; got {output_start!r}")
    AL = np.asarray(AL)
    check_matrix(AL, "AL", row_name="n_L")
    check_matrix(Y, "Y", rows=AL.shape[0], cols=AL.shape[1], row_name="n_L")
    Y = np.asarray(Y, dtype=AL.dtype)
    w = check_sample_weight(sample_weight, AL.shape[1], AL.dtype)
    return _L_model_backward(AL, Y, caches, hidden_activation, output_start, output_activation,
                             l2, dropout, w, input_gradient, checked=True)


def _L_model_backward(AL, Y, caches, hidden_activation, output_start, output_activation, l2,
                      dropout, w, input_gradient, checked=False, out=None):
    """:func:`L_model_backward` on arguments its caller has checked (``w``: the checked
    sample weights, or None).

    ``checked``: each layer's step checks its cache and computes ``g'`` from ``Z``, as for
    caches a user passes. Without it (the NumPy backend's trainer, whose caches
    :func:`_L_model_forward` made) a hidden layer without dropout takes ``g'`` from its
    ``A``, the next layer's ``A_prev``: the same values, without computing ``g`` again.

    ``out`` (unchecked only): None, or a dict of arrays keyed as ``grads``' ``dW{l}``,
    ``db{l}`` (``dgamma{l}``, ``dbeta{l}``), views of the trainer's flat gradient, which
    the gradients are written into (and returned in ``grads``): the same bits, without
    stacking them afterwards.
    """
    output = outputs.FUNCTIONS[output_activation]
    w = 1 if w is None else w
    L = len(caches)
    grads = {}
    linear_cache, ZL = caches[L - 1]
    through = input_gradient or L > 1  # the output layer's dA_prev is dA0 when L = 1
    if output_start == "dA":
        dZ = _chain(output.dA(AL, Y) * w, ZL, output_activation)
    else:
        dZ = (AL - Y) * w
    if checked:
        dA_prev, dW, db = linear_backward(dZ, linear_cache, through)
    else:
        dA_prev, dW, db = _linear_backward(dZ, linear_cache, through,
                                           _views(out, "dW", "db", L))
    grads[f"dA{L - 1}"], grads[f"dW{L}"], grads[f"db{L}"] = dA_prev, dW, db
    for l in reversed(range(1, L)):
        dA = grads[f"dA{l}"]
        dropped = dropout is not None and dropout[l - 1] is not None
        if dropped:
            D, keep_prob = dropout[l - 1]
            dA = dA * D / np.asarray(keep_prob, dtype=dA.dtype)
        through = input_gradient or l > 1
        normalised = len(caches[l - 1]) == 3
        if checked:
            step = (linear_batch_norm_activation_backward if normalised
                    else linear_activation_backward)
            back = step(dA, caches[l - 1], hidden_activation, through)
        else:
            A = None if dropped else caches[l][0][0]
            if normalised:
                back = _linear_batch_norm_activation_backward(dA, caches[l - 1],
                                                              hidden_activation, through, A)
                back = (back[0],) + _written(out, back[1:], ("dW", "dgamma", "dbeta"), l)
            else:
                back = _linear_activation_backward(dA, caches[l - 1], hidden_activation,
                                                   through, A, _views(out, "dW", "db", l))
        if normalised:
            grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"dgamma{l}"], grads[f"dbeta{l}"] = back
        else:
            grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"db{l}"] = back
    if not input_gradient:
        del grads["dA0"]
    if l2:
        m = AL.shape[1]
        for l in range(1, L + 1):
            W = caches[l - 1][0][1]
            penalty = np.asarray(l2 / m, dtype=W.dtype) * W
            dW = grads[f"dW{l}"]
            grads[f"dW{l}"] = dW + penalty if out is None else np.add(dW, penalty, out=dW)
    return grads


def _views(out, dW, db, l):
    """``(out[dW{l}], out[db{l}])``, or None without ``out``."""
    return None if out is None else (out[f"{dW}{l}"], out[f"{db}{l}"])


def _written(out, values, names, l):
    """``values`` written into ``out``'s arrays of ``names`` (layer ``l``) and returned as
    those arrays; ``values`` themselves without ``out``."""
    if out is None:
        return tuple(values)
    for value, name in zip(values, names):
        out[f"{name}{l}"][...] = value
    return tuple(out[f"{name}{l}"] for name in names)


def update_parameters(parameters, grads, learning_rate):
    """One gradient-descent step: ``W := W - alpha dW``, ``b := b - alpha db``.

    Returns a new dict; ``parameters`` is left unchanged. The learning rate
    is cast to each array's dtype, so float32 stays float32.
    """
    schema = Schema.of(parameters)
    new = {}
    for e in schema.entries:
        value = parameters[e.key]
        if not KINDS[e.kind].trained:  # the running statistics: not gradient descent's
            new[e.key] = value
            continue
        grad = grads[f"d{e.key}"]
        if np.shape(grad) != np.shape(value):
            raise ValueError(
                f"grads['d{e.key}'] must have the shape of {e.key}, {np.shape(value)}; "
                f"got {np.shape(grad)}"
            )
        alpha = np.asarray(learning_rate, dtype=value.dtype)
        new[e.key] = value - alpha * grad
    return new


def predict(X, parameters, hidden_activation="relu", output_activation="sigmoid"):
    """What the output layer predicts on ``X`` ``(n_x, m)``.

    sigmoid: 0/1 ``(n_L, m)``, 1 where ``AL > 0.5``, in ``AL``'s dtype;
    softmax: the class index per column, ``argmax(AL, axis=0)``, int ``(m,)``;
    linear: the values ``AL`` ``(n_L, m)``.
    """
    AL, _ = L_model_forward(X, parameters, hidden_activation, output_activation)
    return outputs.FUNCTIONS[output_activation].predict(AL)


# ---------------------------------------------------------------------------
# The one-hidden-layer network, as the course writes it out
# ---------------------------------------------------------------------------


def forward_propagation(X, parameters, hidden_activation="tanh"):
    """The four forward equations of the 2-layer network.

    ::

        Z1 = W1 X + b1      A1 = g1(Z1)
        Z2 = W2 A1 + b2     A2 = sigmoid(Z2)

    X: ``(n_x, m)``; W1 ``(n_h, n_x)``, b1 ``(n_h, 1)``, W2 ``(n_y, n_h)``,
    b2 ``(n_y, 1)``. Returns ``A2`` ``(n_y, m)`` and
    ``cache = {"Z1", "A1", "Z2", "A2"}``.
    """
    check_activation_name(hidden_activation, "hidden_activation")
    dims = check_parameters(parameters)
    if len(dims) != 3:
        raise ValueError(f"parameters must describe a 2-layer network (W1, b1, W2, b2); got layer sizes {dims}")
    check_matrix(X, "X", rows=dims[0], row_name="n_x")
    W1, b1, W2, b2 = (parameters[k] for k in ("W1", "b1", "W2", "b2"))
    Z1 = W1 @ X + b1
    A1 = activations.forward(Z1, hidden_activation)
    Z2 = W2 @ A1 + b2
    A2 = activations.sigmoid(Z2)
    return A2, {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def backward_propagation(parameters, cache, X, Y, hidden_activation="tanh"):
    """The six backward equations of the 2-layer network.

    ::

        dZ2 = A2 - Y
        dW2 = (1/m) dZ2 A1^T
        db2 = (1/m) sum(dZ2, axis=1, keepdims=True)
        dZ1 = W2^T dZ2 * g1'(Z1)
        dW1 = (1/m) dZ1 X^T
        db1 = (1/m) sum(dZ1, axis=1, keepdims=True)

    Returns ``grads = {"dW1", "db1", "dW2", "db2"}``, each of its parameter's shape.
    """
    m = X.shape[1]
    W2 = parameters["W2"]
    A1, A2, Z1 = cache["A1"], cache["A2"], cache["Z1"]
    check_matrix(Y, "Y", rows=A2.shape[0], cols=m, row_name="n_y")
    dZ2 = A2 - Y
    dW2 = (dZ2 @ A1.T) / m
    db2 = np.sum(dZ2, axis=1, keepdims=True) / m
    dZ1 = (W2.T @ dZ2) * activations.derivative(Z1, hidden_activation)
    dW1 = (dZ1 @ X.T) / m
    db1 = np.sum(dZ1, axis=1, keepdims=True) / m
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


# ---------------------------------------------------------------------------
# Training loops (entry points: they check values as well as shapes)
# ---------------------------------------------------------------------------


def random_mini_batches(X, Y, batch_size=64, seed=0, epoch=0, shuffle=True):
    """The mini-batches of epoch ``epoch``: a list of ``(X_b, Y_b)``, ``(n_x, m_b)`` and ``(n_y, m_b)``.

    The columns are put in the order :func:`fastbackprop.rng.permutation`
    gives for ``(seed, epoch)`` (or kept in order when ``shuffle`` is
    False), then cut in order into batches of ``batch_size``; the last
    batch keeps the ``m mod batch_size`` leftover columns (the course's
    ``random_mini_batches``). ``batch_size=None``: one batch of all ``m``
    columns, in order.
    """
    return [(X[:, columns], Y[:, columns])
            for columns in mini_batch_columns(X.shape[1], batch_size, seed, epoch, shuffle)]


def batch_columns(X, columns=None):
    """``X[:, columns]`` as the products take it: a C-ordered array (``columns`` None: all of
    ``X``, without a copy when it is C-ordered already; a SciPy sparse ``X``: its own columns).

    NumPy's ``X[:, index]`` comes out in Fortran order, and BLAS may round a product of one
    memory order otherwise than the other (OpenBLAS's AVX-512 kernels do, by an ulp). Every
    batch that :func:`L_layer_model` and the NumPy backend multiply goes through here, so the
    two agree to the bit, and a full batch is exactly one unshuffled batch of every column.
    """
    if is_sparse(X):
        return X if columns is None else X[:, columns]
    return np.ascontiguousarray(X) if columns is None else np.take(X, columns, axis=1)


def mini_batch_columns(m, batch_size=64, seed=0, epoch=0, shuffle=True):
    """The column indices of each mini-batch of epoch ``epoch`` (see :func:`random_mini_batches`)."""
    if batch_size is None:
        return [np.arange(m)]
    order = rng.permutation(m, seed, epoch) if shuffle else np.arange(m)
    return [order[k:k + batch_size] for k in range(0, m, batch_size)]


def dropout_masks(keep_probs, shapes, seed, t):
    """The ``dropout`` argument of :func:`L_model_forward` for update ``t``: ``(D, keep)`` per
    hidden layer (None where ``keep`` is 1), ``D`` from :func:`fastbackprop.rng.dropout_mask`."""
    return [None if keep == 1 else (rng.dropout_mask(seed, t, l, shape, keep), keep)
            for l, (keep, shape) in enumerate(zip(keep_probs, shapes), start=1)]


def initialize_optimizer(parameters, optimizer="gd"):
    """The optimiser's state at ``t = 0``: ``{"v": {"dW1": 0, ...}, "s": ...}`` as it needs."""
    return optimizers.initialize_state(parameters, optimizer)


def update_parameters_with_optimizer(parameters, grads, state, t, learning_rate, optimizer="gd",
                                     beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """One update by ``optimizer`` (update number ``t``, from 1); returns ``(parameters, state)``.

    gd: :func:`update_parameters`; momentum, RMSprop and Adam as the course
    writes them (see :mod:`fastbackprop.optimizers`). New dicts; the inputs
    are left unchanged.
    """
    return optimizers.update(parameters, grads, state, t, learning_rate, optimizer,
                             optimizers.Hyperparameters(beta, beta1, beta2, epsilon))


def L_layer_model(
    X,
    Y,
    layer_dims,
    hidden_activation="relu",
    learning_rate=0.0075,
    num_iterations=3000,
    init="he",
    seed=None,
    parameters=None,
    cost_every=100,
    output_activation="sigmoid",
    *,
    optimizer="gd",
    batch_size=None,
    shuffle=True,
    beta=0.9,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    decay_rate=0.0,
    time_interval=None,
    l2=0.0,
    keep_prob=1.0,
    sample_weight=None,
):
    """Train the L-layer network: ``num_iterations`` epochs of (mini-batch) updates.

    X: ``(n_x, m)``; Y: ``(n_y, m)`` of labels for the output layer (see
    :func:`fastbackprop.validation.check_labels`); ``layer_dims[0] == n_x``
    and ``layer_dims[-1] == n_y``. Starts from ``parameters`` if given, else
    from :func:`initialize_parameters` in ``X``'s dtype.

    Each epoch ``e`` takes the learning rate
    :func:`fastbackprop.optimizers.learning_rate_at` gives, cuts the data
    with :func:`random_mini_batches` (seeded by ``seed``, 0 when None), and
    for each batch runs forward, backward from ``dZ_L = A_L - Y`` and one
    update by ``optimizer``. With the defaults (``batch_size=None``,
    ``"gd"``) an epoch is one step of full-batch gradient descent, the
    course's first loop.

    Regularisation: ``l2`` (the course's lambda) adds ``(l2 / (2 m_b))
    sum ||W||^2`` to each batch's cost and ``(l2 / m_b) W`` to its ``dW``;
    ``keep_prob`` (a number, or one per hidden layer) applies inverted
    dropout to the hidden layers with the masks of
    :func:`fastbackprop.rng.dropout_mask` for the update's number ``t``;
    ``sample_weight`` ``(m,)`` weighs each column's cost and gradient.

    Returns ``parameters, costs`` where ``costs`` holds, for every epoch
    ``e`` with ``e % cost_every == 0``, the cost over that epoch: the sum of
    its batches' costs (each before its update, times the batch's columns)
    over ``m`` (the course's ``cost_total / m``; for full batches, the cost
    before the update). With dropout on, that is the cost of the thinned
    networks the batches trained, not of the network.
    """
    dims = check_layer_dims(layer_dims)
    check_activation_name(hidden_activation, "hidden_activation")
    learning_rate = check_learning_rate(learning_rate)
    num_iterations = check_positive_int(num_iterations, "num_iterations")
    cost_every = check_positive_int(cost_every, "cost_every")
    X = batch_columns(check_X(X, n_x=dims[0]))  # C-ordered once: each batch's products alike
    Y = check_labels(Y, output_activation, n_y=dims[-1], m=X.shape[1], dtype=X.dtype)
    if parameters is None:
        parameters = initialize_parameters(dims, init, seed, X.dtype)
    else:
        check_parameters(parameters, dims)
    m = X.shape[1]
    keep_probs = check_keep_prob(keep_prob, len(dims) - 2)
    w = check_sample_weight(sample_weight, m, X.dtype)
    state = initialize_optimizer(parameters, optimizer)
    t = 0
    costs = []
    for epoch in range(num_iterations):
        alpha = optimizers.learning_rate_at(learning_rate, epoch, decay_rate, time_interval)
        total = 0.0
        for columns in mini_batch_columns(m, batch_size, seed or 0, epoch, shuffle):
            # C-ordered, as the NumPy backend's trainer takes it (see batch_columns)
            X_b = batch_columns(X, None if batch_size is None else columns)
            Y_b = Y[:, columns]
            w_b = None if w is None else w[columns]
            dropout = dropout_masks(keep_probs, [(n, len(columns)) for n in dims[1:-1]],
                                    seed or 0, t + 1)
            AL, caches = L_model_forward(X_b, parameters, hidden_activation, output_activation,
                                         dropout)
            if epoch % cost_every == 0:
                ZL = caches[-1][1]
                total += (compute_cost_from_logits(ZL, Y_b, output_activation, w_b)
                          + l2_cost(parameters, l2, len(columns))) * len(columns)
            grads = L_model_backward(AL, Y_b, caches, hidden_activation, "dZ", output_activation,
                                     l2=l2, dropout=dropout, sample_weight=w_b)
            t += 1
            parameters, state = update_parameters_with_optimizer(
                parameters, grads, state, t, alpha, optimizer, beta, beta1, beta2, epsilon)
        if epoch % cost_every == 0:
            costs.append(total / m)
    return parameters, costs


def nn_model(X, Y, n_h, hidden_activation="tanh", learning_rate=1.2, num_iterations=10000,
             init="scaled", seed=None, cost_every=1000):
    """Train the course's one-hidden-layer network with the 4 + 6 equations.

    X: ``(n_x, m)``; Y: ``(n_y, m)``; ``n_h`` hidden units. Returns
    ``parameters, costs`` like :func:`L_layer_model`.
    """
    check_activation_name(hidden_activation, "hidden_activation")
    n_h = check_positive_int(n_h, "n_h")
    learning_rate = check_learning_rate(learning_rate)
    num_iterations = check_positive_int(num_iterations, "num_iterations")
    cost_every = check_positive_int(cost_every, "cost_every")
    X = check_X(X)
    Y = check_labels(Y, "sigmoid", m=X.shape[1], dtype=X.dtype)
    parameters = initialize_parameters([X.shape[0], n_h, Y.shape[0]], init, seed, X.dtype)
    costs = []
    for i in range(num_iterations):
        A2, cache = forward_propagation(X, parameters, hidden_activation)
        if i % cost_every == 0:
            costs.append(compute_cost_from_logits(cache["Z2"], Y))
        grads = backward_propagation(parameters, cache, X, Y, hidden_activation)
        parameters = update_parameters(parameters, grads, learning_rate)
    return parameters, costs


# ---------------------------------------------------------------------------
# Gradient check
# ---------------------------------------------------------------------------


def parameters_to_vector(parameters):
    """Stack ``W1, b1, ..., WL, bL`` (row-major) into one column ``(n_params, 1)``: the flat
    layout of :mod:`fastbackprop.layout` (batch-normalised layers: their kinds in order)."""
    schema = Schema.of(parameters)
    return schema.pack(parameters, np.result_type(*parameters.values())).reshape(-1, 1)


def vector_to_parameters(theta, layer_dims, kinds=None):
    """Inverse of :func:`parameters_to_vector` for ``layer_dims`` (views of ``theta``);
    ``kinds``: each layer's (:class:`fastbackprop.layout.Schema`'s; default dense)."""
    return Schema(layer_dims, kinds).unpack(np.asarray(theta).reshape(-1), copy=False)


def gradients_to_vector(grads, L, schema=None):
    """Stack ``dW1, db1, ..., dWL, dbL`` in the order of :func:`parameters_to_vector` (a
    batch-normalised layer: ``dW``, ``dgamma``, ``dbeta`` and zeros for its running
    statistics, which no gradient moves). ``schema``: the parameters'
    :class:`~fastbackprop.layout.Schema` when the caller has it (else read from ``grads``)."""
    if schema is None:
        dims = [grads["dW1"].shape[1]] + [grads[f"dW{l}"].shape[0] for l in range(1, L + 1)]
        schema = Schema(dims, tuple(BATCH_NORM if f"dgamma{l}" in grads else DENSE
                                    for l in range(1, L + 1)))
    dtype = np.result_type(*(grads[f"dW{l}"] for l in range(1, L + 1)))
    keyed = {e.key: grads["d" + e.key] if KINDS[e.kind].trained else np.zeros(e.shape, dtype)
             for e in schema.entries}
    return schema.pack(keyed, dtype).reshape(-1, 1)


def gradient_check(parameters, X, Y, hidden_activation="relu", epsilon=1e-7,
                   output_start="dA", output_activation="sigmoid", *, l2=0.0, dropout=None,
                   sample_weight=None, batch_norm_epsilon=BATCH_NORM_EPSILON):
    """Relative difference between backprop's gradient and centred finite differences.

    For every trained parameter theta_i, ``gradapprox_i = (J(theta + eps e_i) -
    J(theta - eps e_i)) / (2 eps)`` with ``J`` = :func:`compute_cost`
    after :func:`L_model_forward` (batch-normalised layers with the batch's statistics,
    as in training; their running statistics are not trained and not checked). Returns
    ``||grad - gradapprox|| / (||grad|| + ||gradapprox||)`` (a float): about
    1e-9 when backprop is right in float64, and above 1e-7 indicates a bug.
    Computed in float64 whatever the parameters' dtype.
    """
    check_activation_name(hidden_activation, "hidden_activation")
    dims = check_parameters(parameters)
    X = check_X(X, n_x=dims[0], dtype=np.float64)
    Y = check_labels(Y, output_activation, n_y=dims[-1], m=X.shape[1], dtype=np.float64)
    parameters = {k: np.asarray(v, dtype=np.float64) for k, v in parameters.items()}
    schema = Schema.of(parameters)
    L = len(dims) - 1

    m = X.shape[1]

    def forward(candidate):
        return L_model_forward(X, candidate, hidden_activation, output_activation, dropout,
                               training=True, batch_norm_epsilon=batch_norm_epsilon)

    def cost(theta):
        candidate = schema.unpack(theta.reshape(-1), copy=False)
        AL, _ = forward(candidate)
        return (compute_cost(AL, Y, output_activation, sample_weight)
                + l2_cost(candidate, l2, m))

    AL, caches = forward(parameters)
    grads = L_model_backward(AL, Y, caches, hidden_activation, output_start, output_activation,
                             l2=l2, dropout=dropout, sample_weight=sample_weight)
    trained = schema.trained_mask()
    grad = gradients_to_vector(grads, L)[trained]
    theta = parameters_to_vector(parameters)
    gradapprox = np.zeros_like(grad)
    for j, i in enumerate(np.flatnonzero(trained)):
        plus = theta.copy()
        plus[i] += epsilon
        minus = theta.copy()
        minus[i] -= epsilon
        gradapprox[j] = (cost(plus) - cost(minus)) / (2 * epsilon)
    numerator = np.linalg.norm(grad - gradapprox)
    denominator = np.linalg.norm(grad) + np.linalg.norm(gradapprox)
    return float(numerator / denominator) if denominator > 0 else 0.0
