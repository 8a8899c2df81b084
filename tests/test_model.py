"""fastbackprop.Model: both backends end to end, every bad input, save/load, failed fits.

Examples are columns throughout: X (n_x, m), Y (n_y, m).
"""

import json
import zipfile

import numpy as np
import pytest

from conftest import BACKENDS
from fastbackprop import model as model_module, reference as R
from fastbackprop.datasets import load_planar_dataset, make_classification
from fastbackprop import backends
from fastbackprop.model import Model, NotFittedError, TrainingDivergedError
from fastbackprop.reference_trainer import Trainer as NumpyTrainer

#: Parameters of the two backends after ITERATIONS steps agree to this (relative to
#: each array's largest entry); measured about 1e-14 and 2e-6.
AGREEMENT = {"float64": 1e-10, "float32": 1e-4}
ITERATIONS = 300

PROBLEMS = {
    "planar": ([2, 4, 1], "tanh", 1.2, lambda: load_planar_dataset()),
    "deep-relu": ([5, 8, 4, 2], "relu", 0.1, lambda: make_classification(5, 64, n_y=2, seed=3)),
    "leaky": ([5, 8, 4, 1], "leaky_relu", 0.1, lambda: make_classification(5, 64, seed=3)),
    "sigmoid": ([5, 8, 4, 1], "sigmoid", 0.5, lambda: make_classification(5, 64, seed=3)),
}


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    return request.param


def small(backend="numpy", **kw):
    """A [3, 5, 1] tanh model and its data: X (3, 40), Y (1, 40)."""
    X, Y = make_classification(3, 40, seed=1)
    params = dict(hidden_activation="tanh", learning_rate=0.5, n_epochs=50, seed=0,
                  backend=backend, cost_every=10)
    params.update(kw)
    return Model([3, 5, 1], **params), X, Y


def state(model):
    """Everything fit may set, copied, for before/after comparisons."""
    return {k: (dict((n, a.copy()) for n, a in v.items()) if isinstance(v, dict) else
                np.copy(v) if isinstance(v, np.ndarray) else v)
            for k, v in vars(model).items()}


def assert_same_state(model, before):
    after = vars(model)
    assert after.keys() == before.keys()
    for key, value in before.items():
        if isinstance(value, dict):
            assert after[key].keys() == value.keys()
            for name in value:
                np.testing.assert_array_equal(after[key][name], value[name])
        else:
            np.testing.assert_array_equal(after[key], value)


def relative_difference(a, b):
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in b)


