"""The step functions of :mod:`fastbackprop.reference`, compiled: same names, signatures, shapes.

``linear_forward``, ``linear_activation_forward``, ``L_model_forward``,
``compute_cost``, ``compute_cost_from_logits``, ``linear_backward``,
``linear_activation_backward``, ``L_model_backward``,
``update_parameters``, ``predict``, plus ``probabilities`` (``A_L``
without caches, the training loop's forward pass).

Arrays may be float32 or float64 (mixed inputs follow NumPy's promotion),
C- or F-ordered or strided: each is copied at most once, to C order.
Kernels compiled per constant code are reached through
:func:`~.convert.call_specialised`.

Batch-normalised parameters (``gamma{l}`` in the dict) go to the reference's step
functions, which this module then calls (the compiled loop has batch norm inside its
epochs: :mod:`.batch_norm`); :func:`probabilities` folds the running statistics into a
dense network (:func:`fastbackprop.reference.fold_batch_norm`) and runs it compiled.
"""

from __future__ import annotations

import numpy as np

from .. import outputs as numpy_outputs
from .. import reference, spec
from ..activations import check_activation_name
from ..validation import (
    check_layer_activation,
    check_linear,
    check_matrix,
    check_parameters,
    check_sample_weight,
)
from . import first_layer, outputs, passes, training
from .convert import as_kernel_array, call_specialised, common_dtype
from .layout import pack
from .passes import NN, NT, TN


def _gemm(A, B, out, mode):
    call_specialised(passes.gemm_pass, A, B, out, mode)


def _bias_activation(Z, b, code):
    return call_specialised(passes.bias_activation_pass, Z, b, code)


def _backward_pointwise(dA, A, code, db):
    call_specialised(passes.backward_pointwise_pass, dA, A, code, db)


def _weights(sample_weight, m, dtype):
    """The columns' weights as the kernels take them: ones when None."""
    w = check_sample_weight(sample_weight, m, dtype)
    return np.ones(m, dtype=dtype) if w is None else as_kernel_array(w, dtype)


def _output_apply(A, b, Y, output, cost, w=None):
    """The training loop's output pass on ``A = W A_prev`` in place: ``(sum(Z), loss)``."""
    code = spec.OUTPUTS[output].code
    w = np.ones(A.shape[1], dtype=A.dtype) if w is None else w
    return call_specialised(outputs.apply_pass, code, A, b, Y, w, cost)


def _activate(Z, b, activation):
    """``g(Z + b)`` as a new array for a hidden activation or an output layer's."""
    A = Z.copy()
    if activation in spec.OUTPUTS:
        _output_apply(A, b, A, activation, False)  # Y is not read without the cost
    else:
        _bias_activation(A, b, spec.ACTIVATIONS[activation].code)  # the loop's fused pass
    return A


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------


def linear_forward(A_prev, W, b):
    """Z = W A_prev + b. Same contract as :func:`fastbackprop.reference.linear_forward`.

    A_prev ``(n_{l-1}, m)``, W ``(n_l, n_{l-1})``, b ``(n_l, 1)``; returns
    ``Z`` ``(n_l, m)`` and ``cache = (A_prev, W, b)``.
    """
    check_linear(A_prev, W, b)
    dt = common_dtype(A_prev=A_prev, W=W, b=b)
    A_prev, W, b = (as_kernel_array(a, dt) for a in (A_prev, W, b))
    Z = np.empty((W.shape[0], A_prev.shape[1]), dtype=dt)
    _gemm(W, A_prev, Z, NN)
    passes.add_bias_pass(Z, b)
    return Z, (A_prev, W, b)


def linear_activation_forward(A_prev, W, b, activation):
    """A = g(W A_prev + b): one product, then one fused bias-and-activation pass.

    ``activation``: a hidden activation or an output layer (the training
    loop's output pass). Returns ``A`` ``(n_l, m)`` and ``cache = ((A_prev, W, b), Z)``.
    """
    check_layer_activation(activation)
    check_linear(A_prev, W, b)
    dt = common_dtype(A_prev=A_prev, W=W, b=b)
    A_prev, W, b = (as_kernel_array(a, dt) for a in (A_prev, W, b))
    Z = np.empty((W.shape[0], A_prev.shape[1]), dtype=dt)
    _gemm(W, A_prev, Z, NN)
    A = _activate(Z, b, activation)
    passes.add_bias_pass(Z, b)  # the cache keeps Z as well
    return A, ((A_prev, W, b), Z)


