"""Mini-batches, optimisers and learning-rate decay: hand-computed updates, the
shuffle rule, both backends against each other, warm starts, divergence.

Parametrised over ``spec.OPTIMIZERS`` and ``spec.OUTPUTS``: a new optimiser
is tested by adding its entry (and its hand-computed updates below).
"""

import numpy as np
import pytest

from conftest import allocation_counts, assert_close, backend

from fastbackprop import Model, TrainingDivergedError, backends, optimizers, reference as R, rng, spec
from fastbackprop.validation import check_labels

K = backend("numba")
#: The course's optimisers (scikit-learn's variants have tests/test_optimizer_variants.py).
OPTIMIZERS = ["gd", "momentum", "rmsprop", "adam"]
OUTPUTS = list(spec.OUTPUTS)

#: Backends agree after 3 epochs to this, relative to each array's largest entry.
AGREEMENT = {np.float64: 1e-10, np.float32: 1e-4}


def problem(output="softmax", n_x=5, m=53, n_L=3, dtype=np.float64, seed=0):
    """``X`` ``(n_x, m)`` and labels for ``output``; ``m`` is odd, so batches of 16 leave 5."""
    rng_ = np.random.default_rng(seed)
    X = rng_.standard_normal((n_x, m)).astype(dtype)
    if output == "softmax":
        Y = rng_.integers(0, n_L, m)
    elif output == "linear":
        Y = rng_.standard_normal((n_L, m))
    else:
        Y = (rng_.random((n_L, m)) > 0.5).astype(float)
    return X, check_labels(Y, output, n_y=n_L, m=m, dtype=dtype)


# ---------------------------------------------------------------------------
# The update rules, by hand
# ---------------------------------------------------------------------------

#: One parameter, theta = 1, gradients 0.5, -1, 2 in turn; alpha 0.1.
GRADIENTS = [0.5, -1.0, 2.0]


def by_hand(optimizer):
    """The first three values of theta, written out from the course's formulas."""
    alpha, beta, b1, b2, eps = 0.1, 0.9, 0.9, 0.999, 1e-8
    theta, v, s, out = 1.0, 0.0, 0.0, []
    for t, g in enumerate(GRADIENTS, start=1):
        if optimizer == "gd":
            theta = theta - alpha * g
        elif optimizer == "momentum":
            v = beta * v + (1 - beta) * g
            theta = theta - alpha * v
        elif optimizer == "rmsprop":
            s = b2 * s + (1 - b2) * g * g
            theta = theta - alpha * g / (np.sqrt(s) + eps)
        else:
            v = b1 * v + (1 - b1) * g
            s = b2 * s + (1 - b2) * g * g
            theta = theta - alpha * (v / (1 - b1 ** t)) / (np.sqrt(s / (1 - b2 ** t)) + eps)
        out.append(theta)
    return out


#: The same numbers, worked out on paper to 6 digits (a check on the check).
ON_PAPER = {
    "gd": [0.95, 1.05, 0.85],
    "momentum": [0.995, 1.0005, 0.98545],  # v: 0.05, -0.055, 0.1505
    "rmsprop": [-2.162276, 0.666434, -2.094223],  # s: 2.5e-4, 1.24975e-3, 5.2485e-3
    "adam": [0.9, 0.936610, 0.894645],  # v_hat: 0.5, -0.289474, 0.555351; s_hat: 0.25, 0.625188, 1.751251
}


def test_hand_computed_updates_agree_with_the_paper_values():
    for optimizer in OPTIMIZERS:
        np.testing.assert_allclose(by_hand(optimizer), ON_PAPER[optimizer], rtol=2e-6,
                                   err_msg=optimizer)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_first_three_updates_of_one_parameter_equal_the_hand_computed_values(optimizer):
    """The reference's rule and the kernels' fused update, one parameter ``W1`` (1, 1)."""
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


@pytest.mark.parametrize("time_interval", [None, 4])
def test_the_decay_schedule_against_the_formulas(time_interval):
    from fastbackprop.kernels import training

    for epoch in (0, 1, 10):
        steps = epoch if time_interval is None else epoch // time_interval
        expected = 0.3 / (1 + 0.5 * steps)
        assert optimizers.learning_rate_at(0.3, epoch, 0.5, time_interval) == pytest.approx(expected)
        hyper = training.Hyper(0.3, 1, 0.9, 0.9, 0.999, 1e-8, 0.5, time_interval or 0, 0, False,
                               np.uint64(0))
        assert training.learning_rate_at(hyper, epoch) == pytest.approx(expected, rel=1e-15)
    assert optimizers.learning_rate_at(0.3, 7, 0.0, None) == 0.3  # no decay: constant


