"""Built-in data sets, generated from a seed (nothing is downloaded), and file loaders.

Every function returns data in the course's layout, one example per
**column**: ``X`` is ``(n_x, m)``; labels are ``Y`` ``(n_y, m)`` (0/1
labels for a sigmoid output, real numbers for a linear one) or, for
classes (a softmax output), ``y`` ``(m,)`` of int64 class indices.

Files hold one example per **row**, as any CSV or table does, and the
loaders transpose them:

* CSV (:func:`load_csv`): a header line naming the columns, then one line
  per example. The label column is named by ``target``, by default the last
  column; the others are the features, and every feature is a number. The
  labels are 0 or 1, real numbers, or class names (any text), as the
  loader's ``labels`` argument says (``"binary"``, ``"real"``, ``"classes"``).
* ``.npz`` (:func:`load_npz`): arrays ``X`` of shape ``(m, n_x)`` and ``Y``
  of shape ``(m,)`` or ``(m, n_y)``, e.g. written by
  ``numpy.savez("data.npz", X=X.T, Y=Y.T)`` from the course's layout; for
  classes, ``Y`` is ``(m,)`` of names (numbers or strings).

* sparse (:func:`load_sparse`): an ``.npz`` written by ``scipy.sparse.save_npz``
  (``X`` ``(m, n_x)``, any format) with the labels in a file of their own
  (``labels_path``: an ``.npy`` array or a text file of one label per line
  after a header line), or an svmlight/libsvm file (``.svm``, ``.svmlight``,
  ``.libsvm``: ``label index:value ...`` per line, the indices 1-based unless
  one is 0). ``X`` comes back sparse, ``(n_x, m)``, never dense.

Class names are numbered in sorted order (:func:`encode_classes`): numbers
numerically, text as strings. Errors name the file and, for a CSV, the line
and the column.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from ._files import open_for_reading, read_npz
from .validation import as_real_array, check_finite, check_int, check_Y


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


def load_spiral(m=300, K=3, seed=0, dtype=np.float64):
    """The course's spiral: ``K`` classes of points on the arms of a spiral.

    Returns ``X`` ``(2, m)``, one point per column, and ``y`` ``(m,)`` of
    int64 class indices ``0..K-1`` (not one-hot: ``Model.fit`` takes either
    for a softmax output). Arm ``j`` has ``N = m // K`` points, one more for
    each of the first ``m % K`` arms, in order: ``r = linspace(0, 1, N)``,
    ``t = linspace(4 j, 4 (j + 1), N) + 0.2 * noise`` (standard normal,
    from ``numpy.random.default_rng(seed)``), and the point is
    ``(r sin t, r cos t)``. No straight line separates the arms; a softmax
    network with one hidden layer learns them.
    """
    m = check_int(m, "m", 1, "a positive integer")
    K = check_int(K, "K", 1, "a positive integer")
    if m < K:
        raise ValueError(f"m must be at least K = {K}, one point per arm; got {m}")
    rng = np.random.default_rng(seed)
    X = np.zeros((2, m))
    y = np.zeros(m, dtype=np.int64)
    start = 0
    for j in range(K):
        N = m // K + (j < m % K)
        r = np.linspace(0.0, 1.0, N)
        t = np.linspace(4.0 * j, 4.0 * (j + 1), N) + 0.2 * rng.standard_normal(N)
        X[0, start:start + N] = r * np.sin(t)
        X[1, start:start + N] = r * np.cos(t)
        y[start:start + N] = j
        start += N
    return X.astype(dtype), y


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

#: What the label column holds, as the loaders' ``labels`` argument names it:
#: 0/1 labels (a sigmoid output), class names (softmax), real numbers (linear).
LABELS = ("binary", "classes", "real")


class LabelError(ValueError):
    """A file's label is of the wrong kind: text where a number or 0/1 is needed, a
    number other than 0 or 1 for ``labels="binary"``, an empty class name."""


def load_file(path, target=None, labels="binary", labels_path=None):
    """Labelled data from a ``.npz`` file (by its suffix), sparse data (:func:`load_sparse`,
    with ``labels_path`` for a ``save_npz`` archive) or else a CSV file.

    ``target`` names the CSV's label column (default: the last one).
    ``labels`` says what the labels are, and so what is returned, examples
    as columns:

    * ``"binary"``: ``X`` ``(n_x, m)`` and ``Y`` ``(n_y, m)`` of 0/1 labels;
    * ``"real"``: ``X`` ``(n_x, m)`` and ``Y`` ``(n_y, m)`` of any finite
      numbers (a regression target);
    * ``"classes"``: ``X`` ``(n_x, m)``, ``y`` ``(m,)`` of int64 class
      indices and ``classes`` ``(K,)``, the sorted distinct class names,
      with ``classes[y[i]]`` the name of example ``i`` (see
      :func:`encode_classes`). The CSV's label column may hold any text.
    """
    _check_labels(labels)
    if is_sparse_file(path):
        _refuse_target(path, target)
        return load_sparse(path, labels_path, labels)
    if labels_path is not None:
        raise ValueError(f"a labels file goes with sparse data (.npz of scipy.sparse.save_npz); "
                         f"{os.fspath(path)} holds its own labels")
    if _is_npz(path):
        _refuse_target(path, target)
        return load_npz(path, labels)
    return load_csv(path, target, labels)


def load_features(path, n_x, target=None, labels="binary"):
    """Features for prediction, with labels when the file has them.

    Returns ``X`` ``(n_x, m)``, examples as columns, and the labels or
    None. A CSV with ``n_x`` columns holds features only; one with
    ``n_x + 1`` columns also holds the label column ``target`` (default:
    the last one). An ``.npz`` file needs ``X`` ``(m, n_x)``; its ``Y`` is
    optional. The labels are ``Y`` ``(n_y, m)`` of 0/1 for ``labels="binary"``,
    of finite numbers for ``"real"``, and for ``"classes"`` the ``(m,)``
    class names as the file has them (text from a CSV, stripped), to be
    matched to a model's classes with :func:`class_indices`.
    """
    _check_labels(labels)
    if _is_npz(path):
        _refuse_target(path, target)
        arrays = read_npz(path, "data file")
        X = _npz_features(arrays, path, n_x)
        Y = _npz_labels(arrays, path, X.T.shape, labels) if "Y" in arrays else None
        if labels == "classes" and Y is not None:
            Y = Y[0]  # the names as given, not encoded
        return X, Y
    names, rows, lines = _read_table(path)
    if len(names) == n_x and target is None:
        values, _ = _parse_rows(path, names, rows, lines)
        return np.ascontiguousarray(values.T), None
    if len(names) == n_x + 1:
        index = _target_index(path, names, target)
        if labels == "classes":
            values, texts = _parse_rows(path, names, rows, lines, text=index)
            _check_class_names(path, names[index], texts, lines)
            return np.ascontiguousarray(values.T), texts
        return _labelled(path, names, rows, lines, index, labels)
    raise ValueError(
        f"{os.fspath(path)} has {len(names)} columns {names}; expected {n_x} feature "
        f"columns, or {n_x} features and a label column"
    )


def load_csv(path, target=None, labels="binary"):
    """A CSV file with a header line: ``X`` ``(n_x, m)`` and ``Y`` ``(1, m)``.

    One example per line in the file, one per column in the result. The
    column named ``target`` (default: the last one) holds the labels; every
    other column is a feature, and every feature field must be a finite
    number. The labels are 0 or 1 (``labels="binary"``) or any finite
    numbers (``"real"``); with ``labels="classes"`` they are class names,
    any non-empty text, and the result is ``X``, ``y`` ``(m,)`` and
    ``classes`` ``(K,)`` as in :func:`load_file`.
    """
    _check_labels(labels)
    names, rows, lines = _read_table(path)
    if len(names) < 2:
        raise ValueError(
            f"{os.fspath(path)} has {len(names)} column {names}; expected at least one "
            "feature column and a label column"
        )
    index = _target_index(path, names, target)
    if labels == "classes":
        values, texts = _parse_rows(path, names, rows, lines, text=index)
        _check_class_names(path, names[index], texts, lines)
        y, classes = encode_classes(texts)
        return np.ascontiguousarray(values.T), y, classes
    return _labelled(path, names, rows, lines, index, labels)


def read_csv(path):
    """Read a numeric CSV with a header: ``names`` (k,), ``values`` ``(m, k)``, ``lines`` (m,).

    ``values`` keeps the file's layout (one example per row), in float64;
    ``lines[i]`` is the file line of row ``i``. Blank lines are skipped.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the line and column of anything that is not a finite number, a
    line with the wrong number of fields, or a missing header.
    """
    names, rows, lines = _read_table(path)
    values, _ = _parse_rows(path, names, rows, lines)
    return names, values, lines


def load_npz(path, labels="binary"):
    """An ``.npz`` file holding ``X`` ``(m, n_x)`` and ``Y`` ``(m,)`` or ``(m, n_y)``.

    Returns ``X`` ``(n_x, m)`` and ``Y`` ``(n_y, m)``: the file holds one
    example per row, the result one per column. ``Y`` holds 0/1 labels
    (``labels="binary"``) or any finite numbers (``"real"``). With
    ``labels="classes"``, ``Y`` is ``(m,)`` (or ``(m, 1)``) of class names,
    numbers or strings, and the result is ``X``, ``y`` ``(m,)`` and
    ``classes`` ``(K,)`` as in :func:`load_file`.
    """
    _check_labels(labels)
    arrays = read_npz(path, "data file")
    if "Y" not in arrays:
        raise ValueError(
            f"{os.fspath(path)} has no array 'Y'; expected X (m, n_x) and Y (m,) or (m, n_y), "
            f"one example per row; found {sorted(arrays)}"
        )
    X = _npz_features(arrays, path)
    Y = _npz_labels(arrays, path, X.T.shape, labels)
    if labels == "classes":
        y, classes = encode_classes(Y[0], f"Y in {os.fspath(path)}")
        return X, y, classes
    return X, Y


# ---------------------------------------------------------------------------
# Sparse files
# ---------------------------------------------------------------------------

#: Suffixes of svmlight/libsvm files.
SVMLIGHT = (".svm", ".svmlight", ".libsvm")


def is_sparse_file(path):
    """Whether ``path`` holds sparse data: an svmlight file (by its suffix) or an ``.npz``
    written by ``scipy.sparse.save_npz`` (its arrays ``indptr`` or ``row`` and ``format``)."""
    name = os.fspath(path).lower()
    if name.endswith(SVMLIGHT):
        return True
    if not _is_npz(path) or not os.path.exists(path):
        return False
    try:
        with np.load(path, allow_pickle=False) as archive:
            return "format" in archive.files and "shape" in archive.files
    except (ValueError, OSError, EOFError):
        return False


def load_sparse(path, labels_path=None, labels="binary"):
    """Sparse data, one example per row in the file: ``X`` ``(n_x, m)`` sparse (CSC, the
    transposed CSR of the file) and the labels as :func:`load_file` returns them.

    An svmlight file holds its labels; a ``save_npz`` archive needs ``labels_path``.
    """
    from scipy import sparse

    name = os.fspath(path)
    if name.lower().endswith(SVMLIGHT):
        rows, names = _read_svmlight(path)
    else:
        try:
            rows = sparse.load_npz(path).tocsr()
        except (ValueError, OSError, KeyError) as e:
            raise ValueError(f"data file {name!r} is not a readable scipy.sparse .npz: "
                             f"{e}") from None
        if labels_path is None:
            raise ValueError(f"{name} holds a sparse X only; give its labels in a file of "
                             "their own (--labels: .npy, or one label per line after a header)")
        names = _read_label_file(labels_path)
    arrays = {"Y": names}
    Y = _npz_labels(arrays, labels_path or path, rows.shape, labels)
    X = rows.T  # (n_x, m): one example per column, the same arrays
    if labels == "classes":
        y, classes = encode_classes(Y[0], f"the labels of {name}")
        return X, y, classes
    return X, Y


def _read_label_file(path):
    """One label per example: an ``.npy`` array, or text with a header line then one label a
    line (numbers when they all parse, else the stripped text)."""
    name = os.fspath(path)
    if name.lower().endswith(".npy"):
        with open_for_reading(path, "labels file") as f:
            return np.load(f, allow_pickle=False)
    with open_for_reading(path, "labels file") as f:
        lines = [line.strip() for line in io.TextIOWrapper(f, encoding="utf-8")]
    values = [line for line in lines[1:] if line]
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return np.array(values)


def _read_svmlight(path):
    """An svmlight/libsvm file: CSR ``(m, n_x)`` and the labels ``(m,)`` (numbers)."""
    from scipy import sparse

    name = os.fspath(path)
    labels, indptr, indices, values = [], [0], [], []
    with open_for_reading(path, "data file") as f:
        for number, line in enumerate(io.TextIOWrapper(f, encoding="utf-8"), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            try:
                labels.append(float(fields[0]))
                for field in fields[1:]:
                    key, value = field.split(":")
                    if key == "qid":
                        continue
                    indices.append(int(key))
                    values.append(float(value))
            except ValueError:
                raise ValueError(f"{name}, line {number}: expected 'label index:value ...'; "
                                 f"got {line[:60]!r}") from None
            indptr.append(len(indices))
    if not labels:
        raise ValueError(f"{name} holds no example")
    indices = np.array(indices, dtype=np.int64)
    if indices.size and indices.min() < 0:
        raise ValueError(f"{name}: a feature index is negative ({indices.min()})")
    if indices.size and indices.min() > 0:
        indices -= 1  # 1-based, as libsvm writes them
    n_x = int(indices.max()) + 1 if indices.size else 1
    X = sparse.csr_matrix((np.array(values), indices, np.array(indptr)),
                          shape=(len(labels), n_x))
    return X, np.array(labels)


# ---------------------------------------------------------------------------
# Class names
# ---------------------------------------------------------------------------


def encode_classes(labels, argument="labels"):
    """Class indices and the sorted class names of ``labels``, a 1-D array of names.

    Returns ``y`` ``(m,)`` int64 and ``classes`` ``(K,)``, the distinct
    names sorted, so that ``classes[y]`` gives the names back. Names may be
    numbers or text. Text that all parses as finite numbers (``"2"``,
    ``"1.5"``) is read as numbers and sorted numerically; otherwise names
    are strings, stripped of surrounding spaces, and sorted as strings.
    Numeric names are int64 when they are all whole numbers (so ``"1"``
    and ``"1.0"`` are one class, 1), else float64; names are never empty.
    """
    values = _class_values(labels, argument)
    classes, y = np.unique(values, return_inverse=True)
    return y.reshape(-1).astype(np.int64), classes


def class_indices(labels, classes):
    """The index in ``classes`` of each of ``labels`` (``(m,)``), or -1 where it is none of them.

    ``classes`` are names as :func:`encode_classes` returns them (a model's
    ``classes_``). ``labels`` are read the way ``classes`` are: as numbers
    when ``classes`` are numbers (text that is not a number matches
    nothing), else as stripped strings.
    """
    classes = np.asarray(classes)
    labels = np.asarray(labels).reshape(-1)
    if classes.dtype.kind in "biuf":
        lookup = {float(c): i for i, c in enumerate(classes)}
        keys = [_as_float(v) for v in labels]
    else:
        lookup = {str(c): i for i, c in enumerate(classes)}
        keys = [_as_text(v) for v in labels]
    return np.array([lookup.get(k, -1) for k in keys], dtype=np.int64)


def _class_values(labels, argument):
    """``labels`` (m,) as int64, float64 or str names (see :func:`encode_classes`)."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{argument} must be a non-empty 1-D array of class names; "
                         f"got shape {arr.shape}")
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8")
    if arr.dtype.kind == "U":
        texts = np.char.strip(arr)
        empty = np.flatnonzero(texts == "")
        if empty.size:
            raise ValueError(f"{argument} must not hold empty class names; found one at "
                             f"index {int(empty[0])}")
        numbers = [_as_float(t) for t in texts]
        if not all(np.isfinite(numbers)):
            return texts
        arr = np.array(numbers)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{argument} must hold numbers or strings; got dtype {arr.dtype}")
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64)
    check_finite(arr, argument)
    whole = np.all(arr == np.round(arr)) and np.all(np.abs(arr) <= 2.0 ** 53)
    return arr.astype(np.int64) if whole else arr.astype(np.float64)


