"""Built-in data and the file loaders: files hold one example per row, results one per column."""

import numpy as np
import pytest

from fastbackprop import datasets

CSV = "x1,x2,x3,label\n0.5,1,2,0\n\n-1.5,3e2,4,1\n"


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_planar_dataset_shapes_and_labels():
    X, Y = datasets.load_planar_dataset()
    assert X.shape == (2, 400) and Y.shape == (1, 400)
    assert Y.sum() == 200


def test_csv_rows_become_columns_with_the_last_column_as_label(tmp_path):
    X, Y = datasets.load_csv(write(tmp_path, CSV))
    np.testing.assert_array_equal(X, [[0.5, -1.5], [1, 300], [2, 4]])
    np.testing.assert_array_equal(Y, [[0, 1]])
    assert X.flags.c_contiguous and X.dtype == Y.dtype == np.float64


def test_csv_target_by_name_quotes_bom_and_crlf(tmp_path):
    text = '\ufefflabel,"x, one",x2\r\n1,"2.5",3\r\n0,4,5\r\n'
    X, Y = datasets.load_file(write(tmp_path, text), target="label")
    np.testing.assert_array_equal(X, [[2.5, 4], [3, 5]])
    np.testing.assert_array_equal(Y, [[1, 0]])


@pytest.mark.parametrize("text,match", [
    ("", r"data.csv is empty; expected a header line"),
    ("\n\n", r"data.csv is empty"),
    ("a,b,label\n", r"data.csv has a header but no data lines"),
    ("1,2,0\n3,4,1\n", r"data.csv, line 1: expected a header naming the columns; got data"),
    ("a,,label\n1,2,0\n", r"data.csv, line 1: column 2 of the header has no name"),
    ("a,a,label\n1,2,0\n", r"data.csv, line 1: column name 'a' appears twice"),
    ("a,b,label\n1,2,0\n3,4\n", r"data.csv, line 3: 2 fields; the header has 3"),
    ("a,b,label\n1,2,0,5\n", r"data.csv, line 2: 4 fields; the header has 3"),
    ("a,b,label\n1,red,0\n", r"data.csv, line 2, column 'b': 'red' is not a number"),
    ("a,b,label\n1,,0\n", r"data.csv, line 2, column 'b': '' is not a number"),
    ("a,b,label\n1,nan,0\n", r"data.csv, line 2, column 'b': 'nan' is not a finite number"),
    ("a,b,label\n1,-inf,0\n", r"data.csv, line 2, column 'b': '-inf' is not a finite number"),
    ("a,b,label\n1,2,0\n\n1,2,2\n", r"data.csv, line 4, column 'label': labels must be 0 or 1; got 2"),
    ('a,"b,label\n1,2,1\n', r"data.csv, line 2: malformed CSV \(unexpected end of data\)"),
    ('a,b,label\n1,"2"x,1\n', r"data.csv, line 2: malformed CSV"),
    ("label\n1\n", r"data.csv has 1 column \['label'\]; expected at least one feature column"),
])
def test_bad_csv_files_name_the_line_and_column(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        datasets.load_file(write(tmp_path, text))


def test_missing_or_binary_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data file '.*nope.csv' does not exist"):
        datasets.load_file(tmp_path / "nope.csv")
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ValueError, match="image.csv is not a text \\(UTF-8\\) CSV file"):
        datasets.load_file(binary)


def test_unknown_target(tmp_path):
    with pytest.raises(ValueError, match=r"target column 'y' is not in .*data.csv; its columns are \['x1', 'x2', 'x3', 'label'\]"):
        datasets.load_csv(write(tmp_path, CSV), target="y")


def test_npz_rows_become_columns(tmp_path):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((7, 3)), (rng.random((7, 2)) > 0.5).astype(int)
    np.savez(tmp_path / "d.npz", X=X, Y=Y)
    X2, Y2 = datasets.load_file(tmp_path / "d.npz")
    np.testing.assert_array_equal(X2, X.T)
    np.testing.assert_array_equal(Y2, Y.T)
    np.savez(tmp_path / "one.npz", X=X, Y=Y[:, 0].astype(bool))
    _, Y1 = datasets.load_npz(tmp_path / "one.npz")
    assert Y1.shape == (1, 7) and Y1.dtype == np.float64


