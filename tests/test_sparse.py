"""Issue 29, sparse X: the first layer's products over the nonzeros, fits that equal the dense
fits of the same data (both backends, both dtypes, every optimiser and part), what each kind
of sparse input gets, and the memory a sparse fit holds."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from fastbackprop import Model, backends
from fastbackprop import sparse as fsparse
from fastbackprop.reference import initialize_parameters

#: Dense and sparse fits of the same data agree to these (relative to the largest parameter).
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


def random_sparse(n_x, m, density, seed, fmt="csc", dtype=np.float64):
    """A random ``(n_x, m)`` sparse matrix with an empty example and an empty feature."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_x, m, density=density, format="lil", random_state=rng, dtype=np.float64)
    X = X.tocsc()
    X.data = rng.normal(size=X.data.size)  # signed values
    X = X.tolil()
    if m > 1:
        X[:, m - 1] = 0  # an example with no features
    if n_x > 1:
        X[n_x - 1, :] = 0  # a feature no example has
    return X.asformat(fmt).astype(dtype)


def relative_error(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) / max(float(np.max(np.abs(a[k]))), 1e-30)
               for k in a)


# -- the kernels' products ----------------------------------------------------------------


def kernel_input(X, dtype, n_1):
    """``X`` ``(n_x, m)`` as the kernels' SparseRows."""
    from fastbackprop.kernels.sparse import SparseRows

    rows = fsparse.rows(X, dtype)
    return SparseRows(np.asarray(rows.indptr, dtype=np.int64), rows.indices, rows.values,
                      np.zeros(n_1, dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_x, n_1, m", [(1, 1, 1), (1, 3, 5), (7, 1, 1), (13, 5, 9),
                                         (40, 17, 33), (3, 64, 2)])
def test_products_over_nonzeros_equal_the_dense_products(dtype, n_x, n_1, m):
    from fastbackprop.kernels import sparse as kernels

    rng = np.random.default_rng(n_x * 100 + n_1 * 10 + m)
    X = random_sparse(n_x, m, 0.4, seed=m, dtype=dtype)
    W1 = rng.normal(size=(n_1, n_x)).astype(dtype)
    dZ = rng.normal(size=(n_1, m)).astype(dtype)
    inp = kernel_input(X, dtype, n_1)
    Z = np.full((n_1, m), np.nan, dtype=dtype)
    kernels.W1X(inp, np.ascontiguousarray(W1.T), Z)
    dW1T = np.full((n_x, n_1), np.nan, dtype=dtype)  # stale values must be cleared
    kernels.dZX(inp, dZ, dW1T)
    Xd = X.toarray().astype(np.float64)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(Z, W1.astype(np.float64) @ Xd, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dW1T.T, dZ.astype(np.float64) @ Xd.T, rtol=rtol, atol=rtol)


def test_gather_copies_the_rows_of_the_order():
    from fastbackprop.kernels import sparse as kernels

    X = random_sparse(11, 9, 0.5, seed=3)
    rows = fsparse.rows(X, np.float64)
    data = kernels.SparseData(np.asarray(rows.indptr, dtype=np.int64), rows.indices,
                              rows.values, np.zeros((9, 1)), np.ones(9))
    buffers = kernels.batch_buffers(data.indptr, 4, 3, 1, np.float64, rows.indices.dtype)
    perm = np.array([8, 2, 5, 0, 1, 3, 4, 6, 7])
    batch = kernels.gather(data, perm, 1, 4, buffers)
    got = sp.csr_array((batch.values[:batch.indptr[-1]], batch.indices[:batch.indptr[-1]],
                        batch.indptr), shape=(4, 11)).toarray()
    np.testing.assert_array_equal(got, X.toarray().T[perm[1:5]])


# -- fits: dense and sparse agree ------------------------------------------------------------


