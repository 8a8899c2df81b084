"""A fit on several threads (kernels/team.py, kernels/training.py): each batch split between
them, the same results as one thread, the same guarantees when something goes wrong.

Tolerances: P threads add the same numbers in another order (each thread's rows, then the
rows), so against one thread they agree to rounding: 1e-12 relative in float64 and 1e-5 in
float32 after a few epochs (``rtol`` norm-wise, as ``tests/conftest.py`` does).
"""

import threading
import time

import numpy as np
import pytest

from fastbackprop import Model, reference as R, spec, variants
from fastbackprop.kernels import Trainer, team
from fastbackprop.validation import check_labels

AGREE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def problem(output="softmax", dtype=np.float64, m=203, n_x=7, n_y=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m)).astype(dtype)
    if output == "softmax":
        Y = check_labels(rng.integers(0, n_y, m), "softmax", n_y=n_y, m=m, dtype=dtype)
    elif output == "sigmoid":
        Y = (rng.random((n_y, m)) > 0.5).astype(dtype)
    else:
        Y = rng.standard_normal((n_y, m)).astype(dtype)
    return X, Y


def fit(n_threads, X, Y, dims, epochs=3, **options):
    kw = dict(output_activation="softmax", optimizer="adam", batch_size=64, seed=3,
              cost_every=1)
    kw.update(options)
    trainer = Trainer(R.initialize_parameters(dims, seed=1, dtype=X.dtype), X, Y, "tanh", 0.01,
                      n_threads=n_threads, **kw)
    status = trainer.run(epochs)
    return trainer, status


def assert_agree(a, b, dtype):
    rtol = AGREE[np.dtype(dtype)]
    for key, value in a.items():
        np.testing.assert_allclose(b[key], value, rtol=rtol,
                                   atol=rtol * float(np.max(np.abs(value))), err_msg=key)


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("optimizer", list(spec.OPTIMIZERS))
def test_threads_agree_with_one_for_every_optimiser(optimizer, dtype):
    X, Y = problem(dtype=dtype)
    dims = [7, 9, 5, 3]
    one, _ = fit(1, X, Y, dims, optimizer=optimizer)
    for P in (2, 3):
        many, status = fit(P, X, Y, dims, optimizer=optimizer)
        assert status == "ok" and many.n_threads == P and one.n_threads == 1
        assert_agree(one.parameters, many.parameters, dtype)
        for slot in one.optimizer_state:
            assert_agree(one.optimizer_state[slot], many.optimizer_state[slot], dtype)
        np.testing.assert_allclose(many.costs, one.costs, rtol=AGREE[np.dtype(dtype)])


@pytest.mark.parametrize("case, output", [
    # every output layer on the full batch, and every option with sigmoid and softmax; the
    # options with the regression outputs (linear, exp) are slow (CI's time)
    pytest.param(case, output, marks=[pytest.mark.slow]
                 if case != "full batch" and spec.OUTPUTS[output].regression else [])
    for case in ("full batch", "dropout and L2", "weights", "tiny last batch",
                 "more threads than columns")
    for output in spec.OUTPUTS])
def test_threads_agree_with_one_for_every_output_and_option(output, case):
    X, Y = problem(output)
    dims = [7, 9, 5, 3]
    options = {"full batch": dict(batch_size=None, optimizer="momentum"),
               "dropout and L2": dict(keep_prob=[0.8, 0.6], l2=0.3),
               "weights": dict(sample_weight=np.random.default_rng(5).random(203) * 2),
               "tiny last batch": dict(batch_size=101),  # 203 = 2 x 101 + 1
               "more threads than columns": dict(batch_size=2)}[case]
    P = 4 if case == "more threads than columns" else 2
    one, _ = fit(1, X, Y, dims, output_activation=output, **options)
    many, status = fit(P, X, Y, dims, output_activation=output, **options)
    assert status == "ok" and many.n_threads == min(P, options.get("batch_size") or 203)
    assert_agree(one.parameters, many.parameters, np.float64)


def test_the_same_threads_give_the_same_bits():
    X, Y = problem()
    a, _ = fit(2, X, Y, [7, 9, 3], keep_prob=0.7)
    b, _ = fit(2, X, Y, [7, 9, 3], keep_prob=0.7)
    for key, value in a.parameters.items():
        np.testing.assert_array_equal(b.parameters[key], value)


def test_more_threads_than_cores_do_not_deadlock():
    X, Y = problem(m=400)
    one, _ = fit(1, X, Y, [7, 9, 3], epochs=2)
    many, status = fit(8, X, Y, [7, 9, 3], epochs=2)  # 8 threads on the 2 cores
    assert status == "ok" and many.n_threads == 8
    assert_agree(one.parameters, many.parameters, np.float64)


