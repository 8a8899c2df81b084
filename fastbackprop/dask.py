"""Data-parallel training on Dask arrays: exact, fault-tolerant, on Dask's own scheduler.

The cost and its gradient are sums over the examples (the columns), so each
block of columns can compute its own raw sums, the sums are added, and the
update is the one a single machine makes::

    dW = (1/m) sum_blocks sum_{columns of the block} dZ A_prev^T      (likewise db, the cost)

:func:`fit` (which ``Model.fit`` calls for a Dask ``X`` or ``Y``) trains this
way on the workers of a ``distributed.Client``:

1. **The blocks are persisted once.** ``X`` and ``Y`` are aligned on the
   column chunks of ``X`` (``X`` gets one chunk of rows), and each block is
   checked (the one-machine ``fit``'s checks: rows, finiteness, labels),
   converted to the model's dtype, cut into C-contiguous tiles of
   :data:`TILE` columns, and kept in the memory of a worker: one task per
   block, block ``i`` placed (loosely) on worker ``i * n_workers //
   n_blocks`` of the sorted addresses.
2. **Each step** sends the flat parameters (``kernels.pack``'s layout, a few
   kilobytes) to the workers inside one task per block; each task returns
   one array, its raw ``dW``, ``db`` sums and its cost sum, from the
   compiled kernels (the serial ``nogil`` ones, tile by tile, into a
   workspace each worker thread allocates once). The block sums are added
   in a tree of fixed shape and order (fan-in :data:`FAN_IN`; its root is
   the client), divided by the batch's ``m``, and the optimiser's update
   runs once, on the client. The order of every sum is fixed, so two fits
   are bit-identical, and a full-batch fit equals the one-machine fit to
   rounding.
3. **Faults** are Dask's business: the persisted blocks and every step's
   tasks are keys of a graph, so when a worker dies its blocks are
   recomputed from the graph of ``X`` and ``Y`` and its tasks run again
   elsewhere; the sums, and so the parameters, are the same.

**Mini-batches** (``batch_size`` set) follow one rule that needs no data
movement between blocks (:func:`minibatch_columns` computes it): an epoch
has the one-machine number of steps, ``S = ceil(m / batch_size)``; in epoch
``e`` block ``i`` (``m_i`` columns) orders its columns by
``rng.permutation(m_i, block_seed(seed, i), e)`` (in order without
``shuffle``), and step ``k`` takes from every block the slice
``[k m_i // S, (k + 1) m_i // S)`` of that order. With equal blocks and
``batch_size`` a multiple of the number of blocks, every step takes
``batch_size / n_blocks`` columns from every block. Every column is used
once per epoch; the step's gradient is divided by its own number of
columns. Every block must hold at least ``S`` columns.

:func:`predict_proba` and :func:`predict` return lazy Dask arrays,
computed block by block with the backend's compiled prediction pass.

This module imports Dask; ``import fastbackprop`` does not import it (the
``Model`` imports this module only when it meets a Dask array). See
``docs/dask.md`` for the measured cost of a step.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from typing import NamedTuple

import numpy as np

import dask
import dask.array as da
import distributed

from . import backends, optimizers, outputs, rng, spec
from .driver import OnStepLoop, Progress, StepLoop, is_dask
from .layout import Schema
from .sparse import is_sparse
from .validation import as_real_array, check_labels, check_matrix, check_X

__all__ = ["fit", "predict", "predict_proba", "minibatch_columns", "block_seed", "warmup",
           "fit_with_scheduler", "aligned", "trainer", "start_run", "DaskEngine", "DaskTrainer",
           "TILE", "FAN_IN"]

#: Columns per tile: each block is stored as C-contiguous tiles of this width,
#: and the kernels' workspace on a worker thread holds one tile's activations.
TILE = 16384

#: The tree reduction's fan-in: the block sums are added FAN_IN at a time,
#: level by level, until at most FAN_IN remain; the client adds those.
FAN_IN = 8


class Config(NamedTuple):
    """What a block task needs besides its data and the parameters."""

    dims: tuple
    hidden_activation: str
    output_activation: str
    backend: str
    dtype: str


class Block(NamedTuple):
    """One persisted block: ``X``, ``Y`` as lists of C-contiguous tiles; ``m`` its columns."""

    X: list
    Y: list
    m: int


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def fit(model, X, Y, parameters=None, callback=None, warm_start=False, client=None,
        validation_data=None, sample_weight=None):
    """Train ``model`` on Dask arrays ``X`` ``(n_x, m)``, ``Y`` (chunked along the columns).

    ``model.fit`` with the same arguments (it meets the Dask arrays and comes
    here for :func:`aligned` and :func:`trainer`): sets ``parameters_``,
    ``costs_``, ``n_iter_``, ``t_``, ``optimizer_state_``, ``seed_`` (and with
    ``validation_data`` ``validation_costs_``, ``validation_scores_``,
    ``best_epoch_``) and returns ``model``; on any failure the model is left
    unchanged and the one-machine ``fit``'s error is raised
    (``ValueError``/``TypeError`` naming the argument, and for a bad block its
    index and columns; ``TrainingDivergedError``). Either of ``X``, ``Y`` may
    be a NumPy array; it is cut like the other. ``client``: the
    ``distributed.Client`` (default: the current one). ``validation_data``:
    NumPy ``(X_val, Y_val)``, scored on the client. Not available on Dask
    arrays (yet): dropout (``keep_prob < 1``), ``sample_weight``, and
    ``early_stopping`` without ``validation_data``.
    """
    if not (_is_array(X) or _is_array(Y)):
        raise TypeError("fastbackprop.dask.fit: X or Y must be a Dask array; for NumPy "
                        "arrays call Model.fit")
    return model.fit(X, Y, parameters, callback=callback, warm_start=warm_start, client=client,
                     validation_data=validation_data, sample_weight=sample_weight)


def aligned(X, Y, hp, sample_weight=None, validation_data=None):
    """``X``, ``Y`` as Dask arrays with the same column chunks, checked by their metadata
    (the blocks' values are checked on the workers), and what a Dask fit refuses refused."""
    if sample_weight is not None:
        raise ValueError("sample_weight is not supported for Dask arrays yet; weight the "
                         "columns by repeating them, or fit on NumPy arrays")
    X, Y = _aligned(X, Y, hp["layer_dims"], hp["output_activation"])
    if np.any(np.asarray(hp["keep_prob"]) < 1):
        raise ValueError(f"keep_prob={hp['keep_prob']!r}: dropout is not supported for Dask "
                         "arrays yet (its masks are keyed to the batch's columns, which the "
                         "block kernels do not know); use keep_prob=1.0 or NumPy arrays")
    if validation_data is not None:
        if isinstance(validation_data, (tuple, list)) and any(
                is_dask(a) for a in validation_data):
            raise TypeError("validation_data must hold NumPy arrays (X_val, Y_val) for a "
                            "fit on Dask arrays: they are scored on the client")
    elif hp["early_stopping"]:
        raise ValueError("early_stopping on Dask arrays needs validation_data=(X_val, Y_val): "
                         "the columns to hold out are not drawn from a Dask array")
    return X, Y


def trainer(X, Y, options, hp, start, client=None):
    """A :class:`DaskTrainer` for aligned ``X``, ``Y`` (:func:`aligned`), its blocks
    persisted on the workers; ``release()`` it when done."""
    dtype = np.dtype(hp["dtype"])
    with np.errstate(over="ignore"):
        if not np.isfinite(dtype.type(hp["learning_rate"])):
            raise ValueError(f"learning_rate {hp['learning_rate']:g} is not finite in {dtype}")
    widths = [w for w in X.chunks[1] if w > 0]
    n_steps = 1 if options.batch_size is None else -(-X.shape[1] // options.batch_size)
    if min(widths) < n_steps:
        raise ValueError(
            f"batch_size={options.batch_size}: with Dask arrays every step takes columns from "
            f"every block, so each block needs at least ceil(m / batch_size) = {n_steps} "
            f"columns; the smallest has {min(widths)}. Use a larger batch_size or fewer, "
            "larger chunks (X.rechunk)")
    config = Config(tuple(hp["layer_dims"]), options.hidden_activation,
                    options.output_activation, hp["backend"], dtype.name)
    engine = DaskEngine(_client(client), config, options, X, Y, widths, n_steps)
    run = DaskTrainer(engine, options, start)
    try:
        engine.persist()
    except BaseException:
        engine.release()
        raise
    return run


def start_run(model, X, Y, parameters=None, warm_start=False, client=None):
    """A :class:`DaskTrainer` for ``model`` on ``X``, ``Y``, as ``fit`` starts it, blocks
    persisted (the benchmarks time its :meth:`~DaskTrainer.step`); ``release()`` it."""
    hp = model._hyperparameters()
    X, Y = aligned(X, Y, hp)
    start = model._start(hp, parameters, warm_start)
    return trainer(X, Y, model._training_options(hp, start["seed"]), hp, start, client)


class DaskEngine:
    """The engine of :class:`fastbackprop.driver.StepLoop` on Dask blocks.

    Its blocks are persisted on the workers (:meth:`persist`, :meth:`release`);
    each step sends the flat parameters to one task per block, adds the
    blocks' raw sums in a tree of fixed shape and order, and divides once by
    the batch's columns.
    """

    def __init__(self, client, config, options, X, Y, widths, n_steps):
        self.client = client
        self.config = config
        self.options = options
        self.X, self.Y = X, Y
        self.dtype = np.dtype(config.dtype)
        self.widths = widths
        self.n_steps = n_steps
        self.m = sum(widths)
        self.token = uuid.uuid4().hex[:12]
        self.blocks = []
        self.pending = []
        self.epoch = None
        self.perms = None

    def persist(self):
        """Check, convert, tile and keep every block on a worker.

        Raises the error of the first bad block (in block order).
        """
        X, Y = self.X, self.Y
        workers = sorted(self.client.nthreads()) or [None]
        tile = TILE if self.options.batch_size is None else None
        xs = X.to_delayed().reshape(-1)
        ys = Y.to_delayed().reshape(-1)
        stops = np.cumsum(X.chunks[1])
        prepared = []
        for i, (x, y, stop, width) in enumerate(zip(xs, ys, stops, X.chunks[1])):
            if width == 0:
                continue
            part = dask.delayed(_prepare, pure=True)(
                x, y, len(prepared), int(stop - width), int(width), self.config, tile,
                dask_key_name=f"fastbackprop-block-{self.token}-{len(prepared)}")
            worker = workers[len(prepared) * len(workers) // len(self.widths)]
            prepared.append(self.client.compute(
                part, workers=None if worker is None else [worker], allow_other_workers=True))
        self.blocks = prepared
        for future in prepared:  # in order: the error of the first bad block
            if future.exception() is not None:
                future.result()  # raises the worker's ValueError / TypeError

    def release(self):
        """Cancel the tasks still running and forget the persisted blocks."""
        futures = self.blocks + self.pending
        self.blocks, self.pending = [], []
        if futures:
            try:
                self.client.cancel(futures)
            except Exception:  # a closed client: nothing is left to release
                pass

    def start_epoch(self, epoch):
        """Each block's column order of ``epoch`` (futures on the blocks' workers), if shuffled."""
        self.epoch = epoch
        self.perms = None
        o = self.options
        if o.batch_size is None or not o.shuffle or self.n_steps == 1:
            return
        keys = [f"fastbackprop-order-{self.token}-{epoch}-{i}" for i in range(len(self.blocks))]
        seeds = [block_seed(o.seed, i) for i in range(len(self.blocks))]
        self.perms = self.client.map(_permutation, self.blocks, seeds,
                                     [epoch] * len(self.blocks), key=keys, pure=False)
        self.pending = self.perms

    def gradient(self, theta, k, t, cost):
        """Step ``k`` of the epoch: the batch's gradient (None when its ``Z_L`` is not
        finite), its cost and its columns (see :mod:`fastbackprop.driver`)."""
        sums, m_b = self._sums(theta, k)
        f = self.dtype.type
        loss = sums[-1]
        if np.isnan(loss):
            return None, float(loss), m_b
        return sums[:-1] / f(m_b), float(loss / f(m_b)), m_b

    def _sums(self, theta, k):
        """Step ``k``'s summed ``[grad | loss]`` of its batch, and its columns."""
        B = len(self.blocks)
        name = f"{self.token}-{self.epoch}-{k}"
        keys = [f"fastbackprop-sums-{name}-{i}" for i in range(B)]
        if self.options.batch_size is None:
            futures = self.client.map(_block_sums, self.blocks, key=keys, pure=False,
                                      theta=theta, config=self.config)
            m_b = self.m
        else:
            S = self.n_steps
            starts = [k * w // S for w in self.widths]
            stops = [(k + 1) * w // S for w in self.widths]
            futures = self.client.map(_block_sums, self.blocks, self.perms or [None] * B,
                                      starts, stops, key=keys, pure=False, theta=theta,
                                      config=self.config)
            m_b = sum(stops) - sum(starts)
        # Every future of the step stays referenced until its result is in: a key
        # released while a dependent's graph is still on its way is lost.
        self.pending = futures + (self.perms or [])
        level = 0
        while len(futures) > FAN_IN:  # the tree's inner levels run on the workers
            level += 1
            groups = [futures[j:j + FAN_IN] for j in range(0, len(futures), FAN_IN)]
            futures = [self.client.submit(_add, *group, key=f"fastbackprop-add-{name}-{level}-{j}",
                                          pure=False) for j, group in enumerate(groups)]
            self.pending += futures
        parts = self.client.gather(futures, direct=True)
        return _add(*parts), m_b


class DaskTrainer(OnStepLoop, Progress):
    """One Dask fit: a :class:`fastbackprop.driver.StepLoop` over a :class:`DaskEngine`, with
    the trainers' interface (``run``, ``parameters``, ``optimizer_state``, ``costs``,
    ``n_iter``, ``t``, ``status``, ``failed_at``), so the Model's chunked driver and its
    validation drive it as they drive a one-machine trainer."""

    def __init__(self, engine, options, start):
        self.engine = engine
        self.seed = start["seed"]
        self._begin(options, engine.n_steps, start["start_epoch"], start["t"])
        self._loop = StepLoop(engine, options, Schema(list(engine.config.dims)),
                              engine.dtype, start["parameters"], start["optimizer_state"])

    def step(self, epoch, k):
        """Step ``k`` of ``epoch`` as the next update (the benchmarks time it); its loss."""
        if self.engine.epoch != epoch:
            self.engine.start_epoch(epoch)
        o = self.options
        alpha = optimizers.learning_rate_at(o.learning_rate, epoch, o.decay_rate,
                                            o.time_interval)
        loss, status = self._loop.step(k, self.t + 1, alpha)
        if status == spec.OK:
            self.t += 1
        return loss

    def release(self):
        self.engine.release()


# ---------------------------------------------------------------------------
# The mini-batch rule
# ---------------------------------------------------------------------------


def block_seed(seed, i):
    """The seed of block ``i``'s column orders: ``rng.key(seed, rng.SHUFFLE, i)`` as an int."""
    return int(rng.key(seed, rng.SHUFFLE, i))


def minibatch_columns(chunks, batch_size, seed, epoch, shuffle=True):
    """The columns of every step of ``epoch`` under the Dask mini-batch rule (the module's).

    chunks: the blocks' widths (``X.chunks[1]``, empty ones left out).
    Returns a list of ``ceil(m / batch_size)`` int64 arrays of column
    indices of the whole ``X``, block by block, each block's in its order.
    """
    widths = [int(w) for w in chunks if w > 0]
    S = -(-sum(widths) // batch_size)
    offsets = np.concatenate([[0], np.cumsum(widths)])
    orders = [rng.permutation(w, block_seed(seed, i), epoch) if shuffle else np.arange(w)
              for i, w in enumerate(widths)]
    return [np.concatenate([offsets[i] + orders[i][k * w // S:(k + 1) * w // S]
                            for i, w in enumerate(widths)]) for k in range(S)]


# ---------------------------------------------------------------------------
# Tasks (run on the workers)
# ---------------------------------------------------------------------------


def _prepare(X, Y, index, start, width, config, tile):
    """Check one block as the one-machine ``fit`` checks its data; return it as a :class:`Block`.

    tile: the width of the C-contiguous tiles (None: one tile, for mini-batches).
    """
    where = (f" (in block {index} of the Dask array, which holds columns {start} to "
             f"{start + width - 1}; indices above are within the block)")
    dtype = np.dtype(config.dtype)
    try:
        X = check_X(X, n_x=config.dims[0], dtype=dtype)
        check_matrix(X, "X", rows=config.dims[0], cols=width, row_name="n_x")
        Y = check_labels(Y, config.output_activation, n_y=config.dims[-1], m=width, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{e}{where}") from None
    tile = tile or width
    cut = [(a, min(a + tile, width)) for a in range(0, width, tile)]
    return Block([np.ascontiguousarray(X[:, a:b]) for a, b in cut],
                 [np.ascontiguousarray(Y[:, a:b]) for a, b in cut], width)


def _permutation(block, seed, epoch):
    """Block's column order of ``epoch``: ``rng.permutation(block.m, seed, epoch)``."""
    from .kernels import rng as compiled

    perm = np.empty(block.m, dtype=np.int64)
    compiled.permute(perm, np.uint64(seed), np.int64(epoch))
    return perm


def _block_sums(block, perm=None, start=None, stop=None, *, theta, config):
    """``[raw dW, db sums | cost sum]`` of a block's columns (``perm[start:stop]`` if given).

    One array in ``theta``'s layout plus the cost; the cost is NaN when non-finite.
    """
    n = theta.size
    out = np.zeros(n + 1, dtype=theta.dtype)
    if start is None:
        tiles = zip(block.X, block.Y)
    else:
        columns = np.arange(start, stop) if perm is None else perm[start:stop]
        tiles = ((np.take(block.X[0], c, axis=1), np.take(block.Y[0], c, axis=1))
                 for c in (columns[a:a + TILE] for a in range(0, columns.size, TILE)))
    sums = _tile_sums_function(config)
    for X, Y in tiles:
        sums(theta, X, Y, out)
    return out


def _tile_sums_function(config):
    """``sums(theta, X, Y, out)``: add one tile's ``[grad | loss]`` into ``out``, by the
    backend's ``gradient_sums`` (the compiled one into this thread's workspace)."""
    dims = list(config.dims)
    gradient_sums = backends.get(config.backend).gradient_sums
    work = _workspace(config) if config.backend == "numba" else None

    def sums(theta, X, Y, out):
        grad, loss = gradient_sums(theta, X, Y, dims, config.hidden_activation,
                                   config.output_activation, work=work)
        out[:-1] += grad
        out[-1] += loss  # NaN exactly when the tile's Z_L is not finite
    return sums


_local = threading.local()


def _workspace(config):
    """This thread's kernel workspace for :data:`TILE` columns of ``config``'s network (kept)."""
    cache = getattr(_local, "workspaces", None)
    if cache is None:
        cache = _local.workspaces = {}
    key = (config.dims, config.dtype)
    if key not in cache:
        from .kernels.training import workspace

        cache.clear()  # one network at a time
        cache[key] = workspace(config.dims, TILE, np.dtype(config.dtype))  # slots of TILE columns
    return cache[key]


def _add(*parts):
    """``parts[0] + parts[1] + ...``, in this order (a new array)."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


# ---------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------


def predict_proba(model, X):
    """``A_L`` ``(n_y, m)`` of the fitted ``model`` on the Dask array ``X``, lazily, by blocks
    (each computed by the model's fitted network, sent to the workers packed)."""
    network = model.network()
    X = _dask_X(X, network.dims[0])
    return X.map_blocks(_proba_block, network=network,
                        chunks=((network.dims[-1],), X.chunks[1]), dtype=network.dtype,
                        meta=np.empty((0, 0), dtype=network.dtype))


def predict(model, X):
    """``model.predict`` as a lazy Dask array: 0/1 ``(n_y, m)``, classes ``(m,)`` or values."""
    network = model.network()
    X = _dask_X(X, network.dims[0])
    probe = outputs.FUNCTIONS[network.output_activation].predict(
        np.full((network.dims[-1], 1), 0.5, dtype=network.dtype))
    if probe.ndim == 1:
        return X.map_blocks(_predict_block, network=network, chunks=(X.chunks[1],),
                            drop_axis=0, dtype=probe.dtype,
                            meta=np.empty((0,), dtype=probe.dtype))
    return X.map_blocks(_predict_block, network=network,
                        chunks=((probe.shape[0],), X.chunks[1]), dtype=probe.dtype,
                        meta=np.empty((0, 0), dtype=probe.dtype))


def _proba_block(X, network):
    return network.probabilities(check_X(X, n_x=network.dims[0], dtype=network.dtype))


def _predict_block(X, network):
    return outputs.FUNCTIONS[network.output_activation].predict(_proba_block(X, network))


# ---------------------------------------------------------------------------
# Inputs and the client
# ---------------------------------------------------------------------------


def _client(client):
    """``client``, or the current ``distributed.Client``; ValueError when there is none."""
    if client is None:
        try:
            return distributed.default_client()
        except ValueError:
            raise ValueError(
                "client: fitting on Dask arrays needs a distributed.Client; start one "
                "(distributed.Client() or Client('scheduler-address')) or pass client=") from None
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client or None; got {client!r}")
    return client


def _shape_only(a):
    """An array with ``a``'s shape and dtype that takes no memory (for the checks' messages)."""
    return np.broadcast_to(np.zeros((), dtype=a.dtype), a.shape)


def _known(a, argument):
    if any(math.isnan(s) for s in a.shape):
        raise ValueError(f"{argument} has unknown chunk sizes (NaN in {argument}.shape "
                         f"{a.shape}); call {argument}.compute_chunk_sizes() first")


def _is_array(a):
    return isinstance(a, da.Array)


def _dask_X(X, n_x):
    """A Dask ``X`` checked by its metadata (rows, dtype), with one chunk of rows."""
    if not _is_array(X):
        raise TypeError(f"X must be a Dask array (n_x, m) here; got {type(X).__name__}")
    _refuse_sparse(X)
    _known(X, "X")
    as_real_array(np.zeros(0, dtype=X.dtype), "X")
    check_matrix(_shape_only(X), "X", rows=n_x, row_name="n_x")
    return X.rechunk({0: -1}) if X.numblocks[0] > 1 else X


def _refuse_sparse(X):
    """A Dask fit or prediction refuses sparse ``X`` (sparse blocks, or a SciPy matrix with a
    Dask ``Y``): its blocks go through the dense block kernels."""
    meta = getattr(X, "_meta", X)
    if is_sparse(meta) or type(meta).__module__.split(".")[0] == "sparse":
        raise TypeError("X: sparse data are not supported with Dask arrays (its blocks are "
                        f"{type(meta).__module__}.{type(meta).__name__}); fit on the SciPy "
                        "sparse matrix itself with Model.fit, or on dense Dask blocks")


def _aligned(X, Y, dims, output):
    """``X``, ``Y`` as Dask arrays with the same column chunks, checked by their metadata."""
    for a, argument in ((X, "X"), (Y, "Y")):
        if is_dask(a) and not _is_array(a):
            raise TypeError(f"{argument} must be a Dask array (or a NumPy array); got "
                            f"{type(a).__module__}.{type(a).__name__}")
    if not (_is_array(X) or _is_array(Y)):
        raise TypeError("fastbackprop.dask.fit: X or Y must be a Dask array; for NumPy "
                        "arrays call Model.fit")
    if _is_array(X):
        X = _dask_X(X, dims[0])
        columns = X.chunks[1]
    else:
        _refuse_sparse(X)
        X = check_X(X, n_x=dims[0])
    if _is_array(Y):
        _known(Y, "Y")
    else:
        Y = np.asarray(Y)
    as_real_array(np.zeros(0, dtype=Y.dtype), "Y")
    m = X.shape[1]
    _check_label_shape(Y, dims[-1], m, output)
    if not _is_array(X):  # a NumPy X takes Y's column chunks
        columns = Y.chunks[-1]
        X = da.from_array(X, chunks=(X.shape[0], columns))
    if _is_array(Y):
        Y = Y.rechunk(((Y.shape[0],), columns) if Y.ndim == 2 else (columns,))
    else:
        Y = da.from_array(Y, chunks=((Y.shape[0],), columns) if Y.ndim == 2 else (columns,))
    return X, Y


def _check_label_shape(Y, n_y, m, output):
    """The one-machine ``fit``'s shape checks of ``Y`` (its values are checked per block)."""
    if output == "softmax" and (Y.ndim == 1 or (Y.ndim == 2 and Y.shape[0] == 1 and n_y != 1)):
        if Y.shape[-1] != m:
            raise ValueError(f"Y must hold {m} class indices (one per column of X); got "
                             f"{Y.shape[-1]}")
        return
    shape = (1, Y.shape[0]) if Y.ndim == 1 and n_y == 1 else Y.shape
    check_matrix(np.broadcast_to(np.zeros((), dtype=Y.dtype), shape), "Y", rows=n_y, cols=m,
                 row_name="n_y")


# ---------------------------------------------------------------------------
# Warming the workers, and the command line
# ---------------------------------------------------------------------------


def _warm(dims, dtype, hidden_activation, output_activation, backend):
    """Compile (or load) one block step's and the prediction's kernels in this process."""
    config = Config(tuple(dims), hidden_activation, output_activation, backend, dtype)
    dt = np.dtype(dtype)
    X = np.ones((dims[0], 3), dtype=dt)
    Y = check_labels(np.zeros(3, dtype=int) if output_activation == "softmax"
                     else np.zeros((dims[-1], 3)), output_activation, dims[-1], 3, dt)
    from .layout import n_parameters, unpack

    theta = np.full(n_parameters(dims), 0.1, dtype=dt)
    _block_sums(Block([X], [Y], 3), theta=theta, config=config)
    backends.get(backend).probabilities(X, unpack(theta, dims), hidden_activation,
                                        output_activation)
    return True


def warmup(client=None, dims=(2, 2, 2), dtype="float64", hidden_activation="relu",
           output_activation="sigmoid", backend="numba"):
    """Compile (or load from Numba's cache) the block step's kernels on every worker.

    The first step of a fit on fresh workers otherwise pays it (seconds when
    the cache is cold). Returns ``{worker address: seconds}``.
    """
    client = _client(client)

    def timed():
        started = time.perf_counter()
        _warm(list(dims), dtype, hidden_activation, output_activation, backend)
        return time.perf_counter() - started

    return client.run(timed)


def fit_with_scheduler(model, X, Y, address, callback=None, validation_data=None,
                       n_blocks=None, timeout=30):
    """Fit ``model`` on NumPy ``X``, ``Y`` with the Dask cluster whose scheduler is at ``address``.

    For the command line's ``--scheduler ADDRESS``: connects a client
    (``ValueError`` naming ``--scheduler`` when it cannot), warms the
    workers' kernels, cuts ``X`` and ``Y`` into ``n_blocks`` blocks of
    columns (default: one per worker thread), fits as :func:`fit` (with
    ``callback`` and ``validation_data``), closes the client and returns the model.
    """
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise ValueError(
            f"--scheduler {address}: cannot connect to a Dask scheduler: {e}") from None
    with client:
        hp = model._hyperparameters()
        warmup(client, hp["layer_dims"], hp["dtype"], hp["hidden_activation"],
               hp["output_activation"], hp["backend"])
        if n_blocks is None:
            n_blocks = max(1, sum(client.nthreads().values()))
        X = check_X(X, n_x=hp["layer_dims"][0])
        width = max(1, -(-X.shape[1] // n_blocks))
        X_d = da.from_array(X, chunks=(X.shape[0], width))
        return fit(model, X_d, Y, callback=callback, client=client,
                   validation_data=validation_data)
