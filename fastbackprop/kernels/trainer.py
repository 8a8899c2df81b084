"""The compiled backend's trainer: whole-loop training in chunks, buffers allocated once."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import spec
from ..validation import check_matrix, check_parameters, check_positive_int, check_training
from . import gram as gram_mode, training
from .convert import as_kernel_array, call_specialised, common_dtype
from .layout import n_parameters, pack, unpack


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


class Trainer:
    """Whole-loop gradient descent with every buffer allocated once.

    ``Trainer(parameters, X, Y, ...)`` copies the initial ``parameters``
    (never modified) and the data into C-contiguous arrays of ``dtype``;
    each :meth:`run` then performs any number of iterations in one compiled
    call, allocating nothing, so a caller can train in chunks (to show
    progress or honour Ctrl-C between chunks) at no cost per iteration.

    X ``(n_x, m)``; Y ``(n_L, m)`` of labels (the caller validates values;
    see ``Model.fit``). ``dtype`` defaults to the common dtype of the
    parameters and ``X``.

    ``gram`` (this backend only): train the first layer through the Gram
    matrix ``G = X^T X`` (see :mod:`fastbackprop.kernels.gram`). Default
    (None): when :func:`.gram.applies`.
    """

    def __init__(self, parameters, X, Y, hidden_activation="relu", learning_rate=0.0075,
                 cost_every=100, dtype=None, max_iterations=None, *,
                 output_activation="sigmoid", gram=None):
        options = check_training(hidden_activation, output_activation, learning_rate,
                                 cost_every)
        self.dims = check_parameters(parameters)
        self.cost_every = options.cost_every
        self.codes = (options.hidden, options.output)
        check_matrix(X, "X", rows=self.dims[0], row_name="n_x")
        check_matrix(Y, "Y", rows=self.dims[-1], cols=np.shape(X)[1], row_name="n_y")
        if dtype is None:
            dtype = common_dtype(X=X, **parameters)
        self.dtype = np.dtype(dtype)
        with np.errstate(over="ignore"):
            learning_rate = self.dtype.type(options.learning_rate)
        if not np.isfinite(learning_rate):
            raise ValueError(f"learning_rate {options.learning_rate:g} is not finite in {self.dtype}")
        self._hyper = training.Hyper(learning_rate, self.cost_every)
        X = as_kernel_array(X, self.dtype)
        self._data = training.Data(X, as_kernel_array(Y, self.dtype))
        n_x, m = X.shape
        if gram is None:
            gram = gram_mode.applies(self.dims, m, full_batch=True, linear_update=True,
                                     max_iterations=max_iterations)
        self._gram = gram_mode.make(bool(gram), X, self.dims[1], self.dtype)
        self._n_parameters = n_parameters(self.dims)
        n_D = self.dims[1] * m if self.gram else 0  # Gram mode's D after the parameters
        self._current = np.zeros(self._n_parameters + n_D, dtype=self.dtype)
        self._current[: self._n_parameters] = pack(parameters, self.dims, self.dtype)
        self._other = np.zeros_like(self._current)
        acts = np.empty(sum(self.dims[1:]) * m, dtype=self.dtype)
        self._work = training.Work(acts, np.empty_like(acts), np.zeros_like(self._current),
                                   np.full(0, np.nan, dtype=self.dtype),
                                   np.empty((4, m), dtype=self.dtype))
        self._dims = np.asarray(self.dims, dtype=np.int64)
        if max_iterations is not None:
            self._reserve(check_positive_int(max_iterations, "max_iterations"))
        #: Updates applied so far to :attr:`parameters`.
        self.n_iter = 0
        #: ``"ok"``, ``"nonfinite_cost"`` or ``"nonfinite_update"``.
        self.status = "ok"
        #: The iteration whose cost or update went non-finite, else None.
        self.failed_at = None

    @property
    def gram(self):
        """Whether the first layer trains through the Gram matrix."""
        return self._gram.enabled

    def _reserve(self, n_total):
        costs = self._work.costs
        n_costs = math.ceil(n_total / self.cost_every)
        if n_costs > costs.size:
            grown = np.full(max(n_costs, 2 * costs.size), np.nan, dtype=self.dtype)
            grown[: costs.size] = costs
            self._work = self._work._replace(costs=grown)

    def run(self, n_iterations):
        """Run ``n_iterations`` more iterations (stops early on a non-finite cost or update).

        Returns the status string; after a failure, further calls do nothing.
        """
        n_iterations = check_positive_int(n_iterations, "n_iterations")
        if self.status != "ok":
            return self.status
        self._reserve(self.n_iter + n_iterations)
        status, done, failed_at, in_other = call_specialised(
            training.train, self.dtype, self.codes,
            self._current, self._other, self._data, self._work, self._hyper, self._gram,
            self._dims, *self.codes, self.n_iter, n_iterations,
        )
        if in_other:
            self._current, self._other = self._other, self._current
        self.n_iter += int(done)
        self.status = spec.STATUSES[status]
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
        return self._work.costs[: reached // self.cost_every + 1].astype(np.float64)


def train(parameters, X, Y, hidden_activation="relu", learning_rate=0.0075,
          n_iterations=3000, cost_every=100, dtype=None, gram=None, *,
          output_activation="sigmoid"):
    """Full-batch gradient descent, every iteration in one compiled call.

    parameters: the initial dict (not modified); X ``(n_x, m)``; Y
    ``(n_L, m)`` of labels. Equals ``n_iterations`` steps of
    ``reference.L_layer_model`` (``dZ`` start, cost from the logits) to
    rounding. Returns a :class:`TrainResult`.
    """
    trainer = Trainer(parameters, X, Y, hidden_activation, learning_rate, cost_every, dtype,
                      max_iterations=n_iterations, output_activation=output_activation,
                      gram=gram)
    trainer.run(n_iterations)
    return TrainResult(trainer.parameters, trainer.costs, trainer.n_iter, trainer.status,
                       trainer.failed_at)
