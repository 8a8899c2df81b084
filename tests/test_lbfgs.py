"""fastbackprop.lbfgs: the layout between scikit-learn's packed parameters and the kernels',
the compiled pass with sample weights, scikit-learn's objective against calculus and against
scikit-learn's own ``_loss_grad_lbfgs``, and the call to scipy.

(The estimators' ``solver="lbfgs"`` against scikit-learn's fits is in ``test_sklearn.py``.)
"""

import numpy as np
import pytest

from fastbackprop import activations, lbfgs, reference as R
from fastbackprop.kernels import pack

HIDDEN = list(activations.HIDDEN)

#: scikit-learn's output layers (its ``out_activation_``) -> the package's.
OUTPUTS = {"logistic": "sigmoid", "softmax": "softmax", "identity": "linear"}


def problem(units, m, output, seed=0, weighted=False):
    """``X`` ``(m, n_0)`` rows, targets ``Y`` ``(m, n_L)`` for ``output`` (scikit-learn's
    name), sample weights (or None) and random coefs/intercepts, scikit-learn's layout."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, units[0]))
    n_L = units[-1]
    if output == "softmax":
        Y = np.eye(n_L)[rng.integers(0, n_L, m)]
    elif output == "logistic":
        Y = (rng.random((m, n_L)) > 0.5).astype(float)
    else:
        Y = rng.standard_normal((m, n_L))
    w = None
    if weighted:
        w = rng.uniform(0, 3, m)
        w[1] = 0.0
    coefs = [rng.uniform(-1, 1, (a, b)) for a, b in zip(units[:-1], units[1:])]
    intercepts = [rng.uniform(-0.5, 0.5, b) for b in units[1:]]
    return X, Y, w, coefs, intercepts


def objective(X, Y, w, units, hidden, output, alpha, divisor=1, clip=False):
    layout = lbfgs.Layout(units)
    engine = lbfgs.CompiledPass(X.T, Y.T, units, hidden, OUTPUTS[output], w)
    s = float(len(X) if w is None else np.sum(w))
    clip = lbfgs.LogLossClip(Y.T, w, OUTPUTS[output]) if clip else None
    return lbfgs.Objective(engine, layout, alpha, s, divisor, clip), layout


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("units", [[3, 1], [4, 5, 2], [2, 3, 4, 1], [1, 1, 1]], ids=str)
def test_the_layout_maps_scikit_learns_vector_to_the_kernels_and_back(units):
    _, _, _, coefs, intercepts = problem(units, 3, "identity")
    layout = lbfgs.Layout(units)
    x = layout.pack(coefs, intercepts)
    # scikit-learn's _pack: every coef raveled, then every intercept
    np.testing.assert_array_equal(x, np.hstack([a.ravel() for a in coefs + intercepts]))
    parameters = {}
    for l, (c, i) in enumerate(zip(coefs, intercepts), start=1):
        parameters[f"W{l}"], parameters[f"b{l}"] = c.T, i.reshape(-1, 1)
    theta = pack(parameters, units, np.float64)
    np.testing.assert_array_equal(x[layout.to_kernels], theta)
    np.testing.assert_array_equal(theta[layout.to_sklearn], x)
    back_coefs, back_intercepts = layout.unpack(x)
    for a, b in zip(back_coefs + back_intercepts, coefs + intercepts):
        np.testing.assert_array_equal(a, b)
    assert layout.n_coefs == sum(c.size for c in coefs) and layout.size == x.size


def test_the_layout_refuses_shapes_that_do_not_fit():
    layout = lbfgs.Layout([3, 2, 1])
    with pytest.raises(ValueError, match=r"coefs and intercepts must have shapes \[\(3, 2\)"):
        layout.pack([np.zeros((2, 3)), np.zeros((2, 1))], [np.zeros(2), np.zeros(1)])
    with pytest.raises(ValueError, match=r"x must have shape \(11,\); got \(10,\)"):
        layout.unpack(np.zeros(10))
    with pytest.raises(ValueError, match="layer_units must be at least two sizes >= 1"):
        lbfgs.Layout([3, 0, 1])


# ---------------------------------------------------------------------------
# The compiled pass
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("output", list(OUTPUTS))
def test_the_compiled_pass_is_the_kernels_gradient_sums_and_the_weighted_reference(output):
    from fastbackprop.kernels import gradient_sums

    units = [5, 6, 4, 3]
    X, Y, w, coefs, intercepts = problem(units, 23, output, weighted=True)
    theta = lbfgs.Layout(units).pack(coefs, intercepts)[lbfgs.Layout(units).to_kernels]
    hidden = "tanh"
    grad, loss = lbfgs.CompiledPass(X.T, Y.T, units, hidden, OUTPUTS[output])(theta)
    expected, expected_loss = gradient_sums(theta, X.T, Y.T, units, hidden, OUTPUTS[output])
    np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=1e-13 * np.abs(expected).max())
    assert loss == pytest.approx(expected_loss, rel=1e-13)
    # weighted: the reference's weighted cost and gradient, times m (they are means)
    engine = lbfgs.CompiledPass(X.T, Y.T, units, hidden, OUTPUTS[output], w)
    grad, loss = engine(theta)
    parameters = R.vector_to_parameters(theta, units)
    AL, caches = R.L_model_forward(X.T, parameters, hidden, OUTPUTS[output])
    grads = R.L_model_backward(AL, Y.T, caches, hidden, "dZ", OUTPUTS[output], sample_weight=w)
    m = len(X)
    reference = R.gradients_to_vector(grads, len(units) - 1).ravel() * m
    np.testing.assert_allclose(grad, reference, rtol=1e-12, atol=1e-12 * np.abs(reference).max())
    assert loss == pytest.approx(
        R.compute_cost_from_logits(caches[-1][1], Y.T, OUTPUTS[output], sample_weight=w) * m,
        rel=1e-12)
    again, _ = engine(theta.copy())  # the buffers are overwritten, not accumulated into
    np.testing.assert_array_equal(again, grad)


def test_the_compiled_pass_refuses_what_does_not_fit():
    X, Y = np.zeros((3, 5)), np.zeros((2, 5))
    with pytest.raises(ValueError, match=r"X must have shape \(4, m\); got \(3, 5\)"):
        lbfgs.CompiledPass(X, Y, [4, 2], "relu", "linear")
    with pytest.raises(ValueError, match=r"Y must have shape \(1, 5\); got \(2, 5\)"):
        lbfgs.CompiledPass(X, Y, [3, 1], "relu", "linear")
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(5,\)"):
        lbfgs.CompiledPass(X, Y, [3, 2], "relu", "linear", np.ones(4))
    with pytest.raises(ValueError, match="hidden_activation must be one of"):
        lbfgs.CompiledPass(X, Y, [3, 2], "swish", "linear")
    engine = lbfgs.CompiledPass(X, Y, [3, 2], "relu", "linear")
    with pytest.raises(ValueError, match=r"theta must be a C-contiguous float64 array of "
                                         r"shape \(8,\); got float32"):
        engine(np.zeros(8, dtype=np.float32))


# ---------------------------------------------------------------------------
# scikit-learn's objective: against calculus, and against scikit-learn's code
# ---------------------------------------------------------------------------


def relative_gradient_error(fun, x, epsilon=1e-6):
    """``||g - g_fd|| / (||g|| + ||g_fd||)`` with centred differences of ``fun``'s value."""
    _, g = fun(x)
    numeric = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = epsilon
        numeric[i] = (fun(x + e)[0] - fun(x - e)[0]) / (2 * epsilon)
    return float(np.linalg.norm(g - numeric) / (np.linalg.norm(g) + np.linalg.norm(numeric)))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output,n_L", [("logistic", 1), ("logistic", 3), ("softmax", 4),
                                        ("identity", 1)])
