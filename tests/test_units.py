"""A step split by hidden units (kernels/units.py): each of ``P`` threads runs the whole batch
through its share of a one-hidden-layer network's units, and the fit agrees with one
thread's.

Tolerances: as tests/test_threads.py's (the threads add ``Z2``'s parts in another order than
one thread's product): 1e-12 relative in float64 and 1e-5 in float32 after a few epochs,
for the parameters and the costs. The optimisers' states in float32 agree to 5e-5: RMSprop's
``s`` holds squared gradients, and on ``[7, 9, 3]`` one thread's float32 ``s`` is itself
4.6e-5 from float64's; a split by columns is 2.1e-5 from one thread there, and one by
units 2.2e-5.
"""

import numpy as np
import pytest

from fastbackprop import reference as R, spec, variants
from fastbackprop.kernels import Trainer, team
from fastbackprop.validation import check_labels

from test_threads import AGREE, assert_agree, problem

STATE_AGREE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 5e-5}


@pytest.fixture
def always_by_units(monkeypatch):
    """Split every step that can be split by units by units, whatever its batch's width."""
    monkeypatch.setattr(variants, "UNIT_COLUMNS", 10**9)


def fit(n_threads, X, Y, dims, epochs=3, **options):
    kw = dict(output_activation="softmax", optimizer="adam", batch_size=32, seed=3,
              cost_every=1)  # 16 columns a thread on two: split by units
    kw.update(options)
    trainer = Trainer(R.initialize_parameters(dims, seed=1, dtype=X.dtype), X, Y, "tanh", 0.01,
                      n_threads=n_threads, **kw)
    status = trainer.run(epochs)
    return trainer, status


def agree_by_units(X, Y, dims, P=2, **options):
    """Fit on one thread and on ``P`` split by units; check they agree; return both."""
    one, _ = fit(1, X, Y, dims, **options)
    many, status = fit(P, X, Y, dims, **options)
    assert status == "ok" and many.n_threads == P and many.by_units and not one.by_units
    assert_agree(one.parameters, many.parameters, X.dtype)
    rtol = STATE_AGREE[np.dtype(X.dtype)]
    for slot, state in one.optimizer_state.items():
        for key, value in state.items():
            np.testing.assert_allclose(many.optimizer_state[slot][key], value, rtol=rtol,
                                       atol=rtol * float(np.max(np.abs(value))), err_msg=key)
    np.testing.assert_allclose(many.costs, one.costs, rtol=AGREE[np.dtype(X.dtype)])
    return one, many


# every optimiser but Adam (each one's update over several spans is checked to the bit in
# tests/test_optimizers.py), the regression outputs' options and float32's shapes are slow
# (each a variant to compile: CI's time), as in tests/test_threads.py
@pytest.mark.parametrize("optimizer, dtype", [
    pytest.param(optimizer, dtype, marks=[pytest.mark.slow] if optimizer != "adam" else [])
    for optimizer in spec.OPTIMIZERS for dtype in (np.float64, np.float32)])
def test_units_agree_with_one_thread_for_every_optimiser(optimizer, dtype):
    X, Y = problem(dtype=dtype)
    agree_by_units(X, Y, [7, 9, 3], optimizer=optimizer)


@pytest.mark.parametrize("case, output", [
    pytest.param(case, output, marks=[pytest.mark.slow]
                 if case != "full batch" and spec.OUTPUTS[output].regression else [])
    for case in ("full batch", "L2", "weights", "tiny last batch", "two columns",
                 "one unit a thread", "three threads")
    for output in spec.OUTPUTS])
def test_units_agree_with_one_thread_for_every_output_and_option(output, case,
                                                                 always_by_units):
    X, Y = problem(output)
    dims, P = [7, 9, 3], 2
    options = {"full batch": dict(batch_size=None, optimizer="momentum"),
               "L2": dict(l2=0.3),
               "weights": dict(sample_weight=np.random.default_rng(5).random(203) * 2),
               "tiny last batch": dict(batch_size=101),  # 203 = 2 x 101 + 1
               "two columns": dict(batch_size=2),  # and a last batch of one
               "one unit a thread": {},
               "three threads": dict(batch_size=50)}[case]
    if case == "one unit a thread":
        dims = [7, 2, 3]
    if case == "three threads":
        P = 3
    agree_by_units(X, Y, dims, P, output_activation=output, **options)


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("dims, m, batch_size", [
    ([1, 5, 1], 17, 4), ([5, 3, 1], 3, None), ([11, 33, 2], 40, 7), ([64, 64, 10], 97, 32),
    ([3, 40, 5], 9, 9)])
def test_units_agree_with_one_thread_over_shapes(dims, m, batch_size, dtype, always_by_units):
    X, Y = problem("sigmoid", dtype, m=m, n_x=dims[0], n_y=dims[-1])
    agree_by_units(X, Y, dims, output_activation="sigmoid", batch_size=batch_size)


