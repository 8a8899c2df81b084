"""What both backends' trainers share: the signature, the checks and the bookkeeping.

A trainer runs epochs in chunks (:meth:`run`), keeping its parameters,
its optimiser's state and its counters between chunks, so a caller can
show progress and honour Ctrl-C between chunks at no cost per step. The
backends subclass :class:`TrainerBase` (``fastbackprop.kernels.Trainer``,
``fastbackprop.reference_trainer.Trainer``) and implement ``_setup``,
``_run``, ``parameters``, ``optimizer_state`` and ``costs``.
"""

from __future__ import annotations

import numpy as np

from . import spec
from .validation import (
    check_keep_prob,
    check_learning_rate,
    check_matrix,
    check_parameters,
    check_positive_int,
    check_sample_weight,
    check_training,
)


class TrainerBase:
    """Epochs of (mini-batch) training of one network, on one backend.

    parameters: the initial dict (copied, never modified); X ``(n_x, m)``;
    Y ``(n_L, m)`` of labels the caller has checked (``Model.fit`` does).

    ``hidden_activation``, ``output_activation``, ``optimizer``: names in
    ``spec``'s tables. ``learning_rate``: alpha0, decayed per epoch by
    ``decay_rate`` and ``time_interval`` (``optimizers.learning_rate_at``).
    ``batch_size``: None for full-batch steps (one per epoch), else the
    columns per batch, cut from the epoch's shuffled order
    (``rng.permutation(m, seed, epoch)``, or in order without ``shuffle``).
    ``beta``, ``beta1``, ``beta2``, ``epsilon``: the optimisers'. The cost
    of every epoch ``e`` with ``e % cost_every == 0`` is recorded.
    ``l2``: the course's lambda (``dW += (l2 / m_b) W``, the cost gains
    ``(l2 / (2 m_b)) sum ||W||^2``). ``keep_prob``: inverted dropout on the
    hidden layers, one number or one per hidden layer, with the masks of
    ``rng.dropout_mask(seed, t, layer, ...)``. ``sample_weight``: None or
    ``(m,)`` weights >= 0 of the columns in the cost and the gradient.
    ``dtype``: default the common dtype of the parameters and ``X``.
    ``max_iterations``: the epochs the caller plans (sizes buffers; Gram mode's choice).

    To continue a fit: ``start_epoch`` epochs and ``t`` updates were made
    before, and ``optimizer_state`` (``{"v": {"dW1": ...}, ...}``, as
    :attr:`optimizer_state` returns) is the optimiser's state after them.

    ``gram``: Gram mode for wide first layers, a strategy of the compiled
    backend (None: its own choice); the NumPy backend has no such mode and
    accepts only None or False.
    """

    def __init__(self, parameters, X, Y, hidden_activation="relu", learning_rate=0.0075,
                 cost_every=100, dtype=None, max_iterations=None, *,
                 output_activation="sigmoid", optimizer="gd", batch_size=None, shuffle=True,
                 seed=0, beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8, decay_rate=0.0,
                 time_interval=None, l2=0.0, keep_prob=1.0, sample_weight=None, start_epoch=0,
                 t=0, optimizer_state=None, gram=None):
        self.options = check_training(
            hidden_activation, output_activation, learning_rate, cost_every, optimizer,
            batch_size, shuffle, seed, beta, beta1, beta2, epsilon, decay_rate, time_interval,
            l2)
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.optimizer = optimizer
        self.cost_every = self.options.cost_every
        self.dims = check_parameters(parameters)
        check_matrix(X, "X", rows=self.dims[0], row_name="n_x")
        check_matrix(Y, "Y", rows=self.dims[-1], cols=np.shape(X)[1], row_name="n_y")
        self.m = np.shape(X)[1]
        #: Dropout's keep probability per hidden layer.
        self.keep_prob = check_keep_prob(keep_prob, len(self.dims) - 2)
        self._sample_weight = check_sample_weight(sample_weight, self.m)
        #: Steps per epoch.
        self.n_batches = 1 if batch_size is None else -(-self.m // self.options.batch_size)
        if max_iterations is not None:
            max_iterations = check_positive_int(max_iterations, "max_iterations")
        start_epoch = _check_count(start_epoch, "start_epoch")
        t = _check_count(t, "t")
        self.slots = spec.OPTIMIZERS[optimizer].state
        _check_state(optimizer_state, self.slots, parameters, t)
        #: Epochs that produced :attr:`parameters`.
        self.n_iter = start_epoch
        #: Updates that produced :attr:`parameters`.
        self.t = t
        #: ``"ok"``, ``"nonfinite_cost"`` or ``"nonfinite_update"``.
        self.status = "ok"
        #: The epoch whose cost or update went non-finite, else None.
        self.failed_at = None
        self._start_epoch, self._start_t = start_epoch, t
        self._setup(parameters, X, Y, dtype, max_iterations, optimizer_state, gram)

    def run(self, n_iterations):
        """Run ``n_iterations`` more epochs (stops early on a non-finite cost or update).

        Returns the status string; after a failure, further calls do nothing.
        """
        n_iterations = check_positive_int(n_iterations, "n_iterations")
        if self.status != "ok":
            return self.status
        status, failed_at, t = self._run(n_iterations)
        self.status = spec.STATUSES[status] if not isinstance(status, str) else status
        self.t = t
        if self.status == "ok":
            self.n_iter += n_iterations
        else:
            self.failed_at = failed_at
            # the epochs completed by the parameters kept (the last with a finite cost)
            self.n_iter = self._start_epoch + (t - self._start_t) // self.n_batches
        return self.status

    @property
    def learning_rate(self):
        """alpha0, the learning rate before decay."""
        return self.options.learning_rate

    def set_learning_rate(self, learning_rate):
        """Change alpha0 for the epochs still to run (a schedule driven from outside)."""
        learning_rate = check_learning_rate(learning_rate)
        self.options = self.options._replace(learning_rate=learning_rate)
        self._learning_rate_changed()

    def _learning_rate_changed(self):
        """Hook: a backend that caches the learning rate refreshes it."""

    def _recorded_slots(self):
        """The indices ``e // cost_every`` of the costs recorded by this trainer."""
        reached = self.failed_at if self.failed_at is not None else self.n_iter - 1
        first = -(-self._start_epoch // self.cost_every)
        return first, reached // self.cost_every + 1


def _check_count(value, argument):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{argument} must be an integer >= 0; got {value!r}")
    return int(value)


def _check_state(state, slots, parameters, t):
    """``optimizer_state`` holds every slot of the optimiser, shaped like the parameters."""
    if state is None:
        return
    if not isinstance(state, dict) or set(state) != set(slots):
        raise ValueError(f"optimizer_state must be a dict with the slots {list(slots)}; "
                         f"got {sorted(state) if isinstance(state, dict) else type(state).__name__}")
    for slot in slots:
        for key, value in parameters.items():
            got = np.shape(state[slot].get(f"d{key}")) if isinstance(state[slot], dict) else None
            if got != np.shape(value):
                raise ValueError(f"optimizer_state['{slot}']['d{key}'] must have the shape of "
                                 f"{key}, {np.shape(value)}; got {got}")
