"""The parameters of a network, described once: which arrays each layer has, their shapes, and
where each lies in the flat vector ``theta`` the trainers update.

A layer's parameters are *kinds* (:data:`KINDS`): ``W{l}`` ``(n_l, n_{l-1})`` and
``b{l}`` ``(n_l, 1)`` (a dense layer, :data:`DENSE`), or, in a hidden layer with batch
normalisation (:data:`BATCH_NORM`), ``W{l}``, ``gamma{l}``, ``beta{l}`` ``(n_l, 1)`` (``b{l}``
is dropped: ``beta{l}`` takes its place) and the running averages of the batch statistics
``running_mean{l}``, ``running_var{l}`` ``(n_l, 1)``, which prediction uses and the optimiser
does not train (their gradient is always 0, so no optimiser moves them; the trainers
overwrite them after each step). A kind says its shape from the layer's sizes and whether
the optimiser trains it. :class:`Schema` lists each layer's kinds for a network
``dims = [n_x, n_1, ..., n_L]`` and is what everything that packs, unpacks, checks, saves,
loads or continues parameters reads: the kernels' and Dask's flat buffers
(:meth:`Schema.pack`, :meth:`Schema.unpack`, :func:`layer_offsets`), the reference's
gradient check (``parameters_to_vector``), the checks of a parameters dict
(:meth:`Schema.of`, :func:`fastbackprop.validation.check_parameters`), the Model's files.

The flat layout, layer by layer, each layer's kinds in :data:`KINDS`' order, each array
row-major::

    theta = [W1 (row-major), b1, W2, b2, ..., WL, bL]
    (a batch-normalised layer l: W{l}, gamma{l}, beta{l}, running_mean{l}, running_var{l})

Gradients (``dW``, ``db``) and the optimisers' state slots use the same layout.

This module needs NumPy only.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class Kind(NamedTuple):
    """One kind of per-layer parameter: ``shape(n_l, n_prev)``; ``trained`` by the optimiser."""

    shape: Callable
    trained: bool = True


#: name -> :class:`Kind`, in the order a layer's parameters lie in ``theta``.
KINDS = {
    "W": Kind(lambda n, n_prev: (n, n_prev)),
    "b": Kind(lambda n, n_prev: (n, 1)),
    "gamma": Kind(lambda n, n_prev: (n, 1)),
    "beta": Kind(lambda n, n_prev: (n, 1)),
    "running_mean": Kind(lambda n, n_prev: (n, 1), trained=False),
    "running_var": Kind(lambda n, n_prev: (n, 1), trained=False),
}

#: A dense layer's kinds: ``Z = W A_prev + b``.
DENSE = ("W", "b")

#: A hidden layer with batch normalisation: ``Z = W A_prev``, normalised per unit over the
#: batch, then ``gamma Z_hat + beta``; the running statistics for prediction.
BATCH_NORM = ("W", "gamma", "beta", "running_mean", "running_var")

#: The values a batch-normalised layer's arrays start from: ``gamma = 1``, ``beta = 0``,
#: running mean 0 and running variance 1 (PyTorch's and Keras's starting point).
BATCH_NORM_START = {"gamma": 1.0, "beta": 0.0, "running_mean": 0.0, "running_var": 1.0}


def layer_kinds(n_layers, batch_norm=None):
    """The kinds of each of ``n_layers`` layers: :data:`BATCH_NORM` where ``batch_norm``
    (None, or one bool per hidden layer, ``n_layers - 1`` of them) says so, else
    :data:`DENSE` (the output layer is always dense)."""
    flags = tuple(batch_norm or ()) + (False,) * (n_layers - len(tuple(batch_norm or ())))
    return tuple(BATCH_NORM if flag else DENSE for flag in flags[:n_layers])


class Entry(NamedTuple):
    """One array of the schema: ``key`` (``"W2"``), ``kind``, ``layer`` (from 1), its
    ``shape`` and its ``start`` in ``theta``."""

    key: str
    kind: str
    layer: int
    shape: tuple
    start: int

    @property
    def size(self):
        return self.shape[0] * self.shape[1]


class Schema:
    """The parameters of the network ``dims`` ``[n_x, n_1, ..., n_L]``, each layer with
    ``kinds`` (default :data:`DENSE`): :attr:`entries` (one :class:`Entry` per array, in
    ``theta``'s order), :attr:`size` (entries of ``theta``), :attr:`keys`."""

    def __init__(self, dims, kinds=None):
        self.dims = [int(n) for n in dims]
        L = len(self.dims) - 1
        self.kinds = tuple(kinds) if kinds is not None else (DENSE,) * L
        if len(self.kinds) != L:
            raise ValueError(f"kinds must name the parameters of each of the {L} layers; "
                             f"got {len(self.kinds)}")
        entries, start = [], 0
        for l in range(1, L + 1):
            for kind in self.kinds[l - 1]:
                shape = KINDS[kind].shape(self.dims[l], self.dims[l - 1])
                entries.append(Entry(f"{kind}{l}", kind, l, shape, start))
                start += shape[0] * shape[1]
        self.entries = tuple(entries)
        self.size = start
        # (key, start, stop, shape) of each entry: what unpack slices, read once per step
        self._spans = tuple((e.key, e.start, e.start + e.size, e.shape) for e in entries)
        self.keys = tuple(e.key for e in entries)

    @property
    def batch_norm(self):
        """One bool per hidden layer: whether it is batch-normalised."""
        return tuple(kinds == BATCH_NORM for kinds in self.kinds[:-1])

    @property
    def has_batch_norm(self):
        """Whether any layer is batch-normalised."""
        return any(self.batch_norm)

    def __eq__(self, other):
        return isinstance(other, Schema) and (self.dims, self.kinds) == (other.dims, other.kinds)

    def __repr__(self):
        return f"Schema({self.dims})"

    @classmethod
    def of(cls, parameters, argument="parameters"):
        """The schema of a parameters dict, every shape checked (:func:`dims_of`)."""
        dims = dims_of(parameters, argument)
        return cls(dims, kinds_of(parameters, len(dims) - 1))

    def pack(self, parameters, dtype, out=None):
        """``theta``: every array of ``parameters`` flattened in order, into ``out`` (a flat
        array of :attr:`size`) or a new C array of ``dtype``."""
        theta = np.empty(self.size, dtype=dtype) if out is None else out
        for e in self.entries:
            theta[e.start:e.start + e.size] = np.asarray(parameters[e.key]).reshape(-1)
        return theta

    def unpack(self, theta, copy=True, prefix=""):
        """The dict of ``theta``'s arrays (keys ``prefix + key``): copies, or views when not
        ``copy``."""
        if copy:
            return {prefix + key: theta[a:b].reshape(shape).copy()
                    for key, a, b, shape in self._spans}
        return {prefix + key: theta[a:b].reshape(shape) for key, a, b, shape in self._spans}

    def mask(self, kind):
        """A boolean mask of ``theta``'s entries that belong to arrays of ``kind`` (``"W"``:
        the weights, which L2 penalises)."""
        mask = np.zeros(self.size, dtype=bool)
        for e in self.entries:
            if e.kind == kind:
                mask[e.start:e.start + e.size] = True
        return mask

    def trained_mask(self):
        """A boolean mask of ``theta``'s entries the optimiser trains (not the running
        statistics)."""
        mask = np.zeros(self.size, dtype=bool)
        for e in self.entries:
            if KINDS[e.kind].trained:
                mask[e.start:e.start + e.size] = True
        return mask


def kinds_of(parameters, L):
    """Each of the ``L`` layers' kinds in a parameters dict: :data:`BATCH_NORM` where
    ``gamma{l}`` is a key, else :data:`DENSE`."""
    return tuple(BATCH_NORM if f"gamma{l}" in parameters else DENSE for l in range(1, L + 1))


def dims_of(parameters, argument="parameters"):
    """``[n_x, n_1, ..., n_L]`` of a parameters dict, every shape checked against its layers'
    kinds (:data:`DENSE`, or :data:`BATCH_NORM` for a hidden layer with ``gamma{l}``)
    (``ValueError``/``TypeError`` naming ``argument``, the key, its shape and the expected
    one)."""
    if not isinstance(parameters, dict):
        raise TypeError(f"{argument} must be a dict {{'W1': ..., 'b1': ..., ...}}; "
                        f"got {type(parameters).__name__}")
    L = sum(1 for key in parameters if isinstance(key, str) and key[:1] == "W"
            and key[1:].isdigit())
    kinds = kinds_of(parameters, L)
    expected_keys = {f"{kind}{l}" for l in range(1, L + 1) for kind in kinds[l - 1]}
    if L < 1 or set(parameters) != expected_keys or kinds[-1] != DENSE:
        raise ValueError(f"{argument} must hold W1, b1, ..., WL, bL for some L >= 1 (a "
                         "batch-normalised hidden layer l: W{l}, gamma{l}, beta{l}, "
                         f"running_mean{{l}}, running_var{{l}} in place of b{{l}}); "
                         f"got keys {sorted(parameters, key=str)}")
    dims = None
    for l in range(1, L + 1):
        W = np.asarray(parameters[f"W{l}"])
        vectors = [kind for kind in kinds[l - 1] if kind != "W"]
        arrays = {kind: np.asarray(parameters[f"{kind}{l}"]) for kind in vectors}
        for name, arr in ((f"W{l}", W), *((f"{k}{l}", a) for k, a in arrays.items())):
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"{argument}['{name}'] must be a real numeric array; "
                                f"got dtype {arr.dtype}")
        if W.ndim != 2 or W.shape[0] == 0 or W.shape[1] == 0:
            raise ValueError(f"{argument}['W{l}'] must be a 2-D array (n_{l}, n_{l - 1}); "
                             f"got shape {W.shape}")
        if dims is None:
            dims = [W.shape[1]]
        elif W.shape[1] != dims[-1]:
            raise ValueError(f"{argument}['W{l}'] must have shape (n_{l}, {dims[-1]}) to "
                             f"follow W{l - 1}; got shape {W.shape}")
        for kind, arr in arrays.items():
            if arr.shape != (W.shape[0], 1):
                raise ValueError(f"{argument}['{kind}{l}'] must have shape ({W.shape[0]}, 1) "
                                 f"to match W{l}; got shape {arr.shape}")
        dims.append(W.shape[0])
    return dims


