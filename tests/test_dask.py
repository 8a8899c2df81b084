"""fastbackprop.dask: data-parallel fits on Dask arrays against the one-machine fit.

Examples are columns throughout: X (n_x, m), Y (n_y, m); Dask arrays are
chunked along the columns. Two module-scoped ``LocalCluster``s: two worker
threads in this process (most tests), and two single-threaded worker
processes with nannies (what does not pickle, the serial kernels, a killed
worker). Skipped where Dask is not installed.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from fastbackprop import Model, TrainingDivergedError, optimizers, rng, spec  # noqa: E402
from fastbackprop import reference as R  # noqa: E402
from fastbackprop import dask as fdask  # noqa: E402
from fastbackprop.datasets import make_classification  # noqa: E402

#: float64 Dask fits agree with the one-machine fit to this, relative to each
#: array's largest entry (measured: about 1e-15 to 1e-13).
AGREEMENT = {"float64": 1e-10, "float32": 1e-4}

N_X, M = 6, 1200
CHUNKS = (500, 400, 300)  # uneven blocks


@pytest.fixture(scope="module")
def client():
    """Two single-threaded workers in this process."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c


@pytest.fixture(scope="module")
def process_client():
    """Two single-threaded worker processes, each with a nanny that restarts it."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            fdask.warmup(c, dims=(N_X, 8, 1))
            yield c


@pytest.fixture(scope="module")
def data():
    return make_classification(N_X, M, seed=0)


def dask_pair(X, Y, chunks=CHUNKS):
    return (da.from_array(X, chunks=((X.shape[0],), chunks)),
            da.from_array(Y, chunks=((Y.shape[0],), chunks) if Y.ndim == 2 else (chunks,)))


def relative_difference(a, b):
    """max over the arrays of max|a - b| / max|b|."""
    return max(float(np.max(np.abs(a[k] - b[k])) / max(np.max(np.abs(b[k])), 1e-300))
               for k in b)


def state(model):
    """Everything fit may set, copied, for before/after comparisons."""
    return {k: ({n: np.copy(a) if isinstance(a, np.ndarray) else a for n, a in v.items()}
                if isinstance(v, dict) else np.copy(v) if isinstance(v, np.ndarray) else v)
            for k, v in vars(model).items()}


def assert_same_state(model, before):
    after = state(model)
    assert after.keys() == before.keys()
    for key, value in before.items():
        if isinstance(value, dict):
            assert after[key].keys() == value.keys()
            for name in value:
                np.testing.assert_array_equal(after[key][name], value[name])
        else:
            np.testing.assert_array_equal(after[key], value)


def assert_same_fit(dask_model, one, rtol):
    assert relative_difference(dask_model.parameters_, one.parameters_) < rtol
    np.testing.assert_allclose(dask_model.costs_, one.costs_, rtol=rtol)
    assert ((dask_model.n_iter_, dask_model.t_, dask_model.seed_)
            == (one.n_iter_, one.t_, one.seed_))
    assert dask_model.optimizer_state_.keys() == one.optimizer_state_.keys()
    for slot in one.optimizer_state_:
        assert relative_difference(dask_model.optimizer_state_[slot],
                                   one.optimizer_state_[slot]) < rtol


def fitted_keys(client):
    """The keys of fastbackprop's tasks that the scheduler still holds."""
    return client.run_on_scheduler(
        lambda dask_scheduler: [k for k in dask_scheduler.tasks if "fastbackprop" in str(k)])


