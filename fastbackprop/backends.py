"""The backend registry: one name, one set of step functions, one trainer, one prediction pass.

``get("numba")`` and ``get("numpy")`` return a :class:`Backend` with the
same interface; every caller (the Model, the command, the tests, the
benchmarks) asks here instead of spelling the switch itself. Modules are
imported on first use, so asking for ``"numpy"`` never imports Numba.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Callable, NamedTuple

from . import spec
from .validation import check_choice

#: name -> (module of the step functions, module of ``Trainer`` and ``probabilities``).
MODULES = {
    "numba": ("fastbackprop.kernels", "fastbackprop.kernels"),
    "numpy": ("fastbackprop.reference", "fastbackprop.reference_trainer"),
}
assert tuple(MODULES) == spec.BACKENDS

#: The step functions both ``steps`` modules define, with the same signatures.
STEP_FUNCTIONS = (
    "linear_forward", "linear_activation_forward", "L_model_forward", "compute_cost",
    "compute_cost_from_logits", "linear_backward", "linear_activation_backward",
    "L_model_backward", "update_parameters", "predict",
)


class Backend(NamedTuple):
    """One backend: ``steps`` (the step functions), ``Trainer``, ``probabilities``,
    ``gradient_sums`` (one block's raw sums: the data-parallel step)."""

    name: str
    steps: ModuleType
    Trainer: type
    probabilities: Callable
    gradient_sums: Callable


@functools.lru_cache(maxsize=None)
def get(name):
    """The :class:`Backend` called ``name`` (``"numba"`` or ``"numpy"``); imports it on first use."""
    check_choice(name, spec.BACKENDS, "backend")
    steps, trainer = (importlib.import_module(module) for module in MODULES[name])
    return Backend(name, steps, trainer.Trainer, trainer.probabilities, trainer.gradient_sums)
