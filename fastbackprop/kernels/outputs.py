"""The output layers' kernels: one entry per row of ``spec.OUTPUTS``.

Each entry is a pair of compiled functions of the same contract:

``layer(W, A_prev, b, Y, A, cost)``
    the output step from ``A_prev``: ``A = output(W A_prev + b)``;
``apply(A, b, Y, cost)``
    the same when ``A`` already holds the product ``W A_prev`` (Gram mode).

Both return ``(sum(Z_L), loss)``: ``sum(Z_L)`` is finite exactly when the
cost is (training's divergence check), and ``loss`` is the unscaled sum
of the per-example costs against ``Y`` when ``cost`` is true, else 0.
Every output layer starts backprop from ``dZ_L = A_L - Y``
(:func:`~fastbackprop.kernels.passes.output_delta`).

:func:`output_layer` and :func:`output_apply` choose the entry by a
compile-time constant code, through :func:`~fastbackprop.kernels.scalar.select`;
an unknown code does not compile.
"""

from __future__ import annotations

from numba.extending import overload

from .. import spec
from .._jit import jit, options
from .passes import bias_activation, linear_activation, linear_sigmoid_cost, sigmoid_cost
from .scalar import SIGMOID, like, select

SIGMOID_OUTPUT = spec.OUTPUTS["sigmoid"].code


@jit
def sigmoid_layer(W, A_prev, b, Y, A, cost):
    """Sigmoid output from ``A_prev``; the cost fused into the sigmoid pass when wanted."""
    if cost:
        return linear_sigmoid_cost(W, A_prev, b, Y, A)
    return linear_activation(W, A_prev, b, SIGMOID, A), like(A, 0.0)


@jit
def sigmoid_apply(A, b, Y, cost):
    """Sigmoid output on ``A = W A_prev`` in place."""
    if cost:
        return sigmoid_cost(A, b, Y)
    return bias_activation(A, b, SIGMOID), like(A, 0.0)


#: Output code -> ``(layer, apply)``.
OUTPUT_KERNELS = {
    SIGMOID_OUTPUT: (sigmoid_layer, sigmoid_apply),
}


def output_layer(code, W, A_prev, b, Y, A, cost):
    """The output step of the output layer with constant ``code``; see the module."""
    raise NotImplementedError("for use inside kernels only")


def output_apply(code, A, b, Y, cost):
    """The output pass on a computed product, for constant ``code``; see the module."""
    raise NotImplementedError("for use inside kernels only")


@overload(output_layer, jit_options=options())
def _output_layer(code, W, A_prev, b, Y, A, cost):
    layer = select(code, OUTPUT_KERNELS, "output layer")[0]

    def impl(code, W, A_prev, b, Y, A, cost):
        return layer(W, A_prev, b, Y, A, cost)

    return impl


@overload(output_apply, jit_options=options())
def _output_apply(code, A, b, Y, cost):
    apply = select(code, OUTPUT_KERNELS, "output layer")[1]

    def impl(code, A, b, Y, cost):
        return apply(A, b, Y, cost)

    return impl


__all__ = ["OUTPUT_KERNELS", "output_layer", "output_apply"]