# ---------------------------------------------------------------------------
# End to end, both backends
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_both_backends_give_the_same_parameters(problem, dtype):
    dims, activation, lr, data = PROBLEMS[problem]
    X, Y = data()
    fitted = {
        b: Model(dims, hidden_activation=activation, learning_rate=lr, n_epochs=ITERATIONS,
                 seed=0, dtype=dtype, backend=b, cost_every=50).fit(X, Y)
        for b in BACKENDS
    }
    numba, numpy = fitted["numba"], fitted["numpy"]
    assert relative_difference(numba.parameters_, numpy.parameters_) < AGREEMENT[dtype]
    np.testing.assert_allclose(numba.costs_, numpy.costs_, rtol=AGREEMENT[dtype])
    assert numba.n_iter_ == numpy.n_iter_ == ITERATIONS
    for m in fitted.values():
        assert all(v.dtype == np.dtype(dtype) for v in m.parameters_.values())
        assert m.costs_.dtype == np.float64 and m.costs_.shape == (ITERATIONS // 50,)
    np.testing.assert_allclose(numba.predict_proba(X), numpy.predict_proba(X),
                               rtol=AGREEMENT[dtype] * 10, atol=AGREEMENT[dtype])


def test_the_numpy_backend_is_the_reference_training_loop():
    X, Y = make_classification(4, 30, seed=2)
    model = Model([4, 6, 3, 1], learning_rate=0.05, n_epochs=120, seed=5, backend="numpy",
                  cost_every=7).fit(X, Y)
    parameters, costs = R.L_layer_model(X, Y, [4, 6, 3, 1], learning_rate=0.05,
                                        num_iterations=120, seed=5, cost_every=7)
    for key in parameters:
        np.testing.assert_array_equal(model.parameters_[key], parameters[key])
    np.testing.assert_array_equal(model.costs_, costs)


@pytest.mark.parametrize("setting", ["full batch", "mini-batches, dropout, L2, weights"])
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
def test_the_numpy_backend_is_the_reference_training_loop_for_every_activation(hidden, setting):
    X, Y = make_classification(4, 30, seed=2)
    options, w = {}, None
    if setting != "full batch":
        options = dict(batch_size=8, keep_prob=0.8, l2=0.3, optimizer="adam")
        w = np.random.default_rng(3).random(30) * 2
    model = Model([4, 6, 3, 1], hidden, learning_rate=0.05, n_epochs=25, seed=5,
                  backend="numpy", cost_every=4, **options).fit(X, Y, sample_weight=w)
    parameters, costs = R.L_layer_model(X, Y, [4, 6, 3, 1], hidden, learning_rate=0.05,
                                        num_iterations=25, seed=5, cost_every=4,
                                        sample_weight=w, **options)
    for key in parameters:
        np.testing.assert_array_equal(model.parameters_[key], parameters[key], err_msg=key)
    np.testing.assert_array_equal(model.costs_, costs)


def test_planar_network_learns(backend):
    X, Y = load_planar_dataset()
    model = Model([2, 4, 1], hidden_activation="tanh", learning_rate=1.2, n_epochs=2000,
                  init="scaled", seed=0, backend=backend)
    assert model.fit(X, Y) is model
    assert model.score(X, Y) > 0.85
    assert model.costs_[-1] < model.costs_[0] / 2
    assert {k: v.shape for k, v in model.parameters_.items()} == {
        "W1": (4, 2), "b1": (4, 1), "W2": (1, 4), "b2": (1, 1)}


def test_predictions_shapes_and_values(backend):
    X, Y = make_classification(5, 64, n_y=2, seed=3)
    model = Model([5, 8, 2], learning_rate=0.1, n_epochs=20, seed=0, backend=backend).fit(X, Y)
    P = model.predict_proba(X[:, :7])
    assert P.shape == (2, 7) and np.all((P > 0) & (P < 1))
    np.testing.assert_array_equal(model.predict(X[:, :7]), (P > 0.5).astype(float))
    assert model.score(X, Y) == np.mean(model.predict(X) == Y)


def test_fit_starts_from_a_copy_of_given_parameters(backend):
    model, X, Y = small(backend)
    start = R.initialize_parameters([3, 5, 1], seed=9)
    original = {k: v.copy() for k, v in start.items()}
    model.fit(X, Y, parameters=start)
    for k in start:
        np.testing.assert_array_equal(start[k], original[k])  # not modified
    again = Model(**model.get_params()).fit(X, Y, parameters=start)
    for k in start:
        np.testing.assert_array_equal(again.parameters_[k], model.parameters_[k])
    assert not np.array_equal(model.parameters_["W1"], original["W1"])


def test_one_dimensional_Y_and_integer_or_boolean_data_are_accepted():
    model, X, Y = small()
    reference = Model(**model.get_params()).fit(X, Y)
    model.fit(X, Y.ravel().astype(bool))
    np.testing.assert_array_equal(model.parameters_["W1"], reference.parameters_["W1"])
    assert model.score(X, Y.ravel()) == reference.score(X, Y)
    Xi = np.round(X * 3).astype(np.int32)
    model.fit(Xi, Y.astype(np.int64))
    assert model.parameters_["W1"].dtype == np.float64


def test_gradients_are_the_reference_grads(backend):
    model, X, Y = small(backend)
    model.fit(X, Y)
    grads = model.gradients(X, Y.ravel())
    AL, caches = R.L_model_forward(X, model.parameters_, "tanh")
    expected = R.L_model_backward(AL, Y, caches, "tanh", output_start="dZ")
    assert grads.keys() == expected.keys() == {"dW1", "db1", "dW2", "db2", "dA0", "dA1"}
    for key in expected:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-10, atol=1e-14)


