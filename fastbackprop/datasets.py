"""Built-in data sets, generated from a seed (nothing is downloaded), and file loaders.

Every function returns ``X, Y`` in the course's layout: ``X`` is
``(n_x, m)`` and ``Y`` is ``(n_y, m)`` of 0/1 labels, one example per
**column**.

Files hold one example per **row**, as any CSV or table does, and the
loaders transpose them:

* CSV (:func:`load_csv`): a header line naming the columns, then one line
  per example; every column is a number. The label column (0 or 1) is named
  by ``target``, by default the last column; the others are the features.
* ``.npz`` (:func:`load_npz`): arrays ``X`` of shape ``(m, n_x)`` and ``Y``
  of shape ``(m,)`` or ``(m, n_y)``, e.g. written by
  ``numpy.savez("data.npz", X=X.T, Y=Y.T)`` from the course's layout.

Errors name the file and, for a CSV, the line and the column.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from ._files import open_for_reading, read_npz
from .validation import as_real_array, check_finite, check_Y


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


# ---------------------------------------------------------------------------
# Files: one example per row, returned as one example per column
# ---------------------------------------------------------------------------


def load_file(path, target=None):
    """Labelled data from a ``.npz`` file (by its suffix) or else a CSV file.

    Returns ``X`` ``(n_x, m)`` and ``Y`` ``(n_y, m)``, examples as columns.
    ``target`` names the CSV's label column (default: the last one).
    """
    if _is_npz(path):
        _refuse_target(path, target)
        return load_npz(path)
    return load_csv(path, target)


def load_features(path, n_x, target=None):
    """Features for prediction, with labels when the file has them.

    Returns ``X`` ``(n_x, m)`` and ``Y`` ``(n_y, m)`` or None, examples as
    columns. A CSV with ``n_x`` columns holds features only; one with
    ``n_x + 1`` columns also holds the label column ``target`` (default:
    the last one). An ``.npz`` file needs ``X`` ``(m, n_x)``; its ``Y`` is
    optional.
    """
    if _is_npz(path):
        _refuse_target(path, target)
        arrays = read_npz(path, "data file")
        X = _npz_features(arrays, path, n_x)
        Y = _npz_labels(arrays, path, X.T.shape) if "Y" in arrays else None
        return X, Y
    names, values, lines = read_csv(path)
    if len(names) == n_x and target is None:
        return np.ascontiguousarray(values.T), None
    if len(names) == n_x + 1:
        return _split_target(path, names, values, lines, target)
    raise ValueError(
        f"{os.fspath(path)} has {len(names)} columns {names}; expected {n_x} feature "
        f"columns, or {n_x} features and a label column"
    )


def load_csv(path, target=None):
    """A CSV file with a header line: ``X`` ``(n_x, m)`` and ``Y`` ``(1, m)``.

    One example per line in the file, one per column in the result. The
    column named ``target`` (default: the last one) holds the 0/1 labels;
    every other column is a feature. Every field must be a finite number.
    """
    names, values, lines = read_csv(path)
    if len(names) < 2:
        raise ValueError(
            f"{os.fspath(path)} has {len(names)} column {names}; expected at least one "
            "feature column and a label column"
        )
    return _split_target(path, names, values, lines, target)


def read_csv(path):
    """Read a numeric CSV with a header: ``names`` (k,), ``values`` ``(m, k)``, ``lines`` (m,).

    ``values`` keeps the file's layout (one example per row), in float64;
    ``lines[i]`` is the file line of row ``i``. Blank lines are skipped.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the line and column of anything that is not a finite number, a
    line with the wrong number of fields, or a missing header.
    """
    with open_for_reading(path, "data file") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            rows, lines = _csv_rows(text, path)
        except UnicodeDecodeError:
            raise ValueError(f"{os.fspath(path)} is not a text (UTF-8) CSV file") from None
    if not rows:
        raise ValueError(f"{os.fspath(path)} is empty; expected a header line naming the columns")
    names = _header(rows[0], path)
    if len(rows) == 1:
        raise ValueError(f"{os.fspath(path)} has a header but no data lines")
    values = np.empty((len(rows) - 1, len(names)))
    for i, (row, line) in enumerate(zip(rows[1:], lines[1:])):
        values[i] = _numbers(row, line, names, path)
    return names, values, lines[1:]


def load_npz(path):
    """An ``.npz`` file holding ``X`` ``(m, n_x)`` and ``Y`` ``(m,)`` or ``(m, n_y)``.

    Returns ``X`` ``(n_x, m)`` and ``Y`` ``(n_y, m)``: the file holds one
    example per row, the result one per column.
    """
    arrays = read_npz(path, "data file")
    if "Y" not in arrays:
        raise ValueError(
            f"{os.fspath(path)} has no array 'Y'; expected X (m, n_x) and Y (m,) or (m, n_y), "
            f"one example per row; found {sorted(arrays)}"
        )
    X = _npz_features(arrays, path)
    return X, _npz_labels(arrays, path, X.T.shape)


def _is_npz(path):
    return os.fspath(path).lower().endswith(".npz")


def _refuse_target(path, target):
    if target is not None:
        raise ValueError(
            f"target names a CSV column; {os.fspath(path)} is an .npz file, whose labels are its array Y"
        )


def _csv_rows(text, path):
    """The non-blank rows of a CSV text stream and their line numbers."""
    reader = csv.reader(text, strict=True)
    rows, lines = [], []
    try:
        for row in reader:
            if any(field.strip() for field in row):
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as e:
        raise ValueError(f"{os.fspath(path)}, line {reader.line_num}: malformed CSV ({e})") from None
    return rows, lines


def _header(row, path):
    """Column names from the header row: non-empty, distinct, and not all numbers."""
    names = [field.strip() for field in row]
    if all(_is_number(name) for name in names):
        raise ValueError(
            f"{os.fspath(path)}, line 1: expected a header naming the columns; got data {row}"
        )
    for j, name in enumerate(names):
        if not name:
            raise ValueError(f"{os.fspath(path)}, line 1: column {j + 1} of the header has no name")
        if name in names[:j]:
            raise ValueError(f"{os.fspath(path)}, line 1: column name {name!r} appears twice")
    return names


def _numbers(row, line, names, path):
    """One CSV row as floats; every field must be a finite number."""
    if len(row) != len(names):
        raise ValueError(
            f"{os.fspath(path)}, line {line}: {len(row)} fields; the header has {len(names)}"
        )
    out = []
    for field, name in zip(row, names):
        try:
            value = float(field)
        except ValueError:
            raise ValueError(
                f"{os.fspath(path)}, line {line}, column {name!r}: {field.strip()!r} is not a number"
            ) from None
        if not np.isfinite(value):
            raise ValueError(
                f"{os.fspath(path)}, line {line}, column {name!r}: {field.strip()!r} is not a finite number"
            )
        out.append(value)
    return out


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_target(path, names, values, lines, target):
    """``X`` ``(n_x, m)`` from every column but ``target``, ``Y`` ``(1, m)`` from it."""
    if target is None:
        index = len(names) - 1
    elif target in names:
        index = names.index(target)
    else:
        raise ValueError(
            f"target column {target!r} is not in {os.fspath(path)}; its columns are {names}"
        )
    labels = values[:, index]
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise ValueError(
            f"{os.fspath(path)}, line {lines[bad[0]]}, column {names[index]!r}: labels must be "
            f"0 or 1; got {labels[bad[0]]:g}"
        )
    X = np.ascontiguousarray(np.delete(values, index, axis=1).T)
    return X, labels.reshape(1, -1).copy()


def _npz_features(arrays, path, n_x=None):
    """The archive's ``X`` ``(m, n_x)``, checked, as ``(n_x, m)``."""
    argument = f"X in {os.fspath(path)}"
    if "X" not in arrays:
        raise ValueError(
            f"{os.fspath(path)} has no array 'X'; expected X (m, n_x), one example per row; "
            f"found {sorted(arrays)}"
        )
    X = as_real_array(arrays["X"], argument)
    expected = f"(m, {'n_x' if n_x is None else n_x})"
    if X.ndim != 2 or X.shape[0] == 0 or (n_x is not None and X.shape[1] != n_x):
        raise ValueError(
            f"{argument} must have shape {expected}, one example per row; got shape {X.shape}"
        )
    check_finite(X, argument)
    return np.ascontiguousarray(X.T, dtype=np.float64)


def _npz_labels(arrays, path, X_shape):
    """The archive's ``Y`` ``(m,)`` or ``(m, n_y)`` of 0/1 labels, as ``(n_y, m)``.

    ``X_shape`` is the archive's ``X.shape``, ``(m, n_x)``.
    """
    argument = f"Y in {os.fspath(path)}"
    Y = as_real_array(arrays["Y"], argument)
    m = X_shape[0]
    if Y.ndim not in (1, 2) or Y.shape[0] != m:
        # The course's layout saved as is: X (n_x, m), Y (n_y, m).
        transposed = X_shape[1] in Y.shape
        hint = "; files hold one example per row: save X.T and Y.T" if transposed else ""
        raise ValueError(
            f"{argument} must have shape ({m},) or ({m}, n_y) to match the {m} rows of X "
            f"{X_shape}; got shape {Y.shape}{hint}"
        )
    Y = Y.reshape(m, -1)
    check_finite(Y, argument)
    Y = check_Y(Y, argument=argument)
    return np.ascontiguousarray(Y.T, dtype=np.float64)
