"""The compiled backend's trainer: whole-loop training in chunks, buffers allocated once."""

from __future__ import annotations

from contextlib import nullcontext
from typing import NamedTuple

import numpy as np

from .. import rng, spec, variants
from ..layout import Schema
from ..sparse import first_layer_transposed, is_sparse
from ..trainer_base import TrainerBase
from . import batch_norm, clock, gram as gram_mode, team, training
from .convert import (as_kernel_array, as_rows, call_specialised, common_dtype,
                      entry_point)
from .sparse import SparseRows


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    ``parameters``: the trained dict (the last with a finite cost when
    training diverged); ``costs``: the cost before the update of iterations
    ``0, cost_every, 2 cost_every, ...`` that were reached; ``n_iter``: the
    number of updates that produced ``parameters``; ``status``: ``"ok"``,
    ``"nonfinite_cost"`` or ``"nonfinite_update"``; ``failed_at``: the
    iteration where the cost or the update became non-finite, else None.
    """

    parameters: dict
    costs: np.ndarray
    n_iter: int
    status: str
    failed_at: int | None


class Trainer(TrainerBase):
    """Whole epochs in one compiled call, with every buffer allocated once.

    The interface and arguments of :class:`fastbackprop.trainer_base.TrainerBase`.
    Each :meth:`run` performs any number of epochs in one compiled call,
    allocating nothing: parameters and optimiser state are updated in place
    in one flat buffer ``[theta | v | s]`` (a second keeps what a failed step
    goes back to), activations and gradients have slots for one batch, and
    each mini-batch is gathered into a contiguous buffer, its examples as rows.

    ``gram``: train the first layer through the Gram matrix ``G = X^T X``
    (see :mod:`fastbackprop.kernels.gram`). Default (None): when
    :func:`.gram.applies` (full batches, plain gradient descent, no decay,
    ``n_x >= m`` and a long enough run).

    A SciPy sparse ``X`` trains on its nonzeros (:mod:`.sparse`): its CSR rows
    of ``X^T``, made once (:func:`fastbackprop.sparse.rows`), on one thread,
    without Gram mode, with ``W1^T`` in ``W1``'s slot of the buffers.

    Batch-normalised layers (the parameters' kinds, :class:`fastbackprop.layout.Schema`)
    train inside the compiled loop (:mod:`.batch_norm`), on one thread and without Gram
    mode (and not yet on sparse ``X``).
    """

    def _setup(self, parameters, X, Y, dtype, max_epochs, optimizer_state, gram):
        o = self.options
        #: Whether X is sparse: W1's slot then holds W1^T (see kernels/sparse.py).
        self.sparse = is_sparse(X)
        self._schema = Schema.of(parameters)
        normalised = self._schema.batch_norm
        if gram and any(normalised):
            raise ValueError("gram=True: Gram mode has no batch norm; pass gram=None or False")
        if self.sparse and any(normalised):
            raise ValueError("X: batch norm does not train on sparse X on the compiled backend "
                             "yet; pass a dense X (X.toarray()), batch_norm=False or "
                             "backend='numpy'")
        if dtype is None:
            dtype = common_dtype(X=np.empty(0, X.dtype) if self.sparse else X, **parameters)
        self.dtype = np.dtype(dtype)
        f = self.dtype.type
        learning_rate = _learning_rate(o.learning_rate, self.dtype)
        n_x, m = np.shape(X)
        w = (np.ones(m, dtype=self.dtype) if self._sample_weight is None
             else self._sample_weight.astype(self.dtype))
        # one batch of every column in order is the full batch: trained as one
        full = o.batch_size is None or (o.batch_size >= m and not o.shuffle)
        width = m if full else min(o.batch_size, m)
        linear_update = o.optimizer == "gd" and o.decay_rate == 0 and o.l2 == 0
        if self.sparse and gram:
            raise ValueError("gram=True: sparse X trains on its nonzeros, without Gram mode; "
                             "pass None or False")
        if self.sparse:
            gram = False
        elif gram is None:
            gram = (not any(normalised)
                    and gram_mode.applies(self.dims, m, full, linear_update, max_epochs))
        elif gram and not (full and linear_update):
            raise ValueError("gram=True needs full batches (batch_size=None) and plain gradient "
                             "descent (optimizer='gd', decay_rate=0, l2=0)")
        #: The threads each step is split between (:func:`.team.choose`).
        dropout = any(k < 1 for k in self.keep_prob)
        self.n_threads = 1 if self.sparse else team.choose(o.n_threads, self.dims, width,
                                                           bool(gram), any(normalised), dropout)
        rows = self.n_threads > 1 or not full
        batches = None
        if self.sparse:
            self._data, batches = _sparse_data(X, Y, w, self.dims, width, self.dtype)
        elif rows:  # examples as rows: a thread's share, or a gathered batch, is contiguous
            self._data = training.RowData(as_rows(X, self.dtype, team.cores()),
                                          as_rows(Y, self.dtype), w)
        else:
            X = as_kernel_array(X, self.dtype)
            self._data = training.Data(X, as_kernel_array(Y, self.dtype), w)
        self._hyper = training.Hyper(
            learning_rate, o.cost_every, f(o.beta), f(o.beta1), f(o.beta2), f(o.epsilon),
            f(o.decay_rate), o.time_interval or 0, 0 if full else width, o.shuffle,
            np.uint64(o.seed))
        # Unused parts are None, so that their code is not compiled (training.train).
        self._parts = training.Parts(
            gram=gram_mode.make(bool(gram), X, self.dims[1], self.dtype),
            l2=f(o.l2) if o.l2 != 0 else None,
            dropout=None if not dropout else training.Dropout(
                np.array(self.keep_prob, dtype=self.dtype),
                np.array([rng.keep_threshold(k) for k in self.keep_prob], dtype=np.uint64),
                np.uint64(o.seed)),
            batch_norm=batch_norm.make(normalised, self.dims, width, self.dtype,
                                       o.batch_norm_momentum, o.batch_norm_epsilon))
        self._n_parameters = self._schema.size
        # [theta | D] (Gram mode's D) and each optimiser slot on whole cache lines of their
        # own, so that where the threads' shares meet in one of them they meet at a line's
        # start in every one (a line two cores write moves between them at each write)
        n = team.padded(self._n_parameters + (self.dims[1] * m if self.gram else 0),
                        self.dtype)
        self._current = team.aligned_zeros(n * (1 + len(self.slots)), self.dtype)
        self._current[: self._n_parameters] = self._pack(parameters)
        for k, slot in enumerate(self.slots):
            if optimizer_state is not None:
                state = {key[1:]: value for key, value in optimizer_state[slot].items()}
                self._current[(k + 1) * n:(k + 1) * n + self._n_parameters] = self._pack(state)
        self._other = team.aligned_zeros(self._current.size, self.dtype)
        #: Whether a step is split between the threads by hidden units (else by columns).
        self.by_units = variants.by_units(self.dims, width, self.n_threads, dropout, bool(gram),
                                          any(normalised), self.sparse)
        self._team = team.Team(self.n_threads, n, self.dims, width, self.dtype, rows, m,
                               self._schema.kinds, batches=batches, by_units=self.by_units)
        if rows and full and not self.sparse:
            self._team.hold_labels(as_kernel_array(Y, self.dtype))
        self._dims = np.asarray(self.dims, dtype=np.int64)
        self._codes = o.codes
        self._entry = None  # training.train's compiled entry for this trainer's arguments
        self._have_previous = False  # does self._other hold the previous parameters?
        # Gram mode: P0 is to be computed (before the first run, after a fold); D is to be
        # folded into W1 before the parameters are read (after a run)
        self._gram_start, self._gram_unfolded = True, False
        if max_epochs is not None:
            self._reserve(self.n_iter + max_epochs)

    def threads_kept(self):
        """Keep the ``P`` threads (and BLAS held to one thread) from run to run until the
        block ends: a fit in many calls starts its threads once (:meth:`.team.Team.keep`)."""
        return self._team.keep()

    def clock_phases(self):
        """From the next run on, add each thread's cycles in each phase of a step to a clock
        (:mod:`.clock`), which this returns; ``tools/step_phases.py`` reads it. The fit
        compiles its variant with the counter's readings (the parameters do not change)."""
        self._parts = self._parts._replace(clock=clock.new(self.n_threads))
        self._entry = None  # the arguments' types changed
        return self._parts.clock

    def _learning_rate_changed(self):
        self._hyper = self._hyper._replace(
            learning_rate=_learning_rate(self.options.learning_rate, self.dtype))

    @property
    def gram(self):
        """Whether the first layer trains through the Gram matrix."""
        return self._parts.gram is not None

    def _reserve(self, n_epochs):
        costs = self._team.work.costs
        n_costs = -(-n_epochs // self.cost_every)
        if n_costs > costs.size:
            grown = np.full(max(n_costs, 2 * costs.size), np.nan, dtype=self.dtype)
            grown[: costs.size] = costs
            self._team.reserve_costs(grown)

    def _run(self, n_epochs):
        self._reserve(self.n_iter + n_epochs)
        # Gram mode keeps P0 and D from run to run: a fit in chunks pays P0 = W1 X and the
        # fold W1 += D X^T once, not per chunk (mlp: 3.5 ms a chunk)
        run = training.Run(self.n_iter, n_epochs, self.t, self._have_previous,
                           self._gram_start, False)
        self._gram_start, self._gram_unfolded = False, self.gram  # (even if the call raises)
        return self._call(run)

    def _fold(self):
        """Gram mode: ``W1 := W1 + D X^T``, ``D := 0`` in both buffers (a call of no epochs),
        so that they hold the parameters; the next run computes ``P0`` again."""
        if self._gram_unfolded:
            self._call(training.Run(self.n_iter, 0, self.t, self._have_previous, False, True))
            self._gram_start, self._gram_unfolded = True, False

    def _call(self, run):
        """One call of :func:`.training.train` for ``run``: ``(status, failed_at, t after)``."""
        current, other = self._current, self._other

        def call(tid, own):
            args = (tid, current, other, self._data, own, self._team.shared, self._hyper,
                    self._parts, self._dims, *self._codes, run)
            if self._entry is not None:  # the arguments' types never change (20 us a thread)
                return self._entry(*args)
            result = call_specialised(training.train, *args)
            self._entry = entry_point(training.train, *args)
            return result

        # A batch-normalised fit runs on one thread; held to it, BLAS does not fight the
        # loop (and other processes) for the second core: mnist128 epochs 0.92 s against
        # 4.2 s (medians, a loaded 2-core machine; tools/batch_norm_measure.py)
        hold = team.blas_threads(1) if self._parts.batch_norm is not None else nullcontext()
        try:
            with hold:
                status, _, updates, failed_at, in_other = self._team.run(call)
        except BaseException:
            self.status = "aborted"  # the buffers may hold part of a step: no more runs
            raise
        self._have_previous = self._have_previous or updates > 0
        if in_other:
            self._current, self._other = self._other, self._current
        return status, (None if failed_at < 0 else int(failed_at)), self.t + int(updates)

    def _pack(self, parameters):
        """``parameters`` (a dict) in the flat layout of the buffers (sparse: ``W1^T``)."""
        theta = self._schema.pack(parameters, self.dtype)
        return first_layer_transposed(theta, self.dims) if self.sparse else theta

    def _part(self, k):
        """Part ``k`` of the current buffer (0: theta, 1...: the slots) as a dict of arrays."""
        n = self._team.work.grad.size
        self._fold()
        part = self._current[k * n:k * n + self._n_parameters]
        if self.sparse:  # W1^T back to W1
            part = first_layer_transposed(part, [self.dims[1], self.dims[0]])
        return self._schema.unpack(part)

    @property
    def parameters(self):
        """A new dict of the current parameters (the last with a finite cost)."""
        return self._part(0)

    @property
    def optimizer_state(self):
        """The optimiser's state with :attr:`parameters`: ``{"v": {"dW1": ...}, ...}`` (new arrays)."""
        return {slot: {f"d{key}": value for key, value in self._part(k + 1).items()}
                for k, slot in enumerate(self.slots)}

    @property
    def costs(self):
        """The costs this trainer recorded (float64): epochs ``e % cost_every == 0`` reached."""
        first, end = self._recorded_slots()
        return self._team.work.costs[first:end].astype(np.float64)


def train(parameters, X, Y, hidden_activation="relu", learning_rate=0.0075,
          n_epochs=None, cost_every=100, dtype=None, gram=None, *, n_iterations=None,
          **options):
    """``n_epochs`` epochs of training (default 3000), all in one compiled call.

    parameters: the initial dict (not modified); X ``(n_x, m)``; Y
    ``(n_L, m)`` of labels; ``options``: the keyword arguments of
    :class:`Trainer` (``output_activation``, ``optimizer``, ``batch_size``,
    ...). Equals ``reference.L_layer_model`` with the same arguments to
    rounding (``n_iterations``, the course's name there, is accepted for
    ``n_epochs``: with full batches an iteration is an epoch). Returns a
    :class:`TrainResult` (``n_iter`` counts epochs).
    """
    if n_epochs is None:
        n_epochs = 3000 if n_iterations is None else n_iterations
    elif n_iterations is not None:
        raise TypeError("train: pass n_epochs or its old name n_iterations, not both")
    trainer = Trainer(parameters, X, Y, hidden_activation, learning_rate, cost_every, dtype,
                      max_epochs=n_epochs, gram=gram, **options)
    trainer.run(n_epochs)
    return TrainResult(trainer.parameters, trainer.costs, trainer.n_iter, trainer.status,
                       trainer.failed_at)


def gradient_sums(theta, X, Y, dims, hidden_activation="relu", output_activation="sigmoid",
                  sample_weight=None, work=None):
    """The raw gradient and cost sums of one block of columns, by the compiled passes.

    theta: flat parameters (:func:`.layout.pack`), float32 or float64; X
    ``(n_x, m_b)``, or :class:`.sparse.SparseRows` (then ``theta`` and ``grad`` hold
    ``W1^T`` in ``W1``'s slot); Y ``(n_L, m_b)`` of checked labels; dims ``[n_x, ...,
    n_L]``; ``sample_weight`` ``(m_b,)`` or None (ones). Returns ``(grad,
    loss)``: ``grad`` in ``theta``'s layout holds ``dZ A_prev^T`` and
    ``sum(dZ)`` summed over the block's columns, ``dZ_L = w (A_L - Y)``
    (divide by the whole batch's ``m`` after adding the blocks' sums),
    ``loss`` the sum of the block's per-example costs times their weights
    (NaN when ``Z_L`` is not finite). ``work``: a workspace of
    :func:`.training.workspace` for at least ``m_b`` columns, reused from
    call to call (``grad`` is then its buffer, overwritten by the next
    call), or None for a new one.
    """
    codes = (spec.code_of(spec.ACTIVATIONS, hidden_activation, "hidden_activation"),
             spec.code_of(spec.OUTPUTS, output_activation, "output_activation"))
    theta = np.ascontiguousarray(theta)
    dtype = theta.dtype
    if isinstance(X, SparseRows):  # its theta and grad hold W1^T in W1's slot
        m = X.indptr.size - 1
    else:
        X = as_kernel_array(X, dtype)
        m = X.shape[1]
    Y = as_kernel_array(Y, dtype)
    dims = np.asarray(dims, dtype=np.int64)
    w = (np.ones(m, dtype=dtype) if sample_weight is None
         else as_kernel_array(sample_weight, dtype))
    if work is None:
        work = training.workspace(dims, m, dtype, theta.size)
    total, loss = call_specialised(training.gradient_sums, theta, X, Y, w, dims, *codes, work)
    return work.grad, float(loss) if np.isfinite(total) else float("nan")


def _sparse_data(X, Y, w, dims, width, dtype):
    """A sparse fit's :class:`.sparse.SparseData` (``X`` sparse ``(n_x, m)``, ``Y`` ``(n_L,
    m)``, ``w`` ``(m,)``) and its thread's :class:`.sparse.SparseBatches` for batches of
    ``width`` examples."""
    from .. import sparse
    from . import sparse as kernels

    rows = sparse.rows(X, dtype, n_x=dims[0])
    indices, values = kernels.writeable(rows.indices), kernels.writeable(rows.values)
    data = kernels.SparseData(np.asarray(rows.indptr, dtype=np.int64), indices, values,
                              as_rows(Y, dtype), w)
    return data, [kernels.batch_buffers(data.indptr, width, dims[1], dims[-1], dtype,
                                        indices.dtype)]


def _learning_rate(learning_rate, dtype):
    """The learning rate in ``dtype``; ``ValueError`` when it is not finite there."""
    with np.errstate(over="ignore"):
        value = dtype.type(learning_rate)
    if not np.isfinite(value):
        raise ValueError(f"learning_rate {learning_rate:g} is not finite in {dtype}")
    return value
