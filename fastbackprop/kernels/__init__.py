"""Numba backend: the reference's step functions, compiled, plus whole-loop training.

The functions here have the same names, signatures and return shapes as
those of :mod:`fastbackprop.reference`, so either module can be swapped in:

``linear_forward``, ``linear_activation_forward``, ``L_model_forward``,
``compute_cost``, ``compute_cost_from_logits``, ``linear_backward``,
``linear_activation_backward``, ``L_model_backward``,
``update_parameters``, ``predict``.

:func:`train` adds what only compiled code does well: every iteration of
gradient descent in one call, with no Python and no allocation per step.

Examples are columns (``X`` is ``(n_x, m)``). Arrays may be float32 or
float64 (mixed inputs follow NumPy's promotion: float32 with float64 is
computed in float64), C- or F-ordered or strided: each is copied at most
once, to C order, when it is not already so. Any other dtype raises
``TypeError``. Importing this module imports Numba; nothing compiles until
a function is first called with a given dtype.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..activations import check_activation_name
from ..validation import (
    check_learning_rate,
    check_linear,
    check_matrix,
    check_parameters,
    check_positive_int,
)
from . import passes, training
from .passes import NN, NT, TN

__all__ = [
    "linear_forward", "linear_activation_forward", "L_model_forward", "compute_cost",
    "compute_cost_from_logits", "linear_backward", "linear_activation_backward",
    "L_model_backward", "update_parameters", "predict", "probabilities", "train", "Trainer", "TrainResult",
    "pack", "unpack",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------------------
# Input conversion
# ---------------------------------------------------------------------------


def common_dtype(**arrays):
    """The float dtype the kernels compute in for these arrays (NumPy promotion).

    Raises ``TypeError`` naming the first argument that is not float32 or float64.
    """
    for name, a in arrays.items():
        dt = np.asarray(a).dtype
        if dt not in FLOAT_DTYPES:
            raise TypeError(
                f"{name} must be a float32 or float64 array for the numba backend; got dtype {dt}"
            )
    return np.result_type(*arrays.values())


def as_kernel_array(a, dtype):
    """``a`` as a writeable C-contiguous array of ``dtype``: itself when it already is one.

    Read-only arrays are copied too: Numba types them differently, and each
    type would compile the kernels again.
    """
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.writeable else a.copy()


_ENTRY_POINTS = {}


def call_specialised(dispatcher, dtype, code, *args):
    """``dispatcher(*args)`` for a kernel compiled per activation ``code`` (a literal).

    Numba compiles such a kernel for ``Literal[int](code)``, but a call from
    Python types the int as ``int64``, misses, and goes through the compiler's
    slow path on every call (about 10 ms). After the first call this looks up
    the compiled entry point for (``dtype``, ``code``) and calls it directly
    (about 3 us). Every array argument must be C-contiguous and writeable
    (``as_kernel_array`` ensures it), so dtype and code determine the types.
    """
    key = (dispatcher, np.dtype(dtype).name, code)
    entry = _ENTRY_POINTS.get(key)
    if entry is not None:
        return entry(*args)
    result = dispatcher(*args)
    from numba import typeof, types

    for signature, compiled in dispatcher.overloads.items():
        if all(
            (isinstance(t, types.Literal) and t.literal_value == a)
            or (not isinstance(t, types.Literal) and typeof(a) == t)
            for t, a in zip(signature, args)
        ):
            _ENTRY_POINTS[key] = compiled.entry_point
            break
    return result


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
    passes.gemm(W, A_prev, Z, NN)
    passes.add_bias(Z, b)
    return Z, (A_prev, W, b)


def linear_activation_forward(A_prev, W, b, activation):
    """A = g(W A_prev + b): one product, then one fused bias-and-activation pass.

    Returns ``A`` ``(n_l, m)`` and ``cache = ((A_prev, W, b), Z)``.
    """
    code = check_activation_name(activation)
    check_linear(A_prev, W, b)
    dt = common_dtype(A_prev=A_prev, W=W, b=b)
    A_prev, W, b = (as_kernel_array(a, dt) for a in (A_prev, W, b))
    Z = np.empty((W.shape[0], A_prev.shape[1]), dtype=dt)
    passes.gemm(W, A_prev, Z, NN)
    A = Z.copy()
    passes.bias_activation(A, b, code)  # the training loop's fused pass
    passes.add_bias(Z, b)  # the cache keeps Z as well
    return A, ((A_prev, W, b), Z)


def L_model_forward(X, parameters, hidden_activation="relu"):
    """``[LINEAR -> g] x (L-1) -> LINEAR -> SIGMOID``; returns ``AL`` ``(n_L, m)`` and ``caches``."""
    check_activation_name(hidden_activation, "hidden_activation")
    dims = check_parameters(parameters)
    check_matrix(X, "X", rows=dims[0], row_name="n_x")
    L = len(dims) - 1
    caches = []
    A = X
    for l in range(1, L + 1):
        activation = hidden_activation if l < L else "sigmoid"
        A, cache = linear_activation_forward(
            A, parameters[f"W{l}"], parameters[f"b{l}"], activation
        )
        caches.append(cache)
    return A, caches


def predict(X, parameters, hidden_activation="relu"):
    """0/1 predictions ``(n_L, m)``, 1 where ``AL > 0.5``, in ``AL``'s dtype."""
    AL = probabilities(X, parameters, hidden_activation)
    return (AL > 0.5).astype(AL.dtype)


