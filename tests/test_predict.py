"""Fast prediction (issue 28): a ready ndarray goes straight to the compiled kernel; anything
else through the full checks. Both give the same answers, and bad input the same errors."""

import pickle
import warnings

import numpy as np
import pytest

from conftest import TOLERANCES
from fastbackprop import Model, spec
from fastbackprop import reference as R
from fastbackprop.datasets import make_classification
from fastbackprop.model import NotFittedError
from fastbackprop.network import KEPT_WORKSPACE, PREDICT_TILE, Network

DTYPES = [np.float32, np.float64]


def fitted_model(output, dtype, backend="numba"):
    """A fitted (unpickled: it owns its packed parameters) ``[5, 4, n_L]`` Model."""
    dims = [5, 4, 3] if output == "softmax" else [5, 4, 2]
    model = Model(dims, "tanh", output, dtype=np.dtype(dtype).name, backend=backend)
    model.parameters_ = R.initialize_parameters(dims, seed=1, dtype=dtype)
    model.n_iter_ = 0
    return pickle.loads(pickle.dumps(model))


def forms(X, matrix=True):
    """``X`` ``(n, m)`` C-contiguous, as the other things a caller may pass (not the fast path);
    ``np.matrix`` too with ``matrix`` (scikit-learn refuses it)."""
    F = np.asfortranarray(X)
    wide = np.zeros((X.shape[0], 2 * X.shape[1]), dtype=X.dtype)
    wide[:, ::2] = X
    readonly = X.copy()
    readonly.flags.writeable = False
    other = X.astype(np.float64 if X.dtype == np.float32 else np.float32)
    found = {"F order": F, "strided": wide[:, ::2], "read-only": readonly, "list": X.tolist(),
             "other dtype": other}
    if matrix:
        found["matrix subclass"] = np.asmatrix(X)
    return found


def no_full_checks(monkeypatch, *modules_and_names):
    """Make the general path's checks raise: a call that still works took the fast path."""
    def refuse(*args, **kwargs):
        raise AssertionError("the full checks ran")
    for module, name in modules_and_names:
        monkeypatch.setattr(module, name, refuse)


