"""scikit-learn's optimisers as table entries: ``sgd_momentum``, ``nesterov``, ``adam_folded``.

Hand-computed updates, scikit-learn's own optimiser classes as the oracle
(``sklearn.neural_network._stochastic_optimizers``), the NumPy rules against
the fused kernels, both backends' trainers against each other, and a resumed
fit against an uninterrupted one.
"""

import numpy as np
import pytest

from fastbackprop import Model, backends, reference as R, spec
from fastbackprop.validation import check_labels

VARIANTS = ["sgd_momentum", "nesterov", "adam_folded"]

#: One parameter, theta = 1, gradients 0.5, -1, 2 in turn; alpha 0.1, beta 0.9.
GRADIENTS = [0.5, -1.0, 2.0]
HYPER = dict(beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8)


def by_hand(optimizer, alpha=0.1):
    """The first three values of theta, written out from the rules in ``spec.OPTIMIZERS``."""
    beta, b1, b2, eps = HYPER["beta"], HYPER["beta1"], HYPER["beta2"], HYPER["epsilon"]
    theta, v, s, out = 1.0, 0.0, 0.0, []
    for t, g in enumerate(GRADIENTS, start=1):
        if optimizer == "sgd_momentum":
            v = beta * v - alpha * g
            theta = theta + v
        elif optimizer == "nesterov":
            v = beta * v - alpha * g
            theta = theta + beta * v - alpha * g
        else:
            v = b1 * v + (1 - b1) * g
            s = b2 * s + (1 - b2) * g * g
            theta = theta - alpha * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * v / (np.sqrt(s) + eps)
        out.append(theta)
    return out


#: Worked out on paper (a check on the check).
ON_PAPER = {
    "sgd_momentum": [0.95, 1.005, 0.8545],     # v: -0.05, 0.055, -0.1505
    "nesterov": [0.905, 1.0545, 0.71905],      # W += 0.9 v - 0.1 g
    # t = 1: the step is alpha sqrt(1 - b2) / (1 - b1) = sqrt(0.001); |v| / sqrt(s) =
    # sqrt(0.001) as well, so W moves by 0.1 (less epsilon's share, 6.3e-9)
    "adam_folded": [0.9000000063, 0.9366104, 0.8946449],
}


def test_hand_computed_updates_agree_with_the_paper_values():
    for optimizer in VARIANTS:
        np.testing.assert_allclose(by_hand(optimizer), ON_PAPER[optimizer], rtol=2e-7,
                                   err_msg=optimizer)


def test_the_table_entries_have_their_rules_and_kernels():
    from fastbackprop import optimizers
    from fastbackprop.kernels import optimizers as kernel_optimizers

    for name in VARIANTS:
        entry = spec.OPTIMIZERS[name]
        assert name in optimizers.RULES
        assert entry.code in kernel_optimizers.OPTIMIZER_KERNELS
        assert set(entry.hyperparameters) <= set(spec.OPTIMIZER_DEFAULTS)
    assert spec.OPTIMIZERS["adam_folded"].state == ("v", "s")
    assert spec.OPTIMIZERS["nesterov"].state == spec.OPTIMIZERS["sgd_momentum"].state == ("v",)


@pytest.mark.parametrize("optimizer", VARIANTS)
def test_first_three_updates_of_one_parameter_equal_the_hand_computed_values(optimizer):
    """The NumPy rule and the fused kernel, one parameter ``W1`` (1, 1)."""
    from fastbackprop.kernels import optimizers as kernel_optimizers, training

    expected = by_hand(optimizer)
    parameters = {"W1": np.ones((1, 1))}
    state = R.initialize_optimizer(parameters, optimizer)
    slots = len(spec.OPTIMIZERS[optimizer].state)
    current = np.zeros(1 + slots)
    current[0] = 1.0
    hyper = training.Hyper(0.1, 1, 0.9, 0.9, 0.999, 1e-8, 0.0, 0, 0, False, np.uint64(0))
    update = kernel_optimizers.OPTIMIZER_KERNELS[spec.OPTIMIZERS[optimizer].code]
    for t, (g, theta) in enumerate(zip(GRADIENTS, expected), start=1):
        parameters, state = R.update_parameters_with_optimizer(
            parameters, {"dW1": np.full((1, 1), g)}, state, t, 0.1, optimizer)
        assert parameters["W1"][0, 0] == pytest.approx(theta, rel=1e-14)
        # raw gradient sum 2g over m = 2 columns: the kernel applies 1/m itself
        update(current, np.array([2 * g]), 0.5, 0.1, hyper, t)  # in place
        assert current[0] == pytest.approx(theta, rel=1e-14)