def _as_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _as_text(value):
    if isinstance(value, (str, np.str_)):
        return value.strip()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _check_labels(labels):
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {list(LABELS)}; got {labels!r}")


def _is_npz(path):
    return os.fspath(path).lower().endswith(".npz")


def _refuse_target(path, target):
    if target is not None:
        raise ValueError(
            f"target names a CSV column; {os.fspath(path)} is an .npz file, whose labels are its array Y"
        )


def _read_table(path):
    """A CSV file's column names, its data rows (lists of text) and their line numbers."""
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
    return names, rows[1:], lines[1:]


def _parse_rows(path, names, rows, lines, text=None):
    """The rows as numbers ``(m, k)`` float64; with ``text`` a column index, that column apart.

    Returns ``values`` and ``texts``: with ``text`` given, ``values`` has
    every other column (``(m, k - 1)``) and ``texts`` ``(m,)`` holds that
    column's fields, stripped; else ``texts`` is None.
    """
    width = len(names) - (text is not None)
    values = np.empty((len(rows), width))
    texts = [] if text is not None else None
    for i, (row, line) in enumerate(zip(rows, lines)):
        if text is not None and len(row) == len(names):
            texts.append(row[text].strip())
            row = row[:text] + row[text + 1:]
            values[i] = _numbers(row, line, names[:text] + names[text + 1:], path)
        else:
            values[i] = _numbers(row, line, names, path)
    return values, (np.array(texts, dtype=str) if texts is not None else None)


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



