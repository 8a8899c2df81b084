"""L2, inverted dropout with reproducible masks, sample weights, validation and early stopping."""

import numpy as np
import pytest

from conftest import backend

from fastbackprop import Model, activations, reference as R, rng, spec
from fastbackprop.validation import check_labels

K = backend("numba")
HIDDEN = list(activations.HIDDEN)
ARCHITECTURES = [[3, 4, 1], [5, 4, 3, 2], [4, 3, 1, 2, 3], [6, 5, 4, 3, 2, 2]]


def network(layer_dims, m, output="sigmoid", seed=0):
    parameters = R.initialize_parameters(layer_dims, "xavier", seed=seed)
    for l in range(1, len(layer_dims)):
        parameters[f"b{l}"] += 0.1 * l
    generator = np.random.default_rng(seed + 1)
    X = generator.standard_normal((layer_dims[0], m))
    n_L = layer_dims[-1]
    if output == "softmax":
        Y = check_labels(generator.integers(0, n_L, m), "softmax", n_y=n_L, m=m)
    elif output == "linear":
        Y = generator.standard_normal((n_L, m))
    else:
        Y = (generator.random((n_L, m)) > 0.5).astype(float)
    return parameters, X, Y


def masks(layer_dims, m, keep, seed=0, t=1):
    return R.dropout_masks([keep] * (len(layer_dims) - 2),
                           [(n, m) for n in layer_dims[1:-1]], seed, t)


# ---------------------------------------------------------------------------
# Calculus
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("output", list(spec.OUTPUTS))
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("layer_dims", ARCHITECTURES, ids=str)
def test_gradient_check_with_l2_dropout_and_weights(layer_dims, activation, output):
    if output == "softmax" and layer_dims[-1] < 2:
        layer_dims = layer_dims[:-1] + [2]
    parameters, X, Y = network(layer_dims, 7, output)
    weights = np.random.default_rng(2).random(7) + 0.5
    for kw in (dict(l2=0.7), dict(dropout=masks(layer_dims, 7, 0.6)),
               dict(sample_weight=weights),
               dict(l2=0.3, dropout=masks(layer_dims, 7, 0.8), sample_weight=weights)):
        difference = R.gradient_check(parameters, X, Y, activation, output_activation=output,
                                      **kw)
        assert difference < 1e-7, (kw.keys(), difference)


def test_gradient_check_catches_a_missing_l2_term_or_a_missing_mask(monkeypatch):
    parameters, X, Y = network([4, 5, 3, 1], 6)
    dropout = masks([4, 5, 3, 1], 6, 0.5)
    assert R.gradient_check(parameters, X, Y, "tanh", l2=1.0, dropout=dropout) < 1e-7
    real_backward = R.L_model_backward

    def without_l2(*args, **kw):
        return real_backward(*args, **{**kw, "l2": 0.0})

    def without_masks(*args, **kw):
        return real_backward(*args, **{**kw, "dropout": None})

    for wrong in (without_l2, without_masks):
        monkeypatch.setattr(R, "L_model_backward", wrong)
        assert R.gradient_check(parameters, X, Y, "tanh", l2=1.0, dropout=dropout) > 1e-3
    monkeypatch.setattr(R, "L_model_backward", real_backward)


def test_a_weight_of_two_is_a_column_counted_twice():
    parameters, X, Y = network([3, 4, 1], 5)
    weights = np.array([1.0, 2.0, 1.0, 1.0, 0.0])
    doubled = [0, 1, 1, 2, 3]  # column 1 twice, column 4 not at all
    AL, caches = R.L_model_forward(X, parameters)
    weighted = R.L_model_backward(AL, Y, caches, output_start="dZ", sample_weight=weights)
    AL2, caches2 = R.L_model_forward(X[:, doubled], parameters)
    plain = R.L_model_backward(AL2, Y[:, doubled], caches2, output_start="dZ")
    for key in ("dW1", "db1", "dW2", "db2"):
        np.testing.assert_allclose(weighted[key], plain[key], rtol=1e-12, atol=1e-15)
    assert R.compute_cost(AL, Y, sample_weight=weights) == pytest.approx(
        R.compute_cost(AL2, Y[:, doubled]), rel=1e-12)


# ---------------------------------------------------------------------------
# The masks
# ---------------------------------------------------------------------------


