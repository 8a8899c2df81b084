"""fastbackprop.sklearn: scikit-learn's MLPClassifier and MLPRegressor on the compiled trainer.

scikit-learn's own estimator checks; the same initial weights, updates and
stopping as scikit-learn's classes (compared with them where the batches are
the same, ``shuffle=False``); sample and class weights against calculus;
labels of every type; pipelines, searches, pickling, pandas; and (slow) the
test scores on digits and breast_cancer within 0.01 of scikit-learn's.
"""

import functools
import inspect
import io
import pickle
import subprocess
import sys
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network as sk  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbackprop import backends, reference as R  # noqa: E402
from fastbackprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ---------------------------------------------------------------------------
# scikit-learn's estimator checks
# ---------------------------------------------------------------------------


#: Checks that may not pass, with the reason, per solver (see docs/sklearn.md).
EXPECTED_FAILED_CHECKS = {
    "lbfgs": {"check_classifiers_multilabel_output_format_predict_proba": (
        "scikit-learn's own MLPClassifier(solver='lbfgs') fails it too: L-BFGS fits the "
        "check's data until some probabilities round to exactly 1.0, and the check wants "
        "them below 1 (test_scikit_learns_own_lbfgs_classifier_fails_the_same_check)")},
}


def _expected_failed_checks(estimator):
    if estimator.solver == "lbfgs" and isinstance(estimator, MLPClassifier):
        return EXPECTED_FAILED_CHECKS["lbfgs"]
    return {}


@parametrize_with_checks([MLPClassifier(), MLPRegressor(), MLPClassifier(solver="lbfgs"),
                          MLPRegressor(solver="lbfgs")],
                         expected_failed_checks=_expected_failed_checks)
def test_scikit_learns_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@parametrize_with_checks([MLPClassifier(backend="numpy"), MLPRegressor(backend="numpy"),
                          MLPClassifier(solver="lbfgs", backend="numpy")],
                         expected_failed_checks=_expected_failed_checks)
def test_scikit_learns_estimator_checks_on_the_numpy_backend(estimator, check):
    """The same checks with ``backend="numpy"`` (the tests' ``auto`` runs numba: conftest.py),
    where a first fit of ``backend="auto"`` may run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_scikit_learns_own_lbfgs_classifier_fails_the_same_check():
    """The one expected failure is scikit-learn's too (if it stops failing there, the
    expectation here should go)."""
    from sklearn.utils.estimator_checks import (
        check_classifiers_multilabel_output_format_predict_proba as check,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for cls in (sk.MLPClassifier, MLPClassifier):
            with pytest.raises(AssertionError, match="probabilities of the positive class"):
                check(cls.__name__, cls(solver="lbfgs"))


def test_importing_fastbackprop_does_not_import_scikit_learn():
    code = ("import sys, fastbackprop; fastbackprop.Model; fastbackprop.kernels; "
            "assert 'sklearn' not in sys.modules, 'sklearn imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr


def test_the_constructors_take_scikit_learns_parameters_with_its_defaults():
    extensions = {"n_threads": None, "batch_norm": False, "batch_norm_momentum": 0.9,
                  "batch_norm_epsilon": 1e-5, "backend": "auto"}
    for ours, theirs, extra in ((MLPClassifier, sk.MLPClassifier,
                                 {"class_weight": None, **extensions}),
                                (MLPRegressor, sk.MLPRegressor, extensions)):
        mine = ours().get_params()
        assert mine == {**theirs().get_params(), **extra}
        ours_sig = list(inspect.signature(ours).parameters)
        theirs_sig = list(inspect.signature(theirs).parameters)
        assert ours_sig[:len(theirs_sig)] == theirs_sig
        assert "Differences from scikit-learn's class" in ours.__doc__  # each one written down
        assert "nesterovs_momentum" in ours.__doc__ and "beta_1" in ours.__doc__


# ---------------------------------------------------------------------------
# The same model as scikit-learn's
# ---------------------------------------------------------------------------


def _data(n=120, n_features=6, classes=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=4,
                               n_redundant=0, n_classes=classes, random_state=seed)
    return StandardScaler().fit_transform(X), y


def _assert_same_fit(ours, theirs, rtol=1e-9):
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    assert ours.out_activation_ == theirs.out_activation_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=rtol)


def test_the_initial_weights_are_scikit_learns_glorot_draws():
    X, y = _data()
    for activation in ("relu", "logistic", "identity"):  # Glorot's factor 6, 2, 6
        kw = dict(hidden_layer_sizes=(7, 5), activation=activation, random_state=3,
                  max_iter=1, learning_rate_init=1e-300)
        ours, theirs = MLPClassifier(**kw).fit(X, y), sk.MLPClassifier(**kw).fit(X, y)
        for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("solver,extra", [
    ("adam", {}),
    ("sgd", {}),                                   # Nesterov's momentum
    ("sgd", {"nesterovs_momentum": False}),
    ("sgd", {"momentum": 1.0}),                    # no friction: v keeps all of itself
    ("sgd", {"momentum": 1.0, "nesterovs_momentum": False}),
    ("sgd", {"momentum": 0.0}),
    ("sgd", {"learning_rate": "invscaling", "power_t": 0.3}),
    ("sgd", {"learning_rate": "adaptive", "tol": 0.05, "n_iter_no_change": 2}),
])
def test_without_shuffling_the_updates_are_scikit_learns(solver, extra):
    """The same batches in the same order (``shuffle=False``): the same weights, losses,
    stopping epoch and ``t_`` as scikit-learn's classes, to rounding."""
    X, y = _data(n=90)
    kw = dict(hidden_layer_sizes=(8,), solver=solver, shuffle=False, batch_size=32,
              max_iter=15, random_state=0, learning_rate_init=0.01, alpha=0.01, **extra)
    _assert_same_fit(MLPClassifier(**kw).fit(X, y), sk.MLPClassifier(**kw).fit(X, y))