def n_parameters(dims):
    """The number of entries of ``W1, b1, ..., WL, bL`` for ``dims = [n_x, ..., n_L]``."""
    return Schema(dims).size


def pack(parameters, dims, dtype):
    """Flatten ``W1, b1, ..., WL, bL`` (row-major) into one new C array of ``dtype``."""
    return Schema(dims).pack(parameters, dtype)


def unpack(theta, dims):
    """Inverse of :func:`pack`: a dict of new arrays (copies, not views)."""
    return Schema(dims).unpack(theta)


def layer_offsets(dims, capacity, kinds=None):
    """The kernels' offsets ``(L + 1, 3)`` int64: start of ``W{l}``, ``b{l}`` in ``theta`` and
    of ``A{l}``'s slot of ``capacity`` columns, in row ``l - 1``; row ``L`` (past the end)
    holds the total sizes. ``kinds``: each layer's (default dense); for a batch-normalised
    layer the bias column is ``beta{l}``'s start (``gamma{l}`` just before it, the running
    statistics just after: :mod:`fastbackprop.kernels.batch_norm`).

    Computed in Python, once per buffer, and passed to the kernels: an array
    made inside the training loop compiles ``np.empty`` and its allocator
    into every cold first fit.
    """
    schema = Schema(dims, kinds)
    L = len(schema.dims) - 1
    offsets = np.zeros((L + 1, 3), dtype=np.int64)
    for e in schema.entries:
        if e.kind in ("W", "b", "beta"):
            offsets[e.layer - 1, 0 if e.kind == "W" else 1] = e.start
    offsets[L, 0] = offsets[L, 1] = schema.size
    n = np.asarray(schema.dims[1:], dtype=np.int64)
    offsets[1:, 2] = np.cumsum(n * capacity)
    return offsets
