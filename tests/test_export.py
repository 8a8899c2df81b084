"""ONNX export: Model.to_onnx, fastbackprop.export, skl2onnx and ``fastbackprop export``,
each graph run by onnxruntime and compared with the package's own predictions.

Agreement is judged as everywhere in the tests (``conftest.assert_close``): per array,
``|onnx - ours| <= rtol * max|ours|``, with ``rtol`` 1e-6 in float32 and 1e-12 in float64.
Every comparison is shown to be able to fail: a wrong operator in the tables, a wrong
leaky slope or a softmax over the wrong axis is caught by the same comparison.
"""

import functools
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from fastbackprop import Model, cli, spec
from fastbackprop.model import NotFittedError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
export = pytest.importorskip("fastbackprop.export")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: rtol per dtype, applied with atol = rtol * max|expected|.
TOLERANCES = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}

DTYPES = ["float32", "float64"]
LAYER_DIMS = [5, 7, 6, 3]


def run(proto, X):
    """Run the ONNX model ``proto`` on ``X`` with onnxruntime's CPU provider; its outputs."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def relative_difference(actual, expected):
    """``max |actual - expected| / max |expected|``: the measure the tolerances bound."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.max(np.abs(expected))
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected)) / scale)


def assert_agrees(actual, expected, dtype):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    difference = relative_difference(actual, expected)
    assert difference <= TOLERANCES[np.dtype(dtype)], difference


def random_parameters(layer_dims, seed):
    """Parameters with non-zero biases (a trained network's are), of moderate size."""
    rng = np.random.default_rng(seed)
    return {key: value for l in range(1, len(layer_dims)) for key, value in (
        (f"W{l}", rng.normal(size=(layer_dims[l], layer_dims[l - 1])) / np.sqrt(layer_dims[l - 1])),
        (f"b{l}", rng.normal(scale=0.5, size=(layer_dims[l], 1))))}


@functools.lru_cache(maxsize=None)
def fitted(hidden, output, dtype, backend="numpy"):
    """A fitted Model (one epoch of the NumPy backend from random parameters), predicting
    with ``backend``."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(LAYER_DIMS[0], 40))
    Y = (rng.integers(0, LAYER_DIMS[-1], 40) if output == "softmax"
         else rng.integers(0, 2, (LAYER_DIMS[-1], 40)))
    model = Model(LAYER_DIMS, hidden, output, learning_rate=0.01, n_epochs=1, seed=0,
                  dtype=dtype, backend="numpy")
    model.fit(X, Y, parameters=random_parameters(LAYER_DIMS, seed=2))
    return model.set_params(backend=backend)


def examples(m, dtype, seed=3):
    """``X`` ``(n_x, m)``, one example per column."""
    return np.random.default_rng(seed).normal(size=(LAYER_DIMS[0], m)).astype(dtype)


def onnx_output(model, X, layout="columns", dtype=None):
    """``A_L`` ``(n_y, m)`` of ``model.to_onnx(...)`` on ``X`` ``(n_x, m)``, in either layout."""
    proto = model.to_onnx(dtype=dtype, layout=layout)
    if layout == "columns":
        (A,) = run(proto, X)
        return A
    (A,) = run(proto, np.ascontiguousarray(X.T))
    return A.T


def expected_output(model, X):
    """What ``A_L`` must equal: ``predict_proba``, or ``predict`` for a regression output
    (linear, exp)."""
    return (model.predict(X) if spec.OUTPUTS[model.output_activation].regression
            else model.predict_proba(X))


def assert_same_labels(model, A, X):
    """The labels ``A_L`` gives are ``predict``'s: threshold 0.5 (sigmoid), argmax (softmax)."""
    if model.output_activation == "sigmoid":
        np.testing.assert_array_equal((A > 0.5).astype(A.dtype), model.predict(X))
    elif model.output_activation == "softmax":
        np.testing.assert_array_equal(np.argmax(A, axis=0), model.predict(X))


# ---------------------------------------------------------------------------
# Model.to_onnx against predict_proba
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", spec.BACKENDS)
@pytest.mark.parametrize("layout", export.LAYOUTS)
@pytest.mark.parametrize("m", [1, 37])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", list(spec.OUTPUTS))
@pytest.mark.parametrize("hidden", list(spec.ACTIVATIONS))
def test_onnxruntime_gives_what_the_model_predicts(hidden, output, dtype, m, layout, backend):
    model = fitted(hidden, output, dtype, backend)
    X = examples(m, dtype)
    A = onnx_output(model, X, layout)
    assert A.dtype == np.dtype(dtype)
    assert_agrees(A, expected_output(model, X), dtype)
    assert_same_labels(model, A, X)