def test_units_give_the_same_bits_run_after_run():
    X, Y = problem()
    a, _ = fit(2, X, Y, [7, 9, 3], l2=0.1)
    b, _ = fit(2, X, Y, [7, 9, 3], l2=0.1)
    assert a.by_units and b.by_units
    for key, value in a.parameters.items():
        np.testing.assert_array_equal(b.parameters[key], value)
    np.testing.assert_array_equal(a.costs, b.costs)


def test_a_diverging_fit_split_by_units_keeps_the_state_of_one_thread():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 153))
    Y = check_labels(rng.standard_normal((2, 153)), "linear", n_y=2, m=153, dtype=np.float64)
    runs = {}
    for P in (1, 2):
        trainer = Trainer(R.initialize_parameters([5, 6, 2], "he", 0), X, Y, "relu", 1e9, 1,
                          output_activation="linear", optimizer="momentum", batch_size=30,
                          l2=0.5, seed=1, n_threads=P)
        while trainer.status == "ok" and trainer.n_iter < 40:
            trainer.run(1)
        runs[P] = trainer
    one, two = runs[1], runs[2]
    assert two.by_units
    assert one.status == two.status != "ok"
    assert (one.t, one.n_iter, one.failed_at) == (two.t, two.n_iter, two.failed_at)
    assert_agree(one.parameters, two.parameters, np.float64)


def test_more_threads_than_cores_split_by_units_do_not_deadlock():
    X, Y = problem(m=100)
    one, _ = fit(1, X, Y, [7, 9, 3], epochs=2, batch_size=16)
    many, status = fit(6, X, Y, [7, 9, 3], epochs=2, batch_size=16)  # 6 threads, 2 cores
    assert status == "ok" and many.n_threads == 6 and many.by_units
    assert_agree(one.parameters, many.parameters, np.float64)


@pytest.mark.parametrize("dims, P", [([7, 9, 3], 2), ([64, 64, 10], 2), ([5, 3, 4], 3),
                                     ([784, 100, 10], 2), ([3, 70, 1], 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_threads_shares_cover_every_parameter_once(dims, P, dtype):
    from fastbackprop.layout import n_parameters

    firsts = team.unit_firsts(dims[1], P, dtype)
    assert firsts[0] == 0 and firsts[-1] == dims[1] and all(
        a < b for a, b in zip(firsts, firsts[1:]))  # every thread has a unit
    owners = np.zeros(n_parameters(dims), dtype=int)
    for p, spans in enumerate(team.unit_spans(dims, firsts)):
        for lo, hi in spans:
            owners[lo:hi] += 1
    np.testing.assert_array_equal(owners, 1)


def test_the_rule_splits_small_batches_of_one_hidden_layer_by_units():
    assert variants.by_units([64, 64, 10], 32, 2)  # digits32
    assert not variants.by_units([64, 100, 10], 200, 2)  # the drop-in's default batch
    assert not variants.by_units([64, 64, 10], 32, 1)  # one thread
    assert not variants.by_units([20, 64, 64, 1], 32, 2)  # two hidden layers
    assert not variants.by_units([64, 1, 10], 32, 2)  # fewer units than threads
    for option in ("dropout", "gram", "batch_norm", "sparse"):
        assert not variants.by_units([64, 64, 10], 32, 2, **{option: True})
    X, Y = problem()
    assert not fit(2, X, Y, [7, 9, 3], epochs=1, keep_prob=0.8)[0].by_units


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_size", [32, 128])  # split by units, by columns
def test_no_cache_line_holds_two_threads_entries_in_any_slot(batch_size, dtype):
    """The parameters and each optimiser slot start on a line of their own (the trainer's
    buffer is aligned and its slots whole lines long), so the threads' shares, cut at whole
    lines of the layout, meet at a line's start in every slot: no line of it is written by
    two cores (as it was in Adam's slots, 4810 entries long on digits32's network)."""
    X, Y = problem(m=256, n_x=64, n_y=10, dtype=dtype)
    trainer, _ = fit(2, X, Y, [64, 64, 10], epochs=1, batch_size=batch_size)
    assert trainer.by_units == (batch_size == 32)
    current = trainer._current
    n = trainer._team.work.grad.size
    assert current.size == 3 * n  # Adam: theta, v, s
    line = 64
    assert current.ctypes.data % line == 0 and n * current.itemsize % line == 0
    owners = {}
    for p, spans in enumerate(trainer._team.shared.spans):
        for lo, hi in spans:
            for slot in range(3):
                first = (slot * n + lo) * current.itemsize // line
                last = (slot * n + hi) * current.itemsize - 1
                for k in range(first, last // line + 1) if hi > lo else ():
                    assert owners.setdefault(k, p) == p, (p, lo, hi, slot)
    assert len(set(owners.values())) == 2