@pytest.mark.parametrize("arrays,error,match", [
    (dict(X=np.ones((4, 2))), ValueError, r"has no array 'Y'; expected X \(m, n_x\) and Y"),
    (dict(Y=np.ones(4)), ValueError, r"has no array 'X'"),
    (dict(X=np.ones((4, 2)), Y=np.ones(3)), ValueError, r"Y in .*d.npz must have shape \(4,\) or \(4, n_y\) to match the 4 rows of X \(4, 2\); got shape \(3,\)$"),
    (dict(X=np.ones((2, 4)), Y=np.ones((1, 4))), ValueError, r"got shape \(1, 4\); files hold one example per row: save X.T and Y.T"),
    (dict(X=np.ones(4), Y=np.ones(4)), ValueError, r"X in .*d.npz must have shape \(m, n_x\), one example per row; got shape \(4,\)"),
    (dict(X=np.ones((0, 2)), Y=np.ones(0)), ValueError, r"X in .*must have shape \(m, n_x\).*got shape \(0, 2\)"),
    (dict(X=np.ones((4, 2)) + 1j, Y=np.ones(4)), TypeError, r"X in .*d.npz must be a real numeric array.*complex128"),
    (dict(X=np.full((4, 2), np.nan), Y=np.ones(4)), ValueError, r"X in .*d.npz must be finite; found nan at index \(0, 0\)"),
    (dict(X=np.ones((4, 2)), Y=np.array([0, 1, 3, 0])), ValueError, r"Y in .*d.npz must hold labels 0 or 1 only; found 3.0 at index \(2, 0\)"),
])
def test_bad_npz_files(tmp_path, arrays, error, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(error, match=match):
        datasets.load_file(tmp_path / "d.npz")


def test_npz_refuses_a_target_and_non_archives(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((4, 2)), Y=np.ones(4))
    with pytest.raises(ValueError, match="target names a CSV column; .*d.npz is an .npz file"):
        datasets.load_file(tmp_path / "d.npz", target="y")
    (tmp_path / "fake.npz").write_text("x,y\n")
    with pytest.raises(ValueError, match=r"data file '.*fake.npz' is not an .npz archive"):
        datasets.load_file(tmp_path / "fake.npz")


def test_features_with_or_without_the_label_column(tmp_path):
    X, Y = datasets.load_features(write(tmp_path, CSV), n_x=3)
    np.testing.assert_array_equal(Y, [[0, 1]])
    assert X.shape == (3, 2)
    X, Y = datasets.load_features(write(tmp_path, "x1,x2,x3\n1,2,3\n"), n_x=3)
    np.testing.assert_array_equal(X, [[1], [2], [3]])
    assert Y is None
    X, Y = datasets.load_features(write(tmp_path, "y,x1,x2,x3\n1,5,6,7\n0,8,9,10\n"), n_x=3,
                                  target="y")
    np.testing.assert_array_equal(X, [[5, 8], [6, 9], [7, 10]])
    np.testing.assert_array_equal(Y, [[1, 0]])
    with pytest.raises(ValueError, match=r"has 4 columns \['x1', 'x2', 'x3', 'label'\]; expected 2 feature columns, or 2 features and a label column"):
        datasets.load_features(write(tmp_path, CSV), n_x=2)
    np.savez(tmp_path / "d.npz", X=np.ones((4, 3)))
    X, Y = datasets.load_features(tmp_path / "d.npz", n_x=3)
    assert X.shape == (3, 4) and Y is None
    with pytest.raises(ValueError, match=r"X in .*d.npz must have shape \(m, 2\), one example per row; got shape \(4, 3\)"):
        datasets.load_features(tmp_path / "d.npz", n_x=2)


# ---------------------------------------------------------------------------
# The spiral
# ---------------------------------------------------------------------------


def test_spiral_shapes_classes_and_dtype():
    X, y = datasets.load_spiral()
    assert X.shape == (2, 300) and y.shape == (300,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [100, 100, 100])
    np.testing.assert_array_equal(y, np.repeat([0, 1, 2], 100))  # arm by arm
    assert np.all(np.hypot(X[0], X[1]) <= 1 + 1e-12)  # r in [0, 1]
    X32, y32 = datasets.load_spiral(m=50, K=5, dtype=np.float32)
    assert X32.shape == (2, 50) and X32.dtype == np.float32 and set(y32) == set(range(5))


def test_spiral_arm_sizes_differ_by_at_most_one():
    _, y = datasets.load_spiral(m=11, K=3)
    np.testing.assert_array_equal(np.bincount(y), [4, 4, 3])  # the first arms get the extra points
    _, y = datasets.load_spiral(m=3, K=3)
    np.testing.assert_array_equal(y, [0, 1, 2])


def test_spiral_is_the_course_formula_from_the_seed():
    m, K, seed = 7, 2, 5
    X, y = datasets.load_spiral(m=m, K=K, seed=seed)
    rng = np.random.default_rng(seed)
    columns = []
    for j, N in enumerate((4, 3)):
        r = np.linspace(0, 1, N)
        t = np.linspace(4 * j, 4 * (j + 1), N) + rng.standard_normal(N) * 0.2
        columns.append(np.vstack([r * np.sin(t), r * np.cos(t)]))
    np.testing.assert_array_equal(X, np.hstack(columns))
    np.testing.assert_array_equal(y, [0, 0, 0, 0, 1, 1, 1])


def test_spiral_is_deterministic_by_seed():
    X1, y1 = datasets.load_spiral(seed=3)
    X2, y2 = datasets.load_spiral(seed=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = datasets.load_spiral(seed=4)
    assert not np.array_equal(X1, X3)
    X0, _ = datasets.load_spiral()
    np.testing.assert_array_equal(X0, datasets.load_spiral(seed=0)[0])  # the default seed is 0


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(m=2, K=3), ValueError, r"m must be at least K = 3, one point per arm; got 2"),
    (dict(K=0), ValueError, r"K must be a positive integer; got 0"),
    (dict(m=2.5), TypeError, r"m must be a positive integer; got 2.5"),
])
def test_spiral_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        datasets.load_spiral(**kwargs)


