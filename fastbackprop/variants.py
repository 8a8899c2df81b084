"""Which compiled variant a fit runs: Gram mode's rule and the threads' rule, without Numba.

The kernels' trainer (:mod:`fastbackprop.kernels.trainer`) takes both
decisions when it is built; ``fastbackprop train --backend auto``
(:mod:`fastbackprop.first_run`) takes the same ones before Numba is
imported, to name the kernels a run will load. Both read them here.
"""

from __future__ import annotations

#: A step is split between threads when each thread's share of its matrix products
#: is at least this many multiply-adds and of its columns at least :data:`MIN_COLUMNS`
#: (see :func:`threads`). Below, the barriers and the gradient rows and parameters
#: that cross between the cores cost more than the split saves. Measured on the 2-core
#: AVX2 EPYC with ``tools/thread_rule.py --min-time 0.2`` and fits of 0.2 to 0.5 s,
#: one thread against two in alternating rounds (docs/threads.md): two threads won
#: from 16 columns and about 200,000 multiply-adds a thread (digits32's network at
#: batch 32 1.30x, the drop-in's at 32 and 64 1.47x and 1.42x, ``chains``' narrow one
#: at 256 1.58x) and lost below (``chains``' at 32, 34,000 a thread: 0.55x; digits32's
#: at 16, 8 columns a thread: 0.89x). The earlier values, 64 columns and 32768, came
#: from timings of 5 to 20 ms, in which the second core's first milliseconds after
#: idling (it runs slow while it wakes) counted against two threads.
MIN_SHARE = 100_000
MIN_COLUMNS = 16

#: A batch of fewer than ``2 MIN_COLUMNS`` columns is split too, down to this many columns a
#: thread, where the work is large enough for so narrow a share (see :func:`threads`):
#: :data:`MIN_SHARE` multiply-adds a thread when the step is split by hidden units (only the
#: outputs cross between the cores), :data:`NARROW_SHARE` when it is split by columns.
#: Measured at batch 16 (8 columns a thread) on the 2-core AVX2 EPYC, fits of at least 0.2 s
#: on one and two threads in alternating rounds (``tools/thread_rule.py --widths 16``; the
#: host held a core at times), gain of two threads over one: by units ``[64, 64, 10]``
#: (113,000 a thread) 1.21x, ``[64, 100, 10]`` 1.10x, ``[256, 256, 10]`` 1.60x,
#: ``[784, 128, 10]`` 1.42x; by columns ``[40, 64, 64, 10]`` (175,000) 1.31x,
#: ``[100, 128, 64, 10]`` 1.31x to 1.35x, ``[128, 128, 128, 10]`` 1.19x, MNIST's
#: ``[784, 256, 128, 10]`` 1.25x (float32) to 1.45x; and ``small``'s ``[20, 64, 64, 1]``
#: (130,000) 0.79x and 0.98x, ``[64, 32, 10]`` (57,000) lost too.
NARROW_COLUMNS = 8
NARROW_SHARE = 200_000

#: A step of ``P`` threads on a network of one hidden layer is split by hidden units
#: (:mod:`fastbackprop.kernels.units`) instead of by the batch's columns when the batch
#: has at most this many columns a thread (see :func:`by_units`). Measured on the 2-core
#: AVX2 EPYC, both splits in one process in alternating rounds (docs/threads.md): by
#: units won at 16 and 8 columns a thread (``[64, 100, 10]`` at batch 32: 32.0 against
#: 38.3 us a step; at 16: 21.5 against 27.4; digits32's ``[64, 64, 10]`` at 32: 29.0
#: against 29.7) and lost at 32 (``[64, 64, 10]`` at 64: 47.8 against 42.6).
UNIT_COLUMNS = 16


def gram_applies(dims, m, full_batch, linear_update, max_epochs=None):
    """Whether Gram mode (:mod:`fastbackprop.kernels.gram`) is exact here and saves work.

    Exact only for ``full_batch`` training with a ``linear_update`` (plain
    gradient descent); worth it when ``n_x >= m`` (each step then saves at
    least half the first layer's work and ``G`` is no larger than ``X``)
    and, when ``max_epochs`` is known, when the work saved over the run
    exceeds the ``n_x m^2`` of ``G``.
    """
    n_x, n_1 = dims[0], dims[1]
    if not (full_batch and linear_update and n_x >= m):
        return False
    saved_per_step = n_1 * m * (2 * n_x - m)
    return max_epochs is None or max_epochs * saved_per_step > n_x * m * m


def threads(n_threads, dims, width, cores, gram=False, batch_norm=False, dropout=False,
            sparse=False):
    """The threads of a fit: ``n_threads`` when given, else (None) as many of ``cores`` (the
    threads Numba may use) as leave each thread at least :data:`MIN_COLUMNS` columns of
    a batch of ``width`` and :data:`MIN_SHARE` multiply-adds of its products, at least 1;
    where that is 1, two if that leaves each thread :data:`NARROW_COLUMNS` columns and
    :data:`MIN_SHARE` multiply-adds in a split by hidden units (:func:`by_units`, which
    ``dropout`` and ``sparse`` data rule out), :data:`NARROW_SHARE` in a split by columns
    (two at most: measured on two cores, and more would take threads from wider batches).
    Never more threads than the batch's columns, one in Gram mode (its products are the
    whole data's), and one with batch norm (its statistics are the whole batch's: a split
    batch would need a reduction between the threads inside each layer's pass)."""
    if gram or batch_norm or width < 2:
        return 1
    if n_threads is not None:
        return max(1, min(int(n_threads), width))
    multiply_adds = 3 * width * sum(a * b for a, b in zip(dims[:-1], dims[1:]))  # a step's
    P = _most_threads(min(cores, width // MIN_COLUMNS), multiply_adds, lambda P: MIN_SHARE)
    if P > 1:
        return P

    def narrow_share(P):
        units = by_units(dims, width, P, dropout, gram, batch_norm, sparse)
        return MIN_SHARE if units else NARROW_SHARE

    return _most_threads(min(cores, 2, width // NARROW_COLUMNS), multiply_adds, narrow_share)


def _most_threads(limit, multiply_adds, least_share):
    """The largest ``P <= limit`` whose share ``multiply_adds // P`` is at least
    ``least_share(P)``; 1 when there is none."""
    for P in range(limit, 1, -1):
        if multiply_adds // P >= least_share(P):
            return P
    return 1


def by_units(dims, width, P, dropout=False, gram=False, batch_norm=False, sparse=False):
    """Whether a step of ``P`` threads on batches of ``width`` columns is split by hidden
    units (:mod:`fastbackprop.kernels.units`: each thread runs the whole batch through its
    share of the units) rather than by columns. Only for one hidden layer of at least
    ``P`` units, without dropout, Gram mode, batch norm or sparse data, and when each
    thread's share of the columns would be at most :data:`UNIT_COLUMNS`: there a split by
    columns leaves each thread little work, and the gradients and parameters its update
    reads from the other cores cost more than the outputs a split by units exchanges."""
    return (P > 1 and len(dims) == 3 and dims[1] >= P and width <= UNIT_COLUMNS * P
            and not (dropout or gram or batch_norm or sparse))