def test_the_objectives_gradient_is_its_derivative(output, n_L, hidden, weighted):
    """``J`` = the weighted mean loss + ``(alpha / 2s) sum ||W||^2``: its gradient against
    centred finite differences, every output layer, every hidden activation, weights or
    not (the biases are not penalised: ``alpha`` is large enough here to show it)."""
    units = [4, 5, 3, n_L]
    X, Y, w, coefs, intercepts = problem(units, 9, output, seed=2, weighted=weighted)
    fun, layout = objective(X, Y, w, units, hidden, output, alpha=0.7)
    assert relative_gradient_error(fun, layout.pack(coefs, intercepts)) < 1e-7


def test_for_several_squared_error_outputs_the_gradient_is_d_times_the_losss():
    """scikit-learn's squared loss averages the ``d`` outputs, its gradient sums them: the
    data term's gradient is ``d`` times the derivative of the loss (the penalty's is 1)."""
    units = [3, 4, 3]
    X, Y, w, coefs, intercepts = problem(units, 8, "identity", seed=3, weighted=True)
    x = lbfgs.Layout(units).pack(coefs, intercepts)
    plain, _ = objective(X, Y, w, units, "relu", "identity", alpha=0.0, divisor=3)
    assert relative_gradient_error(lambda v: (3 * plain(v)[0], plain(v)[1]), x) < 1e-7
    summed, _ = objective(X, Y, w, units, "relu", "identity", alpha=0.0)
    assert plain(x)[0] == pytest.approx(summed(x)[0] / 3, rel=1e-15)
    np.testing.assert_array_equal(plain(x)[1], summed(x)[1])