def test_a_diverging_threaded_fit_keeps_the_state_of_one_thread():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 153))
    Y = check_labels(rng.standard_normal((2, 153)), "linear", n_y=2, m=153, dtype=np.float64)
    runs = {}
    for P in (1, 2):
        trainer = Trainer(R.initialize_parameters([5, 6, 2], "he", 0), X, Y, "relu", 1e9, 1,
                          output_activation="linear", optimizer="momentum", batch_size=60,
                          keep_prob=0.8, l2=0.5, seed=1, n_threads=P)
        while trainer.status == "ok" and trainer.n_iter < 40:
            trainer.run(1)
        runs[P] = trainer
    one, two = runs[1], runs[2]
    assert one.status == two.status != "ok"
    assert (one.t, one.n_iter, one.failed_at) == (two.t, two.n_iter, two.failed_at)
    assert_agree(one.parameters, two.parameters, np.float64)


def test_an_error_in_a_thread_stops_them_all_and_the_next_fit_works(monkeypatch):
    from fastbackprop.kernels import convert

    X, Y = problem()
    real = convert.call_specialised

    def fail_in_thread_1(dispatcher, *args):
        if args and args[0] == 1:  # the entry's first argument is the thread's number
            raise RuntimeError("a worker failed")
        return real(dispatcher, *args)

    monkeypatch.setattr("fastbackprop.kernels.trainer.call_specialised", fail_in_thread_1)
    before = set(threading.enumerate())  # other tests' libraries (Dask) may keep threads
    trainer = Trainer(R.initialize_parameters([7, 9, 3], seed=1), X, Y, "tanh", 0.01,
                      output_activation="softmax", batch_size=64, n_threads=2)
    with pytest.raises(RuntimeError, match="a worker failed"):
        trainer.run(2)
    assert trainer.status == "aborted" and trainer.run(1) == "aborted"
    from fastbackprop.kernels.sync import THREAD_NAME
    assert set(threading.enumerate()) <= before  # no thread of ours left running
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]
    monkeypatch.setattr("fastbackprop.kernels.trainer.call_specialised", real)
    _, status = fit(2, X, Y, [7, 9, 3])
    assert status == "ok"


def _count_thread_starts(monkeypatch):
    """The names of the threads started from now on (a list that grows)."""
    started = []
    real = threading.Thread.start

    def counted(thread):
        started.append(thread.name)
        return real(thread)

    monkeypatch.setattr(threading.Thread, "start", counted)
    return started


def test_a_fit_in_many_calls_starts_its_threads_once(monkeypatch):
    """Inside ``threads_kept`` the ``P - 1`` threads live from call to call (``sync.Crew``):
    started once, joined at the end, and the same bits as one call of all the epochs."""
    from fastbackprop.kernels.sync import THREAD_NAME

    X, Y = problem()
    whole, _ = fit(3, X, Y, [7, 9, 3], epochs=6, keep_prob=0.8)
    started = _count_thread_starts(monkeypatch)
    calls, _ = fit(3, X, Y, [7, 9, 3], epochs=1, keep_prob=0.8)
    with calls.threads_kept():
        for _ in range(5):
            assert calls.run(1) == "ok"
        assert len(started) == 2 + 2  # the first fit's threads, then the kept ones
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]
    for key, value in whole.parameters.items():
        np.testing.assert_array_equal(calls.parameters[key], value, err_msg=key)
    np.testing.assert_array_equal(calls.costs, whole.costs)
    del started[:]
    calls.run(1)  # outside the block: started for the call, as before
    assert len(started) == 2 and not [t for t in threading.enumerate()
                                      if t.name.startswith(THREAD_NAME)]


def test_model_fit_keeps_its_threads_for_the_whole_fit(monkeypatch):
    """``Model.fit`` runs its epochs in chunks (callbacks, Ctrl-C): the threads are started
    once a fit, and none is left running after it, whether it ended well or not."""
    from fastbackprop.kernels.sync import THREAD_NAME

    X, Y = problem(m=300)
    started = _count_thread_starts(monkeypatch)
    seen = []
    model = Model([7, 8, 3], "tanh", output_activation="softmax", optimizer="adam",
                  batch_size=64, n_epochs=40, seed=0, n_threads=2, cost_every=1)
    model.fit(X, Y, callback=lambda n_iter, cost: seen.append(n_iter))
    assert len(seen) > 1 and len(started) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]

    def stop(n_iter, cost):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, callback=stop)
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]


