"""Activation functions g and their derivatives g', in plain NumPy.

Every function works element-wise on an array ``Z`` of any shape (in the
network, ``Z`` is ``(n_l, m)``: one example per column) and returns an
array of the same shape and dtype.

The names and their integer codes (what the compiled kernels receive) are
one table, :data:`fastbackprop.spec.ACTIVATIONS`; :data:`FUNCTIONS` below
gives each entry its NumPy ``g`` and ``g'``.
"""

from __future__ import annotations

import numpy as np

from . import spec

#: Slope of ``leaky_relu`` for negative inputs (the course's 0.01).
LEAKY_SLOPE = 0.01

#: Name -> integer code passed to the Numba kernels.
CODES = spec.codes(spec.ACTIVATIONS)

#: Activations allowed in hidden layers.
HIDDEN = tuple(spec.ACTIVATIONS)


def check_activation_name(name, argument="activation"):
    """Return the integer code of activation ``name``.

    Raises ``TypeError`` if ``name`` is not a string and ``ValueError`` if it
    is not one of :data:`HIDDEN`; the message names ``argument``.
    """
    return spec.code_of(spec.ACTIVATIONS, name, argument)


def sigmoid(Z):
    """sigma(Z) = 1 / (1 + exp(-Z)), computed without overflow.

    For Z >= 0 it uses 1 / (1 + e), for Z < 0 it uses e / (1 + e), with
    e = exp(-|Z|) <= 1, so ``exp`` never overflows and no warning is raised.
    """
    Z = np.asarray(Z)
    e = np.exp(-np.abs(Z))
    d = 1 + e
    return np.where(Z >= 0, 1 / d, e / d)


def sigmoid_backward_factor(Z):
    """sigma'(Z) = sigma(Z) (1 - sigma(Z))."""
    s = sigmoid(Z)
    return s * (1 - s)


def tanh(Z):
    """tanh(Z)."""
    return np.tanh(Z)


def tanh_backward_factor(Z):
    """tanh'(Z) = 1 - tanh(Z)^2."""
    t = np.tanh(Z)
    return 1 - t * t


def relu(Z):
    """relu(Z) = max(Z, 0)."""
    return np.maximum(Z, 0)


def relu_backward_factor(Z):
    """relu'(Z) = 1 where Z > 0, else 0 (the course sets dZ = 0 where Z <= 0)."""
    Z = np.asarray(Z)
    return (Z > 0).astype(Z.dtype)


def leaky_relu(Z):
    """leaky_relu(Z) = Z where Z >= 0, else 0.01 Z."""
    Z = np.asarray(Z)
    return np.where(Z >= 0, Z, Z * Z.dtype.type(LEAKY_SLOPE))


def leaky_relu_backward_factor(Z):
    """leaky_relu'(Z) = 1 where Z > 0, else 0.01."""
    Z = np.asarray(Z)
    return np.where(Z > 0, Z.dtype.type(1), Z.dtype.type(LEAKY_SLOPE))


def identity(Z):
    """identity(Z) = Z, as a new array (the reference's caches keep Z and A apart)."""
    return np.array(Z)


def identity_backward_factor(Z):
    """identity'(Z) = 1."""
    return np.ones_like(Z)


# -- g' from A = g(Z), as spec.ACTIVATIONS writes it: the same values as g'(Z) above, without
# computing g again (the NumPy trainer's hidden layers; tests/test_activations.py checks
# that each equals its g'(Z) bit for bit)


def sigmoid_derivative_from_A(A):
    """sigma' = A (1 - A)."""
    return A * (1 - A)


def tanh_derivative_from_A(A):
    """tanh' = 1 - A^2."""
    return 1 - A * A


def relu_derivative_from_A(A):
    """relu' = 1 where A > 0 (where Z > 0), else 0."""
    return (A > 0).astype(A.dtype)


def leaky_relu_derivative_from_A(A):
    """leaky_relu' = 1 where A > 0 (where Z > 0), else 0.01."""
    return np.where(A > 0, A.dtype.type(1), A.dtype.type(LEAKY_SLOPE))


#: Name -> (g, g' from Z, g' from A) in NumPy.
FUNCTIONS = {
    "sigmoid": (sigmoid, sigmoid_backward_factor, sigmoid_derivative_from_A),
    "tanh": (tanh, tanh_backward_factor, tanh_derivative_from_A),
    "relu": (relu, relu_backward_factor, relu_derivative_from_A),
    "leaky_relu": (leaky_relu, leaky_relu_backward_factor, leaky_relu_derivative_from_A),
    "identity": (identity, identity_backward_factor, identity_backward_factor),
}


def forward(Z, activation):
    """A = g(Z) for the activation named ``activation``."""
    check_activation_name(activation)
    return FUNCTIONS[activation][0](Z)


def derivative(Z, activation):
    """g'(Z) for the activation named ``activation``."""
    check_activation_name(activation)
    return FUNCTIONS[activation][1](Z)
