"""The output layers (sigmoid, softmax, linear, exp): calculus, kernels against the
reference, whole-loop training, labels, and the Model's predictions and scores.

Every test is parametrised over the table ``spec.OUTPUTS`` (or states why it
covers one entry), so a new output layer is tested by adding its entry.
"""

import numpy as np
import pytest

from conftest import DTYPES, assert_close, backend

from fastbackprop import (Model, TrainingDivergedError, activations, backends, outputs,
                          reference as R, spec)
from fastbackprop.validation import check_labels

K = backend("numba")
OUTPUTS = list(spec.OUTPUTS)
HIDDEN = list(activations.HIDDEN)

#: The smallest output width each output layer takes, and a wide one.
WIDTHS = {"sigmoid": (1, 3), "softmax": (2, 10), "linear": (1, 3), "exp": (1, 3)}


def labels(output, n_L, m, rng, dtype=np.float64):
    """Random labels of an output layer, ``(n_L, m)``."""
    if output == "softmax":
        return np.eye(n_L, dtype=dtype)[:, rng.integers(0, n_L, m)]
    if output == "linear":
        return rng.standard_normal((n_L, m)).astype(dtype)
    if output == "exp":  # counts, zeros among them (y log y is 0 there)
        return rng.poisson(1.5, (n_L, m)).astype(dtype)
    return (rng.random((n_L, m)) > 0.5).astype(dtype)


def network(layer_dims, m, output, dtype=np.float64, seed=0, scale=1.0):
    parameters = R.initialize_parameters(layer_dims, "xavier", seed=seed, dtype=dtype)
    for l in range(1, len(layer_dims)):
        parameters[f"W{l}"] *= dtype(scale)
        parameters[f"b{l}"] += dtype(0.1 * l)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((layer_dims[0], m)).astype(dtype)
    return parameters, X, labels(output, layer_dims[-1], m, rng, dtype)


# ---------------------------------------------------------------------------
# The reference against calculus
# ---------------------------------------------------------------------------

GRADCHECK_ARCHITECTURES = [[3, 4], [2, 1], [5, 4, 3], [4, 3, 1, 2], [6, 5, 4, 3, 2]]


@pytest.mark.parametrize("output_start", ["dA", "dZ"])
@pytest.mark.parametrize("m", [1, 7])
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("hidden", GRADCHECK_ARCHITECTURES, ids=str)
@pytest.mark.parametrize("output", OUTPUTS)
def test_gradient_check_passes_for_every_output_layer(output, hidden, activation, m,
                                                      output_start):
    for n_L in WIDTHS[output]:
        parameters, X, Y = network(hidden + [n_L], m, output, seed=1)
        difference = R.gradient_check(parameters, X, Y, activation, output_start=output_start,
                                      output_activation=output)
        assert difference < 1e-7, (n_L, difference)


def kernels_gradient_check(theta, X, Y, dims, activation, output, epsilon=1e-6):
    """:func:`R.gradient_check` for the kernels' compiled pass (``gradient_sums``, what the
    training loop and scikit-learn's L-BFGS evaluate): its gradient against centred
    differences of its own cost, both divided by ``m``."""
    gradient_sums = backends.get("numba").gradient_sums
    grad, _ = gradient_sums(theta, X, Y, dims, activation, output)
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = epsilon
        numeric[i] = (gradient_sums(theta + e, X, Y, dims, activation, output)[1]
                      - gradient_sums(theta - e, X, Y, dims, activation, output)[1]) / (2 * epsilon)
    return float(np.linalg.norm(grad - numeric) / (np.linalg.norm(grad) + np.linalg.norm(numeric)))


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("output", OUTPUTS)
def test_the_kernels_gradient_check_passes_for_every_output_layer(output, activation):
    from fastbackprop.kernels import pack

    for dims, m in (([3, 4, WIDTHS[output][0]], 1), ([5, 4, 3, WIDTHS[output][1]], 7)):
        parameters, X, Y = network(dims, m, output, seed=1)
        theta = pack(parameters, dims, np.float64)
        difference = kernels_gradient_check(theta, X, Y, dims, activation, output)
        assert difference < 1e-7, (dims, difference)