# ---------------------------------------------------------------------------
# Class names and real-valued labels
# ---------------------------------------------------------------------------

IRIS = ("sepal,petal,species\n"
        "5.1,1.4,setosa\n"
        "7.0,4.7, versicolor\n"
        "\n"
        "6.3,6.0,virginica\n"
        "4.9,1.4,setosa\n")


def test_csv_with_string_class_names(tmp_path):
    X, y, classes = datasets.load_file(write(tmp_path, IRIS), labels="classes")
    np.testing.assert_array_equal(X, [[5.1, 7.0, 6.3, 4.9], [1.4, 4.7, 6.0, 1.4]])
    assert X.flags.c_contiguous and X.dtype == np.float64
    assert y.dtype == np.int64 and list(y) == [0, 1, 2, 0]
    assert classes.dtype.kind == "U" and list(classes) == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(classes[y], ["setosa", "versicolor", "virginica", "setosa"])


def test_csv_class_names_by_target_in_any_column(tmp_path):
    text = "kind,a,b\nb,1,2\na,3,4\n"
    X, y, classes = datasets.load_csv(write(tmp_path, text), target="kind", labels="classes")
    np.testing.assert_array_equal(X, [[1, 3], [2, 4]])
    assert list(y) == [1, 0] and list(classes) == ["a", "b"]


@pytest.mark.parametrize("names,sorted_names,dtype", [
    (["10", "2", "7", "2"], [2, 7, 10], np.int64),          # numerically, not "10" < "2"
    (["1", "1.0", "-3", "1e1"], [-3, 1, 10], np.int64),     # "1" and "1.0" are one class
    (["0.5", "2", "0.25"], [0.25, 0.5, 2], np.float64),
    (["10", "2", "b"], ["10", "2", "b"], str),              # not all numbers: strings
    (["1", "nan", "2"], ["1", "2", "nan"], str),            # nan is no number here
])
def test_numeric_class_names_sort_numerically(tmp_path, names, sorted_names, dtype):
    text = "x,label\n" + "".join(f"{i},{name}\n" for i, name in enumerate(names))
    _, y, classes = datasets.load_file(write(tmp_path, text), labels="classes")
    assert list(classes) == sorted_names
    assert classes.dtype == dtype if dtype is not str else classes.dtype.kind == "U"
    assert [sorted_names.index(c) for c in classes[y]] == list(y)


