"""The counter-based random numbers of :mod:`fastbackprop.rng`, compiled: the same bits.

``start(seed)`` is ``mix(seed + G)`` and ``absorb(h, w)`` is ``mix(h + w + G)``,
so ``key(seed, w1, w2, w3) = absorb(absorb(absorb(start(seed), w1), w2), w3)``.
All arithmetic is on uint64 and wraps, as in NumPy.
"""

from __future__ import annotations

import numpy as np

from .. import rng
from .._jit import jit

_G = np.uint64(rng.GOLDEN)
_M1 = np.uint64(rng.MIX1)
_M2 = np.uint64(rng.MIX2)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
# The streams' counters are int64, as every other counter absorbed (epochs, updates, layers,
# rows, columns): absorb is then compiled for one signature, not for a uint64 one too.
SHUFFLE = np.int64(rng.SHUFFLE)
DROPOUT = np.int64(rng.DROPOUT)


@jit
def mix(z):
    """splitmix64's finaliser of a uint64 (an int from Python is read as one)."""
    z = np.uint64(z)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit
def start(seed):
    """``mix(seed + G)``: the key of a seed before any counter."""
    return mix(np.uint64(seed) + _G)


@jit
def absorb(h, w):
    """``mix(h + w + G)``: one more counter ``w`` into the key ``h``."""
    return mix(np.uint64(h) + np.uint64(w) + _G)


@jit
def permute(perm, seed, epoch):
    """``perm`` := the column order of epoch ``epoch`` (``fastbackprop.rng.permutation``), in place."""
    m = perm.size
    for i in range(m):
        perm[i] = i
    h = absorb(absorb(start(seed), SHUFFLE), epoch)
    for i in range(m - 1, 0, -1):
        j = np.int64(absorb(h, i) % np.uint64(i + 1))
        perm[i], perm[j] = perm[j], perm[i]


_S11 = np.uint64(11)


@jit
def layer_key(seed, t, layer):
    """``key(seed, DROPOUT, t, layer)``: the dropout stream of one layer at one update."""
    return absorb(absorb(absorb(start(seed), DROPOUT), t), layer)


@jit
def kept(row_key, j, threshold):
    """Whether column ``j`` of the row whose key is ``row_key`` is kept (see ``rng.dropout_mask``)."""
    return (absorb(row_key, j) >> _S11) < threshold
