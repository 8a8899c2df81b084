"""The parameters of a network, described once: which arrays each layer has, their shapes, and
where each lies in the flat vector ``theta`` the trainers update.

A layer's parameters are *kinds* (:data:`KINDS`): today ``W{l}`` ``(n_l, n_{l-1})`` and
``b{l}`` ``(n_l, 1)``; a kind says its shape from the layer's sizes and whether the
optimiser trains it. :class:`Schema` lists each layer's kinds for a network
``dims = [n_x, n_1, ..., n_L]`` and is what everything that packs, unpacks, checks, saves,
loads or continues parameters reads: the kernels' and Dask's flat buffers
(:meth:`Schema.pack`, :meth:`Schema.unpack`, :func:`layer_offsets`), the reference's
gradient check (``parameters_to_vector``), the checks of a parameters dict
(:meth:`Schema.of`, :func:`fastbackprop.validation.check_parameters`), the Model's files.

The flat layout, layer by layer, each layer's kinds in :data:`KINDS`' order, each array
row-major::

    theta = [W1 (row-major), b1, W2, b2, ..., WL, bL]

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
}

#: Every layer's kinds today.
DENSE = ("W", "b")


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
        self.keys = tuple(e.key for e in entries)

    def __eq__(self, other):
        return isinstance(other, Schema) and (self.dims, self.kinds) == (other.dims, other.kinds)

    def __repr__(self):
        return f"Schema({self.dims})"

    @classmethod
    def of(cls, parameters, argument="parameters"):
        """The schema of a parameters dict, every shape checked (:func:`dims_of`)."""
        return cls(dims_of(parameters, argument))

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
        out = {}
        for e in self.entries:
            view = theta[e.start:e.start + e.size].reshape(e.shape)
            out[prefix + e.key] = view.copy() if copy else view
        return out

    def mask(self, kind):
        """A boolean mask of ``theta``'s entries that belong to arrays of ``kind`` (``"W"``:
        the weights, which L2 penalises)."""
        mask = np.zeros(self.size, dtype=bool)
        for e in self.entries:
            if e.kind == kind:
                mask[e.start:e.start + e.size] = True
        return mask


def dims_of(parameters, argument="parameters"):
    """``[n_x, n_1, ..., n_L]`` of a parameters dict, every shape checked against the kinds
    of :data:`DENSE` (``ValueError``/``TypeError`` naming ``argument``, the key, its shape
    and the expected one)."""
    if not isinstance(parameters, dict):
        raise TypeError(f"{argument} must be a dict {{'W1': ..., 'b1': ..., ...}}; "
                        f"got {type(parameters).__name__}")
    L = len(parameters) // len(DENSE)
    expected_keys = {f"{kind}{l}" for l in range(1, L + 1) for kind in DENSE}
    if L < 1 or set(parameters) != expected_keys:
        raise ValueError(f"{argument} must hold W1, b1, ..., WL, bL for some L >= 1; "
                         f"got keys {sorted(parameters)}")
    dims = None
    for l in range(1, L + 1):
        W = np.asarray(parameters[f"W{l}"])
        b = np.asarray(parameters[f"b{l}"])
        for name, arr in ((f"W{l}", W), (f"b{l}", b)):
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
        if b.shape != (W.shape[0], 1):
            raise ValueError(f"{argument}['b{l}'] must have shape ({W.shape[0]}, 1) to "
                             f"match W{l}; got shape {b.shape}")
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


def layer_offsets(dims, capacity):
    """The kernels' offsets ``(L + 1, 3)`` int64: start of ``W{l}``, ``b{l}`` in ``theta`` and
    of ``A{l}``'s slot of ``capacity`` columns, in row ``l - 1``; row ``L`` (past the end)
    holds the total sizes.

    Computed in Python, once per buffer, and passed to the kernels: an array
    made inside the training loop compiles ``np.empty`` and its allocator
    into every cold first fit.
    """
    schema = Schema(dims)
    L = len(schema.dims) - 1
    offsets = np.zeros((L + 1, 3), dtype=np.int64)
    for e in schema.entries:
        offsets[e.layer - 1, DENSE.index(e.kind)] = e.start
    offsets[L, 0] = offsets[L, 1] = schema.size
    n = np.asarray(schema.dims[1:], dtype=np.int64)
    offsets[1:, 2] = np.cumsum(n * capacity)
    return offsets
