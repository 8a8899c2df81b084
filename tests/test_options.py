"""The options object and the derived key of compiled entry points (issue 24).

``TrainingOptions`` is checked field by field on construction, with the
messages the trainers always gave; ``call_specialised`` keys a compiled entry
point on the types of all its arguments, so a call whose types differ from a
cached entry's can never run that entry's machine code.
"""

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest

from fastbackprop import Model, options as opts, spec
from fastbackprop.options import TrainingOptions


def test_defaults_are_the_trainers():
    o = TrainingOptions()
    assert (o.hidden_activation, o.output_activation, o.optimizer) == ("relu", "sigmoid", "gd")
    assert o.learning_rate == 0.0075 and o.cost_every == 100 and o.batch_size is None
    assert o.codes == (2, 0, 0)
    assert o.slots == ()
    assert TrainingOptions(optimizer="adam").slots == ("v", "s")


@pytest.mark.parametrize("changes, error, message", [
    (dict(hidden_activation="softmax"), ValueError, r"hidden_activation must be one of"),
    (dict(hidden_activation=3), TypeError, r"hidden_activation must be a string"),
    (dict(output_activation="relu"), ValueError, r"output_activation must be one of"),
    (dict(optimizer="sgd"), ValueError, r"optimizer must be one of"),
    (dict(learning_rate=-1), ValueError, r"learning_rate must be a finite number > 0; got -1"),
    (dict(learning_rate="0.1"), TypeError, r"learning_rate must be a positive number"),
    (dict(cost_every=0), ValueError, r"cost_every must be a positive integer; got 0"),
    (dict(batch_size=0), ValueError, r"batch_size must be None or an integer >= 1; got 0"),
    (dict(batch_size=2.5), TypeError, r"batch_size must be None or an integer >= 1"),
    (dict(shuffle=1), TypeError, r"shuffle must be True or False; got 1"),
    (dict(seed=-1), ValueError, r"seed must be an integer >= 0; got -1"),
    (dict(beta=1.0), ValueError, r"beta must be a number in \[0, 1\); got 1.0"),
    (dict(beta2=-0.1), ValueError, r"beta2 must be a number in \[0, 1\)"),
    (dict(epsilon=0), ValueError, r"epsilon must be a finite number > 0; got 0"),
    (dict(decay_rate=np.inf), ValueError, r"decay_rate must be a finite number >= 0"),
    (dict(time_interval=0), ValueError, r"time_interval must be a positive integer; got 0"),
    (dict(l2=-1.0), ValueError, r"l2 must be a finite number >= 0; got -1.0"),
    (dict(keep_prob=0), ValueError, r"keep_prob must be a number in \(0, 1\]; got 0"),
    (dict(keep_prob=[1.0, 1.5]), ValueError, r"keep_prob must be a number in \(0, 1\]; got 1.5"),
])
def test_every_field_is_checked_with_its_message(changes, error, message):
    with pytest.raises(error, match=message):
        TrainingOptions(**changes)
    with pytest.raises(error, match=message):  # and a copy with a change is checked again
        TrainingOptions().replace(**changes)


def test_every_field_has_a_declared_check():
    assert set(opts.FIELDS) <= set(opts.CONSTRAINTS)


def test_beta_of_one_is_for_the_undamped_velocities_only():
    """scikit-learn's ``momentum=1``: ``v := beta v - alpha dW`` keeps all of its velocity,
    which ``sgd_momentum`` and ``nesterov`` take; the course's momentum would keep ``v = 0``
    at beta 1, and no other optimiser reads beta, so they keep [0, 1). Above 1: refused."""
    for optimizer in spec.UNDAMPED:
        assert TrainingOptions(optimizer=optimizer, beta=1).beta == 1.0
        assert TrainingOptions(optimizer=optimizer).replace(beta=1.0).beta == 1.0
        assert Model([2, 3, 1], optimizer=optimizer, beta=1.0).beta == 1.0
    for optimizer in set(spec.OPTIMIZERS) - set(spec.UNDAMPED):
        message = (r"beta must be a number in \[0, 1\); got 1.0: 1 only with optimizer "
                   rf"'sgd_momentum' or 'nesterov' \(v := beta v - alpha dW\), not '{optimizer}'")
        with pytest.raises(ValueError, match=message):
            TrainingOptions(optimizer=optimizer, beta=1.0)
        with pytest.raises(ValueError, match=message):
            Model([2, 3, 1], optimizer=optimizer, beta=1.0)
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\); got 1.5$"):
        TrainingOptions(optimizer="nesterov", beta=1.5)