CONFIGS = {
    "gd full batch": dict(optimizer="gd"),
    "momentum, batches, L2": dict(optimizer="momentum", batch_size=16, l2=0.1),
    "rmsprop, unshuffled": dict(optimizer="rmsprop", batch_size=13, shuffle=False),
    "adam, dropout, decay": dict(optimizer="adam", batch_size=10, keep_prob=0.8,
                                 decay_rate=0.1),
}


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_trainer_sparse_fit_equals_the_dense_fit(backend, dtype, config):
    n_x, m = 29, 61
    X = random_sparse(n_x, m, 0.15, seed=1, dtype=dtype)
    rng = np.random.default_rng(2)
    Y = (rng.random((2, m)) < 0.5).astype(dtype)
    w = rng.random(m).astype(dtype)
    parameters = initialize_parameters([n_x, 6, 5, 2], "he", 0, dtype)
    Trainer = backends.get(backend).Trainer
    kw = dict(learning_rate=0.05, dtype=dtype, sample_weight=w, cost_every=1, **CONFIGS[config])
    dense = Trainer(parameters, X.toarray(), Y, **kw)
    dense.run(12)
    sparse = Trainer(parameters, X, Y, **kw)
    sparse.run(12)
    assert sparse.status == dense.status == "ok"
    assert relative_error(dense.parameters, sparse.parameters) < TOLERANCE[dtype]
    assert relative_error(dense.parameters, parameters) > 100 * TOLERANCE[dtype]  # it moved
    np.testing.assert_allclose(sparse.costs, dense.costs, rtol=TOLERANCE[dtype])
    for slot, state in dense.optimizer_state.items():
        assert relative_error(state, sparse.optimizer_state[slot]) < TOLERANCE[dtype]


@pytest.mark.parametrize("output, n_y", [("sigmoid", 1), ("softmax", 3), ("linear", 2)])
def test_one_layer_network_on_sparse_data(output, n_y):
    """``L = 1``: the first layer is the output layer."""
    n_x, m = 17, 40
    X = random_sparse(n_x, m, 0.2, seed=4)
    rng = np.random.default_rng(5)
    Y = (rng.random((n_y, m)) if output == "linear" else
         np.eye(n_y)[:, rng.integers(0, n_y, m)] if output == "softmax" else
         (rng.random((1, m)) < 0.5).astype(float))
    parameters = initialize_parameters([n_x, n_y], "he", 0)
    Trainer = backends.get("numba").Trainer
    kw = dict(learning_rate=0.1, output_activation=output, optimizer="adam", batch_size=9)
    dense, sparse = Trainer(parameters, X.toarray(), Y, **kw), Trainer(parameters, X, Y, **kw)
    dense.run(5)
    sparse.run(5)
    assert relative_error(dense.parameters, sparse.parameters) < 1e-10


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
def test_model_sparse_fit_predict_score_gradients(backend, dtype):
    n_x, m = 31, 90
    X = random_sparse(n_x, m, 0.1, seed=6, fmt="csr")
    y = np.random.default_rng(7).integers(0, 3, m)
    w = np.random.default_rng(8).random(m)
    kw = dict(layer_dims=[n_x, 7, 3], output_activation="softmax", optimizer="adam",
              batch_size=16, n_epochs=6, seed=3, dtype=dtype, backend=backend, l2=0.01,
              keep_prob=0.9, learning_rate=0.01, cost_every=1)
    tol = TOLERANCE[np.dtype(dtype).type]
    Xd = X.toarray()
    dense = Model(**kw).fit(Xd, y, sample_weight=w, validation_data=(Xd[:, :20], y[:20]))
    sparse = Model(**kw).fit(X, y, sample_weight=w, validation_data=(X[:, :20], y[:20]))
    assert relative_error(dense.parameters_, sparse.parameters_) < tol
    np.testing.assert_allclose(sparse.validation_costs_, dense.validation_costs_, rtol=tol)
    for fmt in ("csr", "csc", "coo"):
        Xf = X.asformat(fmt)
        np.testing.assert_allclose(sparse.predict_proba(Xf), sparse.predict_proba(Xd),
                                   rtol=tol, atol=tol)
        np.testing.assert_array_equal(sparse.predict(Xf), sparse.predict(Xd))
        assert sparse.score(Xf, y) == sparse.score(Xd, y)
    grads, dense_grads = sparse.gradients(X, y), sparse.gradients(Xd, y)
    assert set(grads) == set(dense_grads)
    assert relative_error(dense_grads, grads) < 10 * tol


def test_model_sparse_early_stopping_holds_out_the_same_columns():
    n_x, m = 23, 80
    X = random_sparse(n_x, m, 0.2, seed=9)
    y = np.random.default_rng(10).integers(0, 2, m)
    kw = dict(layer_dims=[n_x, 5, 1], optimizer="adam", batch_size=8, n_epochs=8, seed=1,
              early_stopping=True, patience=100, cost_every=2, learning_rate=0.05)
    dense, sparse = Model(**kw).fit(X.toarray(), y), Model(**kw).fit(X, y)
    np.testing.assert_allclose(sparse.validation_costs_, dense.validation_costs_, rtol=1e-10)
    assert relative_error(dense.parameters_, sparse.parameters_) < 1e-10


