"""The threads of a fit: how many, their buffers, and running them.

A fit on ``P`` threads splits every batch's columns between them
(``training.gather_batch``): each thread runs the forward and backward
passes over its share into a gradient row of its own, then each sums the
rows over its share of the parameters and updates that share
(``training.step``), meeting the others at a spin barrier twice a step
(:mod:`.sync`). The threads live for a whole :meth:`Team.run` (a chunk of
epochs): ``P - 1`` Python threads are started, the caller runs thread 0,
and each is one nogil compiled call with no Python in between. Inside
:meth:`Team.keep` (a whole fit) they live from run to run instead
(:class:`.sync.Crew`), so a fit that runs one epoch a call does not start
and join threads every epoch.

While they run, BLAS is held to one thread (``threadpoolctl``) and put back
as it was afterwards, whatever happened: OpenBLAS's own threads, called
from two of ours at once, serialise the callers (10 to 25% slower than one
thread each) and, with a core busy, slow them down several times
(``tools/blas_two_threads.py``).

:func:`choose` picks ``P`` for a network and a batch: one thread when there
is too little work to split (the barriers and the split cost more than
they save), else the cores Numba may use (``numba.get_num_threads()``).
"""

from __future__ import annotations

import contextlib

import numpy as np

from .. import variants
from ..blas import blas_threads  # part of this module's API (in __all__)
from ..variants import MIN_COLUMNS, MIN_SHARE  # noqa: F401 - part of this module's API
from . import sync, training
from .units import Units

#: Bytes a team's shared rows are aligned to (two cache lines: no false sharing,
#: adjacent-line prefetch included).
ALIGN = 128


def cores():
    """The threads Numba may use (``numba.get_num_threads()``)."""
    import numba

    return numba.get_num_threads()


def choose(n_threads, dims, width, gram=False, batch_norm=False, dropout=False):
    """:func:`fastbackprop.variants.threads` with the cores Numba may use (:func:`cores`)."""
    return variants.threads(n_threads, dims, width, cores(), gram, batch_norm, dropout)