# ---------------------------------------------------------------------------
# Mini-batches and the shuffle rule
# ---------------------------------------------------------------------------


def test_the_shuffle_is_the_same_in_numpy_and_in_the_kernels():
    from fastbackprop.kernels import rng as kernel_rng

    for m, seed, epoch in ((1, 0, 0), (2, 5, 3), (53, 0, 0), (53, 0, 1), (1000, 2**40, 7)):
        perm = np.empty(m, dtype=np.int64)
        kernel_rng.permute(perm, seed, epoch)
        np.testing.assert_array_equal(perm, rng.permutation(m, seed, epoch))
        np.testing.assert_array_equal(np.sort(perm), np.arange(m))  # every column once
    assert not np.array_equal(rng.permutation(50, 0, 0), rng.permutation(50, 0, 1))
    assert not np.array_equal(rng.permutation(50, 0, 0), rng.permutation(50, 1, 0))


def test_mini_batches_cut_the_shuffled_columns_in_order_and_keep_the_short_last_batch():
    X = np.arange(2 * 53, dtype=float).reshape(2, 53)
    Y = X[:1] * 10
    batches = R.random_mini_batches(X, Y, 16, seed=3, epoch=2)
    assert [b[0].shape[1] for b in batches] == [16, 16, 16, 5]
    order = np.concatenate([b[0][0] for b in batches]).astype(int)
    np.testing.assert_array_equal(order, rng.permutation(53, 3, 2))
    np.testing.assert_array_equal(np.concatenate([b[1][0] for b in batches]), order * 10)
    in_order = R.random_mini_batches(X, Y, 16, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in in_order], axis=1), X)
    assert len(R.random_mini_batches(X, Y, None)) == 1


def test_full_batch_gd_is_exactly_the_course_loop_and_one_unshuffled_batch_is_the_same():
    X, Y = problem("sigmoid", n_L=1)
    parameters = R.initialize_parameters([5, 7, 1], seed=1)
    full = K.train(parameters, X, Y, "tanh", 0.1, 20, 1)
    one_batch = K.train(parameters, X, Y, "tanh", 0.1, 20, 1, batch_size=53, shuffle=False)
    big_batch = K.train(parameters, X, Y, "tanh", 0.1, 20, 1, batch_size=1000, shuffle=False)
    for key, value in full.parameters.items():
        np.testing.assert_array_equal(one_batch.parameters[key], value)
        np.testing.assert_array_equal(big_batch.parameters[key], value)
    np.testing.assert_array_equal(one_batch.costs, full.costs)
    expected, costs = R.L_layer_model(X, Y, [5, 7, 1], "tanh", 0.1, 20, parameters=parameters,
                                      cost_every=1)
    ours, our_costs = R.L_layer_model(X, Y, [5, 7, 1], "tanh", 0.1, 20, parameters=parameters,
                                      cost_every=1, batch_size=53, shuffle=False)
    for key in expected:
        np.testing.assert_array_equal(ours[key], expected[key])
        assert_close(full.parameters[key], expected[key], np.float64, factor=100)


# ---------------------------------------------------------------------------
# Both backends, every optimiser and output layer
# ---------------------------------------------------------------------------


#: float32 compiles a trainer per optimiser and output again: CI's default run keeps
#: float32 for Adam (and test_regularisation checks every output in float32 with Adam);
#: the rest of the float32 cross-product runs with `-m slow`.
AGREEMENT_DTYPES = [np.float64, pytest.param(np.float32, marks=pytest.mark.slow, id="float32")]


