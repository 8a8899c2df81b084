"""Every Numba kernel held against the NumPy reference.

Shapes cover m = 1, n = 1, odd sizes, products on both sides of the
hand-loop/BLAS switch (``_jit.SMALL_GEMM``) and a few thousand columns;
both dtypes; every activation. Tolerances are per dtype (conftest.TOLERANCES).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import DTYPES, allocation_counts, assert_close, backend

from fastbackprop import activations, reference as R
from fastbackprop._jit import SMALL_GEMM

K = backend("numba")
HIDDEN = list(activations.HIDDEN)

# (n_l, n_{l-1}, m): tiny, single row/column/example, odd, above SMALL_GEMM, wide.
LAYER_SHAPES = [(1, 1, 1), (1, 3, 1), (4, 1, 7), (3, 5, 1), (4, 2, 400), (7, 13, 33),
                (33, 65, 31), (64, 20, 256), (5, 3, 3001)]
# (n, k, m) of NT products A (n, k) B^T (B (m, k)): a long inner dimension, a narrow side,
# odd counts of rows and columns, and BLAS.
NT_SHAPES = [(3, 2000, 5), (9, 130, 11), (10, 300, 37), (2, 5000, 4), (21, 40, 23),
             (40, 1500, 24)]


def product_route(n, k, m, small=None):
    """How ``passes.gemm`` runs a product ``(n, k) @ (k, m)``: ``"small"`` (at most
    ``SMALL_GEMM`` multiply-adds), ``"small operand"`` (the loops above it) or ``"blas"``;
    by ``passes.by_loops`` with the small operand's ``small`` entries (NN, TN: ``op(A)``;
    None: NT, whose small operand is ``out``)."""
    from fastbackprop.kernels.passes import by_loops

    if n * k * m <= SMALL_GEMM:
        return "small"
    loops = by_loops.py_func(n, k, m, n * m if small is None else small)
    return "small operand" if loops else "blas"


def test_layer_shapes_cross_the_blas_switch():
    """Every route of the forward (``W A_prev``, NN), ``dW`` (NT) and ``dA_prev`` (TN) products."""
    from fastbackprop.kernels.passes import SMALL_OPERAND

    sizes = [n * k * m for n, k, m in LAYER_SHAPES]
    assert min(sizes) <= SMALL_GEMM < max(sizes)
    # the loops above SMALL_GEMM exist on AVX2 targets only (_jit.SMALL_OPERAND_BY_VECTOR_BYTES)
    narrow = {"small operand"} if SMALL_OPERAND else set()
    routes = {"small", "blas"} | narrow
    assert {product_route(n, k, m, n * k) for n, k, m in LAYER_SHAPES} == routes  # W A_prev
    assert {product_route(n, m, k) for n, k, m in LAYER_SHAPES} == routes  # dZ A_prev^T
    # and the NT products of the tests below: long inner dimensions, odd edges
    assert {product_route(n, k, m) for n, k, m in NT_SHAPES} == {"blas"} | narrow
    # The trainer test's last network has an output layer above the switch too.
    assert 30 * 40 * 50 > SMALL_GEMM


def layer(n, k, m, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    A_prev = rng.standard_normal((k, m)).astype(dtype)
    W = (rng.standard_normal((n, k)) * scale / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal((n, 1)).astype(dtype)
    return A_prev, W, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=str)
def test_linear_forward(shape, dtype):
    A_prev, W, b = layer(*shape, dtype)
    Z, cache = K.linear_forward(A_prev, W, b)
    Z_ref, _ = R.linear_forward(A_prev, W, b)
    assert Z.dtype == dtype
    assert_close(Z, Z_ref, dtype)


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=str)
def test_linear_activation_forward_and_backward(shape, dtype, activation):
    A_prev, W, b = layer(*shape, dtype, scale=2.0)
    A, cache = K.linear_activation_forward(A_prev, W, b, activation)
    A_ref, cache_ref = R.linear_activation_forward(A_prev, W, b, activation)
    assert A.dtype == dtype and cache[1].dtype == dtype
    assert_close(A, A_ref, dtype, err_msg="A")
    assert_close(cache[1], cache_ref[1], dtype, err_msg="Z")
    dA = np.random.default_rng(1).standard_normal(A.shape).astype(dtype)
    got = K.linear_activation_backward(dA, cache_ref, activation)
    expected = R.linear_activation_backward(dA, cache_ref, activation)
    for name, g, e, s in zip(("dA_prev", "dW", "db"), got, expected,
                             backward_scales(dA, cache_ref)):
        assert g.dtype == dtype and g.shape == e.shape, name
        assert_close(g, e, dtype, err_msg=name, scale=s)


def backward_scales(dA, cache):
    """Magnitudes against which backward errors are judged.

    ``g'`` is computed from ``A = g(Z)`` (sigmoid ``A(1-A)``, tanh ``1-A^2``)
    by both backends, and where ``A`` saturates these lose relative accuracy
    (in float32 at z = 8, ``1 - A^2`` keeps one digit): their *absolute*
    error stays within a few ulp of 1, the bound of every ``g'``. So errors
    are measured against the gradients ``g' = 1`` would give.
    """
    return [float(np.max(np.abs(x))) for x in R.linear_backward(dA, cache[0])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=str)
def test_linear_backward(shape, dtype):
    A_prev, W, b = layer(*shape, dtype)
    dZ = np.random.default_rng(2).standard_normal((shape[0], shape[2])).astype(dtype)
    got = K.linear_backward(dZ, (A_prev, W, b))
    expected = R.linear_backward(dZ, (A_prev, W, b))
    for name, g, e in zip(("dA_prev", "dW", "db"), got, expected):
        assert g.shape == e.shape and g.dtype == dtype, name
        assert_close(g, e, dtype, err_msg=name)


@pytest.mark.parametrize("mode", ["NN", "NT", "TN"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LAYER_SHAPES + NT_SHAPES + [(1, 700, 1), (700, 1, 1),
                                                             (1, 1, 700)], ids=str)
def test_gemm_every_mode_against_numpy(shape, dtype, mode):
    """The training loop's products, on both sides of ``SMALL_GEMM``: ``out = op(A) op(B)``
    of shape ``(n, m)``, inner ``k``; the operands stored as the loop stores them."""
    from fastbackprop.kernels import passes

    n, k, m = shape
    rng = np.random.default_rng(3)
    P = rng.standard_normal((n, k)).astype(dtype)
    Q = rng.standard_normal((k, m)).astype(dtype)
    A = np.ascontiguousarray(P.T) if mode == "TN" else P
    B = np.ascontiguousarray(Q.T) if mode == "NT" else Q
    out = np.full((n, m), np.nan, dtype=dtype)
    passes.gemm_pass(A, B, out, getattr(passes, mode))
    expected = P.astype(np.float64) @ Q.astype(np.float64)
    assert_close(out, expected, dtype, scale=float(np.abs(P).max() * np.abs(Q).max() * k))


@pytest.mark.slow
def test_the_other_vector_widths_routes_match_numpy_too():
    """The tests above (and the output layers' in test_outputs.py) take this CPU's routes
    (``SMALL_OPERAND`` is 64 on AVX2 targets, 0 with AVX-512); here the other width's, in a new
    process, so both routes are tested anywhere."""
    from fastbackprop.kernels import microgemm

    other = 32 if microgemm.VECTOR_BYTES == 64 else 64
    env = dict(os.environ, FASTBACKPROP_VECTOR_BYTES=str(other), FASTBACKPROP_CACHE="0")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         os.path.abspath(__file__), os.path.join(os.path.dirname(__file__), "test_outputs.py"),
         "-k", "cross_the_blas_switch or linear_forward or linear_backward or every_mode_against"
         " or output_kernels_equal_the_reference"],
        env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.parametrize("mode", ["NN", "NT", "TN"])
def test_gemm_pass_refuses_shapes_that_do_not_agree(mode):
    from fastbackprop.kernels import passes

    A, B = np.ones((30, 40)), np.ones((40, 50))  # above SMALL_GEMM in every mode
    A = A.T.copy() if mode == "TN" else A
    B = B.T.copy() if mode == "NT" else B
    out = np.empty((30, 50))
    passes.gemm_pass(A, B, out, getattr(passes, mode))  # the shapes that agree
    assert (out == 40).all()
    for wrong_out in (np.empty((30, 49)), np.empty((31, 50))):
        with pytest.raises(ValueError, match="shapes"):
            passes.gemm_pass(A, B, wrong_out, getattr(passes, mode))
    with pytest.raises(ValueError, match="shapes"):
        passes.gemm_pass(A, np.ones((41, 50)) if mode != "NT" else np.ones((50, 41)), out,
                         getattr(passes, mode))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims,capacity", [([1, 1], 1), ([3, 1, 1], 5), ([5, 7, 3, 2], 37)],
                         ids=str)
def test_layout_views_are_the_slots_of_the_flat_buffers(dims, capacity, dtype):
    """``W_of``, ``b_of``, ``layer_of`` (and so the training loop's every view) are views,
    not copies, of exactly the entries ``pack`` and the slots of ``acts`` give them."""
    from fastbackprop.kernels import layout

    dims = np.array(dims, dtype=np.int64)
    L = dims.size - 1
    parameters = R.initialize_parameters(list(dims), "xavier", seed=0, dtype=dtype)
    theta = layout.pack(parameters, list(dims), dtype)
    offsets = layout.layer_offsets(dims, capacity)
    acts = np.arange(sum(dims[1:]) * capacity, dtype=dtype)
    slot = 0
    for l in range(1, L + 1):
        W, b = layout.W_of(theta, dims, offsets, l), layout.b_of(theta, dims, offsets, l)
        assert W.shape == (dims[l], dims[l - 1]) and b.shape == (dims[l], 1)
        np.testing.assert_array_equal(W, parameters[f"W{l}"])
        np.testing.assert_array_equal(b, parameters[f"b{l}"])
        for m in (1, capacity):
            A = layout.layer_of(acts, dims, offsets, l, m)
            np.testing.assert_array_equal(A, acts[slot:slot + dims[l] * m].reshape(dims[l], m))
            A[...] = -1  # a view: the writes land in the buffer
            assert (acts[slot:slot + dims[l] * m] == -1).all()
        slot += dims[l] * capacity
        W[...] = l
        b[...] = -l
    assert slot == acts.size
    np.testing.assert_array_equal(theta, np.concatenate(
        [np.concatenate([np.full(dims[l] * dims[l - 1], l), np.full(dims[l], -l)])
         for l in range(1, L + 1)]).astype(dtype))


def test_a_matrix_view_keeps_its_buffer_alive():
    """A view of a buffer that nothing else holds keeps it alive (it takes a reference):
    Numba's allocation statistics count the buffer live while the view is, freed after."""
    script = """
import gc
import numpy as np
from numba import njit
from numba.core.runtime import rtsys
from fastbackprop.kernels.layout import matrix_view

@njit
def view_of_a_temporary(n):
    return matrix_view(np.arange(n, dtype=np.float64), 3, 4, 5)

def live():
    stats = rtsys.get_allocation_stats()
    return stats.alloc - stats.free

view_of_a_temporary(23)  # compile
gc.collect()
before = live()
view = view_of_a_temporary(23)
during = live()
ok = (view == np.arange(3, 23, dtype=np.float64).reshape(4, 5)).all() and view.flags.c_contiguous
del view
gc.collect()
print(during - before, live() - before, int(ok))
"""
    assert allocation_counts(script) == [(1, 0, 1)]


ARCHITECTURES = [[2, 4, 1], [3, 1, 1], [5, 7, 3, 2], [20, 64, 64, 1], [6, 5, 4, 3, 2]]


def network(layer_dims, m, dtype, seed=0):
    parameters = R.initialize_parameters(layer_dims, "xavier", seed=seed, dtype=dtype)
    for l in range(1, len(layer_dims)):
        parameters[f"b{l}"] += dtype(0.1)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((layer_dims[0], m)).astype(dtype)
    Y = (rng.random((layer_dims[-1], m)) > 0.5).astype(dtype)
    return parameters, X, Y


@pytest.mark.parametrize("output_start", ["dA", "dZ"])
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 2, 37])
@pytest.mark.parametrize("layer_dims", ARCHITECTURES, ids=str)
def test_L_model_forward_cost_backward_update(layer_dims, m, dtype, activation, output_start):
    parameters, X, Y = network(layer_dims, m, dtype)
    AL, caches = K.L_model_forward(X, parameters, activation)
    AL_ref, caches_ref = R.L_model_forward(X, parameters, activation)
    assert_close(AL, AL_ref, dtype, err_msg="AL")
    assert len(caches) == len(caches_ref)
    for (lin, Z), (lin_ref, Z_ref) in zip(caches, caches_ref):
        assert_close(Z, Z_ref, dtype, err_msg="Z")
    cost = K.compute_cost(AL_ref, Y)
    assert cost == pytest.approx(R.compute_cost(AL_ref, Y), rel=10 * TOL[dtype])
    ZL = caches_ref[-1][1]
    assert K.compute_cost_from_logits(ZL, Y) == pytest.approx(
        R.compute_cost_from_logits(ZL, Y), rel=10 * TOL[dtype])
    grads = K.L_model_backward(AL_ref, Y, caches_ref, activation, output_start)
    grads_ref = R.L_model_backward(AL_ref, Y, caches_ref, activation, output_start)
    assert set(grads) == set(grads_ref)
    for key in grads_ref:
        assert grads[key].dtype == dtype, key
        assert_close(grads[key], grads_ref[key], dtype, factor=10, err_msg=key)
    new = K.update_parameters(parameters, grads_ref, 0.3)
    new_ref = R.update_parameters(parameters, grads_ref, 0.3)
    for key in new_ref:
        assert new[key].dtype == dtype
        assert_close(new[key], new_ref[key], dtype, err_msg=key)
    assert_close(K.probabilities(X, parameters, activation), AL_ref, dtype, err_msg="probabilities")
    np.testing.assert_array_equal(K.predict(X, parameters, activation),
                                  R.predict(X, parameters, activation))


TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("layout", ["F", "strided", "transposed_view"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs_give_the_same_answer(layout, dtype):
    parameters, X, Y = network([5, 7, 3, 2], 9, dtype)

    def relayout(a):
        if layout == "F":
            return np.asfortranarray(a)
        if layout == "strided":
            big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), dtype=a.dtype)
            big[::2, ::3] = a
            return big[::2, ::3]
        return np.ascontiguousarray(a.T).T

    odd = {k: relayout(v) for k, v in parameters.items()}
    AL, caches = K.L_model_forward(relayout(X), odd, "tanh")
    AL_ref, caches_ref = R.L_model_forward(X, parameters, "tanh")
    assert_close(AL, AL_ref, dtype)
    grads = K.L_model_backward(relayout(AL_ref), relayout(Y), caches, "tanh", "dZ")
    grads_ref = R.L_model_backward(AL_ref, Y, caches_ref, "tanh", "dZ")
    for key in grads_ref:
        assert_close(grads[key], grads_ref[key], dtype, factor=10, err_msg=key)
    result = K.train(odd, relayout(X), relayout(Y), "tanh", 0.1, 5, 1)
    expected, _ = R.L_layer_model(X, Y, [5, 7, 3, 2], "tanh", 0.1, 5, parameters=parameters)
    for key in expected:
        assert_close(result.parameters[key], expected[key], dtype, factor=10)