def aligned_zeros(shape, dtype):
    """A zeroed C array whose first entry is :data:`ALIGN`-byte aligned."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.zeros(n + ALIGN // dtype.itemsize, dtype=dtype)
    skip = (-raw.ctypes.data % ALIGN) // dtype.itemsize
    return raw[skip:skip + n].reshape(shape)


def padded(n, dtype):
    """``n`` rounded up to whole :data:`ALIGN`-byte rows of ``dtype``."""
    per = ALIGN // np.dtype(dtype).itemsize
    return -(-n // per) * per


def unit_firsts(n_1, P, dtype):
    """The first hidden unit of each of ``P`` threads in a step split by units, and ``n_1``
    after them: equal shares, cut at whole :data:`ALIGN`-byte lines of ``b1`` where the
    layer is wide enough (so that two threads' parameters do not share a line)."""
    per = ALIGN // np.dtype(dtype).itemsize
    cuts = [p * n_1 // P for p in range(P + 1)]
    if n_1 >= per * P:
        cuts = [min(n_1, padded(c, dtype)) if 0 < p < P else c for p, c in enumerate(cuts)]
    return cuts


def unit_spans(dims, firsts):
    """Each thread's share of the layout ``(P, n_L + 3, 2)`` in a step split by units (the
    units ``firsts[p] .. firsts[p + 1] - 1`` thread ``p``'s): its rows of ``W1``, its
    entries of ``b1``, its piece of each of ``W2``'s rows and, for thread 0, ``b2``."""
    from ..layout import layer_offsets

    n_x, n_1, n_L = dims
    offsets = layer_offsets(dims, 1)
    W1, b1, W2, b2 = offsets[0, 0], offsets[0, 1], offsets[1, 0], offsets[1, 1]
    P = len(firsts) - 1
    spans = np.zeros((P, n_L + 3, 2), dtype=np.int64)
    for p in range(P):
        lo, hi = firsts[p], firsts[p + 1]
        spans[p, 0] = W1 + lo * n_x, W1 + hi * n_x
        spans[p, 1] = b1 + lo, b1 + hi
        for i in range(n_L):
            spans[p, 2 + i] = W2 + i * n_1 + lo, W2 + i * n_1 + hi
        if p == 0:
            spans[p, n_L + 2] = b2, b2 + n_L
    return spans


def units_of(dims, first, stop, offsets, partials, dtype):
    """The :class:`.units.Units` of the thread owning the units ``first .. stop - 1``
    (``offsets``: its workspace's)."""
    n_x, n_1, n_L = (int(d) for d in dims)
    h = stop - first
    mine = np.array(offsets, dtype=np.int64)
    mine[0, 0] += first * n_x  # its rows of W1
    mine[0, 1] += first  # and of b1
    return Units(np.array([n_x, h, n_L], dtype=np.int64), mine,
                 np.zeros((n_L, h), dtype=dtype), np.zeros((n_L, 1), dtype=dtype),
                 np.zeros((n_L, h), dtype=dtype), first, n_1, partials)


class Team:
    """``P`` threads' buffers for one trainer: the :class:`.training.Team` they share and each
    one's :class:`.training.Own`.

    ``n``: the entries of the flat layout (``theta`` and, in Gram mode, ``D``);
    ``dims``; ``capacity``: the columns of the largest batch; ``rows``: the data are
    :class:`.training.RowData` (else columns: one thread only); ``n_x``, ``n_L``, ``m``;
    ``kinds``: each layer's parameter kinds (:class:`fastbackprop.layout.Schema`'s);
    ``costs``: the costs array of thread 0's workspace; ``batches``: the threads' batch
    buffers when the data need others than :class:`.training.Batches` (sparse data).
    """

    def __init__(self, P, n, dims, capacity, dtype, rows, m, kinds=None, batches=None,
                 by_units=False):
        self.P = P
        self.by_units = by_units
        self._crew = None  # the kept threads, inside keep()
        per = padded(n, dtype)
        grads = aligned_zeros((P, per), dtype)
        if by_units:
            firsts = unit_firsts(dims[1], P, dtype)
            spans = unit_spans(dims, firsts)
            partials = aligned_zeros((P, padded(dims[-1] * capacity, dtype)), dtype)
        else:
            bounds = [min(n, padded(p * n // P, dtype)) if 0 < p < P else p * n // P
                      for p in range(P + 1)]  # thread p's share: one span of whole lines
            spans = np.array([[[bounds[p], bounds[p + 1]]] for p in range(P)], dtype=np.int64)
        self.shared = training.Team(grads, aligned_zeros((P, ALIGN // 8), dtype), spans,
                                    sync.new_barrier(P) if P > 1 else None)
        # a thread's columns of the largest batch: split by units, all of them
        share = capacity if by_units else -(-capacity // P)
        self.own = []
        for p in range(P):
            work = training.workspace(dims, share, dtype, 0, kinds)._replace(grad=grads[p][:n])
            if batches is not None:
                own = batches[p]
            elif rows:
                own = training.Batches(
                    np.empty(share * dims[0], dtype=dtype),
                    np.empty(dims[-1] * share, dtype=dtype),
                    np.empty(share, dtype=dtype), np.arange(m, dtype=np.int64))
            else:
                own = None
            split = (units_of(dims, firsts[p], firsts[p + 1], work.offsets, partials, dtype)
                     if by_units else None)
            self.own.append(training.Own(work, own, split))

    def hold_labels(self, Y):
        """Full batches in order on :class:`.training.RowData`: put each thread's columns of
        ``Y`` ``(n_L, m)`` in its label buffer once, where the training loop reads them
        every step (a per-step gather of them cost ``chains`` 17 to 19 us of its 660 us
        step on two threads). Thread ``p``'s columns are ``p m // P`` up to ``(p + 1) m //
        P``, the split of :func:`.training.gather_batch`."""
        n_L, m = Y.shape
        for p, own in enumerate(self.own):
            lo, hi = (0, m) if self.by_units else (p * m // self.P, (p + 1) * m // self.P)
            own.batches.Y[:n_L * (hi - lo)].reshape(n_L, hi - lo)[...] = Y[:, lo:hi]

    @property
    def work(self):
        """Thread 0's workspace (its costs are the fit's)."""
        return self.own[0].work

    def reserve_costs(self, costs):
        """Give thread 0 the costs array ``costs``."""
        self.own[0] = self.own[0]._replace(work=self.own[0].work._replace(costs=costs))

    @contextlib.contextmanager
    def keep(self):
        """Keep the threads, and BLAS held to one thread, from run to run until the block
        ends (then the threads are joined and BLAS put back, whatever happened)."""
        if self.P == 1 or self._crew is not None:
            yield
            return
        with blas_threads(1), sync.Crew(self.P, self.shared.sync) as crew:
            self._crew = crew
            try:
                yield
            finally:
                self._crew = None

    def run(self, call):
        """``call(tid, own)`` on every thread at once (thread 0 in the caller); returns thread
        0's result. An error in any thread aborts the others and is raised once all have
        returned; BLAS is held to one thread meanwhile (more than one thread only)."""
        if self.P == 1:
            return call(0, self.own[0])
        sync.reset(self.shared.sync)
        if self._crew is not None:
            return self._crew.run(lambda tid: call(tid, self.own[tid]))[0]
        with blas_threads(1):
            results = sync.run_threads(lambda tid: call(tid, self.own[tid]), self.P,
                                       self.shared.sync)
        return results[0]


__all__ = ["choose", "cores", "Team", "blas_threads", "MIN_SHARE", "aligned_zeros", "padded"]
