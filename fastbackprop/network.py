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
(``kernels.training.predict``) through its cached entry point, with the
examples as columns ``(n_x, m)`` or, for the scikit-learn classes, as rows
``(m, n_x)`` (no transposed copy of ``X``: the first product reads the rows),
into a workspace kept per thread for small batches.

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
from .validation import FLOAT_DTYPES

#: Batches of at most this many examples predict into a workspace kept per thread
#: (larger ones allocate theirs): single examples cost little more than the arithmetic.
KEPT_WORKSPACE = 256


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

    def probabilities(self, X, rows=False):
        """``A_L`` of the network on ``X`` (checked by the caller: finite, 2-D, ``n_x`` rows
        or, with ``rows``, columns; float32 or float64).

        Columns: ``X`` ``(n_x, m)`` gives ``(n_L, m)``; rows: ``X`` ``(m, n_x)`` gives
        ``(m, n_L)``, a new C array either way. Computed in the dtype NumPy promotes ``X``
        and the parameters to.
        """
        dtype = np.result_type(X.dtype, self.dtype)
        if self.backend != "numba":
            return self._reference(X, rows, dtype)
        from .kernels.convert import as_kernel_array

        X = as_kernel_array(X, dtype)
        m = X.shape[0] if rows else X.shape[1]
        work = self._workspace(m, dtype)
        entry = self._entry(rows, dtype)
        theta = self._theta(dtype)
        inp = self._form(rows)(X)
        if entry is None:
            self._compile(rows, dtype, theta, inp, m, work)
        else:
            entry(theta, inp, m, self._dims, *self._codes, work)
        acts, n_L = work.acts, self.dims[-1]
        start = work.offsets[len(self.dims) - 2, 2]
        AL = acts[start:start + n_L * m].reshape(n_L, m)
        return AL.T.copy() if rows else AL.copy()

    def _reference(self, X, rows, dtype):
        from . import reference

        parameters = {k: v.astype(dtype, copy=False) for k, v in self.parameters.items()}
        AL, _ = reference.L_model_forward(np.asarray(X.T if rows else X, dtype=dtype),
                                          parameters, self.hidden_activation,
                                          self.output_activation,
                                          batch_norm_epsilon=self.batch_norm_epsilon)
        return np.ascontiguousarray(AL.T) if rows else AL

    def _theta(self, dtype):
        theta = self._thetas.get(dtype)
        if theta is None:
            theta = self._thetas[dtype] = self._thetas[self.dtype].astype(dtype)
        return theta

    @staticmethod
    def _form(rows):
        from .kernels.first_layer import Columns, Rows

        return Rows if rows else Columns

    @property
    def _codes(self):
        return (spec.ACTIVATIONS[self.hidden_activation].code,
                spec.OUTPUTS[self.output_activation].code)

    @property
    def _dims(self):
        dims = getattr(self._local, "dims", None)
        if dims is None:
            dims = self._local.dims = np.asarray(self.dims, dtype=np.int64)
        return dims

    def _workspace(self, m, dtype):
        """A workspace for ``m`` examples: this thread's kept one for small batches."""
        from .kernels.training import workspace

        if m > KEPT_WORKSPACE:
            return workspace(self.dims, m, dtype, 0)
        kept = getattr(self._local, "workspaces", None)
        if kept is None:
            kept = self._local.workspaces = {}
        work = kept.get(dtype)
        if work is None:
            work = kept[dtype] = workspace(self.dims, KEPT_WORKSPACE, dtype, 0)
        return work

    def _entry(self, rows, dtype):
        entries = getattr(self._local, "entries", None)
        return None if entries is None else entries.get((rows, dtype))

    def _compile(self, rows, dtype, theta, inp, m, work):
        """The first call for this form and dtype: through ``call_specialised``, which
        compiles or finds the entry point; kept for the next calls, whose argument types
        are the same by construction (C-contiguous writeable arrays of ``dtype``)."""
        from .kernels import training
        from .kernels.convert import call_specialised, entry_point

        args = (theta, inp, m, self._dims, *self._codes, work)
        call_specialised(training.predict, *args)
        entries = getattr(self._local, "entries", None)
        if entries is None:
            entries = self._local.entries = {}
        entries[(rows, dtype)] = entry_point(training.predict, *args)