def _batch_normalised(parameters):
    """Whether a parameters dict has batch-normalised layers."""
    return isinstance(parameters, dict) and any(
        isinstance(key, str) and key.startswith("gamma") for key in parameters)


def L_model_forward(X, parameters, hidden_activation="relu", output_activation="sigmoid",
                    dropout=None, *, training=False,
                    batch_norm_epsilon=reference.BATCH_NORM_EPSILON):
    """``[LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT``; returns ``AL`` ``(n_L, m)`` and ``caches``.

    ``dropout``: as :func:`fastbackprop.reference.L_model_forward` (fixed masks);
    ``training``, ``batch_norm_epsilon``: for batch-normalised parameters, which the
    reference computes.
    """
    if _batch_normalised(parameters):
        return reference.L_model_forward(X, parameters, hidden_activation, output_activation,
                                         dropout, training=training,
                                         batch_norm_epsilon=batch_norm_epsilon)
    check_activation_name(hidden_activation, "hidden_activation")
    numpy_outputs.check_output_name(output_activation)
    dims = check_parameters(parameters)
    check_matrix(X, "X", rows=dims[0], row_name="n_x")
    L = len(dims) - 1
    caches = []
    A = X
    for l in range(1, L + 1):
        activation = hidden_activation if l < L else output_activation
        A, cache = linear_activation_forward(
            A, parameters[f"W{l}"], parameters[f"b{l}"], activation
        )
        if l < L and dropout is not None and dropout[l - 1] is not None:
            D, keep_prob = dropout[l - 1]
            A = A * D / A.dtype.type(keep_prob)
        caches.append(cache)
    return A, caches


def predict(X, parameters, hidden_activation="relu", output_activation="sigmoid"):
    """What the output layer predicts, as :func:`fastbackprop.reference.predict`.

    sigmoid: 0/1 ``(n_L, m)`` in ``AL``'s dtype; softmax: class indices ``(m,)``;
    linear: the values ``(n_L, m)``.
    """
    AL = probabilities(X, parameters, hidden_activation, output_activation)
    return numpy_outputs.FUNCTIONS[output_activation].predict(AL)


def probabilities(X, parameters, hidden_activation="relu", output_activation="sigmoid",
                  dtype=None, *, batch_norm_epsilon=reference.BATCH_NORM_EPSILON):
    """``AL`` ``(n_L, m)`` of the network on ``X`` ``(n_x, m)``, without caches.

    The training loop's forward pass: one compiled call, one buffer for all
    activations, only the activation in use compiled. ``dtype``: compute in
    this dtype (default: the common dtype of ``X`` and the parameters).
    Batch-normalised parameters predict with their running statistics, folded into
    ``W`` and ``b`` first (``batch_norm_epsilon`` their epsilon).
    """
    if _batch_normalised(parameters):
        check_parameters(parameters)
        parameters = reference.fold_batch_norm(parameters, batch_norm_epsilon)
    code = check_activation_name(hidden_activation, "hidden_activation")
    output = numpy_outputs.check_output_name(output_activation)
    dims = check_parameters(parameters)
    check_matrix(X, "X", rows=dims[0], row_name="n_x")
    if dtype is None:
        dtype = common_dtype(X=X, **parameters)
    dtype = np.dtype(dtype)
    X = as_kernel_array(X, dtype)
    m = X.shape[1]
    work = training.workspace(dims, m, dtype, 0)
    call_specialised(training.predict, pack(parameters, dims, dtype), first_layer.Columns(X), m,
                     np.asarray(dims, dtype=np.int64), code, output, work)
    acts = work.acts
    return acts[acts.size - dims[-1] * m:].reshape(dims[-1], m).copy()


# ---------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------


def _check_pair(P, Y, name):
    check_matrix(P, name, row_name="n_y")
    check_matrix(Y, "Y", rows=np.shape(P)[0], cols=np.shape(P)[1], row_name="n_y")
    dt = common_dtype(**{name: P})
    Y = np.asarray(Y)
    if Y.dtype.kind not in "fiub":
        raise TypeError(f"Y must be a real numeric array; got dtype {Y.dtype}")
    return as_kernel_array(P, dt), as_kernel_array(Y, dt)