def test_the_gradient_check_catches_a_wrong_factor():
    """Not vacuous: an engine whose gradient is off by a factor in one layer, or the
    penalty's gradient with the wrong sign, fails it."""
    units = [4, 5, 2]
    X, Y, w, coefs, intercepts = problem(units, 9, "softmax", seed=2, weighted=True)
    fun, layout = objective(X, Y, w, units, "tanh", "softmax", alpha=0.7)
    x = layout.pack(coefs, intercepts)
    assert relative_gradient_error(fun, x) < 1e-7
    engine = fun.engine

    def off(theta):
        grad, loss = engine(theta)
        grad = grad.copy()
        grad[-2:] *= 1.5  # the last bias
        return grad, loss

    wrong = lbfgs.Objective(off, layout, 0.7, fun.weight_sum)
    assert relative_gradient_error(wrong, x) > 1e-3
    wrong = lbfgs.Objective(engine, layout, 0.7, fun.weight_sum)
    wrong.alpha = -0.7  # the gradient's penalty term with the wrong sign; J keeps +0.7
    wrong_fun = lambda v: (fun(v)[0], wrong(v)[1])  # noqa: E731
    assert relative_gradient_error(wrong_fun, x) > 1e-3


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("output,n_L", [("logistic", 1), ("logistic", 3), ("softmax", 4),
                                        ("identity", 1), ("identity", 3)])
def test_the_objective_is_scikit_learns_loss_grad_lbfgs(output, n_L, activation, weighted):
    """Loss and gradient equal scikit-learn's own ``_loss_grad_lbfgs`` at random points, to
    rounding, for every output layer, hidden activation and weighting."""
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from fastbackprop.sklearn import ACTIVATIONS

    units = [5, 6, 4, n_L]
    X, Y, w, coefs, intercepts = problem(units, 31, output, seed=4, weighted=weighted)
    alpha = 0.3
    theirs = (MLPRegressor if output == "identity" else MLPClassifier)(
        hidden_layer_sizes=units[1:-1], activation=activation, alpha=alpha)
    theirs.n_layers_, theirs.out_activation_ = len(units), output
    theirs.coefs_, theirs.intercepts_ = list(coefs), list(intercepts)
    if output != "identity":
        theirs.loss = "log_loss"
    layout = lbfgs.Layout(units)
    theirs._coef_indptr, theirs._intercept_indptr = [], []
    start = 0
    for a, b in zip(units[:-1], units[1:]):
        theirs._coef_indptr.append((start, start + a * b, (a, b)))
        start += a * b
    for b in units[1:]:
        theirs._intercept_indptr.append((start, start + b))
        start += b
    ours, _ = objective(X, Y, w, units, ACTIVATIONS[activation], output, alpha,
                        divisor=n_L if output == "identity" else 1, clip=output != "identity")
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = layout.pack(coefs, intercepts) * rng.uniform(0.5, 2, layout.size)
        buffers = ([X] + [None] * (len(units) - 1), [None] * (len(units) - 1),
                   [np.empty((a, b)) for a, b in zip(units[:-1], units[1:])],
                   [np.empty(b) for b in units[1:]])
        J_theirs, g_theirs = theirs._loss_grad_lbfgs(x.copy(), X, Y, w, *buffers)
        J, g = ours(x)
        assert J == pytest.approx(J_theirs, rel=1e-13)
        np.testing.assert_allclose(g, g_theirs, rtol=1e-12, atol=1e-13 * np.abs(g_theirs).max())


