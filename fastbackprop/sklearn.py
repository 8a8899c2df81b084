"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, trained by the compiled kernels.

Switch one import::

    from sklearn.neural_network import MLPClassifier      # before
    from fastbackprop.sklearn import MLPClassifier        # after

The classes take scikit-learn's constructor arguments with its defaults,
follow its rules (Glorot-uniform initialisation from ``random_state``,
``alpha`` divided by the batch's size, its Adam and its Nesterov momentum,
its stopping rule on ``tol`` and ``n_iter_no_change``, its learning-rate
schedules, ``early_stopping``), set the same fitted attributes and pass
scikit-learn's estimator checks. Examples are **rows** here, as everywhere
in scikit-learn: ``X`` is ``(n_samples, n_features)`` and ``coefs_[i]`` is
``(n_in, n_out)``; inside, the data and the weights are transposed to the
course's columns (``W{l} = coefs_[l-1].T``) and each epoch is one call of
a backend's ``Trainer`` (the Numba backend's :class:`~fastbackprop.kernels.Trainer`,
or the NumPy backend's where ``backend="auto"`` finds that compiling would cost
more than the fit: :mod:`fastbackprop.tiers`); with
``solver="lbfgs"``, scipy's L-BFGS-B calls one compiled pass over all the
samples per evaluation (:mod:`fastbackprop.lbfgs`).

What differs from scikit-learn, and what is not supported, is listed in
each class's docstring and in ``docs/sklearn.md``. scikit-learn (>= 1.6) is
an optional dependency: ``import fastbackprop`` does not import this module.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils._param_validation import Interval, Options, StrOptions
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastbackprop.sklearn needs scikit-learn >= 1.6 (pip install 'scikit-learn>=1.6'); "
        f"importing it failed: {error}") from error

from . import _post_import, backends, spec, tiers
from .network import Network
from .layout import BATCH_NORM_START
from .options import BATCH_NORM_EPSILON_MIN, TrainingOptions
from .sparse import is_sparse
from .validation import check_batch_norm_layers

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's names of the hidden activations -> the package's (``spec.ACTIVATIONS``).
ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "identity"}

#: scikit-learn's names of the output layers -> the package's (``spec.OUTPUTS``).
OUTPUTS = {"logistic": "sigmoid", "softmax": "softmax", "identity": "linear", "exp": "exp"}
assert set(ACTIVATIONS.values()) <= set(spec.ACTIVATIONS)
assert set(OUTPUTS.values()) <= set(spec.OUTPUTS)

#: scikit-learn's batch size for ``batch_size="auto"``: ``min(AUTO_BATCH, n_samples)``.
AUTO_BATCH = 200

#: The smallest learning rate ``learning_rate="adaptive"`` divides before it stops.
ADAPTIVE_FLOOR = 1e-6

#: ``fit`` runs BLAS on one thread when every matrix product of a batch has fewer
#: multiply-adds than this (``batch * n_in * n_out``). Products this small gain little
#: from a second thread on an idle machine, and on a loaded one OpenBLAS's threads
#: waiting for each other made digits' epochs 5x slower (docs/sklearn.md, measured).
ONE_BLAS_THREAD_BELOW = 1 << 23

_NONFINITE = ("Solver produced non-finite parameter weights. The input data may contain "
              "large values and need to be preprocessed.")


def _optimizer_name(solver, momentum, nesterovs_momentum):
    """The ``spec.OPTIMIZERS`` entry that is scikit-learn's update for these arguments."""
    if solver == "adam":
        return "adam_folded"
    if momentum == 0:
        return "gd"  # v = -alpha dW, W += v: plain gradient descent, with or without Nesterov
    return "nesterov" if nesterovs_momentum else "sgd_momentum"


