"""The NumPy reference against calculus, against the course's shallow equations,
and against itself column by column."""

import numpy as np
import pytest

from fastbackprop import activations, backends, reference as R
from fastbackprop.datasets import load_planar_dataset
from fastbackprop.layout import Schema

HIDDEN = list(activations.HIDDEN)

# Architectures with 1 to 4 hidden layers, including layers of width 1.
ARCHITECTURES = [
    [3, 4, 1],
    [2, 1, 1],
    [5, 4, 3, 1],
    [4, 3, 1, 2, 1],
    [6, 5, 4, 3, 2, 2],
    [1, 3, 1],
]


def data(layer_dims, m, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((layer_dims[0], m))
    Y = (rng.random((layer_dims[-1], m)) > 0.5).astype(float)
    return X, Y


@pytest.mark.parametrize("output_start", ["dA", "dZ"])
@pytest.mark.parametrize("m", [1, 7])
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("layer_dims", ARCHITECTURES, ids=str)
def test_gradient_check_passes(layer_dims, activation, m, output_start):
    parameters = R.initialize_parameters(layer_dims, init="xavier", seed=1)
    # Non-zero biases so the check also covers db and moves Z off relu's kink.
    for l in range(1, len(layer_dims)):
        parameters[f"b{l}"] += 0.1 * l
    X, Y = data(layer_dims, m)
    difference = R.gradient_check(parameters, X, Y, activation, output_start=output_start)
    assert difference < 1e-7


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "linear", "exp"])
@pytest.mark.parametrize("setting", ["plain", "dropout", "batch norm", "batch norm, dropout"])
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_trainers_unchecked_passes_are_the_public_ones_bit_for_bit(dtype, activation,
                                                                          setting, output):
    """The NumPy trainer runs ``_L_model_forward`` and ``_L_model_backward`` (no checks, g'
    from A where a layer has no dropout); they must give the public functions' bits."""
    dims = [4, 5, 3, 2]
    parameters = R.initialize_parameters(dims, init="xavier", seed=3, dtype=dtype)
    if "batch norm" in setting:
        parameters = R.initialize_batch_norm(parameters, [True, False])
        parameters["gamma1"] += 0.3
    X = data(dims, 9, seed=4)[0].astype(dtype)
    Y = np.abs(data(dims, 9, seed=5)[1]).astype(dtype)
    if output == "softmax":
        Y = np.eye(2, dtype=dtype)[:, np.arange(9) % 2]
    w = np.random.default_rng(6).random(9).astype(dtype)  # as the trainer casts them
    dropout = None
    if "dropout" in setting:
        dropout = R.dropout_masks([1.0, 0.7], [(5, 9), (3, 9)], 0, 2)
    with np.errstate(all="ignore"):
        AL, caches = R.L_model_forward(X, parameters, activation, output, dropout,
                                       training=True)
        AL_u, caches_u = R._L_model_forward(X, parameters, 3, activation, output, dropout,
                                            True, R.BATCH_NORM_EPSILON)
        expected = R.L_model_backward(AL, Y, caches, activation, "dZ", output, l2=0.2,
                                      dropout=dropout, sample_weight=w, input_gradient=False)
        got = R._L_model_backward(AL_u, Y, caches_u, activation, "dZ", output, 0.2, dropout,
                                  w, False)
        schema = Schema.of(parameters)  # and written into views of a flat gradient
        flat = np.zeros(schema.size, dtype=dtype)
        views = schema.unpack(flat, copy=False, prefix="d")
        written = R._L_model_backward(AL_u, Y, caches_u, activation, "dZ", output, 0.2,
                                      dropout, w, False, out=views)
    np.testing.assert_array_equal(AL_u, AL)
    assert AL.dtype == dtype
    assert sorted(got) == sorted(expected) == sorted(written)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
        np.testing.assert_array_equal(written[key], value, err_msg=key)
    for key, view in views.items():  # the parameters' gradients are the views themselves
        if key in written:
            assert written[key] is view, key
    np.testing.assert_array_equal(flat, R.gradients_to_vector(expected, 3, schema).ravel())


