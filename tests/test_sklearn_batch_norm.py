"""Batch normalisation in the scikit-learn classes (issue 27): ``batch_norm``,
``batch_norm_momentum`` and ``batch_norm_epsilon``.

The classes train the Model's batch norm (the same compiled trainer): the same
weights, gammas, betas and running statistics as a ``Model`` given the same
options and initial parameters; ``warm_start``, ``partial_fit``, early stopping
and pickling carry the running statistics; prediction uses them (one row
predicts as it does inside a batch); what cannot work is refused by name before
any work; scikit-learn's estimator checks pass but one, with its reason; and
skl2onnx exports the folded network.
"""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbackprop import Model, reference as R  # noqa: E402
from fastbackprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Agreement with the Model, per dtype (the brief's tolerances; the fits are the same
#: trainer on the same batches, so in practice they agree to the last bit).
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


def _data(n=90, n_features=6, classes=3, seed=0, dtype=np.float64):
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=4,
                               n_redundant=0, n_classes=classes, random_state=seed)
    return StandardScaler().fit_transform(X).astype(dtype), y


# ---------------------------------------------------------------------------
# scikit-learn's estimator checks
# ---------------------------------------------------------------------------

#: The one check that fails with batch norm, and why (docs/sklearn.md, "Batch normalisation").
BATCH_NORM_EXPECTED_FAILURES = {"check_sample_weight_equivalence_on_dense_data": (
    "a batch's statistics (its mean and variance, which every example's output depends on) "
    "are unweighted, as in the Model, PyTorch and Keras: a row repeated twice moves them, a "
    "row of weight 2 does not (test_sample_weights_are_not_repeated_rows_with_batch_norm)")}


@parametrize_with_checks([MLPClassifier(batch_norm=True), MLPRegressor(batch_norm=True)],
                         expected_failed_checks=lambda est: BATCH_NORM_EXPECTED_FAILURES)
def test_scikit_learns_estimator_checks_with_batch_norm(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_sample_weights_are_not_repeated_rows_with_batch_norm():
    """The reason for the expected failure: one full batch, weight 2 on the first rows or
    those rows twice. Without batch norm the two fits are the same model; with it the
    repeated rows change the batch's statistics and the models differ."""
    X, y = _data(n=40)
    Xr, yr = np.vstack([X, X[:10]]), np.concatenate([y, y[:10]])
    w = np.ones(len(y))
    w[:10] = 2
    for batch_norm, same in ((False, True), (True, False)):
        kw = dict(hidden_layer_sizes=(6,), shuffle=False, max_iter=5,  # one full batch
                  random_state=0, learning_rate_init=0.05, batch_norm=batch_norm)
        weighted = MLPClassifier(**kw).fit(X, y, sample_weight=w)
        repeated = MLPClassifier(**kw).fit(Xr, yr)
        close = np.allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-9,
                            atol=1e-12)
        assert close == same, batch_norm


# ---------------------------------------------------------------------------
# The Model's batch norm
# ---------------------------------------------------------------------------


def _glorot(layer_units, random_state, activation="relu", dtype=np.float64):
    """scikit-learn's initial ``coefs_`` and ``intercepts_`` (Glorot-uniform, weights then
    biases, layer by layer), as the course's dict."""
    rs = np.random.RandomState(random_state)
    parameters = {}
    for l, (fan_in, fan_out) in enumerate(zip(layer_units[:-1], layer_units[1:]), start=1):
        bound = np.sqrt((2.0 if activation == "logistic" else 6.0) / (fan_in + fan_out))
        parameters[f"W{l}"] = rs.uniform(-bound, bound, (fan_in, fan_out)).T.astype(dtype)
        parameters[f"b{l}"] = rs.uniform(-bound, bound, (fan_out, 1)).astype(dtype)
    return parameters