def probabilities(X, parameters, hidden_activation="relu", dtype=None):
    """``AL`` ``(n_L, m)`` of the network on ``X`` ``(n_x, m)``, without caches.

    The training loop's forward pass: one compiled call, one buffer for all
    activations, only the activation in use compiled.
    """
    code = check_activation_name(hidden_activation, "hidden_activation")
    dims = check_parameters(parameters)
    check_matrix(X, "X", rows=dims[0], row_name="n_x")
    if dtype is None:
        dtype = common_dtype(X=X, **parameters)
    dtype = np.dtype(dtype)
    X = as_kernel_array(X, dtype)
    m = X.shape[1]
    acts = np.empty(sum(dims[1:]) * m, dtype=dtype)
    dims_array = np.asarray(dims, dtype=np.int64)
    offsets = training.layer_offsets(dims_array, m)
    no_costs = np.empty(0, dtype=dtype)
    no_gram = np.empty((0, 0), dtype=dtype)
    call_specialised(training.forward, dtype, code, pack(parameters, dims, dtype), X,
                     dims_array, offsets, code, acts, X, no_costs, -1, False, no_gram, no_gram)
    return acts[offsets[-2, 2]:].reshape(dims[-1], m).copy()


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


def compute_cost(AL, Y):
    """Cross-entropy from probabilities ``AL`` ``(n_y, m)``, clipped as the reference does."""
    AL, Y = _check_pair(AL, Y, "AL")
    return float(passes.cost_from_probabilities(AL, Y) / AL.shape[1])


def compute_cost_from_logits(ZL, Y):
    """Cross-entropy from logits ``ZL`` ``(n_y, m)``, stable for any finite ``ZL``."""
    ZL, Y = _check_pair(ZL, Y, "ZL")
    b = np.zeros((ZL.shape[0], 1), dtype=ZL.dtype)
    _, loss = passes.sigmoid_cost(ZL.copy(), b, Y)  # the training loop's output pass
    return float(loss / ZL.shape[1])


# ---------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------


def _linear_backward_from_dZ(dZ, db_raw, A_prev, W):
    """dW, db, dA_prev from a C-contiguous ``dZ`` and its unscaled row sums."""
    m = A_prev.shape[1]
    inv_m = dZ.dtype.type(1) / dZ.dtype.type(m)
    dW = np.empty_like(W)
    passes.gemm(dZ, A_prev, dW, NT)
    passes.scale(dW, inv_m)
    passes.scale(db_raw, inv_m)
    dA_prev = np.empty_like(A_prev)
    passes.gemm(W, dZ, dA_prev, TN)
    return dA_prev, dW, db_raw


