"""The one table of names: everything that varies by name, with its integer code.

Hidden activations, output layers, optimisers and the trainers' statuses
are each one table here. The reference, both backends, the Model, the
command, the tests and the benchmarks read these tables; none of them
spells a name or a code of its own. Adding an entry here without its
implementation fails loudly: the kernels' selector refuses to compile an
unknown code (``fastbackprop.kernels.select``), and the tests check that
every table entry has a NumPy function and a kernel.

The codes are what the compiled kernels receive (Numba specialises on
types and literal values, not on strings); the names are the public
spelling (``hidden_activation="relu"``).

This module imports nothing heavy: it is read at ``import`` time of
modules that must stay light.
"""

from __future__ import annotations

from typing import NamedTuple


class Activation(NamedTuple):
    """A hidden layer's ``g``: ``A = g(Z)``; ``g'`` is computed from ``A``."""

    code: int
    g: str
    derivative_from_A: str


class Output(NamedTuple):
    """An output layer: its activation, its cost, and the labels it takes.

    For every entry the start of backprop is the same, ``dZ_L = A_L - Y``: each
    pairs its activation with its canonical cost. ``regression``: the output's
    prediction is ``A_L`` itself (real values: no classes, no probabilities,
    scored by R²), where the others predict classes.
    """

    code: int
    A_L: str
    cost: str
    labels: str
    regression: bool


class Optimizer(NamedTuple):
    """An optimiser: the hyperparameters it reads and the state it keeps per parameter."""

    code: int
    hyperparameters: tuple
    state: tuple
    rule: str


#: Hidden activations, name -> :class:`Activation`.
ACTIVATIONS = {
    "sigmoid": Activation(0, "1 / (1 + exp(-Z))", "A (1 - A)"),
    "tanh": Activation(1, "tanh(Z)", "1 - A^2"),
    "relu": Activation(2, "max(Z, 0)", "1 where A > 0, else 0"),
    "leaky_relu": Activation(3, "Z where Z >= 0, else 0.01 Z", "1 where A > 0, else 0.01"),
    # a linear hidden layer (scikit-learn's activation="identity": a linear bottleneck)
    "identity": Activation(4, "Z", "1"),
}

#: Output layers, name -> :class:`Output`.
OUTPUTS = {
    "sigmoid": Output(0, "1 / (1 + exp(-Z_L))",
                      "-(1/m) sum [Y log A_L + (1 - Y) log(1 - A_L)]",
                      "0/1, (n_L, m): binary and multi-label", False),
    "softmax": Output(1, "exp(Z_L) / sum_k exp(Z_L)_k, per column",
                      "-(1/m) sum_i sum_k Y_ki log A_L,ki",
                      "one-hot (n_L, m) or class indices (m,) in 0..n_L-1; n_L >= 2", False),
    "linear": Output(2, "Z_L", "(1/(2m)) sum (A_L - Y)^2", "real (n_L, m): regression", True),
    # Poisson regression (scikit-learn's MLPRegressor(loss="poisson"), out_activation_ "exp"):
    # the half Poisson deviance, scikit-learn's, with its constant Y log Y - Y; Y log Y is 0
    # where Y is 0
    "exp": Output(3, "exp(Z_L)", "(1/m) sum [Y log(Y / A_L) - Y + A_L]",
                  "real >= 0 (n_L, m): counts or rates, Poisson regression", True),
}

#: Optimisers, name -> :class:`Optimizer`.
OPTIMIZERS = {
    "gd": Optimizer(0, (), (), "W := W - alpha dW"),
    "momentum": Optimizer(1, ("beta",), ("v",),
                          "v := beta v + (1 - beta) dW;  W := W - alpha v"),
    "rmsprop": Optimizer(2, ("beta2", "epsilon"), ("s",),
                         "s := beta2 s + (1 - beta2) dW^2;  W := W - alpha dW / (sqrt(s) + epsilon)"),
    "adam": Optimizer(3, ("beta1", "beta2", "epsilon"), ("v", "s"),
                      "v, s as momentum and RMSprop (beta1, beta2); "
                      "W := W - alpha (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + epsilon)"),
    # scikit-learn's solvers (``fastbackprop.sklearn``): the learning rate inside the
    # velocity (Sutskever et al. 2013), and Adam with its bias corrections folded into
    # the step (Kingma and Ba 2015, end of section 2), epsilon added to sqrt(s) itself.
    "sgd_momentum": Optimizer(4, ("beta",), ("v",),
                              "v := beta v - alpha dW;  W := W + v"),
    "nesterov": Optimizer(5, ("beta",), ("v",),
                          "v := beta v - alpha dW;  W := W + beta v - alpha dW"),
    "adam_folded": Optimizer(6, ("beta1", "beta2", "epsilon"), ("v", "s"),
                             "v, s as adam; W := W - (alpha sqrt(1 - beta2^t) / (1 - beta1^t)) "
                             "v / (sqrt(s) + epsilon)"),
}

#: The optimisers' hyperparameters and their defaults (the course's).
OPTIMIZER_DEFAULTS = {"beta": 0.9, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}

#: The optimisers that take ``beta = 1`` (scikit-learn's ``momentum=1``): their velocity
#: ``v := beta v - alpha dW`` then keeps all of itself and adds every step's gradient
#: (momentum without friction), well defined for any number of steps. Every other
#: optimiser takes ``beta`` in [0, 1): the course's momentum ``v := beta v + (1 - beta) dW``
#: would keep ``v = 0`` (no step at all), and the rest do not read ``beta``.
UNDAMPED = ("sgd_momentum", "nesterov")

#: Status codes the compiled loop returns: all went well; the cost of the
#: current parameters is NaN or infinite; an update produced NaN or infinity;
#: another thread of the fit gave up (its error is raised, never reported).
OK, NONFINITE_COST, NONFINITE_UPDATE, ABORTED = 0, 1, 2, 3

#: What a trainer reports, code -> name.
STATUSES = {OK: "ok", NONFINITE_COST: "nonfinite_cost", NONFINITE_UPDATE: "nonfinite_update",
            ABORTED: "aborted"}

#: The backends, in the order tests and benchmarks list them.
BACKENDS = ("numba", "numpy")


def code_of(table, name, argument):
    """The code of ``name`` in ``table`` (one of the tables above).

    Raises ``TypeError`` when ``name`` is not a string and ``ValueError``
    when it is not in the table; the message names ``argument`` and lists
    the choices.
    """
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, one of {list(table)}; "
                        f"got {type(name).__name__}")
    try:
        return table[name].code
    except KeyError:
        raise ValueError(f"{argument} must be one of {list(table)}; got {name!r}") from None


def codes(table):
    """``{name: code}`` of one table."""
    return {name: entry.code for name, entry in table.items()}
