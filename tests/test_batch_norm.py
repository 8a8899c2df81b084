"""Batch normalisation (issue 27): the reference's forward and backward, gradient checks,
the edge cases (one column, a constant unit, float32), the schema, and the Model."""

import numpy as np
import pytest

from fastbackprop import reference as R
from fastbackprop import spec
from fastbackprop.layout import BATCH_NORM, DENSE, Schema
from fastbackprop.options import TrainingOptions

OUTPUT_ACTIVATIONS = list(spec.OUTPUTS)
HIDDEN_ACTIVATIONS = list(spec.ACTIVATIONS)


def labels(output, n_y, m, rng):
    if output == "softmax":
        return np.eye(n_y)[rng.integers(0, n_y, m)].T
    if output == "linear":
        return rng.normal(size=(n_y, m))
    return (rng.random((n_y, m)) < 0.5).astype(np.float64)


def bn_network(dims, seed=0, batch_norm=True, dtype=np.float64):
    """He-initialised parameters with batch norm, gamma and beta moved off 1 and 0 (so a
    wrong gamma or beta gradient shows), running statistics off 0 and 1."""
    rng = np.random.default_rng(seed)
    parameters = R.initialize_batch_norm(R.initialize_parameters(dims, "he", seed), batch_norm)
    for key in parameters:
        if key.startswith(("gamma", "running_var")):
            parameters[key] = rng.uniform(0.5, 1.5, parameters[key].shape)
        elif key.startswith(("beta", "running_mean", "b")):
            parameters[key] = rng.normal(size=parameters[key].shape) * 0.3
    return {k: v.astype(dtype) for k, v in parameters.items()}


# ---------------------------------------------------------------------------
# Forward, backward, gradient checks
# ---------------------------------------------------------------------------


