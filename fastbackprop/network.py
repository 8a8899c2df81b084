"""A fitted network: its parameters packed once, and prediction from them.

A fit ends in one :class:`Network`: the parameters in the flat layout of
:mod:`fastbackprop.layout` (``theta``), their per-layer views (the arrays a
model shows its user: ``Model.parameters_``, the scikit-learn classes'
``coefs_`` and ``intercepts_``), the activations and the backend. Prediction
(``Model.predict*``, the scikit-learn classes' ``_forward_pass_fast``, Dask's
blocks) and ONNX export (:meth:`Network.layers`) read it; nothing packs the
parameters again per call.

The views are the parameters: writing into ``model.parameters_["W1"]`` (or
``clf.coefs_[0]``) writes into ``theta``. A model whose arrays were replaced
(a new dict assigned, an array swapped, a model unpickled) hands the network
its arrays again (:meth:`Network.sync`), which packs them when they are not the
views it gave out.

Prediction on the compiled backend is one compiled call
(``kernels.training.predict_into``: the finiteness check, the forward pass and
the copy into the result) through its entry point, kept per thread with
everything else a call needs (:class:`_Predictor`), with the examples as
columns ``(n_x, m)`` or, for the scikit-learn classes, as rows ``(m, n_x)``
(no transposed copy of ``X``: the first product reads the rows), into a
workspace kept per thread. :meth:`Network.fast_probabilities` is the fast path
of ``Model.predict*`` and the scikit-learn classes' ``predict*``: an input
ready for the kernel as it is goes straight there; anything else returns
None and goes through the caller's full checks (see docs/serving.md).

A network with batch-normalised layers predicts with its running statistics, folded
into each such layer's ``W`` and ``b`` once per network (:func:`fastbackprop.reference.fold_batch_norm`):
prediction then runs the dense network, on either backend, with no batch-norm code
compiled. (The fold is made when the network is built: writing into a batch-normalised
model's arrays in place is not seen by its prediction until ``parameters_`` is assigned
again.)
"""

from __future__ import annotations

import threading

import numpy as np

from . import spec
from .layout import Schema
from .sparse import is_sparse
from .validation import FLOAT_DTYPES, check_finite

#: The examples the workspace kept per thread (and per form and dtype) holds at first:
#: single examples and small batches cost little more than the arithmetic.
KEPT_WORKSPACE = 256

#: A larger batch makes the kept workspace grow to its size while the activations of that
#: size take at most this many bytes; a batch beyond allocates a workspace for itself. A
#: new buffer is paged in as it is first written, which cost a third of a 10,000-row
#: prediction of a ``[64, 100, 10]`` network when each batch had its own.
KEPT_BYTES = 1 << 26

#: Examples as rows go through the compiled prediction in tiles of this many rows (see
#: ``kernels.training.predict_into``): a tile's activations stay in cache between the
#: layers. Rows past it need no larger workspace.
PREDICT_TILE = 512