def test_blas_threads_are_restored_after_a_fit_whatever_happened(monkeypatch):
    from threadpoolctl import threadpool_info

    def blas():
        return sorted((lib["filepath"], lib["num_threads"]) for lib in threadpool_info()
                      if lib["user_api"] == "blas")

    import scipy.linalg.cython_blas  # noqa: F401 - the kernels' BLAS, loaded before the
    # snapshot (run alone, the fit would load it and the snapshots would differ by a library)

    X, Y = problem()
    before = blas()
    fit(2, X, Y, [7, 9, 3])
    assert blas() == before
    monkeypatch.setattr("fastbackprop.kernels.sync.run_threads",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        fit(2, X, Y, [7, 9, 3])
    assert blas() == before


def test_two_models_fitting_at_once_get_what_they_get_alone():
    X, Y = problem(m=300)
    kw = dict(output_activation="softmax", optimizer="adam", batch_size=128, n_epochs=4,
              seed=0, n_threads=2)
    alone = [Model([7, 8, 3], "tanh", **kw).fit(X, Y),
             Model([7, 5, 3], "relu", **kw).fit(X, Y)]
    together = [Model([7, 8, 3], "tanh", **kw), Model([7, 5, 3], "relu", **kw)]
    threads = [threading.Thread(target=m.fit, args=(X, Y)) for m in together]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together):
        for key, value in a.parameters_.items():
            np.testing.assert_array_equal(b.parameters_[key], value)


def test_the_rule_keeps_small_work_on_one_thread():
    assert team.choose(None, [2, 4, 1], 400) == 1  # planar: too little work to split
    two = min(2, team_cores())
    assert team.choose(None, [64, 64, 10], 32) == two  # digits32: 16 columns, 227k a thread
    assert team.choose(None, [64, 64, 10], 16) == two  # 8 columns a thread, by units
    assert team.choose(None, [64, 64, 10], 16, dropout=True) == 1  # by columns: 113k, too few
    assert team.choose(None, [64, 64, 10], 15) == 1  # 7 columns a thread: too few
    assert team.choose(None, [4, 32, 16, 4], 32) == 1  # 34k multiply-adds a thread: too few
    assert team.choose(None, [4, 32, 16, 4], 256) == two  # 270k a thread
    assert team.choose(None, [784, 256, 128, 10], 128) >= min(2, team_cores())
    assert team.choose(None, [784, 256, 10], 512, gram=True) == 1
    assert team.choose(3, [2, 4, 1], 2) == 2  # never more threads than columns
    assert team.choose(2, [64, 32, 10], 16) == 2  # as asked


def test_the_rule_splits_batches_of_8_to_15_columns_a_thread_where_the_work_is_large():
    """variants.NARROW_COLUMNS: a thread's 8 columns with 100k multiply-adds by units, 200k by
    columns (the measurements are variants.py's)."""
    assert variants.threads(None, [64, 100, 10], 16, 2) == 2  # by units, 177k a thread
    assert variants.threads(None, [64, 32, 10], 16, 2) == 1  # by units, 57k: too few
    assert variants.threads(None, [20, 64, 64, 1], 16, 2) == 1  # small: by columns, 130k
    assert variants.threads(None, [20, 64, 64, 1], 32, 2) == 2  # 16 columns: the first rule
    assert variants.threads(None, [100, 128, 64, 10], 16, 2) == 2  # by columns, 519k
    assert variants.threads(None, [784, 256, 128, 10], 16, 2) == 2
    assert variants.threads(None, [784, 256, 128, 10], 16, 4) == 2  # 8 columns at least
    assert variants.threads(None, [784, 256, 128, 10], 31, 4) == 2  # two at most
    assert variants.threads(None, [784, 256, 128, 10], 16, 1) == 1  # one core
    assert variants.threads(None, [784, 256, 128, 10], 8, 2) == 1  # 4 columns a thread
    assert variants.threads(None, [64, 64, 10], 16, 2, batch_norm=True) == 1
    assert variants.threads(None, [64, 64, 10], 16, 2, sparse=True) == 1  # by columns: 113k
    assert variants.by_units([64, 64, 10], 16, variants.threads(None, [64, 64, 10], 16, 2))
    with pytest.raises(ValueError, match="n_threads must be None or an integer >= 1; got 0"):
        Model([2, 4, 1], n_threads=0)


def team_cores():
    import numba

    return numba.get_num_threads()