@pytest.mark.parametrize("activation", ["relu", *(pytest.param(name, marks=pytest.mark.slow)
                                                   for name in ("identity", "tanh", "logistic"))])
def test_every_activation_is_scikit_learns(activation):
    """Each hidden activation, ``identity`` included, with adam and sgd (``shuffle=False``):
    scikit-learn's weights, losses and stopping, to the tolerance of the tests above."""
    X, y = _data(n=90)
    for solver in ("adam", "sgd"):
        kw = dict(hidden_layer_sizes=(8, 5), activation=activation, solver=solver,
                  shuffle=False, batch_size=32, max_iter=12, random_state=0,
                  learning_rate_init=0.01, alpha=0.01)
        _assert_same_fit(MLPClassifier(**kw).fit(X, y), sk.MLPClassifier(**kw).fit(X, y))
        _assert_same_fit(MLPRegressor(**kw).fit(X, X[:, 0] - X[:, 1] ** 2),
                         sk.MLPRegressor(**kw).fit(X, X[:, 0] - X[:, 1] ** 2))


def _fit_counting_calls(monkeypatch, estimator, X, y, one_epoch_a_call):
    """``estimator.fit(X, y)`` (warnings kept), and the epochs of each trainer call."""
    from fastbackprop import sklearn as ours

    calls = []
    real = ours._BaseMLP._epochs_per_call

    def counted(self, incremental):
        calls.append(1 if one_epoch_a_call else real(self, incremental))
        return calls[-1]

    monkeypatch.setattr(ours._BaseMLP, "_epochs_per_call", counted)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(X, y)
            error = None
        except ValueError as e:
            error = str(e)
    monkeypatch.setattr(ours._BaseMLP, "_epochs_per_call", real)
    return calls, error, [str(w.message) for w in caught]


@pytest.mark.parametrize("cls,kw,ends,chunked", [
    (MLPClassifier, dict(tol=1e-2, n_iter_no_change=3, max_iter=60), "stops", True),
    (MLPClassifier, dict(tol=0, max_iter=23), "max_iter", True),
    (MLPClassifier, dict(solver="sgd", learning_rate="adaptive", tol=5e-2, n_iter_no_change=2,
                         max_iter=40), "stops", True),  # the rate / 5 on the way
    (MLPRegressor, dict(solver="sgd", learning_rate_init=0.2, momentum=0.99, tol=0,
                        max_iter=40), "diverges", True),  # at the 7th epoch, of a call's 11
    (MLPClassifier, dict(solver="sgd", learning_rate="invscaling", max_iter=8), "max_iter",
     False),  # a new rate after every epoch
    (MLPClassifier, dict(early_stopping=True, max_iter=30), "stops", False),  # scores
    (MLPRegressor, dict(tol=1e-2, n_iter_no_change=4, max_iter=50, alpha=0.3,
                        learning_rate_init=0.03), "stops", True),  # after 36 epochs
    (MLPRegressor, dict(max_iter=12, n_outputs=2), "max_iter", False),  # loss reads weights
])
def test_several_epochs_a_call_give_what_one_epoch_a_call_gives(monkeypatch, cls, kw, ends,
                                                                chunked):
    """The epoch loop runs several epochs per trainer call when no bookkeeping in between
    can change the training (``_epochs_per_call``): the same weights, losses, counters,
    warnings and errors, bit for bit, as one epoch a call, with shuffled batches."""
    X, y = _data(n=150)
    kw = dict(kw)
    if kw.pop("n_outputs", 1) == 2:
        y = np.column_stack([X[:, 0] - X[:, 1], X[:, 2] ** 2])
    elif cls is MLPRegressor:
        y = X[:, 0] - 2 * X[:, 1] ** 2
    kw = dict(dict(hidden_layer_sizes=(9,), batch_size=32, random_state=0), **kw)
    fits = {}
    for one in (True, False):
        model = cls(**kw)
        calls, error, caught = _fit_counting_calls(monkeypatch, model, X, y, one)
        fits[one] = model, calls, error, caught
    (a, calls_a, error_a, caught_a), (b, calls_b, error_b, caught_b) = fits[True], fits[False]
    assert (error_a, caught_a) == (error_b, caught_b)
    for name in ("n_iter_", "t_", "loss_", "loss_curve_", "best_loss_", "_no_improvement_count"):
        assert getattr(a, name, None) == getattr(b, name, None), name
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(u, v)
    assert set(calls_a) == {1}
    assert (max(calls_b) > 1) == chunked
    assert (error_a is not None) == (ends == "diverges")
    assert (a.n_iter_ == kw["max_iter"]) == (ends == "max_iter")