def test_batch_norm_forward_normalises_each_unit_over_the_batch():
    rng = np.random.default_rng(1)
    Z = rng.normal(3.0, 2.0, size=(4, 9))
    gamma, beta = np.full((4, 1), 2.0), np.full((4, 1), -1.0)
    Z_tilde, (Z_hat, _, std, mu, sigma2) = R.batch_norm_forward(Z, gamma, beta, 1e-5)
    np.testing.assert_allclose(mu[:, 0], Z.mean(axis=1))
    np.testing.assert_allclose(sigma2[:, 0], Z.var(axis=1))  # biased, as the course writes it
    np.testing.assert_allclose(Z_hat.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(Z_hat.var(axis=1), Z.var(axis=1) / (Z.var(axis=1) + 1e-5))
    np.testing.assert_allclose(Z_tilde, 2 * Z_hat - 1)
    np.testing.assert_allclose(std, np.sqrt(sigma2 + 1e-5))


@pytest.mark.parametrize("output", OUTPUT_ACTIVATIONS)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_gradient_check_with_batch_norm_on_every_output_and_activation(output, activation):
    rng = np.random.default_rng(2)
    dims = [4, 5, 3, 3]
    parameters = bn_network(dims, 3)
    X, Y = rng.normal(size=(4, 7)), labels(output, 3, 7, rng)
    for start in R.OUTPUT_STARTS:
        difference = R.gradient_check(parameters, X, Y, activation, output_start=start,
                                      output_activation=output)
        assert difference < 1e-7, (start, difference)


@pytest.mark.parametrize("output", OUTPUT_ACTIVATIONS)
def test_gradient_check_with_batch_norm_and_dropout_l2_and_weights(output):
    rng = np.random.default_rng(4)
    dims = [5, 6, 4, 2]
    parameters = bn_network(dims, 5)
    m = 8
    X, Y = rng.normal(size=(5, m)), labels(output, 2, m, rng)
    dropout = R.dropout_masks((0.7, 0.8), [(6, m), (4, m)], 3, 1)
    w = rng.uniform(0.2, 2.0, m)
    for kwargs in ({"dropout": dropout}, {"l2": 0.7}, {"sample_weight": w},
                   {"dropout": dropout, "l2": 0.3, "sample_weight": w}):
        difference = R.gradient_check(parameters, X, Y, "tanh", output_activation=output,
                                      **kwargs)
        assert difference < 1e-7, (kwargs.keys(), difference)


def test_gradient_check_with_batch_norm_in_some_layers_only():
    rng = np.random.default_rng(6)
    dims = [3, 5, 4, 4, 1]
    parameters = bn_network(dims, 7, batch_norm=(False, True, False))
    assert Schema.of(parameters).kinds == (DENSE, BATCH_NORM, DENSE, DENSE)
    X, Y = rng.normal(size=(3, 6)), labels("sigmoid", 1, 6, rng)
    assert R.gradient_check(parameters, X, Y, "relu") < 1e-7


def test_the_gradient_check_catches_a_wrong_batch_norm_backward(monkeypatch):
    """The check can fail: the backward without its Z_hat term (the variance's path) is
    caught, and so is a dgamma off by a factor."""
    rng = np.random.default_rng(8)
    dims = [4, 5, 2]
    parameters = bn_network(dims, 9)
    X, Y = rng.normal(size=(4, 6)), labels("sigmoid", 2, 6, rng)
    assert R.gradient_check(parameters, X, Y, "tanh") < 1e-7
    right = R.batch_norm_backward

    def without_variance_path(dZ_tilde, cache):
        Z_hat, gamma, std, _, _ = cache
        m = dZ_tilde.shape[1]
        sum_d = dZ_tilde.sum(axis=1, keepdims=True)
        dZ = gamma / (m * std) * (m * dZ_tilde - sum_d)
        return dZ, (dZ_tilde * Z_hat).sum(axis=1, keepdims=True) / m, sum_d / m

    monkeypatch.setattr(R, "batch_norm_backward", without_variance_path)
    assert R.gradient_check(parameters, X, Y, "tanh") > 1e-3

    def wrong_dgamma(dZ_tilde, cache):
        dZ, dgamma, dbeta = right(dZ_tilde, cache)
        return dZ, 2 * dgamma, dbeta

    monkeypatch.setattr(R, "batch_norm_backward", wrong_dgamma)
    assert R.gradient_check(parameters, X, Y, "tanh") > 1e-3


# ---------------------------------------------------------------------------
# Edge cases: one column, a constant unit, float32
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_batch_of_one_column_gives_beta_and_no_gradient_through_Z(dtype):
    """With m = 1, sigma2 = 0 and Z_hat = 0 exactly: Z_tilde = beta, dZ = 0 (nothing reaches
    W or the layers below), dbeta = dZ_tilde, dgamma = 0; nothing is NaN."""
    rng = np.random.default_rng(10)
    dims = [3, 4, 2]
    parameters = bn_network(dims, 11, dtype=dtype)
    X = rng.normal(size=(3, 1)).astype(dtype)
    Y = labels("sigmoid", 2, 1, rng).astype(dtype)
    AL, caches = R.L_model_forward(X, parameters, "relu", training=True)
    Z_hat = caches[0][2][0]
    assert np.all(Z_hat == 0)
    np.testing.assert_array_equal(caches[0][1], parameters["beta1"])
    grads = R.L_model_backward(AL, Y, caches, "relu", "dZ")
    for value in grads.values():
        assert value.dtype == dtype and np.all(np.isfinite(value))
    assert np.all(grads["dW1"] == 0) and np.all(grads["dA0"] == 0)
    assert np.all(grads["dgamma1"] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_unit_constant_over_the_batch_is_finite_and_gets_beta(dtype):
    """A unit whose Z is the same in every column (here: an input row constant and a W row
    reading only it) has sigma2 about 0: Z_hat is the rounding of Z - mu over
    sqrt(sigma2 + eps), tiny, so Z_tilde is beta to that rounding; nothing is NaN, also with
    the smallest epsilon float32 holds as a normal number."""
    rng = np.random.default_rng(12)
    dims = [3, 4, 2]
    parameters = bn_network(dims, 13, dtype=dtype)
    parameters["W1"][0] = np.array([0.1, 0, 0], dtype=dtype)  # unit 1 reads the constant row
    X = rng.normal(size=(3, 5)).astype(dtype)
    X[0] = dtype(0.7)
    Y = labels("sigmoid", 2, 5, rng).astype(dtype)
    for eps in (1e-5, float(np.finfo(np.float32).tiny)):
        AL, caches = R.L_model_forward(X, parameters, "tanh", training=True,
                                       batch_norm_epsilon=eps)
        grads = R.L_model_backward(AL, Y, caches, "tanh", "dZ")
        assert all(np.all(np.isfinite(v)) for v in grads.values()), eps
        assert np.all(np.isfinite(AL))
        if eps == 1e-5:
            np.testing.assert_allclose(caches[0][1][0], parameters["beta1"][0, 0], atol=1e-5)


def test_the_forward_pass_predicts_with_the_running_statistics_by_default():
    rng = np.random.default_rng(14)
    dims = [3, 4, 2]
    parameters = bn_network(dims, 15)
    X = rng.normal(size=(3, 6))
    AL_predict, _ = R.L_model_forward(X, parameters, "relu")
    AL_train, _ = R.L_model_forward(X, parameters, "relu", training=True)
    assert not np.allclose(AL_predict, AL_train)
    # prediction is per column: one column at a time gives the same
    one, _ = R.L_model_forward(X[:, 2:3], parameters, "relu")
    np.testing.assert_allclose(one[:, 0], AL_predict[:, 2])
    # and it is the folded dense network's
    folded = R.fold_batch_norm(parameters)
    assert Schema.of(folded).kinds == (DENSE, DENSE)
    np.testing.assert_allclose(R.L_model_forward(X, folded, "relu")[0], AL_predict,
                               rtol=1e-12)


def test_running_statistics_follow_the_courses_weighted_average():
    rng = np.random.default_rng(16)
    dims = [3, 4, 2]
    parameters = bn_network(dims, 17)
    X = rng.normal(size=(3, 6))
    _, caches = R.L_model_forward(X, parameters, "relu", training=True)
    new = R.running_statistics(parameters, caches, 0.8)
    Z = parameters["W1"] @ X
    np.testing.assert_allclose(new["running_mean1"],
                               0.8 * parameters["running_mean1"] + 0.2 * Z.mean(1, keepdims=True))
    np.testing.assert_allclose(new["running_var1"],
                               0.8 * parameters["running_var1"] + 0.2 * Z.var(1, keepdims=True))
    assert set(new) == {"running_mean1", "running_var1"}


def test_the_schema_reads_batch_norm_layers_and_refuses_a_broken_dict():
    parameters = bn_network([3, 4, 5, 2], 18, batch_norm=(True, False))
    schema = Schema.of(parameters)
    assert schema.batch_norm == (True, False)
    assert schema.keys == ("W1", "gamma1", "beta1", "running_mean1", "running_var1",
                           "W2", "b2", "W3", "b3")
    assert schema.trained_mask().sum() == 4 * 3 + 4 + 4 + 5 * 4 + 5 + 2 * 5 + 2
    broken = dict(parameters)
    del broken["running_var1"]
    with pytest.raises(ValueError, match="running_var"):
        Schema.of(broken)
    wrong = dict(parameters, gamma1=np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"parameters\['gamma1'\] must have shape \(4, 1\)"):
        Schema.of(wrong)
    output_bn = R.initialize_batch_norm(R.initialize_parameters([3, 2], "he", 0), ())
    output_bn["gamma1"] = output_bn.pop("b1")
    with pytest.raises(ValueError, match="must hold W1, b1"):
        Schema.of(output_bn)


def test_batch_norm_layers_are_checked_by_name_and_count():
    with pytest.raises(ValueError, match=r"batch_norm must be True, False or one bool per "
                                         r"hidden layer \(2\); got 3 values"):
        R.initialize_batch_norm(R.initialize_parameters([2, 3, 3, 1], "he", 0),
                                (True, False, True))
    with pytest.raises(TypeError, match="batch_norm must be True, False"):
        R.initialize_batch_norm(R.initialize_parameters([2, 3, 1], "he", 0), "yes")


# ---------------------------------------------------------------------------
# The compiled loop against the reference
# ---------------------------------------------------------------------------


def kernels_gradient(parameters, X, Y, activation, output, **options):
    """The compiled loop's gradient of the trained arrays, read off one full-batch step of
    gradient descent with ``alpha = 1`` in float64 (``theta_1 = theta_0 - dtheta``)."""
    from fastbackprop import kernels

    trainer = kernels.Trainer(parameters, X, Y, options=TrainingOptions(
        hidden_activation=activation, output_activation=output, learning_rate=1.0,
        batch_norm=True, **options), dtype=np.float64)
    trainer.run(1)
    schema = Schema.of(parameters)
    before = schema.pack(parameters, np.float64)
    after = schema.pack(trainer.parameters, np.float64)
    return ((before - after)[schema.trained_mask()], trainer.parameters)


def finite_differences(parameters, X, Y, activation, output, l2=0.0, sample_weight=None,
                       epsilon=1e-6):
    """The centred differences of the reference's cost (batch statistics, as in training)
    over the trained arrays."""
    schema = Schema.of(parameters)
    theta = schema.pack(parameters, np.float64)
    m = X.shape[1]

    def cost(values):
        candidate = schema.unpack(values, copy=False)
        AL, _ = R.L_model_forward(X, candidate, activation, output, training=True)
        return R.compute_cost(AL, Y, output, sample_weight) + R.l2_cost(candidate, l2, m)

    approx = []
    for i in np.flatnonzero(schema.trained_mask()):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += epsilon
        minus[i] -= epsilon
        approx.append((cost(plus) - cost(minus)) / (2 * epsilon))
    return np.array(approx)


def relative_difference(a, b):
    return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b)))