@pytest.mark.parametrize("dtype", AGREEMENT_DTYPES)
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_both_backends_agree_after_three_shuffled_epochs_with_a_partial_batch(optimizer, output,
                                                                              dtype):
    X, Y = problem(output, dtype=dtype)
    kw = dict(output_activation=output, learning_rate=0.01, n_epochs=3, seed=4, dtype=dtype,
              optimizer=optimizer, batch_size=16, decay_rate=0.2, cost_every=1)
    fits = {b: Model([5, 7, 3], "tanh", backend=b, **kw).fit(X, Y) for b in spec.BACKENDS}
    numba, numpy = fits["numba"], fits["numpy"]
    assert numba.t_ == numpy.t_ == 12 and numba.n_iter_ == 3
    for key, value in numpy.parameters_.items():
        assert numba.parameters_[key].dtype == dtype
        scale = float(np.max(np.abs(value)))
        np.testing.assert_allclose(numba.parameters_[key], value, rtol=AGREEMENT[dtype],
                                   atol=AGREEMENT[dtype] * scale, err_msg=key)
    for slot in spec.OPTIMIZERS[optimizer].state:
        for key, value in numpy.optimizer_state_[slot].items():
            np.testing.assert_allclose(numba.optimizer_state_[slot][key], value,
                                       rtol=AGREEMENT[dtype] * 10,
                                       atol=AGREEMENT[dtype] * float(np.max(np.abs(value))))
    np.testing.assert_allclose(numba.costs_, numpy.costs_, rtol=AGREEMENT[dtype] * 10)
    # and both equal the reference's own loop (the teaching text)
    reference, costs = R.L_layer_model(
        X, Y, [5, 7, 3], "tanh", 0.01, 3, parameters=R.initialize_parameters(
            [5, 7, 3], "he", 4, dtype), cost_every=1, output_activation=output, seed=4,
        optimizer=optimizer, batch_size=16, decay_rate=0.2)
    for key, value in reference.items():
        np.testing.assert_array_equal(numpy.parameters_[key], value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layer_dims", [[300, 20, 3], [300, 3]], ids=["L=2", "L=1"])
def test_both_backends_agree_where_a_gathered_batch_goes_to_blas(layer_dims, dtype):
    """A gathered batch holds its examples as rows, and the first layer's products with
    it, ``W1 X_b^T`` and ``dZ1 X_b``, run in BLAS at these sizes (the short last batch
    too): the compiled epochs still agree with the NumPy backend. With ``L = 1`` the
    output layer is the first."""
    from test_kernels import product_route

    m, batch = 101, 64
    n_x, n_1 = layer_dims[0], layer_dims[1]
    for columns in (batch, m - batch):  # W1 X_b^T (NT: out n_1 x columns), dZ1 X_b (NN: A = dZ1)
        assert product_route(n_1, n_x, columns, n_1 * columns) == "blas"
        assert product_route(n_1, columns, n_x, n_1 * columns) == "blas"
    X, Y = problem("softmax", n_x=layer_dims[0], m=m, n_L=layer_dims[-1], dtype=dtype)
    kw = dict(output_activation="softmax", learning_rate=0.01, n_epochs=3, seed=2,
              dtype=dtype, optimizer="adam", batch_size=batch, cost_every=1)
    fits = {b: Model(layer_dims, "relu", backend=b, **kw).fit(X, Y) for b in spec.BACKENDS}
    numba, numpy = fits["numba"], fits["numpy"]
    assert numba.t_ == numpy.t_ == 6
    for key, value in numpy.parameters_.items():
        scale = float(np.max(np.abs(value)))
        np.testing.assert_allclose(numba.parameters_[key], value, rtol=AGREEMENT[dtype],
                                   atol=AGREEMENT[dtype] * scale, err_msg=key)
    np.testing.assert_allclose(numba.costs_, numpy.costs_, rtol=AGREEMENT[dtype] * 10)


@pytest.mark.parametrize("output", OUTPUTS)
def test_adam_in_float32_agrees_across_backends(output):
    """The float32 row of the cross-product above that CI's default run keeps."""
    test_both_backends_agree_after_three_shuffled_epochs_with_a_partial_batch(
        "adam", output, np.float32)


def test_the_same_seed_gives_the_same_fit_and_another_seed_another():
    X, Y = problem()
    kw = dict(output_activation="softmax", optimizer="adam", batch_size=8, n_epochs=2,
              learning_rate=0.01)
    a = Model([5, 4, 3], seed=1, **kw).fit(X, Y)
    b = Model([5, 4, 3], seed=1, **kw).fit(X, Y)
    c = Model([5, 4, 3], seed=2, **kw).fit(X, Y)
    np.testing.assert_array_equal(a.parameters_["W2"], b.parameters_["W2"])
    assert not np.array_equal(a.parameters_["W2"], c.parameters_["W2"])
    # the same initialisation and another shuffle also differ
    d = Model([5, 4, 3], seed=1, **kw).fit(X, Y, parameters=c.parameters_)
    e = Model([5, 4, 3], seed=2, **kw).fit(X, Y, parameters=c.parameters_)
    assert not np.array_equal(d.parameters_["W1"], e.parameters_["W1"])


@pytest.mark.parametrize("backend_name", spec.BACKENDS)
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_a_resumed_fit_equals_an_uninterrupted_one_bit_for_bit(backend_name, optimizer, tmp_path):
    X, Y = problem()
    kw = dict(output_activation="softmax", optimizer=optimizer, batch_size=16, seed=7,
              learning_rate=0.02, decay_rate=0.1, cost_every=1, backend=backend_name)
    five = Model([5, 6, 3], "relu", n_epochs=5, **kw).fit(X, Y)
    two = Model([5, 6, 3], "relu", n_epochs=2, **kw).fit(X, Y)
    two.save(tmp_path / "two.npz")
    resumed = Model.load(tmp_path / "two.npz")
    resumed.set_params(n_epochs=3)
    resumed.fit(X, Y, warm_start=True)
    assert (resumed.n_iter_, resumed.t_) == (five.n_iter_, five.t_) == (5, 20)
    for key, value in five.parameters_.items():
        np.testing.assert_array_equal(resumed.parameters_[key], value, err_msg=key)
    np.testing.assert_array_equal(resumed.costs_, five.costs_)


def test_divergence_with_adam_keeps_finite_parameters_and_state():
    X, Y = problem("linear", n_L=2)
    X = X * 1e3
    for backend_name in spec.BACKENDS:
        model = Model([5, 6, 2], "relu", "linear", optimizer="adam", batch_size=16,
                      learning_rate=1e200, n_epochs=20, seed=0, backend=backend_name)
        with pytest.raises(TrainingDivergedError) as caught:
            model.fit(X, Y)
        error = caught.value
        assert not hasattr(model, "parameters_")
        assert all(np.all(np.isfinite(v)) for v in error.parameters.values())
        assert error.t < 4 * 20 and error.epoch < 20


#: (optimizer, learning rate) -> where it fails, with 3 batches a call (``run(1)``, 53
#: columns in batches of 20): every way back of the compiled loop, which updates in place.
DIVERGING = {
    ("momentum", 1e3): "a cost at the call's third step: back to the checkpoint, 1 update again",
    ("gd", 1.0): "a cost at the call's second step: back to the checkpoint",
    ("momentum", 1e9): "the call's first update: back to the checkpoint",
    ("gd", 1e3): "the call's second update: back to the checkpoint, 1 update again",
    ("momentum", 1e15): "a cost at the call's first step: the previous call's state",
    ("momentum", 1e27): "the call's last update: the state before it",
    ("momentum", 1e42): "a cost in the first call: back to the initial state, 1 update again",
}


@pytest.mark.parametrize("optimizer,learning_rate", list(DIVERGING), ids=list(DIVERGING.values()))
def test_a_diverging_fit_keeps_the_same_state_in_both_backends(optimizer, learning_rate):
    """The kept parameters and optimiser state, the update and epoch counts of a fit that
    diverges, with mini-batches, dropout and L2: the compiled loop (in place, going back by
    replaying from a checkpoint) against the NumPy trainer (which keeps the previous state)."""
    rng_ = np.random.default_rng(0)
    X = rng_.standard_normal((5, 53))
    Y = check_labels(rng_.standard_normal((2, 53)), "linear", n_y=2, m=53, dtype=np.float64)
    parameters = R.initialize_parameters([5, 6, 2], "he", 0)
    trainers = {}
    for name in spec.BACKENDS:
        trainer = backends.get(name).Trainer(parameters, X, Y, "relu", learning_rate, 1,
                                        output_activation="linear", optimizer=optimizer,
                                        batch_size=20, keep_prob=0.8, l2=0.5, seed=1)
        while trainer.status == "ok" and trainer.n_iter < 40:
            trainer.run(1)
        trainers[name] = trainer
    numba, numpy = trainers["numba"], trainers["numpy"]
    assert numba.status == numpy.status != "ok"
    assert (numba.t, numba.n_iter, numba.failed_at) == (numpy.t, numpy.n_iter, numpy.failed_at)
    state = [numba.parameters] + list(numba.optimizer_state.values())
    expected = [numpy.parameters] + list(numpy.optimizer_state.values())
    for ours, theirs in zip(state, expected):
        for key, value in theirs.items():
            assert np.all(np.isfinite(ours[key]))
            np.testing.assert_allclose(ours[key], value, rtol=1e-10,
                                       atol=1e-10 * float(np.max(np.abs(value))), err_msg=key)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(optimizer="sgd"), ValueError, r"optimizer must be one of \['gd', 'momentum', 'rmsprop', 'adam', 'sgd_momentum', 'nesterov', 'adam_folded'\]; got 'sgd'"),
    (dict(batch_size=0), ValueError, "batch_size must be None or an integer >= 1; got 0"),
    (dict(batch_size=2.5), TypeError, "batch_size must be None or an integer >= 1"),
    (dict(beta=1.0), ValueError, r"beta must be a number in \[0, 1\); got 1.0"),
    (dict(beta1=-0.1), ValueError, r"beta1 must be a number in \[0, 1\)"),
    (dict(beta2=np.nan), ValueError, r"beta2 must be a number in \[0, 1\)"),
    (dict(epsilon=0), ValueError, "epsilon must be a finite number > 0; got 0"),
    (dict(decay_rate=-1), ValueError, "decay_rate must be a finite number >= 0; got -1"),
    (dict(time_interval=0), ValueError, "time_interval must be a positive integer; got 0"),
    (dict(shuffle="yes"), TypeError, "shuffle must be True or False; got 'yes'"),
    (dict(n_epochs=0), ValueError, "n_epochs must be a positive integer; got 0"),
])
def test_bad_hyperparameters_are_refused_before_any_work(kwargs, error, match):
    with pytest.raises(error, match=match):
        Model([2, 3, 1], **kwargs)


