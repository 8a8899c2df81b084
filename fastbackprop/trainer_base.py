"""What both backends' trainers share: the signature, the checks and the bookkeeping.

A trainer runs epochs in chunks (:meth:`~fastbackprop.driver.Progress.run`), keeping its parameters,
its optimiser's state and its counters between chunks, so a caller can
show progress and honour Ctrl-C between chunks at no cost per step. The
backends subclass :class:`TrainerBase` (``fastbackprop.kernels.Trainer``,
``fastbackprop.reference_trainer.Trainer``) and implement ``_setup``,
``_run``, ``parameters``, ``optimizer_state`` and ``costs``.
"""

from __future__ import annotations

import numpy as np

from .driver import Progress
from .options import TrainingOptions
from .validation import check_matrix, check_parameters, check_positive_int, check_sample_weight


class TrainerBase(Progress):
    """Epochs of (mini-batch) training of one network, on one backend.

    parameters: the initial dict (copied, never modified); X ``(n_x, m)``;
    Y ``(n_L, m)`` of labels the caller has checked (``Model.fit`` does).

    ``options``: a :class:`fastbackprop.options.TrainingOptions` (the
    activations, the optimiser and its hyperparameters, the batches, the
    schedule, L2, dropout; see there). For a call by hand the same fields
    may be given as keywords instead (``hidden_activation``,
    ``learning_rate`` and ``cost_every`` also by position), which builds
    the object. The cost of every epoch ``e`` with ``e % cost_every == 0``
    is recorded. Dropout's masks are ``rng.dropout_mask(seed, t, layer,
    ...)``. ``sample_weight``: None or ``(m,)`` weights >= 0 of the columns
    in the cost and the gradient. ``dtype``: default the common dtype of the
    parameters and ``X``. ``max_epochs``: the epochs the caller plans
    (sizes buffers; Gram mode's choice); ``max_iterations`` is its old name.

    To continue a fit: ``start_epoch`` epochs and ``t`` updates were made
    before, and ``optimizer_state`` (``{"v": {"dW1": ...}, ...}``, as
    :attr:`optimizer_state` returns) is the optimiser's state after them.

    ``gram``: Gram mode for wide first layers, a strategy of the compiled
    backend (None: its own choice); the NumPy backend has no such mode and
    accepts only None or False.
    """

    def __init__(self, parameters, X, Y, hidden_activation=None, learning_rate=None,
                 cost_every=None, dtype=None, max_epochs=None, *, options=None,
                 sample_weight=None, start_epoch=0, t=0, optimizer_state=None, gram=None,
                 max_iterations=None, **option_values):
        self.options = _options(options, hidden_activation=hidden_activation,
                                learning_rate=learning_rate, cost_every=cost_every,
                                **option_values)
        o = self.options
        self.hidden_activation = o.hidden_activation
        self.output_activation = o.output_activation
        self.optimizer = o.optimizer
        self.dims = check_parameters(parameters)
        check_matrix(X, "X", rows=self.dims[0], row_name="n_x")
        check_matrix(Y, "Y", rows=self.dims[-1], cols=np.shape(X)[1], row_name="n_y")
        self.m = np.shape(X)[1]
        #: Dropout's keep probability per hidden layer.
        self.keep_prob = o.keep_probs(len(self.dims) - 2)
        self._sample_weight = check_sample_weight(sample_weight, self.m)
        if max_epochs is None:
            max_epochs = max_iterations
        if max_epochs is not None:
            max_epochs = check_positive_int(max_epochs, "max_epochs")
        start_epoch = _check_count(start_epoch, "start_epoch")
        t = _check_count(t, "t")
        self.slots = o.slots
        _check_state(optimizer_state, self.slots, parameters, t)
        self._begin(o, 1 if o.batch_size is None else -(-self.m // o.batch_size), start_epoch, t)
        self._setup(parameters, X, Y, dtype, max_epochs, optimizer_state, gram)


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


def _options(options, **values):
    """``options``, or a :class:`TrainingOptions` built from the keyword ``values`` (those that
    are None take their defaults); not both."""
    given = {name: value for name, value in values.items() if value is not None}
    if options is None:
        return TrainingOptions(**given)
    if not isinstance(options, TrainingOptions):
        raise TypeError(f"options must be a TrainingOptions; got {type(options).__name__}")
    if given:
        raise TypeError(f"pass the options either as options=TrainingOptions(...) or as "
                        f"keywords, not both; got options and {sorted(given)}")
    return options