class _BaseMLP(BaseEstimator):
    """What both estimators share: checks, initialisation, the epoch loop, the forward pass."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "batch_norm": ["boolean", "array-like"],
        "batch_norm_momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "batch_norm_epsilon": [Interval(numbers.Real, BATCH_NORM_EPSILON_MIN, None,
                                        closed="left")],
        "backend": [StrOptions(set(tiers.BACKENDS))],
    }

    # -- checks ------------------------------------------------------------

    def _check_supported(self):
        """Refuse, with the reason, an extension that cannot train with the options given
        (batch norm with L-BFGS), before any work."""
        flags = self._batch_norm_layers()  # one bool per hidden layer, the Model's message
        if self.solver == "lbfgs" and any(flags):
            raise ValueError(
                f"batch_norm={self.batch_norm!r} is not supported with solver='lbfgs' (batch "
                "normalisation is trained on mini-batches, with running statistics for "
                "prediction; L-BFGS has neither); use solver='adam' or 'sgd', or "
                "batch_norm=False")

    def _batch_norm_layers(self):
        """Whether each hidden layer is batch-normalised: a tuple of bools from
        ``batch_norm`` (one bool for all, or one per hidden layer), checked as the Model
        checks it."""
        return check_batch_norm_layers(self.batch_norm, len(self._hidden_layer_sizes()))

    def _hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(n) for n in sizes]

    def _validate_X(self, X, reset):
        """``X`` as a float32/float64 ``(n_samples, n_features)`` array, or a CSR/CSC matrix
        (kept sparse: the kernels run over its nonzeros)."""
        return validate_data(self, X, accept_sparse=["csr", "csc"],
                             dtype=(np.float64, np.float32), reset=reset)

    # -- fitting -------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` ``(n_samples, n_features)`` and the targets ``y``.

        ``sample_weight``: ``(n_samples,)`` non-negative weights (None: all 1),
        as scikit-learn >= 1.7 takes them. Returns ``self``.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._validate_params()
        self._check_supported()
        hidden = self._hidden_layer_sizes()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        # the backend of the model a warm start or partial_fit continues (None: a fresh fit)
        continuing = None if first_pass else self.__dict__.get("backend_", "numba")
        if is_sparse(X) and any(self._batch_norm_layers()):
            raise ValueError("batch_norm: batch normalisation does not train on sparse X yet "
                             "(the compiled trainer's sparse path has no batch statistics); "
                             "pass a dense X (X.toarray()), or batch_norm=False")
        X, Y, y_labels = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype,
                                                 ensure_non_negative=True)
        train_weight = self._training_weights(sample_weight, y_labels, incremental, X.dtype)
        layer_units = [n_features, *hidden, Y.shape[1]]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, layer_units, X.dtype)
        else:
            self._check_continuation(Y, layer_units)
        if self.solver == "lbfgs":
            choice = self._choose_backend(X, None, incremental, continuing)
            self._fit_lbfgs(X, Y, train_weight, choice.backend)
        else:
            choice = self._fit_stochastic(X, Y, y_labels, sample_weight, train_weight,
                                          incremental, continuing)
        tiers.finished(choice)
        return self

    def _choose_backend(self, X, batch_size, incremental, continuing):
        """The backend of this fit on the training samples ``X`` in batches of ``batch_size``
        (None: L-BFGS), :func:`fastbackprop.tiers.choose`'s :class:`~fastbackprop.tiers.Choice`,
        set as ``backend_`` (so the fitted network predicts on it)."""
        lbfgs = batch_size is None
        hp = None
        if not lbfgs:
            n = X.shape[0]
            hp = tiers.hyperparameters(
                [X.shape[1]] + [c.shape[1] for c in self.coefs_], ACTIVATIONS[self.activation],
                OUTPUTS[self.out_activation_],
                _optimizer_name(self.solver, self.momentum, self.nesterovs_momentum),
                None if batch_size >= n else batch_size, self.shuffle, self.alpha,
                self.max_iter, X.dtype.name, self.n_threads, self._batch_norm_layers())
        choice = tiers.choose(self.backend, hp, X.shape[0], lbfgs=lbfgs, sparse=is_sparse(X),
                              incremental=incremental, continuing=continuing)
        self.backend_ = choice.backend
        return choice

    def _training_weights(self, sample_weight, y_labels, incremental, dtype):
        """The per-sample weights of the training loss (the classifier adds its class weights)."""
        return sample_weight

    def _initialize(self, Y, layer_units, dtype):
        """Fresh parameters and bookkeeping, as scikit-learn's ``_initialize``."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        self.coefs_, self.intercepts_ = [], []
        normalised = self._batch_norm_layers() + (False,)  # the output layer never is
        gammas, means, variances = [], [], []
        for fan_in, fan_out, flag in zip(layer_units[:-1], layer_units[1:], normalised):
            # Glorot-uniform, scikit-learn's draws in its order: weights, then biases (drawn
            # for a batch-normalised layer too, so that every W is scikit-learn's draw)
            factor = 2.0 if self.activation == "logistic" else 6.0
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            self.coefs_.append(coef.astype(dtype, copy=False))
            if flag:  # beta in b's place; gamma 1, running mean 0, running variance 1
                start = {k: np.full(fan_out, v, dtype=dtype)
                         for k, v in BATCH_NORM_START.items()}
                self.intercepts_.append(start["beta"])
                gammas.append(start["gamma"])
                means.append(start["running_mean"])
                variances.append(start["running_var"])
            else:
                self.intercepts_.append(intercept.astype(dtype, copy=False))
                gammas.append(None)
                means.append(None)
                variances.append(None)
        self.batch_norm_gamma_ = gammas
        self.batch_norm_running_mean_ = means
        self.batch_norm_running_var_ = variances
        self._keep_best()
        self.__dict__.pop("_solver_state", None)
        if self.solver == "lbfgs":
            return  # scikit-learn sets no loss curve, best loss or validation scores for it
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _check_continuation(self, Y, layer_units):
        """A warm start or ``partial_fit`` continues a network of the same shape, with batch
        normalisation in the same layers."""
        have = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        if have != layer_units:
            raise ValueError(
                f"the fitted network has layer sizes {have}, but this call needs {layer_units} "
                "(hidden_layer_sizes or the number of outputs changed); fit it afresh with "
                "warm_start=False")
        fitted, wanted = self._fitted_batch_norm()[:-1], self._batch_norm_layers()
        if fitted != wanted:
            raise ValueError(
                f"the fitted network has batch normalisation in its hidden layers {list(fitted)}, "
                f"but batch_norm={self.batch_norm!r} asks for {list(wanted)}; fit it afresh "
                "with warm_start=False")

    def _fitted_batch_norm(self):
        """Whether each fitted layer (the output layer too) is batch-normalised: where
        ``batch_norm_gamma_`` holds an array (a model pickled before batch norm has none)."""
        gammas = self.__dict__.get("batch_norm_gamma_")
        if gammas is None:
            return (False,) * len(self.coefs_)
        return tuple(g is not None for g in gammas)

    def _batch_norm_arrays(self):
        """``(gammas, running_means, running_vars)``: the fitted lists (None for a plain
        layer), or None when no layer is batch-normalised."""
        if not any(self._fitted_batch_norm()):
            return None
        return (self.batch_norm_gamma_, self.batch_norm_running_mean_,
                self.batch_norm_running_var_)

    def _keep_best(self):
        """Copies of the fitted arrays, restored at the end of an ``early_stopping`` fit."""
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        arrays = self._batch_norm_arrays()
        self._best_batch_norm = None if arrays is None else tuple(
            [None if a is None else a.copy() for a in kind] for kind in arrays)

    def _solver(self, incremental):
        """The optimiser's state, kept between ``partial_fit`` calls (scikit-learn's
        ``_optimizer``): a new one for every ``fit``, as in scikit-learn."""
        name = _optimizer_name(self.solver, self.momentum, self.nesterovs_momentum)
        state = getattr(self, "_solver_state", None)
        if not incremental or state is None or state["optimizer"] != name:
            state = {"optimizer": name, "learning_rate": float(self.learning_rate_init),
                     "t": 0, "state": None}
            self._solver_state = state
        return state

    def _fit_lbfgs(self, X, Y, weight, backend="numba"):
        """scikit-learn's ``_fit_lbfgs``: scipy's L-BFGS-B on the loss and gradient over all
        the samples, each evaluation one compiled pass (:mod:`fastbackprop.lbfgs`).

        As scikit-learn: the parameters in its packed order, ``max_iter``, ``max_fun`` and
        ``tol`` as scipy's ``maxiter``, ``maxfun`` and ``gtol``, ``n_iter_`` scipy's
        iterations, ``loss_`` the last loss, a ``ConvergenceWarning`` when scipy did not
        converge; ``early_stopping`` is not used. With float32 ``X`` the passes run in
        float32 at the float32-rounded iterate, scipy's state stays float64 and ``coefs_``
        end float64, as in scikit-learn (scipy evaluates a float32 ``x0``'s function at
        float32 points). ``backend="numpy"``: each pass is the reference's
        (:class:`fastbackprop.lbfgs.NumpyPass`).
        """
        from . import lbfgs

        n = X.shape[0]
        if weight is None:
            weight_sum = float(n)
        else:
            weight_sum = float(np.sum(weight))  # in X's dtype, as scikit-learn sums them
            if not weight_sum > 0:
                raise ValueError("Sample weights must contain at least one non-zero number "
                                 "(after the class weights, if any).")
        units = [X.shape[1]] + [c.shape[1] for c in self.coefs_]
        layout = lbfgs.Layout(units)
        Pass = lbfgs.CompiledPass if backend == "numba" else lbfgs.NumpyPass
        engine = Pass(X.T, np.asarray(Y).T, units, ACTIVATIONS[self.activation],
                      OUTPUTS[self.out_activation_], weight, X.dtype)
        output = OUTPUTS[self.out_activation_]
        clip = (None if spec.OUTPUTS[output].regression
                else lbfgs.LogLossClip(engine.Y, weight, output, X.dtype))
        objective = lbfgs.Objective(engine, layout, self.alpha, weight_sum,
                                    self._lbfgs_loss_divisor(), clip)
        with _blas_threads(n * max(a * b for a, b in zip(units[:-1], units[1:]))):
            result = lbfgs.minimize(objective, layout.pack(self.coefs_, self.intercepts_),
                                    self.max_iter, self.max_fun, self.tol, self.verbose)
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = result.fun
        self._adopt_network(*layout.unpack(result.x))
        if not all(np.isfinite(p).all() for p in self.coefs_ + self.intercepts_):
            raise ValueError(_NONFINITE)

    def _lbfgs_loss_divisor(self):
        """What scikit-learn's loss divides the summed per-sample losses by, beyond the sum of
        the weights: 1 for the cross-entropies (see :class:`MLPRegressor`)."""
        return 1

    def _check_solver(self):
        """scikit-learn's condition for ``partial_fit``: a stochastic solver."""
        if self.solver not in ("sgd", "adam"):
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "%s is not stochastic." % self.solver)
        return True

    def _fit_stochastic(self, X, Y, y_labels, sample_weight, train_weight, incremental,
                        continuing=None):
        """scikit-learn's ``_fit_stochastic``: the epochs on the chosen backend's trainer;
        returns the :class:`~fastbackprop.tiers.Choice` of the backend."""
        solver = self._solver(incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if self.early_stopping:
            # scikit-learn's split, from the same random state at the same point
            should_stratify = self._is_classifier() and self.n_outputs_ == 1
            arrays = [X, Y, y_labels] + ([] if train_weight is None else [train_weight]) + (
                [] if sample_weight is None else [sample_weight])
            parts = train_test_split(*arrays, random_state=self._random_state,
                                     test_size=self.validation_fraction,
                                     stratify=Y if should_stratify else None)
            X_train, X_val, Y_train, _, _, y_val = parts[:6]
            rest = parts[6:]
            w_train = None
            if train_weight is not None:
                w_train, rest = rest[0], rest[2:]
            w_val = None if sample_weight is None else rest[1]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
        else:
            X_train, Y_train, w_train = X, Y, train_weight
            X_val = y_val = w_val = None
        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(AUTO_BATCH, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        choice = self._choose_backend(X_train, batch_size, incremental, continuing)
        trainer = self._trainer(X_train, Y_train, w_train, batch_size, solver, choice.backend)
        units = [X_train.shape[1]] + [c.shape[1] for c in self.coefs_]
        with _blas_threads(batch_size * max(a * b for a, b in zip(units[:-1], units[1:]))), \
                trainer.threads_kept():
            self._epochs(trainer, n_samples, X_val, y_val, w_val, solver, incremental)
        solver["t"] = trainer.t
        solver["state"] = trainer.optimizer_state
        if self.early_stopping:
            self._adopt_network(self._best_coefs, self._best_intercepts, self._best_batch_norm)
        return choice

    def _store(self, trainer):
        """The fitted arrays from the trainer's parameters (scikit-learn's layout; a
        batch-normalised layer's ``beta`` in ``intercepts_``)."""
        parameters = trainer.parameters
        L = len(self.coefs_)
        batch_norm = None
        if any(f"gamma{l}" in parameters for l in range(1, L + 1)):
            batch_norm = tuple([parameters.get(f"{kind}{l}") for l in range(1, L + 1)]
                               for kind in ("gamma", "running_mean", "running_var"))
        self._adopt_network([parameters[f"W{l}"].T for l in range(1, L + 1)],
                            [parameters.get(f"b{l}", parameters.get(f"beta{l}"))
                             for l in range(1, L + 1)], batch_norm)

    def _network_of(self, coefs, intercepts, batch_norm=None):
        """A :class:`~fastbackprop.network.Network` of scikit-learn's arrays (``W{l}`` is
        ``coefs[l-1].T``; ``batch_norm``: None, or ``(gammas, running_means, running_vars)``
        lists with None for a plain layer, whose layers' ``intercepts`` are ``beta``)."""
        parameters = {}
        for l, (coef, intercept) in enumerate(zip(coefs, intercepts), start=1):
            parameters[f"W{l}"] = np.asarray(coef).T
            column = np.asarray(intercept).reshape(-1, 1)
            gamma = None if batch_norm is None else batch_norm[0][l - 1]
            if gamma is None:
                parameters[f"b{l}"] = column
                continue
            parameters[f"gamma{l}"] = np.asarray(gamma).reshape(-1, 1)
            parameters[f"beta{l}"] = column
            parameters[f"running_mean{l}"] = np.asarray(batch_norm[1][l - 1]).reshape(-1, 1)
            parameters[f"running_var{l}"] = np.asarray(batch_norm[2][l - 1]).reshape(-1, 1)
        return Network(parameters, ACTIVATIONS[self.activation], OUTPUTS[self.out_activation_],
                       backend=self._prediction_backend(),
                       batch_norm_epsilon=float(self.batch_norm_epsilon))

    def _prediction_backend(self):
        """The backend the fitted network predicts on: the one that fitted it (``backend_``;
        numba for a model pickled before there was a choice)."""
        return self.__dict__.get("backend_", "numba")

    def _adopt_network(self, coefs, intercepts, batch_norm=None):
        """The fitted arrays: the views (``coefs_`` ``(n_in, n_out)``, the others ``(n_out,)``)
        of a new fitted network of these arrays, so that prediction packs nothing."""
        network = self._network = self._network_of(coefs, intercepts, batch_norm)
        p = network.parameters
        L = len(network.dims) - 1
        self.coefs_ = [p[f"W{l}"].T for l in range(1, L + 1)]
        self.intercepts_ = [p.get(f"b{l}", p.get(f"beta{l}")).reshape(-1)
                            for l in range(1, L + 1)]
        for attribute, kind in _BATCH_NORM_ATTRIBUTES:
            setattr(self, attribute, [p[f"{kind}{l}"].reshape(-1) if f"{kind}{l}" in p else None
                                      for l in range(1, L + 1)])
        network.exposed = self._exposed_arrays()

    def _exposed_arrays(self):
        """The fitted arrays, in the order the fitted network records them."""
        arrays = self._batch_norm_arrays()
        if arrays is None:
            return (*self.coefs_, *self.intercepts_)
        return (*self.coefs_, *self.intercepts_, *(a for kind in arrays for a in kind))

    def _fitted_network(self):
        """The fitted network, or (arrays replaced, activation or ``batch_norm_epsilon``
        changed) a new one of the fitted arrays, built for this call only (prediction
        changes no attribute: scikit-learn's ``check_dict_unchanged``)."""
        network = self.__dict__.get("_network")
        arrays = self._exposed_arrays()
        exposed = getattr(network, "exposed", ())
        if (network is not None and len(arrays) == len(exposed)
                and all(a is b for a, b in zip(arrays, exposed))
                and network.hidden_activation == ACTIVATIONS[self.activation]
                and network.backend == self._prediction_backend()
                and (not network.schema.has_batch_norm
                     or network.batch_norm_epsilon == self.batch_norm_epsilon)):
            return network
        return self._network_of(self.coefs_, self.intercepts_, self._batch_norm_arrays())

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_network" in state and "coefs_" in state:  # unpickled: the arrays are copies
            self._adopt_network(self.coefs_, self.intercepts_, self._batch_norm_arrays())

    def _epochs(self, trainer, n_samples, X_val, y_val, w_val, solver, incremental):
        """scikit-learn's epoch loop: compiled epochs, then each one's bookkeeping in Python.

        Each call of the trainer runs as many epochs as :meth:`_epochs_per_call` allows:
        those whose bookkeeping cannot change the training (its stopping rule can fire
        only at the last of them), so the results are those of one epoch a call, with
        fewer calls (digits at the defaults on 2 threads: 1.03 against 0.64 ms an epoch).
        """
        store = lambda: self._store(trainer)  # noqa: E731
        self.n_iter_ = 0
        start = trainer.n_iter  # the epoch of trainer.costs[0]
        try:
            while self.n_iter_ < self.max_iter:
                before = trainer.n_iter
                status = trainer.run(self._epochs_per_call(incremental))
                # the epochs kept: all, unless one failed (its cost is recorded, not kept)
                done = trainer.n_iter - before
                costs = trainer.costs[before - start:before - start + done]
                stop = False
                for loss in self._epoch_losses(trainer, costs):
                    assert not stop, "the stopping rule fired before a call's last epoch"
                    stop = self._after_epoch(loss, n_samples, X_val, y_val, w_val, solver,
                                             trainer, store)
                if status != "ok":
                    store()
                    raise ValueError(_NONFINITE)
                if stop or incremental:
                    break
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        store()

    def _epochs_per_call(self, incremental):
        """Epochs the next trainer call may run: 1 when something is done after every epoch
        (``partial_fit``, a validation score, an ``invscaling`` rate, a loss that reads the
        weights), else up to the first epoch whose bookkeeping could stop the loop or change
        the rate (the no-improvement count grows by at most 1 an epoch) or ``max_iter``."""
        if (incremental or self.early_stopping or self._loss_reads_weights()
                or (self.solver == "sgd" and self.learning_rate == "invscaling")):
            return 1
        return max(1, min(self.max_iter - self.n_iter_,
                          self.n_iter_no_change + 1 - self._no_improvement_count))

    def _loss_reads_weights(self):
        """Whether :meth:`_epoch_losses` reads the weights after each epoch."""
        return False

    def _after_epoch(self, loss, n_samples, X_val, y_val, w_val, solver, trainer, store):
        """scikit-learn's bookkeeping of an epoch whose loss was ``loss``; True: stop."""
        self.n_iter_ += 1
        self.loss_ = loss
        self.t_ += n_samples
        self.loss_curve_.append(self.loss_)
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
        if self.early_stopping:
            store()
        self._update_no_improvement_count(X_val, y_val, w_val)
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            solver["learning_rate"] = (float(self.learning_rate_init)
                                       / (self.t_ + 1) ** self.power_t)
            _set_learning_rate(trainer, solver["learning_rate"])
        if self._no_improvement_count > self.n_iter_no_change:
            if self.early_stopping:
                msg = ("Validation score did not improve more than tol=%f for %d "
                       "consecutive epochs." % (self.tol, self.n_iter_no_change))
            else:
                msg = ("Training loss did not improve more than tol=%f for %d "
                       "consecutive epochs." % (self.tol, self.n_iter_no_change))
            if self._trigger_stopping(msg, solver, trainer):
                return True
            self._no_improvement_count = 0
        if self.n_iter_ == self.max_iter:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and "
                          "the optimization hasn't converged yet." % self.max_iter,
                          ConvergenceWarning)
        return False

    def _trainer(self, X, Y, weight, batch_size, solver, backend="numba"):
        """The trainer of ``backend`` for one ``fit`` or ``partial_fit``, set up as
        scikit-learn's rules.

        scikit-learn divides ``alpha`` and the loss by the batch's sum of
        sample weights; the trainer divides by its number of columns. The
        weights are scaled to mean 1 (sum ``n``) and ``alpha`` by ``n / sum``, so
        the two agree exactly for a full batch and on average for mini-batches.
        """
        n = X.shape[0]
        l2 = float(self.alpha)
        if weight is not None:
            total = float(np.sum(weight, dtype=np.float64))
            if not total > 0:
                raise ValueError("Sample weights must contain at least one non-zero number "
                                 "(after the class weights, if any).")
            scale = n / total
            weight = np.asarray(weight, dtype=np.float64) * scale
            l2 *= scale
            if np.all(weight == 1):
                weight = None
        dims = [X.shape[1]] + [c.shape[1] for c in self.coefs_]
        dtype = X.dtype
        parameters = {}
        batch_norm = self._batch_norm_arrays()
        for l, (coef, intercept) in enumerate(zip(self.coefs_, self.intercepts_), start=1):
            parameters[f"W{l}"] = np.asarray(coef, dtype=dtype).T
            column = np.asarray(intercept, dtype=dtype).reshape(-1, 1)
            if batch_norm is None or batch_norm[0][l - 1] is None:
                parameters[f"b{l}"] = column
                continue
            parameters[f"beta{l}"] = column
            for kind, arrays in zip(("gamma", "running_mean", "running_var"), batch_norm):
                parameters[f"{kind}{l}"] = np.asarray(arrays[l - 1], dtype=dtype).reshape(-1, 1)
        assert [parameters["W1"].shape[1]] + [parameters[f"W{l}"].shape[0]
                                              for l in range(1, len(dims))] == dims
        flags = self._fitted_batch_norm()[:-1]
        options = TrainingOptions(
            hidden_activation=ACTIVATIONS[self.activation],
            output_activation=OUTPUTS[self.out_activation_], optimizer=solver["optimizer"],
            learning_rate=solver["learning_rate"], cost_every=1,
            batch_size=None if batch_size >= n else batch_size, shuffle=bool(self.shuffle),
            # the shuffles' seed, drawn after scikit-learn's draws (initialisation, split)
            seed=int(self._random_state.randint(np.iinfo(np.int32).max)),
            beta=float(self.momentum), beta1=float(self.beta_1), beta2=float(self.beta_2),
            epsilon=float(self.epsilon), l2=l2, n_threads=self.n_threads,
            batch_norm=flags if any(flags) else False,
            batch_norm_momentum=float(self.batch_norm_momentum),
            batch_norm_epsilon=float(self.batch_norm_epsilon))
        self._l2 = l2  # as passed: the multi-output regressor's loss_ reads it
        Trainer = backends.get(backend).Trainer
        return Trainer(parameters, X.T, np.asarray(Y, dtype=dtype).T, options=options,
                       dtype=dtype, max_epochs=self.max_iter, t=solver["t"],
                       optimizer_state=solver["state"],
                       sample_weight=None if weight is None else weight.astype(dtype))

    def _epoch_losses(self, trainer, costs):
        """``loss_`` of each epoch just run, from the trainer's ``costs`` of them
        (scikit-learn's for all but the multi-output regressor, see :class:`MLPRegressor`)."""
        return [float(c) for c in costs]

    def _trigger_stopping(self, msg, solver, trainer):
        """scikit-learn's ``trigger_stopping``: stop, or for ``adaptive`` divide the rate by 5."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if solver["learning_rate"] <= ADAPTIVE_FLOOR:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        solver["learning_rate"] /= 5.0
        _set_learning_rate(trainer, solver["learning_rate"])
        if self.verbose:
            print(msg + " Setting learning rate to %f" % solver["learning_rate"])
        return False

    def _update_no_improvement_count(self, X_val, y_val, w_val):
        """scikit-learn's rule, on the training loss or (``early_stopping``) the validation
        score."""
        if self.early_stopping:
            score = self._score(X_val, y_val, w_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._keep_best()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    # -- the forward pass ------------------------------------------------------

    def _forward_pass_fast(self, X, check_input=True):
        """The network's output ``(n_samples, n_outputs)`` in scikit-learn's layout.

        ``X`` goes straight to the compiled kernel when it is ready for it as it is
        (``Network.fast_probabilities``: a finite C-contiguous ndarray of the fitted dtype
        with ``n_features_in_`` columns) and the model was fitted without feature names;
        anything else goes through ``validate_data``, for its conversions, warnings and
        messages.
        """
        network = self._fitted_network()
        if check_input:
            if "feature_names_in_" not in self.__dict__:
                y_pred = network.fast_probabilities(X, rows=True)
                if y_pred is not None:
                    return y_pred
            X = self._validate_X(X, reset=False)
        return network.probabilities(X, rows=True)

    def _check_is_fitted(self):
        """scikit-learn's ``check_is_fitted``, skipped when ``coefs_`` says it would pass."""
        if "coefs_" not in self.__dict__:
            check_is_fitted(self)

    def _is_classifier(self):
        return isinstance(self, ClassifierMixin)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # CSR and CSC, trained on their nonzeros; not with batch norm, which refuses them
        tags.input_tags.sparse = not self._asks_for_batch_norm()
        return tags

    def _asks_for_batch_norm(self):
        """Whether ``batch_norm`` asks for any batch-normalised layer (False for a value
        that ``fit`` would refuse)."""
        value = self.batch_norm
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        try:
            return any(v is True or isinstance(v, np.bool_) and bool(v) for v in value)
        except TypeError:
            return False


#: The fitted attributes of batch normalisation (a list per layer, None for a plain layer) and
#: the parameters they hold (``gamma{l}``, ...; ``beta{l}`` is in ``intercepts_``).
_BATCH_NORM_ATTRIBUTES = (("batch_norm_gamma_", "gamma"),
                          ("batch_norm_running_mean_", "running_mean"),
                          ("batch_norm_running_var_", "running_var"))


def _blas_threads(multiply_adds):
    """One BLAS thread for small products (:data:`ONE_BLAS_THREAD_BELOW`), else as it is."""
    from .blas import blas_threads

    return blas_threads(None if multiply_adds >= ONE_BLAS_THREAD_BELOW else 1)


def _set_learning_rate(trainer, value):
    if value > 0:  # an invscaling rate that underflowed to 0 keeps the last positive one
        trainer.set_learning_rate(value)


_PARAMETERS_DOC = """
    Parameters: scikit-learn's, with its defaults (see its documentation), and
    these notes:

    hidden_layer_sizes : tuple, default=(100,)
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        The hidden layers' g, scikit-learn's; 'identity' is a linear hidden
        layer (``g(Z) = Z``, the package's ``"identity"``), 'logistic' the
        sigmoid.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'adam' and 'sgd' train epochs of mini-batches on the compiled trainer.
        'lbfgs' runs ``scipy.optimize.minimize(method="L-BFGS-B")`` on the loss
        and gradient over all samples, as scikit-learn does, each evaluation one
        compiled forward and backward pass (``fastbackprop.lbfgs``): the same
        ``max_iter`` (iterations), ``max_fun``, ``tol`` (scipy's ``gtol``),
        ``n_iter_`` and ``loss_``, scikit-learn's ``ConvergenceWarning``, and no
        ``loss_curve_``, ``best_loss_`` or validation scores.
    alpha : float, default=0.0001
        L2 penalty, scikit-learn's: ``(alpha / (2 n_b)) sum ||W||^2`` added to
        each batch's loss and ``(alpha / n_b) W`` to its gradient, ``n_b`` the
        batch's size (its sum of sample weights, see ``sample_weight``); for
        'lbfgs' the batch is every sample.
    batch_size : int or 'auto', default='auto'
        ``'auto'`` is ``min(200, n_samples)``; a batch that holds all samples
        is trained as one full batch.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        sgd only, as scikit-learn: 'invscaling' sets
        ``learning_rate_init / (t_ + 1) ** power_t`` at the end of each epoch
        (``t_`` the samples seen), 'adaptive' divides the rate by 5 when
        ``n_iter_no_change`` epochs did not improve by ``tol`` (stopping below
        1e-6). Exactly scikit-learn's schedules, which change the rate per epoch.
    learning_rate_init, power_t, max_iter, shuffle, tol, verbose, warm_start,
    early_stopping, validation_fraction, n_iter_no_change
        scikit-learn's meaning. ``max_iter`` counts epochs ('lbfgs': scipy's
        iterations). 'lbfgs' does not use ``early_stopping``, and with SciPy >=
        1.15 its ``verbose`` prints nothing, as scikit-learn's.
    random_state : int, RandomState or None
        Draws the initial weights exactly as scikit-learn does (the same
        ``random_state`` gives the same initial ``coefs_``) and the
        ``early_stopping`` split; the shuffles come from a seed drawn from it
        afterwards and the package's own permutation, so they differ from
        scikit-learn's.
    momentum : float in [0, 1], default=0.9
        sgd only, scikit-learn's rule ``v = momentum v - lr g; W += v`` (the
        package's ``"sgd_momentum"``), not the course's ``v = beta v + (1 -
        beta) g``. ``momentum=1`` keeps the whole velocity, as in scikit-learn.
    nesterovs_momentum : bool, default=True
        scikit-learn's Nesterov form ``W += momentum v - lr g`` (``"nesterov"``).
    beta_1, beta_2, epsilon
        Adam's, scikit-learn's form (``"adam_folded"``): the bias corrections
        folded into the step, ``lr_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``,
        ``W -= lr_t m / (sqrt(v) + epsilon)``, where the course's Adam adds
        ``epsilon`` to ``sqrt(v_hat)``.
    max_fun : int, default=15000
        'lbfgs' only: the most loss evaluations, scipy's ``maxfun``.
    n_threads : int or None, default=None
        Not in scikit-learn's class (an extension): the threads each step is
        split between; None picks the cores where a batch is large enough
        (``fastbackprop.kernels.team.choose``), 1 keeps one thread. A fit with
        batch norm runs on one thread.
    batch_norm : bool or list of bool, default=False
        Not in scikit-learn's class (an extension): the ``Model``'s batch
        normalisation (docs/training.md), True for every hidden layer or one
        bool per hidden layer; 'adam' and 'sgd' only ('lbfgs' and sparse ``X``
        are refused). A normalised layer's ``intercepts_[l]`` is its ``beta``;
        its ``gamma`` and running statistics are in ``batch_norm_gamma_``,
        ``batch_norm_running_mean_`` and ``batch_norm_running_var_`` (one entry
        per layer, None for a plain layer), which prediction uses.
    batch_norm_momentum : float in [0, 1), default=0.9
        The running statistics' ``running := momentum running + (1 -
        momentum) batch`` (PyTorch's ``momentum=0.1``).
    batch_norm_epsilon : float, default=1e-5
        The ``epsilon`` of ``sqrt(sigma2 + epsilon)``.
    backend : {'auto', 'numba', 'numpy'}, default='auto'
        Not in scikit-learn's class (an extension): the backend that trains
        the fit and predicts from it, recorded in the fitted attribute
        ``backend_`` (kept by pickling). 'numba' the compiled kernels
        (compiled on a configuration's first fit, several seconds, then
        cached on disk); 'numpy' the NumPy reference (nothing compiled, no
        Numba imported; slower per epoch, and a one-row ``predict`` costs tens
        of microseconds). 'auto' (``fastbackprop.tiers``): numba for 'lbfgs',
        sparse ``X``, batch norm, ``partial_fit``, a warm start of a
        numba-fitted model, and a configuration compiled already (in this
        process, or in the kernel cache); else numpy while this fit's
        projected NumPy seconds plus those of the process's earlier NumPy fits
        stay below ``fastbackprop.tiers.COMPILE_SECONDS`` (3 s); else numba.
        Pass 'numba' for latency-critical serving (docs/sklearn.md).
"""

_DIFFERENCES_DOC = """
    Differences from scikit-learn's class:

    * the arithmetic is the compiled kernels' (fused, vectorised, its own
      exp/log), so results agree with scikit-learn's to rounding for the same
      initial weights and batches, not bit for bit; the shuffles differ.
    * sparse ``X`` (CSR or CSC) is trained on its nonzeros, on one thread
      (``n_threads`` is not used; see docs/sklearn.md, "Sparse input").
    * ``sample_weight`` must be non-negative. scikit-learn divides each
      batch's gradient by the batch's sum of weights; here the weights are
      scaled to mean 1 and each batch divided by its size (``alpha`` scaled to
      match), which is the same for a full batch and the same on average for
      mini-batches ('lbfgs' divides by the sum of weights, as scikit-learn).
    * training stops with ValueError at the first non-finite loss or update
      (scikit-learn finishes the epochs, then raises the same ValueError);
      ``coefs_`` then hold the last finite weights. ('lbfgs' raises it, as
      scikit-learn, when scipy's final weights are not finite.)
    * 'lbfgs' follows scikit-learn's iterates to rounding, and L-BFGS on a
      non-convex loss amplifies rounding: the weights agree to 1e-8 for tens
      of iterations, then drift as scikit-learn's own do when its loss is
      perturbed by one ulp (docs/sklearn.md, "L-BFGS").
    * with ``loss='poisson'`` (the regressor), ``y`` must be >= 0: a ValueError
      names the first negative target (scikit-learn's loss is NaN there, and it
      trains on).
    * a warm start or ``partial_fit`` must keep the layer sizes (a clear
      ValueError otherwise).
    * ``fit`` runs BLAS on one thread when a batch's matrix products are small
      (:data:`ONE_BLAS_THREAD_BELOW`).
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron classifier: scikit-learn's, trained by fastbackprop's kernels.

    A drop-in replacement for ``sklearn.neural_network.MLPClassifier``:
    the same constructor arguments and defaults, fitted attributes and
    methods; labels of any type scikit-learn accepts (binary, multi-class,
    or a multi-label indicator matrix). The output layer is a softmax for
    multi-class targets and a sigmoid (``'logistic'``) for binary and
    multi-label ones, with the cross-entropy loss.
    """ + _PARAMETERS_DOC + """    class_weight : None, 'balanced' or dict, default=None
        Not in scikit-learn's class (an extension, as in its linear
        classifiers): each sample's loss and gradient weighed by its class's
        weight, times its ``sample_weight``. 'balanced' is
        ``n_samples / (n_classes * bincount(y))`` (for a multi-label target,
        the product over the labels); ``partial_fit`` refuses 'balanced' (one
        batch cannot tell the classes' frequencies).

    Attributes: ``classes_``, ``loss_``, ``best_loss_``, ``loss_curve_``,
    ``validation_scores_``, ``best_validation_score_``, ``t_``, ``coefs_``
    (``(n_in, n_out)`` arrays), ``intercepts_``, ``n_features_in_``,
    ``feature_names_in_``, ``n_iter_``, ``n_layers_``, ``n_outputs_``,
    ``out_activation_``, as scikit-learn's (with 'lbfgs', as there, no
    ``loss_curve_``, ``best_loss_`` or validation scores, and no
    ``partial_fit``); and ``batch_norm_gamma_``, ``batch_norm_running_mean_``,
    ``batch_norm_running_var_`` (see ``batch_norm``); ``backend_`` (see
    ``backend``).
    """ + _DIFFERENCES_DOC

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 class_weight=None, n_threads=None, batch_norm=False, batch_norm_momentum=0.9,
                 batch_norm_epsilon=1e-5, backend="auto"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.class_weight = class_weight
        self.n_threads = n_threads
        self.batch_norm = batch_norm
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon
        self.backend = backend

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        """``X``, the binarised targets ``(n_samples, n_outputs)`` and the labels, as
        scikit-learn's."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        Y = self._label_binarizer.transform(y).astype(bool)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        return X, Y, y

    def _training_weights(self, sample_weight, y_labels, incremental, dtype):
        if self.class_weight is None:
            return sample_weight
        if incremental and isinstance(self.class_weight, str):
            raise ValueError("class_weight='balanced' is not supported by partial_fit (one "
                             "batch cannot tell the classes' frequencies); pass a dict of "
                             "class weights, or sample_weight")
        weight = compute_sample_weight(self.class_weight, y_labels).astype(dtype)
        return weight if sample_weight is None else weight * sample_weight

    def _partial_fit_first_call(self, classes):
        """scikit-learn's rule: ``classes`` is required on the first call only."""
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None:
            if getattr(self, "classes_", None) is not None:
                if not np.array_equal(self.classes_, unique_labels(classes)):
                    raise ValueError(f"`classes={classes!r}` is not the same as on last call "
                                     f"to partial_fit, was: {self.classes_!r}")
                return False
            self.classes_ = unique_labels(classes)
            return True
        return False

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``X``, ``y`` (``classes``, every label, on the first call); ``self``.

        The optimiser's state (Adam's moments and ``t``, sgd's velocity and
        learning rate) carries over between calls, as in scikit-learn.
        """
        self._validate_params()
        if self._partial_fit_first_call(classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """The predicted labels, ``(n_samples,)`` (or ``(n_samples, n_labels)`` multi-label)."""
        self._check_is_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._labels(y_pred)

    def _labels(self, y_pred):
        """The labels of the output ``y_pred``: ``LabelBinarizer.inverse_transform``'s. For
        several classes its answer, the class of each row's largest probability, without
        its checks (30 us, most of a one-row ``predict``); the rest through it."""
        binarizer = self._label_binarizer
        if binarizer.y_type_ == "multiclass" and not binarizer.sparse_input_:
            return binarizer.classes_.take(y_pred.argmax(axis=1), mode="clip")
        return binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    def predict_proba(self, X):
        """The classes' probabilities ``(n_samples, n_classes)``, in the order of ``classes_``."""
        self._check_is_fitted()
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron regressor: scikit-learn's, trained by fastbackprop's kernels.

    A drop-in replacement for ``sklearn.neural_network.MLPRegressor``: the
    same constructor arguments and defaults, fitted attributes and methods;
    1-D or 2-D targets. The output layer is linear (``'identity'``) with
    the squared error ``(1/2) mean (y - p)^2``, or with ``loss='poisson'``
    exponential (``'exp'``, ``p = exp(z)``) with the half Poisson deviance.
    """ + _PARAMETERS_DOC + """    loss : {'squared_error', 'poisson'}, default='squared_error'
        scikit-learn's: 'squared_error' the halved squared error averaged over
        the outputs; 'poisson' the half Poisson deviance
        ``mean_samples sum_outputs [y log(y / p) - y + p]`` (weighted by
        ``sample_weight``), ``p = exp(z)`` (the package's output ``"exp"``;
        ``predict`` returns ``p``). 'poisson' needs ``y >= 0`` (a ValueError
        otherwise; scikit-learn's loss is NaN there).

    Attributes: ``loss_``, ``best_loss_``, ``loss_curve_``,
    ``validation_scores_``, ``best_validation_score_``, ``t_``, ``coefs_``,
    ``intercepts_``, ``n_features_in_``, ``feature_names_in_``, ``n_iter_``,
    ``n_layers_``, ``n_outputs_``, ``out_activation_``, as scikit-learn's (with
    'lbfgs', as there, no ``loss_curve_``, ``best_loss_`` or validation
    scores; ``partial_fit`` then runs L-BFGS from the current weights); and
    ``batch_norm_gamma_``, ``batch_norm_running_mean_``,
    ``batch_norm_running_var_`` (see ``batch_norm``); ``backend_`` (see
    ``backend``).
    For several outputs scikit-learn's loss averages the outputs' squared
    errors while its gradient sums them; the gradient here is the same, and
    ``loss_`` divides the data term by ``n_outputs_`` as scikit-learn does.
    """ + _DIFFERENCES_DOC

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 n_threads=None, batch_norm=False, batch_norm_momentum=0.9,
                 batch_norm_epsilon=1e-5, backend="auto"):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.n_threads = n_threads
        self.batch_norm = batch_norm
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon
        self.backend = backend

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if self.loss == "poisson":
            negative = np.argwhere(Y < 0)
            if negative.size:
                i, k = (int(n) for n in negative[0])
                where = f"sample {i}" + ("" if y.ndim == 1 else f", output {k}")
                raise ValueError(f"y must be >= 0 for loss='poisson' (counts or rates: its half "
                                 f"Poisson deviance takes log y); found {Y[i, k]} at {where}")
        return X, Y, y

    def _lbfgs_loss_divisor(self):
        """scikit-learn's squared loss averages the outputs (its gradient sums them); its
        Poisson loss sums them, as its gradient does."""
        return 1 if self.loss == "poisson" else self.n_outputs_

    def _loss_reads_weights(self):
        return self.n_outputs_ > 1 and self.loss != "poisson" and bool(self._l2)

    def _epoch_losses(self, trainer, costs):
        """scikit-learn's loss averages the outputs' halved squared errors (its gradient
        sums them, as the trainer's cost does): the data term over ``n_outputs_``; the L2
        term, summed over the batches before each update, estimated from the weights
        after the epoch (so one epoch a call then, :meth:`_loss_reads_weights`)."""
        losses = super()._epoch_losses(trainer, costs)
        if self.n_outputs_ == 1 or self.loss == "poisson":  # Poisson: summed, as the cost
            return losses
        penalty = 0.0
        if self._l2:
            assert len(losses) <= 1, "the penalty is read from the weights after one epoch"
            parameters = trainer.parameters
            norms = sum(float(np.sum(parameters[f"W{l}"] ** 2))
                        for l in range(1, len(self.coefs_) + 1))
            penalty = 0.5 * self._l2 * trainer.n_batches * norms / trainer.m
        return [(loss - penalty) / self.n_outputs_ + penalty for loss in losses]

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``X``, ``y``; the optimiser's state carries over; returns ``self``.

        With ``solver='lbfgs'``: an L-BFGS fit of up to ``max_iter`` iterations from the
        current weights, as scikit-learn 1.9's regressor does (its ``available_if``
        condition, ``lambda est: est._check_solver``, never calls the check, so unlike
        its classifier's the method exists for every solver).
        """
        self._validate_params()
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """The predicted values, ``(n_samples,)`` or ``(n_samples, n_outputs)``."""
        self._check_is_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _register_with_skl2onnx(skl2onnx):
    """Let ``skl2onnx.to_onnx`` convert these classes
    (:func:`fastbackprop.export.register_skl2onnx`); a failure warns rather than break the
    user's import of skl2onnx."""
    try:
        from .export import register_skl2onnx

        register_skl2onnx()
    except Exception as error:  # noqa: BLE001 - an old or broken skl2onnx or onnx
        warnings.warn(f"fastbackprop.sklearn could not register its estimators with skl2onnx "
                      f"{getattr(skl2onnx, '__version__', '')}: {error}; skl2onnx.to_onnx will "
                      "not convert them", RuntimeWarning, stacklevel=2)


# skl2onnx converts these classes as it does scikit-learn's once both are imported, in either
# order; neither module imports the other (docs/serving.md).
_post_import.when_imported("skl2onnx", _register_with_skl2onnx)
