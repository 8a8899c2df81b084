"""Explicit warm-up: compile, or load from the on-disk cache, the kernels ``fit`` and ``predict`` use.

Numba compiles a kernel the first time it is called with new argument
types, which costs seconds; with the on-disk cache warm, loading costs
milliseconds. Call :func:`warmup` (or run ``fastbackprop warmup``) once in
an image build or a CI step so that later processes start fast.
"""

from __future__ import annotations

import time

import numpy as np

from . import activations
from .validation import check_dtype


def warmup(dtypes=("float64", "float32"), hidden_activations=activations.HIDDEN):
    """Compile (or load) the training and prediction kernels for each dtype and activation.

    Returns a dict ``{(dtype name, activation): seconds}`` of the time each
    took: seconds when compiled, milliseconds when loaded from the cache.
    """
    from . import kernels

    timings = {}
    for dtype in dtypes:
        dt = check_dtype(dtype, "dtypes")
        for name in hidden_activations:
            activations.check_activation_name(name, "hidden_activations")
            start = time.perf_counter()
            parameters = {"W1": np.full((2, 2), 0.5, dtype=dt), "b1": np.zeros((2, 1), dtype=dt),
                          "W2": np.full((1, 2), 0.5, dtype=dt), "b2": np.zeros((1, 1), dtype=dt)}
            X = np.ones((2, 3), dtype=dt)
            Y = np.ones((1, 3), dtype=dt)
            kernels.Trainer(parameters, X, Y, name, 0.1, cost_every=1).run(1)
            kernels.probabilities(X, parameters, name)
            timings[(dt.name, name)] = time.perf_counter() - start
    return timings