@pytest.mark.parametrize("bad", [np.int64, np.float16, np.complex128, object])
def test_other_dtypes_are_refused_with_a_type_error(bad):
    A_prev, W, b = layer(3, 2, 4, np.float64)
    with pytest.raises(TypeError, match=r"A_prev must be a float32 or float64 array .*got dtype"):
        K.linear_activation_forward(A_prev.astype(bad), W, b, "relu")
    with pytest.raises(TypeError, match=r"W must be a float32 or float64 array"):
        K.linear_forward(A_prev, W.astype(bad), b)


def test_mixed_dtypes_follow_numpy_promotion():
    A_prev, W, b = layer(3, 2, 4, np.float32)
    A, _ = K.linear_activation_forward(A_prev, W.astype(np.float64), b, "tanh")
    A_ref, _ = R.linear_activation_forward(A_prev, W.astype(np.float64), b, "tanh")
    assert A.dtype == A_ref.dtype == np.float64


def test_shape_errors_match_the_reference():
    A_prev, W, b = layer(3, 2, 4, np.float64)
    for impl in (K, R):
        with pytest.raises(ValueError, match=r"A_prev must have shape \(2, m\)"):
            impl.linear_forward(A_prev.T, W, b)
        with pytest.raises(ValueError, match="activation must be one of"):
            impl.linear_activation_forward(A_prev, W, b, "softplus")