def kernels_check(output, activation, l2=0.0, weighted=False, seed=20):
    rng = np.random.default_rng(seed)
    dims = [4, 5, 3, 3]
    parameters = bn_network(dims, seed + 1)
    X, Y = rng.normal(size=(4, 9)), labels(output, 3, 9, rng)
    w = rng.uniform(0.2, 2.0, 9) if weighted else None
    grad, _ = kernels_gradient(parameters, X, Y, activation, output, l2=l2)
    if weighted:
        from fastbackprop import kernels

        trainer = kernels.Trainer(parameters, X, Y, options=TrainingOptions(
            hidden_activation=activation, output_activation=output, learning_rate=1.0,
            batch_norm=True, l2=l2), dtype=np.float64, sample_weight=w)
        trainer.run(1)
        schema = Schema.of(parameters)
        grad = (schema.pack(parameters, np.float64)
                - schema.pack(trainer.parameters, np.float64))[schema.trained_mask()]
    return relative_difference(grad, finite_differences(parameters, X, Y, activation, output,
                                                        l2, w))


@pytest.mark.parametrize("output", OUTPUT_ACTIVATIONS)
def test_the_kernels_gradient_check_with_batch_norm(output):
    assert kernels_check(output, "tanh") < 1e-7


@pytest.mark.slow
@pytest.mark.parametrize("output", OUTPUT_ACTIVATIONS)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_the_kernels_gradient_check_with_batch_norm_on_every_output_and_activation(
        output, activation):
    assert kernels_check(output, activation) < 1e-7