def test_adam_in_mini_batches_learns_digits_in_fewer_epochs_than_full_batch_gd():
    """Digits, 30% held out: Adam (alpha 0.001, batches of 64) reaches 95% test
    accuracy after 23 epochs; full-batch gradient descent (alpha 0.5) after 70
    (measured). The test asks for the first within 30 epochs and the second
    not before 50."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.3, random_state=0)

    def epochs_to_95(**kw):
        model = Model([64, 64, 10], "relu", "softmax", seed=0, n_epochs=1, **kw)
        model.fit(X_train.T, y_train)
        for epoch in range(1, 200):
            if model.score(X_test.T, y_test) >= 0.95:
                return epoch
            model.fit(X_train.T, y_train, warm_start=True)
        return None

    adam = epochs_to_95(optimizer="adam", batch_size=64, learning_rate=0.001)
    gd = epochs_to_95(learning_rate=0.5)
    assert adam is not None and adam <= 30
    assert gd is None or gd >= 50


ALLOCATION_CHECK = """
import numpy as np
from numba.core.runtime import rtsys
from fastbackprop import kernels as K, reference as R
from fastbackprop.validation import check_labels
rng = np.random.default_rng(0)
X = rng.standard_normal((20, 300))
Y = check_labels(rng.integers(0, 4, 300), "softmax", n_y=4, m=300)
for optimizer in ("gd", "adam"):
    trainer = K.Trainer(R.initialize_parameters([20, 32, 4], seed=0), X, Y, "relu", 0.01,
                        cost_every=1, output_activation="softmax", optimizer=optimizer,
                        batch_size=64)
    trainer.run(2)
    counts = []
    for n in (1, 50):
        before = rtsys.get_allocation_stats().alloc
        trainer.run(n)
        counts.append(rtsys.get_allocation_stats().alloc - before)
    print(*counts)
