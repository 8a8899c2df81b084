"""Step-wise training, written once: the Python loop over an engine that returns raw sums.

The compiled backend runs whole epochs in one call (``kernels.training``).
Every other way to train goes step by step in Python, and what a step
does besides computing the gradient is the same whatever computes it: the
learning-rate schedule, L2, the division by the batch's size, the
optimiser's update, the cost record, and going back to the last good state
after a non-finite cost or update. That loop is :class:`StepLoop`, over an
**engine**: an object with

``m``, ``n_steps``
    the examples and the steps (batches) per epoch;
``start_epoch(epoch)``
    called before the epoch's first step (an engine shuffles here);
``gradient(theta, k, t, cost) -> (gradient, loss, m_b)``
    step ``k``'s batch gradient of the data term, the course's ``dW = (1/m_b) dZ
    A_prev^T``, ``db = (1/m_b) sum(dZ)`` (``dZ_L = w (A_L - Y)``) in ``theta``'s flat
    layout (:mod:`fastbackprop.layout`), or None when ``Z_L`` is not finite (the step
    fails: the compiled loop's rule; a finite ``Z_L`` whose squared error overflows goes
    on), its cost ``(1/m_b) sum_j w_j L_j`` (a float; 0 may stand for it when not
    ``cost``), and its
    number of columns ``m_b``; ``t`` is the update's number (dropout's masks). An engine
    that adds up blocks (Dask) sums their raw ``dZ A_prev^T`` and divides once;
``statistics`` (optional; None or absent without batch norm)
    ``statistics(theta)`` writes the last batch's running statistics into the updated
    ``theta`` (batch norm's ``running_mean``, ``running_var``: not trained, gradient 0).

The engines: the NumPy reference's (``reference_trainer.NumpyEngine``, the
``"numpy"`` backend) and Dask blocks' (``fastbackprop.dask``); the
scikit-learn classes' L-BFGS takes a full-batch engine of its own
(``fastbackprop.lbfgs``).

:class:`Progress` is the counters and the ``run`` protocol that every trainer
shares (the compiled one too), and the rest of this module is what a fit
does around a trainer: :func:`run_in_chunks`, :class:`Validation`,
:func:`validation_split`, :func:`diverged`, and the starting point.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from . import optimizers, outputs, reference, spec
from .layout import Schema, layer_kinds
from .sparse import is_sparse
from .validation import (
    check_batch_norm_layers,
    check_finite_parameters,
    check_labels,
    check_parameters,
    check_positive_int,
    check_X,
)

#: ``fit`` grows its chunks until one takes about this long (seconds): the
#: longest wait for a progress update or for Ctrl-C to take effect.
CHUNK_SECONDS = 0.1


class NotFittedError(ValueError, AttributeError):
    """A model was used (predict, score, gradients, save) before ``fit``."""


class TrainingDivergedError(FloatingPointError):
    """Gradient descent reached a non-finite cost or non-finite parameters.

    Attributes: ``epoch`` (also ``iteration``), the epoch that went
    non-finite; ``parameters``, the last parameters whose cost was finite
    (a dict); ``n_iter``, the epochs that produced them and ``t`` the
    updates; ``costs``, the costs recorded up to ``epoch`` (float64,
    possibly ending in NaN or infinity); ``reason``, ``"nonfinite_cost"``
    or ``"nonfinite_update"``.
    """

    def __init__(self, message, epoch, parameters, n_iter, costs, reason, t=None):
        super().__init__(message)
        self.epoch = self.iteration = epoch
        self.parameters = parameters
        self.n_iter = n_iter
        self.t = n_iter if t is None else t
        self.costs = costs
        self.reason = reason


class Progress:
    """A trainer's counters and its ``run`` protocol; subclasses implement ``_run``.

    :attr:`n_iter` epochs and :attr:`t` updates produced the current
    parameters; :attr:`status` is ``"ok"`` until an epoch fails, then
    ``"nonfinite_cost"`` or ``"nonfinite_update"`` with :attr:`failed_at`
    the epoch. ``_run(n_epochs)`` returns ``(status code, failed_at or None,
    t after)``.
    """

    def _begin(self, options, n_batches, start_epoch, t):
        self.options = options
        self.cost_every = options.cost_every
        #: Steps per epoch.
        self.n_batches = n_batches
        #: Epochs that produced :attr:`parameters`.
        self.n_iter = start_epoch
        #: Updates that produced :attr:`parameters`.
        self.t = t
        #: ``"ok"``, ``"nonfinite_cost"`` or ``"nonfinite_update"``.
        self.status = "ok"
        #: The epoch whose cost or update went non-finite, else None.
        self.failed_at = None
        self._start_epoch, self._start_t = start_epoch, t

    def run(self, n_epochs):
        """Run ``n_epochs`` more epochs (stops early on a non-finite cost or update).

        Returns the status string; after a failure, further calls do nothing.
        """
        n_epochs = check_positive_int(n_epochs, "n_epochs")
        if self.status != "ok":
            return self.status
        status, failed_at, t = self._run(n_epochs)
        self.status = spec.STATUSES[status] if not isinstance(status, str) else status
        self.t = t
        if self.status == "ok":
            self.n_iter += n_epochs
        else:
            self.failed_at = failed_at
            # the epochs completed by the parameters kept (the last with a finite cost)
            self.n_iter = self._start_epoch + (t - self._start_t) // self.n_batches
        return self.status

    def threads_kept(self):
        """A context inside which :meth:`run` keeps its threads from call to call (the
        compiled backend on ``P`` threads: no threads started per call); none here."""
        return contextlib.nullcontext()

    @property
    def learning_rate(self):
        """alpha0, the learning rate before decay."""
        return self.options.learning_rate

    def set_learning_rate(self, learning_rate):
        """Change alpha0 for the epochs still to run (a schedule driven from outside)."""
        self.options = self.options.replace(learning_rate=learning_rate)
        self._learning_rate_changed()

    def _learning_rate_changed(self):
        """Hook: a trainer that caches the learning rate refreshes it."""

    def _recorded_slots(self):
        """The indices ``e // cost_every`` of the costs recorded by this trainer."""
        reached = self.failed_at if self.failed_at is not None else self.n_iter - 1
        first = -(-self._start_epoch // self.cost_every)
        return first, reached // self.cost_every + 1


class StepLoop:
    """The step-wise loop over an ``engine`` (see the module): parameters, optimiser state,
    costs, and the state a failure goes back to.

    ``options``: :class:`~fastbackprop.options.TrainingOptions` (read afresh at every
    epoch: a changed learning rate acts on the next); ``schema``: the parameters'
    :class:`~fastbackprop.layout.Schema`; ``parameters`` and ``optimizer_state`` (None:
    zeros) the starting point, in ``dtype``.
    """

    def __init__(self, engine, options, schema, dtype, parameters, optimizer_state=None):
        self.engine = engine
        self.options = options
        self.schema = schema
        self.dtype = np.dtype(dtype)
        self.theta = schema.pack(parameters, self.dtype)
        self.state = {
            slot: (np.zeros_like(self.theta) if optimizer_state is None else schema.pack(
                {key[1:]: value for key, value in optimizer_state[slot].items()}, self.dtype))
            for slot in options.slots}
        self.previous = None  # (theta, state) before the last update, once one was made
        # where L2 acts: each weight matrix's slice of theta, and its shape
        self.weights = [(slice(e.start, e.start + e.size), e.shape) for e in schema.entries
                        if e.kind == "W"]
        self._statistics = getattr(engine, "statistics", None)
        self._costs = []

    def epochs(self, start, n_epochs, t):
        """Epochs ``start, ..., start + n_epochs - 1`` after ``t`` updates: ``(status code,
        failed_at or None, t after)``. A failed epoch leaves the last good state."""
        o = self.options
        for e in range(start, start + n_epochs):
            alpha = optimizers.learning_rate_at(o.learning_rate, e, o.decay_rate,
                                                o.time_interval)
            record = e % o.cost_every == 0
            self.engine.start_epoch(e)
            loss = 0.0  # the course's cost_total: each batch's cost times its columns
            status = spec.OK
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                for k in range(self.engine.n_steps):  # one errstate an epoch: 5 us a step
                    step_loss, status = self.step(k, t + 1, alpha, record)
                    loss += step_loss
                    if status != spec.OK:
                        break
                    t += 1
            if status == spec.NONFINITE_COST and self.previous is not None:
                self.theta, self.state = self.previous  # the last parameters with a finite cost
                self.previous = None
                t -= 1
            if record:
                self._costs.append(loss / self.engine.m)
            if status != spec.OK:
                return status, e, t
        return spec.OK, None, t

    def step(self, k, t, alpha, cost=True):
        """Step ``k`` of the engine's epoch as update ``t``: the gradient, L2, the update.

        Returns ``(the batch's cost times m_b, status code)``; on success the update is
        made (and the state before it kept), else nothing changes. The arithmetic is the
        reference's (``L_model_backward``'s ``dW + (l2 / m) W``,
        :func:`fastbackprop.optimizers.update`, ``L_layer_model``'s cost record), so on the
        NumPy engine a fit is the course's ``L_layer_model`` bit for bit.
        """
        grad, cost_b, m_b = self.engine.gradient(self.theta, k, t, cost)
        if grad is None:  # Z_L was not finite
            return cost_b * m_b, spec.NONFINITE_COST
        o = self.options
        if o.l2:  # L2 on the whole batch's gradient
            grad = grad.copy()
            scale = np.asarray(o.l2 / m_b, dtype=self.dtype)
            for weights, _ in self.weights:
                grad[weights] += scale * self.theta[weights]
            if cost:
                cost_b = cost_b + float(o.l2 / (2 * m_b) * sum(
                    np.sum(np.square(self.theta[weights].reshape(shape)))
                    for weights, shape in self.weights))
        new, state = optimizers.update(
            {"theta": self.theta}, {"dtheta": grad},
            {slot: {"dtheta": value} for slot, value in self.state.items()}, t, alpha,
            o.optimizer, optimizers.Hyperparameters(o.beta, o.beta1, o.beta2, o.epsilon))
        theta = new["theta"]
        if self._statistics is not None:  # into the update's new array (every rule makes one)
            self._statistics(theta)
        if not np.isfinite(theta.sum()):
            return cost_b * m_b, spec.NONFINITE_UPDATE
        self.previous = (self.theta, self.state)
        self.theta = theta
        self.state = {slot: values["dtheta"] for slot, values in state.items()}
        return cost_b * m_b, spec.OK

    @property
    def parameters(self):
        """A new dict of the current parameters."""
        return self.schema.unpack(self.theta)

    @property
    def optimizer_state(self):
        """The optimiser's state with :attr:`parameters`: ``{"v": {"dW1": ...}, ...}``."""
        return {slot: self.schema.unpack(value, prefix="d") for slot, value in self.state.items()}

    @property
    def costs(self):
        """The costs recorded (float64)."""
        return np.array(self._costs, dtype=np.float64)


class OnStepLoop:
    """A trainer (:class:`Progress`) whose epochs are a :class:`StepLoop` ``self._loop``:
    the NumPy backend's and Dask's."""

    def _run(self, n_epochs):
        return self._loop.epochs(self.n_iter, n_epochs, self.t)

    def _learning_rate_changed(self):
        self._loop.options = self.options

    @property
    def parameters(self):
        """A new dict of the current parameters (the last with a finite cost)."""
        return self._loop.parameters

    @property
    def optimizer_state(self):
        """The optimiser's state with :attr:`parameters`: ``{"v": {"dW1": ...}, ...}`` (new
        arrays)."""
        return self._loop.optimizer_state

    @property
    def costs(self):
        """The costs this trainer recorded (float64): epochs ``e % cost_every == 0`` reached."""
        return self._loop.costs


# ---------------------------------------------------------------------------
# Around a trainer: chunks, validation, failures, the starting point
# ---------------------------------------------------------------------------


def run_in_chunks(trainer, n_epochs, callback):
    """Run ``trainer`` until it has made ``n_epochs`` epochs, in chunks; return its status.

    Chunks start at one epoch and double while one takes less than half of
    :data:`CHUNK_SECONDS`, so the call overhead vanishes and the callback
    (and Ctrl-C) still get a turn several times a second, however long one
    epoch takes.
    """
    chunk = 1
    while trainer.n_iter < n_epochs:
        started = time.perf_counter()
        status = trainer.run(min(chunk, n_epochs - trainer.n_iter))
        if status != "ok":
            return status
        if time.perf_counter() - started < CHUNK_SECONDS / 2:
            chunk *= 2
        if callback is not None:
            costs = trainer.costs
            callback(trainer.n_iter, float(costs[-1]) if costs.size else float("nan"))
    return "ok"


class Validation:
    """Runs a trainer in chunks of ``cost_every`` epochs, scoring the parameters on held-out
    data between chunks, and stopping early when asked. ``probabilities(X, parameters)``
    computes ``A_L`` and ``cost_of(ZL, Y)`` the cost, on the fit's backend."""

    def __init__(self, hp, X_val, Y_val, steps):
        self.hp = hp
        self.X_val, self.Y_val = X_val, Y_val
        # sparse X_val: the reference's passes, whose first product is SciPy's
        self.steps = reference if is_sparse(X_val) else steps
        self.costs, self.scores = [], []
        self.best = None
        self.improved = None

    def _evaluate(self, trainer):
        """Record the validation cost and score of the trainer's parameters; True to stop."""
        hp = self.hp
        parameters = trainer.parameters
        AL, caches = self.steps.L_model_forward(
            self.X_val, parameters, hp["hidden_activation"], hp["output_activation"],
            batch_norm_epsilon=hp.get("batch_norm_epsilon", reference.BATCH_NORM_EPSILON))
        cost = self.steps.compute_cost_from_logits(caches[-1][1], self.Y_val,
                                                   hp["output_activation"])
        self.costs.append(cost)
        self.scores.append(score(hp["output_activation"], AL, self.Y_val))
        if self.best is None or cost < self.best["cost"] - hp["tol"]:
            self.improved = trainer.n_iter  # the last improvement by at least tol
        if self.best is None or cost < self.best["cost"]:
            self.best = {"cost": cost, "epoch": trainer.n_iter, "parameters": parameters,
                         "t": trainer.t, "state": trainer.optimizer_state}
        return hp["early_stopping"] and trainer.n_iter - self.improved >= hp["patience"]

    def run(self, trainer, n_epochs, callback):
        """Like :func:`run_in_chunks`, in chunks of ``cost_every`` epochs; returns the status."""
        stop = self._evaluate(trainer)
        while trainer.n_iter < n_epochs and not stop:
            status = trainer.run(min(self.hp["cost_every"], n_epochs - trainer.n_iter))
            if status != "ok":
                return status
            stop = self._evaluate(trainer)
            if callback is not None:
                costs = trainer.costs
                callback(trainer.n_iter, float(costs[-1]) if costs.size else float("nan"))
        return "ok"


def validation_split(X, Y, sample_weight, validation_data, hp, seed):
    """``X, Y, sample_weight`` to train on and ``(X_val, Y_val)`` (or None) to validate on."""
    dims, dtype = hp["layer_dims"], np.dtype(hp["dtype"])
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X_val, Y_val), examples as columns")
        X_val = check_X(validation_data[0], n_x=dims[0], dtype=dtype, argument="X_val")
        Y_val = check_labels(validation_data[1], hp["output_activation"], n_y=dims[-1],
                             m=X_val.shape[1], dtype=dtype, argument="Y_val")
        return X, Y, sample_weight, (X_val, Y_val)
    if not hp["early_stopping"]:
        return X, Y, sample_weight, None
    held = held_out_columns(Y, hp["validation_fraction"], seed, hp["output_activation"])
    kept = np.setdiff1d(np.arange(X.shape[1]), held)
    if held.size == 0 or kept.size == 0:
        raise ValueError(f"validation_fraction {hp['validation_fraction']} of {X.shape[1]} "
                         "columns leaves no column to validate on or none to train on")
    weights = None if sample_weight is None else sample_weight[kept]
    return X[:, kept], Y[:, kept], weights, (X[:, held], Y[:, held])