def test_warm_start_continues_a_sparse_fit_bit_for_bit():
    n_x, m = 19, 50
    X = random_sparse(n_x, m, 0.2, seed=11)
    y = np.random.default_rng(12).integers(0, 2, m)
    kw = dict(layer_dims=[n_x, 4, 1], optimizer="adam", batch_size=8, seed=1)
    whole = Model(n_epochs=5, **kw).fit(X, y)
    parts = Model(n_epochs=2, **kw).fit(X, y)
    parts.set_params(n_epochs=3).fit(X, y, warm_start=True)
    for key in whole.parameters_:
        np.testing.assert_array_equal(parts.parameters_[key], whole.parameters_[key])


# -- what each kind of sparse input gets --------------------------------------------------


def test_nan_or_infinity_is_refused_naming_the_argument():
    X = random_sparse(5, 6, 0.5, seed=0)
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb.data[0] = bad
        model = Model([5, 2, 1], n_epochs=1, seed=0)
        with pytest.raises(ValueError, match="X must be finite"):
            model.fit(Xb, np.zeros(6))
        assert not hasattr(model, "parameters_")
        fitted = Model([5, 2, 1], n_epochs=1, seed=0).fit(X, np.zeros(6))
        before = fitted.parameters_["W1"].copy()
        with pytest.raises(ValueError, match="X must be finite"):
            fitted.predict(Xb)
        with pytest.raises(ValueError, match="X_val must be finite"):
            fitted.fit(X, np.zeros(6), validation_data=(Xb, np.zeros(6)))
        np.testing.assert_array_equal(fitted.parameters_["W1"], before)


def test_wrong_shape_is_refused_with_the_expected_shape():
    X = random_sparse(5, 6, 0.5, seed=0)
    with pytest.raises(ValueError, match=r"X must have shape \(4, m\)"):
        Model([4, 2, 1], n_epochs=1).fit(X, np.zeros(6))
    with pytest.raises(ValueError, match="at least one row and one column"):
        Model([5, 2, 1], n_epochs=1).fit(sp.csc_array((5, 0)), np.zeros(0))


def test_complex_values_are_refused():
    X = sp.csc_array(np.array([[1j, 0], [0, 1]]))
    with pytest.raises(TypeError, match="X must hold real numbers"):
        Model([2, 2, 1], n_epochs=1).fit(X, np.zeros(2))


def test_duplicates_are_summed_and_unsorted_indices_sorted_in_a_copy():
    dense = np.array([[1.0, 0, 2], [0, 3, 0], [4, 0, 0], [0, 0, 5]])  # (n_x=4, m=3)
    csc = sp.csc_matrix(dense)
    # the same matrix with column 0's entries reversed and 4 split into 1 + 3
    X = sp.csc_matrix((np.array([3.0, 1, 1, 3, 2, 5]), np.array([2, 0, 2, 1, 0, 3]),
                       np.array([0, 3, 4, 6])), shape=(4, 3))
    assert not X.has_canonical_format
    arrays = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    rows = fsparse.rows(X, np.float64)
    np.testing.assert_array_equal(rows.csr().toarray(), dense.T)
    for j in range(3):
        part = rows.indices[rows.indptr[j]:rows.indptr[j + 1]]
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates
    for before, after in zip(arrays, (X.data, X.indices, X.indptr)):
        np.testing.assert_array_equal(before, after)  # the caller's matrix is untouched
    kw = dict(layer_dims=[4, 3, 1], n_epochs=4, seed=0, learning_rate=0.1)
    y = np.array([0, 1, 1])
    a, b = Model(**kw).fit(X, y), Model(**kw).fit(csc, y)
    assert relative_error(a.parameters_, b.parameters_) < 1e-14


def test_a_canonical_csc_in_the_fits_dtype_is_used_without_a_copy():
    X = random_sparse(9, 7, 0.5, seed=0, fmt="csc")
    rows = fsparse.rows(X, np.float64)
    for ours, theirs in zip(rows[:3], (X.indptr, X.indices, X.data)):
        assert np.shares_memory(ours, theirs)
    Xr = X.T.tocsr()  # scikit-learn's layout
    rows = fsparse.rows(Xr, np.float64, examples_as_rows=True)
    assert np.shares_memory(rows.values, Xr.data)
    assert not np.shares_memory(fsparse.rows(X, np.float32).values, X.data)