def test_the_kernels_gradient_check_with_batch_norm_l2_and_weights():
    assert kernels_check("softmax", "relu", l2=0.5) < 1e-7
    assert kernels_check("sigmoid", "relu", weighted=True) < 1e-7
    assert kernels_check("linear", "tanh", l2=0.3, weighted=True) < 1e-7


def test_the_kernels_gradient_check_fails_on_a_wrong_batch_norm_backward():
    """The check can fail: a run in a new process whose compiled backward forgets the
    variance's path (the Z_hat term) is caught."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from fastbackprop.kernels import batch_norm as B\n"
        "from fastbackprop._jit import jit\n"
        "from fastbackprop.kernels.layout import layer_of, matrix_view\n"
        "@jit\n"
        "def wrong(bn, theta, grad, dims, offsets, l, dZ):\n"
        "    n, m = dZ.shape\n"
        "    gamma = B.gamma_of(theta, dims, offsets, l)\n"
        "    dgamma = B.gamma_of(grad, dims, offsets, l)\n"
        "    dbeta = matrix_view(grad, offsets[l - 1, 1], dims[l], 1)\n"
        "    Z_hat = layer_of(bn.zhat, dims, offsets, l, m)\n"
        "    start = bn.starts[l - 1]\n"
        "    for i in range(n):\n"
        "        s = 0.0\n"
        "        for j in range(m):\n"
        "            s += dZ[i, j] * Z_hat[i, j]\n"
        "        dgamma[i, 0] = s\n"
        "        factor = gamma[i, 0] * bn.stats[start + n + i]\n"
        "        mean_d = dbeta[i, 0] / m\n"
        "        for j in range(m):\n"
        "            dZ[i, j] = factor * (dZ[i, j] - mean_d)\n"
        "B.backward = wrong\n"
        "import fastbackprop.kernels.training as T\n"
        "T.bn_kernels.backward = wrong\n"
        "import sys; sys.path.insert(0, 'tests')\n"
        "from test_batch_norm import kernels_check\n"
        "print(kernels_check('sigmoid', 'tanh'))\n")
    import os

    env = dict(os.environ, FASTBACKPROP_CACHE="0")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) > 1e-3


AGREEMENT = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


def both_backends(parameters, X, Y, n_epochs, dtype, sample_weight=None, **options):
    """Each backend's trainer after ``n_epochs`` epochs: ``{name: (parameters, costs)}``."""
    from fastbackprop import backends

    o = TrainingOptions(**options)
    out = {}
    for name in spec.BACKENDS:
        trainer = backends.get(name).Trainer(
            {k: v.astype(dtype) for k, v in parameters.items()}, X.astype(dtype),
            Y.astype(dtype), options=o, dtype=dtype, sample_weight=sample_weight)
        assert trainer.run(n_epochs) == "ok"
        out[name] = (trainer.parameters, trainer.costs)
    return out


