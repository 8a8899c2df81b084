"""ONNX export: a fitted network as an ONNX model that onnxruntime (or any ONNX runtime) serves.

::

    model.to_onnx("model.onnx")                          # a fitted fastbackprop.Model
    skl2onnx.to_onnx(clf, X[:1])                         # a fastbackprop.sklearn estimator
    fastbackprop export --model model.npz --onnx model.onnx

The graph is built from a **network description**: a list of
:class:`Layer`, each ``(W, b, activation)`` in the course's orientation
(``W`` ``(n_l, n_{l-1})``, ``b`` ``(n_l, 1)``); every layer is ``MatMul``
then ``Add`` (:func:`_affine` says why not ``Gemm``), then its activation,
written as the operators of :data:`HIDDEN` (layers ``1..L-1``) or
:data:`OUTPUT` (layer ``L``, whose ``activation`` is the output layer's
name). :func:`network_to_onnx` takes the layers and nothing else of a
model, so anything that changes ``W`` and ``b`` without changing the graph
is done to the layers before it: batch norm is folded into them by
:func:`fold_batch_norm`.

**Layouts.** ``layout="columns"``, the course's: the input ``X`` is
``(n_x, m)``, one example per column, and the output ``A_L`` is
``(n_y, m)``, as ``Model.predict_proba`` takes and returns them.
``layout="rows"``, what most serving code feeds: ``X`` ``(m, n_x)`` and
``A_L`` ``(m, n_y)``, one example per row. ``m`` is symbolic (any batch
size, 1 included); ``n_x`` and ``n_y`` are fixed.

**Opset.** :data:`OPSET` is 13, with IR version 7 (:data:`IR_VERSION`, the
onnx 1.8 pair): the first opset whose ``Softmax`` normalises along one
axis (opsets 1 to 12 flatten the tensor to 2-D from ``axis`` on, which for
the columns layout's ``axis=0`` would normalise over the whole batch), and
old enough for every onnxruntime since 1.6 (2020) and every other runtime
that reads ONNX 1.8 files. Nothing this exporter writes needs a later
operator version. Checked: the graphs of every layer, dtype and layout run
in onnxruntime 1.16.3 (built with onnx 1.14.1, the oldest the extras allow)
and 1.32.

**dtypes.** float32 or float64 (``tensor(float)`` or ``tensor(double)``
throughout). onnxruntime's CPU provider runs every operator used here in
both, except ``LeakyRelu``, whose kernel is float32 only (1.16 to 1.32
at least): in float64, leaky ReLU is written ``Max(Z, 0.01 Z)``,
which is exactly ``Z where Z >= 0, else 0.01 Z``.

scikit-learn's interface: :func:`register_skl2onnx` registers
``fastbackprop.sklearn.MLPClassifier`` and ``MLPRegressor`` with skl2onnx
(done for you when both modules are imported, in either order).

Importing this module imports onnx (the ``onnx`` extra); ``import
fastbackprop`` does not import this module.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ONNX export needs the onnx package (pip install 'fastbackprop[onnx]'); importing it "
        f"failed: {error}") from error

from . import __version__, _files
from .activations import LEAKY_SLOPE
from .validation import check_choice, check_dtype

__all__ = ["Layer", "network_to_onnx", "model_to_onnx", "layers_from_parameters",
           "fold_batch_norm", "save", "register_skl2onnx", "OPSET", "IR_VERSION", "LAYOUTS",
           "HIDDEN", "OUTPUT", "INPUT_NAME", "OUTPUT_NAME"]

#: The ONNX operator set the graphs use (see the module's docstring for why 13).
OPSET = 13

#: The ONNX IR version written: 7, the one that came with opset 13 (onnx 1.8).
IR_VERSION = 7

#: The input layouts: the course's columns ``(n_x, m)``, or rows ``(m, n_x)``.
LAYOUTS = ("columns", "rows")

#: The graph's input (``X``, the examples) and output (``A_L``, the output layer's values).
INPUT_NAME, OUTPUT_NAME = "X", "A_L"

#: The symbolic dimension of the examples.
BATCH = "m"

#: numpy dtype -> ONNX element type.
ELEMENT_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class Layer(NamedTuple):
    """One layer of the network: ``Z = W A_prev + b``, then ``A = activation(Z)``.

    ``W`` ``(n_l, n_{l-1})`` and ``b`` ``(n_l, 1)`` (or ``(n_l,)``), the course's
    orientation; ``activation`` a key of :data:`HIDDEN` for the hidden layers
    and of :data:`OUTPUT` (the output layer's name) for the last one.
    """

    W: np.ndarray
    b: np.ndarray
    activation: str


# ---------------------------------------------------------------------------
# Network descriptions
# ---------------------------------------------------------------------------


def layers_from_parameters(parameters, hidden_activation, output_activation):
    """The course's ``parameters`` dict ``{"W1": (n_1, n_x), "b1": (n_1, 1), ...}`` as layers.

    Layers ``1..L-1`` get ``hidden_activation``, layer ``L`` ``output_activation``.
    """
    L = sum(1 for key in parameters if key.startswith("W"))
    return [Layer(parameters[f"W{l}"], parameters[f"b{l}"],
                  hidden_activation if l < L else output_activation)
            for l in range(1, L + 1)]


def fold_batch_norm(layer, gamma, beta, mean, variance, epsilon):
    """``layer`` followed by batch norm at inference, as one layer with the same activation.

    Batch norm of the course, with the running statistics: ``Z_norm = (Z -
    mean) / sqrt(variance + epsilon)``, ``Z~ = gamma Z_norm + beta``, then
    ``A = g(Z~)``. With ``s = gamma / sqrt(variance + epsilon)``, ``Z~ = (s
    W) A_prev + s (b - mean) + beta``: the returned layer's ``W`` and ``b``.
    ``gamma``, ``beta``, ``mean``, ``variance`` are ``(n_l, 1)`` (or ``(n_l,)``).
    """
    n = layer.W.shape[0]
    column = [np.asarray(v, dtype=np.float64).reshape(n, 1)
              for v in (layer.b, gamma, beta, mean, variance)]
    b, gamma, beta, mean, variance = column
    scale = gamma / np.sqrt(variance + epsilon)
    return Layer(scale * np.asarray(layer.W, dtype=np.float64), scale * (b - mean) + beta,
                 layer.activation)


def _check_layers(layers):
    """``layers`` as a list of :class:`Layer` with ``b`` ``(n_l, 1)``; raises naming the layer.

    Checks that they chain (``W{l}`` has as many columns as ``W{l-1}`` has
    rows), that every value is a finite real, and that each activation is
    known: :data:`HIDDEN` for ``l < L``, :data:`OUTPUT` for ``l = L``.
    """
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__") or not len(layers):
        raise TypeError("layers must be a non-empty list of (W, b, activation), one per layer; "
                        f"got {layers!r}")
    checked = []
    for l, layer in enumerate(layers, start=1):
        if not isinstance(layer, (tuple, list)) or len(layer) != 3:
            raise TypeError(f"layers[{l - 1}] must be a (W, b, activation) triple; got {layer!r}")
        W, b, activation = (np.asarray(layer[0]), np.asarray(layer[1]), layer[2])
        where = f"layers[{l - 1}]"
        for name, value in (("W", W), ("b", b)):
            if value.dtype.kind not in "fiub" or not np.all(np.isfinite(value)):
                raise ValueError(f"{where}.{name} must hold finite real numbers; got dtype "
                                 f"{value.dtype}")
        if W.ndim != 2:
            raise ValueError(f"{where}.W must be 2-D (n_l, n_(l-1)); got shape {W.shape}")
        if b.shape not in ((W.shape[0], 1), (W.shape[0],)):
            raise ValueError(f"{where}.b must be ({W.shape[0]}, 1) to match W {W.shape}; "
                             f"got shape {b.shape}")
        if checked and W.shape[1] != checked[-1].W.shape[0]:
            raise ValueError(f"{where}.W has {W.shape[1]} columns; the layer before has "
                             f"{checked[-1].W.shape[0]} units")
        last = l == len(layers)
        table, what = (OUTPUT, "an output layer") if last else (HIDDEN, "a hidden activation")
        if not isinstance(activation, str) or activation not in table:
            raise ValueError(f"{where}.activation must be {what}, one of {list(table)}; "
                             f"got {activation!r}")
        checked.append(Layer(W, b.reshape(-1, 1), activation))
    return checked


# ---------------------------------------------------------------------------
# Writing graphs: the operators of each activation
# ---------------------------------------------------------------------------


class _Graph:
    """The nodes and initializers of a graph being built with ``onnx.helper``.

    ``dtype`` (float32 or float64) is every tensor's; ``units_axis`` is the
    axis along which a layer's units lie: 0 in the columns layout (``(n_l,
    m)``), 1 in the rows layout (``(m, n_l)``).
    """

    def __init__(self, dtype, layout):
        self.dtype = np.dtype(dtype)
        self.layout = layout
        self.units_axis = 0 if layout == "columns" else 1
        self.nodes, self.initializers = [], []
        self._used = {INPUT_NAME, OUTPUT_NAME}

    def _name(self, seed):
        name, k = seed, 1
        while name in self._used:
            k += 1
            name = f"{seed}_{k}"
        self._used.add(name)
        return name

    def constant(self, seed, array):
        """An initializer holding ``array`` in the graph's dtype; returns its name."""
        name = self._name(seed)
        self.initializers.append(numpy_helper.from_array(
            np.ascontiguousarray(array, dtype=self.dtype), name))
        return name

    def node(self, op_type, inputs, seed=None, **attributes):
        """A node ``op_type(*inputs)`` with one output, named from ``seed``; returns that name."""
        output = self._name(seed or op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=output,
                                           **attributes))
        return output


