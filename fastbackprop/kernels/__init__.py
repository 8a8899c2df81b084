"""Numba backend: the reference's step functions, compiled, plus whole-loop training.

The step functions (:mod:`.steps`) have the same names, signatures and
return shapes as those of :mod:`fastbackprop.reference`, so either module
can be swapped in: ``linear_forward``, ``linear_activation_forward``,
``L_model_forward``, ``compute_cost``, ``compute_cost_from_logits``,
``linear_backward``, ``linear_activation_backward``, ``L_model_backward``,
``update_parameters``, ``predict``.

:class:`Trainer` and :func:`train` (:mod:`.trainer`) add what only
compiled code does well: every iteration in one call, with no Python and
no allocation per step. The package, by job:

``convert``   dtype conversion and fast calls into specialised kernels;
``layout``    the flat buffers: pack/unpack, per-layer views;
``steps``     the step-function API;
``scalar``    exp, sigmoid, tanh and the activation selector;
``passes``    matrix products and the fused element-wise passes;
``microgemm`` register-blocked small products (AVX-512 vectors, no BLAS);
``sync``      a spin barrier and atomics for persistent nogil threads;
``outputs``   the output layers' passes, one entry per ``spec.OUTPUTS`` row;
``gram``      Gram mode for wide first layers, with its preconditions;
``training``  the compiled loop; ``trainer`` its Python driver.

Importing this module imports Numba; nothing compiles until a function is
first called with a given dtype.
"""

from __future__ import annotations

from .layout import pack, unpack
from .steps import (
    L_model_backward,
    L_model_forward,
    compute_cost,
    compute_cost_from_logits,
    linear_activation_backward,
    linear_activation_forward,
    linear_backward,
    linear_forward,
    predict,
    probabilities,
    update_parameters,
)
from .trainer import Trainer, TrainResult, gradient_sums, train

__all__ = [
    "linear_forward", "linear_activation_forward", "L_model_forward", "compute_cost",
    "compute_cost_from_logits", "linear_backward", "linear_activation_backward",
    "L_model_backward", "update_parameters", "predict", "probabilities", "train", "Trainer",
    "TrainResult", "gradient_sums", "pack", "unpack",
]