def assert_released(client, seconds=5):
    """No fastbackprop task left on the scheduler: released, not leaked. The client's cancel
    reaches the scheduler asynchronously (later under load), so wait up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while fitted_keys(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not fitted_keys(client)


# ---------------------------------------------------------------------------
# Equality with the one-machine fit
# ---------------------------------------------------------------------------


#: The default run keeps plain gradient descent and Adam (with decay, with L2); the other
#: optimisers, whose updates test_optimizers.py holds against the reference, run with -m slow.
@pytest.mark.parametrize("optimizer, decay_rate, l2", [
    *(pytest.param(name, 0.5 if name == "adam" else 0.0, 0.0,
                   marks=() if name in ("gd", "adam") else pytest.mark.slow)
      for name in spec.OPTIMIZERS),
    ("gd", 0.0, 3.0), ("adam", 0.0, 0.7)])
def test_full_batch_equals_the_one_machine_fit(client, data, optimizer, decay_rate, l2):
    X, Y = data
    params = dict(layer_dims=[N_X, 8, 1], learning_rate=0.01 if optimizer != "gd" else 0.5,
                  n_epochs=25, seed=3, optimizer=optimizer, decay_rate=decay_rate, cost_every=4,
                  l2=l2)
    one = Model(**params, backend="numba").fit(X, Y)
    distributed_fit = Model(**params).fit(*dask_pair(X, Y), client=client)
    assert_same_fit(distributed_fit, one, AGREEMENT["float64"])


@pytest.mark.parametrize("output, hidden", [("softmax", "relu"), ("linear", "relu")])
def test_other_output_layers_and_label_forms(client, output, hidden):
    X, Y = make_classification(N_X, M, n_y=3, seed=1)
    labels = np.argmax(Y, axis=0) if output == "softmax" else X[0] * 2 - X[1]  # (m,)
    n_y = 3 if output == "softmax" else 1
    params = dict(layer_dims=[N_X, 7, n_y], hidden_activation=hidden, output_activation=output,
                  learning_rate=0.05, n_epochs=15, seed=0, optimizer="adam", cost_every=1)
    one = Model(**params).fit(X, labels)
    Xd, yd = dask_pair(X, labels)
    assert_same_fit(Model(**params).fit(Xd, yd, client=client), one, AGREEMENT["float64"])
    # either argument may be NumPy: it is cut like the other
    assert_same_fit(Model(**params).fit(X, yd, client=client), one, AGREEMENT["float64"])
    assert_same_fit(Model(**params).fit(Xd, labels, client=client), one, AGREEMENT["float64"])


@pytest.mark.slow
def test_float32_and_many_blocks_with_a_worker_side_tree(client, data):
    X, Y = data
    chunks = (100,) * 10 + (200,)  # 11 blocks > FAN_IN: one level of the tree on the workers
    assert len(chunks) > fdask.FAN_IN
    params = dict(layer_dims=[N_X, 8, 4, 1], learning_rate=0.3, n_epochs=20, seed=1,
                  dtype="float32", optimizer="momentum")
    one = Model(**params).fit(X, Y)
    fitted = Model(**params).fit(*dask_pair(X, Y, chunks), client=client)
    assert fitted.parameters_["W1"].dtype == np.float32
    assert_same_fit(fitted, one, AGREEMENT["float32"])


def test_two_fits_are_bit_identical(client, data):
    X, Y = data
    chunks = (100,) * 10 + (200,)
    params = dict(layer_dims=[N_X, 8, 1], learning_rate=0.5, n_epochs=10, seed=5)
    a = Model(**params).fit(*dask_pair(X, Y, chunks), client=client)
    b = Model(**params).fit(*dask_pair(X, Y, chunks), client=client)
    for k in a.parameters_:
        np.testing.assert_array_equal(a.parameters_[k], b.parameters_[k])
    np.testing.assert_array_equal(a.costs_, b.costs_)


def test_the_current_client_is_the_default(client, data):
    X, Y = data
    params = dict(layer_dims=[N_X, 4, 1], learning_rate=0.5, n_epochs=3, seed=0)
    with client.as_current():
        fitted = Model(**params).fit(*dask_pair(X, Y))
    assert_same_fit(fitted, Model(**params).fit(X, Y), AGREEMENT["float64"])


# ---------------------------------------------------------------------------
# Mini-batches: the documented rule, reproduced on one machine
# ---------------------------------------------------------------------------


def one_machine_minibatches(X, Y, widths, params, n_epochs):
    """The Dask mini-batch rule in NumPy with the reference's step functions."""
    dims, batch_size, seed = params["layer_dims"], params["batch_size"], params["seed"]
    S = -(-sum(widths) // batch_size)
    offsets = np.concatenate([[0], np.cumsum(widths)])
    parameters = R.initialize_parameters(dims, "he", seed)
    state = R.initialize_optimizer(parameters, params["optimizer"])
    hyper = optimizers.Hyperparameters(beta1=0.9, beta2=0.999)
    t, costs = 0, []
    for e in range(n_epochs):
        alpha = optimizers.learning_rate_at(params["learning_rate"], e, params["decay_rate"])
        orders = [rng.permutation(w, int(rng.key(seed, rng.SHUFFLE, i)), e)
                  for i, w in enumerate(widths)]
        total = 0.0
        for k in range(S):
            columns = np.concatenate([offsets[i] + orders[i][k * w // S:(k + 1) * w // S]
                                      for i, w in enumerate(widths)])
            assert abs(columns.size - sum(widths) / S) <= len(widths)  # about m / S columns
            AL, caches = R.L_model_forward(X[:, columns], parameters, "relu", "sigmoid")
            total += R.compute_cost_from_logits(caches[-1][1], Y[:, columns]) * columns.size
            grads = R.L_model_backward(AL, Y[:, columns], caches, "relu", "dZ")
            squares = sum(np.sum(parameters[f"W{l}"] ** 2) for l in range(1, len(dims)))
            total += params["l2"] / 2 * squares  # the L2 term times the batch's columns
            for l in range(1, len(dims)):
                grads[f"dW{l}"] = (grads[f"dW{l}"]
                                   + params["l2"] / columns.size * parameters[f"W{l}"])
            t += 1
            parameters, state = optimizers.update(parameters, grads, state, t, alpha,
                                                  params["optimizer"], hyper)
        costs.append(total / sum(widths))
    return parameters, np.array(costs), t


def test_minibatch_rule_reproduced_on_one_machine(client, data):
    X, Y = data
    params = dict(layer_dims=[N_X, 8, 1], learning_rate=0.01, seed=7, optimizer="adam",
                  batch_size=128, decay_rate=0.1, l2=2.0)
    fitted = Model(**params, n_epochs=4, cost_every=1).fit(*dask_pair(X, Y), client=client)
    parameters, costs, t = one_machine_minibatches(X, Y, CHUNKS, params, 4)
    assert relative_difference(fitted.parameters_, parameters) < AGREEMENT["float64"]
    np.testing.assert_allclose(fitted.costs_, costs, rtol=AGREEMENT["float64"])
    assert (fitted.n_iter_, fitted.t_) == (4, t) and t == 4 * 10  # ceil(1200 / 128) steps


def test_minibatch_columns_cover_every_column_once_per_epoch():
    steps = fdask.minibatch_columns(CHUNKS, 128, seed=7, epoch=2)
    assert len(steps) == 10
    np.testing.assert_array_equal(np.sort(np.concatenate(steps)), np.arange(M))
    # every step takes its share of every block: 50, 40 and 30 columns here
    for columns in steps[:-1]:
        counts = np.histogram(columns, bins=np.cumsum([0, *CHUNKS]))[0]
        np.testing.assert_array_equal(counts, [50, 40, 30])
    unshuffled = fdask.minibatch_columns((4, 4), 4, seed=0, epoch=0, shuffle=False)
    np.testing.assert_array_equal(unshuffled, [[0, 1, 4, 5], [2, 3, 6, 7]])


def test_warm_start_continues_the_minibatch_schedule(client, data):
    X, Y = data
    params = dict(layer_dims=[N_X, 5, 1], learning_rate=0.02, seed=2, optimizer="momentum",
                  batch_size=300, decay_rate=0.2, cost_every=1)
    Xd, Yd = dask_pair(X, Y)
    five = Model(**params, n_epochs=5).fit(Xd, Yd, client=client)
    split = Model(**params, n_epochs=2).fit(Xd, Yd, client=client)
    split.set_params(n_epochs=3).fit(Xd, Yd, warm_start=True, client=client)
    for k in five.parameters_:
        np.testing.assert_array_equal(split.parameters_[k], five.parameters_[k])
    np.testing.assert_array_equal(split.costs_, five.costs_)
    assert (split.n_iter_, split.t_) == (5, 20)


def test_too_small_blocks_for_the_batch_size_are_refused(client, data):
    X, Y = data
    model = Model([N_X, 4, 1], batch_size=10, n_epochs=1)  # 120 steps, blocks of 100
    with pytest.raises(ValueError, match=r"batch_size=10: .* at least .* = 120 columns; the "
                                         r"smallest has 100"):
        model.fit(*dask_pair(X, Y, (100,) * 12), client=client)


def test_validation_and_early_stopping_as_on_one_machine(client, data):
    X, Y = data
    X_val, Y_val = make_classification(N_X, 300, seed=9)
    params = dict(layer_dims=[N_X, 16, 1], learning_rate=0.05, n_epochs=60, seed=0,
                  optimizer="adam", cost_every=5, early_stopping=True, patience=10, l2=0.5)
    one = Model(**params).fit(X, Y, validation_data=(X_val, Y_val))
    model = fdask.fit(Model(**params), *dask_pair(X, Y), validation_data=(X_val, Y_val),
                      client=client)
    assert_same_fit(model, one, AGREEMENT["float64"])
    np.testing.assert_allclose(model.validation_costs_, one.validation_costs_, rtol=1e-10)
    np.testing.assert_array_equal(model.validation_scores_, one.validation_scores_)
    assert model.best_epoch_ == one.best_epoch_


@pytest.mark.parametrize("params, fit_kw, message", [
    ({"keep_prob": 0.8}, {}, "keep_prob=0.8: dropout is not supported for Dask arrays"),
    ({"layer_dims": [N_X, 4, 4, 1], "keep_prob": [1.0, 0.5]}, {}, r"keep_prob=\[1.0, 0.5\]"),
    ({}, {"validation_data": (da.ones((N_X, 5)), np.ones((1, 5)))}, None),
    ({}, {"sample_weight": np.ones(M)}, "sample_weight is not supported for Dask arrays"),
    ({"early_stopping": True}, {}, "early_stopping on Dask arrays needs validation_data"),
])
def test_what_dask_fits_do_not_do_yet_is_refused(client, data, params, fit_kw, message):
    X, Y = data
    model = Model(**{"layer_dims": [N_X, 4, 1], **params})
    with pytest.raises(TypeError if message is None else ValueError,
                       match=message or "validation_data must hold NumPy arrays"):
        fdask.fit(model, *dask_pair(X, Y), client=client, **fit_kw)
    assert not hasattr(model, "parameters_")


def test_keep_prob_one_for_every_layer_is_no_dropout(client, data):
    X, Y = data
    model = Model([N_X, 4, 4, 1], keep_prob=[1.0, 1.0], n_epochs=2, seed=0)
    fitted = model.fit(*dask_pair(X, Y), client=client)
    assert_same_fit(fitted, Model([N_X, 4, 4, 1], n_epochs=2, seed=0).fit(X, Y),
                    AGREEMENT["float64"])


# ---------------------------------------------------------------------------
# Bad input, divergence, progress and interruption
# ---------------------------------------------------------------------------


@pytest.fixture
def fitted(client, data):
    X, Y = data
    return Model([N_X, 4, 1], learning_rate=0.5, n_epochs=3, seed=0).fit(X, Y)


def test_nan_in_one_block_is_refused_and_the_model_kept(client, data, fitted):
    X, Y = data
    bad = X.copy()
    bad[2, 700] = np.nan  # block 1 holds columns 500 to 899
    before = state(fitted)
    with pytest.raises(ValueError, match=r"X must be finite; found nan at index \(2, 200\) "
                                         r"\(in block 1 of the Dask array, which holds columns "
                                         r"500 to 899"):
        fitted.fit(*dask_pair(bad, Y), client=client)
    assert_same_state(fitted, before)
    assert_released(client)


def test_a_block_with_the_wrong_number_of_rows_is_refused(client, data, fitted):
    X, Y = data
    lying = da.from_delayed(dask.delayed(lambda: X[:-1, 500:])(), shape=(N_X, 700),
                            dtype=X.dtype)  # says (6, 700), holds (5, 700)
    Xd = da.concatenate([da.from_array(X[:, :500]), lying], axis=1)
    before = state(fitted)
    with pytest.raises(ValueError, match=r"X must have shape \(6, m\) .*got shape \(5, 700\) "
                                         r"\(in block 1 "):
        fitted.fit(Xd, da.from_array(Y, chunks=(1, 500)), client=client)
    assert_same_state(fitted, before)


def test_bad_labels_in_one_block_are_refused(client, data):
    X, Y = data
    bad = Y.copy()
    bad[0, 1100] = 2
    model = Model([N_X, 4, 1], n_epochs=2)
    with pytest.raises(ValueError, match=r"Y must hold labels 0 or 1 only; found 2.0 at index "
                                         r"\(0, 200\) \(in block 2 "):
        model.fit(*dask_pair(X, bad), client=client)
    assert not hasattr(model, "parameters_")


@pytest.mark.parametrize("make, error, message", [
    (lambda X, Y: (da.from_array(X[:5]), Y), ValueError, r"X must have shape \(6, m\)"),
    (lambda X, Y: (da.from_array(X), Y[:, :-1]), ValueError, r"Y must have shape \(1, 1200\)"),
    (lambda X, Y: (da.from_array(X.astype(complex)), Y), TypeError, "X must be a real numeric"),
    (lambda X, Y: (da.from_array(X)[:, da.from_array(X[0]) > 0], Y), ValueError,
     r"X has unknown chunk sizes .*compute_chunk_sizes"),
    (lambda X, Y: (da.from_array(X), Y.astype(object)), TypeError, "Y must be a real numeric"),
])
def test_bad_arrays_are_refused_before_any_work(client, data, make, error, message):
    X, Y = data
    with pytest.raises(error, match=message):
        Model([N_X, 4, 1]).fit(*make(X, Y), client=client)


def test_a_client_is_needed(data):
    X, Y = data
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        Model([N_X, 4, 1]).fit(*dask_pair(X, Y), client="tcp://nowhere:1")


def test_divergence_raises_as_on_one_machine_and_keeps_the_model(client, fitted):
    X, Y = make_classification(5, 50, seed=0)  # the one-machine tests' diverging problem
    params = dict(layer_dims=[5, 8, 1], learning_rate=1e8, n_epochs=200, seed=0, cost_every=10)
    with pytest.raises(TrainingDivergedError) as one:
        Model(**params).fit(X, Y)
    model = Model(**params)
    with pytest.raises(TrainingDivergedError, match=r"training diverged at epoch 21: the cost "
                       "became NaN or infinite; the model is unchanged") as caught:
        model.fit(*dask_pair(X, Y, (20, 30)), client=client)
    assert not hasattr(model, "parameters_")
    error, expected = caught.value, one.value
    assert (error.epoch, error.n_iter, error.t, error.reason) == (
        expected.epoch, expected.n_iter, expected.t, expected.reason)
    assert relative_difference(error.parameters, expected.parameters) < 1e-10
    np.testing.assert_allclose(error.costs, expected.costs, rtol=1e-10)


def test_callback_reports_progress_and_its_errors_propagate(client, data, fitted, monkeypatch):
    X, Y = data
    monkeypatch.setattr("fastbackprop.driver.CHUNK_SECONDS", 0.0)  # a call after every epoch
    calls = []
    model = Model([N_X, 4, 1], learning_rate=0.5, n_epochs=6, seed=0, cost_every=2)
    model.fit(*dask_pair(X, Y), callback=lambda n, cost: calls.append((n, cost)), client=client)
    assert [n for n, _ in calls] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([c for _, c in calls], np.repeat(model.costs_, 2), rtol=1e-15)
    before = state(fitted)
    for exception in (RuntimeError("stop"), KeyboardInterrupt()):
        def interrupt(n_iter, cost, exception=exception):
            raise exception
        with pytest.raises(type(exception)):
            fitted.fit(*dask_pair(X, Y), callback=interrupt, client=client)
        assert_same_state(fitted, before)
    assert_released(client)
    with pytest.raises(TypeError, match="callback must be callable"):
        model.fit(*dask_pair(X, Y), callback=3, client=client)


# ---------------------------------------------------------------------------
# Lazy predictions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "linear"])
def test_lazy_predictions_equal_eager_ones(client, output):
    n_y = 1 if output == "sigmoid" else 3
    X, Y = make_classification(N_X, M, n_y=3, seed=2)
    labels = {"sigmoid": Y[:1], "softmax": np.argmax(Y, axis=0), "linear": Y * 2.0}[output]
    model = Model([N_X, 8, n_y], "relu", output, learning_rate=0.1, n_epochs=5, seed=0).fit(
        X, labels)
    Xd = da.from_array(X, chunks=(3, (700, 500)))  # chunked along the rows too
    predicted = model.predict(Xd)
    assert isinstance(predicted, da.Array)
    eager = model.predict(X)
    assert predicted.shape == eager.shape and predicted.dtype == eager.dtype
    with client.as_current():
        if output == "linear":  # values: to rounding (BLAS blocks products by their width)
            np.testing.assert_allclose(predicted.compute(), eager, rtol=1e-13, atol=1e-15)
        else:  # labels: the same
            np.testing.assert_array_equal(predicted.compute(), eager)
        if output != "linear":
            probabilities = model.predict_proba(Xd)
            assert isinstance(probabilities, da.Array)
            np.testing.assert_allclose(probabilities.compute(), model.predict_proba(X),
                                       rtol=1e-13, atol=1e-15)
        bad = X.copy()
        bad[0, 900] = np.inf
        lazy = model.predict(da.from_array(bad, chunks=(N_X, 500)))  # no work yet: no error
        with pytest.raises(ValueError, match="X must be finite"):
            lazy.compute()
    with pytest.raises(ValueError, match=r"X must have shape \(6, m\)"):
        model.predict(da.from_array(X[:4]))


# ---------------------------------------------------------------------------
# Worker processes: pickling, serial kernels, a killed worker
# ---------------------------------------------------------------------------


def test_worker_processes_fit_as_threads_do(process_client, client, data):
    X, Y = data
    params = dict(layer_dims=[N_X, 8, 1], learning_rate=0.01, n_epochs=6, seed=4,
                  optimizer="adam", batch_size=400)
    in_processes = Model(**params).fit(*dask_pair(X, Y), client=process_client)
    in_threads = Model(**params).fit(*dask_pair(X, Y), client=client)
    assert relative_difference(in_processes.parameters_, in_threads.parameters_) < 1e-13
    with process_client.as_current():
        np.testing.assert_array_equal(in_processes.predict(da.from_array(X, chunks=(N_X, 600)))
                                      .compute(), in_processes.predict(X))


def _serial_kernels():
    from fastbackprop.kernels import training

    threads = None
    try:
        import threadpoolctl

        threads = [p["num_threads"] for p in threadpoolctl.threadpool_info()
                   if p["internal_api"] in ("openblas", "mkl", "blis")]
    except ImportError:
        pass
    return (training.gradient_sums.targetoptions.get("nogil"),
            os.environ.get("OPENBLAS_NUM_THREADS"), threads)


def test_tasks_run_the_serial_nogil_kernels(process_client):
    for nogil, variable, threads in process_client.run(_serial_kernels).values():
        assert nogil is True and variable == "1"
        assert threads is None or set(threads) == {1}


def test_a_killed_worker_changes_nothing(process_client, data):
    """Kill the process of the worker holding block 0 in the middle of a fit."""
    X, Y = data
    params = dict(layer_dims=[N_X, 8, 1], learning_rate=0.5, n_epochs=60, seed=6, cost_every=1)
    undisturbed = Model(**params).fit(*dask_pair(X, Y), client=process_client)
    pids = process_client.run(os.getpid)
    killed = []

    def kill(n_iter, cost):
        if not killed and n_iter >= 10:
            holders = process_client.run_on_scheduler(lambda dask_scheduler: [
                ws.address for ts in dask_scheduler.tasks.values()
                if str(ts.key).startswith("fastbackprop-block-") and str(ts.key).endswith("-0")
                for ws in ts.who_has])
            os.kill(pids[holders[0]], signal.SIGKILL)
            killed.append(n_iter)

    monkey = pytest.MonkeyPatch()
    monkey.setattr("fastbackprop.driver.CHUNK_SECONDS", 0.0)
    try:
        disturbed = Model(**params).fit(*dask_pair(X, Y), callback=kill, client=process_client)
    finally:
        monkey.undo()
    assert killed == [10]
    for k in undisturbed.parameters_:
        np.testing.assert_array_equal(disturbed.parameters_[k], undisturbed.parameters_[k])
    np.testing.assert_array_equal(disturbed.costs_, undisturbed.costs_)
    process_client.wait_for_workers(2, timeout=30)  # the nanny brings it back
    assert len(set(process_client.run(os.getpid).values()) - set(pids.values())) == 1


# ---------------------------------------------------------------------------
# Import cost and the command line's helper
# ---------------------------------------------------------------------------


def test_importing_fastbackprop_does_not_import_dask():
    code = ("import sys, fastbackprop, numpy; from fastbackprop import Model; "
            "Model([2, 1]).fit(numpy.ones((2, 3)), numpy.ones((1, 3))); "
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_fit_with_scheduler(client, data):
    X, Y = data
    params = dict(layer_dims=[N_X, 4, 1], learning_rate=0.5, n_epochs=4, seed=0)
    X_val, Y_val = make_classification(N_X, 100, seed=9)
    fitted = fdask.fit_with_scheduler(Model(**params), X, Y, client.scheduler.address,
                                      validation_data=(X_val, Y_val))
    one = Model(**params).fit(X, Y, validation_data=(X_val, Y_val))
    assert_same_fit(fitted, one, AGREEMENT["float64"])
    np.testing.assert_allclose(fitted.validation_costs_, one.validation_costs_, rtol=1e-10)
    with pytest.raises(TypeError, match="X or Y must be a Dask array"):
        fdask.fit(Model(**params), X, Y, client=client)
    with pytest.raises(ValueError, match="--scheduler tcp://127.0.0.1:9: cannot connect"):
        fdask.fit_with_scheduler(Model(**params), X, Y, "tcp://127.0.0.1:9", timeout=1)