def test_explicit_zeros_are_kept_and_change_nothing():
    X = sp.csc_matrix(np.array([[1.0, 0], [0, 2], [3, 0]]))
    Xz = X.copy()
    Xz.data[0] = 0.0  # an explicit zero
    dense = Xz.toarray()
    assert Xz.nnz == 3
    kw = dict(layer_dims=[3, 2, 1], n_epochs=3, seed=0, optimizer="adam", batch_size=1)
    y = np.array([0, 1])
    a, b = Model(**kw).fit(Xz, y), Model(**kw).fit(dense, y)
    assert relative_error(b.parameters_, a.parameters_) < 1e-14


@pytest.mark.parametrize("values", [np.int64, np.int32, np.bool_])
def test_int_and_bool_values_are_converted(values):
    dense = (np.random.default_rng(0).random((6, 8)) < 0.3)
    X = sp.csr_matrix(dense.astype(values))
    for dtype in ("float64", "float32"):
        kw = dict(layer_dims=[6, 3, 1], n_epochs=3, seed=0, dtype=dtype)
        y = np.arange(8) % 2
        a, b = Model(**kw).fit(X, y), Model(**kw).fit(dense.astype(dtype), y)
        assert relative_error(b.parameters_, a.parameters_) < TOLERANCE[np.dtype(dtype).type]
        assert a.parameters_["W1"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("fmt", ["coo", "lil", "dok", "bsr", "dia", "csr", "csc"])
@pytest.mark.parametrize("kind", ["matrix", "array"])
def test_every_scipy_format_is_converted_once(fmt, kind):
    X = random_sparse(8, 10, 0.3, seed=1, fmt="csc")
    Xf = X.asformat(fmt) if kind == "matrix" else sp.csc_array(X).asformat(fmt)
    y = np.arange(10) % 2
    kw = dict(layer_dims=[8, 3, 1], n_epochs=3, seed=0)
    a, b = Model(**kw).fit(Xf, y), Model(**kw).fit(X.toarray(), y)
    assert relative_error(b.parameters_, a.parameters_) < 1e-12


def test_empty_examples_and_features_and_no_nonzeros_at_all():
    X = sp.csc_matrix((6, 5))  # nothing stored: every A1 column is g(b1)
    y = np.array([0, 1, 0, 1, 1])
    kw = dict(layer_dims=[6, 3, 1], n_epochs=3, seed=0, optimizer="adam", batch_size=2)
    for backend in ("numba", "numpy"):
        a = Model(backend=backend, **kw).fit(X, y)
        b = Model(backend=backend, **kw).fit(X.toarray(), y)
        assert relative_error(b.parameters_, a.parameters_) < 1e-14
        # no nonzero, no gradient for W1: it keeps its initial values
        np.testing.assert_array_equal(a.parameters_["W1"],
                                      initialize_parameters([6, 3, 1], "he", 0)["W1"])


def test_sparse_fits_run_on_one_thread_and_refuse_gram_mode():
    X = random_sparse(8, 300, 0.3, seed=1)
    Y = (np.arange(300) % 2).reshape(1, -1).astype(float)
    Trainer = backends.get("numba").Trainer
    parameters = initialize_parameters([8, 300, 1], "he", 0)
    assert Trainer(parameters, X, Y, batch_size=256, n_threads=2).n_threads == 1
    with pytest.raises(ValueError, match="gram=True"):
        Trainer(parameters, X, Y, gram=True)


def test_batch_norm_on_sparse_X_equals_dense_on_numpy_and_is_refused_by_the_kernels():
    X = random_sparse(12, 40, 0.3, seed=2)
    Y = (np.arange(40) % 2).reshape(1, -1).astype(float)
    kw = dict(optimizer="adam", batch_size=16, n_epochs=3, seed=0, batch_norm=True)
    dense = Model([12, 5, 1], backend="numpy", **kw).fit(X.toarray(), Y)
    sparse = Model([12, 5, 1], backend="numpy", **kw).fit(X, Y)
    for key, value in dense.parameters_.items():
        np.testing.assert_allclose(sparse.parameters_[key], value, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X.toarray()),
                               rtol=0, atol=1e-12)
    model = Model([12, 5, 1], **kw).fit(X.toarray(), Y)
    before = {key: value.copy() for key, value in model.parameters_.items()}
    with pytest.raises(ValueError, match="^X: batch norm .* sparse X .*backend='numpy'"):
        model.fit(X, Y)
    for key, value in before.items():  # the failed fit kept the fitted state
        np.testing.assert_array_equal(model.parameters_[key], value)