# ---------------------------------------------------------------------------
# Whole-loop training
# ---------------------------------------------------------------------------

TRAIN_FACTOR = {np.float64: 100, np.float32: 10}  # rounding grows over iterations


@pytest.mark.parametrize("gram", [False, True], ids=["direct", "gram"])
@pytest.mark.parametrize("dtype, activation", [
    # float64 with every activation; float32 with relu here, the others slow (CI's time:
    # each pair is a compiled variant of its own)
    pytest.param(dtype, activation, marks=[pytest.mark.slow]
                 if dtype == np.float32 and activation != "relu" else [])
    for dtype in DTYPES for activation in HIDDEN])
@pytest.mark.parametrize("layer_dims,m", [([2, 4, 1], 400), ([3, 1, 1], 1), ([5, 7, 3, 2], 37),
                                          ([20, 64, 64, 1], 256), ([300, 20, 7, 1], 41),
                                          ([40, 3], 9), ([10, 40, 30], 50)], ids=str)
def test_trainer_equals_K_reference_steps(layer_dims, m, dtype, activation, gram):
    parameters, X, Y = network(layer_dims, m, dtype, seed=3)
    result = K.train(parameters, X, Y, activation, learning_rate=0.05, n_iterations=30,
                     cost_every=7, gram=gram)
    expected, costs = R.L_layer_model(X, Y, layer_dims, activation, 0.05, 30,
                                      parameters=parameters, cost_every=7)
    assert result.status == "ok" and result.n_iter == 30 and result.failed_at is None
    assert len(result.costs) == len(costs) == 5
    np.testing.assert_allclose(result.costs, costs, rtol=TRAIN_FACTOR[dtype] * TOL[dtype])
    for key in expected:
        assert result.parameters[key].dtype == dtype
        assert_close(result.parameters[key], expected[key], dtype,
                     factor=TRAIN_FACTOR[dtype], err_msg=key)