def test_gradient_check_catches_a_wrong_derivative(monkeypatch):
    """The check is not vacuous: a backward pass with a wrong g' fails it."""
    layer_dims = [4, 3, 1]
    parameters = R.initialize_parameters(layer_dims, seed=2)
    X, Y = data(layer_dims, 5)
    assert R.gradient_check(parameters, X, Y, "tanh") < 1e-7
    wrong = dict(activations.FUNCTIONS)
    wrong["tanh"] = (activations.tanh, lambda Z: 1 - np.tanh(Z))  # forgot the square
    monkeypatch.setattr(activations, "FUNCTIONS", wrong)
    assert R.gradient_check(parameters, X, Y, "tanh") > 1e-3


def test_gradient_check_catches_a_wrong_bias_gradient(monkeypatch):
    layer_dims = [3, 2, 1]
    parameters = R.initialize_parameters(layer_dims, seed=2)
    X, Y = data(layer_dims, 6)
    original = R.linear_backward

    def without_mean(dZ, cache, *options):
        dA_prev, dW, db = original(dZ, cache, *options)
        return dA_prev, dW, db * dZ.shape[1]  # forgot the 1/m

    monkeypatch.setattr(R, "linear_backward", without_mean)
    assert R.gradient_check(parameters, X, Y, "relu") > 1e-3


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("m", [1, 9])
def test_six_shallow_equations_match_the_L_layer_functions(activation, m):
    layer_dims = [3, 5, 2]
    parameters = R.initialize_parameters(layer_dims, seed=4)
    X, Y = data(layer_dims, m)
    A2, cache = R.forward_propagation(X, parameters, activation)
    shallow = R.backward_propagation(parameters, cache, X, Y, activation)
    AL, caches = R.L_model_forward(X, parameters, activation)
    np.testing.assert_allclose(A2, AL, rtol=1e-14, atol=0)
    for output_start in ("dA", "dZ"):
        deep = R.L_model_backward(AL, Y, caches, activation, output_start)
        for key, value in shallow.items():
            np.testing.assert_allclose(value, deep[key], rtol=1e-10, atol=1e-15, err_msg=key)


@pytest.mark.parametrize("activation", HIDDEN)
def test_one_example_at_a_time_matches_the_vectorised_form(activation):
    layer_dims = [4, 5, 3, 2]
    parameters = R.initialize_parameters(layer_dims, seed=5)
    m = 6
    X, Y = data(layer_dims, m)
    AL, caches = R.L_model_forward(X, parameters, activation)
    grads = R.L_model_backward(AL, Y, caches, activation, "dZ")
    cost = R.compute_cost(AL, Y)
    column_costs = []
    column_grads = []
    for i in range(m):
        x, y = X[:, i:i + 1], Y[:, i:i + 1]
        a, c = R.L_model_forward(x, parameters, activation)
        np.testing.assert_allclose(a, AL[:, i:i + 1], rtol=1e-14, atol=0)
        column_costs.append(R.compute_cost(a, y))
        column_grads.append(R.L_model_backward(a, y, c, activation, "dZ"))
    assert cost == pytest.approx(np.mean(column_costs), rel=1e-13)
    for l in range(1, len(layer_dims)):
        for p in "Wb":
            mean = np.mean([g[f"d{p}{l}"] for g in column_grads], axis=0)
            np.testing.assert_allclose(grads[f"d{p}{l}"], mean, rtol=1e-12, atol=1e-16)
        # dA is per example (no 1/m): column i of the batch's dA is example i's.
        for i in range(m):
            np.testing.assert_allclose(grads[f"dA{l - 1}"][:, i:i + 1],
                                       column_grads[i][f"dA{l - 1}"], rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 3])