def test_the_kernels_draw_the_same_masks_as_numpy():
    from fastbackprop.kernels import passes, rng as kernel_rng

    for seed, t, layer, keep in ((0, 1, 1, 0.5), (7, 12, 3, 0.9), (2**40, 3, 2, 0.25)):
        A = np.ones((13, 257))
        passes.dropout_forward(A, keep, rng.keep_threshold(keep),
                               np.uint64(kernel_rng.layer_key(np.uint64(seed), t, layer)))
        D = rng.dropout_mask(seed, t, layer, (13, 257), keep)
        np.testing.assert_array_equal(A != 0, D)
        np.testing.assert_allclose(A[D], 1 / keep, rtol=1e-15)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.8, 0.97])
def test_the_keep_rate_is_within_binomial_noise_of_keep_prob(keep):
    n = 400 * 500
    D = rng.dropout_mask(3, 1, 1, (400, 500), keep)
    assert abs(D.mean() - keep) < 4 * np.sqrt(keep * (1 - keep) / n)
    np.testing.assert_array_equal(D, rng.dropout_mask(3, 1, 1, (400, 500), keep))
    for other in ((4, 1, 1), (3, 2, 1), (3, 1, 2)):  # another seed, update, layer
        assert np.mean(D != rng.dropout_mask(*other, (400, 500), keep)) > 0.5 * 2 * keep * (1 - keep)
    assert rng.dropout_mask(3, 1, 1, (40, 50), 1.0).all()


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def test_no_l2_and_no_dropout_give_exactly_the_unregularised_trajectory():
    parameters, X, Y = network([5, 7, 3, 1], 37)
    plain = K.train(parameters, X, Y, "relu", 0.1, 10, 1, optimizer="adam", batch_size=8)
    explicit = K.train(parameters, X, Y, "relu", 0.1, 10, 1, optimizer="adam", batch_size=8,
                       l2=0.0, keep_prob=1.0, sample_weight=np.ones(37))
    for key, value in plain.parameters.items():
        np.testing.assert_array_equal(explicit.parameters[key], value)
    regularised = K.train(parameters, X, Y, "relu", 0.1, 10, 1, optimizer="adam", batch_size=8,
                          l2=0.5)
    assert not np.array_equal(regularised.parameters["W1"], plain.parameters["W1"])


