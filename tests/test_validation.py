"""Bad input gets a clear error naming the argument and what was expected."""

import numpy as np
import pytest

from fastbackprop import reference as R

GOOD_DIMS = [2, 3, 1]


def good():
    X = np.random.default_rng(0).standard_normal((2, 5))
    Y = np.array([[0.0, 1.0, 1.0, 0.0, 1.0]])
    return X, Y


def train(X, Y, layer_dims=GOOD_DIMS, **kw):
    return R.L_layer_model(X, Y, layer_dims, num_iterations=2, **kw)


def test_X_with_the_wrong_number_of_rows():
    X, Y = good()
    with pytest.raises(ValueError, match=r"X must have shape \(2, m\).*got shape \(5, 2\)"):
        train(X.T, Y)


def test_Y_with_a_mismatched_m():
    X, Y = good()
    with pytest.raises(ValueError, match=r"Y must have shape \(1, 5\).*got shape \(1, 4\)"):
        train(X, Y[:, :4])


def test_one_dimensional_X():
    X, Y = good()
    with pytest.raises(ValueError, match=r"X must be a 2-D array of shape \(2, m\).*got shape \(10,\)"):
        train(X.ravel(), Y)


def test_empty_X():
    with pytest.raises(ValueError, match=r"X must have at least one row and one column.*\(2, 0\)"):
        train(np.zeros((2, 0)), np.zeros((1, 0)))


@pytest.mark.parametrize("label", [2.0, -1.0, 0.5])
def test_labels_outside_0_1(label):
    X, Y = good()
    Y[0, 3] = label
    with pytest.raises(ValueError, match=rf"Y must hold labels 0 or 1 only; found {label} at index \(0, 3\)"):
        train(X, Y)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_X(value):
    X, Y = good()
    X[1, 2] = value
    with pytest.raises(ValueError, match=r"X must be finite; found .* at index \(1, 2\)"):
        train(X, Y)


@pytest.mark.parametrize("dims,error,match", [
    ([2], ValueError, "at least 2 entries"),
    ([2, 0, 1], ValueError, r"layer_dims\[1\] must be a positive integer"),
    ([2, 3.5, 1], TypeError, r"layer_dims\[1\] must be a positive integer"),
    ([2, True, 1], TypeError, r"layer_dims\[1\]"),
    ("2,3,1", TypeError, "sequence of positive integers"),
    (5, TypeError, "sequence of positive integers"),
])
def test_bad_layer_dims(dims, error, match):
    with pytest.raises(error, match=match):
        R.initialize_parameters(dims)


def test_layer_dims_that_do_not_fit_the_data():
    X, Y = good()
    with pytest.raises(ValueError, match=r"X must have shape \(3, m\)"):
        train(X, Y, layer_dims=[3, 3, 1])
    with pytest.raises(ValueError, match=r"Y must have shape \(2, 5\)"):
        train(X, Y, layer_dims=[2, 3, 2])


def test_unknown_activation():
    X, Y = good()
    with pytest.raises(ValueError, match=r"hidden_activation must be one of \['sigmoid', 'tanh', 'relu', 'leaky_relu', 'identity'\]; got 'softmax'"):
        train(X, Y, hidden_activation="softmax")
    p = R.initialize_parameters(GOOD_DIMS)
    with pytest.raises(ValueError, match="activation must be one of"):
        R.linear_activation_forward(X, p["W1"], p["b1"], "swish")


@pytest.mark.parametrize("bad", [0, -0.1, np.nan, np.inf])
def test_bad_learning_rate(bad):
    X, Y = good()
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        train(X, Y, learning_rate=bad)


def test_unknown_init_and_dtype():
    with pytest.raises(ValueError, match=r"init must be one of \['he', 'xavier', 'scaled'\]; got 'zeros'"):
        R.initialize_parameters(GOOD_DIMS, init="zeros")
    with pytest.raises(TypeError, match="dtype must be float32 or float64; got int64"):
        R.initialize_parameters(GOOD_DIMS, dtype=np.int64)


@pytest.mark.parametrize("bad", [np.array([[1 + 2j, 0]]), np.array([["a", "b"]]), np.array([[None, 1]], dtype=object)])
def test_non_real_X_is_a_type_error(bad):
    with pytest.raises(TypeError, match="X must be a real numeric array.*got dtype"):
        R.L_layer_model(bad, [[0, 1]], [1, 1], num_iterations=1)


def test_integer_and_boolean_inputs_are_cast():
    X = np.array([[0, 1, 2, 3]])
    Y = np.array([[False, True, True, True]])
    parameters, costs = R.L_layer_model(X, Y, [1, 2, 1], num_iterations=3, seed=0)
    assert parameters["W1"].dtype == np.float64 and np.isfinite(costs[0])


def test_linear_step_shape_errors_name_the_argument():
    p = R.initialize_parameters([4, 3, 1])
    A_prev = np.ones((4, 6))
    with pytest.raises(ValueError, match=r"A_prev must have shape \(4, m\).*got shape \(3, 6\)"):
        R.linear_forward(np.ones((3, 6)), p["W1"], p["b1"])
    with pytest.raises(ValueError, match=r"b must be a 2-D array of shape \(3, 1\); got shape \(3,\)"):
        R.linear_forward(A_prev, p["W1"], p["b1"].ravel())
    _, cache = R.linear_forward(A_prev, p["W1"], p["b1"])
    with pytest.raises(ValueError, match=r"dZ must have shape \(3, 6\).*got shape \(3, 5\)"):
        R.linear_backward(np.ones((3, 5)), cache)


def test_parameter_dicts_are_checked():
    p = R.initialize_parameters([4, 3, 1])
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match=r"parameters\['b1'\] must have shape \(3, 1\) to match W1; got shape \(1, 3\)"):
        R.L_model_forward(X, {**p, "b1": p["b1"].T})
    with pytest.raises(ValueError, match=r"parameters\['W2'\] must have shape \(n_2, 3\) to follow W1; got shape \(1, 4\)"):
        R.L_model_forward(X, {**p, "W2": np.ones((1, 4))})
    with pytest.raises(ValueError, match=r"must hold W1, b1, ..., WL, bL.*got keys \['W1', 'W2', 'b1'\]"):
        R.L_model_forward(X, {k: v for k, v in p.items() if k != "b2"})
    with pytest.raises(TypeError, match="parameters must be a dict"):
        R.L_model_forward(X, [p["W1"], p["b1"]])
    with pytest.raises(ValueError, match=r"grads\['dW1'\] must have the shape of W1"):
        R.update_parameters(p, {"dW1": np.ones((4, 3)), "db1": p["b1"], "dW2": p["W2"], "db2": p["b2"]}, 0.1)