def assert_agree(result, dtype):
    (a, costs_a), (b, costs_b) = result["numba"], result["numpy"]
    tol = AGREEMENT[np.dtype(dtype)]
    assert set(a) == set(b)
    for key in b:
        scale = max(1.0, float(np.max(np.abs(b[key]))))
        np.testing.assert_allclose(a[key], b[key], rtol=tol, atol=tol * scale, err_msg=key)
    np.testing.assert_allclose(costs_a, costs_b, rtol=tol)


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("optimizer", list(spec.OPTIMIZERS))
def test_both_backends_agree_after_shuffled_epochs_of_each_optimizer(optimizer, dtype):
    rng = np.random.default_rng(30)
    dims = [5, 7, 6, 3]
    X, Y = rng.normal(size=(5, 53)), labels("softmax", 3, 53, rng)
    parameters = R.initialize_batch_norm(R.initialize_parameters(dims, "he", 31), True)
    rate = 0.003 if optimizer in ("rmsprop", "adam", "adam_folded") else 0.05
    result = both_backends(parameters, X, Y, 4, dtype, hidden_activation="tanh",
                           output_activation="softmax", optimizer=optimizer, batch_size=16,
                           learning_rate=rate, batch_norm=True, cost_every=1)
    assert_agree(result, dtype)
    # the running statistics moved, the same way in both
    assert not np.allclose(result["numba"][0]["running_var1"], 1)


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("dims, m, batch_size", [
    ([3, 1, 2], 7, None),          # one unit
    ([1, 4, 1], 1, None),          # one column: sigma2 = 0
    ([4, 3, 5, 2], 11, 1),         # batches of one column
    ([6, 5, 4, 3], 17, 4),         # a short last batch of one column
    ([2, 9, 3], 33, 32),
])
def test_both_backends_agree_over_shapes(dims, m, batch_size, dtype):
    rng = np.random.default_rng(32)
    X, Y = rng.normal(size=(dims[0], m)), labels("sigmoid", dims[-1], m, rng)
    parameters = R.initialize_batch_norm(R.initialize_parameters(dims, "he", 33), True)
    result = both_backends(parameters, X, Y, 3, dtype, hidden_activation="relu",
                           optimizer="momentum", batch_size=batch_size, learning_rate=0.05,
                           batch_norm=True, cost_every=1)
    assert_agree(result, dtype)
    for value in result["numba"][0].values():
        assert np.all(np.isfinite(value))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_backends_agree_with_dropout_l2_weights_and_some_layers(dtype):
    rng = np.random.default_rng(34)
    dims = [6, 8, 7, 5, 2]
    m = 45
    X, Y = rng.normal(size=(6, m)), labels("sigmoid", 2, m, rng)
    w = rng.uniform(0.1, 3.0, m)
    flags = (True, False, True)
    parameters = R.initialize_batch_norm(R.initialize_parameters(dims, "he", 35), flags)
    result = both_backends(parameters, X, Y, 3, dtype, sample_weight=w,
                           hidden_activation="leaky_relu", optimizer="adam", batch_size=10,
                           learning_rate=0.01, batch_norm=flags, keep_prob=(0.8, 1.0, 0.7),
                           l2=0.4, cost_every=1, batch_norm_momentum=0.5,
                           batch_norm_epsilon=1e-3)
    assert_agree(result, dtype)