@pytest.mark.slow
def test_the_kernels_gradient_check_catches_a_wrong_derivative():
    """Not vacuous: with identity's g' doubled in the kernels, the compiled pass fails the
    check. (Slow: the patched table needs a fresh process and a cold compile, no cache.)"""
    script = (
        "import numpy as np\n"
        "from fastbackprop.kernels import scalar\n"
        "def doubled(fty):\n"
        "    g, _ = scalar._identity_kernels(fty)\n"
        "    two = fty(2.0)\n"
        "    return g, lambda code, a: two\n"
        "scalar.ACTIVATION_KERNELS[scalar.IDENTITY] = doubled\n"
        "import sys; sys.path.insert(0, 'tests')\n"
        "from test_outputs import network, kernels_gradient_check\n"
        "from fastbackprop.kernels import pack\n"
        "parameters, X, Y = network([5, 4, 3, 2], 7, 'linear', seed=1)\n"
        "theta = pack(parameters, [5, 4, 3, 2], np.float64)\n"
        "print(kernels_gradient_check(theta, X, Y, [5, 4, 3, 2], 'identity', 'linear'))\n")
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, FASTBACKPROP_CACHE="0"))
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) > 1e-3


@pytest.mark.parametrize("output", OUTPUTS)
def test_gradient_check_catches_a_wrong_output_derivative(output, monkeypatch):
    """The check is not vacuous: dropping the output's chain rule (or, for the
    linear output whose g' is 1, halving dA_L) fails it."""
    parameters, X, Y = network([4, 3, WIDTHS[output][1]], 5, output, seed=2)
    assert R.gradient_check(parameters, X, Y, "tanh", output_activation=output) < 1e-7
    entry = outputs.FUNCTIONS[output]
    if output == "linear":
        wrong = entry._replace(dA=lambda AL, Y: (AL - Y) / 2)
    else:
        wrong = entry._replace(backward=lambda dA, Z: dA)
    monkeypatch.setitem(outputs.FUNCTIONS, output, wrong)
    assert R.gradient_check(parameters, X, Y, "tanh", output_activation=output) > 1e-3


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_chain_rule_start_equals_the_shortcut(output):
    """dA_L through the output activation (softmax: its Jacobian) equals dZ_L = A_L - Y."""
    parameters, X, Y = network([4, 5, WIDTHS[output][1]], 9, output, seed=3)
    AL, caches = R.L_model_forward(X, parameters, "relu", output)
    general = R.L_model_backward(AL, Y, caches, "relu", "dA", output)
    shortcut = R.L_model_backward(AL, Y, caches, "relu", "dZ", output)
    for key in shortcut:
        np.testing.assert_allclose(general[key], shortcut[key], rtol=1e-12, atol=1e-14)


def test_softmax_is_stable_and_sums_to_one_per_column():
    Z = np.array([[1000.0, -1000.0, 0.0], [1001.0, -1002.0, 0.0], [999.0, -1001.0, 0.0]])
    A = outputs.softmax(Z)
    assert np.all(np.isfinite(A))
    np.testing.assert_allclose(A.sum(axis=0), 1.0, rtol=1e-15)
    np.testing.assert_allclose(A[:, 2], 1 / 3)
    expected = np.exp([0.0, 1.0, -1.0]) / np.exp([0.0, 1.0, -1.0]).sum()
    np.testing.assert_allclose(A[:, 0], expected, rtol=1e-15)


