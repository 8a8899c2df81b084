"""Input checks shared by the reference, the kernels and the Model.

Each check raises ``TypeError`` (wrong kind of object or dtype) or
``ValueError`` (wrong shape or value) with a message that names the
argument, what it got, and what was expected. They run before any work, so
a bad call never leaves half-updated state behind.

Layout reminder (the course's): examples are columns. ``X`` is
``(n_x, m)``, ``Y`` is ``(n_y, m)``, ``W{l}`` is ``(n_l, n_{l-1})`` and
``b{l}`` is ``(n_l, 1)``.
"""

from __future__ import annotations

import numbers
import operator
import numpy as np

from . import spec
from .layout import dims_of
from .sparse import is_sparse

#: Floating dtypes the package computes in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

INITS = ("he", "xavier", "scaled")


def check_dtype(dtype, argument="dtype"):
    """Return ``dtype`` as ``numpy.float32`` or ``numpy.float64``, else raise ``TypeError``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"{argument} must be float32 or float64; got {dtype!r}"
        ) from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{argument} must be float32 or float64; got {dt}")
    return dt


def check_layer_dims(layer_dims, argument="layer_dims"):
    """Return ``layer_dims`` as a list of ints ``[n_x, n_1, ..., n_L]``.

    It needs at least two entries (input and output), each a positive integer.
    """
    if isinstance(layer_dims, (str, bytes)) or not hasattr(layer_dims, "__iter__"):
        raise TypeError(
            f"{argument} must be a sequence of positive integers [n_x, n_1, ..., n_L]; "
            f"got {layer_dims!r}"
        )
    dims = list(layer_dims)
    if len(dims) < 2:
        raise ValueError(
            f"{argument} must have at least 2 entries [n_x, ..., n_L]; got {dims!r}"
        )
    out = []
    for i, n in enumerate(dims):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
            raise TypeError(
                f"{argument}[{i}] must be a positive integer; got {n!r} in {dims!r}"
            )
        if n < 1:
            raise ValueError(
                f"{argument}[{i}] must be a positive integer; got {n!r} in {dims!r}"
            )
        out.append(operator.index(n))
    return out


def check_int(value, argument, minimum, expected):
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise.

    ``TypeError`` for a non-integer (bool included), ``ValueError`` below
    ``minimum``; messages read "{argument} must be {expected}; got ...".
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be {expected}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{argument} must be {expected}; got {value!r}")
    return int(value)


def check_positive_int(value, argument):
    """Return ``value`` as an int if it is a positive integer, else raise."""
    return check_int(value, argument, 1, "a positive integer")


def check_learning_rate(learning_rate, argument="learning_rate"):
    """Return ``learning_rate`` as a float if it is finite and > 0, else raise."""
    if isinstance(learning_rate, (bool, np.bool_)) or not isinstance(
        learning_rate, numbers.Real
    ):
        raise TypeError(f"{argument} must be a positive number; got {learning_rate!r}")
    lr = float(learning_rate)
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"{argument} must be a finite number > 0; got {learning_rate!r}")
    return lr


def check_init(init, argument="init"):
    """Return ``init`` if it names an initialisation scheme, else raise."""
    return check_choice(init, INITS, argument)


def as_real_array(a, argument, dtype=None):
    """Return ``a`` as a floating ndarray, refusing what cannot be a real number.

    Integer and boolean arrays are cast (to ``dtype``, default float64);
    object, complex, string and other non-numeric arrays raise ``TypeError``.
    A floating array keeps its dtype unless ``dtype`` is given.
    """
    arr = np.asarray(a)
    kind = arr.dtype.kind
    if kind in "biu":
        return arr.astype(dtype or np.float64)
    if kind != "f":
        raise TypeError(
            f"{argument} must be a real numeric array (float, int or bool); "
            f"got dtype {arr.dtype}"
        )
    if dtype is not None and arr.dtype != dtype:
        return arr.astype(dtype)
    if arr.dtype not in FLOAT_DTYPES:  # float16, longdouble
        return arr.astype(np.float64)
    return arr


def check_matrix(a, argument, rows=None, cols=None, row_name="n", col_name="m"):
    """Check that ``a`` is 2-D with ``rows`` rows and ``cols`` columns (None: any >= 1).

    When the columns are the ``m`` examples (``col_name == "m"``) the message
    reminds the caller of the course's layout.
    """
    if not is_sparse(a):  # a SciPy sparse matrix has its shape; np.asarray would wrap it
        a = np.asarray(a)
    shape = a.shape
    if (len(shape) == 2 and (rows is None or shape[0] == rows)
            and (cols is None or shape[1] == cols) and shape[0] and shape[1]):
        return a  # (the messages below are built only for a wrong shape)
    expected = f"({row_name if rows is None else rows}, {col_name if cols is None else cols})"
    layout = " (one example per column)" if col_name == "m" else ""
    if a.ndim != 2:
        raise ValueError(
            f"{argument} must be a 2-D array of shape {expected}{layout}; got shape {a.shape}"
        )
    if (rows is not None and a.shape[0] != rows) or (cols is not None and a.shape[1] != cols):
        raise ValueError(
            f"{argument} must have shape {expected}{layout}; got shape {a.shape}"
        )
    raise ValueError(
        f"{argument} must have at least one row and one column (m >= 1); got shape {a.shape}"
    )


def check_finite(a, argument):
    """Raise ``ValueError`` if ``a`` holds NaN or infinity."""
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{argument} must be finite; found {a[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )


def check_X(X, n_x=None, dtype=None, argument="X"):
    """Return ``X`` as a finite float array of shape ``(n_x, m)``; a SciPy sparse ``X`` as a
    checked ``csc_array`` (:func:`fastbackprop.sparse.check_sparse_X`)."""
    if is_sparse(X):
        from .sparse import check_sparse_X

        return check_sparse_X(X, n_x=n_x, dtype=dtype, argument=argument)
    X = as_real_array(X, argument, dtype)
    check_matrix(X, argument, rows=n_x, row_name="n_x")
    check_finite(X, argument)
    return X


def check_Y(Y, n_y=None, m=None, dtype=None, argument="Y"):
    """Return labels ``Y`` as a float array of shape ``(n_y, m)`` holding only 0 and 1.

    A 1-D ``Y`` of shape ``(m,)`` is accepted when ``n_y`` is 1 (or None) and
    read as one row.
    """
    Y = as_real_array(Y, argument, dtype)
    if Y.ndim == 1 and n_y in (None, 1):
        Y = Y.reshape(1, -1)
    check_matrix(Y, argument, rows=n_y, cols=m, row_name="n_y")
    if not np.all((Y == 0) | (Y == 1)):
        bad = np.argwhere((Y != 0) & (Y != 1))[0]
        raise ValueError(
            f"{argument} must hold labels 0 or 1 only; found {Y[tuple(bad)]} "
            f"at index {tuple(int(i) for i in bad)}"
        )
    return Y


def check_labels(Y, output_activation="sigmoid", n_y=None, m=None, dtype=None, argument="Y"):
    """Labels ``Y`` for an output layer, as a float array ``(n_y, m)`` (the course's layout).

    * ``"sigmoid"``: 0/1 labels ``(n_y, m)``, or ``(m,)`` when ``n_y`` is 1;
    * ``"softmax"``: one-hot ``(n_y, m)`` (every column holds one 1, the rest
      0), or class indices ``(m,)`` or ``(1, m)`` of integers ``0..n_y-1``,
      returned one-hot;
    * ``"linear"``: any finite reals ``(n_y, m)``, or ``(m,)`` when ``n_y`` is 1;
    * ``"exp"``: finite reals ``>= 0`` (counts, rates: Poisson regression), shaped as
      for ``"linear"``.

    Anything else raises ``ValueError``/``TypeError`` naming ``argument``
    and the offending column.
    """
    spec.code_of(spec.OUTPUTS, output_activation, "output_activation")
    if output_activation == "sigmoid":
        return check_Y(Y, n_y, m, dtype, argument)
    Y = as_real_array(Y, argument, dtype)
    if output_activation == "softmax" and _are_class_indices(Y, n_y):
        return _one_hot(Y.reshape(-1), n_y, m, Y.dtype, argument)
    if Y.ndim == 1 and n_y in (None, 1):
        Y = Y.reshape(1, -1)
    check_matrix(Y, argument, rows=n_y, cols=m, row_name="n_y")
    check_finite(Y, argument)
    if output_activation == "softmax":
        _check_one_hot(Y, argument)
    elif output_activation == "exp":
        _check_non_negative(Y, argument)
    return Y


def _check_non_negative(Y, argument):
    """Every label of an exp output (Poisson regression) is ``>= 0``."""
    negative = np.argwhere(Y < 0)
    if negative.size:
        i, j = (int(k) for k in negative[0])
        raise ValueError(f"{argument} must hold values >= 0 for output_activation='exp' (counts "
                         f"or rates: Poisson regression, whose cost takes log Y); found "
                         f"{Y[i, j]} at row {i}, column {j}")


def _are_class_indices(Y, n_y):
    """A 1-D ``Y``, or one row when a softmax has ``n_y >= 2`` rows, holds class indices."""
    return Y.ndim == 1 or (Y.ndim == 2 and Y.shape[0] == 1 and n_y != 1)


def _one_hot(y, n_y, m, dtype, argument):
    """Class indices ``(m,)`` as a one-hot ``(n_y, m)`` array, each index checked."""
    if n_y is None:
        raise ValueError(f"{argument} holds class indices, so the number of classes n_y is needed")
    if m is not None and y.size != m:
        raise ValueError(f"{argument} must hold {m} class indices (one per column of X); got {y.size}")
    if y.size == 0:
        raise ValueError(f"{argument} must hold at least one class index (m >= 1)")
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)) | (y < 0) | (y >= n_y))
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"{argument} must hold class indices, integers 0..{n_y - 1}; "
                         f"found {y[j]} at column {j}")
    Y = np.zeros((n_y, y.size), dtype=dtype)
    Y[y.astype(np.int64), np.arange(y.size)] = 1
    return Y


def _check_one_hot(Y, argument):
    """Every column of ``Y`` holds one 1 and zeros elsewhere."""
    not_binary = np.argwhere((Y != 0) & (Y != 1))
    if not_binary.size:
        i, j = (int(k) for k in not_binary[0])
        raise ValueError(f"{argument} must be one-hot (0 or 1, one 1 per column); "
                         f"found {Y[i, j]} at row {i}, column {j}")
    ones = Y.sum(axis=0)
    bad = np.flatnonzero(ones != 1)
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"{argument} must be one-hot (one 1 per column); "
                         f"column {j} has {int(ones[j])} ones")


def check_keep_prob(keep_prob, n_hidden, argument="keep_prob"):
    """Dropout's keep probability per hidden layer: a number in (0, 1] for all, or one each.

    Returns a tuple of ``n_hidden`` floats.
    """
    if isinstance(keep_prob, numbers.Real) and not isinstance(keep_prob, (bool, np.bool_)):
        values = [keep_prob] * n_hidden
    else:
        values = check_keep_prob_values(keep_prob, argument)
        if len(values) != n_hidden:
            raise ValueError(f"{argument} must be a number in (0, 1] or one per hidden layer "
                             f"({n_hidden}); got {len(values)} values")
    return tuple(check_real(v, argument, 0, 1, "a number in (0, 1]", low_open=True,
                            high_open=False) for v in values)


def check_batch_norm_values(batch_norm, argument="batch_norm"):
    """``batch_norm``: True or False for every hidden layer, or a sequence of bools (one per
    hidden layer; its length is checked where the network is known). Returns a bool or a
    tuple of bools."""
    if isinstance(batch_norm, (bool, np.bool_)):
        return bool(batch_norm)
    if isinstance(batch_norm, (str, bytes)) or not hasattr(batch_norm, "__iter__"):
        raise TypeError(f"{argument} must be True, False or one bool per hidden layer; "
                        f"got {batch_norm!r}")
    values = tuple(batch_norm)
    for v in values:
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{argument} must be True, False or one bool per hidden layer; "
                            f"got {v!r} in {batch_norm!r}")
    return tuple(bool(v) for v in values)


def check_batch_norm_layers(batch_norm, n_hidden, argument="batch_norm"):
    """Whether each of the ``n_hidden`` hidden layers is batch-normalised: a tuple of bools
    from ``batch_norm`` (a bool for all, or one per hidden layer)."""
    values = check_batch_norm_values(batch_norm, argument)
    if isinstance(values, bool):
        return (values,) * n_hidden
    if len(values) != n_hidden:
        raise ValueError(f"{argument} must be True, False or one bool per hidden layer "
                         f"({n_hidden}); got {len(values)} values")
    return values


def check_keep_prob_values(keep_prob, argument="keep_prob"):
    """A sequence of keep probabilities, each in (0, 1], as a tuple of floats (any length)."""
    try:
        values = list(keep_prob)
    except TypeError:
        raise TypeError(f"{argument} must be a number in (0, 1] or one per hidden layer; "
                        f"got {keep_prob!r}") from None
    return tuple(check_real(v, argument, 0, 1, "a number in (0, 1]", low_open=True,
                            high_open=False) for v in values)


def check_sample_weight(sample_weight, m, dtype=np.float64, argument="sample_weight"):
    """None, or ``sample_weight`` as ``m`` finite weights ``>= 0`` ``(m,)`` of ``dtype``."""
    if sample_weight is None:
        return None
    w = as_real_array(sample_weight, argument, dtype)
    if w.shape != (m,):
        raise ValueError(f"{argument} must have shape ({m},) (one weight per column of X); "
                         f"got shape {w.shape}")
    check_finite(w, argument)
    if np.any(w < 0):
        j = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"{argument} must hold weights >= 0; found {w[j]} at column {j}")
    return w


def layer_dims_of(parameters, argument="parameters"):
    """Infer ``[n_x, n_1, ..., n_L]`` from a parameters dict and check every shape.

    ``parameters`` must hold ``W1, b1, ..., WL, bL`` and nothing else, with
    ``W{l}`` of shape ``(n_l, n_{l-1})`` and ``b{l}`` of shape ``(n_l, 1)``
    (the kinds of :mod:`fastbackprop.layout`, which checks them).
    """
    return dims_of(parameters, argument)


def check_parameters(parameters, layer_dims=None, argument="parameters"):
    """Check a parameters dict, optionally against ``layer_dims``; return its layer_dims."""
    dims = layer_dims_of(parameters, argument)
    if layer_dims is not None and list(layer_dims) != dims:
        raise ValueError(
            f"{argument} have layer sizes {dims}; expected layer_dims {list(layer_dims)}"
        )
    return dims


def check_choice(value, choices, argument):
    """Return ``value`` if it is one of the strings ``choices``, else raise.

    ``TypeError`` when ``value`` is not a string, ``ValueError`` when it is an
    unknown name; both messages list the choices.
    """
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be one of {list(choices)}; got {value!r}")
    if value not in choices:
        raise ValueError(f"{argument} must be one of {list(choices)}; got {value!r}")
    return value


def check_seed(seed, argument="seed"):
    """Return ``seed`` if it is None or an integer >= 0 (what ``numpy.random.default_rng`` takes)."""
    if seed is None:
        return None
    return check_int(seed, argument, 0, "None or an integer >= 0")


def check_finite_parameters(parameters, argument="parameters"):
    """Raise ``ValueError`` if any array of a parameters dict holds NaN or infinity."""
    for key, value in parameters.items():
        check_finite(np.asarray(value), f"{argument}['{key}']")


def check_linear(A_prev, W, b):
    """Shapes of a linear step: W ``(n_l, n_{l-1})``, A_prev ``(n_{l-1}, m)``, b ``(n_l, 1)``."""
    W = np.asarray(W)
    check_matrix(W, "W", row_name="n_l", col_name="n_{l-1}")
    check_matrix(A_prev, "A_prev", rows=W.shape[1], row_name="n_{l-1}")
    check_matrix(b, "b", rows=W.shape[0], cols=1, row_name="n_l", col_name="1")


def check_layer_activation(name, argument="activation"):
    """A layer's activation: a hidden activation or an output layer's (``spec``'s two tables)."""
    if isinstance(name, str) and name in spec.OUTPUTS:
        return name
    names = list(dict.fromkeys([*spec.ACTIVATIONS, *spec.OUTPUTS]))
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, one of {names}; got {type(name).__name__}")
    if name not in spec.ACTIVATIONS:
        raise ValueError(f"{argument} must be one of {names}; got {name!r}")
    return name


def check_real(value, argument, low, high, expected, low_open=False, high_open=True):
    """Return ``value`` as a float if it is a finite real in the interval, else raise.

    The interval is ``[low, high)`` by default (``low_open``/``high_open``
    make either end open; None for no bound); ``expected`` describes it in
    the message ("{argument} must be {expected}; got ...").
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be {expected}; got {value!r}")
    x = float(value)
    if (not np.isfinite(x) or (low is not None and (x < low or (low_open and x == low)))
            or (high is not None and (x > high or (high_open and x == high)))):
        raise ValueError(f"{argument} must be {expected}; got {value!r}")
    return x