def _target_index(path, names, target):
    """The index of the label column ``target`` (default: the last column)."""
    if target is None:
        return len(names) - 1
    if target in names:
        return names.index(target)
    raise ValueError(
        f"target column {target!r} is not in {os.fspath(path)}; its columns are {names}"
    )


def _labelled(path, names, rows, lines, index, labels):
    """``X`` ``(n_x, m)`` from every column but ``index``, ``Y`` ``(1, m)`` from it.

    Every feature must be a finite number, and every label too
    (``labels="real"``) or 0 or 1 (``"binary"``); a label that is not a
    number, or for ``"binary"`` not 0 or 1, raises :class:`LabelError`, an
    infinite or NaN real label ``ValueError``.
    """
    values, texts = _parse_rows(path, names, rows, lines, text=index)
    Y = np.empty(len(texts))
    expected = "0 or 1" if labels == "binary" else "finite numbers"
    for i, text in enumerate(texts):
        Y[i] = _as_float(text)
        if (Y[i] not in (0, 1)) if labels == "binary" else not np.isfinite(Y[i]):
            got = f"{Y[i]:g}" if np.isfinite(Y[i]) else repr(str(text))
            error = LabelError if labels == "binary" or not _is_number(text) else ValueError
            raise error(f"{os.fspath(path)}, line {lines[i]}, column {names[index]!r}: "
                        f"labels must be {expected}; got {got}")
    return np.ascontiguousarray(values.T), Y.reshape(1, -1)