def test_binary_multilabel_and_regression_updates_are_scikit_learns():
    X, y = _data(n=70, classes=2)
    kw = dict(hidden_layer_sizes=(6, 4), shuffle=False, batch_size=20,
              max_iter=8, random_state=1, learning_rate_init=0.01, tol=0)
    _assert_same_fit(MLPClassifier(**kw).fit(X, y), sk.MLPClassifier(**kw).fit(X, y))
    Y = np.column_stack([y, 1 - y, X[:, 0] > 0])
    _assert_same_fit(MLPClassifier(**kw).fit(X, Y), sk.MLPClassifier(**kw).fit(X, Y))
    target = X[:, 0] - 2 * X[:, 1] ** 2
    _assert_same_fit(MLPRegressor(**kw).fit(X, target), sk.MLPRegressor(**kw).fit(X, target))


def _counts(X, n_outputs=1, seed=0):
    """Poisson counts whose log-mean is a smooth function of ``X``'s first columns."""
    rng = np.random.default_rng(seed)
    log_mu = 0.5 + 0.6 * X[:, 0] - 0.3 * X[:, 1] ** 2
    y = np.column_stack([rng.poisson(np.exp(log_mu + 0.4 * k * X[:, 2]))
                         for k in range(n_outputs)]).astype(float)
    return y[:, 0] if n_outputs == 1 else y


@pytest.mark.parametrize("solver,extra", [
    ("adam", {}),
    ("sgd", {}),
    ("sgd", {"nesterovs_momentum": False, "momentum": 1.0}),
    ("adam", {"n_outputs": 3}),
    ("adam", {"weighted": True, "batch_size": 90}),
])
def test_poisson_loss_is_scikit_learns(solver, extra):
    """``loss='poisson'``: the output ``exp`` (scikit-learn's ``out_activation_``) and the
    half Poisson deviance, summed over the outputs (its squared error averages them): the
    same weights, loss curve and stopping as scikit-learn's, one or several outputs, with
    sample weights (one batch), and ``predict`` is ``exp(Z_L)``."""
    extra = dict(extra)
    n_outputs, weighted = extra.pop("n_outputs", 1), extra.pop("weighted", False)
    X, _ = _data(n=90)
    y = _counts(X, n_outputs)
    w = np.random.default_rng(2).uniform(0, 3, len(X)) if weighted else None
    kw = dict(dict(loss="poisson", hidden_layer_sizes=(8, 5), solver=solver, shuffle=False,
                   batch_size=32, max_iter=15, random_state=0, learning_rate_init=0.01,
                   alpha=0.01), **extra)
    ours = MLPRegressor(**kw).fit(X, y, sample_weight=w)
    theirs = sk.MLPRegressor(**kw).fit(X, y, sample_weight=w)
    assert ours.out_activation_ == "exp"
    _assert_same_fit(ours, theirs)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9)
    assert ours.predict(X).shape == y.shape and np.all(ours.predict(X) > 0)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-9)


def test_poisson_loss_refuses_negative_targets_naming_them():
    """scikit-learn's Poisson loss is NaN for y < 0 (it takes log y) and trains on; here the
    fit is refused, naming the first negative target."""
    X, _ = _data(n=20)
    y = _counts(X)
    y[7] = -1.0
    with pytest.raises(ValueError, match=r"y must be >= 0 for loss='poisson' \(counts or "
                       r"rates: its half Poisson deviance takes log y\); found -1.0 at sample 7$"):
        MLPRegressor(loss="poisson", max_iter=1).fit(X, y)
    Y = _counts(X, 2)
    Y[3, 1] = -2.0
    with pytest.raises(ValueError, match=r"found -2.0 at sample 3, output 1$"):
        MLPRegressor(loss="poisson", max_iter=1).fit(X, Y)
    MLPRegressor(max_iter=1).fit(X, y)  # the squared error takes any real


def test_early_stopping_splits_scores_and_restores_the_best_as_scikit_learn():
    X, y = _data(n=200)
    kw = dict(hidden_layer_sizes=(10,), shuffle=False, max_iter=30, random_state=0,
              early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, tol=0.01,
              learning_rate_init=0.01)
    ours, theirs = MLPClassifier(**kw).fit(X, y), sk.MLPClassifier(**kw).fit(X, y)
    assert ours.best_loss_ is None and ours.validation_scores_ == pytest.approx(
        theirs.validation_scores_)
    assert ours.best_validation_score_ == theirs.best_validation_score_
    assert ours.n_iter_ == theirs.n_iter_ < 30
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_partial_fit_carries_the_optimiser_as_scikit_learn():
    """Three ``partial_fit`` calls equal scikit-learn's three, which keep Adam's moments."""
    X, y = _data(n=60)
    kw = dict(hidden_layer_sizes=(5,), shuffle=False, random_state=0, learning_rate_init=0.02)
    ours, theirs = MLPClassifier(**kw), sk.MLPClassifier(**kw)
    for _ in range(3):
        ours.partial_fit(X, y, classes=[0, 1, 2])
        theirs.partial_fit(X, y, classes=[0, 1, 2])
    _assert_same_fit(ours, theirs)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_continues_from_the_fitted_weights_with_a_new_optimiser():
    X, y = _data(n=60)
    kw = dict(hidden_layer_sizes=(5,), shuffle=False, random_state=0, max_iter=4, tol=0,
              warm_start=True, learning_rate_init=0.02)
    ours, theirs = MLPClassifier(**kw), sk.MLPClassifier(**kw)
    for _ in range(2):
        ours.fit(X, y)
        theirs.fit(X, y)
    _assert_same_fit(ours, theirs)
    assert len(ours.loss_curve_) == 8
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        ours.fit(X, np.where(y == 2, 1, y))


