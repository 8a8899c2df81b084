"""The scikit-learn drop-in's ``backend`` (fastbackprop.tiers): auto's rule, the marker it
writes, NumPy and numba fits agreeing, pickling, and a first script that never imports Numba
(nor llvmlite).

conftest.py gives auto a budget of 0 NumPy seconds for the session (every other test runs
numba); the ``auto`` fixture here sets the real budget back, with a fresh process state
and a kernel cache location of its own for the markers.
"""

import json
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_digits, make_classification  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastbackprop import first_run, kernels, tiers  # noqa: E402
from fastbackprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def auto(tmp_path, monkeypatch):
    """auto with its real budget, no fit booked yet, and an empty cache for the markers (the
    kernels' own cache stays where Numba found it when the kernels were imported)."""
    assert kernels.Trainer is not None  # imported before NUMBA_CACHE_DIR changes
    monkeypatch.setattr(tiers, "COMPILE_SECONDS", 3.0)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTBACKPROP_CACHE", raising=False)
    saved = set(tiers.compiled)
    tiers.reset()
    yield tmp_path / "cache"
    tiers.reset()
    tiers.compiled.update(saved)


def _data(n=150, seed=0):
    X, y = make_classification(n_samples=n, n_features=8, n_informative=5, n_redundant=0,
                               n_classes=3, random_state=seed)
    return StandardScaler().fit_transform(X), y


def digits_hp(**changes):
    """The hp of digits at scikit-learn's defaults (1797 samples, batches of 200, Adam)."""
    values = dict(layer_dims=[64, 100, 10], hidden_activation="relu",
                  output_activation="softmax", optimizer="adam_folded", batch_size=200,
                  shuffle=True, l2=1e-4, n_epochs=200, dtype="float64", n_threads=None,
                  batch_norm=[False])
    values.update(changes)
    return tiers.hyperparameters(**values)


# ---------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------


def test_what_numpy_does_not_cover_goes_to_numba(auto):
    hp = digits_hp()
    assert tiers.decide("auto", hp, 1797).backend == "numpy"
    for situation, reason in ((dict(lbfgs=True), "lbfgs"), (dict(sparse=True), "sparse"),
                              (dict(incremental=True), "partial_fit"),
                              (dict(continuing="numba"), "warm start")):
        choice = tiers.decide("auto", None if "lbfgs" in situation else hp, 1797, **situation)
        assert choice.backend == "numba" and reason in choice.reason, (situation, choice)
    assert tiers.decide("auto", hp, 1797, continuing="numpy").backend == "numpy"
    normalised = tiers.decide("auto", digits_hp(batch_norm=[True]), 1797)
    assert normalised.backend == "numba" and "batch normalisation" in normalised.reason
    assert tiers.spent() == 0  # decide books nothing


def test_the_estimators_choices(auto):
    from scipy import sparse

    X, y = _data()
    small = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    assert MLPClassifier(**small).fit(X, y).backend_ == "numpy"
    assert MLPRegressor(**small).fit(X, X[:, 0]).backend_ == "numpy"
    assert MLPClassifier(**small, solver="lbfgs").fit(X, y).backend_ == "numba"
    assert MLPClassifier(**small).fit(sparse.csr_matrix(X), y).backend_ == "numba"
    assert MLPClassifier(**small, batch_norm=True).fit(X, y).backend_ == "numba"
    assert MLPClassifier(**small).partial_fit(X, y, classes=[0, 1, 2]).backend_ == "numba"
    warm = MLPClassifier(**small, warm_start=True, backend="numba").fit(X, y)
    warm.set_params(backend="auto").fit(X, y)
    assert warm.backend_ == "numba"  # continues the numba-fitted model


def test_the_budget_switches_to_numba_after_enough_numpy_fits(auto):
    hp = digits_hp()
    projected = first_run.projected_numpy_seconds(hp, 1797, tiers.RATES)
    assert 0.76 < projected < 2.0  # 135 epochs measured 0.76 s; projected for max_iter=200
    # the command's pessimistic rates, unchanged, would never send it to NumPy
    assert first_run.projected_numpy_seconds(hp, 1797) > 3 * first_run.COMPILE_SECONDS
    assert first_run.projected_numpy_seconds(hp, 1797) == first_run.projected_numpy_seconds(
        hp, 1797, first_run.command_rates())
    choices = [tiers.choose("auto", hp, 1797) for _ in range(4)]
    expected = int(np.ceil(tiers.COMPILE_SECONDS / projected)) - 1  # 2 digits fits
    assert [c.backend for c in choices] == ["numpy"] * expected + ["numba"] * (4 - expected)
    assert tiers.spent() == pytest.approx(expected * projected)
    assert "compiling costs less" in choices[-1].reason