def compute_cost(AL, Y, output_activation="sigmoid", sample_weight=None):
    """The output layer's cost from ``AL`` ``(n_y, m)``, clipped as the reference does."""
    code = numpy_outputs.check_output_name(output_activation)
    AL, Y = _check_pair(AL, Y, "AL")
    w = _weights(sample_weight, AL.shape[1], AL.dtype)
    return float(call_specialised(outputs.cost_pass, code, AL, Y, w)
                 / AL.shape[1])


def compute_cost_from_logits(ZL, Y, output_activation="sigmoid", sample_weight=None):
    """The output layer's cost from ``ZL`` ``(n_y, m)``, stable for any finite ``ZL``."""
    numpy_outputs.check_output_name(output_activation)
    ZL, Y = _check_pair(ZL, Y, "ZL")
    b = np.zeros((ZL.shape[0], 1), dtype=ZL.dtype)
    w = _weights(sample_weight, ZL.shape[1], ZL.dtype)
    _, loss = _output_apply(ZL.copy(), b, Y, output_activation, True, w)  # the loop's pass
    return float(loss / ZL.shape[1])


# ---------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------


def _linear_backward_from_dZ(dZ, db_raw, A_prev, W, input_gradient=True):
    """dW, db, dA_prev (None without ``input_gradient``) from a C-contiguous ``dZ`` and its
    unscaled row sums."""
    m = A_prev.shape[1]
    inv_m = dZ.dtype.type(1) / dZ.dtype.type(m)
    dW = np.empty_like(W)
    _gemm(dZ, A_prev, dW, NT)
    passes.scale_pass(dW, inv_m)
    passes.scale_pass(db_raw, inv_m)
    if not input_gradient:
        return None, dW, db_raw
    dA_prev = np.empty_like(A_prev)
    _gemm(W, dZ, dA_prev, TN)
    return dA_prev, dW, db_raw


def linear_backward(dZ, cache, input_gradient=True):
    """``dA_prev = W^T dZ``, ``dW = dZ A_prev^T / m``, ``db = sum(dZ, axis=1) / m``.

    ``cache = (A_prev, W, b)``; shapes and ``input_gradient`` as
    :func:`fastbackprop.reference.linear_backward`.
    """
    A_prev, W, b = cache
    check_linear(A_prev, W, b)
    check_matrix(dZ, "dZ", rows=np.shape(W)[0], cols=np.shape(A_prev)[1], row_name="n_l")
    dt = common_dtype(dZ=dZ, A_prev=A_prev, W=W)
    dZ, A_prev, W = (as_kernel_array(a, dt) for a in (dZ, A_prev, W))
    db = np.empty((W.shape[0], 1), dtype=dt)
    passes.row_sum_pass(dZ, db)
    return _linear_backward_from_dZ(dZ, db, A_prev, W, input_gradient)


def linear_activation_backward(dA, cache, activation, input_gradient=True):
    """``dZ = dA * g'(Z)`` fused with ``db``, then ``dW`` and ``dA_prev``.

    ``cache = ((A_prev, W, b), Z)``; returns ``dA_prev, dW, db``. For an
    output layer's activation that is not also a hidden one (softmax,
    linear: the course's general start only, never used in training) ``dZ``
    comes from the reference's chain rule, then :func:`linear_backward`.
    """
    check_layer_activation(activation)
    if activation not in spec.ACTIVATIONS:
        (A_prev, W, b), Z = cache
        check_matrix(dA, "dA", rows=np.shape(Z)[0], cols=np.shape(Z)[1], row_name="n_l")
        dt = common_dtype(dA=dA, Z=Z)
        dZ = numpy_outputs.FUNCTIONS[activation].backward(np.asarray(dA, dt), np.asarray(Z, dt))
        return linear_backward(dZ, (A_prev, W, b), input_gradient)
    code = spec.ACTIVATIONS[activation].code
    (A_prev, W, b), Z = cache
    check_linear(A_prev, W, b)
    check_matrix(dA, "dA", rows=np.shape(Z)[0], cols=np.shape(Z)[1], row_name="n_l")
    dt = common_dtype(dA=dA, Z=Z, A_prev=A_prev, W=W)
    dA, Z, A_prev, W = (as_kernel_array(a, dt) for a in (dA, Z, A_prev, W))
    A = Z.copy()
    _bias_activation(A, np.zeros((Z.shape[0], 1), dtype=dt), code)  # A = g(Z)
    dZ = dA.copy()
    db = np.empty((Z.shape[0], 1), dtype=dt)
    _backward_pointwise(dZ, A, code, db)
    return _linear_backward_from_dZ(dZ, db, A_prev, W, input_gradient)