# -- Model: examples as columns ----------------------------------------------


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", list(spec.OUTPUTS))
@pytest.mark.parametrize("m", [1, 9, KEPT_WORKSPACE + 5])
def test_model_fast_path_is_the_general_path(output, dtype, m, monkeypatch):
    model = fitted_model(output, dtype)
    X = np.random.default_rng(m).standard_normal((5, m)).astype(dtype)
    regression = spec.OUTPUTS[output].regression
    method = model.predict if regression else model.predict_proba
    general = {name: method(x) for name, x in forms(X).items()}
    labels = model.predict(X)
    reference = fitted_model(output, dtype, backend="numpy")
    expected = reference.predict(X) if regression else reference.predict_proba(X)

    import fastbackprop.model as model_module
    with monkeypatch.context() as patch:
        no_full_checks(patch, (model_module, "check_X"))
        fast = method(X)
        np.testing.assert_array_equal(model.predict(X), labels)
    assert fast.dtype == dtype and fast.shape == expected.shape and fast.flags.c_contiguous
    rtol = TOLERANCES[np.dtype(dtype)]
    np.testing.assert_allclose(fast, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    for name, result in general.items():
        if name == "other dtype":  # the input rounded to float32 on one side
            np.testing.assert_allclose(result, fast, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(result, fast, err_msg=name)


def test_model_integer_input_goes_the_general_way_and_agrees():
    model = fitted_model("sigmoid", np.float64)
    X = np.arange(10).reshape(5, 2)
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X.astype(float)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("m", [1, 40])
def test_model_refuses_non_finite_input_naming_X_and_where(dtype, bad, m):
    model = fitted_model("softmax", dtype)
    X = np.ones((5, m), dtype=dtype)
    X[2, m - 1] = bad
    for method in (model.predict_proba, model.predict):
        with pytest.raises(ValueError, match=rf"X must be finite; found {bad} at index \(2, {m - 1}\)"):
            method(X)


@pytest.mark.parametrize("X, match", [
    (np.ones((4, 1)), r"X must have shape \(5, m\) \(one example per column\); got shape \(4, 1\)"),
    (np.ones((1, 5)), r"X must have shape \(5, m\) .*got shape \(1, 5\)"),
    (np.ones(5), r"X must be a 2-D array of shape \(5, m\) .*got shape \(5,\)"),
    (np.ones((5, 1, 1)), r"X must be a 2-D array .*got shape \(5, 1, 1\)"),
    (np.ones((5, 0)), r"X must have at least one row and one column"),
])
def test_model_refuses_wrong_shapes_naming_the_expected_one(X, match):
    model = fitted_model("sigmoid", np.float64)
    with pytest.raises(ValueError, match=match):
        model.predict_proba(X)


@pytest.mark.parametrize("X", [np.ones((5, 1), dtype=complex), np.array([["a"] * 2] * 5)])
def test_model_refuses_non_real_input(X):
    with pytest.raises(TypeError, match="X must be a real numeric array"):
        fitted_model("sigmoid", np.float64).predict_proba(X)


def test_an_unfitted_model_cannot_predict():
    model = Model([5, 4, 1])
    for method in (model.predict_proba, model.predict):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            method(np.ones((5, 1)))


def test_the_kernels_finiteness_check_sees_every_entry():
    """NaN anywhere in the batch, in either form, is caught by the compiled check."""
    parameters = R.initialize_parameters([3, 4, 2], seed=0)
    net = Network(parameters, "relu", "sigmoid")
    X = np.ones((3, 7))
    assert net.fast_probabilities(X) is not None
    for i in range(3):
        for j in range(7):
            bad = X.copy()
            bad[i, j] = np.nan
            assert net.fast_probabilities(bad) is None
            assert net.fast_probabilities(np.ascontiguousarray(bad.T), rows=True) is None
            with pytest.raises(ValueError, match="X must be finite"):
                net.probabilities(bad)


def test_the_fast_path_leaves_no_trace_of_a_refused_call():
    """A refused call computes nothing: the next call's answer is its own."""
    net = Network(R.initialize_parameters([3, 4, 2], seed=0), "tanh", "sigmoid")
    X = np.random.default_rng(0).standard_normal((3, 2))
    expected = net.probabilities(X)
    bad = X.copy()
    bad[0, 0] = np.inf
    assert net.fast_probabilities(bad) is None
    np.testing.assert_array_equal(net.fast_probabilities(X), expected)


# -- the scikit-learn classes: examples as rows --------------------------------


@pytest.fixture(scope="module")
def estimators():
    pytest.importorskip("sklearn")
    from fastbackprop.sklearn import MLPClassifier, MLPRegressor

    X, Y = make_classification(6, 80, seed=2)
    X = X.T
    fitted = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in 5 epochs: on purpose
        for dtype in DTYPES:
            Xd = X.astype(dtype)
            y3 = np.digitize(X[:, 0], [-0.5, 0.5])
            settings = dict(hidden_layer_sizes=(7,), max_iter=5, random_state=0)
            fitted[("softmax", dtype)] = MLPClassifier(**settings).fit(Xd, y3)
            fitted[("sigmoid", dtype)] = MLPClassifier(**settings).fit(Xd, Y.ravel())
            fitted[("linear", dtype)] = MLPRegressor(**settings).fit(Xd, X[:, :2])
            fitted[("exp", dtype)] = MLPRegressor(loss="poisson", **settings).fit(
                Xd, np.abs(X[:, :2]))
    return fitted


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", list(spec.OUTPUTS))
@pytest.mark.parametrize("m", [1, 9, KEPT_WORKSPACE + 5])
def test_sklearn_fast_path_is_the_general_path(estimators, output, dtype, m, monkeypatch):
    import fastbackprop.sklearn as sk

    est = estimators[(output, dtype)]
    X = np.random.default_rng(m).standard_normal((m, 6)).astype(dtype)
    methods = [est.predict] + ([] if spec.OUTPUTS[output].regression else [est.predict_proba])
    general = [{name: method(x) for name, x in forms(X, matrix=False).items()}
               for method in methods]
    with monkeypatch.context() as patch:
        no_full_checks(patch, (sk, "validate_data"), (sk, "check_is_fitted"))
        fast = [method(X) for method in methods]
    for result, results in zip(fast, general):
        for name, other in results.items():
            if other.dtype != result.dtype or name == "other dtype":
                # scikit-learn computes lists in float64, float32 input rounded: other numbers
                if result.dtype.kind == "f":
                    np.testing.assert_allclose(other, result, rtol=1e-5, atol=1e-6, err_msg=name)
            else:
                np.testing.assert_array_equal(other, result, err_msg=name)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_sklearn_non_finite_input_gets_scikit_learns_message(estimators, bad):
    est = estimators[("softmax", np.float64)]
    X = np.ones((3, 6))
    X[1, 4] = bad
    match = "Input X contains NaN" if np.isnan(bad) else "Input X contains infinity"
    for method in (est.predict, est.predict_proba):
        with pytest.raises(ValueError, match=match):
            method(X)


@pytest.mark.parametrize("X, error, match", [
    (np.ones((1, 5)), ValueError, "X has 5 features, but MLPClassifier is expecting 6 features"),
    (np.ones(6), ValueError, "Expected 2D array, got 1D array instead"),
    (np.ones((1, 6, 1)), ValueError, "Found array with dim 3"),
    (np.ones((0, 6)), ValueError, "Found array with 0 sample"),
    (np.ones((1, 6), dtype=complex), ValueError, "Complex data not supported"),
    (np.asmatrix(np.ones((1, 6))), TypeError, "np.matrix is not supported"),
])
def test_sklearn_bad_input_gets_scikit_learns_errors(estimators, X, error, match):
    est = estimators[("softmax", np.float64)]
    for method in (est.predict, est.predict_proba):
        with pytest.raises(error, match=match):
            method(X)


def test_sklearn_unfitted_estimators_raise_not_fitted():
    pytest.importorskip("sklearn")
    from sklearn.exceptions import NotFittedError as SkNotFitted

    from fastbackprop.sklearn import MLPClassifier, MLPRegressor

    for est in (MLPClassifier(), MLPRegressor()):
        with pytest.raises(SkNotFitted, match="is not fitted yet"):
            est.predict(np.ones((1, 6)))
    with pytest.raises(SkNotFitted, match="is not fitted yet"):
        MLPClassifier().predict_proba(np.ones((1, 6)))


def test_sklearn_feature_names_still_warn_on_the_fast_path():
    pd = pytest.importorskip("pandas")
    from fastbackprop.sklearn import MLPClassifier

    X = np.random.default_rng(0).standard_normal((30, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with pytest.warns(Warning):
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(frame, X[:, 0] > 0)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.predict_proba(X[:1])


@pytest.mark.parametrize("classes", [[0, 1, 2], ["b", "a", "c"], [-1.0, 2.0, 7.0]])
def test_sklearn_multiclass_labels_are_the_binarizers(classes):
    """predict's shortcut for several classes gives LabelBinarizer.inverse_transform's labels,
    ties (the first largest) included."""
    pytest.importorskip("sklearn")
    from fastbackprop.sklearn import MLPClassifier

    X = np.random.default_rng(0).standard_normal((30, 3))
    y = np.array(classes)[np.arange(30) % 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    P = np.random.default_rng(1).random((50, 3))
    P[:5] = [0.4, 0.4, 0.2]  # ties
    P[5:10] = [0.2, 0.4, 0.4]
    expected = clf._label_binarizer.inverse_transform(P)
    labels = clf._labels(P)
    assert labels.dtype == expected.dtype
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(clf.predict(X), clf._label_binarizer.inverse_transform(
        clf.predict_proba(X)))


def test_the_kept_workspace_grows_to_a_batch_within_its_bytes(monkeypatch):
    """Batches larger than the kept workspace: it grows (within KEPT_BYTES) and later,
    smaller and larger, batches get their own answers."""
    import fastbackprop.network as network_module

    net = Network(R.initialize_parameters([3, 5, 2], seed=0), "tanh", "softmax")
    reference = Network(R.initialize_parameters([3, 5, 2], seed=0), "tanh", "softmax", "numpy")
    rng = np.random.default_rng(0)
    monkeypatch.setattr(network_module, "KEPT_BYTES", 7 * 600 * 8)
    for m in [1, KEPT_WORKSPACE + 1, 3, 600, 601, 2000, 2, 599]:
        X = rng.standard_normal((3, m))
        np.testing.assert_allclose(net.probabilities(X), reference.probabilities(X),
                                   rtol=1e-12, atol=1e-14, err_msg=str(m))
    assert net._local.predictors[(False, "d")].capacity == 600


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [False, True])
def test_one_network_predicts_any_sequence_of_batch_sizes(rows, dtype):
    """The kept entry point serves every later call: one example first, then batches (the
    result of one example is both C- and F-contiguous, of more only one of them)."""
    parameters = R.initialize_parameters([4, 6, 3], seed=0, dtype=dtype)
    net = Network(parameters, "tanh", "softmax")
    reference = Network(parameters, "tanh", "softmax", "numpy")
    rng = np.random.default_rng(0)
    rtol = TOLERANCES[np.dtype(dtype)]
    for m in [1, 7, 1, KEPT_WORKSPACE + 9, 2]:
        X = rng.standard_normal((m, 4) if rows else (4, m)).astype(dtype)
        expected = reference.probabilities(X, rows=rows)
        np.testing.assert_allclose(net.fast_probabilities(X, rows=rows), expected, rtol=rtol,
                                   atol=rtol, err_msg=str(m))
        np.testing.assert_allclose(net.probabilities(X, rows=rows), expected, rtol=rtol,
                                   atol=rtol, err_msg=str(m))


TILE_SIZES = [1, PREDICT_TILE - 1, PREDICT_TILE, PREDICT_TILE + 1, 2 * PREDICT_TILE + 3]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", list(spec.OUTPUTS))
@pytest.mark.parametrize("rows", [False, True])
def test_tiled_prediction_covers_every_example(rows, output, dtype):
    """Rows go through the kernel in tiles of PREDICT_TILE: every batch size around the tile's
    edges (one example, a tile less one, one, one more, two and a partial third) gives the
    reference forward pass's A_L for every example, in both forms and dtypes."""
    dims = [7, 6, 3] if output == "softmax" else [7, 6, 2]
    parameters = R.initialize_parameters(dims, seed=2, dtype=dtype)
    net = Network(parameters, "relu", output)
    rng = np.random.default_rng(3)
    rtol = TOLERANCES[np.dtype(dtype)]
    for m in TILE_SIZES:
        X = rng.standard_normal((dims[0], m)).astype(dtype)
        expected, _ = R.L_model_forward(X, parameters, "relu", output)
        given = np.ascontiguousarray(X.T) if rows else X
        AL = net.fast_probabilities(given, rows=rows)
        np.testing.assert_allclose(AL.T if rows else AL, expected, rtol=rtol,
                                   atol=rtol * np.abs(expected).max(), err_msg=str(m))


@pytest.mark.parametrize("rows", [False, True])
def test_a_non_finite_entry_in_any_tile_is_caught(rows):
    """NaN or infinity in the first tile, a middle one, or the last partial one is refused."""
    net = Network(R.initialize_parameters([3, 4, 2], seed=0), "relu", "softmax")
    m = 2 * PREDICT_TILE + 3
    X = np.ones((m, 3))
    for row in [0, PREDICT_TILE - 1, PREDICT_TILE, 2 * PREDICT_TILE, m - 1]:
        bad = X.copy()
        bad[row, 2] = np.inf if row % 2 else np.nan
        given = bad if rows else np.ascontiguousarray(bad.T)
        assert net.fast_probabilities(given, rows=rows) is None, row
        with pytest.raises(ValueError, match="X must be finite"):
            net.probabilities(given, rows=rows)