# ---------------------------------------------------------------------------
# L-BFGS
# ---------------------------------------------------------------------------

#: What scikit-learn does not set for solver="lbfgs" (nor do these classes).
LBFGS_ABSENT = ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_")


def _assert_same_lbfgs_fit(ours, theirs, rtol=1e-8):
    """scikit-learn's L-BFGS fit: iterations, loss, weights (and their dtype) to ``rtol``,
    each array norm-wise (``atol = rtol * max|theirs|``), and the same attributes."""
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_ == 0
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=rtol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    for name in LBFGS_ABSENT:
        assert hasattr(ours, name) == hasattr(theirs, name), name


def _lbfgs_problems():
    """(name, class pair, X, y) for each kind of target scikit-learn's MLPs fit."""
    X, y = _data(n=80, classes=3)
    X2, y2 = _data(n=80, classes=2, seed=1)
    multilabel = np.column_stack([y == 0, y == 1, X[:, 0] > 0]).astype(int)
    target = X[:, 0] - 2 * X[:, 1] ** 2
    poisson = functools.partial(MLPRegressor, loss="poisson")
    sk_poisson = functools.partial(sk.MLPRegressor, loss="poisson")
    return {
        "binary": (MLPClassifier, sk.MLPClassifier, X2, y2),
        "multiclass": (MLPClassifier, sk.MLPClassifier, X, y),
        "multilabel": (MLPClassifier, sk.MLPClassifier, X, multilabel),
        "regression": (MLPRegressor, sk.MLPRegressor, X, target),
        "multi-output": (MLPRegressor, sk.MLPRegressor, X,
                         np.column_stack([target, np.sin(X[:, 2]), X[:, 3]])),
        "poisson": (poisson, sk_poisson, X, _counts(X)),
        "multi-output-poisson": (poisson, sk_poisson, X, _counts(X, 3)),
    }


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("problem", ["binary", "multiclass", "multilabel", "regression",
                                     "multi-output", "poisson", "multi-output-poisson"])
def test_lbfgs_is_scikit_learns(problem, activation, weighted):
    """The same ``random_state``: scikit-learn's weights to 1e-8 after 20 iterations
    (measured by ``tools/lbfgs_agreement.py``: median 1.5e-13, at most 1.7e-9). The
    iterations of a non-convex L-BFGS amplify rounding: scikit-learn against itself with
    one ulp of noise on its loss and gradient drifts as far (at most 1.8e-9 here), and
    to 1e-6 and more by 100 iterations."""
    ours_cls, theirs_cls, X, y = _lbfgs_problems()[problem]
    w = np.random.default_rng(1).uniform(0, 3, len(X)) if weighted else None
    kw = dict(hidden_layer_sizes=(7, 4), activation=activation, solver="lbfgs", max_iter=20,
              random_state=0, alpha=0.01)
    ours = ours_cls(**kw).fit(X, y, sample_weight=w)
    theirs = theirs_cls(**kw).fit(X, y, sample_weight=w)
    _assert_same_lbfgs_fit(ours, theirs)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("problem", ["binary", "multiclass", "multilabel", "regression",
                                     "multi-output", "poisson", "multi-output-poisson"])
def test_lbfgs_on_float32_is_scikit_learns_to_float32_rounding(problem, activation, weighted):
    """scikit-learn's L-BFGS on float32 ``X``: scipy hands the loss function float32
    points (``x0`` is float32), so the passes run in float32 while scipy's state stays
    float64, and ``coefs_`` end float64; so here. The two float32 passes round
    differently (6e-8 per operation), and L-BFGS amplifies it: after 5 iterations the
    weights agree to 1e-3 (measured by ``tools/lbfgs_agreement.py --dtype float32
    --max-iter 5``: median 6e-7, at most 1.0e-4 over these 40 cases; scikit-learn
    against itself with one float32 ulp of relative noise on each loss and gradient
    entry: median 3e-7, at most 1.2e-4; after 20 iterations both reach 4e-2)."""
    ours_cls, theirs_cls, X, y = _lbfgs_problems()[problem]
    X = X.astype(np.float32)
    w = np.random.default_rng(1).uniform(0, 3, len(X)) if weighted else None
    kw = dict(hidden_layer_sizes=(7, 4), activation=activation, solver="lbfgs", max_iter=5,
              random_state=0, alpha=0.01)
    ours = ours_cls(**kw).fit(X, y, sample_weight=w)
    theirs = theirs_cls(**kw).fit(X, y, sample_weight=w)
    assert all(c.dtype == np.float64 for c in ours.coefs_ + ours.intercepts_)
    _assert_same_lbfgs_fit(ours, theirs, rtol=1e-3)


