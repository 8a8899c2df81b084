"""fastbackprop: the course's backpropagation equations, verified and compiled.

Examples are columns, as in the course: ``X`` is ``(n_x, m)``, ``Y`` is
``(n_y, m)``, ``W{l}`` is ``(n_l, n_{l-1})`` and ``b{l}`` is ``(n_l, 1)``.

Public names, all resolved lazily (PEP 562) so that ``import fastbackprop``
costs little more than ``import numpy`` and imports no Numba:

* :class:`Model` – train, predict, save and load a network (either backend);
* :func:`warmup` – compile (or load from the on-disk cache) every kernel
  that ``fit`` and ``predict`` use;
* modules :mod:`~fastbackprop.reference` (the equations in NumPy),
  :mod:`~fastbackprop.kernels` (the Numba backend; importing it imports
  Numba), :mod:`~fastbackprop.activations`, :mod:`~fastbackprop.datasets`.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Model": ("fastbackprop.model", "Model"),
    "TrainingDivergedError": ("fastbackprop.model", "TrainingDivergedError"),
    "warmup": ("fastbackprop.warm", "warmup"),
}
_SUBMODULES = ("reference", "kernels", "activations", "datasets", "validation", "model", "bench")

__all__ = ["Model", "TrainingDivergedError", "warmup", "__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # resolve once
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