def test_callback_sees_progress_in_chunks(backend):
    model, X, Y = small(backend, n_epochs=95, cost_every=10)
    seen = []
    model.fit(X, Y, callback=lambda n_iter, cost: seen.append((n_iter, cost)))
    counts = [n for n, _ in seen]
    assert counts == sorted(set(counts)) and counts[0] == 1 and counts[-1] == 95
    assert seen[-1][1] == model.costs_[-1]
    assert [cost for _, cost in seen[:3]] == [model.costs_[0]] * 3  # costs every 10 iterations


def test_float32_model_computes_in_float32(backend):
    model, X, Y = small(backend, dtype="float32")
    model.fit(X, Y)
    assert {v.dtype for v in model.parameters_.values()} == {np.dtype(np.float32)}
    assert model.predict_proba(X).dtype == np.float32


# ---------------------------------------------------------------------------
# scikit-learn's rules, repr
# ---------------------------------------------------------------------------


def test_constructor_stores_hyperparameters_only():
    model = Model([2, 3, 1], learning_rate=0.1)
    assert vars(model) == model.get_params()
    assert not [k for k in vars(model) if k.endswith("_")]
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        model.predict(np.zeros((2, 3)))


def test_get_params_and_set_params():
    model = Model([2, 3, 1])
    assert model.get_params() == {
        "layer_dims": [2, 3, 1], "hidden_activation": "relu", "output_activation": "sigmoid",
        "learning_rate": 0.0075, "n_epochs": 3000, "init": "he", "seed": None,
        "dtype": "float64", "backend": "numba", "cost_every": 100, "optimizer": "gd",
        "batch_size": None, "shuffle": True, "beta": 0.9, "beta1": 0.9, "beta2": 0.999,
        "epsilon": 1e-8, "decay_rate": 0.0, "time_interval": None, "l2": 0.0,
        "keep_prob": 1.0, "early_stopping": False, "patience": 10, "tol": 1e-4,
        "validation_fraction": 0.1, "n_threads": None, "batch_norm": False,
        "batch_norm_momentum": 0.9, "batch_norm_epsilon": 1e-5}
    assert model.set_params(learning_rate=0.5, seed=3) is model
    assert (model.learning_rate, model.seed) == (0.5, 3)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        model.set_params(learning_rate=-1, seed=4)
    assert (model.learning_rate, model.seed) == (0.5, 3)  # unchanged
    with pytest.raises(ValueError, match="'alpha' is not a parameter of Model"):
        model.set_params(alpha=1)


def test_repr_shows_what_differs_from_the_defaults():
    assert repr(Model([2, 3, 1])) == "Model(layer_dims=[2, 3, 1])"
    assert repr(Model([2, 4, 1], hidden_activation="tanh", seed=0, backend="numpy")) == (
        "Model(layer_dims=[2, 4, 1], hidden_activation='tanh', seed=0, backend='numpy')")