def test_the_budget_in_one_process_of_estimator_fits(auto, monkeypatch):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    model = MLPClassifier(**kw)
    model.fit(X, y)
    assert model.backend_ == "numpy"
    monkeypatch.setattr(tiers, "COMPILE_SECONDS", 2.5 * tiers.spent())  # room for one more
    assert MLPClassifier(**kw).fit(X, y).backend_ == "numpy"
    again = MLPClassifier(**kw).fit(X, y)
    assert again.backend_ == "numba"
    # that configuration is now compiled in this process: numba from here on, budget or not
    monkeypatch.setattr(tiers, "COMPILE_SECONDS", 1e9)
    assert MLPClassifier(**kw).fit(X, y).backend_ == "numba"
    assert MLPClassifier(**kw, activation="tanh").fit(X, y).backend_ == "numpy"  # another


def test_a_marker_in_the_cache_means_numba(auto):
    hp = digits_hp()
    configuration = first_run.variant(hp, 1797, None)
    path = tiers.marker(configuration)
    assert path.parent == auto / first_run.WARM_DIRECTORY
    assert first_run.write_marker(path, first_run.key_parts(configuration))
    choice = tiers.decide("auto", hp, 1797)
    assert choice.backend == "numba" and "in the cache" in choice.reason
    assert tiers.decide("auto", digits_hp(hidden_activation="tanh"), 1797).backend == "numpy"


def test_explicit_backends_are_honoured_and_a_wrong_one_is_refused(auto):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(8,), max_iter=10, random_state=0)
    assert MLPClassifier(**kw, backend="numba").fit(X, y).backend_ == "numba"
    assert MLPClassifier(**kw, backend="numpy", batch_norm=True).fit(X, y).backend_ == "numpy"
    assert MLPClassifier(**kw, backend="numpy").partial_fit(X, y, classes=[0, 1, 2]).backend_ \
        == "numpy"
    for wrong in ("jax", "NUMBA", None):
        with pytest.raises(ValueError, match="The 'backend' parameter of MLPClassifier must be"):
            MLPClassifier(**kw, backend=wrong).fit(X, y)
    with pytest.raises(ValueError, match="backend must be one of"):
        tiers.decide("gpu", digits_hp(), 10)


def test_a_numba_fit_writes_the_marker_that_a_new_decision_reads(auto):
    X, y = _data()
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, backend="numba")
    model.fit(X, y)
    markers = list((auto / first_run.WARM_DIRECTORY).iterdir())
    assert len(markers) == 1
    parts = json.loads(markers[0].read_text())
    assert parts["variant"]["optimizer"] == "adam_folded" and parts["variant"]["hidden"] == "relu"
    hp = tiers.hyperparameters([8, 8, 3], "relu", "softmax", "adam_folded", None, True, 1e-4, 5,
                               "float64", None, [False])
    assert tiers.decide("auto", hp, 150).reason == "compiled in this process"
    tiers.reset()  # a new process: the marker says the kernels are in the cache
    assert tiers.decide("auto", hp, 150).reason == "the kernels are in the cache"


def test_a_configurations_marker_is_looked_for_once_a_process(auto, monkeypatch):
    """Naming a marker reads the CPU's name and Numba's metadata (about 1 ms a fit): once
    found or written, a configuration's marker is not named again until :func:`reset`."""
    X, y = _data()
    named = []
    real = first_run.key_parts
    monkeypatch.setattr(first_run, "key_parts", lambda c: named.append(1) or real(c))
    kw = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0, backend="numba")
    MLPClassifier(**kw).fit(X, y)
    assert len(named) == 2  # its path, then its contents when written
    MLPClassifier(**kw).fit(X, y)
    assert len(named) == 2
    tiers.reset()
    MLPClassifier(**kw).fit(X, y)
    assert len(named) == 3  # found in the cache, not written again
    MLPClassifier(**kw, activation="tanh").fit(X, y)
    assert len(named) == 5  # another configuration