def test_lbfgs_convergence_max_iter_and_max_fun_as_scikit_learn():
    """``tol`` is scipy's ``gtol``: a fit that converges stops at scikit-learn's iteration,
    without a warning; ``max_iter`` and ``max_fun`` stop it with scikit-learn's
    ``ConvergenceWarning``, word for word."""
    X, y = _data(n=80)

    def fit(cls, **kw):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = cls(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, **kw).fit(X, y)
        return model, [str(w.message) for w in caught if w.category is ConvergenceWarning]

    ours, warned = fit(MLPClassifier, activation="identity")  # converges: nearly convex
    theirs, their_warnings = fit(sk.MLPClassifier, activation="identity")
    assert ours.n_iter_ < 200 and warned == their_warnings == []
    _assert_same_lbfgs_fit(ours, theirs)
    ours, warned = fit(MLPClassifier, tol=1e-2)  # converges early with a larger gtol
    theirs, their_warnings = fit(sk.MLPClassifier, tol=1e-2)
    assert ours.n_iter_ < 200 and warned == their_warnings == []
    _assert_same_lbfgs_fit(ours, theirs)
    for kw, status in ((dict(max_iter=5), "ITERATIONS REACHED LIMIT"),
                       (dict(max_fun=4), "F,G EVALUATIONS EXCEEDS LIMIT")):
        ours, warned = fit(MLPClassifier, **kw)
        theirs, their_warnings = fit(sk.MLPClassifier, **kw)
        assert len(warned) == 1 and status in warned[0] and warned == their_warnings
        assert warned[0].startswith(f"lbfgs failed to converge after {ours.n_iter_} iteration")
        _assert_same_lbfgs_fit(ours, theirs)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scikit-learn's overflowing products
def test_lbfgs_on_overflowing_data_ends_as_scikit_learns():
    """A loss that is not finite at the start: scipy stops at once, in both (no error,
    ``n_iter_`` 0, ``loss_`` NaN, the initial weights)."""
    X, _ = _data(n=40)
    kw = dict(hidden_layer_sizes=(4,), solver="lbfgs", random_state=0, activation="identity")
    ours = MLPRegressor(**kw).fit(X * 1e200, X[:, 0] * 1e200)
    theirs = sk.MLPRegressor(**kw).fit(X * 1e200, X[:, 0] * 1e200)
    assert ours.n_iter_ == theirs.n_iter_ == 0 and np.isnan(ours.loss_) and np.isnan(theirs.loss_)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_array_equal(a, b)


def test_lbfgs_warm_start_early_stopping_and_class_weight():
    """A warm start continues from ``coefs_`` (``n_iter_`` counts the new run only, as in
    scikit-learn); ``early_stopping`` is not used by L-BFGS; a class weight is the
    sample weight it implies."""
    X, y = _data(n=80)
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", random_state=0, max_iter=8,
              warm_start=True)
    ours, theirs = MLPClassifier(**kw), sk.MLPClassifier(**kw)
    for _ in range(2):
        ours.fit(X, y)
        theirs.fit(X, y)
    _assert_same_lbfgs_fit(ours, theirs)
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", random_state=0, max_iter=10)
    stopping = MLPClassifier(early_stopping=True, **kw).fit(X, y)
    _assert_same_lbfgs_fit(stopping, sk.MLPClassifier(early_stopping=True, **kw).fit(X, y))
    plain = MLPClassifier(**kw).fit(X, y)
    for a, b in zip(stopping.coefs_, plain.coefs_):
        np.testing.assert_array_equal(a, b)
    weights = {0: 2.0, 1: 0.5, 2: 1.0}
    by_class = MLPClassifier(class_weight=weights, **kw).fit(X, y)
    by_sample = MLPClassifier(**kw).fit(X, y, sample_weight=np.vectorize(weights.get)(y))
    for a, b in zip(by_class.coefs_, by_sample.coefs_):
        np.testing.assert_array_equal(a, b)


def test_lbfgs_partial_fit_is_as_in_scikit_learn():
    """The classifier has no ``partial_fit`` with L-BFGS (scikit-learn's error, word for
    word); scikit-learn 1.9's regressor has one (its ``available_if`` condition is never
    false), which runs an L-BFGS fit from the current weights: so here."""
    X, y = _data(n=40)
    model, reference = MLPClassifier(solver="lbfgs"), sk.MLPClassifier(solver="lbfgs")
    assert not hasattr(model, "partial_fit") and not hasattr(reference, "partial_fit")
    with pytest.raises(AttributeError) as caught:
        model.partial_fit  # noqa: B018
    with pytest.raises(AttributeError) as their_caught:
        reference.partial_fit  # noqa: B018
    assert str(caught.value) == str(their_caught.value)
    assert str(caught.value.__cause__) == str(their_caught.value.__cause__) == (
        "partial_fit is only available for stochastic optimizers. lbfgs is not stochastic.")
    assert hasattr(model.set_params(solver="sgd"), "partial_fit")
    kw = dict(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, max_iter=6)
    ours, theirs = MLPRegressor(**kw), sk.MLPRegressor(**kw)
    for _ in range(2):
        ours.partial_fit(X, X[:, 0])
        theirs.partial_fit(X, X[:, 0])
    _assert_same_lbfgs_fit(ours, theirs)


