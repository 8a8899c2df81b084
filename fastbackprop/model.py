"""The Model class: the course's L-layer network behind a scikit-learn-style interface.

Examples are **columns**, as in the course (not rows, as in scikit-learn):
``X`` is ``(n_x, m)``, ``Y`` is ``(n_y, m)`` (labels for the output layer;
see :func:`fastbackprop.validation.check_labels`), and the learned
parameters are the course's dict ``{"W1": (n_1, n_x), "b1": (n_1, 1), ...}``.

The network is ``[LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT`` (sigmoid,
softmax or linear) trained by full-batch gradient descent or in mini-batches
with momentum, RMSprop or Adam (with L2, dropout and early stopping), on one
of two backends with one interface:

* ``"numba"``: :class:`fastbackprop.kernels.Trainer`, every epoch of a
  chunk in one compiled call (imported only when first used);
* ``"numpy"``: :class:`fastbackprop.reference_trainer.Trainer`, the step
  functions of :mod:`fastbackprop.reference` in a Python loop.

Both come from the registry :func:`fastbackprop.backends.get`.

Both train in chunks, so a progress callback runs and Ctrl-C is honoured
between chunks, and both give the same parameters to rounding: after a few
hundred iterations within 1e-10 relative in float64 and 1e-4 in float32
(measured: about 1e-14 and 2e-6).
"""

from __future__ import annotations

import inspect
import json

import numpy as np

from . import _files, backends, options, outputs, reference, spec
from .driver import (
    NotFittedError,
    TrainingDivergedError,
    Validation,
    check_model_parameters,
    diverged,
    fresh_seed,
    held_out_columns,
    initial_parameters,
    is_dask,
    r2_score,
    run_in_chunks,
    score,
    validation_split,
)
from .layout import Schema, layer_kinds
from .sparse import is_sparse
from .network import Network
from .validation import (
    check_batch_norm_layers,
    check_finite_parameters,
    check_keep_prob,
    check_labels,
    check_parameters,
    check_sample_weight,
    check_X,
)

__all__ = ["Model", "NotFittedError", "TrainingDivergedError", "held_out_columns", "r2_score"]

#: What ``Model.save`` writes and ``Model.load`` requires in the archive.
FORMAT = "fastbackprop.Model"
FORMAT_VERSION = 2  # 2: epochs, optimisers and their state (1 still loads)

#: Model parameters checked by another entry of ``options.CONSTRAINTS`` than their own name.
_CONSTRAINT = {"seed": "model_seed", "keep_prob": "keep_prob"}