# ---------------------------------------------------------------------------
# Bad input: the constructor
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(layer_dims=[2]), ValueError, "layer_dims must have at least 2 entries"),
    (dict(layer_dims=[2, 0, 1]), ValueError, r"layer_dims\[1\] must be a positive integer; got 0"),
    (dict(layer_dims=[2, 2.5, 1]), TypeError, r"layer_dims\[1\] must be a positive integer"),
    (dict(layer_dims="2,4,1"), TypeError, "layer_dims must be a sequence of positive integers"),
    (dict(hidden_activation="softmax"), ValueError, r"hidden_activation must be one of \[.*\]; got 'softmax'"),
    (dict(hidden_activation=None), TypeError, "hidden_activation must be a string"),
    (dict(output_activation="tanh"), ValueError, r"output_activation must be one of \[.*\]; got 'tanh'"),
    (dict(learning_rate=0), ValueError, "learning_rate must be a finite number > 0; got 0"),
    (dict(learning_rate=-0.1), ValueError, "learning_rate must be a finite number > 0"),
    (dict(learning_rate=np.nan), ValueError, "learning_rate must be a finite number > 0"),
    (dict(learning_rate="0.1"), TypeError, "learning_rate must be a positive number"),
    (dict(n_epochs=0), ValueError, "n_epochs must be a positive integer; got 0"),
    (dict(n_epochs=10.0), TypeError, "n_epochs must be a positive integer"),
    (dict(init="zeros"), ValueError, r"init must be one of \['he', 'xavier', 'scaled'\]; got 'zeros'"),
    (dict(seed=-1), ValueError, "seed must be None or an integer >= 0; got -1"),
    (dict(seed="a"), TypeError, "seed must be None or an integer >= 0"),
    (dict(dtype="int64"), TypeError, "dtype must be float32 or float64; got int64"),
    (dict(dtype="float16"), TypeError, "dtype must be float32 or float64; got float16"),
    (dict(backend="torch"), ValueError, r"backend must be one of \['numba', 'numpy'\]; got 'torch'"),
    (dict(cost_every=0), ValueError, "cost_every must be a positive integer; got 0"),
])
def test_bad_hyperparameters_fail_in_the_constructor(kwargs, error, match):
    kwargs = {"layer_dims": [2, 3, 1], **kwargs}
    with pytest.raises(error, match=match):
        Model(**kwargs)


# ---------------------------------------------------------------------------
# Bad input: fit, before any work
# ---------------------------------------------------------------------------


def good():
    X = np.random.default_rng(0).standard_normal((2, 5))
    Y = np.array([[0.0, 1.0, 1.0, 0.0, 1.0]])
    return X, Y


def with_nan(a, index, value=np.nan):
    a = a.copy()
    a[index] = value
    return a


BAD_FIT_INPUTS = {
    "X with the wrong number of rows": (
        lambda X, Y: (X.T, Y.T.ravel()), ValueError, r"X must have shape \(2, m\).*got shape \(5, 2\)"),
    "Y with a mismatched m": (
        lambda X, Y: (X, Y[:, :4]), ValueError, r"Y must have shape \(1, 5\).*got shape \(1, 4\)"),
    "Y with too many rows": (
        lambda X, Y: (X, np.vstack([Y, Y])), ValueError, r"Y must have shape \(1, 5\).*got shape \(2, 5\)"),
    "m = 0": (
        lambda X, Y: (X[:, :0], Y[:, :0]), ValueError, r"X must have at least one row and one column.*\(2, 0\)"),
    "1-D X": (
        lambda X, Y: (X[0], Y), ValueError, r"X must be a 2-D array of shape \(2, m\)"),
    "NaN in X": (
        lambda X, Y: (with_nan(X, (1, 2)), Y), ValueError, r"X must be finite; found nan at index \(1, 2\)"),
    "infinity in X": (
        lambda X, Y: (with_nan(X, (0, 4), np.inf), Y), ValueError, r"X must be finite; found inf at index \(0, 4\)"),
    "NaN in Y": (
        lambda X, Y: (X, with_nan(Y, (0, 1))), ValueError, r"Y must hold labels 0 or 1 only; found nan"),
    "label 2": (
        lambda X, Y: (X, with_nan(Y, (0, 3), 2)), ValueError, r"Y must hold labels 0 or 1 only; found 2.0 at index \(0, 3\)"),
    "label 0.5": (
        lambda X, Y: (X, with_nan(Y, (0, 0), 0.5)), ValueError, r"Y must hold labels 0 or 1 only; found 0.5"),
    "complex X": (
        lambda X, Y: (X + 1j, Y), TypeError, "X must be a real numeric array.*got dtype complex128"),
    "object X": (
        lambda X, Y: (X.astype(object), Y), TypeError, "X must be a real numeric array.*got dtype object"),
    "string Y": (
        lambda X, Y: (X, Y.astype(str)), TypeError, "Y must be a real numeric array.*got dtype <U"),
}


