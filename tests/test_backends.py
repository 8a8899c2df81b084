"""The registries: every name in ``spec``'s tables is implemented everywhere, and the
two backends expose the same interface."""

import inspect

import numpy as np
import pytest

from fastbackprop import activations, backends, spec


def test_both_backends_expose_the_same_step_functions_with_the_same_signatures():
    numba, numpy = (backends.get(name) for name in ("numba", "numpy"))
    for name in backends.STEP_FUNCTIONS:
        assert inspect.signature(getattr(numba.steps, name)) == \
            inspect.signature(getattr(numpy.steps, name)), name
    assert inspect.signature(numba.probabilities) == inspect.signature(numpy.probabilities)
    assert inspect.signature(numba.gradient_sums) == inspect.signature(numpy.gradient_sums)


def test_both_trainers_take_the_same_arguments_and_have_the_same_interface():
    numba, numpy = (backends.get(name).Trainer for name in ("numba", "numpy"))
    assert inspect.signature(numba) == inspect.signature(numpy)
    for attribute in ("run", "parameters", "costs"):
        assert hasattr(numba, attribute) and hasattr(numpy, attribute), attribute


def test_the_registry_refuses_an_unknown_backend_by_name():
    with pytest.raises(ValueError, match=r"backend must be one of \['numba', 'numpy'\]; got 'jax'"):
        backends.get("jax")


def test_codes_are_unique_within_each_table():
    for table in (spec.ACTIVATIONS, spec.OUTPUTS, spec.OPTIMIZERS):
        codes = [entry.code for entry in table.values()]
        assert len(set(codes)) == len(codes)


def test_every_activation_has_numpy_functions_and_kernels():
    from fastbackprop.kernels import scalar

    assert set(activations.FUNCTIONS) == set(spec.ACTIVATIONS)
    assert set(scalar.ACTIVATION_KERNELS) == set(activations.CODES.values())


def test_every_output_layer_has_kernels():
    from fastbackprop.kernels import outputs

    assert set(outputs.OUTPUT_KERNELS) == {entry.code for entry in spec.OUTPUTS.values()}


def test_an_unknown_code_fails_to_compile_instead_of_falling_through():
    from numba.core.errors import TypingError

    from fastbackprop.kernels import passes

    Z = np.zeros((2, 3))
    b = np.zeros((2, 1))
    with pytest.raises(TypingError, match="no kernel for activation code 99"):
        passes.bias_activation_pass(Z, b, 99)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_block_gradient_sums_add_up_to_the_whole_batch_and_match_the_reference(dtype, tol):
    """The data-parallel step: raw sums of column blocks add to the sums of all columns."""
    from fastbackprop import reference as R
    from fastbackprop.kernels import pack

    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 41)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[:, rng.integers(0, 3, 41)]
    theta = pack(R.initialize_parameters([5, 7, 3], seed=0), [5, 7, 3], dtype)
    numba, numpy = (backends.get(name).gradient_sums for name in ("numba", "numpy"))
    whole, loss = numba(theta, X, Y, [5, 7, 3], "tanh", "softmax")
    assert whole.dtype == dtype
    parts = [numba(theta, X[:, a:b], Y[:, a:b], [5, 7, 3], "tanh", "softmax")
             for a, b in ((0, 1), (1, 20), (20, 41))]
    np.testing.assert_allclose(sum(p[0] for p in parts), whole, rtol=tol, atol=tol)
    assert sum(p[1] for p in parts) == pytest.approx(loss, rel=tol)
    expected, expected_loss = numpy(theta, X, Y, [5, 7, 3], "tanh", "softmax")
    np.testing.assert_allclose(whole, expected, rtol=tol, atol=tol)
    assert loss == pytest.approx(expected_loss, rel=tol)


@pytest.mark.parametrize("name", spec.BACKENDS)
def test_a_trainer_takes_a_new_learning_rate_between_runs(name):
    from fastbackprop import reference as R

    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((3, 20)), (rng.random((1, 20)) > 0.5).astype(float)
    parameters = R.initialize_parameters([3, 4, 1], seed=0)
    Trainer = backends.get(name).Trainer
    changed = Trainer(parameters, X, Y, "tanh", 0.1)
    changed.run(2)
    changed.set_learning_rate(0.3)
    changed.run(3)
    expected, _ = R.L_layer_model(X, Y, [3, 4, 1], "tanh", 0.1, 2, parameters=parameters)
    expected, _ = R.L_layer_model(X, Y, [3, 4, 1], "tanh", 0.3, 3, parameters=expected)
    for key, value in expected.items():
        np.testing.assert_allclose(changed.parameters[key], value, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        changed.set_learning_rate(-1)