def linear_backward(dZ, cache):
    """``dA_prev = W^T dZ``, ``dW = dZ A_prev^T / m``, ``db = sum(dZ, axis=1) / m``.

    ``cache = (A_prev, W, b)``; shapes as :func:`fastbackprop.reference.linear_backward`.
    """
    A_prev, W, b = cache
    check_linear(A_prev, W, b)
    check_matrix(dZ, "dZ", rows=np.shape(W)[0], cols=np.shape(A_prev)[1], row_name="n_l")
    dt = common_dtype(dZ=dZ, A_prev=A_prev, W=W)
    dZ, A_prev, W = (as_kernel_array(a, dt) for a in (dZ, A_prev, W))
    db = np.empty((W.shape[0], 1), dtype=dt)
    passes.row_sum(dZ, db)
    return _linear_backward_from_dZ(dZ, db, A_prev, W)


def linear_activation_backward(dA, cache, activation):
    """``dZ = dA * g'(Z)`` fused with ``db``, then ``dW`` and ``dA_prev``.

    ``cache = ((A_prev, W, b), Z)``; returns ``dA_prev, dW, db``.
    """
    code = check_activation_name(activation)
    (A_prev, W, b), Z = cache
    check_linear(A_prev, W, b)
    check_matrix(dA, "dA", rows=np.shape(Z)[0], cols=np.shape(Z)[1], row_name="n_l")
    dt = common_dtype(dA=dA, Z=Z, A_prev=A_prev, W=W)
    dA, Z, A_prev, W = (as_kernel_array(a, dt) for a in (dA, Z, A_prev, W))
    A = Z.copy()
    passes.bias_activation(A, np.zeros((Z.shape[0], 1), dtype=dt), code)  # A = g(Z)
    dZ = dA.copy()
    db = np.empty((Z.shape[0], 1), dtype=dt)
    passes.backward_pointwise(dZ, A, code, db)
    return _linear_backward_from_dZ(dZ, db, A_prev, W)


def L_model_backward(AL, Y, caches, hidden_activation="relu", output_start="dA"):
    """All gradients of ``[LINEAR -> g] x (L-1) -> LINEAR -> SIGMOID``.

    Same contract as :func:`fastbackprop.reference.L_model_backward`;
    ``output_start="dZ"`` takes the fused ``dZ_L = AL - Y`` path.
    """
    check_activation_name(hidden_activation, "hidden_activation")
    if output_start not in ("dA", "dZ"):
        raise ValueError(f"output_start must be one of ['dA', 'dZ']; got {output_start!r}")
    AL, Y = _check_pair(AL, Y, "AL")
    L = len(caches)
    grads = {}
    if output_start == "dA":
        dAL = -(Y / AL - (1 - Y) / (1 - AL))
        dA_prev, dW, db = linear_activation_backward(dAL, caches[L - 1], "sigmoid")
    else:
        (A_prev, W, _), _ = caches[L - 1]
        dt = AL.dtype
        A_prev, W = as_kernel_array(A_prev, dt), as_kernel_array(W, dt)
        dZ = np.empty_like(AL)
        db = np.empty((AL.shape[0], 1), dtype=dt)
        passes.output_delta(AL, Y, dZ, db)
        dA_prev, dW, db = _linear_backward_from_dZ(dZ, db, A_prev, W)
    grads[f"dA{L - 1}"], grads[f"dW{L}"], grads[f"db{L}"] = dA_prev, dW, db
    for l in reversed(range(1, L)):
        dA_prev, dW, db = linear_activation_backward(
            grads[f"dA{l}"], caches[l - 1], hidden_activation
        )
        grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"db{l}"] = dA_prev, dW, db
    return grads


def update_parameters(parameters, grads, learning_rate):
    """``W := W - alpha dW``, ``b := b - alpha db``; returns a new dict.

    The learning rate is cast to each parameter's dtype.
    """
    check_parameters(parameters)
    new = {}
    for key, value in parameters.items():
        grad = grads[f"d{key}"]
        if np.shape(grad) != np.shape(value):
            raise ValueError(
                f"grads['d{key}'] must have the shape of {key}, {np.shape(value)}; got {np.shape(grad)}"
            )
        dt = common_dtype(**{key: value, f"d{key}": grad})
        theta = as_kernel_array(value, dt).reshape(-1)
        out = np.empty_like(theta)
        passes.update(theta, as_kernel_array(grad, dt).reshape(-1), dt.type(learning_rate), out)
        new[key] = out.reshape(np.shape(value))
    return new