def _sklearn_optimizer(optimizer, params, learning_rate):
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

    if optimizer == "adam_folded":
        return AdamOptimizer(params, learning_rate, 0.8, 0.99, 1e-7)
    return SGDOptimizer(params, learning_rate, "constant", 0.7, optimizer == "nesterov")


@pytest.mark.parametrize("optimizer", VARIANTS)
def test_the_rules_and_kernels_equal_scikit_learns_optimizers(optimizer):
    """Six updates of two arrays from random gradients, the learning rate changed after three
    (as ``learning_rate="adaptive"`` and ``"invscaling"`` do): scikit-learn's optimiser,
    the NumPy rule and the fused kernel agree to rounding."""
    pytest.importorskip("sklearn")
    from fastbackprop import optimizers
    from fastbackprop.kernels import optimizers as kernel_optimizers, training

    rng = np.random.default_rng(0)
    theta = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal((3, 1))}
    ours = {k: v.copy() for k, v in theta.items()}
    theirs = [theta["W1"].copy(), theta["b1"].copy()]
    sk = _sklearn_optimizer(optimizer, theirs, 0.05)
    state = optimizers.initialize_state(ours, optimizer)
    hp = optimizers.Hyperparameters(beta=0.7, beta1=0.8, beta2=0.99, epsilon=1e-7)
    n = 15
    slots = len(spec.OPTIMIZERS[optimizer].state)
    current = np.zeros(n * (1 + slots))
    current[:n] = np.concatenate([theta["W1"].ravel(), theta["b1"].ravel()])
    hyper = training.Hyper(0.05, 1, 0.7, 0.8, 0.99, 1e-7, 0.0, 0, 0, False, np.uint64(0))
    kernel = kernel_optimizers.OPTIMIZER_KERNELS[spec.OPTIMIZERS[optimizer].code]
    alpha = 0.05
    for t in range(1, 7):
        if t == 4:
            alpha = 0.01
            sk.learning_rate = sk.learning_rate_init = alpha
        grads = {"dW1": rng.standard_normal((3, 4)), "db1": rng.standard_normal((3, 1))}
        sk.update_params(theirs, [grads["dW1"], grads["db1"]])
        ours, state = optimizers.update(ours, grads, state, t, alpha, optimizer, hp)
        raw = 4.0 * np.concatenate([grads["dW1"].ravel(), grads["db1"].ravel()])
        kernel(current, raw, 0.25, alpha, hyper, t)  # in place; 4 columns: the kernel divides
        for mine in (ours["W1"], current[:12].reshape(3, 4)):
            np.testing.assert_allclose(mine, theirs[0], rtol=1e-13, atol=1e-13)
        for mine in (ours["b1"], current[12:15].reshape(3, 1)):
            np.testing.assert_allclose(mine, theirs[1], rtol=1e-13, atol=1e-13)


def _problem(output, dtype, n_x=5, m=53, n_L=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m)).astype(dtype)
    if output == "softmax":
        Y = rng.integers(0, n_L, m)
    elif output == "linear":
        Y = rng.standard_normal((n_L, m))
    else:
        Y = (rng.random((n_L, m)) > 0.5).astype(float)
    return X, check_labels(Y, output, n_y=n_L, m=m, dtype=dtype)


def _backends_agree(optimizer, output, dtype, beta=0.9):
    X, Y = _problem(output, dtype)
    kw = dict(output_activation=output, learning_rate=0.01, n_epochs=3, seed=4, dtype=dtype,
              optimizer=optimizer, batch_size=16, decay_rate=0.2, cost_every=1, beta=beta)
    fits = {b: Model([5, 7, 3], "relu", backend=b, **kw).fit(X, Y) for b in spec.BACKENDS}
    numba, numpy = fits["numba"], fits["numpy"]
    assert numba.t_ == numpy.t_ == 12 and numba.n_iter_ == 3
    tol = {np.float64: 1e-10, np.float32: 1e-4}[dtype]
    for key, value in numpy.parameters_.items():
        assert numba.parameters_[key].dtype == dtype
        np.testing.assert_allclose(numba.parameters_[key], value, rtol=tol,
                                   atol=tol * float(np.max(np.abs(value))), err_msg=key)
    for slot in spec.OPTIMIZERS[optimizer].state:
        for key, value in numpy.optimizer_state_[slot].items():
            np.testing.assert_allclose(numba.optimizer_state_[slot][key], value, rtol=tol * 10,
                                       atol=tol * float(np.max(np.abs(value))))
    np.testing.assert_allclose(numba.costs_, numpy.costs_, rtol=tol * 10)