def held_out_columns(Y, fraction, seed, output_activation):
    """The columns early stopping holds out: ``round(fraction * m)``, drawn with ``seed``.

    Stratified for classifiers (one label row of a sigmoid, or softmax):
    each class gives ``round(fraction * its count)`` of its columns, so the
    held-out share keeps the classes' proportions. Sorted indices.
    """
    generator = np.random.default_rng(seed)
    m = Y.shape[1]
    if output_activation == "softmax":
        classes = np.argmax(Y, axis=0)
    elif output_activation == "sigmoid" and Y.shape[0] == 1:
        classes = Y[0].astype(np.int64)
    else:
        return np.sort(generator.permutation(m)[:int(round(fraction * m))])
    held = [generator.permutation(np.flatnonzero(classes == c))[
        :int(round(fraction * np.sum(classes == c)))] for c in np.unique(classes)]
    return np.sort(np.concatenate(held))


def r2_score(Y, A):
    """``1 - sum (y - a)^2 / sum (y - mean y)^2`` per row of ``Y``, ``A`` ``(n_y, m)``, averaged.

    A row whose labels are all equal scores 1 when predicted exactly, else 0
    (scikit-learn's convention).
    """
    residual = np.sum((Y - A) ** 2, axis=1)
    total = np.sum((Y - Y.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                      np.where(residual == 0, 1.0, 0.0))
    return float(np.mean(r2))


def score(output_activation, AL, Y):
    """Accuracy (sigmoid, softmax) or R² (linear, exp: the regression outputs) of the outputs
    ``AL`` against ``Y``."""
    prediction = outputs.FUNCTIONS[output_activation].predict(AL)
    if output_activation == "softmax":
        return float(np.mean(prediction == np.argmax(Y, axis=0)))
    if spec.OUTPUTS[output_activation].regression:
        return r2_score(Y, prediction)
    return float(np.mean(prediction == Y))


def diverged(trainer, status, learning_rate):
    """The :class:`TrainingDivergedError` describing a trainer that stopped on ``status``."""
    what = ("the cost became NaN or infinite" if status == "nonfinite_cost"
            else "the update produced NaN or infinite parameters")
    message = (
        f"training diverged at epoch {trainer.failed_at}: {what}; the model is unchanged. "
        f"Try a smaller learning_rate (got {learning_rate:g}) or rescale X. The last "
        f"parameters with a finite cost (after {trainer.t} updates) are in this "
        "error's .parameters"
    )
    return TrainingDivergedError(message, trainer.failed_at, trainer.parameters, trainer.n_iter,
                                 trainer.costs, status, trainer.t)


def fresh_seed():
    """A random seed for a model built with ``seed=None`` (kept in ``seed_``)."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))


def initial_parameters(parameters, hp, seed):
    """A random initialisation from ``seed`` (with batch norm's ``gamma = 1``, ``beta = 0``
    and running statistics 0 and 1 where ``hp["batch_norm"]`` says), or a checked copy of
    ``parameters``, in the model's dtype."""
    if parameters is None:
        parameters = reference.initialize_parameters(hp["layer_dims"], hp["init"], seed,
                                                     hp["dtype"])
        return reference.initialize_batch_norm(parameters, hp.get("batch_norm", False))
    check_model_parameters(parameters, hp)
    check_finite_parameters(parameters)
    return {k: np.array(v, dtype=hp["dtype"]) for k, v in parameters.items()}


def check_model_parameters(parameters, hp, argument="parameters"):
    """``parameters`` fit the model ``hp``: its ``layer_dims`` and, layer by layer, its
    ``batch_norm`` (the keys of :data:`fastbackprop.layout.BATCH_NORM` or of ``DENSE``)."""
    dims = check_parameters(parameters, hp["layer_dims"], argument)
    expected = Schema(dims, layer_kinds(len(dims) - 1, check_batch_norm_layers(
        hp.get("batch_norm", False), len(dims) - 2)))
    if Schema.of(parameters, argument) != expected:
        raise ValueError(f"{argument} must hold the arrays {list(expected.keys)} of the model's "
                         f"batch_norm={hp.get('batch_norm', False)!r}; got "
                         f"{sorted(parameters)}")
    return dims


def is_dask(a):
    """Whether ``a`` is a Dask collection (checked without importing Dask)."""
    return type(a).__module__.split(".")[0] == "dask" and hasattr(a, "__dask_graph__")


__all__ = ["Progress", "StepLoop", "OnStepLoop", "run_in_chunks", "Validation", "validation_split",
           "held_out_columns", "score", "r2_score", "diverged", "fresh_seed",
           "initial_parameters", "is_dask", "NotFittedError", "TrainingDivergedError",
           "Schema"]
