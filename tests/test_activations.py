import warnings

import numpy as np
import pytest

from fastbackprop import activations

HIDDEN = list(activations.HIDDEN)


@pytest.mark.parametrize("name", HIDDEN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_derivative_matches_finite_differences(name, dtype):
    Z = np.linspace(-4, 4, 81)
    Z = Z[np.abs(Z) > 1e-3]  # away from relu's kink
    h = 1e-6
    numeric = (activations.forward(Z + h, name) - activations.forward(Z - h, name)) / (2 * h)
    np.testing.assert_allclose(activations.derivative(Z, name), numeric, rtol=1e-6, atol=1e-9)
    Zd = Z.astype(dtype)
    assert activations.forward(Zd, name).dtype == dtype
    assert activations.derivative(Zd, name).dtype == dtype


@pytest.mark.parametrize("name", HIDDEN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_derivative_from_A_is_the_derivative_from_Z_bit_for_bit(name, dtype):
    """The NumPy trainer's hidden layers take g' from A = g(Z) (spec's ``derivative_from_A``):
    it must give g'(Z)'s bits, at the edges too (0, -0, subnormals, overflow, inf, NaN)."""
    info = np.finfo(dtype)
    edges = [0.0, -0.0, info.smallest_subnormal, -info.smallest_subnormal, info.tiny, -info.tiny,
             1e-30, -1e-30, 20.0, -20.0, 800.0, -800.0, info.max, -info.max, np.inf, -np.inf,
             np.nan]
    rng = np.random.default_rng(0)
    Z = np.concatenate([np.array(edges, dtype=dtype),
                        rng.standard_normal(2006).astype(dtype) * dtype(4)]).reshape(-1, 17)
    g, from_Z, from_A = activations.FUNCTIONS[name]
    with np.errstate(all="ignore"):
        expected, got = from_Z(Z), from_A(g(Z))
    assert got.dtype == expected.dtype == dtype and got.shape == Z.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_and_warning_free_at_extremes(dtype):
    Z = np.array([-1e4, -800, -50, 0, 50, 800, 1e4], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = activations.sigmoid(Z)
    assert s.dtype == dtype
    assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
    assert s[3] == 0.5 and s[0] == 0 and s[-1] == 1
    np.testing.assert_allclose(s[2], np.exp(np.float64(-50)), rtol=1e-6)


def test_known_values():
    Z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(activations.relu(Z), [0, 0, 3])
    np.testing.assert_allclose(activations.leaky_relu(Z), [-0.02, 0, 3])
    np.testing.assert_array_equal(activations.relu_backward_factor(Z), [0, 0, 1])
    np.testing.assert_allclose(activations.leaky_relu_backward_factor(Z), [0.01, 0.01, 1])
    np.testing.assert_allclose(activations.tanh(Z), np.tanh(Z))


@pytest.mark.parametrize("bad", ["softmax", "ReLU", ""])
def test_unknown_activation_names_the_choices(bad):
    with pytest.raises(ValueError, match="activation must be one of .*'relu'"):
        activations.forward(np.zeros(2), bad)


def test_non_string_activation_is_a_type_error():
    with pytest.raises(TypeError, match="activation must be a string"):
        activations.derivative(np.zeros(2), 3)