@pytest.mark.parametrize("case", list(BAD_FIT_INPUTS))
def test_bad_data_fails_before_any_work(case, backend, monkeypatch):
    make, error, match = BAD_FIT_INPUTS[case]
    X, Y = make(*good())
    model = Model([2, 3, 1], n_epochs=5, backend=backend)
    before = state(model)
    monkeypatch.setattr(model_module, "run_in_chunks", pytest.fail)  # no training may start
    with pytest.raises(error, match=match):
        model.fit(X, Y)
    assert_same_state(model, before)


def parameters_with(**changes):
    p = R.initialize_parameters([2, 3, 1], seed=0)
    p.update(changes)
    return {k: v for k, v in p.items() if v is not None}


@pytest.mark.parametrize("parameters,error,match", [
    (parameters_with(W1=np.ones((3, 3))), ValueError, r"parameters have layer sizes \[3, 3, 1\]; expected layer_dims \[2, 3, 1\]"),
    (parameters_with(b1=np.ones((1, 3))), ValueError, r"parameters\['b1'\] must have shape \(3, 1\) to match W1; got shape \(1, 3\)"),
    (parameters_with(W2=np.ones((1, 4))), ValueError, r"parameters\['W2'\] must have shape \(n_2, 3\) to follow W1; got shape \(1, 4\)"),
    (parameters_with(b2=None), ValueError, r"parameters must hold W1, b1, ..., WL, bL.*got keys \['W1', 'W2', 'b1'\]"),
    (parameters_with(W1=np.full((3, 2), np.nan)), ValueError, r"parameters\['W1'\] must be finite; found nan"),
    (parameters_with(W1=np.ones((3, 2), dtype=complex)), TypeError, r"parameters\['W1'\] must be a real numeric array"),
    ([np.ones((3, 2))], TypeError, "parameters must be a dict"),
])
def test_bad_initial_parameters(parameters, error, match, monkeypatch):
    X, Y = good()
    model = Model([2, 3, 1], n_epochs=5, backend="numpy")
    monkeypatch.setattr(model_module, "run_in_chunks", pytest.fail)
    with pytest.raises(error, match=match):
        model.fit(X, Y, parameters=parameters)
    assert not hasattr(model, "parameters_")


def test_bad_callback_and_hyperparameters_changed_after_construction():
    X, Y = good()
    model = Model([2, 3, 1], n_epochs=5, backend="numpy")
    with pytest.raises(TypeError, match="callback must be callable or None; got 3"):
        model.fit(X, Y, callback=3)
    model.learning_rate = -1  # set directly, bypassing set_params
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0; got -1"):
        model.fit(X, Y)
    assert not hasattr(model, "parameters_")


def test_predict_checks_X_against_the_fitted_network(backend):
    model, X, Y = small(backend)
    model.fit(X, Y)
    with pytest.raises(ValueError, match=r"X must have shape \(3, m\).*got shape \(40, 3\)"):
        model.predict(X.T)
    with pytest.raises(ValueError, match=r"X must be finite"):
        model.predict_proba(with_nan(X, (0, 0)))
    with pytest.raises(ValueError, match=r"Y must have shape \(1, 40\).*got shape \(1, 39\)"):
        model.score(X, Y[:, 1:])
    with pytest.raises(ValueError, match=r"Y must hold labels 0 or 1 only"):
        model.gradients(X, Y * 2)


# ---------------------------------------------------------------------------
# Failed or interrupted fits leave the model as it was
# ---------------------------------------------------------------------------


def diverging(backend):
    """relu with a learning rate of 1e8: the cost overflows after a few dozen steps."""
    X, Y = make_classification(5, 50, seed=0)
    return Model([5, 8, 1], learning_rate=1e8, n_epochs=200, seed=0, backend=backend,
                 cost_every=10), X, Y