# ---------------------------------------------------------------------------
# The two backends' fits
# ---------------------------------------------------------------------------


def _split(loader=load_digits):
    X, y = loader(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    return X_train, X_test, y_train, y_test


def test_numpy_and_numba_fits_agree():
    X_train, X_test, y_train, y_test = _split()
    kw = dict(random_state=0, max_iter=60)
    fits = {b: MLPClassifier(**kw, backend=b).fit(X_train, y_train) for b in ("numba", "numpy")}
    scores = {b: m.score(X_test, y_test) for b, m in fits.items()}
    assert abs(scores["numba"] - scores["numpy"]) <= 0.01, scores
    # the same batches (the package's counter-based shuffles): the same trajectory to
    # rounding for a few epochs
    short = dict(random_state=0, max_iter=3, hidden_layer_sizes=(20,))
    a, b = (MLPClassifier(**short, backend=x).fit(X_train, y_train) for x in ("numba", "numpy"))
    assert a.n_iter_ == b.n_iter_ == 3
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(p, q, rtol=1e-7, atol=1e-9 * np.max(np.abs(q)))
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)


def test_lbfgs_on_numpy_follows_the_compiled_pass():
    X, y = _data(n=100)
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=15, random_state=0)
    a = MLPClassifier(**kw, backend="numba").fit(X, y)
    b = MLPClassifier(**kw, backend="numpy").fit(X, y)
    assert b.backend_ == "numpy" and a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(b.coefs_[0], a.coefs_[0], rtol=1e-6, atol=1e-8)
    assert b.loss_ == pytest.approx(a.loss_, rel=1e-8)


def test_a_pickled_numpy_fit_keeps_its_backend_and_predicts_the_same():
    X, y = _data(n=80)
    for model in (MLPClassifier(hidden_layer_sizes=(6,), max_iter=10, random_state=0,
                                backend="numpy").fit(X, y),
                  MLPRegressor(hidden_layer_sizes=(6,), max_iter=10, random_state=0,
                               backend="numpy").fit(X, X[:, 0])):
        again = pickle.loads(pickle.dumps(model))
        assert again.backend_ == "numpy" and again._fitted_network().backend == "numpy"
        np.testing.assert_array_equal(again.predict(X), model.predict(X))
        assert again.get_params() == model.get_params()


FIRST_SCRIPT = """
    import json, sys
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from fastbackprop.sklearn import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    model = MLPClassifier(random_state=0).fit(X_train, y_train)
    score = model.score(X_test, y_test)
    print(json.dumps({"backend": model.backend_, "score": score,
                      "numba": "numba" in sys.modules, "llvmlite": "llvmlite" in sys.modules}))
"""


def test_a_first_script_on_auto_never_imports_numba(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "FASTBACKPROP_CACHE"}
    environment.update(NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(FIRST_SCRIPT)],
                         env=environment, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["backend"] == "numpy" and result["numba"] is False, result
    assert result["llvmlite"] is False, result  # an empty cache needs no marker's CPU name
    X_train, X_test, y_train, y_test = _split()
    numba = MLPClassifier(random_state=0, backend="numba").fit(X_train, y_train)
    assert abs(result["score"] - numba.score(X_test, y_test)) <= 0.01


def test_a_numpy_fit_predicts_one_row_on_the_fast_path_as_on_the_full_one():
    X, y = _data(n=80)
    model = MLPClassifier(hidden_layer_sizes=(6,), max_iter=10, random_state=0,
                          backend="numpy").fit(X, y)
    network = model._fitted_network()
    row = np.ascontiguousarray(X[:1])
    fast = network.fast_probabilities(row, rows=True)
    assert fast is not None  # the NumPy backend's fast path: no validate_data
    np.testing.assert_array_equal(fast, network.probabilities(row, rows=True))
    np.testing.assert_array_equal(model.predict_proba(row), model.predict_proba(row.tolist()))
    assert network.fast_probabilities(np.full((1, 8), np.nan), rows=True) is None
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict_proba(np.full((1, 8), np.nan))
