"""Explicit warm-up: compile, or load from the on-disk cache, the kernels ``fit`` and ``predict`` use.

Numba compiles a kernel the first time it is called with new argument
types, which costs seconds; with the on-disk cache warm, loading costs
milliseconds. Call :func:`warmup` (or run ``fastbackprop warmup``) once in
an image build or a CI step so that later processes start fast.

Each configuration warmed also gets its marker in the cache
(:mod:`fastbackprop.first_run`), so that ``fastbackprop train --backend auto``
and the drop-in's ``backend="auto"`` know its kernels are there and train on
them rather than on NumPy.
"""

from __future__ import annotations

import time

import numpy as np

from . import spec
from .network import Network
from .validation import check_dtype, check_labels


def warmup(dtypes=("float64", "float32"), hidden_activations=tuple(spec.ACTIVATIONS),
           output_activations=("sigmoid",)):
    """Compile (or load) the training and prediction kernels for each combination.

    Returns a dict ``{(dtype name, hidden activation, output activation):
    seconds}`` of the time each took: seconds when compiled, milliseconds
    when loaded from the cache.
    """
    from . import kernels

    timings = {}
    for dtype in dtypes:
        dt = check_dtype(dtype, "dtypes")
        for hidden in hidden_activations:
            spec.code_of(spec.ACTIVATIONS, hidden, "hidden_activations")
            for output in output_activations:
                spec.code_of(spec.OUTPUTS, output, "output_activations")
                start = time.perf_counter()
                parameters = {"W1": np.full((2, 2), 0.5, dtype=dt), "b1": np.zeros((2, 1), dtype=dt),
                              "W2": np.full((2, 2), 0.5, dtype=dt), "b2": np.zeros((2, 1), dtype=dt)}
                X = np.ones((2, 3), dtype=dt)
                Y = check_labels(np.array([0, 1, 1]) if output == "softmax" else np.ones((2, 3)),
                                 output, n_y=2, m=3, dtype=dt)
                kernels.Trainer(parameters, X, Y, hidden, 0.1, cost_every=1,
                                output_activation=output).run(1)
                kernels.probabilities(X, parameters, hidden, output)
                network = Network(parameters, hidden, output)  # what predict calls:
                network.probabilities(X)  # Model, examples as columns,
                network.probabilities(np.ascontiguousarray(X.T), rows=True)  # scikit-learn
                _mark(hidden, output, dt, X.shape[1])
                timings[(dt.name, hidden, output)] = time.perf_counter() - start
    return timings


def _mark(hidden, output, dtype, m):
    """Write first_run's marker of what was just compiled: a Model of these activations and
    ``dtype`` trained full-batch by gradient descent on ``m`` columns (nothing when no cache
    location is writable)."""
    from . import first_run
    from .model import Model

    directory = first_run.warm_directory()
    if directory is None:
        return
    hp = Model([2, 2, 2], hidden, output, dtype=dtype.name, n_epochs=1)._hyperparameters()
    parts = first_run.key_parts(first_run.variant(hp, m, None))
    first_run.finished(first_run.Plan("numba", "warmed up", marker=first_run.marker_path(
        directory, parts), parts=parts))