def test_every_gradient_has_its_variables_shape_and_dtype(m, dtype):
    layer_dims = [3, 1, 4, 2]
    parameters = R.initialize_parameters(layer_dims, seed=0, dtype=dtype)
    X, Y = data(layer_dims, m)
    X, Y = X.astype(dtype), Y.astype(dtype)
    AL, caches = R.L_model_forward(X, parameters, "relu")
    assert AL.shape == (2, m) and AL.dtype == dtype
    grads = R.L_model_backward(AL, Y, caches, "relu")
    L = len(layer_dims) - 1
    assert set(grads) == {f"d{p}{l}" for l in range(1, L + 1) for p in "Wb"} | {
        f"dA{l}" for l in range(L)}
    for l in range(1, L + 1):
        assert grads[f"dW{l}"].shape == parameters[f"W{l}"].shape
        assert grads[f"db{l}"].shape == (layer_dims[l], 1)  # never rank 1
        assert grads[f"dA{l - 1}"].shape == (layer_dims[l - 1], m)
        for key in (f"dW{l}", f"db{l}", f"dA{l - 1}"):
            assert grads[key].dtype == dtype, key
    new = R.update_parameters(parameters, grads, 0.1)
    for key, value in new.items():
        assert value.shape == parameters[key].shape and value.dtype == dtype


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("output_start", ["dA", "dZ"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["dense", "batch-norm"])
@pytest.mark.parametrize("layer_dims", [[3, 2], [3, 4, 2], [5, 4, 3, 1]], ids=str)
def test_without_the_input_gradient_every_other_gradient_is_the_same(layer_dims, batch_norm,
                                                                     output_start, backend):
    """``input_gradient=False`` (what training asks) drops ``dA0`` alone, in both backends'
    step functions, for ``L = 1`` (where the output layer's ``dA_prev`` is ``dA0``) as for
    deeper networks."""
    steps = backends.get(backend).steps
    parameters = R.initialize_parameters(layer_dims, seed=1)
    if batch_norm:
        parameters = R.initialize_batch_norm(parameters, [True] * (len(layer_dims) - 2))
    X, Y = data(layer_dims, 5)
    AL, caches = R.L_model_forward(X, parameters, "tanh", training=True)
    full = steps.L_model_backward(AL, Y, caches, "tanh", output_start, l2=0.3)
    lean = steps.L_model_backward(AL, Y, caches, "tanh", output_start, l2=0.3,
                                  input_gradient=False)
    assert set(full) - set(lean) == {"dA0"} and set(lean) <= set(full)
    for key, value in lean.items():
        np.testing.assert_array_equal(value, full[key], err_msg=key)


@pytest.mark.parametrize("dtypes", [("float64", "float64"), ("float32", "float32"),
                                    ("float32", "float64"), ("float64", "float32")])
def test_the_linear_step_adds_the_bias_in_the_promoted_dtype(dtypes):
    """``Z = W A_prev + b`` adds ``b`` in place where that keeps NumPy's promotion: the
    same bits as the expression, and a float64 ``b`` still promotes a float32 product."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 3)).astype(dtypes[0])
    A_prev = rng.standard_normal((3, 5)).astype(dtypes[0])
    b = rng.standard_normal((4, 1)).astype(dtypes[1])
    Z, cache = R.linear_forward(A_prev, W, b)
    expected = W @ A_prev + b
    assert Z.dtype == expected.dtype
    np.testing.assert_array_equal(Z, expected)


def test_update_parameters_is_one_gradient_step_and_leaves_the_input_alone():
    parameters = R.initialize_parameters([2, 3, 1], seed=0)
    before = {k: v.copy() for k, v in parameters.items()}
    grads = {f"d{k}": np.full_like(v, 2.0) for k, v in parameters.items()}
    new = R.update_parameters(parameters, grads, 0.25)
    for key, value in parameters.items():
        np.testing.assert_array_equal(value, before[key])
        np.testing.assert_allclose(new[key], before[key] - 0.5, rtol=0, atol=1e-15)


def test_training_on_the_planar_flower_lowers_the_cost_and_learns_it():
    X, Y = load_planar_dataset()
    parameters, costs = R.nn_model(X, Y, n_h=4, num_iterations=5000, seed=3, cost_every=500)
    assert costs[0] == pytest.approx(np.log(2), abs=1e-3)  # W ~ 0.01: AL ~ 0.5
    assert all(b < a for a, b in zip(costs, costs[1:]))
    accuracy = np.mean(R.predict(X, parameters, "tanh") == Y)
    assert accuracy > 0.85
    # A linear model cannot do this: the flower is not linearly separable.
    linear, _ = R.L_layer_model(X, Y, [2, 1], learning_rate=1.0, num_iterations=2000, seed=0)
    assert np.mean(R.predict(X, linear) == Y) < 0.7


def test_L_layer_model_lowers_the_cost_on_the_flower():
    X, Y = load_planar_dataset()
    parameters, costs = R.L_layer_model(X, Y, [2, 8, 4, 1], "tanh", learning_rate=0.3,
                                        num_iterations=3000, seed=0, cost_every=300)
    assert costs[-1] < 0.5 * costs[0]
    assert np.mean(R.predict(X, parameters, "tanh") == Y) > 0.85


def test_zero_initialisation_keeps_hidden_units_identical():
    X, Y = load_planar_dataset()
    zero = {k: np.zeros_like(v) for k, v in R.initialize_parameters([2, 4, 1], seed=0).items()}
    trained, _ = R.L_layer_model(X, Y, [2, 4, 1], "tanh", 0.5, 200, parameters=zero)
    W1 = trained["W1"]
    np.testing.assert_array_equal(W1, np.broadcast_to(W1[0], W1.shape))
    random_trained, _ = R.L_layer_model(X, Y, [2, 4, 1], "tanh", 0.5, 200, seed=0)
    W1 = random_trained["W1"]
    assert np.min(np.abs(W1[:, None, :] - W1[None, :, :]).sum(axis=2)[~np.eye(4, dtype=bool)]) > 1e-3


@pytest.mark.parametrize("init,expected", [("scaled", lambda n: 0.01),
                                           ("he", lambda n: np.sqrt(2 / n)),
                                           ("xavier", lambda n: np.sqrt(1 / n))])
def test_initialisation_schemes_have_their_scale(init, expected):
    parameters = R.initialize_parameters([400, 300, 1], init=init, seed=0)
    assert np.std(parameters["W1"]) == pytest.approx(expected(400), rel=0.02)
    assert not np.any(parameters["b1"])
    again = R.initialize_parameters([400, 300, 1], init=init, seed=0)
    np.testing.assert_array_equal(parameters["W1"], again["W1"])


def test_cost_is_finite_when_probabilities_round_to_0_or_1():
    Y = np.array([[1.0, 0.0, 1.0, 0.0]])
    for dtype in (np.float32, np.float64):
        AL = np.array([[0.0, 1.0, 1.0, 0.0]], dtype=dtype)
        cost = R.compute_cost(AL, Y.astype(dtype))
        assert np.isfinite(cost) and cost > 10
    ZL = np.array([[-800.0, 800.0, 800.0, -800.0]])
    # two confident mistakes of 800 each, two confident hits of 0, over m = 4
    assert R.compute_cost_from_logits(ZL, Y) == pytest.approx(400.0, rel=1e-15)


def test_cost_from_logits_matches_the_course_formula():
    rng = np.random.default_rng(0)
    ZL = rng.standard_normal((3, 11)) * 3
    Y = (rng.random((3, 11)) > 0.5).astype(float)
    AL = 1 / (1 + np.exp(-ZL))
    course = -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / 11
    assert R.compute_cost(AL, Y) == pytest.approx(course, rel=1e-13)
    assert R.compute_cost_from_logits(ZL, Y) == pytest.approx(course, rel=1e-12)


def test_every_batch_is_c_ordered_so_a_full_batch_is_one_unshuffled_batch():
    """``batch_columns``: the columns as NumPy's ``X[:, index]`` selects them, but C-ordered
    (the index gives Fortran order, whose products OpenBLAS's AVX-512 kernels round otherwise);
    all of a C-ordered ``X`` is ``X`` itself, a Fortran-ordered one is copied to C order; a
    sparse ``X`` keeps SciPy's selection."""
    import scipy.sparse as sp

    X = np.random.default_rng(0).standard_normal((5, 53))
    index = np.array([52, 0, 7, 7, 30])
    batch = R.batch_columns(X, index)
    assert batch.flags.c_contiguous and not X[:, index].flags.c_contiguous
    np.testing.assert_array_equal(batch, X[:, index])
    assert R.batch_columns(X) is X
    whole = R.batch_columns(np.asfortranarray(X))
    assert whole.flags.c_contiguous
    np.testing.assert_array_equal(whole, X)
    np.testing.assert_array_equal(R.batch_columns(X, np.arange(53)), R.batch_columns(X))
    S = sp.csc_array(X)
    assert R.batch_columns(S) is S
    np.testing.assert_array_equal(R.batch_columns(S, index).toarray(), X[:, index])
