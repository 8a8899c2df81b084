"""Counter-based random numbers that the NumPy reference and the kernels draw alike.

Every random number in training is a pure function of the model's seed and
a few counters (a stream tag, the epoch, a column index, ...), computed
with the finaliser of splitmix64, a bijection of 64-bit integers:

    mix(z):  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
             z = (z ^ (z >> 27)) * 0x94D049BB133111EB
             return z ^ (z >> 31)                       (arithmetic modulo 2^64)

    key(seed, w1, ..., wk) = mix(...mix(mix(seed + G) + w1 + G)... + wk + G),  G = 0x9E3779B97F4A7C15

This module computes it in NumPy (vectorised over the last counter); the
kernels (``fastbackprop.kernels.rng``) compute the same bits in compiled
code, and the tests check that they agree bit for bit. So both backends,
and a user with this page, get the same shuffles.

**The shuffle of epoch e** (:func:`permutation`): start from ``0, ..., m-1``
and, for ``i = m-1`` down to 1, swap entries ``i`` and
``j = key(seed, SHUFFLE, e, i) mod (i + 1)`` (Fisher-Yates; the bias of the
modulo is below ``m / 2^64``).
"""

from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK = (1 << 64) - 1

#: Stream tags: the first counter of every key, one per use.
SHUFFLE = 1
DROPOUT = 2


def mix(z):
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def key(seed, *counters):
    """``key(seed, w1, ..., wk)`` as in the module's formula; the last counter may be an array."""
    g = np.uint64(GOLDEN)
    with np.errstate(over="ignore"):
        h = mix(np.uint64(int(seed) & MASK) + g)
        for w in counters:
            h = mix(h + np.asarray(w).astype(np.uint64) + g)
    return h


def permutation(m, seed, epoch):
    """The column order of epoch ``epoch``: an int64 permutation of ``0..m-1`` (see the module)."""
    perm = np.arange(m, dtype=np.int64)
    if m < 2:
        return perm
    i = np.arange(m - 1, 0, -1, dtype=np.int64)
    j = (key(seed, SHUFFLE, epoch, i) % (i + 1).astype(np.uint64)).astype(np.int64)
    for a, b in zip(i.tolist(), j.tolist()):
        perm[a], perm[b] = perm[b], perm[a]
    return perm