"""


def test_the_compiled_epoch_loop_allocates_nothing_per_step():
    """Numba's allocation counter: 50 epochs of 5 mini-batches allocate what 1 epoch does."""
    counts = allocation_counts(ALLOCATION_CHECK)
    assert len(counts) == 2
    for one, fifty in counts:
        assert one == fifty, counts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(spec.OPTIMIZERS))
def test_an_update_given_two_rows_is_the_update_of_their_sum_to_the_bit(name, dtype):
    """kernels/optimizers.py: ``other`` (a partner thread's row) is added as it is read, with
    the same parameters and state, to the bit, as a pass that adds it first, over a share
    ``lo .. hi - 1`` (odd ends), and nothing outside the share changed."""
    from numba import njit

    from fastbackprop.kernels import training
    from fastbackprop.kernels.optimizers import optimizer_update

    code = spec.OPTIMIZERS[name].code

    @njit
    def two_rows(current, grad, other, hyper, spans):
        return optimizer_update(code, current, grad, grad.dtype.type(1 / 7),
                                grad.dtype.type(0.01), hyper, 3, spans, other)

    @njit
    def one_row(current, grad, hyper, spans):
        return optimizer_update(code, current, grad, grad.dtype.type(1 / 7),
                                grad.dtype.type(0.01), hyper, 3, spans)

    g = np.random.default_rng(1)
    n, slots = 37, len(spec.OPTIMIZERS[name].state)
    f = dtype
    hyper = training.Hyper(f(0.01), 1, f(0.9), f(0.9), f(0.999), f(1e-8), f(0), 0, 0, False,
                           np.uint64(0))
    current = g.standard_normal(n * (1 + slots)).astype(dtype)
    if slots:
        current[n:] = np.abs(current[n:])  # second moments are >= 0
    grad, other = (g.standard_normal(n).astype(dtype) for _ in range(2))
    a, b = current.copy(), current.copy()
    lo, hi = 3, 30
    spans = np.array([[lo, hi]], dtype=np.int64)
    total_two = two_rows(a, grad.copy(), other, hyper, spans)
    total_one = one_row(b, grad + other, hyper, spans)
    np.testing.assert_array_equal(a, b)
    # the returned sum (for the finiteness check) may add its lanes in another order
    np.testing.assert_allclose(total_two, total_one, rtol=1e-12 if dtype == np.float64 else 1e-5)
    outside = np.ones(current.size, dtype=bool)  # every part's entries beyond the share
    for j in range(1 + slots):
        outside[j * n + lo:j * n + hi] = False
    np.testing.assert_array_equal(a[outside], current[outside])
    assert not np.array_equal(a[lo:hi], current[lo:hi])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(spec.OPTIMIZERS))