def test_the_compiled_fit_with_batch_norm_runs_on_one_thread_without_gram_mode():
    from fastbackprop import kernels

    rng = np.random.default_rng(36)
    dims = [300, 8, 1]  # n_x >= m: Gram mode would apply
    X, Y = rng.normal(size=(300, 40)), labels("sigmoid", 1, 40, rng)
    parameters = R.initialize_batch_norm(R.initialize_parameters(dims, "he", 0), True)
    trainer = kernels.Trainer(parameters, X, Y, options=TrainingOptions(
        batch_norm=True, n_threads=2), max_epochs=1000)
    assert trainer.n_threads == 1 and not trainer.gram
    with pytest.raises(ValueError, match="gram=True: Gram mode has no batch norm"):
        kernels.Trainer(parameters, X, Y, options=TrainingOptions(batch_norm=True), gram=True)


def test_a_diverging_fit_with_batch_norm_keeps_the_same_last_state_on_both_backends():
    """A fit that blows up (a huge learning rate) stops with the last finite parameters,
    running statistics included, the same on both backends (the compiled loop's replay
    recomputes them)."""
    from fastbackprop import backends

    rng = np.random.default_rng(38)
    dims = [3, 6, 1]
    X, Y = rng.normal(size=(3, 20)) * 10, rng.normal(size=(1, 20)) * 1e3
    parameters = R.initialize_batch_norm(R.initialize_parameters(dims, "he", 0), True)
    o = TrainingOptions(output_activation="linear", learning_rate=1e6, batch_size=5,
                        batch_norm=True, hidden_activation="identity")
    results = {}
    for name in spec.BACKENDS:
        trainer = backends.get(name).Trainer(parameters, X, Y, options=o)
        status = trainer.run(50)
        results[name] = (status, trainer.t, trainer.parameters)
    assert results["numba"][0] == results["numpy"][0] != "ok"
    assert results["numba"][1] == results["numpy"][1]
    for key, value in results["numpy"][2].items():
        np.testing.assert_allclose(results["numba"][2][key], value, rtol=1e-10, err_msg=key)


# ---------------------------------------------------------------------------
# The Model
# ---------------------------------------------------------------------------


def digits_like(m=120, seed=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(8, m))
    y = (X[0] + 0.5 * X[1] * X[2] > 0).astype(int) + (X[3] > 1)
    return X, y