@pytest.mark.parametrize("output", ["softmax", "logistic"])
def test_where_scikit_learn_clips_or_rounds_the_probabilities_its_loss_is_reproduced(output):
    """An example far on the wrong side: scikit-learn's clipped (softmax) or rounded
    (sigmoid, ``log(1 - p)``) loss, not the exact one from the logits."""
    pytest.importorskip("sklearn")
    from sklearn.neural_network._base import LOSS_FUNCTIONS

    units = [2, 3, 1 if output == "logistic" else 3]
    X, Y, w, coefs, intercepts = problem(units, 6, output, seed=7, weighted=True)
    layout = lbfgs.Layout(units)
    x = layout.pack(coefs, intercepts)
    engine = lbfgs.CompiledPass(X.T, Y.T, units, "identity", OUTPUTS[output], w)
    A = engine.output  # after each call below
    loss_name = "binary_log_loss" if output == "logistic" else "log_loss"
    for scale, should_recompute in ((1.0, False), (40.0, True), (60.0, True)):
        theta = (x * scale)[layout.to_kernels]
        _, exact = engine(theta)
        clip = lbfgs.LogLossClip(Y.T, w, OUTPUTS[output])
        theirs = LOSS_FUNCTIONS[loss_name](Y, A().T.copy(), w) * np.sum(w)
        assert clip(A(), exact) == pytest.approx(theirs, rel=1e-13), scale
        assert clip.recomputed == should_recompute
        if should_recompute:  # the exact loss is not scikit-learn's there
            assert abs(exact - theirs) > 1e-6 * theirs, scale


def test_another_engine_can_be_swapped_in():
    """The objective reads only the engine's sums: a NumPy engine (the reference, as a
    later multi-threaded engine would) gives the same loss and gradient."""
    units = [4, 5, 3]
    X, Y, w, coefs, intercepts = problem(units, 17, "softmax", seed=6, weighted=True)
    compiled, layout = objective(X, Y, w, units, "relu", "softmax", alpha=0.2)

    def numpy_engine(theta):
        parameters = R.vector_to_parameters(theta, units)
        AL, caches = R.L_model_forward(X.T, parameters, "relu", "softmax")
        grads = R.L_model_backward(AL, Y.T, caches, "relu", "dZ", "softmax", sample_weight=w)
        m = len(X)
        loss = R.compute_cost_from_logits(caches[-1][1], Y.T, "softmax", sample_weight=w) * m
        return R.gradients_to_vector(grads, len(units) - 1).ravel() * m, loss

    numpy = lbfgs.Objective(numpy_engine, layout, 0.2, compiled.weight_sum)
    x = layout.pack(coefs, intercepts)
    assert numpy(x)[0] == pytest.approx(compiled(x)[0], rel=1e-13)
    np.testing.assert_allclose(numpy(x)[1], compiled(x)[1], rtol=1e-12, atol=1e-15)
    result = lbfgs.minimize(numpy, x, max_iter=5)
    assert result.nit == 5 and numpy.evaluations >= 5


def test_the_objective_refuses_bad_arguments():
    layout = lbfgs.Layout([2, 1])
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0; got -1"):
        lbfgs.Objective(None, layout, -1, 3.0)
    with pytest.raises(ValueError, match="weight_sum must be a finite number > 0; got 0"):
        lbfgs.Objective(None, layout, 0.1, 0)


def test_scipy_gets_scikit_learns_options():
    options = lbfgs.scipy_options(max_iter=7, max_fun=50, tol=1e-3, verbose=True)
    assert {k: options[k] for k in ("maxiter", "maxfun", "gtol")} == {
        "maxiter": 7, "maxfun": 50, "gtol": 1e-3}
    import scipy

    old = tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 15)
    assert ("iprint" in options) == old