def test_values_are_normalised_and_the_object_is_frozen():
    o = TrainingOptions(learning_rate=1, shuffle=np.bool_(False), keep_prob=[0.5, 1])
    assert type(o.learning_rate) is float and o.shuffle is False
    assert o.keep_prob == (0.5, 1.0) and o.keep_probs(2) == (0.5, 1.0)
    assert TrainingOptions(keep_prob=0.8).keep_probs(3) == (0.8, 0.8, 0.8)
    with pytest.raises(ValueError, match=r"one per hidden layer \(3\); got 2 values"):
        o.keep_probs(3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.learning_rate = 0.5


def test_a_trainer_takes_the_object_or_keywords_not_both():
    from fastbackprop.reference_trainer import Trainer

    parameters = {"W1": np.ones((1, 2)), "b1": np.zeros((1, 1))}
    X, Y = np.ones((2, 3)), np.ones((1, 3))
    o = TrainingOptions(learning_rate=0.1, cost_every=1)
    assert Trainer(parameters, X, Y, options=o).options is o
    assert Trainer(parameters, X, Y, "tanh", 0.1, 1).options == o.replace(
        hidden_activation="tanh")
    with pytest.raises(TypeError, match="either as options=TrainingOptions"):
        Trainer(parameters, X, Y, options=o, optimizer="adam")
    with pytest.raises(TypeError, match="options must be a TrainingOptions"):
        Trainer(parameters, X, Y, options={"learning_rate": 0.1})


# -- the derived key ----------------------------------------------------------


class Pair(NamedTuple):
    a: object
    b: object


def _kernels():
    from numba import literally

    from fastbackprop._jit import jit

    @jit(entry=True)
    def optional_sum(x, part, code):
        literally(code)
        total = x.sum() * code
        if part is not None:
            total += part.sum()
        return total

    @jit
    def sum_or_zero(part):
        if part is None:  # pruned on the argument's type (not on a field's: see training.py)
            return 0.0
        return part.sum()

    @jit(entry=True)
    def pair_sum(pair, code):
        literally(code)
        return pair.a.sum() + code + sum_or_zero(pair.b)

    return optional_sum, pair_sum


def test_a_mismatched_argument_never_reaches_cached_machine_code():
    from fastbackprop.kernels.convert import call_specialised

    optional_sum, pair_sum = _kernels()
    x = np.arange(4.0)
    assert call_specialised(optional_sum, x, None, 2) == 12.0
    assert call_specialised(optional_sum, x, None, 2) == 12.0  # the cached entry
    # an array where None was compiled: another variant, not the None one
    assert call_specialised(optional_sum, x, np.ones(3), 2) == 15.0
    # another literal code, another dtype, another layout
    assert call_specialised(optional_sum, x, None, 3) == 18.0
    assert call_specialised(optional_sum, x.astype(np.float32), None, 2) == 12.0
    assert call_specialised(optional_sum, np.arange(8.0)[::2], None, 1) == 12.0
    assert len(optional_sum.overloads) == 5
    # inside a named tuple too: a field that was None, then an array
    assert call_specialised(pair_sum, Pair(x, None), 1) == 7.0
    assert call_specialised(pair_sum, Pair(x, np.ones(2)), 1) == 9.0
    assert call_specialised(pair_sum, Pair(x, None), 1) == 7.0


def test_the_key_reads_what_numba_types():
    from fastbackprop.kernels.convert import type_key

    a = np.zeros((2, 3))
    keys = {type_key((x,), frozenset()) for x in (
        a, a.T, a[:, ::2], a.astype(np.float32), a.reshape(-1), np.zeros((2, 3), dtype=">f8"))}
    assert len(keys) == 6
    readonly = a.copy()
    readonly.flags.writeable = False
    assert type_key((readonly,), frozenset()) != type_key((a,), frozenset())
    assert type_key((Pair(a, None),), frozenset()) != type_key((Pair(a, a),), frozenset())
    assert type_key((3,), frozenset({0})) != type_key((4,), frozenset({0}))
    assert type_key((3,), frozenset()) == type_key((4,), frozenset())


def test_a_first_call_asks_for_the_literal_signature_at_once():
    """``call_specialised`` types a kernel's ``literally`` parameters as their values from
    the first call. Called with a plain int, Numba types the kernel until ``literally``
    asks for the literal and only then looks the literal signature up: a miss, and in a
    new process about 0.1 s of typing before the cached training loop is found."""
    import inspect

    from numba import types
    from numba.core.errors import TypingError

    from fastbackprop.kernels import training
    from fastbackprop.kernels.convert import call_specialised, literal_positions

    optional_sum, pair_sum = _kernels()
    assert literal_positions(optional_sum) == {2}
    assert literal_positions(pair_sum) == {1}
    names = list(inspect.signature(training.train.py_func).parameters)
    assert literal_positions(training.train) == {names.index(n)
                                                 for n in ("hidden", "output", "optimizer")}
    assert call_specialised(optional_sum, np.arange(4.0), None, 2) == 12.0

    def look_ups(dispatcher):  # the signatures looked up in the on-disk cache: hit or miss
        return [*dispatcher.stats.cache_hits, *dispatcher.stats.cache_misses]

    (signature,) = look_ups(optional_sum)  # one, the literal one
    assert isinstance(signature[2], types.IntegerLiteral) and signature[2].literal_value == 2
    assert call_specialised(pair_sum, Pair(np.arange(4.0), None), 1) == 7.0
    assert len(look_ups(pair_sum)) == 1
    with pytest.raises(TypingError):  # arguments it cannot take: Numba's own error
        call_specialised(optional_sum, "not an array", None, 2)


def test_a_kernel_whose_source_cannot_be_read_is_called_the_ordinary_way(monkeypatch):
    """Without the source (a bytecode-only install) no literal is known in advance: the
    first call goes through Numba's own retry, and still gives the kernel's result."""
    import inspect

    from fastbackprop.kernels import convert

    def no_source(function):
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    optional_sum, _ = _kernels()
    assert convert.literal_positions(optional_sum) == frozenset()
    assert convert.call_specialised(optional_sum, np.arange(4.0), None, 3) == 18.0
    assert convert.call_specialised(optional_sum, np.arange(4.0), None, 3) == 18.0
