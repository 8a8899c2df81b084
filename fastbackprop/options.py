"""The options of a fit: one frozen object, every field declared once with its default and check.

:class:`TrainingOptions` is what every trainer reads (both backends' and the
Dask driver's); the ``Model``, the scikit-learn classes and the command build
it once and pass it by keyword. Each field's check is declared in
:data:`CONSTRAINTS`, next to the others and in the manner of scikit-learn's
``_parameter_constraints``: a function of ``(value, name)`` that returns the
normalised value or raises ``TypeError``/``ValueError`` with a message naming
the argument, what it got and what was expected. The ``Model``'s own
hyperparameters (``layer_dims``, ``n_epochs``, ``init``, ...) are declared in
the same table, so the command, the Model and the trainers share one wording.

This module imports nothing heavy: the Model reads it at construction.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from . import spec
from .validation import (
    INITS,
    check_batch_norm_layers,
    check_batch_norm_values,
    check_choice,
    check_dtype,
    check_int,
    check_keep_prob_values,
    check_layer_dims,
    check_learning_rate,
    check_positive_int,
    check_real,
)

_UNIT = "a number in [0, 1)"


def table_name(table):
    """A name of one of ``spec``'s tables (its code is looked up in ``codes``)."""

    def check(value, name):
        spec.code_of(table, value, name)
        return value

    return check


def choice(choices):
    """One of the strings ``choices``."""
    return lambda value, name: check_choice(value, choices, name)


def integer(minimum, expected, optional=False):
    """An integer ``>= minimum`` (or None when ``optional``)."""

    def check(value, name):
        if optional and value is None:
            return None
        return check_int(value, name, minimum, expected)

    return check


def positive_integer(optional=False):
    """A positive integer (or None when ``optional``)."""

    def check(value, name):
        if optional and value is None:
            return None
        return check_positive_int(value, name)

    return check


def real(low, high, expected, low_open=False, high_open=True):
    """A finite real in the interval (see :func:`fastbackprop.validation.check_real`)."""
    return lambda value, name: check_real(value, name, low, high, expected, low_open, high_open)


def boolean(value, name):
    """True or False (NumPy's bools too); returned as a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def beta(value, name):
    """Momentum's ``beta``: a number in [0, 1), or 1, which :func:`check_beta` allows with the
    optimisers of ``spec.UNDAMPED`` only (where the optimiser is known)."""
    try:
        return check_real(value, name, 0, 1, _UNIT)
    except ValueError:
        if isinstance(value, numbers.Real) and float(value) == 1:
            return 1.0
        raise


def learning_rate(value, name):
    return check_learning_rate(value, name)


def keep_prob(value, name):
    """Dropout's keep probability: one number in (0, 1], or a sequence of them (one per hidden
    layer; the length is checked against the network where the network is known)."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return check_real(value, name, 0, 1, "a number in (0, 1]", low_open=True,
                          high_open=False)
    return check_keep_prob_values(value, name)


def batch_norm(value, name):
    """Batch normalisation: True or False for every hidden layer, or one bool per hidden
    layer (the length is checked against the network where the network is known)."""
    return check_batch_norm_values(value, name)


#: The smallest ``batch_norm_epsilon``: float32's smallest normal number, so that
#: ``sqrt(sigma2 + epsilon)`` is never 0 (nor subnormal, which the compiled loop flushes to
#: zero) in either dtype.
BATCH_NORM_EPSILON_MIN = float(np.finfo(np.float32).tiny)


def dtype_name(value, name):
    return check_dtype(value, name).name


def seed_or_none(value, name):
    return None if value is None else check_int(value, name, 0, "None or an integer >= 0")


#: name -> check, for every option of a fit (and the Model's own hyperparameters).
CONSTRAINTS = {
    # the trainers' options
    "hidden_activation": table_name(spec.ACTIVATIONS),
    "output_activation": table_name(spec.OUTPUTS),
    "learning_rate": learning_rate,
    "cost_every": positive_integer(),
    "optimizer": table_name(spec.OPTIMIZERS),
    "batch_size": integer(1, "None or an integer >= 1", optional=True),
    "shuffle": boolean,
    "seed": integer(0, "an integer >= 0"),
    "beta": beta,
    "beta1": real(0, 1, _UNIT),
    "beta2": real(0, 1, _UNIT),
    "epsilon": real(0, None, "a finite number > 0", low_open=True),
    "decay_rate": real(0, None, "a finite number >= 0"),
    "time_interval": positive_integer(optional=True),
    "l2": real(0, None, "a finite number >= 0"),
    "keep_prob": keep_prob,
    "n_threads": integer(1, "None or an integer >= 1", optional=True),
    "batch_norm": batch_norm,
    "batch_norm_momentum": real(0, 1, _UNIT),
    "batch_norm_epsilon": real(BATCH_NORM_EPSILON_MIN, None,
                               f"a finite number >= {BATCH_NORM_EPSILON_MIN:.6g} (float32's "
                               "smallest normal number)"),
    # the Model's own
    "layer_dims": lambda value, name: check_layer_dims(value, name),
    "n_epochs": positive_integer(),
    "init": choice(INITS),
    "model_seed": seed_or_none,
    "dtype": dtype_name,
    "backend": choice(spec.BACKENDS),
    "early_stopping": boolean,
    "patience": positive_integer(),
    "tol": real(0, None, "a finite number >= 0"),
    "validation_fraction": real(0, 1, "a number in (0, 1)", low_open=True),
}