def test_an_update_over_several_spans_is_the_updates_of_each_to_the_bit(name, dtype):
    """kernels/optimizers.py: one call over several spans (a thread's share in a step split
    by hidden units: kernels/units.py) makes, to the bit, the parameters and state of one
    call per span, and touches nothing outside them; an empty span changes nothing."""
    from numba import njit

    from fastbackprop.kernels import training
    from fastbackprop.kernels.optimizers import optimizer_update

    code = spec.OPTIMIZERS[name].code

    @njit
    def update(current, grad, hyper, spans):
        return optimizer_update(code, current, grad, grad.dtype.type(1 / 7),
                                grad.dtype.type(0.01), hyper, 3, spans)

    g = np.random.default_rng(2)
    n, slots = 41, len(spec.OPTIMIZERS[name].state)
    f = dtype
    hyper = training.Hyper(f(0.01), 1, f(0.9), f(0.9), f(0.999), f(1e-8), f(0), 0, 0, False,
                           np.uint64(0))
    current = g.standard_normal(n * (1 + slots)).astype(dtype)
    if slots:
        current[n:] = np.abs(current[n:])  # second moments are >= 0
    grad = g.standard_normal(n).astype(dtype)
    spans = np.array([[2, 5], [9, 9], [11, 30], [33, 34]], dtype=np.int64)
    a, b = current.copy(), current.copy()
    total = update(a, grad, hyper, spans)
    totals = sum(update(b, grad, hyper, spans[r:r + 1]) for r in range(len(spans)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(total, totals, rtol=1e-12 if dtype == np.float64 else 1e-5)
    inside = np.zeros(n, dtype=bool)
    for lo, hi in spans:
        inside[lo:hi] = True
    for j in range(1 + slots):
        part = slice(j * n, (j + 1) * n)
        np.testing.assert_array_equal(a[part][~inside], current[part][~inside])
    assert not np.array_equal(a[:n][inside], current[:n][inside])
