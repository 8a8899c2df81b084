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

Every function computes in the dtype of its inputs (float32 stays float32).
The step functions check shapes, which is cheap; the entry points that take
data from a user (:func:`L_layer_model`, :func:`nn_model`,
:func:`gradient_check`) also check values (NaN, labels outside {0, 1}).
"""

from __future__ import annotations

import numpy as np

from . import activations, optimizers, outputs, rng
from .activations import check_activation_name
from .layout import Schema
from .validation import (
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


# ---------------------------------------------------------------------------
# Forward propagation
# ---------------------------------------------------------------------------


def linear_forward(A_prev, W, b):
    """Z = W A_prev + b.

    A_prev: ``(n_{l-1}, m)``; W: ``(n_l, n_{l-1})``; b: ``(n_l, 1)``.
    Returns ``Z`` ``(n_l, m)`` and ``cache = (A_prev, W, b)``.
    """
    check_linear(A_prev, W, b)
    Z = W @ A_prev + b
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
    Z, linear_cache = linear_forward(A_prev, W, b)
    if activation in outputs.FUNCTIONS:
        A = outputs.FUNCTIONS[activation].forward(Z)
    else:
        A = activations.forward(Z, activation)
    return A, (linear_cache, Z)


def L_model_forward(X, parameters, hidden_activation="relu", output_activation="sigmoid",
                    dropout=None):
    """``[LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT`` on ``X`` ``(n_x, m)``.

    ``dropout``: None, or one entry per hidden layer, each None or
    ``(D, keep_prob)`` with ``D`` a 0/1 mask ``(n_l, m)``: inverted dropout,
    ``A{l} := A{l} * D / keep_prob`` (training only; see
    :func:`fastbackprop.rng.dropout_mask` for the masks training draws).

    Returns ``AL`` ``(n_L, m)`` and ``caches``: a list of L caches, one per
    layer, each as returned by :func:`linear_activation_forward` (with
    dropout, ``A`` is the dropped and rescaled one).
    """
    check_activation_name(hidden_activation, "hidden_activation")
    outputs.check_output_name(output_activation)
    dims = check_parameters(parameters)
    check_matrix(X, "X", rows=dims[0], row_name="n_x")
    L = len(dims) - 1
    caches = []
    A = X
    for l in range(1, L):
        A, cache = linear_activation_forward(
            A, parameters[f"W{l}"], parameters[f"b{l}"], hidden_activation
        )
        if dropout is not None and dropout[l - 1] is not None:
            D, keep_prob = dropout[l - 1]
            A = A * D / np.asarray(keep_prob, dtype=A.dtype)
        caches.append(cache)
    AL, cache = linear_activation_forward(
        A, parameters[f"W{L}"], parameters[f"b{L}"], output_activation
    )
    caches.append(cache)
    return AL, caches


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
    L = len(parameters) // 2
    return float(l2 / (2 * m) * sum(np.sum(np.square(parameters[f"W{l}"])) for l in range(1, L + 1)))


# ---------------------------------------------------------------------------
# Backward propagation
# ---------------------------------------------------------------------------


def linear_backward(dZ, cache):
    """Gradients of the linear step from ``dZ`` ``(n_l, m)``.

    ``cache = (A_prev, W, b)``. Returns ``dA_prev = W^T dZ``
    ``(n_{l-1}, m)``, ``dW = (1/m) dZ A_prev^T`` ``(n_l, n_{l-1})`` and
    ``db = (1/m) sum(dZ, axis=1, keepdims=True)`` ``(n_l, 1)``.
    """
    A_prev, W, b = cache
    check_linear(A_prev, W, b)
    check_matrix(dZ, "dZ", rows=W.shape[0], cols=A_prev.shape[1], row_name="n_l")
    m = A_prev.shape[1]
    dW = (dZ @ A_prev.T) / m
    db = np.sum(dZ, axis=1, keepdims=True) / m
    dA_prev = W.T @ dZ
    return dA_prev, dW, db


def linear_activation_backward(dA, cache, activation):
    """Gradients of ``A = g(W A_prev + b)`` from ``dA`` ``(n_l, m)``.

    ``cache = ((A_prev, W, b), Z)`` as returned by
    :func:`linear_activation_forward`. Computes ``dZ = dA * g'(Z)`` (for
    ``"softmax"`` through its Jacobian, per column ``dZ = A * (dA -
    sum_k(dA * A))``) and returns ``dA_prev, dW, db`` as
    :func:`linear_backward` does.
    """
    check_layer_activation(activation)
    linear_cache, Z = cache
    check_matrix(dA, "dA", rows=Z.shape[0], cols=Z.shape[1], row_name="n_l")
    if activation in outputs.FUNCTIONS:
        dZ = outputs.FUNCTIONS[activation].backward(dA, Z)
    else:
        dZ = dA * activations.derivative(Z, activation)
    return linear_backward(dZ, linear_cache)


OUTPUT_STARTS = ("dA", "dZ")


def L_model_backward(AL, Y, caches, hidden_activation="relu", output_start="dA",
                     output_activation="sigmoid", *, l2=0.0, dropout=None, sample_weight=None):
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
    ``(n_l, 1)`` for l = 1..L and ``dA{l}`` ``(n_l, m)`` for l = 0..L-1.
    """
    check_activation_name(hidden_activation, "hidden_activation")
    output = outputs.functions(output_activation)
    if output_start not in OUTPUT_STARTS:
        raise ValueError(f"output_start must be one of {list(OUTPUT_STARTS)}; got {output_start!r}")
    AL = np.asarray(AL)
    check_matrix(AL, "AL", row_name="n_L")
    check_matrix(Y, "Y", rows=AL.shape[0], cols=AL.shape[1], row_name="n_L")
    Y = np.asarray(Y, dtype=AL.dtype)
    w = check_sample_weight(sample_weight, AL.shape[1], AL.dtype)
    w = 1 if w is None else w
    L = len(caches)
    grads = {}
    linear_cache, ZL = caches[L - 1]
    if output_start == "dA":
        dA_prev, dW, db = linear_activation_backward(output.dA(AL, Y) * w, caches[L - 1],
                                                     output_activation)
    else:
        dA_prev, dW, db = linear_backward((AL - Y) * w, linear_cache)
    grads[f"dA{L - 1}"], grads[f"dW{L}"], grads[f"db{L}"] = dA_prev, dW, db
    for l in reversed(range(1, L)):
        dA = grads[f"dA{l}"]
        if dropout is not None and dropout[l - 1] is not None:
            D, keep_prob = dropout[l - 1]
            dA = dA * D / np.asarray(keep_prob, dtype=dA.dtype)
        dA_prev, dW, db = linear_activation_backward(dA, caches[l - 1], hidden_activation)
        grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"db{l}"] = dA_prev, dW, db
    if l2:
        m = AL.shape[1]
        for l in range(1, L + 1):
            W = caches[l - 1][0][1]
            grads[f"dW{l}"] = grads[f"dW{l}"] + np.asarray(l2 / m, dtype=W.dtype) * W
    return grads


