"""Built-in data sets, generated from a seed (nothing is downloaded).

Every loader returns ``X, Y`` in the course's layout: ``X`` is ``(n_x, m)``
and ``Y`` is ``(1, m)`` of 0/1 labels, one example per column.
"""

from __future__ import annotations

import numpy as np


def load_planar_dataset(m=400, seed=1, dtype=np.float64):
    """The course's planar "flower": two classes of points on the petals of a rose.

    Returns ``X`` ``(2, m)`` and ``Y`` ``(1, m)``: half the points (rounded
    down) are labelled 0 and the rest 1. Points are ``r (sin t, cos t)`` with
    ``r = 4 sin(4 t)`` plus noise, class 0 for ``t`` in ``[0, 3.12]`` and
    class 1 for ``t`` in ``[3.12, 6.24]``. No straight line separates them;
    a 4-unit tanh hidden layer reaches about 90% training accuracy.
    """
    rng = np.random.default_rng(seed)
    a = 4.0  # the flower's largest radius
    X = np.zeros((2, m))
    Y = np.zeros((1, m))
    start = 0
    for j, N in enumerate((m // 2, m - m // 2)):
        t = np.linspace(j * 3.12, (j + 1) * 3.12, N) + rng.standard_normal(N) * 0.2
        r = a * np.sin(4 * t) + rng.standard_normal(N) * 0.2
        X[0, start:start + N] = r * np.sin(t)
        X[1, start:start + N] = r * np.cos(t)
        Y[0, start:start + N] = j
        start += N
    return X.astype(dtype), Y.astype(dtype)


def make_classification(n_x, m, n_y=1, seed=0, dtype=np.float64):
    """Random features ``(n_x, m)`` and labels ``(n_y, m)`` from a random teacher network.

    Labels are ``1[W2 tanh(W1 X) > median]`` per row, so both classes occur and
    the problem is learnable but not linear. For tests and benchmarks.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m))
    hidden = np.tanh(rng.standard_normal((8, n_x)) @ X / np.sqrt(n_x))
    score = rng.standard_normal((n_y, 8)) @ hidden
    Y = (score > np.median(score, axis=1, keepdims=True)).astype(np.float64)
    return X.astype(dtype), Y.astype(dtype)