def _as_parameters(estimator):
    """The estimator's fitted arrays as the Model's ``parameters_`` dict."""
    parameters = {}
    for l, coef in enumerate(estimator.coefs_, start=1):
        parameters[f"W{l}"] = coef.T
        if estimator.batch_norm_gamma_[l - 1] is None:
            parameters[f"b{l}"] = estimator.intercepts_[l - 1].reshape(-1, 1)
            continue
        parameters[f"beta{l}"] = estimator.intercepts_[l - 1].reshape(-1, 1)
        for kind in ("gamma", "running_mean", "running_var"):
            parameters[f"{kind}{l}"] = getattr(
                estimator, f"batch_norm_{kind}_")[l - 1].reshape(-1, 1)
    return parameters


def _assert_same_parameters(ours, theirs, dtype):
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key].dtype == np.dtype(dtype), key
        np.testing.assert_allclose(ours[key], value, rtol=TOLERANCE[dtype],
                                   atol=TOLERANCE[dtype] * max(np.abs(value).max(), 1),
                                   err_msg=key)


#: (solver arguments of the classes, the Model's optimiser)
SOLVERS = {"adam": ({"solver": "adam"}, "adam_folded"),
           "nesterov": ({"solver": "sgd", "momentum": 0.8}, "nesterov"),
           "momentum": ({"solver": "sgd", "momentum": 0.8, "nesterovs_momentum": False},
                        "sgd_momentum")}


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("batch_norm", [True, [False, True]], ids=["all", "second"])
@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_the_fit_is_the_models_with_the_same_options_and_start(task, batch_norm, solver, dtype):
    """The same initial parameters (scikit-learn's Glorot draws; a batch-normalised layer's
    drawn bias unused), options and batches (``shuffle=False``): the Model's ``W``,
    ``gamma``, ``beta`` (``intercepts_``), running statistics and ``b``."""
    X, y = _data(dtype=dtype)
    target = y if task == "classifier" else X[:, 0] - X[:, 1] ** 2
    extra, optimizer = SOLVERS[solver]
    kw = dict(hidden_layer_sizes=(8, 5), batch_size=32, shuffle=False, max_iter=6,
              random_state=3, learning_rate_init=0.02, alpha=0.01, tol=0,
              n_iter_no_change=np.inf, batch_norm=batch_norm, batch_norm_momentum=0.8,
              batch_norm_epsilon=1e-3, **extra)
    Estimator = MLPClassifier if task == "classifier" else MLPRegressor
    ours = Estimator(**kw).fit(X, target)
    start = _glorot([6, 8, 5, 3 if task == "classifier" else 1], 3, dtype=dtype)
    model = Model([6, 8, 5, 3 if task == "classifier" else 1],
                  output_activation="softmax" if task == "classifier" else "linear",
                  optimizer=optimizer, learning_rate=0.02, n_epochs=6, batch_size=32,
                  shuffle=False, l2=0.01, beta=0.8, batch_norm=batch_norm,
                  batch_norm_momentum=0.8, batch_norm_epsilon=1e-3, dtype=np.dtype(dtype).name,
                  cost_every=1)
    model.fit(X.T, target if task == "classifier" else target.reshape(1, -1),
              parameters=R.initialize_batch_norm(start, model.get_params()["batch_norm"]))
    _assert_same_parameters(_as_parameters(ours), model.parameters_, dtype)
    flags = [True, True] if batch_norm is True else batch_norm
    assert [g is not None for g in ours.batch_norm_gamma_] == flags + [False]
    # the plain layers' W and every batch-normalised layer's W start from scikit-learn's draws
    np.testing.assert_allclose(
        Estimator(**{**kw, "max_iter": 1, "learning_rate_init": 1e-300}).fit(
            X, target).coefs_[1], start["W2"].T, rtol=1e-12)
    if task == "classifier":
        ours_out, model_out = ours.predict_proba(X), model.predict_proba(X.T).T
    else:
        ours_out, model_out = ours.predict(X), model.predict(X.T).reshape(-1)
    np.testing.assert_allclose(ours_out, model_out, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def test_prediction_uses_the_running_statistics():
    """``predict_proba`` is the forward pass with the running statistics (the reference's),
    the same for one row alone and inside a batch, and not the batch's own statistics."""
    X, y = _data()
    X += 1.5  # not centred: the first layer's batch means are not 0
    clf = MLPClassifier(hidden_layer_sizes=(8, 5), batch_norm=True, random_state=0,
                        max_iter=20, learning_rate_init=0.01).fit(X, y)
    for kind in ("running_mean", "running_var"):  # trained away from their start (0, 1)
        assert all(np.abs(a - (kind == "running_var")).max() > 1e-3
                   for a in getattr(clf, f"batch_norm_{kind}_")[:2])
    parameters = _as_parameters(clf)
    AL, _ = R.L_model_forward(X.T, parameters, "relu", "softmax",
                              batch_norm_epsilon=clf.batch_norm_epsilon)
    probabilities = clf.predict_proba(X)
    np.testing.assert_allclose(probabilities, AL.T, rtol=1e-12, atol=1e-15)
    for i in (0, 7, 50):
        np.testing.assert_allclose(clf.predict_proba(X[i:i + 1]), probabilities[i:i + 1],
                                   rtol=1e-12, atol=1e-15)
        assert clf.predict(X[i:i + 1])[0] == clf.predict(X)[i]
    assert clf.score(X, y) == np.mean(clf.classes_[AL.argmax(axis=0)] == y)
    training, _ = R.L_model_forward(X.T, parameters, "relu", "softmax", training=True,
                                    batch_norm_epsilon=clf.batch_norm_epsilon)
    assert np.abs(training.T - probabilities).max() > 1e-3  # the batch's statistics differ
    # a changed batch_norm_epsilon is the one prediction uses, as a changed activation is
    eps = clf.batch_norm_epsilon
    clf.set_params(batch_norm_epsilon=0.5)
    AL_half, _ = R.L_model_forward(X.T, parameters, "relu", "softmax", batch_norm_epsilon=0.5)
    np.testing.assert_allclose(clf.predict_proba(X), AL_half.T, rtol=1e-12, atol=1e-15)
    clf.set_params(batch_norm_epsilon=eps)
    np.testing.assert_allclose(clf.predict_proba(X), probabilities, rtol=0, atol=0)


def test_replaced_arrays_are_what_prediction_reads():
    """Assigning a new array to a fitted list is seen by the next prediction, as for
    ``coefs_`` (the network is rebuilt from the attributes)."""
    X, y = _data()
    reg = MLPRegressor(hidden_layer_sizes=(6,), batch_norm=True, random_state=0,
                       max_iter=10).fit(X, X[:, 0])
    before = reg.predict(X)
    reg.batch_norm_running_mean_[0] = reg.batch_norm_running_mean_[0] + 1.0
    after = reg.predict(X)
    AL, _ = R.L_model_forward(X.T, _as_parameters(reg), "relu", "linear")
    np.testing.assert_allclose(after, AL[0], rtol=1e-12, atol=1e-12)
    assert np.abs(after - before).max() > 1e-3


# ---------------------------------------------------------------------------
# Continuing: warm_start, partial_fit, early stopping, pickling
# ---------------------------------------------------------------------------


def test_warm_start_continues_the_running_statistics_with_a_new_optimiser():
    """Two epochs, then three with ``warm_start``: the Model's two fits from the same start
    (each a new optimiser, as scikit-learn's warm start), gammas and running statistics
    carried."""
    X, y = _data()
    kw = dict(hidden_layer_sizes=(8, 5), batch_size=32, shuffle=False, random_state=3,
              learning_rate_init=0.02, tol=0, n_iter_no_change=np.inf, batch_norm=True,
              warm_start=True, alpha=0)
    clf = MLPClassifier(max_iter=2, **kw).fit(X, y)
    clf.set_params(max_iter=3).fit(X, y)
    assert len(clf.loss_curve_) == 5
    options = dict(output_activation="softmax", optimizer="adam_folded", learning_rate=0.02,
                   batch_size=32, shuffle=False, batch_norm=True, cost_every=1)
    start = R.initialize_batch_norm(_glorot([6, 8, 5, 3], 3), True)
    two = Model([6, 8, 5, 3], n_epochs=2, **options).fit(X.T, y, parameters=start)
    five = Model([6, 8, 5, 3], n_epochs=3, **options).fit(X.T, y, parameters=two.parameters_)
    _assert_same_parameters(_as_parameters(clf), five.parameters_, np.float64)
    with pytest.raises(ValueError, match=r"the fitted network has batch normalisation in its "
                                         r"hidden layers \[True, True\], but batch_norm=False"):
        clf.set_params(batch_norm=False).fit(X, y)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_partial_fit_carries_the_optimiser_and_the_running_statistics(Estimator):
    """Three ``partial_fit`` calls are a three-epoch fit (Adam's moments, gammas and the
    running statistics carry over), bit for bit."""
    X, y = _data()
    target = y if Estimator is MLPClassifier else X[:, 0] - X[:, 1]
    kw = dict(hidden_layer_sizes=(8, 5), batch_size=32, shuffle=False, random_state=1,
              learning_rate_init=0.02, batch_norm=[True, False])
    one_by_one = Estimator(**kw)
    for _ in range(3):
        if Estimator is MLPClassifier:
            one_by_one.partial_fit(X, target, classes=[0, 1, 2])
        else:
            one_by_one.partial_fit(X, target)
    fitted = Estimator(max_iter=3, tol=0, n_iter_no_change=np.inf, **kw).fit(X, target)
    for key, value in _as_parameters(fitted).items():
        np.testing.assert_array_equal(_as_parameters(one_by_one)[key], value, err_msg=key)
    with pytest.raises(ValueError, match="the fitted network has batch normalisation"):
        one_by_one.set_params(batch_norm=True).partial_fit(X, target)


def test_early_stopping_restores_the_best_epochs_batch_norm():
    """The restored model is the best epoch's whole state (gammas and running statistics
    with the weights): the state a fit stopped right after that epoch ends with."""
    X, y = _data(n=300, seed=2)
    kw = dict(hidden_layer_sizes=(10, 6), batch_norm=True, random_state=0, max_iter=60,
              early_stopping=True, validation_fraction=0.2, n_iter_no_change=4, tol=0,
              learning_rate_init=0.05, batch_size=16)
    clf = MLPClassifier(**kw).fit(X, y)
    best = int(np.argmax(clf.validation_scores_))
    assert best < clf.n_iter_ - 1  # the last epoch is not the best: something was restored
    assert all(g is not None for g in clf.batch_norm_gamma_[:2])
    at_best = MLPClassifier(**{**kw, "max_iter": best + 1}).fit(X, y)
    assert at_best.best_validation_score_ == clf.best_validation_score_
    ours = _as_parameters(clf)
    for key, value in _as_parameters(at_best).items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
    np.testing.assert_array_equal(clf.predict_proba(X), at_best.predict_proba(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_pickled_model_predicts_and_continues_the_same(dtype):
    X, y = _data(dtype=dtype)
    clf = MLPClassifier(hidden_layer_sizes=(8, 5), batch_norm=[False, True], random_state=0,
                        max_iter=5, shuffle=False, batch_size=32).fit(X, y)
    loaded = pickle.loads(pickle.dumps(clf))
    for name in ("batch_norm_gamma_", "batch_norm_running_mean_", "batch_norm_running_var_",
                 "intercepts_", "coefs_"):
        for a, b in zip(getattr(loaded, name), getattr(clf, name), strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict_proba(X[:1]), clf.predict_proba(X[:1]))
    loaded.partial_fit(X, y)
    clf.partial_fit(X, y)
    for key, value in _as_parameters(clf).items():
        np.testing.assert_array_equal(_as_parameters(loaded)[key], value, err_msg=key)


def test_without_batch_norm_the_attributes_are_lists_of_none():
    X, y = _data()
    for solver in ("adam", "lbfgs"):
        clf = MLPClassifier(hidden_layer_sizes=(4,), solver=solver, max_iter=3,
                            random_state=0).fit(X, y)
        for name in ("batch_norm_gamma_", "batch_norm_running_mean_",
                     "batch_norm_running_var_"):
            assert getattr(clf, name) == [None, None]
        assert clf.__sklearn_tags__().input_tags.sparse
    assert not MLPClassifier(batch_norm=True).__sklearn_tags__().input_tags.sparse


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_what_cannot_work_is_refused_by_name_before_any_work(Estimator):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, y = _data(n=30)
    cases = [
        (dict(solver="lbfgs", batch_norm=True), ValueError,
         r"batch_norm=True is not supported with solver='lbfgs'", X),
        (dict(solver="lbfgs", batch_norm=[False, True], hidden_layer_sizes=(4, 3)),
         ValueError, r"batch_norm=\[False, True\] is not supported with solver='lbfgs'", X),
        (dict(batch_norm=True), ValueError,
         r"batch_norm: batch normalisation does not train on sparse X", 
         scipy_sparse.csr_matrix(X)),
        (dict(batch_norm=[True], hidden_layer_sizes=(4, 3)), ValueError,
         r"batch_norm must be True, False or one bool per hidden layer \(2\); got 1 values",
         X),
        (dict(batch_norm=[1, 0], hidden_layer_sizes=(4, 3)), TypeError,
         r"batch_norm must be True, False or one bool per hidden layer; got 1", X),
        (dict(batch_norm="yes"), InvalidParameterError, r"'batch_norm' parameter", X),
        (dict(batch_norm=True, batch_norm_momentum=1.0), InvalidParameterError,
         r"'batch_norm_momentum' parameter", X),
        (dict(batch_norm=True, batch_norm_epsilon=0.0), InvalidParameterError,
         r"'batch_norm_epsilon' parameter", X),
        (dict(batch_norm=True, batch_norm_epsilon=np.inf), InvalidParameterError,
         r"'batch_norm_epsilon' parameter", X),
    ]
    for kwargs, error, match, data in cases:
        estimator = Estimator(**kwargs)
        with pytest.raises(error, match=match):
            estimator.fit(data, y)
        assert not hasattr(estimator, "coefs_") and not hasattr(estimator, "n_features_in_")
    if Estimator is MLPRegressor:  # its partial_fit runs L-BFGS: refused the same way
        with pytest.raises(ValueError, match="not supported with solver='lbfgs'"):
            MLPRegressor(solver="lbfgs", batch_norm=True).partial_fit(X, y)
    # prediction of sparse X by a batch-normalised model works (the folded dense network)
    fitted = Estimator(hidden_layer_sizes=(5,), batch_norm=True, max_iter=5,
                       random_state=0).fit(X, y)
    np.testing.assert_allclose(fitted.predict(scipy_sparse.csr_matrix(X)), fitted.predict(X),
                               rtol=1e-12)


# ---------------------------------------------------------------------------
# skl2onnx
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_skl2onnx_exports_the_folded_network(dtype):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    from skl2onnx import to_onnx

    X, y = _data(dtype=dtype)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5

    def run(estimator, options=None):
        proto = to_onnx(estimator, X[:1], options=options)
        session = ort.InferenceSession(proto.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: X})

    clf = MLPClassifier(hidden_layer_sizes=(8, 5), batch_norm=[True, False], random_state=0,
                        max_iter=15, learning_rate_init=0.01,
                        batch_norm_epsilon=1e-2).fit(X, y)
    label, probabilities = run(clf, {MLPClassifier: {"zipmap": False}})
    np.testing.assert_array_equal(label, clf.predict(X))
    assert probabilities.dtype == np.dtype(dtype)
    np.testing.assert_allclose(probabilities, clf.predict_proba(X), rtol=tolerance,
                               atol=tolerance)
    reg = MLPRegressor(hidden_layer_sizes=(8, 5), batch_norm=True, random_state=0,
                       max_iter=15).fit(X, X[:, :2])
    (values,) = run(reg)
    np.testing.assert_allclose(values, reg.predict(X), rtol=tolerance,
                               atol=tolerance * np.abs(reg.predict(X)).max())