# One output layer and dtype per optimiser in the default run, those fastbackprop.sklearn's
# tests compile too (each combination is a compilation of the training loop, seconds
# each, when Numba's cache is cold); every combination under -m slow.
@pytest.mark.parametrize("optimizer,output,dtype", [
    ("sgd_momentum", "sigmoid", np.float64),
    ("nesterov", "softmax", np.float64),
    ("adam_folded", "softmax", np.float32),
])
def test_both_backends_agree_after_three_shuffled_epochs_with_a_partial_batch(optimizer, output,
                                                                              dtype):
    _backends_agree(optimizer, output, dtype)


@pytest.mark.parametrize("optimizer,output", [("sgd_momentum", "sigmoid"), ("nesterov", "exp")])
def test_beta_of_one_keeps_the_whole_velocity_in_both_backends(optimizer, output):
    """scikit-learn's ``momentum=1`` (``v := v - alpha dW``): the backends agree, and
    the velocity is the sum of every step's ``-alpha dW`` (none of it decays)."""
    _backends_agree(optimizer, output, np.float64, beta=1.0)
    X, Y = _problem(output, np.float64)
    Trainer = backends.get("numba").Trainer
    start = R.initialize_parameters([5, 7, 3], seed=4)
    kw = dict(cost_every=1, output_activation=output, optimizer=optimizer, beta=1.0,
              batch_size=None)
    trainer = Trainer(start, X, Y, "relu", 0.01, **kw)
    steps = []
    for _ in range(3):
        AL, caches = R.L_model_forward(X, trainer.parameters, "relu", output)
        grads = R.L_model_backward(AL, Y, caches, "relu", "dZ", output)
        steps.append({k: -0.01 * g for k, g in grads.items() if k[:2] in ("dW", "db")})
        trainer.run(1)
    for key, v in trainer.optimizer_state["v"].items():
        np.testing.assert_allclose(v, sum(step[key] for step in steps), rtol=1e-10,
                                   atol=1e-14, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output", list(spec.OUTPUTS))
@pytest.mark.parametrize("optimizer", VARIANTS)
def test_both_backends_agree_for_every_output_and_dtype(optimizer, output, dtype):
    _backends_agree(optimizer, output, dtype)


@pytest.mark.parametrize("optimizer", ["nesterov", "adam_folded"])
def test_a_resumed_trainer_equals_an_uninterrupted_one_bit_for_bit(optimizer):
    """Two epochs, then a new trainer from the parameters, the state, ``t`` and the epoch
    reached, three more: the five epochs of one trainer, also with the learning rate
    changed between runs."""
    Trainer = backends.get("numba").Trainer
    X, Y = _problem("softmax", np.float64)
    start = R.initialize_parameters([5, 6, 3], seed=7)
    kw = dict(cost_every=1, output_activation="softmax", optimizer=optimizer, batch_size=16,
              seed=3)
    whole = Trainer(start, X, Y, "relu", 0.02, **kw)
    whole.run(2)
    whole.set_learning_rate(0.01)
    whole.run(3)
    first = Trainer(start, X, Y, "relu", 0.02, **kw)
    first.run(2)
    rest = Trainer(first.parameters, X, Y, "relu", 0.01, start_epoch=2, t=first.t,
                   optimizer_state=first.optimizer_state, **kw)
    rest.run(3)
    assert (rest.n_iter, rest.t) == (whole.n_iter, whole.t) == (5, 20)
    for key, value in whole.parameters.items():
        np.testing.assert_array_equal(rest.parameters[key], value, err_msg=key)
    np.testing.assert_array_equal(np.concatenate([first.costs, rest.costs]), whole.costs)
