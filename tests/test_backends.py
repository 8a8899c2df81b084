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


def test_both_trainers_take_the_same_arguments_and_have_the_same_interface():
    numba, numpy = (backends.get(name).Trainer for name in ("numba", "numpy"))
    shared = {k: v for k, v in inspect.signature(numba).parameters.items() if k != "gram"}
    assert shared == dict(inspect.signature(numpy).parameters)
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
        passes.bias_activation(Z, b, 99)