def test_a_dense_fit_compiles_no_sparse_code():
    import subprocess
    import sys

    code = """
import numpy as np
from fastbackprop import Model
from fastbackprop.kernels import sparse as kernels
X = np.random.default_rng(0).random((5, 20))
Model([5, 4, 1], n_epochs=2, seed=0, optimizer="adam", batch_size=4).fit(X, np.zeros(20))
Model([5, 4, 1], n_epochs=2, seed=0).fit(X, np.zeros(20))
print([len(k.signatures) for k in (kernels.W1X, kernels.dZX, kernels.gather)])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[-3:] == ["[0,", "0,", "0]"]


def test_dask_refuses_sparse_blocks():
    da = pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    X = da.from_array(np.random.default_rng(0).random((5, 40)), chunks=(5, 20))
    X = X.map_blocks(sp.csr_matrix)
    with pytest.raises(TypeError, match="sparse data are not supported with Dask"):
        Model([5, 3, 1], n_epochs=1).fit(X, np.zeros(40))
    fitted = Model([5, 3, 1], n_epochs=1, seed=0).fit(np.ones((5, 40)), np.zeros(40))
    with pytest.raises(TypeError, match="sparse data are not supported with Dask"):
        fitted.predict(X)


# -- memory ------------------------------------------------------------------------------------


def test_sparse_fit_peak_is_the_data_parameters_state_and_one_batch():
    """A matrix whose dense form (8 GB) is far beyond the budget: the fit holds the sparse data
    (one converted copy at most), the parameters, Adam's state and one batch."""
    n_x, m, n_1, n_y, batch = 200_000, 5_000, 4, 2, 64
    rng = np.random.default_rng(0)
    nnz_per_example = 20
    indices = rng.integers(0, n_x, (m, nnz_per_example))
    indices.sort(axis=1)
    X = sp.csr_matrix((rng.random(m * nnz_per_example), indices.ravel(),
                       np.arange(m + 1) * nnz_per_example), shape=(m, n_x))
    X.sum_duplicates()
    X = X.T  # (n_x, m), a CSC matrix: its CSR rows are X's own arrays
    Y = np.eye(n_y)[:, rng.integers(0, n_y, m)]
    dims = [n_x, n_1, n_y]
    parameters = initialize_parameters(dims, init="he", seed=0)
    Trainer = backends.get("numba").Trainer
    kw = dict(output_activation="softmax", optimizer="adam", batch_size=batch)
    Trainer(parameters, X[:, :100], Y[:, :100], "relu", 0.001, **kw).run(1)  # compile

    tracemalloc.start()
    try:
        trainer = Trainer(parameters, X, Y, "relu", 0.001, **kw)
        trainer.run(1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert trainer.status == "ok"
    n_parameters = sum(dims[l] * (dims[l - 1] + 1) for l in range(1, len(dims)))
    data = X.data.nbytes + X.indices.nbytes + (m + 1) * 8  # X's arrays: never copied here
    labels = Y.nbytes + 2 * m * 8  # Y's rows, the weights, the order
    parameter_buffers = 2 * 3 * n_parameters * 8 + n_parameters * 8  # [theta|v|s] x 2, grad
    packing = 2 * n_parameters * 8  # pack() and the W1^T copy of the initial parameters
    one_batch = (2 * sum(dims[1:]) + n_y + 5) * batch * 8 + batch * nnz_per_example * 12
    budget = labels + parameter_buffers + packing + one_batch  # data: X's own arrays
    dense_X = n_x * m * 8
    print(f"sparse fit peak {peak / 2**20:.1f} MiB; budget {budget / 2**20:.1f} MiB; "
          f"the data {data / 2**20:.1f} MiB (not copied); dense X {dense_X / 2**30:.1f} GiB")
    assert peak <= 1.05 * budget + 2**20, (peak, budget)
    assert peak < dense_X / 100  # measured: 43 MiB against 7.5 GiB


# -- the scikit-learn classes ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("solver, extra", [
    ("adam", {}), ("sgd", dict(batch_size=17, learning_rate="invscaling")),
    ("lbfgs", {}), ("adam", dict(early_stopping=True, alpha=0.01)),
    ("sgd", dict(nesterovs_momentum=False, batch_size=30))])
