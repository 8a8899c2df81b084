"""The NumPy backend's trainer and prediction: the reference's step functions, in chunks.

The interface is that of the compiled backend (:class:`fastbackprop.kernels.Trainer`,
:func:`fastbackprop.kernels.probabilities`), both built on
:class:`fastbackprop.trainer_base.TrainerBase`, so the backend registry
(:mod:`fastbackprop.backends`) serves both alike.
"""

from __future__ import annotations

import math

import numpy as np

from . import outputs
from . import reference as R
from .driver import OnStepLoop, StepLoop
from .layout import Schema
from .sparse import check_sparse_X, is_sparse
from .trainer_base import TrainerBase

__all__ = ["Trainer", "probabilities"]


class NumpyEngine:
    """The engine of :class:`fastbackprop.driver.StepLoop` on the reference's step functions.

    ``X`` ``(n_x, m)`` (an array, or a SciPy ``csc_array``: its batches are column
    slices, and the first layer's products SciPy's), ``Y`` ``(n_L, m)`` in ``dtype``;
    each epoch's batches are
    :func:`reference.mini_batch_columns`; each step is a forward pass (with the
    dropout masks of the update's number), the cost from ``ZL`` when asked, and
    backward from ``dZ_L = AL - Y`` (times the columns' weights): the batch's gradient
    as ``L_model_backward`` returns it, flattened.

    With batch-normalised layers (``schema``'s kinds), each step normalises by the
    batch's statistics (unweighted: the sample weights enter through ``dZ_L`` only, as in
    PyTorch) and :meth:`statistics` writes the running averages they give into the
    updated ``theta``.
    """

    def __init__(self, X, Y, dims, options, keep_prob, sample_weight, dtype, schema=None):
        self.X, self.Y = R.batch_columns(X), Y  # C-ordered once (a full batch is X itself)
        self.dims = dims
        self.schema = Schema(dims) if schema is None else schema
        self._running = None
        self._batch_norm = self.schema.has_batch_norm
        if not self._batch_norm:
            self.statistics = None
        # the gradient of each step, and its arrays as views (backward writes into them)
        self._grad = np.zeros(self.schema.size, dtype=dtype)
        self._grads = self.schema.unpack(self._grad, copy=False, prefix="d")
        self.options = options
        self.keep_prob = keep_prob
        self._dropout = any(keep != 1 for keep in keep_prob)
        self._output = outputs.FUNCTIONS[options.output_activation]
        self.w = None if sample_weight is None else sample_weight.astype(dtype)
        self.dtype = dtype
        self.m = X.shape[1]
        self.n_steps = 1 if options.batch_size is None else -(-self.m // options.batch_size)
        self._columns = None

    def start_epoch(self, epoch):
        o = self.options
        # a full batch (None) is X itself, not the copy an index would make
        self._columns = ([None] if o.batch_size is None else
                         list(R.mini_batch_columns(self.m, o.batch_size, o.seed, epoch,
                                                   o.shuffle)))

    def gradient(self, theta, k, t, cost):
        """The batch's gradient by the reference's step functions, unchecked: the trainer
        checked ``X``, ``Y``, the weights and the parameters before its first step.

        The output layer's ``A_L`` and cost share their work (``forward_with_cost``), and
        backward writes the gradient into the engine's flat array (the running statistics'
        entries stay 0), which the next step overwrites: the bits of ``L_model_forward``,
        ``compute_cost_from_logits``, ``L_model_backward`` and ``gradients_to_vector``.
        Runs inside the :class:`~fastbackprop.driver.StepLoop`'s ``np.errstate``.
        """
        o = self.options
        columns = self._columns[k]
        X_b = R.batch_columns(self.X, columns)  # C-ordered, as the reference's batches
        selected = slice(None) if columns is None else columns
        Y_b = self.Y[:, selected]
        w_b = None if self.w is None else self.w[selected]
        m_b = X_b.shape[1]
        L = len(self.dims) - 1
        parameters = self.schema.unpack(theta, copy=False)
        dropout = (R.dropout_masks(self.keep_prob, [(n, m_b) for n in self.dims[1:-1]],
                                   o.seed, t) if self._dropout else None)
        A, caches = R._hidden_layers_forward(X_b, parameters, L, o.hidden_activation, dropout,
                                             True, o.batch_norm_epsilon)
        ZL, linear_cache = R._linear_forward(A, parameters[f"W{L}"], parameters[f"b{L}"])
        caches.append((linear_cache, ZL))
        if self._batch_norm:
            self._running = R.running_statistics(parameters, caches, o.batch_norm_momentum)
        if cost:
            AL, loss = self._output.forward_with_cost(ZL, Y_b, w_b)
            loss = float(loss)
        else:
            AL, loss = self._output.forward(ZL), 0.0
        if not _finite_output(ZL, AL):
            return None, loss, m_b
        R._L_model_backward(AL, Y_b, caches, o.hidden_activation, "dZ", o.output_activation,
                            0.0, dropout, w_b, False, out=self._grads)
        return self._grad, loss, m_b

    def statistics(self, theta):
        """Write the last batch's running statistics into ``theta`` (the parameters after
        its update; the optimiser leaves them as they were, their gradient being 0)."""
        views = self.schema.unpack(theta, copy=False)
        for key, value in self._running.items():
            views[key][...] = value


def _finite_output(ZL, AL):
    """The divergence check of the kernels' output pass: ``sum(ZL)`` and ``sum(AL)`` finite
    (``AL`` adds nothing for the bounded outputs, and catches the exp output's ``e^z``
    overflowing for a finite ``z``)."""
    return math.isfinite(ZL.sum()) and math.isfinite(AL.sum())


class Trainer(OnStepLoop, TrainerBase):
    """The interface of :class:`fastbackprop.kernels.Trainer`, on :mod:`fastbackprop.reference`.

    Each :meth:`run` performs more epochs of :func:`reference.mini_batch_columns`
    batches through :class:`fastbackprop.driver.StepLoop` over a :class:`NumpyEngine`:
    each step a forward pass, the cost (from ``ZL``, in recorded epochs),
    backward from ``dZ_L = AL - Y``, L2 and the optimiser's update
    (:func:`fastbackprop.optimizers.update`).

    Failures follow the kernels: when the cost of the current parameters
    is non-finite (checked every step through ``sum(ZL)`` and ``sum(AL)``), the result is
    the previous parameters and state, and ``failed_at`` the epoch; when an
    update produces non-finite parameters, the result is the parameters
    before it.
    """

    def _setup(self, parameters, X, Y, dtype, max_epochs, optimizer_state, gram):
        if gram:
            raise ValueError("gram: the numpy backend has no Gram mode; pass None or False")
        if dtype is None:
            dtype = np.result_type(X.dtype if is_sparse(X) else X, *parameters.values())
        self.dtype = np.dtype(dtype)
        # sparse X: a checked csc_array; the reference's products with it are SciPy's
        X = check_sparse_X(X, dtype=self.dtype) if is_sparse(X) else np.array(X, dtype=self.dtype)
        Y = np.array(Y, dtype=self.dtype)
        schema = Schema.of(parameters)
        engine = NumpyEngine(X, Y, self.dims, self.options, self.keep_prob,
                             self._sample_weight, self.dtype, schema)
        self._loop = StepLoop(engine, self.options, schema, self.dtype, parameters,
                              optimizer_state)


def probabilities(X, parameters, hidden_activation="relu", output_activation="sigmoid",
                  dtype=None, *, batch_norm_epsilon=R.BATCH_NORM_EPSILON):
    """``AL`` ``(n_L, m)`` of the network on ``X`` ``(n_x, m)``, by the reference's forward pass.

    ``dtype``: compute in this dtype (default: NumPy's promotion of the inputs).
    Batch-normalised layers use their running statistics (``batch_norm_epsilon``).
    """
    if dtype is not None:
        X = np.asarray(X, dtype=dtype)
        parameters = {k: np.asarray(v, dtype=dtype) for k, v in parameters.items()}
    AL, _ = R.L_model_forward(X, parameters, hidden_activation, output_activation,
                              batch_norm_epsilon=batch_norm_epsilon)
    return AL


def gradient_sums(theta, X, Y, dims, hidden_activation="relu", output_activation="sigmoid",
                  sample_weight=None, work=None):
    """:func:`fastbackprop.kernels.gradient_sums` by the reference's step functions.

    Returns ``(grad, loss)``: the raw sums over the block's columns in
    ``theta``'s layout (``W1, b1, ...`` flattened) and the summed cost (each
    column's times its weight). ``work`` is accepted for the interface and unused.
    """
    grad, loss, _ = block_pass(theta, X, Y, dims, hidden_activation, output_activation,
                               sample_weight)
    return grad, loss


def block_pass(theta, X, Y, dims, hidden_activation, output_activation, sample_weight=None):
    """One forward and backward pass over the columns of ``X``: ``(grad, loss, AL)``, the
    raw gradient and cost sums of :func:`gradient_sums` and the output ``A_L`` ``(n_L, m)``
    (the loss NaN when ``Z_L`` or ``A_L`` is not finite)."""
    dims = [int(d) for d in dims]
    parameters = R.vector_to_parameters(np.asarray(theta), dims)
    m = np.shape(X)[1]
    AL, caches = R.L_model_forward(X, parameters, hidden_activation, output_activation)
    ZL = caches[-1][1]
    loss = (R.compute_cost_from_logits(ZL, Y, output_activation, sample_weight) * m
            if _finite_output(ZL, AL) else float("nan"))
    grads = R.L_model_backward(AL, Y, caches, hidden_activation, "dZ", output_activation,
                               sample_weight=sample_weight, input_gradient=False)
    return R.gradients_to_vector(grads, len(dims) - 1).reshape(-1) * m, loss, AL
