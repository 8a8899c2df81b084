"""Pictures of a trained classifier in the plane, as the course draws the flower and the spiral.

Needs matplotlib (the ``plot`` extra: ``pip install 'fastbackprop[plot]'``);
nothing else in the package imports this module, and the command imports it
only for ``--plot-regions``. It draws with matplotlib's object interface
(no pyplot, no display), so it works on a machine without a screen.
"""

from __future__ import annotations

import os

import numpy as np

#: Grid points along each axis of the plane the regions are drawn on.
RESOLUTION = 300


def plot_decision_regions(model, X, y, path, classes=None, title=None):
    """Draw ``model``'s decision regions over the plane of ``X`` and the points of ``X``.

    model : a fitted :class:`fastbackprop.Model` with 2 inputs and a sigmoid
        output with one label or a softmax output.
    X : ``(2, m)``, one point per column (the course's layout).
    y : ``(m,)``: the class of each point, an index into ``classes``
        (0/1 for a sigmoid output).
    path : the image file to write (its format from its suffix), written
        atomically.
    classes : the class names for the legend (default ``0..K-1``).
    title : the figure's title (default: the model's layers and activations).

    The plane is a :data:`RESOLUTION` x :data:`RESOLUTION` grid over the
    points' range with a margin of a tenth of it on every side; each grid
    point is coloured by the class the model predicts there, and for a
    sigmoid output the line where the probability is 0.5 is drawn too.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    from ._files import write_atomically

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[0] != 2 or y.shape != (X.shape[1],):
        raise ValueError(f"plot_decision_regions needs X (2, m) and y (m,); got X {X.shape} "
                         f"and y {y.shape}")
    output = model.output_activation
    if output not in ("sigmoid", "softmax") or (output == "sigmoid" and model.layer_dims[-1] != 1):
        raise ValueError("plot_decision_regions draws a sigmoid output with one label or a "
                         f"softmax output; got {output} with {model.layer_dims[-1]} outputs")
    K = 2 if output == "sigmoid" else model.layer_dims[-1]
    if classes is None:
        classes = np.arange(K)

    xx, yy = _grid(X)
    grid = np.vstack([xx.ravel(), yy.ravel()])  # (2, RESOLUTION^2): one point per column
    region = np.asarray(model.predict(grid)).reshape(xx.shape)

    colours = _colours(K)
    cmap = ListedColormap(colours)
    figure = Figure(figsize=(6.4, 5.6), layout="constrained")
    axes = figure.subplots()
    axes.contourf(xx, yy, region, levels=np.arange(K + 1) - 0.5, cmap=cmap, alpha=0.35)
    if output == "sigmoid":
        probability = np.asarray(model.predict_proba(grid)).reshape(xx.shape)
        axes.contour(xx, yy, probability, levels=[0.5], colors="black", linewidths=1)
    for k in range(K):
        mine = y == k
        if mine.any():
            axes.scatter(X[0, mine], X[1, mine], s=14, color=colours[k], edgecolors="black",
                         linewidths=0.4, label=str(classes[k]))
    axes.set_xlim(xx[0, 0], xx[0, -1])
    axes.set_ylim(yy[0, 0], yy[-1, 0])
    axes.set_xlabel("x1")
    axes.set_ylabel("x2")
    if K <= 12:
        axes.legend(title="class", loc="best", fontsize="small", framealpha=0.8)
    axes.set_title(title or f"layers {model.layer_dims}, {model.hidden_activation}, {output}",
                   fontsize="medium")
    fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
    write_atomically(path, lambda f: figure.savefig(f, format=fmt))


def _grid(X):
    """``xx, yy`` ``(RESOLUTION, RESOLUTION)``: a grid over ``X`` ``(2, m)`` and a margin."""
    axes = []
    for row in X:
        low, high = float(row.min()), float(row.max())
        margin = 0.1 * (high - low) or 0.5
        axes.append(np.linspace(low - margin, high + margin, RESOLUTION))
    return np.meshgrid(*axes)


def _colours(K):
    """``K`` distinct colours: ``tab10`` up to 10 classes, else ``tab20``, else hues."""
    from matplotlib import colormaps

    if K <= 10:
        return [colormaps["tab10"](k) for k in range(K)]
    if K <= 20:
        return [colormaps["tab20"](k) for k in range(K)]
    return [colormaps["hsv"](k / K) for k in range(K)]