def test_sklearn_classifier_csr_and_csc_train_as_the_dense_one(dtype, solver, extra):
    pytest.importorskip("sklearn")
    import warnings

    from fastbackprop.sklearn import MLPClassifier

    X = random_sparse(150, 40, 0.1, seed=2, fmt="csr", dtype=dtype)  # (n_samples, n_features)
    y = np.random.default_rng(3).integers(0, 3, 150)
    w = np.random.default_rng(4).random(150)
    kw = dict(hidden_layer_sizes=(8,), max_iter=15, random_state=0, solver=solver, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = MLPClassifier(**kw).fit(X.toarray(), y, sample_weight=w)
        fits = [MLPClassifier(**kw).fit(X.asformat(f), y, sample_weight=w)
                for f in ("csr", "csc")]
    tol = TOLERANCE[dtype]
    for fit in fits:
        for a, b in zip(dense.coefs_ + dense.intercepts_, fit.coefs_ + fit.intercepts_):
            np.testing.assert_allclose(b, a, rtol=0, atol=tol * np.max(np.abs(a)))
        np.testing.assert_allclose(fit.predict_proba(X), dense.predict_proba(X.toarray()),
                                   rtol=0, atol=tol)
        assert fit.score(X, y) == dense.score(X.toarray(), y)


def test_sklearn_regressor_and_partial_fit_on_sparse():
    pytest.importorskip("sklearn")
    from fastbackprop.sklearn import MLPRegressor

    X = random_sparse(120, 30, 0.2, seed=5, fmt="csr")
    y = np.random.default_rng(6).normal(size=(120, 2))
    kw = dict(hidden_layer_sizes=(5,), random_state=0, batch_size=20)
    dense, thin = MLPRegressor(**kw), MLPRegressor(**kw)
    for _ in range(3):
        dense.partial_fit(X.toarray(), y)
        thin.partial_fit(X, y)
    for a, b in zip(dense.coefs_ + dense.intercepts_, thin.coefs_ + thin.intercepts_):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10 * np.max(np.abs(a)))
    np.testing.assert_allclose(thin.predict(X), dense.predict(X.toarray()), rtol=1e-10)


def test_sklearn_refuses_nonfinite_sparse_X():
    pytest.importorskip("sklearn")
    from fastbackprop.sklearn import MLPClassifier

    X = random_sparse(20, 5, 0.5, seed=0, fmt="csr")
    X.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(max_iter=1).fit(X, np.arange(20) % 2)


# -- the command ------------------------------------------------------------------------------


def test_command_trains_sparse_from_save_npz_with_labels_and_from_svmlight(tmp_path, capsys):
    from fastbackprop import cli, datasets

    X = random_sparse(60, 40, 0.1, seed=3, fmt="csr")  # the file's layout: (m, n_x)
    y = np.arange(60) % 3
    sp.save_npz(tmp_path / "x.npz", X)
    (tmp_path / "y.csv").write_text("label\n" + "\n".join(map(str, y)) + "\n")
    np.save(tmp_path / "y.npy", y)
    loaded, labels, classes = datasets.load_file(tmp_path / "x.npz", labels="classes",
                                                 labels_path=tmp_path / "y.csv")
    assert sp.issparse(loaded) and loaded.shape == (40, 60)
    np.testing.assert_array_equal(classes[labels], y)
    with open(tmp_path / "x.svm", "w") as f:
        for i in range(60):
            row = X.getrow(i)
            f.write(f"{y[i] % 2} " + " ".join(f"{j + 1}:{float(v)!r}" for j, v in
                                              zip(row.indices, row.data)) + "\n")
    Xs, Ys = datasets.load_file(tmp_path / "x.svm")
    assert sp.issparse(Xs)
    np.testing.assert_array_equal(Xs.toarray(), X.toarray().T[:Xs.shape[0]])
    np.testing.assert_array_equal(Ys[0], y % 2)
    for labels_file in ("y.csv", "y.npy"):
        assert cli.main(["train", "--data", str(tmp_path / "x.npz"), "--labels",
                         str(tmp_path / labels_file), "--output", "softmax", "--epochs",
                         "2"]) == 0
    assert cli.main(["train", "--data", str(tmp_path / "x.svm"), "--epochs", "2"]) == 0
    with pytest.raises(ValueError, match="give its labels"):
        datasets.load_file(tmp_path / "x.npz")