class Model:
    """An L-layer network ``[LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT``.

    Examples are columns, as in the course: ``X`` is ``(n_x, m)`` and ``Y``
    ``(n_y, m)``: 0/1 labels for a sigmoid output (or ``(m,)`` when
    ``n_y = 1``), one-hot columns or class indices ``(m,)`` for softmax,
    real values for a linear output, reals >= 0 (counts, rates) for an exp output.

    Parameters (stored as given and validated; nothing is learned here):

    layer_dims : ``[n_x, n_1, ..., n_L]`` with ``n_L = n_y``.
    hidden_activation : ``g`` of the hidden layers, ``"relu"``, ``"tanh"``,
        ``"sigmoid"`` or ``"leaky_relu"``.
    output_activation : ``"sigmoid"`` (binary and multi-label), ``"softmax"``
        (multi-class, ``n_L >= 2``), ``"linear"`` (regression) or ``"exp"`` (Poisson
        regression: ``A_L = exp(Z_L)``, labels >= 0); see
        :data:`fastbackprop.spec.OUTPUTS`.
    learning_rate : ``alpha0`` > 0 (``W := W - alpha dW`` for gradient descent).
    n_epochs : epochs per ``fit``; with ``batch_size=None`` an epoch is one
        full-batch step.
    init : ``"he"``, ``"xavier"`` or ``"scaled"`` (see
        :func:`fastbackprop.reference.initialize_parameters`).
    seed : None or an int >= 0, for the random initialisation and the
        shuffles (None: a random one, kept in ``seed_``).
    dtype : ``"float64"`` or ``"float32"``: data and parameters are computed in it.
    backend : ``"numba"`` (compiled) or ``"numpy"`` (the reference equations).
    cost_every : the cost is recorded at epochs ``0, cost_every, ...``.
    optimizer : ``"gd"``, ``"momentum"``, ``"rmsprop"`` or ``"adam"``
        (:data:`fastbackprop.spec.OPTIMIZERS`).
    batch_size : None (the whole batch) or the columns per mini-batch.
    shuffle : shuffle the columns every epoch (mini-batches only), in the
        order :func:`fastbackprop.rng.permutation` gives for (seed, epoch).
    beta, beta1, beta2, epsilon : momentum's ``beta``; Adam's ``beta1``,
        ``beta2`` (RMSprop's is ``beta2``); ``epsilon`` > 0.
    decay_rate, time_interval : learning-rate decay,
        ``alpha = alpha0 / (1 + decay_rate * epoch)``, or with
        ``time_interval`` ``floor(epoch / time_interval)`` in place of ``epoch``.
    n_threads : the threads each step is split between (numba backend):
        None (the default) picks the cores Numba may use where each keeps
        enough work (:func:`fastbackprop.kernels.team.choose`), 1 none.
    batch_norm : False, True (every hidden layer) or one bool per hidden
        layer: normalise each unit's ``Z`` over the batch, then ``gamma Z_hat +
        beta`` (``b{l}`` is dropped); prediction uses the running statistics
        (see ``docs/training.md``, "Batch normalisation").
    batch_norm_momentum : the running statistics' ``running := momentum
        running + (1 - momentum) batch`` (the course's weighted average;
        PyTorch's ``momentum=0.1`` and Keras's ``momentum=0.9`` are 0.9 here).
    batch_norm_epsilon : the ``epsilon`` of ``sqrt(sigma2 + epsilon)``.

    Learned by :meth:`fit`: ``parameters_`` (the dict ``W1, b1, ..., WL,
    bL``; a batch-normalised layer has ``gamma{l}``, ``beta{l}``,
    ``running_mean{l}``, ``running_var{l}`` in place of ``b{l}``), ``costs_`` (float64), ``n_iter_`` (epochs), ``t_`` (updates),
    ``optimizer_state_`` and ``seed_``. An attribute ``classes_`` (a 1-D
    array of class names, which the command sets for softmax models) is
    saved and loaded with the model.
    """

    def __init__(self, layer_dims, hidden_activation="relu", output_activation="sigmoid",
                 learning_rate=0.0075, n_epochs=3000, init="he", seed=None,
                 dtype="float64", backend="numba", cost_every=100, optimizer="gd",
                 batch_size=None, shuffle=True, beta=0.9, beta1=0.9, beta2=0.999,
                 epsilon=1e-8, decay_rate=0.0, time_interval=None, l2=0.0, keep_prob=1.0,
                 early_stopping=False, patience=10, tol=1e-4, validation_fraction=0.1,
                 n_threads=None, batch_norm=False, batch_norm_momentum=0.9,
                 batch_norm_epsilon=1e-5):
        self.layer_dims = layer_dims
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.init = init
        self.seed = seed
        self.dtype = dtype
        self.backend = backend
        self.cost_every = cost_every
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.beta = beta
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.decay_rate = decay_rate
        self.time_interval = time_interval
        self.l2 = l2
        self.keep_prob = keep_prob
        self.early_stopping = early_stopping
        self.patience = patience
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.batch_norm = batch_norm
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon
        self._hyperparameters()  # a bad argument fails here, not in fit

    # -- hyperparameters ---------------------------------------------------

    @classmethod
    def _parameter_names(cls):
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep=True):
        """The constructor's arguments as a dict (scikit-learn's convention)."""
        return {name: getattr(self, name) for name in self._parameter_names()}

    def set_params(self, **params):
        """Set constructor arguments by name, validate them all, and return ``self``."""
        for name in params:
            if name not in self._parameter_names():
                raise ValueError(
                    f"{name!r} is not a parameter of Model; expected one of {self._parameter_names()}"
                )
        old = self.get_params()
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._hyperparameters()
        except (TypeError, ValueError):
            for name, value in old.items():
                setattr(self, name, value)
            raise
        return self

    def _hyperparameters(self):
        """The hyperparameters validated and normalised to plain JSON-ready values.

        Each is checked by its entry of :data:`fastbackprop.options.CONSTRAINTS`;
        the trainer's share is :meth:`_training_options`.
        """
        hp = {name: options.check(_CONSTRAINT.get(name, name), getattr(self, name), name)
              for name in self._parameter_names()}
        dims = hp["layer_dims"]
        options.check_beta(hp["beta"], hp["optimizer"])
        if hp["output_activation"] == "softmax" and dims[-1] < 2:
            raise ValueError("a softmax output needs at least 2 classes: layer_dims[-1] must be "
                             f">= 2; got {dims[-1]} (use output_activation='sigmoid' for one label)")
        keep_prob = check_keep_prob(self.keep_prob, len(dims) - 2)
        hp["keep_prob"] = (keep_prob[0] if len(set(keep_prob)) == 1
                           and not _is_sequence(self.keep_prob) else list(keep_prob))
        flags = check_batch_norm_layers(self.batch_norm, len(dims) - 2)
        hp["batch_norm"] = (hp["batch_norm"] if isinstance(hp["batch_norm"], bool)
                            else list(flags))
        return hp

    def _training_options(self, hp, seed):
        """The :class:`~fastbackprop.options.TrainingOptions` of a fit with ``seed``."""
        values = {name: hp[name] for name in options.FIELDS if name in hp and name != "seed"}
        values["keep_prob"] = tuple(check_keep_prob(hp["keep_prob"], len(hp["layer_dims"]) - 2))
        values["batch_norm"] = check_batch_norm_layers(hp["batch_norm"],
                                                       len(hp["layer_dims"]) - 2)
        return options.TrainingOptions(**values, seed=seed)

    def __repr__(self):
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        shown = [
            f"{name}={value!r}" for name, value in self.get_params().items()
            if name == "layer_dims" or not _same(value, defaults[name])
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- training ------------------------------------------------------------

    def fit(self, X, Y, parameters=None, *, callback=None, warm_start=False, client=None,
            validation_data=None, sample_weight=None):
        """Train for ``n_epochs`` epochs; return ``self``.

        X : ``(n_x, m)``, one example per column; or a SciPy sparse matrix or
            array of that shape, trained on its nonzeros (see ``docs/sparse.md``:
            one thread, at most one converted copy).
        Y : labels for the output layer, ``(n_y, m)`` (see the class).
        parameters : start from a copy of this dict (``W{l}`` ``(n_l,
            n_{l-1})``, ``b{l}`` ``(n_l, 1)``) instead of a random
            initialisation; it is not modified.
        callback : called as ``callback(n_iter, cost)`` after every chunk of
            epochs, with the last recorded cost; it may raise to stop.
        warm_start : continue the fitted model: from ``parameters_``, its
            optimiser state, ``t_`` updates and ``n_iter_`` epochs (the
            shuffles and the decay go on from there), ``n_epochs`` more.
            Two epochs, then three more this way, give the parameters of
            five in one fit, bit for bit on the same backend.
        validation_data : ``(X_val, Y_val)``, examples as columns: its cost
            (without dropout or the L2 term) and score (as :meth:`score`)
            are recorded at epochs ``0, cost_every, ...`` in
            ``validation_costs_`` and ``validation_scores_``. With
            ``early_stopping`` and no ``validation_data``, a share
            ``validation_fraction`` of the columns is held out for it
            (drawn with the seed, stratified by class for sigmoid and softmax
            outputs).
        sample_weight : None or ``(m,)`` weights >= 0 of the columns: the
            cost is ``(1/m) sum_j w_j L_j`` and ``dZ_L = w (A_L - Y)``.
        client : for Dask arrays ``X``, ``Y`` (chunked along the columns):
            the ``distributed.Client`` to train on (default: the current
            one); see :mod:`fastbackprop.dask`.

        Sets ``parameters_``, ``costs_`` (the cost of epochs ``0, cost_every,
        ...``: the sum of their batches' per-example costs, each before its
        update, over ``m``; with full batches the cost before the update),
        ``n_iter_`` (epochs), ``t_`` (updates), ``optimizer_state_`` and
        ``seed_``; with validation, ``validation_costs_``,
        ``validation_scores_`` and ``best_epoch_`` (the epoch whose
        validation cost was the lowest recorded). **Early stopping**
        (``early_stopping=True``) stops once ``patience`` epochs have passed
        since the validation cost last improved on its best by at least
        ``tol``, and keeps the parameters (and the optimiser's state and
        ``t_``) of ``best_epoch_``, the lowest validation cost recorded;
        ``n_iter_`` is then the epochs run.
        Every input is checked before any work. If training
        fails, the model keeps the state it had before the call: a
        non-finite cost or update raises :class:`TrainingDivergedError`
        (holding the last finite parameters), and an exception from
        ``callback`` or a ``KeyboardInterrupt`` propagates.
        """
        hp = self._hyperparameters()
        distributed = is_dask(X) or is_dask(Y)
        if distributed and any(check_batch_norm_layers(hp["batch_norm"],
                                                       len(hp["layer_dims"]) - 2)):
            raise ValueError("fit: batch_norm is not supported on Dask arrays (each block's "
                             "batch statistics would differ from the whole batch's); fit on "
                             "a NumPy array, or with batch_norm=False")
        if distributed:  # checked by their metadata here, block by block on the workers
            from . import dask

            X, Y = dask.aligned(X, Y, hp, sample_weight, validation_data)
        else:
            dims, dtype = hp["layer_dims"], np.dtype(hp["dtype"])
            X = check_X(X, n_x=dims[0], dtype=dtype)
            Y = check_labels(Y, hp["output_activation"], n_y=dims[-1], m=X.shape[1],
                             dtype=dtype)
            sample_weight = check_sample_weight(sample_weight, X.shape[1], dtype)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None; got {callback!r}")
        start = self._start(hp, parameters, warm_start)
        options = self._training_options(hp, start["seed"])
        if distributed:
            trainer = dask.trainer(X, Y, options, hp, start, client)
            validation = validation_split(None, None, None, validation_data, hp,
                                          start["seed"])[3]
        else:
            X, Y, sample_weight, validation = validation_split(
                X, Y, sample_weight, validation_data, hp, start["seed"])
            trainer = self._backend().Trainer(
                start["parameters"], X, Y, options=options, dtype=hp["dtype"],
                max_epochs=hp["n_epochs"], start_epoch=start["start_epoch"], t=start["t"],
                optimizer_state=start["optimizer_state"], sample_weight=sample_weight)
        end = start["start_epoch"] + hp["n_epochs"]
        try:
            with trainer.threads_kept():
                if validation is None:
                    status, watch = run_in_chunks(trainer, end, callback), None
                else:
                    watch = Validation(hp, *validation, self._backend().steps)
                    status = watch.run(trainer, end, callback)
        finally:
            if distributed:
                trainer.release()
        if status != "ok":
            raise diverged(trainer, status, hp["learning_rate"])
        return self._adopt(trainer, watch, hp, warm_start, start["seed"])

    def _start(self, hp, parameters, warm_start):
        """Where a fit begins: ``parameters``, ``seed``, ``start_epoch``, ``t`` and
        ``optimizer_state`` (a fresh start from ``parameters`` or a random initialisation,
        or with ``warm_start`` the fitted state)."""
        if warm_start:
            if parameters is not None:
                raise ValueError("fit: pass either parameters or warm_start=True, not both")
            return self._continuation(hp)
        seed = hp["seed"] if hp["seed"] is not None else fresh_seed()
        return {"parameters": initial_parameters(parameters, hp, seed), "seed": seed,
                "start_epoch": 0, "t": 0, "optimizer_state": None}

    def _adopt(self, run, watch, hp, warm_start, seed):
        """Set the fitted state from a finished ``run`` (a trainer, or a Dask fit's driver)
        and its validation ``watch`` (or None); with early stopping, the best epoch's."""
        costs = run.costs
        if warm_start:
            costs = np.concatenate([self.costs_, costs])
        best = watch.best if watch is not None and hp["early_stopping"] else None
        self._adopt_parameters(run.parameters if best is None else best["parameters"])
        self.costs_ = costs
        self.n_iter_ = run.n_iter
        self.t_ = run.t if best is None else best["t"]
        self.optimizer_state_ = run.optimizer_state if best is None else best["state"]
        self.seed_ = seed
        if watch is not None:
            self.validation_costs_ = np.array(watch.costs, dtype=np.float64)
            self.validation_scores_ = np.array(watch.scores, dtype=np.float64)
            self.best_epoch_ = watch.best["epoch"]
        return self

    def _adopt_parameters(self, parameters):
        """``parameters_``: the views of a new fitted :class:`~fastbackprop.network.Network`."""
        self._network = Network(parameters, self.hidden_activation, self.output_activation,
                                self.backend, self.batch_norm_epsilon)
        self.parameters_ = self._network.parameters

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_network", None)  # rebuilt from parameters_, whose arrays it then holds
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "parameters_" in state:
            self._adopt_parameters(state["parameters_"])

    def network(self):
        """The fitted :class:`~fastbackprop.network.Network` (packed parameters, prediction).

        Built once per fit; built again when ``parameters_`` was replaced, an
        array of it swapped, or the activations or the backend changed
        (``set_params``). Raises :class:`NotFittedError` before ``fit``.
        """
        parameters = self.__dict__.get("parameters_")
        if parameters is None:
            self._fitted()  # raises NotFittedError
        network = self.__dict__.get("_network")
        epsilon = getattr(self, "batch_norm_epsilon", 1e-5)
        if network is None or (network.hidden_activation, network.output_activation,
                               network.backend, network.batch_norm_epsilon) != (
                self.hidden_activation, self.output_activation, self.backend, epsilon):
            network = self._network = Network(parameters, self.hidden_activation,
                                              self.output_activation, self.backend, epsilon)
        elif not isinstance(parameters, dict) or not network.owns(
                tuple(map(parameters.get, network.schema.keys))):
            check_parameters(parameters)  # foreign arrays: checked and packed, every call
            return Network(parameters, self.hidden_activation, self.output_activation,
                           self.backend, epsilon)
        return network

    def _continuation(self, hp):
        """Where a warm start begins: the fitted state, checked against the hyperparameters."""
        parameters, _ = self._fitted()
        check_model_parameters(parameters, hp, "parameters_")
        state = getattr(self, "optimizer_state_", None)
        slots = spec.OPTIMIZERS[hp["optimizer"]].state
        if state is not None and set(state) != set(slots):
            state = None  # the optimiser changed: its state starts again from zero
        return {"parameters": {k: np.array(v, dtype=hp["dtype"]) for k, v in parameters.items()},
                "seed": getattr(self, "seed_", None) if hp["seed"] is None else hp["seed"],
                "start_epoch": self.n_iter_, "t": getattr(self, "t_", self.n_iter_),
                "optimizer_state": state}

    def _backend(self):
        """The :class:`fastbackprop.backends.Backend` named by ``backend``."""
        return backends.get(self.backend)

    # -- using the fitted parameters -----------------------------------------

    def _fitted(self):
        """``parameters_`` and their layer_dims; raises :class:`NotFittedError` before ``fit``."""
        if not hasattr(self, "parameters_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X, Y) or Model.load(path) first"
            )
        return self.parameters_, check_parameters(self.parameters_)

    def _check_X(self, X, dims):
        return check_X(X, n_x=dims[0], dtype=self.parameters_["W1"].dtype)

    def _output(self, X):
        """``A_L`` ``(n_y, m)`` of the fitted network on ``X`` ``(n_x, m)``: straight to the
        compiled kernel when ``X`` is ready for it as it is (``Network.fast_probabilities``),
        else after :func:`~fastbackprop.validation.check_X` (conversions, every message)."""
        network = self.network()
        AL = network.fast_probabilities(X)
        if AL is None:
            AL = network.probabilities(check_X(X, n_x=network.dims[0], dtype=network.dtype))
        return AL

    def predict_proba(self, X):
        """``A_L`` ``(n_y, m)``: probabilities, for the sigmoid and softmax outputs.

        sigmoid: the probability that each label is 1; softmax: each
        column's class probabilities (they sum to 1). A regression output (linear,
        exp) has no probabilities: ``ValueError``. X : ``(n_x, m)``, one example per
        column.
        """
        if spec.OUTPUTS[self.output_activation].regression:
            article = "an" if self.output_activation == "exp" else "a"
            raise ValueError(f"predict_proba: {article} {self.output_activation} output "
                             "(regression) has no probabilities; use predict for its values")
        if type(X) is not np.ndarray and is_dask(X):
            from . import dask

            return dask.predict_proba(self, X)
        return self._output(X)

    def predict(self, X):
        """What the output layer predicts for ``X`` ``(n_x, m)``, examples as columns.

        sigmoid: 0/1 ``(n_y, m)``, 1 where ``A_L > 0.5``; softmax: the class
        index of each column, int64 ``(m,)``; linear and exp: the values ``A_L``
        ``(n_y, m)`` (exp: the predicted means, ``exp(Z_L)``).
        """
        if type(X) is not np.ndarray and is_dask(X):
            from . import dask

            return dask.predict(self, X)
        return outputs.FUNCTIONS[self.output_activation].predict(self._output(X))

    def score(self, X, Y):
        """Accuracy for sigmoid and softmax outputs, R² for a linear or exp output.

        X : ``(n_x, m)``; Y : labels as :meth:`fit` takes them; examples as
        columns. sigmoid: the fraction of the labels that :meth:`predict`
        gets right (with ``n_y > 1`` every label counts once); softmax: the
        fraction of columns whose class is right; linear and exp: the coefficient of
        determination ``1 - sum (y - a)^2 / sum (y - mean y)^2`` per output
        row, averaged over the rows (scikit-learn's ``r2_score``).
        """
        _, dims = self._fitted()
        X = self._check_X(X, dims)
        Y = check_labels(Y, self.output_activation, n_y=dims[-1], m=X.shape[1], dtype=X.dtype)
        return score(self.output_activation, self._output(X), Y)

    def gradients(self, X, Y):
        """The course's ``grads`` at the current parameters.

        X : ``(n_x, m)``; Y : labels as :meth:`fit` takes them; examples as
        columns. Returns ``dW{l}`` ``(n_l, n_{l-1})`` and ``db{l}``
        ``(n_l, 1)`` for l = 1..L and ``dA{l}`` ``(n_l, m)`` for
        l = 0..L-1, from the backend's ``L_model_backward`` with the
        ``dZ_L = AL - Y`` start that training uses (a sparse ``X``: the reference's
        on either backend, SciPy's products with ``X``; ``dA0`` comes back dense;
        batch-normalised layers: ``dgamma{l}``, ``dbeta{l}``, with the statistics of the
        batch ``X``, as training computes them).
        """
        parameters, dims = self._fitted()
        X = self._check_X(X, dims)
        Y = check_labels(Y, self.output_activation, n_y=dims[-1], m=X.shape[1], dtype=X.dtype)
        # sparse X: the reference's passes on both backends (SciPy's products with X)
        steps = reference if is_sparse(X) else self._backend().steps
        AL, caches = steps.L_model_forward(X, parameters, self.hidden_activation,
                                           self.output_activation, training=True,
                                           batch_norm_epsilon=self.batch_norm_epsilon)
        return steps.L_model_backward(AL, Y, caches, self.hidden_activation, "dZ",
                                      self.output_activation)

    # -- files ---------------------------------------------------------------

    def save(self, path):
        """Write the fitted model to the ``.npz`` file ``path``, atomically.

        The archive holds the arrays ``W1, b1, ..., WL, bL``, ``costs_``,
        ``n_iter_``, ``t_``, ``seed_``, the optimiser's state (``v_dW1``,
        ``s_dW1``, ...: what ``fit(warm_start=True)`` continues from), the
        hyperparameters as a JSON string, ``classes_`` when set, and a
        format marker; it is written to a temporary file in the same
        directory and then renamed, so ``path`` is never left half-written.
        """
        parameters, _ = self._fitted()
        arrays = {
            "format": np.array(FORMAT),
            "format_version": np.array(FORMAT_VERSION),
            "hyperparameters": np.array(json.dumps(self._hyperparameters())),
            "costs_": np.asarray(self.costs_, dtype=np.float64),
            "n_iter_": np.array(self.n_iter_, dtype=np.int64),
            "t_": np.array(getattr(self, "t_", self.n_iter_), dtype=np.int64),
            **parameters,
        }
        if getattr(self, "seed_", None) is not None:
            arrays["seed_"] = np.array(self.seed_, dtype=np.uint64)
        for slot, values in (getattr(self, "optimizer_state_", None) or {}).items():
            arrays.update({f"{slot}_{key}": value for key, value in values.items()})
        if getattr(self, "classes_", None) is not None:
            classes = np.asarray(self.classes_)
            arrays["classes_"] = classes.astype(str) if classes.dtype == object else classes
        _files.write_atomically(path, lambda f: np.savez(f, **arrays))

    def to_onnx(self, path=None, dtype=None, layout="columns"):
        """The fitted network as an ONNX model (``onnx.ModelProto``), also written to ``path``.

        layout : ``"columns"``, the course's: input ``X`` ``(n_x, m)``, output
            ``A_L`` ``(n_y, m)``, what :meth:`predict_proba` takes and gives;
            ``"rows"``: ``X`` ``(m, n_x)`` -> ``A_L`` ``(m, n_y)``, one example
            per row. ``m`` is any batch size.
        dtype : None (the parameters' dtype), ``"float32"`` or ``"float64"``.
        path : None, or a file to write, atomically (never half-written).

        ``A_L`` is what :meth:`predict_proba` returns (a linear output's
        values, what :meth:`predict` returns). Needs the ``onnx`` extra; see
        :func:`fastbackprop.export.model_to_onnx` and ``docs/serving.md``.
        """
        from . import export

        return export.model_to_onnx(self, path, dtype=dtype, layout=layout)

    @classmethod
    def load(cls, path):
        """A fitted model read from a file written by :meth:`save`.

        Raises ``FileNotFoundError`` for a missing file and ``ValueError``
        for a file that is not such a model (not an ``.npz`` archive, no
        format marker, a newer format) or is corrupt.
        """
        arrays = _files.read_npz(path, "model file")
        name = f"model file {str(path)!r}"
        if "format" not in arrays or arrays["format"].shape != () or str(arrays["format"]) != FORMAT:
            raise ValueError(f"{name} is an .npz archive but not a fastbackprop model (no format marker)")
        try:
            return cls._from_arrays(arrays, name)
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"{name} is corrupt: {e}") from None

    @classmethod
    def _from_arrays(cls, arrays, name):
        """Rebuild a fitted model from a saved archive's arrays (the marker already checked)."""
        version = int(arrays["format_version"])
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{name} has format version {version}; this fastbackprop reads up to {FORMAT_VERSION}"
            )
        hyperparameters = json.loads(str(arrays["hyperparameters"]))
        if "n_iterations" in hyperparameters:  # written before epochs (format version 1)
            hyperparameters["n_epochs"] = hyperparameters.pop("n_iterations")
        model = cls(**hyperparameters)
        hp = model._hyperparameters()
        dims = hp["layer_dims"]
        schema = Schema(dims, layer_kinds(len(dims) - 1,
                                          check_batch_norm_layers(hp["batch_norm"],
                                                                  len(dims) - 2)))
        parameters = {key: arrays[key] for key in schema.keys}
        check_model_parameters(parameters, hp)
        for key, value in parameters.items():
            if value.dtype != np.dtype(hp["dtype"]):
                raise ValueError(f"{key} has dtype {value.dtype}; expected {hp['dtype']}")
        check_finite_parameters(parameters)
        model._adopt_parameters(parameters)
        model.costs_ = np.asarray(arrays["costs_"], dtype=np.float64).reshape(-1)
        model.n_iter_ = int(arrays["n_iter_"])
        model.t_ = int(arrays["t_"]) if "t_" in arrays else model.n_iter_
        model.seed_ = int(arrays["seed_"]) if "seed_" in arrays else hp["seed"]
        slots = spec.OPTIMIZERS[hp["optimizer"]].state
        model.optimizer_state_ = {
            slot: {f"d{key}": arrays[f"{slot}_d{key}"] for key in parameters} for slot in slots
        } if all(f"{slot}_dW1" in arrays for slot in slots) else None
        if "classes_" in arrays:
            model.classes_ = arrays["classes_"]
        return model


def _same(a, b):
    """``a == b`` as one bool, for values that may be arrays or dtypes."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _is_sequence(value):
    return isinstance(value, (list, tuple, np.ndarray))