def L_model_backward(AL, Y, caches, hidden_activation="relu", output_start="dA",
                     output_activation="sigmoid", *, l2=0.0, dropout=None, sample_weight=None,
                     input_gradient=True):
    """All gradients of ``[LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT``.

    Same contract as :func:`fastbackprop.reference.L_model_backward`;
    ``output_start="dZ"`` takes the fused ``dZ_L = AL - Y`` path.
    """
    if any(len(cache) == 3 for cache in caches):  # batch-normalised: the reference's
        return reference.L_model_backward(AL, Y, caches, hidden_activation, output_start,
                                          output_activation, l2=l2, dropout=dropout,
                                          sample_weight=sample_weight,
                                          input_gradient=input_gradient)
    check_activation_name(hidden_activation, "hidden_activation")
    numpy_outputs.check_output_name(output_activation)
    if output_start not in ("dA", "dZ"):
        raise ValueError(f"output_start must be one of ['dA', 'dZ']; got {output_start!r}")
    AL, Y = _check_pair(AL, Y, "AL")
    w = _weights(sample_weight, AL.shape[1], AL.dtype)
    L = len(caches)
    grads = {}
    through = input_gradient or L > 1  # the output layer's dA_prev is dA0 when L = 1
    if output_start == "dA":
        dAL = numpy_outputs.FUNCTIONS[output_activation].dA(AL, Y) * w
        dA_prev, dW, db = linear_activation_backward(dAL, caches[L - 1], output_activation,
                                                     through)
    else:
        (A_prev, W, _), _ = caches[L - 1]
        dt = AL.dtype
        A_prev, W = as_kernel_array(A_prev, dt), as_kernel_array(W, dt)
        dZ = np.empty_like(AL)
        db = np.empty((AL.shape[0], 1), dtype=dt)
        passes.output_delta_pass(AL, Y, w, dZ, db)
        dA_prev, dW, db = _linear_backward_from_dZ(dZ, db, A_prev, W, through)
    grads[f"dA{L - 1}"], grads[f"dW{L}"], grads[f"db{L}"] = dA_prev, dW, db
    for l in reversed(range(1, L)):
        dA = grads[f"dA{l}"]
        if dropout is not None and dropout[l - 1] is not None:
            D, keep_prob = dropout[l - 1]
            dA = dA * D / dA.dtype.type(keep_prob)
        dA_prev, dW, db = linear_activation_backward(dA, caches[l - 1], hidden_activation,
                                                     input_gradient or l > 1)
        grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"db{l}"] = dA_prev, dW, db
    if not input_gradient:
        del grads["dA0"]
    if l2:
        for l in range(1, L + 1):
            dW = grads[f"dW{l}"]
            W = as_kernel_array(caches[l - 1][0][1], dW.dtype)
            passes.add_scaled_pass(dW, W, dW.dtype.type(l2 / AL.shape[1]))
    return grads


def update_parameters(parameters, grads, learning_rate):
    """``W := W - alpha dW``, ``b := b - alpha db``; returns a new dict.

    The learning rate is cast to each parameter's dtype.
    """
    if _batch_normalised(parameters):  # the running statistics have no gradient
        return reference.update_parameters(parameters, grads, learning_rate)
    check_parameters(parameters)
    new = {}
    for key, value in parameters.items():
        grad = grads[f"d{key}"]
        if np.shape(grad) != np.shape(value):
            raise ValueError(
                f"grads['d{key}'] must have the shape of {key}, {np.shape(value)}; got {np.shape(grad)}"
            )
        dt = common_dtype(**{key: value, f"d{key}": grad})
        out = np.array(value, dtype=dt).reshape(-1)  # a new array, updated in place
        passes.update_pass(out, as_kernel_array(grad, dt).reshape(-1), dt.type(1),
                      dt.type(learning_rate))
        new[key] = out.reshape(np.shape(value))
    return new