def _unary(op_type):
    """The activation written as the one ONNX operator ``op_type``."""

    def write(graph, Z):
        return graph.node(op_type, [Z])

    write.__doc__ = f"``{op_type}(Z)``."
    return write


def _identity(graph, Z):
    """``Z`` itself: no node."""
    return Z


def _leaky_relu(graph, Z):
    """``Z where Z >= 0, else 0.01 Z``: ``LeakyRelu(alpha=0.01)`` in float32; in float64,
    whose ``LeakyRelu`` onnxruntime's CPU provider lacks, ``Max(Z, 0.01 Z)`` (the same values)."""
    if graph.dtype == np.float32:
        return graph.node("LeakyRelu", [Z], alpha=LEAKY_SLOPE)
    slope = graph.constant("leaky_slope", np.array(LEAKY_SLOPE))
    return graph.node("Max", [Z, graph.node("Mul", [Z, slope])], seed="LeakyRelu")


def _softmax(graph, Z):
    """``Softmax`` along the units (the classes): per column, or per row in the rows layout."""
    return graph.node("Softmax", [Z], axis=graph.units_axis)


#: Hidden activations -> how each is written: ``write(graph, Z) -> A``. Keyed by the
#: names of :data:`fastbackprop.spec.ACTIVATIONS` (a test fails for a row missing here),
#: plus ``identity``, ready for when the package gets a linear hidden layer.
HIDDEN = {
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "relu": _unary("Relu"),
    "leaky_relu": _leaky_relu,
    "identity": _identity,
}