@pytest.mark.parametrize("gram", [False, True], ids=["direct", "gram"])
def test_trainer_in_chunks_equals_one_call(gram):
    parameters, X, Y = network([5, 7, 3, 2], 37, np.float64)
    trainer = K.Trainer(parameters, X, Y, "relu", 0.1, cost_every=4, gram=gram)
    for n in (1, 3, 10, 2):
        assert trainer.run(n) == "ok"
    one = K.train(parameters, X, Y, "relu", 0.1, 16, 4, gram=gram)
    assert trainer.n_iter == 16
    # Gram mode's P0 and D last from chunk to chunk: the same arithmetic as one call
    np.testing.assert_array_equal(trainer.costs, one.costs)
    for key, value in one.parameters.items():
        np.testing.assert_array_equal(trainer.parameters[key], value)


def test_gram_mode_reading_the_parameters_between_chunks_changes_only_rounding():
    """A read folds ``D`` into ``W1`` (the next chunk computes ``P0`` again): the parameters
    read are the trained ones at every point, and training goes on from them."""
    parameters, X, Y = network([50, 7, 3, 2], 37, np.float64)
    trainer = K.Trainer(parameters, X, Y, "relu", 0.1, cost_every=4, gram=True)
    reference = K.Trainer(parameters, X, Y, "relu", 0.1, cost_every=4, gram=False)
    for n in (1, 3, 10, 2):
        assert trainer.run(n) == "ok" and reference.run(n) == "ok"
        for key, value in reference.parameters.items():
            assert_close(trainer.parameters[key], value, np.float64, err_msg=key)
            np.testing.assert_array_equal(trainer.parameters[key], trainer.parameters[key])
    np.testing.assert_allclose(trainer.costs, reference.costs, rtol=1e-13)


