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