@pytest.mark.parametrize("text,match", [
    ("a,b,kind\n1,2,x\n3,4,\n", r"data.csv, line 3, column 'kind': the class name is empty"),
    ("a,b,kind\n1,2,x\n3,red,y\n", r"data.csv, line 3, column 'b': 'red' is not a number"),
    ("a,b,kind\n1,2,x\n3,inf,y\n", r"data.csv, line 3, column 'b': 'inf' is not a finite number"),
    ("a,b,kind\n1,2,x\n3,4\n", r"data.csv, line 3: 2 fields; the header has 3"),
    ("kind\nx\n", r"data.csv has 1 column \['kind'\]; expected at least one feature column"),
])
def test_class_name_csv_errors_name_the_line_and_column(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        datasets.load_file(write(tmp_path, text), labels="classes")


def test_real_labels_are_not_checked_as_0_or_1(tmp_path):
    text = "a,b,price\n1,2,3.5\n3,4,-120\n"
    X, Y = datasets.load_file(write(tmp_path, text), labels="real")
    np.testing.assert_array_equal(X, [[1, 3], [2, 4]])
    np.testing.assert_array_equal(Y, [[3.5, -120]])
    with pytest.raises(ValueError, match=r"line 2, column 'price': labels must be 0 or 1; got 3.5"):
        datasets.load_file(write(tmp_path, text))  # binary, the default
    with pytest.raises(datasets.LabelError,
                       match=r"line 3, column 'price': labels must be finite numbers; got 'x'$"):
        datasets.load_file(write(tmp_path, "a,b,price\n1,2,3\n3,4,x\n"), labels="real")
    with pytest.raises(ValueError,
                       match=r"line 2, column 'price': labels must be finite numbers; got 'inf'$"):
        datasets.load_file(write(tmp_path, "a,b,price\n1,2,inf\n"), labels="real")
    with pytest.raises(datasets.LabelError,
                       match=r"line 3, column 'price': labels must be 0 or 1; got 'red'$"):
        datasets.load_file(write(tmp_path, "a,b,price\n1,2,1\n3,4,red\n"))
    with pytest.raises(datasets.LabelError, match=r"line 3, column 'price': labels must be 0 or 1; got ''$"):
        datasets.load_file(write(tmp_path, "a,b,price\n1,2,1\n3,4,\n"))
    with pytest.raises(ValueError, match=r"labels must be one of \['binary', 'classes', 'real'\]; got 'text'"):
        datasets.load_file(write(tmp_path, text), labels="text")


def test_npz_class_names_and_real_labels(tmp_path):
    X = np.arange(8.0).reshape(4, 2)
    np.savez(tmp_path / "s.npz", X=X, Y=np.array(["b", "a", "c", "b"]))
    X2, y, classes = datasets.load_file(tmp_path / "s.npz", labels="classes")
    np.testing.assert_array_equal(X2, X.T)
    assert list(y) == [1, 0, 2, 1] and list(classes) == ["a", "b", "c"]
    np.savez(tmp_path / "n.npz", X=X, Y=np.array([[10.0], [2.0], [2.0], [7.0]]))  # (m, 1)
    _, y, classes = datasets.load_npz(tmp_path / "n.npz", labels="classes")
    assert list(y) == [2, 0, 0, 1] and list(classes) == [2, 7, 10] and classes.dtype == np.int64
    np.savez(tmp_path / "r.npz", X=X, Y=np.array([[1.5, -2], [3, 4], [5, 6], [7, 8]]))
    _, Y = datasets.load_file(tmp_path / "r.npz", labels="real")
    np.testing.assert_array_equal(Y, [[1.5, 3, 5, 7], [-2, 4, 6, 8]])
    np.savez(tmp_path / "bad.npz", X=X, Y=np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"Y in .*bad.npz must have shape \(4,\), one class name per row"):
        datasets.load_file(tmp_path / "bad.npz", labels="classes")
    np.savez(tmp_path / "nan.npz", X=X, Y=np.array([1.0, np.nan, 2, 2]))
    with pytest.raises(ValueError, match=r"Y in .*nan.npz must be finite; found nan"):
        datasets.load_file(tmp_path / "nan.npz", labels="classes")
    with pytest.raises(ValueError, match=r"Y in .*nan.npz must be finite"):
        datasets.load_file(tmp_path / "nan.npz", labels="real")


def test_features_with_class_names_and_matching_them_to_classes(tmp_path):
    X, labels = datasets.load_features(write(tmp_path, IRIS), n_x=2, labels="classes")
    assert X.shape == (2, 4) and list(labels) == ["setosa", "versicolor", "virginica", "setosa"]
    classes = np.array(["setosa", "versicolor"])
    np.testing.assert_array_equal(datasets.class_indices(labels, classes), [0, 1, -1, 0])
    X, labels = datasets.load_features(write(tmp_path, "a,b\n1,2\n"), n_x=2, labels="classes")
    assert labels is None
    X, Y = datasets.load_features(write(tmp_path, "a,b,v\n1,2,7.5\n"), n_x=2, labels="real")
    np.testing.assert_array_equal(Y, [[7.5]])


def test_class_indices_read_labels_as_the_classes_are():
    numbers = np.array([2, 7, 10])
    np.testing.assert_array_equal(datasets.class_indices(["10", " 2", "7.0", "x", "3"], numbers),
                                  [2, 0, 1, -1, -1])
    np.testing.assert_array_equal(datasets.class_indices(np.array([7, 2]), numbers), [1, 0])
    texts = np.array(["1", "10", "x"])  # a model trained on text names, some numeric-looking
    np.testing.assert_array_equal(datasets.class_indices(["10", "x", "2"], texts), [1, 2, -1])
    np.testing.assert_array_equal(datasets.class_indices(np.array([1, 10]), texts), [0, 1])
