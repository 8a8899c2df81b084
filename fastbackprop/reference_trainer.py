"""The NumPy backend's trainer and prediction: the reference's step functions, in chunks.

The interface is that of the compiled backend (:class:`fastbackprop.kernels.Trainer`,
:func:`fastbackprop.kernels.probabilities`), both built on
:class:`fastbackprop.trainer_base.TrainerBase`, so the backend registry
(:mod:`fastbackprop.backends`) serves both alike.
"""

from __future__ import annotations

import numpy as np

from . import optimizers, reference as R, spec
from .trainer_base import TrainerBase

__all__ = ["Trainer", "probabilities"]


class Trainer(TrainerBase):
    """The interface of :class:`fastbackprop.kernels.Trainer`, on :mod:`fastbackprop.reference`.

    Each :meth:`run` performs more epochs of :func:`reference.random_mini_batches`
    batches, each a forward pass, the cost (from ``ZL``, in recorded epochs),
    backward from ``dZ_L = AL - Y`` and
    :func:`reference.update_parameters_with_optimizer`.

    Failures follow the kernels: when the cost of the current parameters
    is non-finite (checked every step through ``sum(ZL)``), the result is
    the previous parameters and state, and ``failed_at`` the epoch; when an
    update produces non-finite parameters, the result is the parameters
    before it.
    """

    def _setup(self, parameters, X, Y, dtype, max_epochs, optimizer_state, gram):
        if gram:
            raise ValueError("gram: the numpy backend has no Gram mode; pass None or False")
        self.dtype = np.dtype(dtype) if dtype is not None else np.result_type(X, *parameters.values())
        self.X = np.array(X, dtype=self.dtype)
        self.Y = np.array(Y, dtype=self.dtype)
        params = {k: np.array(v, dtype=self.dtype) for k, v in parameters.items()}
        if optimizer_state is None:
            state = R.initialize_optimizer(params, self.optimizer)
        else:
            state = {slot: {k: np.array(v, dtype=self.dtype) for k, v in values.items()}
                     for slot, values in optimizer_state.items()}
        self._current = (params, state)
        self._previous = None
        self._costs = []
        o = self.options
        self._hyperparameters = optimizers.Hyperparameters(o.beta, o.beta1, o.beta2, o.epsilon)

    def _run(self, n_epochs):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for epoch in range(self.n_iter, self.n_iter + n_epochs):
                status = self._epoch(epoch)
                if status != spec.OK:
                    return status, epoch, self.t
        return spec.OK, None, self.t

    def _epoch(self, epoch):
        """One epoch: every batch's step; records the cost; returns a status code."""
        o = self.options
        alpha = optimizers.learning_rate_at(o.learning_rate, epoch, o.decay_rate, o.time_interval)
        record = epoch % self.cost_every == 0
        total = 0.0
        status = spec.OK
        w = self._sample_weight
        for columns in R.mini_batch_columns(self.m, o.batch_size, o.seed, epoch, o.shuffle):
            X_b, Y_b = self.X[:, columns], self.Y[:, columns]
            w_b = None if w is None else w[columns].astype(self.dtype)
            m_b = len(columns)
            parameters, state = self._current
            dropout = R.dropout_masks(self.keep_prob, [(n, m_b) for n in self.dims[1:-1]],
                                      o.seed, self.t + 1)
            AL, caches = R.L_model_forward(X_b, parameters, self.hidden_activation,
                                           self.output_activation, dropout)
            ZL = caches[-1][1]
            if record:
                total += (R.compute_cost_from_logits(ZL, Y_b, self.output_activation, w_b)
                          + R.l2_cost(parameters, o.l2, m_b)) * m_b
            if not np.isfinite(np.sum(ZL)):
                status = spec.NONFINITE_COST
                if self._previous is not None:
                    self._current, self._previous = self._previous, None
                    self.t -= 1
                break
            grads = R.L_model_backward(AL, Y_b, caches, self.hidden_activation, "dZ",
                                       self.output_activation, l2=o.l2, dropout=dropout,
                                       sample_weight=w_b)
            new = R.update_parameters_with_optimizer(
                parameters, grads, state, self.t + 1, alpha, self.optimizer, *self._hyperparameters)
            if not all(np.all(np.isfinite(v)) for v in new[0].values()):
                status = spec.NONFINITE_UPDATE
                break
            self._previous, self._current = self._current, new
            self.t += 1
        if record:
            self._costs.append(total / self.m)
        return status

    @property
    def parameters(self):
        """A new dict of the current parameters (the last with a finite cost)."""
        return {k: v.copy() for k, v in self._current[0].items()}

    @property
    def optimizer_state(self):
        """The optimiser's state with :attr:`parameters`: ``{"v": {"dW1": ...}, ...}`` (new arrays)."""
        return {slot: {k: v.copy() for k, v in values.items()}
                for slot, values in self._current[1].items()}

    @property
    def costs(self):
        """The costs this trainer recorded (float64): epochs ``e % cost_every == 0`` reached."""
        return np.array(self._costs, dtype=np.float64)


def probabilities(X, parameters, hidden_activation="relu", output_activation="sigmoid",
                  dtype=None):
    """``AL`` ``(n_L, m)`` of the network on ``X`` ``(n_x, m)``, by the reference's forward pass.

    ``dtype``: compute in this dtype (default: NumPy's promotion of the inputs).
    """
    if dtype is not None:
        X = np.asarray(X, dtype=dtype)
        parameters = {k: np.asarray(v, dtype=dtype) for k, v in parameters.items()}
    AL, _ = R.L_model_forward(X, parameters, hidden_activation, output_activation)
    return AL


def gradient_sums(theta, X, Y, dims, hidden_activation="relu", output_activation="sigmoid"):
    """:func:`fastbackprop.kernels.gradient_sums` by the reference's step functions.

    Returns ``(grad, loss)``: the raw sums over the block's columns in
    ``theta``'s layout (``W1, b1, ...`` flattened) and the summed cost.
    """
    dims = [int(d) for d in dims]
    parameters = R.vector_to_parameters(np.asarray(theta), dims)
    m = np.shape(X)[1]
    AL, caches = R.L_model_forward(X, parameters, hidden_activation, output_activation)
    loss = R.compute_cost_from_logits(caches[-1][1], Y, output_activation) * m
    grads = R.L_model_backward(AL, Y, caches, hidden_activation, "dZ", output_activation)
    return R.gradients_to_vector(grads, len(dims) - 1).reshape(-1) * m, loss