def test_lbfgs_verbose_prints_what_scikit_learns_prints(capfd):
    """scikit-learn passes ``iprint`` to scipy only below SciPy 1.15 (which deprecated it):
    the same output (none, from 1.15), on Python's streams and the C library's."""
    X, y = _data(n=40)
    kw = dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=3, verbose=True, random_state=0)
    sk.MLPClassifier(**kw).fit(X, y)
    theirs = capfd.readouterr()
    MLPClassifier(**kw).fit(X, y)
    assert capfd.readouterr() == theirs


def test_lbfgs_on_sparse_input_is_the_dense_fit():
    """Issue 29: sparse X trains over its nonzeros (no longer densified, so the sums run in
    another order): the same parameters to 1e-10 of the largest."""
    from scipy import sparse

    X, y = _data(n=60)
    X[np.abs(X) < 0.5] = 0
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", random_state=0, max_iter=10)
    dense, thin = MLPClassifier(**kw).fit(X, y), MLPClassifier(**kw).fit(sparse.csr_matrix(X), y)
    for a, b in zip(dense.coefs_ + dense.intercepts_, thin.coefs_ + thin.intercepts_):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10 * np.max(np.abs(a)))


# ---------------------------------------------------------------------------
# Sample weights and class weights
# ---------------------------------------------------------------------------


def _weighted_cost(theta, X, Y, w, dims, hidden, output, l2):
    """``(1/m) sum_j w_j L_j + (l2 / (2m)) sum ||W||^2`` by the reference's forward pass."""
    parameters = R.vector_to_parameters(theta, dims)
    AL, caches = R.L_model_forward(X, parameters, hidden, output)
    A = np.clip(AL, 1e-300, 1 - 1e-16) if output in ("sigmoid", "softmax") else AL
    if output == "sigmoid":
        per_column = -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A), axis=0)
    elif output == "softmax":
        per_column = -np.sum(Y * np.log(A), axis=0)
    elif output == "exp":  # scikit-learn's poisson_loss
        from scipy.special import xlogy

        per_column = np.sum(xlogy(Y, Y / A) - Y + A, axis=0)
    else:
        per_column = 0.5 * np.sum((A - Y) ** 2, axis=0)
    m = X.shape[1]
    norms = sum(np.sum(parameters[f"W{l}"] ** 2) for l in range(1, len(dims)))
    return float(np.sum(w * per_column) / m + l2 / (2 * m) * norms)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "linear", "exp"])
def test_per_column_weights_give_the_gradient_of_the_weighted_cost(backend, output):
    """The trainer's step with weights: ``(theta_0 - theta_1) / alpha`` equals the centred
    finite differences of ``(1/m) sum w_j L_j + (l2 / 2m) ||W||^2`` (a gradient check of
    the weighted cost and gradient that the class weights ride on), in both backends.
    (``sgd_momentum``'s first step from ``v = 0`` is ``-alpha dW``; relu and this optimiser
    are what the estimators compile anyway.)"""
    rng = np.random.default_rng(0)
    dims, m = [4, 5, 3], 11
    X = rng.standard_normal((4, m))
    if output == "softmax":
        Y = np.eye(3)[:, rng.integers(0, 3, m)]
    elif output == "sigmoid":
        Y = (rng.random((3, m)) > 0.5).astype(float)
    elif output == "exp":
        Y = rng.poisson(1.5, (3, m)).astype(float)
    else:
        Y = rng.standard_normal((3, m))
    w = rng.uniform(0, 3, m)
    w[2] = 0.0
    parameters = R.initialize_parameters(dims, "xavier", seed=1)
    alpha, l2 = 1e-3, 0.3
    trainer = backends.get(backend).Trainer(parameters, X, Y, "relu", alpha, 1,
                                            output_activation=output, optimizer="sgd_momentum",
                                            l2=l2, sample_weight=w)
    trainer.run(1)
    theta0 = R.parameters_to_vector(parameters).ravel()
    step = (theta0 - R.parameters_to_vector(trainer.parameters).ravel()) / alpha
    numeric = np.empty_like(theta0)
    for i in range(theta0.size):
        e = np.zeros_like(theta0)
        e[i] = 1e-6
        numeric[i] = (_weighted_cost(theta0 + e, X, Y, w, dims, "relu", output, l2)
                      - _weighted_cost(theta0 - e, X, Y, w, dims, "relu", output, l2)) / 2e-6
    assert np.linalg.norm(step - numeric) / np.linalg.norm(step + numeric) < 1e-7
    assert trainer.costs[0] == pytest.approx(
        _weighted_cost(theta0, X, Y, w, dims, "relu", output, l2), rel=1e-12)


