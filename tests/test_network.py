"""The fitted network (fastbackprop.network): packed once, its views the model's parameters."""

import pickle
import threading

import numpy as np
import pytest

from conftest import TOLERANCES
from fastbackprop import Model, network as network_module, reference as R, spec
from fastbackprop.datasets import make_classification
from fastbackprop.network import Network


def reference_AL(X, parameters, hidden, output):
    AL, _ = R.L_model_forward(X, parameters, hidden, output)
    return AL


@pytest.mark.parametrize("backend", spec.BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output", list(spec.OUTPUTS))
@pytest.mark.parametrize("m", [1, 7, network_module.KEPT_WORKSPACE + 3])
def test_probabilities_are_the_reference_forward_pass(backend, dtype, output, m):
    dims = [5, 4, 3] if output == "softmax" else [5, 4, 2]
    parameters = R.initialize_parameters(dims, seed=1, dtype=dtype)
    X = np.random.default_rng(2).standard_normal((dims[0], m)).astype(dtype)
    net = Network(parameters, "tanh", output, backend)
    expected = reference_AL(X, parameters, "tanh", output)
    rtol = TOLERANCES[np.dtype(dtype)]
    for _ in range(2):  # the first call compiles, the second takes the kept entry point
        AL = net.probabilities(X)
        assert AL.dtype == dtype and AL.shape == (dims[-1], m)
        np.testing.assert_allclose(AL, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
        rows = net.probabilities(np.ascontiguousarray(X.T), rows=True)
        np.testing.assert_allclose(rows, expected.T, rtol=rtol,
                                   atol=rtol * np.abs(expected).max())
    # the result is the caller's: a second call does not overwrite it
    first = net.probabilities(X)
    net.probabilities(X * 2)
    np.testing.assert_allclose(first, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_mixed_dtypes_are_computed_as_numpy_promotes_them():
    parameters = R.initialize_parameters([3, 4, 1], seed=0, dtype=np.float32)
    net = Network(parameters, "relu", "sigmoid")
    X = np.random.default_rng(0).standard_normal((3, 5))
    assert net.probabilities(X).dtype == np.float64
    assert net.probabilities(X.astype(np.float32)).dtype == np.float32


@pytest.fixture(scope="module")
def fitted():
    X, Y = make_classification(4, 60, seed=3)
    return Model([4, 5, 1], "tanh", n_epochs=20, seed=0, learning_rate=0.5).fit(X, Y), X


def test_the_model_parameters_are_the_networks_views(fitted):
    model, X = fitted
    model = pickle.loads(pickle.dumps(model))  # a copy to change
    net = model.network()
    assert net.owns(tuple(model.parameters_[k] for k in net.schema.keys))
    before = model.predict_proba(X)
    model.parameters_["W2"] *= 2  # in place: reaches theta
    np.testing.assert_allclose(model.predict_proba(X),
                               reference_AL(X, model.parameters_, "tanh", "sigmoid"), rtol=1e-12)
    assert not np.allclose(model.predict_proba(X), before)
    assert model.network() is net  # nothing packed again


def test_replaced_parameters_are_packed_again(fitted):
    model, X = fitted
    model = pickle.loads(pickle.dumps(model))
    replaced = {k: v.copy() for k, v in model.parameters_.items()}
    replaced["b2"] = replaced["b2"] + 3.0
    model.parameters_ = replaced
    np.testing.assert_allclose(model.predict_proba(X),
                               reference_AL(X, replaced, "tanh", "sigmoid"), rtol=1e-12)
    replaced["W1"][0, 0] += 1.0  # a foreign array, changed in place: still followed
    np.testing.assert_allclose(model.predict_proba(X),
                               reference_AL(X, replaced, "tanh", "sigmoid"), rtol=1e-12)
    model.set_params(hidden_activation="relu")
    np.testing.assert_allclose(model.predict_proba(X),
                               reference_AL(X, replaced, "relu", "sigmoid"), rtol=1e-12)


def test_an_unpickled_model_owns_its_parameters_again(fitted):
    model, X = fitted
    copy = pickle.loads(pickle.dumps(model))
    net = copy.network()
    assert net.owns(tuple(copy.parameters_[k] for k in net.schema.keys))
    np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))


def test_threads_predicting_at_once_get_their_own_answers(fitted):
    model, X = fitted
    inputs = [X[:, i:i + 1] * (1 + i) for i in range(8)]
    expected = [model.predict_proba(x) for x in inputs]
    results = {}

    def work(i):
        for _ in range(200):
            results[i] = model.predict_proba(inputs[i])
            if not np.array_equal(results[i], expected[i]):
                break

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        np.testing.assert_array_equal(results[i], expected[i])


def test_sklearn_coefs_are_views_and_survive_pickling():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from fastbackprop.sklearn import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X[:300] / 16
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y[:300])
    proba = clf.predict_proba(X)
    copy = pickle.loads(pickle.dumps(clf))
    assert copy._fitted_network() is copy._network  # relinked: nothing packed per call
    np.testing.assert_array_equal(copy.predict_proba(X), proba)
    copy.coefs_[1][:] = 0  # in place: the output layer sees zeros
    copy.intercepts_[1][:] = 0
    np.testing.assert_allclose(copy.predict_proba(X), np.full_like(proba, 0.1), rtol=1e-12)
    copy.coefs_ = [c.copy() for c in clf.coefs_]  # replaced: a network of them, per call
    copy.intercepts_ = [i.copy() for i in clf.intercepts_]
    np.testing.assert_array_equal(copy.predict_proba(X), proba)