@pytest.mark.parametrize("backend", list(spec.BACKENDS))
def test_a_model_with_batch_norm_saves_loads_continues_and_predicts(backend, tmp_path):
    from fastbackprop import Model

    X, y = digits_like()
    kwargs = dict(output_activation="softmax", optimizer="adam", batch_size=32,
                  learning_rate=0.01, seed=0, backend=backend, batch_norm=True,
                  cost_every=1)
    five = Model([8, 10, 6, 3], n_epochs=5, **kwargs).fit(X, y)
    assert set(five.parameters_) == set(Schema([8, 10, 6, 3], (BATCH_NORM,) * 2 + (DENSE,)).keys)
    two = Model([8, 10, 6, 3], n_epochs=2, **kwargs).fit(X, y)
    two.save(tmp_path / "m.npz")
    loaded = Model.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), two.predict_proba(X))
    loaded.set_params(n_epochs=3).fit(X, y, warm_start=True)
    for key, value in five.parameters_.items():  # two epochs, then three more: five
        np.testing.assert_array_equal(loaded.parameters_[key], value, err_msg=key)
    # prediction uses the running statistics, as the reference's forward pass does
    AL, _ = R.L_model_forward(X, five.parameters_, "relu", "softmax")
    np.testing.assert_allclose(five.predict_proba(X), AL, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(five.predict(X), np.argmax(AL, axis=0))
    assert five.score(X, y) == np.mean(np.argmax(AL, axis=0) == y)
    # one column predicts as it does inside a batch
    np.testing.assert_allclose(five.predict_proba(X[:, 3:4])[:, 0], AL[:, 3], rtol=1e-12)


def test_a_model_with_batch_norm_agrees_between_backends_and_gives_its_gradients():
    from fastbackprop import Model

    X, y = digits_like(90)
    fits = {}
    for b in spec.BACKENDS:
        model = Model([8, 7, 5, 3], output_activation="softmax", optimizer="momentum",
                      batch_size=16, learning_rate=0.05, n_epochs=6, seed=1, backend=b,
                      batch_norm=[False, True], keep_prob=0.9, l2=0.1, cost_every=1)
        fits[b] = model.fit(X, y, sample_weight=np.linspace(0.5, 2, 90),
                            validation_data=(X[:, :20], y[:20]))
    for key, value in fits["numpy"].parameters_.items():
        np.testing.assert_allclose(fits["numba"].parameters_[key], value, rtol=1e-10,
                                   atol=1e-12, err_msg=key)
    np.testing.assert_allclose(fits["numba"].validation_costs_, fits["numpy"].validation_costs_,
                               rtol=1e-10)
    grads = fits["numba"].gradients(X, y)
    assert grads["dgamma2"].shape == (5, 1) and "db2" not in grads and "db1" in grads


def test_a_model_with_batch_norm_checks_its_arguments_before_any_work():
    from fastbackprop import Model

    X, y = digits_like(30)
    with pytest.raises(ValueError, match=r"batch_norm must be True, False or one bool per "
                                         r"hidden layer \(2\); got 1 values"):
        Model([8, 4, 4, 3], batch_norm=[True])
    with pytest.raises(ValueError, match=r"batch_norm_momentum must be a number in \[0, 1\)"):
        Model([8, 4, 3], batch_norm=True, batch_norm_momentum=1.0)
    with pytest.raises(ValueError, match="batch_norm_epsilon must be a finite number >= "):
        Model([8, 4, 3], batch_norm=True, batch_norm_epsilon=0.0)
    with pytest.raises(TypeError, match="batch_norm must be True, False"):
        Model([8, 4, 3], batch_norm="all")
    dense = Model([8, 4, 3], output_activation="softmax", n_epochs=2, seed=0).fit(X, y)
    with pytest.raises(ValueError, match=r"parameters must hold the arrays \['W1', 'gamma1'"):
        Model([8, 4, 3], output_activation="softmax", batch_norm=True).fit(
            X, y, parameters=dense.parameters_)
    before = {k: v.copy() for k, v in dense.parameters_.items()}
    dense.set_params(batch_norm=True)
    with pytest.raises(ValueError, match="parameters_ must hold the arrays"):
        dense.fit(X, y, warm_start=True)
    for key, value in before.items():  # the failed fit left the model as it was
        np.testing.assert_array_equal(dense.parameters_[key], value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_float32_fit_with_a_tiny_epsilon_and_batches_of_one_stays_finite(dtype):
    """Batches of one column (sigma2 = 0) and a constant input row, with the smallest
    epsilon allowed: the fit is finite; a one-column batch trains only beta (and the
    layers above)."""
    from fastbackprop import Model
    from fastbackprop.options import BATCH_NORM_EPSILON_MIN

    X, y = digits_like(12)
    X[0] = 0.25  # a constant feature
    model = Model([8, 5, 3], output_activation="softmax", batch_size=1, n_epochs=3, seed=0,
                  learning_rate=0.01, batch_norm=True, dtype=dtype,
                  batch_norm_epsilon=BATCH_NORM_EPSILON_MIN).fit(X, y)
    start = R.initialize_parameters([8, 5, 3], "he", 0, dtype)
    for value in model.parameters_.values():
        assert value.dtype == np.dtype(dtype) and np.all(np.isfinite(value))
    np.testing.assert_array_equal(model.parameters_["W1"], start["W1"])  # dZ1 = 0
    np.testing.assert_array_equal(model.parameters_["gamma1"], 1)        # dgamma = 0
    assert np.all(np.isfinite(model.predict_proba(X)))


def test_dask_fits_refuse_batch_norm():
    da = pytest.importorskip("dask.array")
    from fastbackprop import Model

    X, y = digits_like(40)
    model = Model([8, 4, 3], output_activation="softmax", batch_norm=True)
    with pytest.raises(ValueError, match="batch_norm is not supported on Dask arrays"):
        model.fit(da.from_array(X, chunks=(8, 20)), y)
    assert not hasattr(model, "parameters_")


def test_the_onnx_export_folds_batch_norm_and_runs_as_the_model_predicts(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from fastbackprop import Model

    X, y = digits_like(64)
    model = Model([8, 6, 5, 3], output_activation="softmax", optimizer="adam", batch_size=16,
                  learning_rate=0.01, n_epochs=4, seed=2, batch_norm=[True, False],
                  batch_norm_epsilon=1e-3).fit(X, y)
    proto = model.to_onnx(tmp_path / "bn.onnx")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (AL,) = session.run(None, {"X": X})
    np.testing.assert_allclose(AL, model.predict_proba(X), rtol=1e-10, atol=1e-12)
