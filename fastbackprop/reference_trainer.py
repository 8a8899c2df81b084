"""The NumPy backend's trainer and prediction: the reference's step functions, in chunks.

The interface is that of the compiled backend (:class:`fastbackprop.kernels.Trainer`,
:func:`fastbackprop.kernels.probabilities`), so the backend registry
(:mod:`fastbackprop.backends`) serves both alike.
"""

from __future__ import annotations

import numpy as np

from . import reference as R
from .validation import check_parameters, check_positive_int, check_training

__all__ = ["Trainer", "probabilities"]


class Trainer:
    """The interface of :class:`fastbackprop.kernels.Trainer`, on :mod:`fastbackprop.reference`.

    ``NumpyTrainer(parameters, X, Y, ...)`` copies ``parameters`` and the
    data into arrays of ``dtype``; each :meth:`run` performs more
    iterations of forward, cost (from ``ZL``, every ``cost_every``
    iterations), backward from ``dZ_L = AL - Y``, and update. X
    ``(n_x, m)``; Y ``(n_L, m)`` of 0/1 labels (the caller validates values).

    Failures follow the kernels: when the cost of the parameters after
    ``i`` updates is non-finite (checked every iteration through
    ``sum(ZL)``), the result is the previous parameters and ``failed_at``
    is ``i``; when an update produces non-finite parameters, the result is
    the parameters before it.
    """

    def __init__(self, parameters, X, Y, hidden_activation="relu", learning_rate=0.0075,
                 cost_every=100, dtype=None, max_iterations=None, *,
                 output_activation="sigmoid"):
        options = check_training(hidden_activation, output_activation, learning_rate,
                                 cost_every)
        self.dims = check_parameters(parameters)
        self.dtype = np.dtype(dtype) if dtype is not None else np.result_type(X, *parameters.values())
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.learning_rate = options.learning_rate
        self.cost_every = options.cost_every
        self.X = np.array(X, dtype=self.dtype)
        self.Y = np.array(Y, dtype=self.dtype)
        self._current = {k: np.array(v, dtype=self.dtype) for k, v in parameters.items()}
        self._previous = None
        self._costs = []
        self.n_iter = 0
        self.status = "ok"
        self.failed_at = None

    def run(self, n_iterations):
        """Run ``n_iterations`` more iterations (stops early on a non-finite cost or update).

        Returns ``"ok"``, ``"nonfinite_cost"`` or ``"nonfinite_update"``;
        after a failure, further calls do nothing.
        """
        n_iterations = check_positive_int(n_iterations, "n_iterations")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for _ in range(n_iterations):
                if self.status != "ok":
                    break
                self._step()
        return self.status

    def _step(self):
        """One iteration ``i = n_iter``: forward, cost, backward, update."""
        i = self.n_iter
        AL, caches = R.L_model_forward(self.X, self._current, self.hidden_activation,
                                       self.output_activation)
        ZL = caches[-1][1]
        if i % self.cost_every == 0:
            self._costs.append(R.compute_cost_from_logits(ZL, self.Y, self.output_activation))
        if not np.isfinite(np.sum(ZL)):
            self.status, self.failed_at = "nonfinite_cost", i
            if self._previous is not None:
                self._current, self.n_iter = self._previous, i - 1
            return
        grads = R.L_model_backward(AL, self.Y, caches, self.hidden_activation, "dZ",
                                   self.output_activation)
        new = R.update_parameters(self._current, grads, self.learning_rate)
        if not all(np.all(np.isfinite(v)) for v in new.values()):
            self.status, self.failed_at = "nonfinite_update", i
            return
        self._previous, self._current = self._current, new
        self.n_iter = i + 1

    @property
    def parameters(self):
        """A new dict of the current parameters (the last with a finite cost)."""
        return {k: v.copy() for k, v in self._current.items()}

    @property
    def costs(self):
        """The costs recorded so far (float64): iterations 0, cost_every, ... reached."""
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