def test_sample_weights_are_scikit_learns_for_a_full_batch():
    X, y = _data(n=80)
    w = np.random.default_rng(0).integers(0, 4, 80).astype(float)
    kw = dict(hidden_layer_sizes=(6,), random_state=0, max_iter=10, tol=0, alpha=0.1,
              learning_rate_init=0.01)
    ours = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    _assert_same_fit(ours, sk.MLPClassifier(**kw).fit(X, y, sample_weight=w))
    # and integer weights are repeated rows
    repeated = MLPClassifier(**kw).fit(np.repeat(X, w.astype(int), axis=0),
                                       np.repeat(y, w.astype(int)))
    np.testing.assert_allclose(ours.predict_proba(X), repeated.predict_proba(X), rtol=1e-9)


def test_class_weights_are_per_sample_weights_and_balanced_helps_the_rare_class():
    X, y = make_classification(n_samples=400, weights=[0.9, 0.1], random_state=0,
                               n_features=5, n_informative=3)
    X = StandardScaler().fit_transform(X)
    kw = dict(hidden_layer_sizes=(8,), random_state=0, max_iter=30, tol=0)
    by_class = MLPClassifier(class_weight={0: 1.0, 1: 4.0}, **kw).fit(X, y)
    by_sample = MLPClassifier(**kw).fit(X, y, sample_weight=np.where(y == 1, 4.0, 1.0))
    np.testing.assert_array_equal(by_class.coefs_[0], by_sample.coefs_[0])
    plain = MLPClassifier(**kw).fit(X, y)
    balanced = MLPClassifier(class_weight="balanced", **kw).fit(X, y)
    recall = [np.mean(model.predict(X)[y == 1] == 1) for model in (plain, balanced)]
    assert recall[1] > recall[0]
    # scikit-learn's alpha is over the sum of the weights: doubling them all halves it
    twice = MLPClassifier(class_weight="balanced", **kw).fit(X, y, sample_weight=np.full(400, 2.))
    half = MLPClassifier(class_weight="balanced", **dict(kw, alpha=0.5e-4)).fit(X, y)
    np.testing.assert_allclose(twice.coefs_[0], half.coefs_[0], rtol=1e-10)
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported by partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])


def test_bad_weights_are_refused():
    X, y = _data(n=20)
    with pytest.raises(ValueError, match="Negative values"):
        MLPClassifier(max_iter=1).fit(X, y, sample_weight=-np.ones(20))
    with pytest.raises(ValueError):
        MLPClassifier(max_iter=1).fit(X, y, sample_weight=np.ones(19))
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(max_iter=1, class_weight="often").fit(X, y)


# ---------------------------------------------------------------------------
# Labels, targets, dtypes, refusals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [
    np.array(["cat", "dog", "emu"]), np.array([3, -1, 10]), np.array(["no", "yes"]),
    np.array([False, True]), np.array([1.0, 2.0]),
])
def test_any_label_type_is_predicted_back(labels):
    X, y = _data(n=90, classes=len(labels))
    targets = labels[y]
    model = MLPClassifier(hidden_layer_sizes=(10,), random_state=0, max_iter=60,
                          learning_rate_init=0.02).fit(X, targets)
    np.testing.assert_array_equal(model.classes_, np.unique(targets))
    prediction = model.predict(X)
    assert prediction.dtype == targets.dtype and set(prediction) <= set(labels)
    assert model.score(X, targets) > 0.8
    proba = model.predict_proba(X)
    assert proba.shape == (90, len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(model.predict_log_proba(X), np.log(proba))
    assert model.out_activation_ == ("softmax" if len(labels) > 2 else "logistic")
    assert model.n_outputs_ == (len(labels) if len(labels) > 2 else 1)


def test_multilabel_indicator_targets():
    X, y = _data(n=100)
    Y = np.column_stack([y == 0, y == 1, X[:, 0] > 0]).astype(int)
    model = MLPClassifier(hidden_layer_sizes=(12,), random_state=0, max_iter=80,
                          learning_rate_init=0.02).fit(X, Y)
    assert model.predict(X).shape == (100, 3) and model.predict_proba(X).shape == (100, 3)
    assert model.out_activation_ == "logistic" and model.n_outputs_ == 3
    assert model.score(X, Y) > 0.6  # subset accuracy


def test_one_and_two_dimensional_regression_targets():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (150, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    one = MLPRegressor(hidden_layer_sizes=(20,), random_state=0, max_iter=200,
                       learning_rate_init=0.01).fit(X, y)
    assert one.predict(X).shape == (150,) and one.score(X, y) > 0.8
    assert one.out_activation_ == "identity" and one.n_outputs_ == 1
    Y = np.column_stack([y, -y, X[:, 2]])
    two = MLPRegressor(hidden_layer_sizes=(20,), random_state=0, max_iter=200,
                       learning_rate_init=0.01).fit(X, Y)
    assert two.predict(X).shape == (150, 3) and two.score(X, Y) > 0.8


def test_float32_data_trains_and_predicts_in_float32():
    X, y = _data(n=60)
    model = MLPClassifier(hidden_layer_sizes=(6,), random_state=0, max_iter=5).fit(
        X.astype(np.float32), y)
    assert all(c.dtype == np.float32 for c in model.coefs_ + model.intercepts_)
    assert model.predict_proba(X.astype(np.float32)).dtype == np.float32


def test_sparse_input_trains_as_the_dense_one():
    from scipy import sparse

    X, y = _data(n=60)
    X[np.abs(X) < 0.5] = 0
    kw = dict(hidden_layer_sizes=(6,), random_state=0, max_iter=5)
    dense = MLPClassifier(**kw).fit(X, y)
    thin = MLPClassifier(**kw).fit(sparse.csr_matrix(X), y)
    # issue 29: trained over the nonzeros (another order of the sums), not densified
    np.testing.assert_allclose(thin.coefs_[0], dense.coefs_[0], rtol=0,
                               atol=1e-10 * np.max(np.abs(dense.coefs_[0])))
    np.testing.assert_allclose(thin.predict_proba(sparse.csr_array(X)),
                               dense.predict_proba(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls,kwargs,match", [
    (MLPRegressor, dict(loss="squared_error", momentum=1.5), "The 'momentum' parameter of "
                                                            "MLPRegressor must be"),
    (MLPClassifier, dict(alpha=-1.0), "The 'alpha' parameter of MLPClassifier must be"),
    (MLPClassifier, dict(hidden_layer_sizes=(3, 0)), "hidden_layer_sizes must be > 0"),
])
def test_what_the_package_cannot_do_is_refused_with_the_reason(cls, kwargs, match):
    X, y = _data(n=20)
    model = cls(**kwargs)  # the constructor accepts anything, as scikit-learn's
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)


def test_verbose_prints_scikit_learns_lines_and_divergence_raises_its_error():
    X, y = _data(n=40)
    out = io.StringIO()
    with redirect_stdout(out):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    assert out.getvalue().splitlines()[0].startswith("Iteration 1, loss = ")
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        MLPRegressor(learning_rate_init=1e150, max_iter=50, random_state=0).fit(X * 1e3,
                                                                                 y * 1e3)


# ---------------------------------------------------------------------------
# Where scikit-learn estimators work
# ---------------------------------------------------------------------------


def test_pipeline_grid_search_cross_validation_and_clone():
    X, y = _data(n=150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=40,
                                                         learning_rate_init=0.01,
                                                         random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6  # scikit-learn's class: 0.71
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1],
                                 "mlpclassifier__solver": ["adam", "sgd"]}, cv=2).fit(X, y)
    assert set(search.best_params_) == {"mlpclassifier__alpha", "mlpclassifier__solver"}
    assert search.score(X, y) > 0.6
    copy = clone(search.best_estimator_)
    assert copy.get_params()["mlpclassifier__max_iter"] == 40
    assert not hasattr(copy[-1], "coefs_")