def test_divergence_raises_naming_the_iteration_and_keeps_the_model(backend):
    model, X, Y = diverging(backend)
    model.set_params(learning_rate=0.01).fit(X, Y)  # a fitted state to keep
    before = state(model)
    model.set_params(learning_rate=1e8)
    before["learning_rate"] = 1e8
    with pytest.raises(TrainingDivergedError, match=r"training diverged at epoch 21: the cost "
                       r"became NaN or infinite; the model is unchanged") as caught:
        model.fit(X, Y)
    assert_same_state(model, before)
    error = caught.value
    assert (error.iteration, error.n_iter, error.reason) == (21, 20, "nonfinite_cost")
    assert all(np.all(np.isfinite(v)) for v in error.parameters.values())
    assert error.costs.shape == (3,) and np.all(np.isfinite(error.costs))
    # The parameters it keeps are those of 20 clean steps.
    twenty = Model(**{**model.get_params(), "n_epochs": 20}).fit(X, Y)
    for k in twenty.parameters_:
        np.testing.assert_allclose(error.parameters[k], twenty.parameters_[k], rtol=1e-12)


def test_huge_inputs_diverge_at_the_first_update(backend):
    X, Y = make_classification(5, 50, seed=0)
    model = Model([5, 8, 1], learning_rate=1e3, n_epochs=50, seed=0, backend=backend)
    with pytest.raises(TrainingDivergedError, match="at epoch 1:") as caught:
        model.fit(X * 1e150, Y)
    initial = R.initialize_parameters([5, 8, 1], seed=0)
    for k in initial:
        np.testing.assert_array_equal(caught.value.parameters[k], initial[k])
    assert caught.value.n_iter == 0 and not hasattr(model, "parameters_")


def test_both_backends_diverge_alike():
    errors = {}
    for b in BACKENDS:
        model, X, Y = diverging(b)
        with pytest.raises(TrainingDivergedError) as caught:
            model.fit(X, Y)
        errors[b] = caught.value
    assert errors["numpy"].iteration == errors["numba"].iteration
    assert errors["numpy"].n_iter == errors["numba"].n_iter
    assert relative_difference(errors["numba"].parameters, errors["numpy"].parameters) < 1e-10


def test_keyboard_interrupt_in_the_callback_leaves_the_model_unchanged(backend):
    model, X, Y = small(backend, n_epochs=400, cost_every=10)
    model.fit(X, Y)
    before = state(model)
    calls = []

    def interrupt(n_iter, cost):
        calls.append(n_iter)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.set_params(seed=1).fit(X, Y, callback=interrupt)
    before["seed"] = 1
    assert_same_state(model, before)
    assert 0 < calls[-1] < 400


def trainer_class(backend):
    return backends.get(backend).Trainer


def test_keyboard_interrupt_between_training_calls_leaves_the_model_unchanged(backend, monkeypatch):
    model, X, Y = small(backend, n_epochs=400, cost_every=10)
    Trainer = trainer_class(backend)
    run = Trainer.run
    calls = []

    def run_then_interrupt(self, n):
        calls.append(n)
        if len(calls) % 3 == 0:
            raise KeyboardInterrupt
        return run(self, n)

    monkeypatch.setattr(Trainer, "run", run_then_interrupt)
    for fitted in (False, True):
        before = state(model)
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, Y)
        assert_same_state(model, before)
        assert hasattr(model, "parameters_") == fitted
        monkeypatch.setattr(Trainer, "run", run)
        model.fit(X, Y)  # uninterrupted: now fitted
        monkeypatch.setattr(Trainer, "run", run_then_interrupt)
        calls.clear()


def test_numpy_trainer_in_chunks_equals_one_call():
    X, Y = make_classification(3, 20, seed=4)
    p = R.initialize_parameters([3, 4, 1], seed=1)
    whole = NumpyTrainer(p, X, Y, "relu", 0.1, 5, "float64")
    whole.run(37)
    chunks = NumpyTrainer(p, X, Y, "relu", 0.1, 5, "float64")
    for n in (1, 6, 30):
        chunks.run(n)
    assert chunks.n_iter == whole.n_iter == 37
    np.testing.assert_array_equal(chunks.costs, whole.costs)
    for k in p:
        np.testing.assert_array_equal(chunks.parameters[k], whole.parameters[k])