def check_beta(beta, optimizer, argument="beta"):
    """``beta`` = 1 only with the optimisers of ``spec.UNDAMPED`` (``beta`` and ``optimizer``
    each already checked); ``ValueError`` naming ``argument`` otherwise."""
    if beta == 1 and optimizer not in spec.UNDAMPED:
        raise ValueError(
            f"{argument} must be {_UNIT}; got {beta!r}: 1 only with optimizer "
            f"{' or '.join(map(repr, spec.UNDAMPED))} (v := beta v - alpha dW), not "
            f"{optimizer!r}")
    return beta


def check(name, value, argument=None):
    """``value`` checked and normalised by :data:`CONSTRAINTS`\\ ``[name]``; the message names
    ``argument`` (default ``name``)."""
    return CONSTRAINTS[name](value, argument or name)


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """Everything a trainer reads besides the data and the starting point, checked.

    Built once (by the ``Model``, the scikit-learn classes, the command, the
    Dask driver) and passed by keyword; every field is checked on
    construction by :data:`CONSTRAINTS`, so an invalid object cannot exist.
    :meth:`replace` returns a checked copy with some fields changed.

    ``hidden_activation``, ``output_activation``, ``optimizer``: names in
    ``spec``'s tables. ``learning_rate``: alpha0, decayed per epoch by
    ``decay_rate`` and ``time_interval``. ``cost_every``: the cost of epochs
    ``0, cost_every, ...`` is recorded. ``batch_size``: None for full-batch
    steps (one per epoch), else the columns per batch, cut from the epoch's
    shuffled order (in order without ``shuffle``); ``seed`` keys the shuffles
    and dropout's masks. ``beta``, ``beta1``, ``beta2``, ``epsilon``: the
    optimisers'. ``l2``: the course's lambda. ``keep_prob``: inverted
    dropout's keep probability, one number or one per hidden layer.
    ``n_threads``: the threads each step is split between on the compiled
    backend (None: the cores Numba may use, where the work is large enough;
    1: none; see :mod:`fastbackprop.kernels.team`). ``batch_norm``: normalise the hidden
    layers' ``Z`` over each batch (True, False, or one bool per hidden layer; see
    :func:`fastbackprop.reference.batch_norm_forward`); ``batch_norm_momentum``: the running
    statistics' ``running := momentum running + (1 - momentum) batch`` (the course's
    exponentially weighted average; PyTorch's ``momentum=0.1`` is 0.9 here);
    ``batch_norm_epsilon``: the ``epsilon`` of ``sqrt(sigma2 + epsilon)``.
    """

    hidden_activation: str = "relu"
    output_activation: str = "sigmoid"
    learning_rate: float = 0.0075
    cost_every: int = 100
    optimizer: str = "gd"
    batch_size: int | None = None
    shuffle: bool = True
    seed: int = 0
    beta: float = spec.OPTIMIZER_DEFAULTS["beta"]
    beta1: float = spec.OPTIMIZER_DEFAULTS["beta1"]
    beta2: float = spec.OPTIMIZER_DEFAULTS["beta2"]
    epsilon: float = spec.OPTIMIZER_DEFAULTS["epsilon"]
    decay_rate: float = 0.0
    time_interval: int | None = None
    l2: float = 0.0
    keep_prob: float | tuple = 1.0
    n_threads: int | None = None
    batch_norm: bool | tuple = False
    batch_norm_momentum: float = 0.9
    batch_norm_epsilon: float = 1e-5

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))
        check_beta(self.beta, self.optimizer)

    def replace(self, **changes):
        """A checked copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    @property
    def codes(self):
        """``(hidden, output, optimizer)``: the codes of ``spec``'s tables the kernels take."""
        return (spec.ACTIVATIONS[self.hidden_activation].code,
                spec.OUTPUTS[self.output_activation].code,
                spec.OPTIMIZERS[self.optimizer].code)

    @property
    def slots(self):
        """The optimiser's state slots (``spec.OPTIMIZERS[optimizer].state``)."""
        return spec.OPTIMIZERS[self.optimizer].state

    def keep_probs(self, n_hidden):
        """Dropout's keep probability per hidden layer, a tuple of ``n_hidden`` floats."""
        if isinstance(self.keep_prob, tuple):
            if len(self.keep_prob) != n_hidden:
                raise ValueError(f"keep_prob must be a number in (0, 1] or one per hidden layer "
                                 f"({n_hidden}); got {len(self.keep_prob)} values")
            return self.keep_prob
        return (self.keep_prob,) * n_hidden

    def batch_norm_layers(self, n_hidden):
        """Whether each of the ``n_hidden`` hidden layers is batch-normalised, a tuple."""
        return check_batch_norm_layers(self.batch_norm, n_hidden)

    def as_dict(self):
        """The fields as a dict of plain values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: The fields of :class:`TrainingOptions`, in order.
FIELDS = tuple(f.name for f in dataclasses.fields(TrainingOptions))