def test_gram_mode_is_the_default_for_wide_first_layers_and_long_enough_runs():
    parameters, X, Y = network([50, 3, 1], 20, np.float64)
    assert K.Trainer(parameters, X, Y).gram
    # G costs n_x m^2 = 20000; each step saves n_1 m (2 n_x - m) = 4800
    assert K.Trainer(parameters, X, Y, max_iterations=5).gram
    assert not K.Trainer(parameters, X, Y, max_iterations=4).gram
    parameters, X, Y = network([5, 3, 1], 20, np.float64)
    assert not K.Trainer(parameters, X, Y).gram


def test_trainer_leaves_its_inputs_alone():
    parameters, X, Y = network([5, 7, 3, 2], 37, np.float64)
    before = {k: v.copy() for k, v in parameters.items()}
    Xc = X.copy()
    K.train(parameters, X, Y, "relu", 0.1, 5)
    for key in before:
        np.testing.assert_array_equal(parameters[key], before[key])
    np.testing.assert_array_equal(X, Xc)


@pytest.mark.parametrize("gram", [False, True], ids=["direct", "gram"])
@pytest.mark.parametrize("dtype,learning_rate,status", [
    (np.float64, 1e100, "nonfinite_update"), (np.float64, 1e150, "nonfinite_cost"),
    (np.float32, 3e38, "nonfinite_update"), (np.float32, 1e12, "nonfinite_cost")])
def test_divergence_stops_with_a_status_and_keeps_the_last_finite_parameters(
        dtype, learning_rate, status, gram):
    parameters, X, Y = network([5, 7, 3, 2], 37, dtype)
    X = X * dtype(1e3)
    result = K.train(parameters, X, Y, "relu", learning_rate, n_iterations=50, cost_every=1,
                     gram=gram)
    assert result.status == status
    assert result.failed_at is not None and result.failed_at < 50
    # A bad update is refused (n_iter = failed_at); a bad cost steps back one update.
    assert result.n_iter == result.failed_at - (status == "nonfinite_cost")
    for value in result.parameters.values():
        assert np.all(np.isfinite(value))
    expected = parameters
    if result.n_iter:
        expected, _ = R.L_layer_model(X, Y, [5, 7, 3, 2], "relu", learning_rate, result.n_iter,
                                      parameters=parameters)
    for key in expected:
        assert_close(result.parameters[key], expected[key], dtype, factor=100)
    _, caches = K.L_model_forward(X, result.parameters, "relu")
    assert np.isfinite(K.compute_cost_from_logits(caches[-1][1], Y))
    assert len(result.costs) == result.failed_at + 1


def test_a_learning_rate_that_overflows_the_dtype_is_refused():
    parameters, X, Y = network([2, 3, 1], 5, np.float32)
    with pytest.raises(ValueError, match="learning_rate 1e.100 is not finite in float32"):
        K.train(parameters, X, Y, "tanh", 1e100, 10)


def test_a_non_finite_first_cost_keeps_the_initial_parameters():
    parameters, X, Y = network([2, 3, 1], 5, np.float64)
    parameters["W2"][0, 0] = np.inf
    result = K.train(parameters, X, Y, "tanh", 0.1, 10)
    assert result.status == "nonfinite_cost" and result.failed_at == 0 and result.n_iter == 0
    np.testing.assert_array_equal(result.parameters["W1"], parameters["W1"])


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_pre_activations_give_finite_costs_and_gradients(dtype, activation):
    """|z| of 50 and far more: sigmoid and tanh saturate, the cost stays finite."""
    parameters, X, Y = network([3, 4, 2], 6, dtype)
    for key in ("W1", "W2"):
        parameters[key] = parameters[key] * dtype(200)
    AL, caches = K.L_model_forward(X * dtype(10), parameters, activation)
    ZL = caches[-1][1]
    assert np.max(np.abs(ZL)) > 50
    assert np.all(np.isfinite(AL))
    assert np.isfinite(K.compute_cost(AL, Y))
    assert np.isfinite(K.compute_cost_from_logits(ZL, Y))
    expected = R.compute_cost_from_logits(ZL.astype(np.float64), Y.astype(np.float64))
    assert K.compute_cost_from_logits(ZL, Y) == pytest.approx(expected, rel=10 * TOL[dtype])
    grads = K.L_model_backward(AL, Y, caches, activation, "dZ")
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    result = K.train(parameters, X * dtype(10), Y, activation, 0.01, 3, 1)
    assert result.status == "ok" and np.all(np.isfinite(result.costs))