#: Output layers -> how each is written, keyed by the names of :data:`fastbackprop.spec.OUTPUTS`.
OUTPUT = {
    "sigmoid": _unary("Sigmoid"),
    "softmax": _softmax,
    "linear": _identity,
    "exp": _unary("Exp"),
}


def _affine(graph, A_prev, layer, l):
    """``Z = W A_prev + b`` as ``MatMul`` then ``Add``: ``MatMul(W, A_prev) + b``, ``W``
    stored as the course's ``W{l}`` and ``b`` ``(n_l, 1)``, in the columns layout;
    ``MatMul(A_prev, W^T) + b^T``, ``W^T`` stored as ``W{l}_T`` ``(n_{l-1}, n_l)`` and ``b``
    ``(n_l,)``, in the rows layout.

    Not one ``Gemm``: onnxruntime before 1.18 fuses a ``Gemm`` and the activation after
    it into a ``FusedGemm`` that it has for float32 only, so a float64 ``Gemm`` graph fails
    to load there (onnxruntime PR 19612). ``MatMul`` + ``Add`` loads everywhere, and
    onnxruntime fuses it into ``Gemm`` itself where it has the kernels (it measured as
    fast as a ``Gemm`` graph, 5.8 us for one row of ``[64, 100, 10]`` in float32).
    """
    if graph.layout == "columns":
        product = graph.node("MatMul", [graph.constant(f"W{l}", layer.W), A_prev])
        return graph.node("Add", [product, graph.constant(f"b{l}", layer.b)], seed=f"Z{l}")
    product = graph.node("MatMul", [A_prev, graph.constant(f"W{l}_T", layer.W.T)])
    return graph.node("Add", [product, graph.constant(f"b{l}", layer.b.reshape(-1))],
                      seed=f"Z{l}")


