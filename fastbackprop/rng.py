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

**The dropout mask** (:func:`dropout_mask`) of hidden layer ``l`` at update
``t`` keeps unit ``i`` of the batch's column ``j`` when
``key(seed, DROPOUT, t, l, i, j) >> 11 < floor(keep_prob * 2^53)``.
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
    if m < 2:
        return np.arange(m, dtype=np.int64)
    i = np.arange(m - 1, 0, -1, dtype=np.int64)
    j = (key(seed, SHUFFLE, epoch, i) % (i + 1).astype(np.uint64)).astype(np.int64)
    perm = list(range(m))  # the swaps on a list: 2.4x faster than on the array's items
    for a, b in zip(range(m - 1, 0, -1), j.tolist()):
        perm[a], perm[b] = perm[b], perm[a]
    return np.array(perm, dtype=np.int64)


def keep_threshold(keep_prob):
    """The integer form of ``keep_prob``: a unit is kept when ``key >> 11 < threshold``.

    ``key >> 11`` is uniform on ``0 .. 2^53 - 1``, so the keep rate is
    ``threshold / 2^53 = floor(keep_prob 2^53) / 2^53`` (``keep_prob = 1``
    keeps every unit). The comparison is on integers, identical in NumPy and
    in the kernels, whatever the dtype of the network.
    """
    return np.uint64(min(int(keep_prob * 2.0 ** 53), 1 << 53))


def dropout_mask(seed, t, layer, shape, keep_prob):
    """Inverted dropout's ``D`` for hidden layer ``layer`` at update ``t`` (from 1): 0/1 ``(n_l, m_b)``.

    ``D[i, j] = 1`` when ``key(seed, DROPOUT, t, layer, i, j) >> 11`` is
    below :func:`keep_threshold`: every unit ``i`` of every column ``j`` of
    the batch draws its own number, the same in both backends.
    """
    n, m = shape
    g = np.uint64(GOLDEN)
    rows = key(seed, DROPOUT, t, layer, np.arange(n, dtype=np.uint64))
    with np.errstate(over="ignore"):
        h = mix(rows[:, None] + np.arange(m, dtype=np.uint64)[None, :] + g)
    return (h >> np.uint64(11)) < keep_threshold(keep_prob)