# ---------------------------------------------------------------------------
# Whole-loop training
# ---------------------------------------------------------------------------

STATUS = {training.OK: "ok", training.NONFINITE_COST: "nonfinite_cost",
          training.NONFINITE_UPDATE: "nonfinite_update"}


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    ``parameters``: the trained dict (the last with a finite cost when
    training diverged); ``costs``: the cost before the update of iterations
    ``0, cost_every, 2 cost_every, ...`` that were reached; ``n_iter``: the
    number of updates that produced ``parameters``; ``status``: ``"ok"``,
    ``"nonfinite_cost"`` or ``"nonfinite_update"``; ``failed_at``: the
    iteration where the cost or the update became non-finite, else None.
    """

    parameters: dict
    costs: np.ndarray
    n_iter: int
    status: str
    failed_at: int | None


def pack(parameters, dims, dtype):
    """Flatten ``W1, b1, ..., WL, bL`` (row-major) into one new C array of ``dtype``."""
    theta = np.empty(sum(n * k + n for n, k in zip(dims[1:], dims[:-1])), dtype=dtype)
    offset = 0
    for l in range(1, len(dims)):
        for p in "Wb":
            value = np.asarray(parameters[f"{p}{l}"])
            theta[offset: offset + value.size] = value.reshape(-1)
            offset += value.size
    return theta


def unpack(theta, dims):
    """Inverse of :func:`pack`: a dict of new arrays (copies, not views)."""
    parameters = {}
    offset = 0
    for l in range(1, len(dims)):
        for p, shape in (("W", (dims[l], dims[l - 1])), ("b", (dims[l], 1))):
            size = shape[0] * shape[1]
            parameters[f"{p}{l}"] = theta[offset: offset + size].reshape(shape).copy()
            offset += size
    return parameters


class Trainer:
    """Whole-loop gradient descent with every buffer allocated once.

    ``Trainer(parameters, X, Y, ...)`` copies the initial ``parameters``
    (never modified) and the data into C-contiguous arrays of ``dtype``;
    each :meth:`run` then performs any number of iterations in one compiled
    call, allocating nothing, so a caller can train in chunks (to show
    progress or honour Ctrl-C between chunks) at no cost per iteration.

    X ``(n_x, m)``; Y ``(n_L, m)`` of 0/1 labels (the caller validates values;
    see ``Model.fit``). ``dtype`` defaults to the common dtype of the
    parameters and ``X``.

    ``gram``: train the first layer through the Gram matrix ``G = X^T X``
    (see ``training.train``), exact algebra that replaces the two products
    with ``X`` per step by one ``(n_1, m) x (m, m)`` product. Default
    (None): when ``n_x >= m`` (it then saves at least half their work, and
    ``G`` is no larger than ``X``) and, if ``max_iterations`` is given, when
    the work saved over that many steps exceeds the ``n_x m^2`` of ``G``.
    """

    def __init__(self, parameters, X, Y, hidden_activation="relu", learning_rate=0.0075,
                 cost_every=100, dtype=None, max_iterations=None, gram=None):
        self.code = check_activation_name(hidden_activation, "hidden_activation")
        self.dims = check_parameters(parameters)
        learning_rate = check_learning_rate(learning_rate)
        self.cost_every = check_positive_int(cost_every, "cost_every")
        check_matrix(X, "X", rows=self.dims[0], row_name="n_x")
        check_matrix(Y, "Y", rows=self.dims[-1], cols=np.shape(X)[1], row_name="n_y")
        if dtype is None:
            dtype = common_dtype(X=X, **parameters)
        self.dtype = np.dtype(dtype)
        with np.errstate(over="ignore"):
            self.learning_rate = self.dtype.type(learning_rate)
        if not np.isfinite(self.learning_rate):
            raise ValueError(f"learning_rate {learning_rate:g} is not finite in {self.dtype}")
        self.X = as_kernel_array(X, self.dtype)
        self.Y = as_kernel_array(Y, self.dtype)
        n_x, m = self.X.shape
        if gram is None:
            n_1 = self.dims[1]
            saved_per_step = n_1 * m * (2 * n_x - m)
            gram = n_x >= m and (max_iterations is None
                                 or max_iterations * saved_per_step > n_x * m * m)
        self.gram = bool(gram)
        self._n_parameters = sum(n * k + n for n, k in zip(self.dims[1:], self.dims[:-1]))
        n_D = self.dims[1] * m if self.gram else 0  # Gram mode's D after the parameters
        self._current = np.zeros(self._n_parameters + n_D, dtype=self.dtype)
        self._current[: self._n_parameters] = pack(parameters, self.dims, self.dtype)
        self._other = np.zeros_like(self._current)
        self._acts = np.empty(sum(self.dims[1:]) * m, dtype=self.dtype)
        self._deltas = np.empty_like(self._acts)
        self._grad = np.zeros_like(self._current)
        if self.gram:
            self._G = self.X.T @ self.X
            self._P0 = np.empty((self.dims[1], m), dtype=self.dtype)
        else:
            self._G = self._P0 = np.empty((0, 0), dtype=self.dtype)
        self._dims = np.asarray(self.dims, dtype=np.int64)
        self._costs = np.full(0, np.nan, dtype=self.dtype)
        if max_iterations is not None:
            self._reserve(check_positive_int(max_iterations, "max_iterations"))
        #: Updates applied so far to :attr:`parameters`.
        self.n_iter = 0
        #: ``"ok"``, ``"nonfinite_cost"`` or ``"nonfinite_update"``.
        self.status = "ok"
        #: The iteration whose cost or update went non-finite, else None.
        self.failed_at = None

    def _reserve(self, n_total):
        n_costs = math.ceil(n_total / self.cost_every)
        if n_costs > self._costs.size:
            grown = np.full(max(n_costs, 2 * self._costs.size), np.nan, dtype=self.dtype)
            grown[: self._costs.size] = self._costs
            self._costs = grown

    def run(self, n_iterations):
        """Run ``n_iterations`` more iterations (stops early on a non-finite cost or update).

        Returns the status string; after a failure, further calls do nothing.
        """
        n_iterations = check_positive_int(n_iterations, "n_iterations")
        if self.status != "ok":
            return self.status
        self._reserve(self.n_iter + n_iterations)
        status, done, failed_at, in_other = call_specialised(
            training.train, self.dtype, self.code,
            self._current, self._other, self.X, self.Y, self._dims, self.code,
            self.learning_rate, self.n_iter, n_iterations, self.cost_every,
            self._acts, self._deltas, self._grad, self._costs, self.gram, self._G, self._P0,
        )
        if in_other:
            self._current, self._other = self._other, self._current
        self.n_iter += int(done)
        self.status = STATUS[status]
        self.failed_at = None if failed_at < 0 else int(failed_at)
        return self.status

    @property
    def parameters(self):
        """A new dict of the current parameters (the last with a finite cost)."""
        return unpack(self._current[: self._n_parameters], self.dims)

    @property
    def costs(self):
        """The costs recorded so far (float64): iterations 0, cost_every, ... reached."""
        reached = self.failed_at if self.failed_at is not None else self.n_iter - 1
        return self._costs[: reached // self.cost_every + 1].astype(np.float64)


def train(parameters, X, Y, hidden_activation="relu", learning_rate=0.0075,
          n_iterations=3000, cost_every=100, dtype=None, gram=None):
    """Full-batch gradient descent, every iteration in one compiled call.

    parameters: the initial dict (not modified); X ``(n_x, m)``; Y
    ``(n_L, m)`` of 0/1 labels. Equals ``n_iterations`` steps of
    ``reference.L_layer_model`` (``dZ`` start, cost from the logits) to
    rounding. Returns a :class:`TrainResult`.
    """
    trainer = Trainer(parameters, X, Y, hidden_activation, learning_rate, cost_every, dtype,
                      max_iterations=n_iterations, gram=gram)
    trainer.run(n_iterations)
    return TrainResult(trainer.parameters, trainer.costs, trainer.n_iter, trainer.status,
                       trainer.failed_at)