@pytest.mark.parametrize("output", OUTPUTS)
def test_costs_from_logits_equal_costs_from_outputs_and_stay_finite(output):
    _, _, Y = network([2, WIDTHS[output][1]], 6, output)
    rng = np.random.default_rng(4)
    ZL = rng.standard_normal(Y.shape)
    AL = outputs.FUNCTIONS[output].forward(ZL)
    assert R.compute_cost_from_logits(ZL, Y, output) == pytest.approx(
        R.compute_cost(AL, Y, output), rel=1e-12)
    huge = ZL * 1e3  # |z| far past where A_L rounds to 0 or 1
    if output == "exp":  # e^z overflows for z > 709, and the cost is infinite: z << 0 only
        huge = -np.abs(huge)
        with np.errstate(over="ignore"):
            assert R.compute_cost_from_logits(-huge, Y, output) == np.inf
    assert np.isfinite(R.compute_cost_from_logits(huge, Y, output))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_forward_with_cost_is_forward_and_cost_from_logits_bit_for_bit(output, dtype, weighted):
    """The NumPy trainer takes ``A_L`` and the cost from one ``forward_with_cost`` (softmax:
    one ``exp`` pass for both); its bits must be ``forward``'s and ``cost_from_logits``'s,
    for ordinary logits, huge ones and a column of equal ones, at both widths."""
    entry = outputs.FUNCTIONS[output]
    rng = np.random.default_rng(5)
    for n_L in WIDTHS[output]:
        Y = labels(output, n_L, 7, rng, dtype)
        w = rng.random(7).astype(dtype) if weighted else None
        ZL = rng.standard_normal((n_L, 7)).astype(dtype) * dtype(3)
        huge = ZL * dtype(1e3) if output != "exp" else -np.abs(ZL * dtype(1e3))
        huge[:, 0] = 2  # a column whose logits are all equal
        for Z in (ZL, huge):
            with np.errstate(all="ignore"):
                A, J = entry.forward_with_cost(Z, Y, w)
                np.testing.assert_array_equal(A, entry.forward(Z))
                assert A.dtype == dtype
                expected = entry.cost_from_logits(Z, Y, w)
            assert J == expected or (np.isnan(J) and np.isnan(expected))
            assert np.asarray(J).dtype == np.asarray(expected).dtype


# ---------------------------------------------------------------------------
# Kernels against the reference
# ---------------------------------------------------------------------------

# (n_{L-1}, m): m = 1, odd sizes, products by BLAS for n_L = 10 and, on AVX2 targets, by
# loops above SMALL_GEMM for n_L = 1 (see passes.by_loops).
OUTPUT_SHAPES = [(1, 1), (3, 1), (4, 7), (13, 33), (65, 31), (64, 256), (3, 3001)]


def output_layer_shapes(output):
    return [(n_L, k, m) for n_L in WIDTHS[output] for k, m in OUTPUT_SHAPES]


def test_output_shapes_cross_the_blas_switch():
    """The output layer's product ``W A_prev`` takes every route of ``passes.gemm`` on this CPU
    (the loops above ``SMALL_GEMM`` on AVX2 targets only: ``_jit.SMALL_OPERAND_BY_VECTOR_BYTES``)."""
    from test_kernels import product_route

    from fastbackprop.kernels.passes import SMALL_OPERAND

    narrow = {"small operand"} if SMALL_OPERAND else set()
    assert {product_route(n, k, m, n * k) for n in (1, 10) for k, m in OUTPUT_SHAPES} == {
        "small", "blas"} | narrow


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_output_kernels_equal_the_reference(output, dtype):
    rng = np.random.default_rng(5)
    for n_L, k, m in output_layer_shapes(output) + [(10, 64, 256)] * (output == "softmax"):
        A_prev = rng.standard_normal((k, m)).astype(dtype)
        W = (rng.standard_normal((n_L, k)) * 2 / np.sqrt(k)).astype(dtype)
        b = rng.standard_normal((n_L, 1)).astype(dtype)
        Y = labels(output, n_L, m, rng, dtype)
        shape = f"n_L={n_L}, k={k}, m={m}"
        A, cache = K.linear_activation_forward(A_prev, W, b, output)
        A_ref, cache_ref = R.linear_activation_forward(A_prev, W, b, output)
        assert A.dtype == dtype
        assert_close(A, A_ref, dtype, factor=10, err_msg=shape)
        ZL = cache_ref[1]
        for got, expected in ((K.compute_cost_from_logits(ZL, Y, output),
                               R.compute_cost_from_logits(ZL, Y, output)),
                              (K.compute_cost(A_ref, Y, output), R.compute_cost(A_ref, Y, output))):
            assert got == pytest.approx(expected, rel=100 * TOL[dtype]), shape
        assert_close(K.probabilities(A_prev, {"W1": W, "b1": b}, "relu", output), A_ref, dtype,
                     factor=10, err_msg=shape)


TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("output_start", ["dA", "dZ"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_step_functions_with_each_output_equal_the_reference(output, dtype, output_start):
    for layer_dims, m in (([5, 7, WIDTHS[output][0]], 1), ([5, 7, 3, WIDTHS[output][1]], 37),
                          ([20, 64, 64, WIDTHS[output][1]], 256)):
        parameters, X, Y = network(layer_dims, m, output, dtype)
        AL, caches = K.L_model_forward(X, parameters, "tanh", output)
        AL_ref, caches_ref = R.L_model_forward(X, parameters, "tanh", output)
        assert_close(AL, AL_ref, dtype, factor=10, err_msg="AL")
        grads = K.L_model_backward(AL_ref, Y, caches_ref, "tanh", output_start, output)
        grads_ref = R.L_model_backward(AL_ref, Y, caches_ref, "tanh", output_start, output)
        for key in grads_ref:
            assert grads[key].dtype == dtype, key
            assert_close(grads[key], grads_ref[key], dtype, factor=100, err_msg=key)
        prediction = K.predict(X, parameters, "tanh", output)
        expected = R.predict(X, parameters, "tanh", output)
        if spec.OUTPUTS[output].regression:
            assert_close(prediction, expected, dtype, factor=10)
        else:
            np.testing.assert_array_equal(prediction, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_extreme_logits_give_finite_costs_and_gradients(output, dtype):
    """|z| >= 100: the output saturates, the cost and dZ_L stay finite and right. (exp: z
    <= -100, where A_L rounds to 0; e^z overflows for a large positive z, and so does its
    cost, which training stops on: test_an_overflowing_exp_output_is_a_divergence.)"""
    parameters, X, Y = network([3, 4, WIDTHS[output][1]], 6, output, dtype, scale=300.0)
    if output == "exp":  # relu's A >= 0: every z <= -100
        parameters["W2"] = -np.abs(parameters["W2"])
        parameters["b2"] = -np.abs(parameters["b2"]) - dtype(100)
    AL, caches = K.L_model_forward(X * dtype(3), parameters, "relu", output)
    ZL = caches[-1][1]
    assert np.max(np.abs(ZL)) >= 100
    assert np.all(np.isfinite(AL))
    cost = K.compute_cost_from_logits(ZL, Y, output)
    expected = R.compute_cost_from_logits(ZL.astype(np.float64), Y.astype(np.float64), output)
    assert np.isfinite(cost) and cost == pytest.approx(expected, rel=100 * TOL[dtype])
    grads = K.L_model_backward(AL, Y, caches, "relu", "dZ", output)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    result = K.train(parameters, X * dtype(3), Y, "relu", 1e-4, 3, 1, output_activation=output)
    assert result.status == "ok" and np.all(np.isfinite(result.costs))


# ---------------------------------------------------------------------------
# Whole-loop training
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gram", [False, True], ids=["direct", "gram"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_trainer_with_each_output_equals_K_reference_steps(output, dtype, gram):
    factor = {np.float64: 100, np.float32: 10}[dtype]
    for layer_dims, m in (([5, 7, 3, WIDTHS[output][1]], 37), ([3, WIDTHS[output][0]], 1),
                          ([300, 20, WIDTHS[output][1]], 41), ([40, WIDTHS[output][1]], 9)):
        parameters, X, Y = network(layer_dims, m, output, dtype, seed=3)
        result = K.train(parameters, X, Y, "tanh", learning_rate=0.05, n_iterations=30,
                         cost_every=7, gram=gram, output_activation=output)
        expected, costs = R.L_layer_model(X, Y, layer_dims, "tanh", 0.05, 30,
                                          parameters=parameters, cost_every=7,
                                          output_activation=output)
        assert result.status == "ok" and result.n_iter == 30
        np.testing.assert_allclose(result.costs, costs, rtol=factor * TOL[dtype])
        for key in expected:
            assert_close(result.parameters[key], expected[key], dtype, factor=factor,
                         err_msg=f"{layer_dims} {key}")


@pytest.mark.parametrize("output", OUTPUTS)
def test_both_backends_fit_each_output_to_the_same_parameters(output):
    parameters, X, Y = network([6, 8, WIDTHS[output][1]], 50, output)
    fits = [Model([6, 8, WIDTHS[output][1]], "relu", output, learning_rate=0.1, n_epochs=200,
                  seed=0, backend=b).fit(X, Y) for b in spec.BACKENDS]
    for key, value in fits[1].parameters_.items():
        assert_close(fits[0].parameters_[key], value, np.float64, factor=1e2, err_msg=key)


def test_softmax_learns_digits_to_a_stated_held_out_accuracy():
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), 30% held out:
    a [64, 64, 10] relu/softmax network, 500 full-batch steps, reaches >= 95%
    test accuracy (measured: 96.3%)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.3, random_state=0)
    model = Model([64, 64, 10], "relu", "softmax", learning_rate=0.5, n_epochs=500, seed=0)
    model.fit(X_train.T, y_train)
    assert model.predict(X_test.T).shape == (len(y_test),)
    assert model.score(X_test.T, y_test) >= 0.95


def test_a_linear_output_fits_a_regression_to_a_stated_r2():
    """y = sin(2 x1) + x2^2 - x3 + noise (sd 0.1), 400 points for training and
    200 held out: a [3, 32, 1] tanh/linear network reaches R^2 >= 0.9 on the
    held-out points (measured: 0.97)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (3, 600))
    y = np.sin(2 * X[0]) + X[1] ** 2 - X[2] + 0.1 * rng.standard_normal(600)
    model = Model([3, 32, 1], "tanh", "linear", learning_rate=0.1, n_epochs=3000, seed=0)
    model.fit(X[:, :400], y[:400])
    assert model.predict(X[:, 400:]).shape == (1, 200)
    assert model.score(X[:, 400:], y[400:]) >= 0.9
    with pytest.raises(ValueError, match="a linear output .* has no probabilities"):
        model.predict_proba(X)


def _poisson_deviance(y, mu):
    """scikit-learn's ``mean_poisson_deviance`` times the count, written out."""
    from scipy.special import xlogy

    return 2 * float(np.sum(xlogy(y, y / mu) - y + mu))


def test_an_exp_output_fits_a_poisson_regression_to_a_stated_deviance():
    """Counts y ~ Poisson(exp(1 + sin(2 x1) + x2 / 2 - x3^2)), 400 for training and 200
    held out: a [3, 16, 1] tanh/exp network, 3000 full-batch steps at 0.1, explains at
    least 55% of the held-out Poisson deviance of the constant model (measured: 57.5%;
    the true means explain 58.5%). Its predictions are the means exp(Z_L) > 0; its score
    is R² (measured: 0.62), as scikit-learn's MLPRegressor(loss="poisson") scores."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (3, 600))
    mu = np.exp(1 + np.sin(2 * X[0]) + 0.5 * X[1] - X[2] ** 2)
    y = rng.poisson(mu).astype(float)
    model = Model([3, 16, 1], "tanh", "exp", learning_rate=0.1, n_epochs=3000, seed=0)
    model.fit(X[:, :400], y[:400])
    prediction = model.predict(X[:, 400:])
    assert prediction.shape == (1, 200) and np.all(prediction > 0)
    constant = _poisson_deviance(y[400:], np.full(200, y[:400].mean()))
    assert 1 - _poisson_deviance(y[400:], prediction[0]) / constant >= 0.55
    assert 1 - _poisson_deviance(y[400:], mu[400:]) / constant < 0.6  # the best there is
    A = prediction[0]
    r2 = 1 - np.sum((y[400:] - A) ** 2) / np.sum((y[400:] - y[400:].mean()) ** 2)
    assert model.score(X[:, 400:], y[400:]) == pytest.approx(r2) and r2 >= 0.55
    with pytest.raises(ValueError, match="an exp output .* has no probabilities"):
        model.predict_proba(X)


@pytest.mark.parametrize("backend_name", spec.BACKENDS)
def test_an_overflowing_exp_output_is_a_divergence(backend_name):
    """e^z overflows for a finite z (z > 709.8 in float64): the cost is infinite, so
    training stops there as on any non-finite cost, keeping the parameters of the last
    finite one (the output pass reports ``sum(Z_L) + sum(A_L)``: ``sum(Z_L)`` alone is
    finite here, and the inf would reach the update one step later instead)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 40))
    Y = rng.poisson(np.exp(2 + X[0]))[None].astype(float)
    model = Model([2, 3, 1], "tanh", "exp", learning_rate=0.2, n_epochs=100, seed=0,
                  backend=backend_name)
    with pytest.raises(TrainingDivergedError, match=r"training diverged at epoch 3: the cost "
                       r"became NaN or infinite; the model is unchanged") as caught:
        model.fit(X, Y)
    error = caught.value
    assert (error.iteration, error.n_iter, error.reason) == (3, 2, "nonfinite_cost")
    assert not hasattr(model, "parameters_")
    two = Model(**{**model.get_params(), "n_epochs": 2}).fit(X, Y)
    for key in two.parameters_:
        np.testing.assert_allclose(error.parameters[key], two.parameters_[key], rtol=1e-12)
    # the third step's parameters: Z_L finite, e^Z_L not
    AL, caches = R.L_model_forward(X, two.parameters_, "tanh", "exp")
    grads = R.L_model_backward(AL, Y, caches, "tanh", "dZ", "exp")
    third = R.update_parameters(two.parameters_, grads, 0.2)
    with np.errstate(over="ignore"):
        AL, caches = R.L_model_forward(X, third, "tanh", "exp")
    assert np.all(np.isfinite(caches[-1][1])) and not np.all(np.isfinite(AL))