@pytest.mark.parametrize("dtype,other", [("float32", "float64"), ("float64", "float32")])
def test_export_in_the_other_dtype(dtype, other):
    """A float64 graph of a float32 model computes with the float32 weights exactly; a
    float32 graph of a float64 model rounds them: both within float32's tolerance."""
    for output in spec.OUTPUTS:
        model = fitted("tanh", output, dtype)
        X = examples(20, dtype)
        A = onnx_output(model, X.astype(other), dtype=other)
        assert A.dtype == np.dtype(other)
        assert_agrees(A, expected_output(model, X), "float32")


def test_every_table_row_has_its_onnx_operators():
    """A hidden activation or an output layer added to spec without an ONNX mapping fails here."""
    assert set(spec.ACTIVATIONS) <= set(export.HIDDEN), set(spec.ACTIVATIONS) - set(export.HIDDEN)
    assert set(spec.OUTPUTS) == set(export.OUTPUT), set(spec.OUTPUTS) ^ set(export.OUTPUT)


def test_the_graph_names_shapes_opset_and_metadata():
    model = fitted("relu", "softmax", "float64")
    model.classes_ = np.array(["ant", "bee", "cat"])
    try:
        proto = model.to_onnx()
        rows = model.to_onnx(layout="rows", dtype="float32")
    finally:
        del model.classes_

    def signature(value):
        tensor = value.type.tensor_type
        return (value.name, tensor.elem_type,
                [d.dim_param or d.dim_value for d in tensor.shape.dim])

    double, single = onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT
    assert [signature(v) for v in proto.graph.input] == [("X", double, [5, "m"])]
    assert [signature(v) for v in proto.graph.output] == [("A_L", double, [3, "m"])]
    assert [signature(v) for v in rows.graph.input] == [("X", single, ["m", 5])]
    assert [signature(v) for v in rows.graph.output] == [("A_L", single, ["m", 3])]
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 13)]
    assert proto.ir_version == 7
    assert [n.op_type for n in proto.graph.node] == ["MatMul", "Add", "Relu"] * 2 + [
        "MatMul", "Add", "Softmax"]
    assert {p.key: p.value for p in proto.metadata_props} == {
        "fastbackprop.layout": "columns", "fastbackprop.output_activation": "softmax",
        "fastbackprop.hidden_activation": "relu",
        "fastbackprop.classes": json.dumps(["ant", "bee", "cat"])}
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(weights["W1"], model.parameters_["W1"])  # the course's W1
    np.testing.assert_array_equal(weights["b1"], model.parameters_["b1"])  # (n_1, 1)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in rows.graph.initializer}
    np.testing.assert_array_equal(weights["W1_T"], model.parameters_["W1"].T.astype(np.float32))
    assert weights["b1"].shape == (7,)
    onnx.checker.check_model(rows, full_check=True)


def test_leaky_relu_is_LeakyRelu_in_float32_and_Max_in_float64():
    """onnxruntime's CPU LeakyRelu is float32 only; float64 writes Max(Z, 0.01 Z)."""
    model = fitted("leaky_relu", "linear", "float32")
    ops = {dtype: [n.op_type for n in model.to_onnx(dtype=dtype).graph.node] for dtype in DTYPES}
    assert ops["float32"] == ["MatMul", "Add", "LeakyRelu"] * 2 + ["MatMul", "Add"]
    assert ops["float64"] == ["MatMul", "Add", "Mul", "Max"] * 2 + ["MatMul", "Add"]


def test_identity_hidden_layers_write_no_operator():
    """``identity`` is mapped before spec has it, so adding it there needs nothing here."""
    p = random_parameters([4, 3, 2], seed=5)
    layers = export.layers_from_parameters(p, "identity", "linear")
    for dtype in DTYPES:
        proto = export.network_to_onnx(layers, dtype)
        assert [n.op_type for n in proto.graph.node] == ["MatMul", "Add"] * 2
        X = examples(9, dtype)[:4]
        (A,) = run(proto, X)
        expected = p["W2"] @ (p["W1"] @ X.astype(np.float64) + p["b1"]) + p["b2"]
        assert_agrees(A, expected, dtype)