def _check_class_names(path, name, texts, lines):
    """Raise :class:`LabelError` at the first empty class name of a CSV's label column."""
    empty = np.flatnonzero(texts == "")
    if empty.size:
        raise LabelError(f"{os.fspath(path)}, line {lines[empty[0]]}, column {name!r}: "
                         "the class name is empty")


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




def _npz_labels(arrays, path, X_shape, labels="binary"):
    """The archive's ``Y`` ``(m,)`` or ``(m, n_y)``, as ``(n_y, m)``.

    ``X_shape`` is the archive's ``X.shape``, ``(m, n_x)``. ``labels``:
    ``"binary"`` requires 0/1 and ``"real"`` finite numbers (both returned
    as float64); ``"classes"`` takes ``(m,)`` or ``(m, 1)`` names of any
    kind, numbers or strings, returned as they are, ``(1, m)``.
    """
    argument = f"Y in {os.fspath(path)}"
    Y = arrays["Y"]
    if labels != "classes":
        Y = as_real_array(Y, argument)
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
    if labels == "classes":
        if Y.shape[1] != 1:
            raise ValueError(
                f"{argument} must have shape ({m},), one class name per row, to match the {m} "
                f"rows of X {X_shape}; got shape {arrays['Y'].shape}"
            )
        return Y.T.copy()
    check_finite(Y, argument)
    if labels == "binary":
        try:
            Y = check_Y(Y, argument=argument)
        except ValueError as e:
            raise LabelError(str(e)) from None
    return np.ascontiguousarray(Y.T, dtype=np.float64)