def test_model_and_command_pass_the_threads_on():
    X, Y = problem(m=256)
    one = Model([7, 9, 3], "tanh", "softmax", batch_size=128, n_epochs=2, seed=0,
                n_threads=1).fit(X, Y)
    two = Model([7, 9, 3], "tanh", "softmax", batch_size=128, n_epochs=2, seed=0,
                n_threads=2).fit(X, Y)
    assert_agree(one.parameters_, two.parameters_, np.float64)
    assert Model([2, 4, 1], n_threads=3).get_params()["n_threads"] == 3


@pytest.mark.parametrize("P", [1, 2])
def test_a_clocked_fit_counts_its_steps_and_changes_no_bit(P):
    """tools/step_phases.py's clock (kernels/clock.py): the same parameters to the bit,
    every step counted by every thread, every phase's cycles recorded and none negative."""
    from fastbackprop.kernels import clock

    X, Y = problem()
    dims = [7, 9, 5, 3]
    plain, _ = fit(P, X, Y, dims, epochs=2)
    clocked = Trainer(R.initialize_parameters(dims, seed=1, dtype=X.dtype), X, Y, "tanh", 0.01,
                      n_threads=P, output_activation="softmax", optimizer="adam",
                      batch_size=64, seed=3, cost_every=1)
    cycles = clocked.clock_phases()
    assert cycles.shape == (P, clock.CLOCK_WIDTH)
    start = time.perf_counter()
    assert clocked.run(2) == "ok"
    wall = time.perf_counter() - start
    for key, value in plain.parameters.items():
        np.testing.assert_array_equal(clocked.parameters[key], value, err_msg=key)
    steps = 2 * -(-X.shape[1] // 64)
    np.testing.assert_array_equal(cycles[:, clock.STEPS], steps)
    phases = cycles[:, :clock.STEPS]
    assert np.all(phases >= 0)
    assert np.all(phases[:, [clock.FORWARD, clock.BACKWARD, clock.UPDATE]] > 0)
    seconds = clock.seconds_per_step(cycles, clock.rate(0.05))
    assert seconds.shape == (P, len(clock.PHASES))
    # each thread's phases lie inside the run: they add up to no more than its wall time
    # (a fixed bound, 10 ms a phase, failed when the host held a core for longer)
    assert np.all(seconds.sum(axis=1) * steps <= 1.2 * wall)


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (13, 203), (64, 1797)])
@pytest.mark.parametrize("source", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_as_rows_is_the_transpose_in_the_kernels_dtype(dtype, source, shape, threaded,
                                                       monkeypatch):
    """convert.as_rows: a.T as a new writeable C array of dtype, cast as
    np.ascontiguousarray casts; copied by up to 3 threads by rows (forced here for any size)."""
    from fastbackprop.kernels import convert

    if threaded:
        monkeypatch.setattr(convert, "THREADED_COPY_BYTES", 0)
    a = (np.random.default_rng(0).standard_normal(shape) * 100).astype(source)
    rows = convert.as_rows(a, dtype, n_threads=3)
    expected = np.ascontiguousarray(a.T, dtype=dtype)
    assert rows.dtype == dtype and rows.flags.c_contiguous and rows.flags.writeable
    already = a.T.flags.c_contiguous and a.dtype == dtype  # a vector: itself, as NumPy does
    assert np.shares_memory(rows, a) == already
    np.testing.assert_array_equal(rows, expected)


def test_as_rows_keeps_an_array_already_in_rows_and_copies_a_read_only_one():
    from fastbackprop.kernels import convert

    rows = np.arange(12.0).reshape(4, 3)  # the examples' rows: a = rows.T
    assert np.shares_memory(convert.as_rows(rows.T, np.float64), rows)
    rows.flags.writeable = False
    copy = convert.as_rows(rows.T, np.float64)
    assert copy.flags.writeable and not np.shares_memory(copy, rows)
    np.testing.assert_array_equal(copy, rows)


def test_as_rows_raises_a_copy_error_from_a_helper_thread(monkeypatch):
    from fastbackprop.kernels import convert

    monkeypatch.setattr(convert, "THREADED_COPY_BYTES", 0)
    real = np.copyto

    def fail_in_helper(out, source, casting):
        if threading.current_thread() is not threading.main_thread():
            raise MemoryError("no memory in a helper")
        real(out, source, casting=casting)

    monkeypatch.setattr(convert.np, "copyto", fail_in_helper)
    before = set(threading.enumerate())
    with pytest.raises(MemoryError, match="no memory in a helper"):
        convert.as_rows(np.ones((5, 8)), np.float32, n_threads=2)
    assert set(threading.enumerate()) <= before  # the helper was joined