def test_batch_norm_folded_into_W_and_b_computes_batch_norm():
    rng = np.random.default_rng(6)
    p = random_parameters([4, 3, 2], seed=6)
    gamma, beta = rng.uniform(0.5, 2, (3, 1)), rng.normal(size=(3, 1))
    mean, variance, epsilon = rng.normal(size=(3, 1)), rng.uniform(0.1, 3, (3, 1)), 1e-5
    hidden, last = export.layers_from_parameters(p, "tanh", "sigmoid")
    folded = export.fold_batch_norm(hidden, gamma, beta, mean, variance, epsilon)
    (A,) = run(export.network_to_onnx([folded, last], "float64"), X := examples(11, "float64")[:4])
    Z = p["W1"] @ X + p["b1"]
    A1 = np.tanh(gamma * (Z - mean) / np.sqrt(variance + epsilon) + beta)
    expected = 1 / (1 + np.exp(-(p["W2"] @ A1 + p["b2"])))
    assert_agrees(A, expected, "float64")


# ---------------------------------------------------------------------------
# Each comparison can fail: deliberate mistakes are caught
# ---------------------------------------------------------------------------

#: For each hidden activation, a wrong operator to put in its place.
WRONG = {"sigmoid": "tanh", "tanh": "sigmoid", "relu": "leaky_relu", "leaky_relu": "relu"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", list(spec.ACTIVATIONS))
def test_a_wrong_hidden_operator_is_caught(hidden, dtype, monkeypatch):
    model = fitted(hidden, "sigmoid", dtype)
    X = examples(37, dtype)
    monkeypatch.setitem(export.HIDDEN, hidden, export.HIDDEN[WRONG.get(hidden, "tanh")])
    difference = relative_difference(onnx_output(model, X), model.predict_proba(X))
    assert difference > 100 * TOLERANCES[np.dtype(dtype)], difference


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_wrong_leaky_slope_is_caught(dtype, monkeypatch):
    model = fitted("leaky_relu", "linear", dtype)
    X = examples(37, dtype)
    monkeypatch.setattr(export, "LEAKY_SLOPE", 0.011)
    difference = relative_difference(onnx_output(model, X), model.predict(X))
    assert difference > 100 * TOLERANCES[np.dtype(dtype)], difference


@pytest.mark.parametrize("output,wrong", [("softmax", "softmax over the examples"),
                                          ("sigmoid", "linear"), ("linear", "sigmoid")])
def test_a_wrong_output_operator_is_caught(output, wrong, monkeypatch):
    model = fitted("tanh", output, "float64")
    X = examples(37, "float64")
    def softmax_over_the_examples(graph, Z):
        return graph.node("Softmax", [Z], axis=1 - graph.units_axis)

    replacement = (softmax_over_the_examples if wrong == "softmax over the examples"
                   else export.OUTPUT[wrong])
    monkeypatch.setitem(export.OUTPUT, output, replacement)
    for layout in export.LAYOUTS:
        difference = relative_difference(onnx_output(model, X, layout), expected_output(model, X))
        assert difference > 1e-3, (layout, difference)


# ---------------------------------------------------------------------------
# Errors, and writing files
# ---------------------------------------------------------------------------


def test_an_unfitted_model_cannot_be_exported(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted"):
        Model([2, 3, 1]).to_onnx(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", ["float16", "int32", "double precision", np.int64, 3])
def test_an_unknown_dtype_is_a_TypeError_naming_it(dtype):
    with pytest.raises(TypeError, match=r"^dtype must be float32 or float64; got"):
        fitted("relu", "sigmoid", "float64").to_onnx(dtype=dtype)


@pytest.mark.parametrize("layout", ["column", "Rows", None])
def test_an_unknown_layout_is_an_error_naming_it(layout):
    with pytest.raises((ValueError, TypeError),
                       match=r"^layout must be one of \['columns', 'rows'\]"):
        fitted("relu", "sigmoid", "float64").to_onnx(layout=layout)


def test_to_onnx_writes_the_file_it_returns(tmp_path):
    model = fitted("tanh", "softmax", "float32")
    path = tmp_path / "model.onnx"
    proto = model.to_onnx(path, layout="rows")
    assert path.read_bytes() == proto.SerializeToString()
    assert onnx.load(str(path)) == proto
    model.to_onnx(str(path))  # replaces it, also from a str
    assert onnx.load(str(path)).metadata_props[0].value == "columns"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_unwritable_paths_are_errors_naming_them_and_leave_nothing_behind(tmp_path):
    model = fitted("tanh", "sigmoid", "float64")
    (tmp_path / "a-file").write_text("")
    cases = [(tmp_path / "missing" / "m.onnx", FileNotFoundError, "does not exist"),
             (tmp_path, IsADirectoryError, "is a directory"),
             (tmp_path / "a-file" / "m.onnx", NotADirectoryError, "is a file, not a directory")]
    for path, error, message in cases:
        with pytest.raises(error, match=f"^path '{path}'.*{message}"):
            model.to_onnx(path)
    with pytest.raises(TypeError, match="^path must be a file name"):
        model.to_onnx(3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    model = fitted("tanh", "sigmoid", "float64")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the old model")

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match=f"^cannot write the ONNX model to '{path}': No space left"):
        model.to_onnx(path)
    assert path.read_bytes() == b"the old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("layers,match", [
    ([], "layers must be a non-empty list"),
    ([(np.ones((3, 2)), np.zeros((3, 1)), "relu"), (np.ones((1, 4)), np.zeros((1, 1)), "sigmoid")],
     r"layers\[1\]\.W has 4 columns; the layer before has 3 units"),
    ([(np.ones((3, 2)), np.zeros((2, 1)), "sigmoid")], r"layers\[0\]\.b must be \(3, 1\)"),
    ([(np.ones((3, 2)), np.zeros((3, 1)), "softmax"), (np.ones((1, 3)), np.zeros(1), "sigmoid")],
     r"layers\[0\]\.activation must be a hidden activation"),
    ([(np.ones((3, 2)), np.zeros((3, 1)), "relu")], r"layers\[0\]\.activation must be an output"),
    ([(np.full((3, 2), np.nan), np.zeros((3, 1)), "linear")], r"layers\[0\]\.W must hold finite"),
])
def test_network_descriptions_are_checked(layers, match):
    with pytest.raises((TypeError, ValueError), match=match):
        export.network_to_onnx(layers, "float64")


# ---------------------------------------------------------------------------
# Imports and registration
# ---------------------------------------------------------------------------


def python(code):
    """Run ``code`` in a new interpreter that imports this checkout; its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_skl2onnx_knows_the_estimators_whichever_is_imported_first():
    pytest.importorskip("skl2onnx")
    pytest.importorskip("sklearn")
    out = python("""
        import sys
        import fastbackprop.sklearn
        print(sorted(m for m in ("onnx", "skl2onnx", "fastbackprop.export") if m in sys.modules))
        from skl2onnx._supported_operators import sklearn_operator_name_map as aliases
        from fastbackprop.sklearn import MLPClassifier, MLPRegressor
        print(aliases[MLPClassifier], aliases[MLPRegressor])
        import skl2onnx
        print(type(skl2onnx.__spec__.loader).__name__ == type(skl2onnx.__loader__).__name__)
    """)
    assert out.split("\n")[:3] == ["[]", "FastbackpropMLPClassifier FastbackpropMLPRegressor",
                                   "True"]
    out = python("""
        import skl2onnx
        from fastbackprop.sklearn import MLPClassifier
        from skl2onnx._supported_operators import sklearn_operator_name_map as aliases
        print(aliases[MLPClassifier])
    """)
    assert out.strip() == "FastbackpropMLPClassifier"


def test_a_failed_registration_warns_and_does_not_break_skl2onnx(monkeypatch):
    pytest.importorskip("skl2onnx")
    sklearn_module = pytest.importorskip("fastbackprop.sklearn")

    def broken():
        raise AttributeError("no update_registered_converter")

    monkeypatch.setattr(export, "register_skl2onnx", broken)
    with pytest.warns(RuntimeWarning, match="could not register its estimators with skl2onnx"):
        sklearn_module._register_with_skl2onnx(sys.modules["skl2onnx"])


# ---------------------------------------------------------------------------
# scikit-learn's interface through skl2onnx.to_onnx
# ---------------------------------------------------------------------------


def sklearn_data(kind, dtype):
    """``X`` ``(60, 4)`` and targets of ``kind``: binary, multiclass, strings, multilabel,
    regression (one output) or regression3 (three), poisson or poisson3 (counts, >= 0)."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 4)).astype(dtype)
    bins = np.digitize(X[:, 0], [-0.5, 0.5])
    y = {"binary": lambda: (X[:, 0] > 0).astype(int),
         "multiclass": lambda: bins,
         "strings": lambda: np.array(["ant", "bee", "cat"])[bins],
         "multilabel": lambda: (X[:, :3] > 0).astype(int),
         "regression": lambda: X[:, 0] - X[:, 1] ** 2,
         "regression3": lambda: X[:, :3] * [1, 2, -1],
         "poisson": lambda: np.round(np.exp(X[:, 0])),
         "poisson3": lambda: np.abs(X[:, :3]) * [1, 2, 3]}[kind]()
    return X, y


@functools.lru_cache(maxsize=None)
def sklearn_fitted(kind, dtype, pipeline):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fastbackprop.sklearn import MLPClassifier, MLPRegressor

    X, y = sklearn_data(kind, dtype)
    Estimator = (functools.partial(MLPRegressor, loss="poisson") if kind.startswith("poisson")
                 else MLPRegressor if kind.startswith("regression") else MLPClassifier)
    estimator = Estimator(hidden_layer_sizes=(8, 6), activation="tanh", max_iter=20,
                          random_state=0)
    if pipeline:
        estimator = make_pipeline(StandardScaler(), estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in 20 epochs: no matter here
        return estimator.fit(X, y)


def skl2onnx_outputs(estimator, X, zipmap=False):
    """``skl2onnx.to_onnx(estimator, X[:1])`` run on ``X``: its outputs, as arrays. A
    classifier's probabilities come as an array (``zipmap=False``) unless ``zipmap``."""
    from skl2onnx import to_onnx

    from fastbackprop.sklearn import MLPClassifier

    options = None if zipmap else {MLPClassifier: {"zipmap": False}}
    outputs = run(to_onnx(estimator, X[:1], options=options), X)
    if zipmap:
        outputs[1] = np.array([list(row.values()) for row in outputs[1]])
    return outputs


@pytest.mark.parametrize("pipeline", [False, True], ids=["alone", "pipeline"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["binary", "multiclass", "strings", "multilabel"])
def test_skl2onnx_converts_the_classifier(kind, dtype, pipeline):
    pytest.importorskip("skl2onnx")
    estimator = sklearn_fitted(kind, dtype, pipeline)
    X, _ = sklearn_data(kind, dtype)
    for rows in (X[:1], X):
        label, probabilities = skl2onnx_outputs(estimator, rows)
        np.testing.assert_array_equal(label, estimator.predict(rows))
        assert probabilities.dtype == np.dtype(dtype)
        assert_agrees(probabilities, estimator.predict_proba(rows), dtype)


@pytest.mark.parametrize("kind", ["binary", "strings", "multilabel"])
def test_skl2onnx_zipmap_default_output(kind):
    """By default skl2onnx ends a classifier in a ZipMap (a dict per row); float32 only, as for
    scikit-learn's classes (ONNX's ZipMap takes float tensors)."""
    pytest.importorskip("skl2onnx")
    estimator = sklearn_fitted(kind, "float32", True)
    X, _ = sklearn_data(kind, "float32")
    label, probabilities = skl2onnx_outputs(estimator, X, zipmap=True)
    np.testing.assert_array_equal(label, estimator.predict(X))
    assert_agrees(probabilities, estimator.predict_proba(X), "float32")


@pytest.mark.parametrize("pipeline", [False, True], ids=["alone", "pipeline"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["regression", "regression3", "poisson", "poisson3"])
def test_skl2onnx_converts_the_regressor(kind, dtype, pipeline):
    pytest.importorskip("skl2onnx")
    estimator = sklearn_fitted(kind, dtype, pipeline)
    X, _ = sklearn_data(kind, dtype)
    for rows in (X[:1], X):
        (values,) = skl2onnx_outputs(estimator, rows)
        expected = estimator.predict(rows)
        assert values.shape == (len(rows), 1 if expected.ndim == 1 else expected.shape[1])
        assert_agrees(values, expected.reshape(values.shape), dtype)


def test_skl2onnx_options_nocl_output_class_labels_and_target_opset():
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx

    from fastbackprop.sklearn import MLPClassifier

    estimator = sklearn_fitted("strings", "float32", True)
    X, _ = sklearn_data("strings", "float32")
    indices = np.searchsorted(estimator.classes_, estimator.predict(X))
    label, probabilities = run(to_onnx(estimator, X[:1], options={
        MLPClassifier: {"zipmap": False, "nocl": True}}), X)
    np.testing.assert_array_equal(label, indices)
    label, _, class_labels = run(to_onnx(estimator, X[:1], options={
        MLPClassifier: {"zipmap": False, "output_class_labels": True}}), X)
    np.testing.assert_array_equal(label, estimator.predict(X))
    np.testing.assert_array_equal(class_labels, estimator.classes_)
    proto = to_onnx(estimator, X[:1], target_opset=13, options={MLPClassifier: {"zipmap": False}})
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 13
    label, probabilities = run(proto, X)
    np.testing.assert_array_equal(label, estimator.predict(X))
    assert_agrees(probabilities, estimator.predict_proba(X), "float32")


@pytest.mark.parametrize("labels", [[0.0, 2.0], [False, True]], ids=["floats", "booleans"])
def test_float_and_boolean_classes_come_out_as_int64_labels(labels):
    pytest.importorskip("skl2onnx")
    from fastbackprop.sklearn import MLPClassifier

    X, y = sklearn_data("binary", "float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, np.array(labels)[y])
    label, _ = skl2onnx_outputs(clf, X)
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, clf.predict(X))


# ---------------------------------------------------------------------------
# fastbackprop export
# ---------------------------------------------------------------------------


def test_the_export_command_writes_what_the_model_predicts(tmp_path):
    model = fitted("leaky_relu", "softmax", "float64")
    model.save(tmp_path / "m.npz")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run([sys.executable, "-m", "fastbackprop", "export", "--model", "m.npz",
                             "--onnx", "m.onnx", "--layout", "rows", "--dtype", "float32"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("wrote m.onnx: input X (m, 5) -> output A_L (m, 3), float32, "
                             "rows layout\n")
    X = examples(25, "float64")
    (A,) = run(onnx.load(str(tmp_path / "m.onnx")), X.T.astype(np.float32))
    assert_agrees(A.T, model.predict_proba(X), "float32")
    assert_same_labels(model, A.T, X)


def test_the_export_command_defaults_to_the_models_dtype_and_columns(tmp_path, capsys):
    model = fitted("tanh", "linear", "float32")
    model.save(tmp_path / "m.npz")
    path = tmp_path / "m.onnx"
    assert cli.main(["export", "--model", str(tmp_path / "m.npz"), "--onnx", str(path)]) == 0
    assert capsys.readouterr().out.endswith("input X (5, m) -> output A_L (3, m), float32, "
                                            "columns layout\n")
    X = examples(25, "float32")
    (A,) = run(onnx.load(str(path)), X)
    assert_agrees(A, model.predict(X), "float32")


def test_export_command_errors_are_one_line_and_exit_2(tmp_path, capsys):
    fitted("tanh", "sigmoid", "float64").save(tmp_path / "m.npz")
    np.savez(tmp_path / "data.npz", X=np.ones((3, 2)))
    (tmp_path / "notes.txt").write_text("not a model")
    cases = [
        (["--model", "missing.npz", "--onnx", "m.onnx"], "model file 'missing.npz' does not exist"),
        (["--model", "notes.txt", "--onnx", "m.onnx"], "'notes.txt' is not an .npz archive"),
        (["--model", "data.npz", "--onnx", "m.onnx"], "'data.npz' is an .npz archive but not a "
                                                      "fastbackprop model"),
        (["--model", "m.npz", "--onnx", "nowhere/m.onnx"], "--onnx nowhere/m.onnx: directory"),
        (["--model", "m.npz", "--onnx", "m.onnx", "--dtype", "float16"], "argument --dtype"),
        (["--model", "m.npz", "--onnx", "m.onnx", "--layout", "cols"], "argument --layout"),
    ]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for args, message in cases:
            try:
                status = cli.main(["export", *args])
            except SystemExit as e:  # argparse's usage errors
                status = e.code
            err = capsys.readouterr().err
            assert status == 2, (args, err)
            assert len(err.strip().splitlines()) == 1 and message in err, (args, err)
            assert err.startswith("fastbackprop: error: ") or err.startswith("fastbackprop export")
    finally:
        os.chdir(cwd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "m.npz", "notes.txt"]