class Network:
    """The fitted network ``parameters`` (the course's dict) with ``hidden_activation`` and
    ``output_activation`` (names in ``spec``'s tables), predicting on ``backend``.

    :attr:`theta` the packed parameters, :attr:`parameters` their views (a dict),
    :attr:`dims` ``[n_x, ..., n_L]``, :attr:`dtype`.
    """

    def __init__(self, parameters, hidden_activation, output_activation, backend="numba",
                 batch_norm_epsilon=1e-5):
        spec.code_of(spec.ACTIVATIONS, hidden_activation, "hidden_activation")
        spec.code_of(spec.OUTPUTS, output_activation, "output_activation")
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.backend = backend
        self.batch_norm_epsilon = batch_norm_epsilon
        self._local = threading.local()
        self._pack(parameters)

    def _pack(self, parameters):
        """Pack ``parameters`` (checked) into a new ``theta``; its views become the parameters."""
        self.schema = Schema.of(parameters)
        self.dims = self.schema.dims
        dtype = np.result_type(*parameters.values())
        self.dtype = dtype if dtype in FLOAT_DTYPES else np.dtype(np.float64)
        self.theta = self.schema.pack(parameters, self.dtype)
        self.parameters = self.schema.unpack(self.theta, copy=False)
        self._exposed = tuple(self.parameters[key] for key in self.schema.keys)
        self._thetas = {self.dtype: self._predicting()}
        self._local = threading.local()

    def _predicting(self):
        """The packed parameters prediction reads: :attr:`theta`, or with batch norm the
        folded dense network's (``W1, b1, ..., WL, bL``)."""
        if not self.schema.has_batch_norm:
            return self.theta
        from .reference import fold_batch_norm

        folded = fold_batch_norm(self.parameters, self.batch_norm_epsilon)
        return Schema(self.dims).pack(folded, self.dtype)

    def dense_parameters(self):
        """``W1, b1, ..., WL, bL`` of the network as it predicts (batch norm folded), new
        arrays."""
        return Schema(self.dims).unpack(self._thetas[self.dtype])

    def __getstate__(self):
        state = self.__dict__.copy()
        for transient in ("_local", "_thetas", "parameters", "_exposed"):
            state.pop(transient)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.parameters = self.schema.unpack(self.theta, copy=False)
        self._exposed = tuple(self.parameters[key] for key in self.schema.keys)
        self.__dict__.setdefault("batch_norm_epsilon", 1e-5)
        self._thetas = {self.dtype: self._predicting()}
        self._local = threading.local()

    def owns(self, arrays):
        """Whether ``arrays`` (in :attr:`schema`'s order) are the views this network gave out."""
        exposed = self._exposed
        return len(arrays) == len(exposed) and all(a is b for a, b in zip(arrays, exposed))

    def sync(self, parameters):
        """Make ``theta`` hold ``parameters`` (a dict): nothing when they are this network's
        views, else pack them (a model whose arrays were replaced or unpickled)."""
        keys = self.schema.keys
        if len(parameters) == len(keys) and self.owns(
                tuple(parameters.get(key) for key in keys)):
            return
        self._pack(parameters)

    def layers(self):
        """``[(W1, b1, g), ..., (WL, bL, output)]``: the course's arrays (views; with batch
        norm, the folded dense network's new arrays) and each layer's activation, for
        export."""
        L = len(self.dims) - 1
        parameters = (self.dense_parameters() if self.schema.has_batch_norm
                      else self.parameters)
        return [(parameters[f"W{l}"], parameters[f"b{l}"],
                 self.hidden_activation if l < L else self.output_activation)
                for l in range(1, L + 1)]

    # -- prediction ----------------------------------------------------------

    def probabilities(self, X, rows=False, argument="X"):
        """``A_L`` of the network on ``X`` (checked by the caller: 2-D, ``n_x`` rows or, with
        ``rows``, columns, at least one example; float32 or float64; a SciPy sparse ``X``
        too, checked finite by the caller: the first product over its nonzeros), after
        checking that a dense ``X`` is finite (else ``ValueError`` naming ``argument``, as
        :func:`~fastbackprop.validation.check_finite` says it).

        Columns: ``X`` ``(n_x, m)`` gives ``(n_L, m)``; rows: ``X`` ``(m, n_x)`` gives
        ``(m, n_L)``, a new C array either way. Computed in the dtype NumPy promotes ``X``
        and the parameters to.
        """
        dtype = np.result_type(X.dtype, self.dtype)
        if is_sparse(X):
            return self._sparse(X, rows, dtype)
        if self.backend != "numba":
            check_finite(X, argument)
            return self._reference(X, rows, dtype)
        from .kernels.convert import as_kernel_array

        AL = self._compiled(as_kernel_array(X, dtype), rows)
        if AL is None:
            check_finite(X, argument)  # raises
        return AL

    def fast_probabilities(self, X, rows=False):
        """``A_L`` as :meth:`probabilities` gives it, when ``X`` can go to the compiled kernel
        as it is: an ndarray (not a subclass) of :attr:`dtype`, C-contiguous, writeable and
        aligned, 2-D with ``n_x`` rows (``rows``: columns) and at least one example, and
        finite. Else ``None``, nothing computed: the caller then checks ``X`` in full (and
        raises its own message for what is wrong).

        The fast path of single-example prediction: these checks cost a fraction of a
        microsecond, finiteness is checked inside the compiled call, and the call goes
        straight to the compiled entry point (:class:`_Predictor`). On the NumPy backend
        the same checks, then finiteness, then the reference's forward pass (the
        caller's full checks skipped: about 100 us of scikit-learn's ``validate_data``
        for one row).
        """
        if type(X) is not np.ndarray or X.ndim != 2:
            return None
        flags = X.flags
        if (X.dtype != self.dtype or X.shape[1 if rows else 0] != self.dims[0]
                or X.shape[0 if rows else 1] == 0 or not flags.c_contiguous
                or not flags.writeable or not flags.aligned):
            return None
        if self.backend != "numba":
            if not np.isfinite(X).all():
                return None
            return self._reference(X, rows, self.dtype)
        return self._compiled(X, rows)

    def _compiled(self, X, rows):
        """``A_L`` by the compiled kernel on ``X`` (a C-contiguous writeable aligned array of
        the dtype it computes in), or None when ``X`` is not finite."""
        predictors = getattr(self._local, "predictors", None)
        if predictors is None:
            predictors = self._local.predictors = {}
        key = (rows, X.dtype.char)
        predictor = predictors.get(key)
        if predictor is None:
            predictor = predictors[key] = _Predictor(self, rows, X.dtype)
        return predictor(X)

    def _sparse(self, X, rows, dtype):
        """:meth:`probabilities` of a SciPy sparse ``X`` (checked by the caller): the first
        layer's product over its nonzeros, on either backend."""
        from . import sparse

        if self.backend != "numba":
            return self._reference(sparse.check_sparse_X(X.T if rows else X, dtype=dtype),
                                   False, dtype, transpose=rows)
        from .kernels import training
        from .kernels.convert import call_specialised
        from .kernels.sparse import SparseRows

        data = sparse.rows(X, dtype, examples_as_rows=rows)
        m = data.m
        inp = SparseRows(np.asarray(data.indptr, dtype=np.int64), data.indices, data.values,
                         np.zeros(self.dims[1], dtype=dtype))
        work = training.workspace(self.dims, m, dtype, 0)
        # the sparse kernels read W1's slot as W1^T: made per call (n_1 n_x copies), not
        # kept, since the views may be written between calls
        theta = sparse.first_layer_transposed(self.theta_as(dtype), self.dims)
        call_specialised(training.predict, theta, inp, m, np.asarray(self.dims, dtype=np.int64),
                         spec.ACTIVATIONS[self.hidden_activation].code,
                         spec.OUTPUTS[self.output_activation].code, work)
        acts, n_L = work.acts, self.dims[-1]
        start = work.offsets[len(self.dims) - 2, 2]
        AL = acts[start:start + n_L * m].reshape(n_L, m)
        return AL.T.copy() if rows else AL.copy()

    def _reference(self, X, rows, dtype, transpose=None):
        from . import reference

        parameters = {k: v.astype(dtype, copy=False) for k, v in self.parameters.items()}
        if transpose is None:
            X, transpose = np.asarray(X.T if rows else X, dtype=dtype), rows
        AL, _ = reference.L_model_forward(X, parameters, self.hidden_activation,
                                          self.output_activation,
                                          batch_norm_epsilon=self.batch_norm_epsilon)
        return np.ascontiguousarray(AL.T) if transpose else AL

    def theta_as(self, dtype):
        """``theta`` in ``dtype`` (itself for the fitted dtype; a copy kept for the other)."""
        theta = self._thetas.get(dtype)
        if theta is None:
            theta = self._thetas[dtype] = self._thetas[self.dtype].astype(dtype)
        return theta