@pytest.mark.parametrize("dtype,agreement", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("output", list(spec.OUTPUTS))
def test_both_backends_agree_with_dropout_l2_weights_mini_batches_and_adam(output, dtype,
                                                                          agreement):
    layer_dims = [5, 8, 6, 3]
    _, X, Y = network(layer_dims, 53, output)
    weights = np.random.default_rng(5).random(53) + 0.5
    kw = dict(output_activation=output, learning_rate=0.01, n_epochs=3, seed=4, dtype=dtype,
              optimizer="adam", batch_size=16, l2=0.4, keep_prob=[0.8, 0.6], cost_every=1)
    fits = {b: Model(layer_dims, "tanh", backend=b, **kw).fit(X, Y, sample_weight=weights)
            for b in spec.BACKENDS}
    for key, value in fits["numpy"].parameters_.items():
        scale = float(np.max(np.abs(value)))
        np.testing.assert_allclose(fits["numba"].parameters_[key], value, rtol=agreement,
                                   atol=agreement * scale, err_msg=key)
    np.testing.assert_allclose(fits["numba"].costs_, fits["numpy"].costs_, rtol=10 * agreement)
    # the NumPy backend is the reference's loop, exactly
    expected, costs = R.L_layer_model(
        X.astype(dtype), check_labels(Y, output, 3, 53, dtype), layer_dims, "tanh", 0.01, 3,
        parameters=R.initialize_parameters(layer_dims, "he", 4, dtype), cost_every=1,
        output_activation=output, seed=4, optimizer="adam", batch_size=16, l2=0.4,
        keep_prob=[0.8, 0.6], sample_weight=weights)
    for key, value in expected.items():
        np.testing.assert_array_equal(fits["numpy"].parameters_[key], value)


def overfitting_problem():
    """60 noisy training columns in 10 dimensions, 500 held out; only x1 matters."""
    generator = np.random.default_rng(0)
    X = generator.standard_normal((10, 60))
    y = (X[0] + 0.3 * generator.standard_normal(60) > 0).astype(int)
    X_val = generator.standard_normal((10, 500))
    return X, y, X_val, (X_val[0] > 0).astype(int)


@pytest.mark.slow  # 8 s; the equations are checked by the gradient checks above
def test_l2_shrinks_the_weights_and_regularisation_raises_the_held_out_score():
    """A [10, 200, 200, 1] relu network fits the 60 columns exactly; on the 500 held out it
    scores 0.880 unregularised, 0.898 with l2 = 5 and 0.892 with keep_prob = 0.5 after 400
    epochs (measured); l2 = 5 shrinks ||W1|| from 20.1 to 4.1."""
    X, y, X_val, y_val = overfitting_problem()
    kw = dict(hidden_activation="relu", learning_rate=0.05, n_epochs=400, seed=0, cost_every=10)
    fits = {name: Model([10, 200, 200, 1], **kw, **extra).fit(X, y, validation_data=(X_val, y_val))
            for name, extra in (("plain", {}), ("l2", {"l2": 5.0}), ("dropout", {"keep_prob": 0.5}))}
    norm = {name: np.linalg.norm(fit.parameters_["W1"]) for name, fit in fits.items()}
    assert norm["l2"] < 0.5 * norm["plain"]
    score = {name: fit.score(X_val, y_val) for name, fit in fits.items()}
    assert score["l2"] > score["plain"] and score["dropout"] > score["plain"]


@pytest.mark.parametrize("backend_name", spec.BACKENDS)
def test_early_stopping_keeps_the_best_epoch_and_stops_within_patience(backend_name):
    X, y, X_val, y_val = overfitting_problem()
    model = Model([10, 100, 1], "relu", learning_rate=0.1, n_epochs=3000, seed=0, cost_every=5,
                  early_stopping=True, patience=40, backend=backend_name)
    model.fit(X, y, validation_data=(X_val, y_val))
    best = int(np.argmin(model.validation_costs_))
    assert model.best_epoch_ == best * 5
    assert model.n_iter_ < 3000 and model.n_iter_ - model.best_epoch_ <= 40 + 5  # + one check
    assert len(model.validation_scores_) == len(model.validation_costs_) == model.n_iter_ // 5 + 1
    steps = backend(backend_name)
    AL, caches = steps.L_model_forward(X_val, model.parameters_, "relu")
    cost = steps.compute_cost_from_logits(caches[-1][1], y_val.reshape(1, -1))
    assert cost == pytest.approx(model.validation_costs_[best], rel=1e-12)
    assert model.score(X_val, y_val) == pytest.approx(model.validation_scores_[best])


def test_early_stopping_without_validation_data_holds_out_a_stratified_share():
    from fastbackprop.model import held_out_columns

    y = np.array([0] * 30 + [1] * 70)
    held = held_out_columns(y.reshape(1, -1).astype(float), 0.2, 3, "sigmoid")
    assert held.size == 20 and np.sum(y[held] == 0) == 6
    np.testing.assert_array_equal(held, held_out_columns(y.reshape(1, -1).astype(float), 0.2, 3,
                                                         "sigmoid"))
    X = np.random.default_rng(0).standard_normal((3, 100))
    model = Model([3, 4, 1], n_epochs=30, seed=3, cost_every=5, early_stopping=True,
                  validation_fraction=0.2, backend="numpy").fit(X, y)
    assert len(model.validation_costs_) >= 2


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(l2=-1), ValueError, "l2 must be a finite number >= 0; got -1"),
    (dict(keep_prob=0), ValueError, r"keep_prob must be a number in \(0, 1\]; got 0"),
    (dict(keep_prob=1.5), ValueError, r"keep_prob must be a number in \(0, 1\]"),
    (dict(keep_prob=[0.5, 0.5]), ValueError, r"one per hidden layer \(1\); got 2 values"),
    (dict(patience=0), ValueError, "patience must be a positive integer; got 0"),
    (dict(validation_fraction=1.0), ValueError, r"validation_fraction must be a number in \(0, 1\)"),
    (dict(early_stopping="yes"), TypeError, "early_stopping must be True or False"),
])
def test_bad_regularisation_settings_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        Model([2, 3, 1], **kwargs)


def test_bad_sample_weights_and_validation_data_are_refused_and_the_model_is_unchanged():
    X = np.random.default_rng(0).standard_normal((2, 6))
    y = np.array([0, 1, 0, 1, 1, 0])
    model = Model([2, 3, 1], n_epochs=3, seed=0, backend="numpy").fit(X, y)
    before = model.parameters_["W1"].copy()
    for kw, match in ((dict(sample_weight=np.ones(5)), r"sample_weight must have shape \(6,\)"),
                      (dict(sample_weight=-np.ones(6)), "sample_weight must hold weights >= 0"),
                      (dict(validation_data=(X[:1], y)), r"X_val must have shape \(2, m\)"),
                      (dict(validation_data=(X, y[:3])), "Y_val must have shape")):
        with pytest.raises(ValueError, match=match):
            model.fit(X, y, **kw)
        np.testing.assert_array_equal(model.parameters_["W1"], before)