def update_parameters(parameters, grads, learning_rate):
    """One gradient-descent step: ``W := W - alpha dW``, ``b := b - alpha db``.

    Returns a new dict; ``parameters`` is left unchanged. The learning rate
    is cast to each array's dtype, so float32 stays float32.
    """
    check_parameters(parameters)
    L = len(parameters) // 2
    new = {}
    for l in range(1, L + 1):
        for p in "Wb":
            value = parameters[f"{p}{l}"]
            grad = grads[f"d{p}{l}"]
            if np.shape(grad) != np.shape(value):
                raise ValueError(
                    f"grads['d{p}{l}'] must have the shape of {p}{l}, {np.shape(value)}; "
                    f"got {np.shape(grad)}"
                )
            alpha = np.asarray(learning_rate, dtype=value.dtype)
            new[f"{p}{l}"] = value - alpha * grad
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
    X = check_X(X, n_x=dims[0])
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
            X_b, Y_b = X[:, columns], Y[:, columns]
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
    layout of :mod:`fastbackprop.layout`."""
    schema = Schema.of(parameters)
    return schema.pack(parameters, np.result_type(*parameters.values())).reshape(-1, 1)


def vector_to_parameters(theta, layer_dims):
    """Inverse of :func:`parameters_to_vector` for ``layer_dims`` (views of ``theta``)."""
    return Schema(layer_dims).unpack(np.asarray(theta).reshape(-1), copy=False)


def gradients_to_vector(grads, L):
    """Stack ``dW1, db1, ..., dWL, dbL`` in the order of :func:`parameters_to_vector`."""
    dims = [grads["dW1"].shape[1]] + [grads[f"dW{l}"].shape[0] for l in range(1, L + 1)]
    schema = Schema(dims)
    keyed = {e.key: grads["d" + e.key] for e in schema.entries}
    return schema.pack(keyed, np.result_type(*keyed.values())).reshape(-1, 1)


def gradient_check(parameters, X, Y, hidden_activation="relu", epsilon=1e-7,
                   output_start="dA", output_activation="sigmoid", *, l2=0.0, dropout=None,
                   sample_weight=None):
    """Relative difference between backprop's gradient and centred finite differences.

    For every parameter theta_i, ``gradapprox_i = (J(theta + eps e_i) -
    J(theta - eps e_i)) / (2 eps)`` with ``J`` = :func:`compute_cost`
    after :func:`L_model_forward`. Returns
    ``||grad - gradapprox|| / (||grad|| + ||gradapprox||)`` (a float): about
    1e-9 when backprop is right in float64, and above 1e-7 indicates a bug.
    Computed in float64 whatever the parameters' dtype.
    """
    check_activation_name(hidden_activation, "hidden_activation")
    dims = check_parameters(parameters)
    X = check_X(X, n_x=dims[0], dtype=np.float64)
    Y = check_labels(Y, output_activation, n_y=dims[-1], m=X.shape[1], dtype=np.float64)
    parameters = {k: np.asarray(v, dtype=np.float64) for k, v in parameters.items()}
    L = len(dims) - 1

    m = X.shape[1]

    def cost(theta):
        candidate = vector_to_parameters(theta, dims)
        AL, _ = L_model_forward(X, candidate, hidden_activation, output_activation, dropout)
        return (compute_cost(AL, Y, output_activation, sample_weight)
                + l2_cost(candidate, l2, m))

    AL, caches = L_model_forward(X, parameters, hidden_activation, output_activation, dropout)
    grads = L_model_backward(AL, Y, caches, hidden_activation, output_start, output_activation,
                             l2=l2, dropout=dropout, sample_weight=sample_weight)
    grad = gradients_to_vector(grads, L)
    theta = parameters_to_vector(parameters)
    gradapprox = np.zeros_like(theta)
    for i in range(theta.shape[0]):
        plus = theta.copy()
        plus[i] += epsilon
        minus = theta.copy()
        minus[i] -= epsilon
        gradapprox[i] = (cost(plus) - cost(minus)) / (2 * epsilon)
    numerator = np.linalg.norm(grad - gradapprox)
    denominator = np.linalg.norm(grad) + np.linalg.norm(gradapprox)
    return float(numerator / denominator) if denominator > 0 else 0.0