# ---------------------------------------------------------------------------
# Hypothesis: random shapes and values
# ---------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 40), m=st.integers(1, 70),
       dtype=st.sampled_from(DTYPES), activation=st.sampled_from(HIDDEN),
       scale=st.floats(0.01, 30), seed=st.integers(0, 2**32 - 1))
def test_random_layers_agree(n, k, m, dtype, activation, scale, seed):
    A_prev, W, b = layer(n, k, m, dtype, seed=seed, scale=scale)
    A, cache = K.linear_activation_forward(A_prev, W, b, activation)
    A_ref, cache_ref = R.linear_activation_forward(A_prev, W, b, activation)
    assert_close(A, A_ref, dtype, factor=10)
    dA = np.random.default_rng(seed).standard_normal(A.shape).astype(dtype)
    for g, e, s in zip(K.linear_activation_backward(dA, cache_ref, activation),
                       R.linear_activation_backward(dA, cache_ref, activation),
                       backward_scales(dA, cache_ref)):
        assert_close(g, e, dtype, factor=10, scale=s)


FLOAT64_ARITHMETIC_CHECK = """
import re, numpy as np
from fastbackprop import kernels as K
from fastbackprop.kernels import training
rng = np.random.default_rng(0)
parameters = {"W1": rng.standard_normal((3, 2)), "b1": np.zeros((3, 1)),
              "W2": rng.standard_normal((1, 3)), "b2": np.zeros((1, 1))}
parameters = {k: v.astype(np.float32) for k, v in parameters.items()}
X = rng.standard_normal((2, 9)).astype(np.float32)
Y = (X[:1] > 0).astype(np.float32)
K.train(parameters, X, Y, "tanh", 0.1, 2)
(signature,) = [s for s in training.train.signatures if "float32" in str(s[1])]  # s[0]: tid
ir = training.train.inspect_llvm(signature)
assert "fmul fast float" in ir or "fmul reassoc" in ir or " float " in ir, "no float32 maths found"
arithmetic = re.findall(r"= (?:fadd|fsub|fmul|fdiv|fneg|fpext)\\b[^\\n]*\\bdouble\\b", ir)
calls = re.findall(r"call [^\\n]*double @llvm\\.\\w+\\.f64", ir)
print(len(arithmetic), len(calls))
"""


def test_float32_training_does_no_float64_arithmetic():
    """The compiled float32 loop (inlined passes included) has no double-precision maths.

    Run in a fresh process with the cache off: Numba cannot show the LLVM IR
    of a kernel loaded from its cache.
    """
    import os
    import subprocess
    import sys

    env = dict(os.environ, FASTBACKPROP_CACHE="0")
    out = subprocess.run([sys.executable, "-c", FLOAT64_ARITHMETIC_CHECK], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0"], out.stdout


ALLOCATION_CHECK = """
import numpy as np
from numba.core.runtime import rtsys
from fastbackprop import kernels as K, reference as R
from fastbackprop.datasets import make_classification
for dims, m, gram in (([2, 4, 1], 40, False), ([20, 64, 64, 1], 256, False), ([300, 20, 7, 1], 41, True)):
    X, Y = make_classification(dims[0], m, dims[-1])
    trainer = K.Trainer(R.initialize_parameters(dims, seed=0), X, Y, "relu", 0.01, cost_every=1, gram=gram)
    trainer.run(2)
    counts = []
    for n in (1, 100):
        before = rtsys.get_allocation_stats().alloc
        trainer.run(n)
        counts.append(rtsys.get_allocation_stats().alloc - before)
    print(*counts)
"""


def test_the_training_loop_allocates_nothing_per_iteration():
    """Numba's allocation counter: a run of 100 iterations allocates what a run of 1 does."""
    counts = allocation_counts(ALLOCATION_CHECK)
    assert len(counts) == 3
    for one, hundred in counts:
        assert one == hundred, counts