def _write_layers(graph, X, layers):
    """Every layer's product, bias and activation, from the input named ``X``; returns
    ``A_L``'s name."""
    A = X
    for l, layer in enumerate(layers, start=1):
        table = OUTPUT if l == len(layers) else HIDDEN
        A = table[layer.activation](graph, _affine(graph, A, layer, l))
    return A


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def network_to_onnx(layers, dtype, layout="columns", metadata=None):
    """The ONNX model (``onnx.ModelProto``) of the network ``layers``.

    layers : :class:`Layer` ``(W, b, activation)`` for ``l = 1..L`` (see
        :func:`layers_from_parameters`); ``W`` ``(n_l, n_{l-1})``, ``b``
        ``(n_l, 1)``; the last layer's ``activation`` is the output layer's
        name (``"sigmoid"``, ``"softmax"``, ``"linear"``, ``"exp"``).
    dtype : ``"float32"`` or ``"float64"`` (or the numpy dtypes): the input's,
        the output's and every weight's (``W`` and ``b`` are converted).
    layout : ``"columns"``: input ``X`` ``(n_x, m)``, output ``A_L`` ``(n_y,
        m)``, one example per column (the course's); ``"rows"``: ``X`` ``(m,
        n_x)``, ``A_L`` ``(m, n_y)``, one example per row. ``m`` is symbolic.
    metadata : extra ``{key: text}`` for the model's ``metadata_props``.

    Raises ``TypeError`` for an unknown dtype, ``ValueError`` for an unknown
    layout or layers that do not chain, before anything is built.
    """
    dtype = check_dtype(dtype, "dtype")
    layout = check_choice(layout, LAYOUTS, "layout")
    layers = _check_layers(layers)
    graph = _Graph(dtype, layout)
    A_L = _write_layers(graph, INPUT_NAME, layers)
    assert graph.nodes[-1].output[0] == A_L  # every layer ends in a node (its Add at least)
    graph.nodes[-1].output[0] = OUTPUT_NAME
    graph.nodes[-1].name = OUTPUT_NAME
    n_x, n_y = layers[0].W.shape[1], layers[-1].W.shape[0]
    columns = layout == "columns"
    element = ELEMENT_TYPES[dtype]
    X = helper.make_tensor_value_info(
        INPUT_NAME, element, [n_x, BATCH] if columns else [BATCH, n_x],
        f"the examples, {'(n_x, m): one per column' if columns else '(m, n_x): one per row'}")
    A = helper.make_tensor_value_info(
        OUTPUT_NAME, element, [n_y, BATCH] if columns else [BATCH, n_y],
        f"the output layer's A_L ({layers[-1].activation}), "
        f"{'(n_y, m): one column' if columns else '(m, n_y): one row'} per example")
    model = helper.make_model(
        helper.make_graph(graph.nodes, "fastbackprop", [X], [A], initializer=graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="fastbackprop", producer_version=__version__,
        doc_string=f"[LINEAR -> g] x {len(layers) - 1} -> LINEAR -> {layers[-1].activation}; "
                   f"layout {layout}: input {INPUT_NAME}, output {OUTPUT_NAME}")
    helper.set_model_props(model, {"fastbackprop.layout": layout,
                                   "fastbackprop.output_activation": layers[-1].activation,
                                   **(metadata or {})})
    onnx.checker.check_model(model)
    return model


def model_to_onnx(model, path=None, dtype=None, layout="columns"):
    """:meth:`fastbackprop.Model.to_onnx`: the fitted ``model`` as an ONNX model.

    dtype : None (the fitted parameters' dtype), ``"float32"`` or ``"float64"``.
    layout : ``"columns"`` (``X`` ``(n_x, m)`` -> ``A_L`` ``(n_y, m)``) or
        ``"rows"`` (``(m, n_x)`` -> ``(m, n_y)``); see :func:`network_to_onnx`.
    path : None, or the file to write the model to, atomically (see :func:`save`).

    The model's names go into ``metadata_props``: ``fastbackprop.layout``,
    ``fastbackprop.output_activation``, ``fastbackprop.hidden_activation``
    and, when the model has them, ``fastbackprop.classes`` (a JSON list).
    Every argument is checked before anything is built: an unfitted model
    raises :class:`fastbackprop.model.NotFittedError`, an unknown dtype
    ``TypeError``, an unknown layout ``ValueError``, a path that cannot be
    written an ``OSError`` naming it.
    """
    parameters, _ = model._fitted()
    dtype = check_dtype(parameters["W1"].dtype if dtype is None else dtype, "dtype")
    layout = check_choice(layout, LAYOUTS, "layout")
    if path is not None:
        _check_writable(path)
    metadata = {"fastbackprop.hidden_activation": model.hidden_activation}
    classes = getattr(model, "classes_", None)
    if classes is not None:
        metadata["fastbackprop.classes"] = json.dumps([_text(c) for c in np.ravel(classes)])
    if any(key.startswith("gamma") for key in parameters):  # batch norm, folded into W, b
        from .reference import fold_batch_norm as fold

        parameters = fold(parameters, getattr(model, "batch_norm_epsilon", 1e-5))
    proto = network_to_onnx(
        layers_from_parameters(parameters, model.hidden_activation, model.output_activation),
        dtype, layout, metadata)
    if path is not None:
        save(proto, path)
    return proto


def save(proto, path):
    """Write the ONNX model ``proto`` to ``path`` atomically: a temporary file in the same
    directory, then a rename, so that ``path`` is the old file or the whole new one, and a
    failure leaves nothing behind. Raises an ``OSError`` naming ``path`` when it cannot be
    written."""
    _check_writable(path)
    data = proto.SerializeToString()
    try:
        _files.write_atomically(path, lambda f: f.write(data))
    except OSError as e:
        raise type(e)(f"cannot write the ONNX model to {os.fspath(path)!r}: "
                      f"{e.strerror or e}") from e


def _check_writable(path):
    """Fail early, with a message naming ``path``, where a write is sure to fail."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or os.PathLike) or None; got {path!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"path {path!r} is a directory; expected a file name such as "
                                "model.onnx")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(f"path {path!r}: {directory!r} is a file, not a directory")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path {path!r}: the directory {directory!r} does not exist")


def _text(c):
    """A class name as text (``7`` for ``numpy.int64(7)``)."""
    return str(c.item() if isinstance(c, np.generic) else c)


# ---------------------------------------------------------------------------
# scikit-learn's interface: skl2onnx
# ---------------------------------------------------------------------------

#: The aliases our estimators are registered under in skl2onnx.
SKL2ONNX_ALIASES = {"MLPClassifier": "FastbackpropMLPClassifier",
                    "MLPRegressor": "FastbackpropMLPRegressor"}

#: skl2onnx's classifier options: ``zipmap`` (its default output: a dict per example),
#: ``output_class_labels``, and ``nocl`` (labels and ZipMap keys are class indices).
CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "output_class_labels": [False, True],
                      "nocl": [True, False]}


def register_skl2onnx():
    """Register ``fastbackprop.sklearn``'s ``MLPClassifier`` and ``MLPRegressor`` with skl2onnx.

    Then ``skl2onnx.to_onnx(estimator, X[:1])`` converts them, alone or in a
    pipeline, with the same outputs as scikit-learn's classes (``label`` and
    ``probabilities``, a ZipMap by default; ``variable`` for a regressor),
    in float32 or, for float64 ``X``, float64. Safe to call more than once.

    You rarely call it: importing ``fastbackprop.sklearn`` calls it if
    skl2onnx is already imported, and otherwise right after skl2onnx's first
    import (:mod:`fastbackprop._post_import`).

    The shape calculators are skl2onnx's own; the converters are written
    here (the layers through :data:`HIDDEN` and :data:`OUTPUT`, rows layout)
    because skl2onnx's MLP converters, run on scikit-learn's own classes,
    (1) reshape a regressor's several outputs into one column, ``(m * k,
    1)``, and (2) threshold multi-label probabilities with ``ai.onnx.ml``'s
    ``Binarizer``, which onnxruntime has for float32 only; their shape
    calculator also declares multi-label labels ``(m,)``. Here a regressor
    gives ``(m, n_outputs_)``, multi-label labels are ``Greater(p, 0.5)``
    ``(m, n_labels)`` int64, and both dtypes run.
    """
    from skl2onnx import update_registered_converter

    from .sklearn import MLPClassifier, MLPRegressor

    update_registered_converter(MLPClassifier, SKL2ONNX_ALIASES["MLPClassifier"],
                                _classifier_shapes, _convert_classifier,
                                options=CLASSIFIER_OPTIONS)
    update_registered_converter(MLPRegressor, SKL2ONNX_ALIASES["MLPRegressor"],
                                _regressor_shapes, _convert_regressor)


class _Skl2onnxGraph(_Graph):
    """:class:`_Graph`'s interface over skl2onnx's ``scope`` and ``container``, rows layout."""

    def __init__(self, scope, container, dtype):
        super().__init__(dtype, "rows")
        self.scope, self.container = scope, container

    def constant(self, seed, array, dtype=None):
        """As :meth:`_Graph.constant`; ``dtype`` (default the graph's) may be int64 or object
        (strings)."""
        name = self.scope.get_unique_variable_name(seed)
        array = np.asarray(array, dtype=dtype or self.dtype)
        if array.dtype == object:  # skl2onnx copies a TensorProto's raw_data, which strings lack
            self.container.add_initializer(name, TensorProto.STRING, list(array.shape),
                                           [str(s).encode("utf-8") for s in array.ravel()])
        else:
            tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
            self.container.add_initializer(name, tensor.data_type, list(tensor.dims), tensor)
        return name

    def node(self, op_type, inputs, seed=None, output=None, **attributes):
        """As :meth:`_Graph.node`; ``output`` names the result (default: a new name)."""
        output = output or self.scope.get_unique_variable_name(seed or op_type)
        self.container.add_node(op_type, list(inputs), [output],
                                name=self.scope.get_unique_operator_name(op_type), **attributes)
        return output


def _sklearn_layers(estimator):
    """A fitted ``fastbackprop.sklearn`` estimator's layers: ``W{l} = coefs_[l-1].T``; a
    batch-normalised layer (``batch_norm_gamma_[l-1]`` not None, ``intercepts_[l-1]`` its
    ``beta``) folded with its running statistics (:func:`fold_batch_norm`, in float64), as
    the estimator predicts."""
    from .sklearn import ACTIVATIONS, OUTPUTS

    L = len(estimator.coefs_)
    gammas = getattr(estimator, "batch_norm_gamma_", None) or [None] * L
    layers = []
    for l, (coef, intercept, gamma) in enumerate(
            zip(estimator.coefs_, estimator.intercepts_, gammas), start=1):
        activation = (ACTIVATIONS[estimator.activation] if l < L
                      else OUTPUTS[estimator.out_activation_])
        if gamma is None:
            layers.append(Layer(coef.T, intercept.reshape(-1, 1), activation))
            continue
        plain = Layer(coef.T, np.zeros((coef.shape[1], 1)), activation)
        layers.append(fold_batch_norm(plain, gamma, intercept,
                                      estimator.batch_norm_running_mean_[l - 1],
                                      estimator.batch_norm_running_var_[l - 1],
                                      float(estimator.batch_norm_epsilon)))
    return _check_layers(layers)


def _sklearn_forward(scope, operator, container):
    """The estimator's network on the operator's input, rows layout; ``(graph, A_L)``.

    The dtype is float64 for a ``tensor(double)`` input and float32 for any
    other (as skl2onnx's converters do); an input of another type is cast.
    """
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    source = operator.inputs[0]
    double = isinstance(source.type, DoubleTensorType)
    graph = _Skl2onnxGraph(scope, container, np.float64 if double else np.float32)
    X = source.full_name
    if not isinstance(source.type, (DoubleTensorType, FloatTensorType)):
        X = graph.node("Cast", [X], to=ELEMENT_TYPES[graph.dtype])
    return graph, _write_layers(graph, X, _sklearn_layers(operator.raw_operator))


def _classifier_shapes(operator):
    """skl2onnx's shapes for a linear classifier; multi-label labels are ``(N, n_labels)``."""
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    calculate_linear_classifier_output_shapes(operator)
    estimator = operator.raw_operator
    if estimator._label_binarizer.y_type_ == "multilabel-indicator":
        N = operator.inputs[0].get_first_dimension()
        operator.outputs[0].type.shape = [N, estimator.n_outputs_]


def _convert_classifier(scope, operator, container):
    """``label`` and ``probabilities`` as ``predict`` and ``predict_proba`` give them.

    Binary: ``[1 - p, p]`` and the class of the larger (the first on a tie,
    as ``p > 0.5``); multi-class: the softmax and the class of its
    ``ArgMax``; multi-label: the sigmoids and ``p > 0.5`` as int64 0/1. With
    skl2onnx's option ``nocl``, labels are the classes' indices (skl2onnx
    refuses ``nocl`` for a multi-label target itself).
    """
    estimator = operator.raw_operator
    graph, p = _sklearn_forward(scope, operator, container)
    label, probabilities = operator.outputs[0].full_name, operator.outputs[1].full_name
    if estimator._label_binarizer.y_type_ == "multilabel-indicator":
        graph.node("Identity", [p], output=probabilities)
        above = graph.node("Greater", [p, graph.constant("threshold", np.array(0.5))])
        graph.node("Cast", [above], output=label, to=TensorProto.INT64)
        return
    if estimator.n_outputs_ == 1:
        q = graph.node("Sub", [graph.constant("one", np.array(1.0)), p])
        graph.node("Concat", [q, p], output=probabilities, axis=1)
    else:
        graph.node("Identity", [p], output=probabilities)
    index = graph.node("ArgMax", [probabilities], axis=1, keepdims=0)
    if scope.get_options(estimator, dict(nocl=False))["nocl"]:
        classes = np.arange(len(estimator.classes_), dtype=np.int64)
    else:
        classes = _class_labels(estimator.classes_)
    graph.node("Gather", [graph.constant("classes", classes, classes.dtype), index],
               output=label)


def _class_labels(classes):
    """The classes as the label output holds them: int64 for numbers and booleans (the type
    skl2onnx's shape calculator declares; a classifier's float classes are integers, as
    scikit-learn refuses others as continuous targets), else strings."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf":
        return classes.astype(np.int64)
    return np.array([_text(c) for c in classes], dtype=object)


def _regressor_shapes(operator):
    """skl2onnx's shapes for a linear regressor, with ``n_outputs_`` columns ``(N, k)``."""
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

    calculate_linear_regressor_output_shapes(operator)
    N = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type.shape = [N, operator.raw_operator.n_outputs_]


def _convert_regressor(scope, operator, container):
    """``variable`` ``(N, n_outputs_)``: the network's linear output, as ``predict`` (which
    gives ``(N,)`` for one output)."""
    graph, A_L = _sklearn_forward(scope, operator, container)
    graph.node("Identity", [A_L], output=operator.outputs[0].full_name)