def test_a_pickled_fitted_model_predicts_the_same():
    X, y = _data(n=80)
    for model in (MLPClassifier(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(X, y),
                  MLPRegressor(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(
                      X, X[:, 0])):
        again = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(again.predict(X), model.predict(X))
        assert again.get_params() == model.get_params()


def test_pandas_in_feature_names_kept_and_set_output():
    pd = pytest.importorskip("pandas")
    X, y = _data(n=80)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    target = pd.Series(np.array(["a", "b", "c"])[y], name="label")
    model = MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0).fit(frame, target)
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        plain = model.predict(X)  # scikit-learn's warning: fitted with names, given none
    np.testing.assert_array_equal(model.predict(frame), plain)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(6,), max_iter=20,
                                                         random_state=0))
    pipe.set_output(transform="pandas").fit(frame, target)
    assert isinstance(pipe[0].transform(frame), pd.DataFrame)
    np.testing.assert_array_equal(pipe[-1].feature_names_in_, frame.columns)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame.rename(columns={"f0": "other"}))


# ---------------------------------------------------------------------------
# Test scores as scikit-learn's (slow: scikit-learn's own fits take seconds)
# ---------------------------------------------------------------------------


def _standardised(loader):
    X, y = loader(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.mark.slow
@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer])
@pytest.mark.parametrize("solver,batch_size", [("adam", "auto"), ("sgd", "auto"),
                                               ("adam", 32), ("sgd", 32), ("lbfgs", "auto")])
def test_test_scores_are_within_0_01_of_scikit_learns(loader, solver, batch_size):
    X_train, X_test, y_train, y_test = _standardised(loader)
    kw = dict(solver=solver, batch_size=batch_size, max_iter=100, tol=0, random_state=0)
    ours = MLPClassifier(**kw).fit(X_train, y_train).score(X_test, y_test)
    theirs = sk.MLPClassifier(**kw).fit(X_train, y_train).score(X_test, y_test)
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


def test_test_score_on_breast_cancer_is_scikit_learns_quickly():
    """The default run's version of the slow parity test: 30 epochs, one setting."""
    X_train, X_test, y_train, y_test = _standardised(load_breast_cancer)
    kw = dict(hidden_layer_sizes=(32,), max_iter=30, tol=0, random_state=0)
    ours = MLPClassifier(**kw).fit(X_train, y_train).score(X_test, y_test)
    theirs = sk.MLPClassifier(**kw).fit(X_train, y_train).score(X_test, y_test)
    assert abs(ours - theirs) <= 0.01, (ours, theirs)