# ---------------------------------------------------------------------------
# Labels and the Model
# ---------------------------------------------------------------------------


def test_softmax_labels_as_indices_or_one_hot_are_the_same():
    Y = check_labels(np.array([2, 0, 1, 2]), "softmax", n_y=3, m=4)
    np.testing.assert_array_equal(Y, [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
    np.testing.assert_array_equal(check_labels(Y, "softmax", n_y=3, m=4), Y)
    np.testing.assert_array_equal(check_labels(np.array([[2, 0, 1, 2]]), "softmax", n_y=3), Y)


@pytest.mark.parametrize("output,Y,match", [
    ("softmax", [[1, 0, 1], [0, 1, 1]], r"Y must be one-hot \(one 1 per column\); column 2 has 2 ones"),
    ("softmax", [[1, 0, 0], [0, 1, 0]], "column 2 has 0 ones"),
    ("softmax", [[1, 0, 0.5], [0, 1, 0.5]], r"found 0.5 at row 0, column 2"),
    ("softmax", [0, 1, 2], r"Y must hold class indices, integers 0..1; found 2.0 at column 2"),
    ("softmax", [0, 1.5, 1], r"integers 0..1; found 1.5 at column 1"),
    ("softmax", [0, -1, 1], r"found -1.0 at column 1"),
    ("softmax", [0, 1], r"Y must hold 3 class indices \(one per column of X\); got 2"),
    ("linear", [[0.5, np.nan, 1.0]], r"Y must be finite; found nan at index \(0, 1\)"),
    ("linear", [[0.5, 1.0]], r"Y must have shape \(1, 3\)"),
    ("sigmoid", [0, 2, 1], "Y must hold labels 0 or 1 only"),
    ("exp", [[2.0, -0.5, 1.0]], r"Y must hold values >= 0 for output_activation='exp' \(counts "
                                r"or rates: Poisson regression.*found -0.5 at row 0, column 1"),
    ("exp", [[2.0, np.inf, 1.0]], r"Y must be finite; found inf at index \(0, 1\)"),
])
def test_bad_labels_are_refused_naming_the_column_and_the_model_is_unchanged(output, Y, match):
    n_y = 2 if output == "softmax" else 1
    X = np.random.default_rng(0).standard_normal((2, 3))
    model = Model([2, 3, n_y], output_activation=output, n_epochs=5, seed=0, backend="numpy")
    good = {"softmax": [0, 1, 1], "linear": [0.1, 0.2, 0.3], "sigmoid": [0, 1, 1],
            "exp": [0.0, 2.0, 0.5]}[output]
    model.fit(X, good)
    before = {k: v.copy() for k, v in model.parameters_.items()}
    with pytest.raises(ValueError, match=match):
        model.fit(X, Y)
    for key, value in before.items():
        np.testing.assert_array_equal(model.parameters_[key], value)


def test_softmax_needs_two_classes():
    with pytest.raises(ValueError, match=r"softmax output needs at least 2 classes.*got 1"):
        Model([3, 4, 1], output_activation="softmax")


@pytest.mark.parametrize("backend_name", spec.BACKENDS)
def test_predictions_and_scores_per_output(backend_name):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4, 30))
    y = rng.integers(0, 3, 30)
    model = Model([4, 5, 3], "tanh", "softmax", learning_rate=0.5, n_epochs=50, seed=0,
                  backend=backend_name).fit(X, y)
    P = model.predict_proba(X)
    assert P.shape == (3, 30)
    np.testing.assert_allclose(P.sum(axis=0), 1, rtol=1e-12)
    prediction = model.predict(X)
    assert prediction.shape == (30,) and prediction.dtype.kind == "i"
    np.testing.assert_array_equal(prediction, np.argmax(P, axis=0))
    assert model.score(X, y) == pytest.approx(np.mean(prediction == y))
    assert model.score(X, np.eye(3)[:, y]) == model.score(X, y)
    regression = Model([4, 5, 2], "tanh", "linear", learning_rate=0.1, n_epochs=50, seed=0,
                       backend=backend_name)
    Y = rng.standard_normal((2, 30))
    regression.fit(X, Y)
    A = regression.predict(X)
    assert A.shape == (2, 30)
    r2 = np.mean([1 - np.sum((Y[i] - A[i]) ** 2) / np.sum((Y[i] - Y[i].mean()) ** 2)
                  for i in range(2)])
    assert regression.score(X, Y) == pytest.approx(r2)


def test_a_saved_model_keeps_its_output_layer_and_class_names(tmp_path):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((4, 30))
    model = Model([4, 5, 3], "tanh", "softmax", n_epochs=20, seed=0, backend="numpy")
    model.fit(X, rng.integers(0, 3, 30))
    model.classes_ = np.array(["setosa", "versicolor", "virginica"])
    model.save(tmp_path / "iris.npz")
    same = Model.load(tmp_path / "iris.npz")
    assert same.output_activation == "softmax"
    np.testing.assert_array_equal(same.classes_, model.classes_)
    np.testing.assert_array_equal(same.predict(X), model.predict(X))