# ---------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_save_load_round_trips_exactly(tmp_path, backend, dtype):
    model, X, Y = small(backend, dtype=dtype, init="xavier")
    model.fit(X, Y)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = Model.load(path)
    assert type(loaded) is Model and repr(loaded) == repr(model)
    assert loaded.get_params() == model.get_params()
    assert loaded.parameters_.keys() == model.parameters_.keys()
    for k, v in model.parameters_.items():
        assert loaded.parameters_[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded.parameters_[k], v)
    np.testing.assert_array_equal(loaded.costs_, model.costs_)
    assert loaded.n_iter_ == model.n_iter_
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left


def test_save_needs_a_fitted_model(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        Model([2, 3, 1]).save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    model, X, Y = small()
    model.fit(X, Y)
    path = tmp_path / "model.npz"
    model.save(path)
    saved = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.set_params(seed=1).fit(X, Y).save(path)
    assert path.read_bytes() == saved
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def saved_arrays(tmp_path):
    model, X, Y = small()
    model.fit(X, Y)
    model.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as archive:
        return dict(archive)


def rewrite(tmp_path, arrays, name="bad.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_load_refuses_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model file '.*nothere.npz' does not exist"):
        Model.load(tmp_path / "nothere.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        Model.load(tmp_path)


def test_load_refuses_foreign_files(tmp_path):
    text = tmp_path / "model.csv"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"model file '.*model.csv' is not an .npz archive"):
        Model.load(text)
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(ValueError, match="is not an .npz archive"):
        Model.load(tmp_path / "array.npy")
    foreign = rewrite(tmp_path, {"X": np.ones((3, 2)), "Y": np.ones(3)})
    with pytest.raises(ValueError, match="is an .npz archive but not a fastbackprop model"):
        Model.load(foreign)
    wrong_marker = rewrite(tmp_path, {**saved_arrays(tmp_path), "format": np.array("other")})
    with pytest.raises(ValueError, match="not a fastbackprop model"):
        Model.load(wrong_marker)


def test_load_refuses_corrupt_files(tmp_path):
    arrays = saved_arrays(tmp_path)
    good = (tmp_path / "good.npz").read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="is corrupt or unreadable"):
        Model.load(truncated)
    flipped = bytearray(good)
    flipped[len(good) // 3: len(good) // 3 + 64] = b"\xff" * 64
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt"):
        Model.load(tmp_path / "flipped.npz")
    cases = {
        "hyperparameters": (np.array("{not json"), "is corrupt: Expecting property name"),
        "W1": (np.ones((5, 2)), r"is corrupt: parameters have layer sizes \[2, 5, 1\]; expected layer_dims \[3, 5, 1\]"),
        "b2": (np.ones((1, 1), dtype=np.float32), "is corrupt: b2 has dtype float32; expected float64"),
        "W2": (np.full((1, 5), np.nan), r"is corrupt: parameters\['W2'\] must be finite"),
    }
    for key, (value, match) in cases.items():
        with pytest.raises(ValueError, match=match):
            Model.load(rewrite(tmp_path, {**arrays, key: value}))
    missing = {k: v for k, v in arrays.items() if k != "b1"}
    with pytest.raises(ValueError, match="is corrupt: 'b1'"):
        Model.load(rewrite(tmp_path, missing))
    hp = json.loads(str(arrays["hyperparameters"]))
    hp["hidden_activation"] = "softmax"
    with pytest.raises(ValueError, match="is corrupt: hidden_activation must be one of"):
        Model.load(rewrite(tmp_path, {**arrays, "hyperparameters": np.array(json.dumps(hp))}))
    with pytest.raises(ValueError, match="has format version 3; this fastbackprop reads up to 2"):
        Model.load(rewrite(tmp_path, {**arrays, "format_version": np.array(3)}))
    objects = tmp_path / "objects.npz"
    np.savez(objects, **{**arrays, "costs_": np.array([None], dtype=object)})
    with pytest.raises(ValueError, match="corrupt or unreadable.*allow_pickle"):
        Model.load(objects)
    assert zipfile.is_zipfile(objects)