class _Predictor:
    """One thread's compiled prediction for one input form and dtype: everything a call
    needs but ``X``, resolved once (the packed parameters in the dtype, the layer sizes,
    the activation codes, a workspace (:data:`KEPT_WORKSPACE`, :data:`KEPT_BYTES`; for rows
    one tile, :data:`PREDICT_TILE`, at most) and, after the
    first call, the compiled entry point of ``kernels.training.predict_into``, called
    directly: no dispatch on the arguments' types, which are the same by construction).

    Calling it with ``X`` (``(n_x, m)``, or ``(m, n_x)`` for ``rows``; C-contiguous,
    writeable, aligned, of ``dtype``) returns ``A_L`` ``(n_L, m)`` (``(m, n_L)``), a new
    array, or None when ``X`` is not finite. A thread's own, so its workspace is too.
    """

    __slots__ = ("rows", "dtype", "n_L", "arguments", "work", "capacity", "entry", "tile")

    def __init__(self, network, rows, dtype):
        from . import spec as names
        from .kernels.first_layer import COLUMNS, ROWS
        from .kernels.training import workspace

        self.rows = rows
        self.dtype = np.dtype(dtype)
        self.n_L = network.dims[-1]
        self.arguments = (network.theta_as(self.dtype), ROWS if rows else COLUMNS,
                          np.asarray(network.dims, dtype=np.int64),
                          names.ACTIVATIONS[network.hidden_activation].code,
                          names.OUTPUTS[network.output_activation].code)
        self.capacity = KEPT_WORKSPACE
        self.tile = PREDICT_TILE if rows else 1 << 62
        self.work = workspace(network.dims, self.capacity, self.dtype, 0)
        self.entry = None

    def __call__(self, X):
        m = X.shape[0] if self.rows else X.shape[1]
        columns = min(m, self.tile)  # the workspace holds one tile
        work = self.work if columns <= self.capacity else self._workspace(columns)
        out = np.empty((m, self.n_L) if self.rows else (self.n_L, m), self.dtype)
        theta, form, dims, hidden, output = self.arguments
        args = (theta, X, form, dims, hidden, output, work.acts, work.cols, work.offsets, out,
                self.tile)
        entry = self.entry
        if entry is None:
            finite = self._first_call(args)
        else:
            finite = entry(*args)
        return out if finite else None

    def _workspace(self, m):
        """A workspace for a batch of ``m`` examples, more than the kept one holds: the kept
        one, grown, when its activations fit in :data:`KEPT_BYTES`, else one for this call."""
        from .kernels.training import workspace

        dims = self.arguments[2]
        work = workspace(dims, m, self.dtype, 0)
        if int(dims[1:].sum()) * m * self.dtype.itemsize <= KEPT_BYTES:
            self.work, self.capacity = work, m
        return work

    def _first_call(self, args):
        """Through ``call_specialised``, which compiles the kernel or finds it (the on-disk
        cache) and keeps its entry point, taken here for the next calls."""
        from .kernels import training
        from .kernels.convert import call_specialised, entry_point

        finite = call_specialised(training.predict_into, *args)
        self.entry = entry_point(training.predict_into, *args)
        return finite
