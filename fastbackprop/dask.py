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
from . import model as _model
from .validation import as_real_array, check_labels, check_matrix, check_X

__all__ = ["fit", "predict", "predict_proba", "minibatch_columns", "block_seed", "warmup",
           "fit_with_scheduler", "TILE", "FAN_IN"]

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

    What :meth:`fastbackprop.Model.fit` does for Dask inputs, with its
    arguments and results: sets ``parameters_``, ``costs_``, ``n_iter_``,
    ``t_``, ``optimizer_state_``, ``seed_`` (and with ``validation_data``
    ``validation_costs_``, ``validation_scores_``, ``best_epoch_``) and
    returns ``model``; on any failure the model is left unchanged and the
    one-machine ``fit``'s error is raised (``ValueError``/``TypeError``
    naming the argument, and for a bad block its index and columns;
    ``TrainingDivergedError``). Either of ``X``, ``Y`` may be a NumPy
    array; it is cut like the other. ``client``: the ``distributed.Client``
    (default: the current one). ``validation_data``: NumPy ``(X_val,
    Y_val)``, scored on the client. Not available on Dask arrays (yet):
    dropout (``keep_prob < 1``), ``sample_weight``, and ``early_stopping``
    without ``validation_data``.
    """
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None; got {callback!r}")
    if sample_weight is not None:
        raise ValueError("sample_weight is not supported for Dask arrays yet; weight the "
                         "columns by repeating them, or fit on NumPy arrays")
    run = start_run(model, X, Y, parameters, warm_start, client)
    hp = run.hp
    if validation_data is not None:
        if isinstance(validation_data, (tuple, list)) and any(
                _model._is_dask(a) for a in validation_data):
            raise TypeError("validation_data must hold NumPy arrays (X_val, Y_val) for a "
                            "fit on Dask arrays: they are scored on the client")
        _, _, _, validation = _model._validation_split(None, None, None, validation_data, hp,
                                                       run.seed)
    elif hp["early_stopping"]:
        raise ValueError("early_stopping on Dask arrays needs validation_data=(X_val, Y_val): "
                         "the columns to hold out are not drawn from a Dask array")
    else:
        validation = None
    end = run.start_epoch + hp["n_epochs"]
    try:
        run.persist()
        if validation is None:
            status, watch = _model._run_in_chunks(run, end, callback), None
        else:
            watch = _model._Validation(model, hp, *validation)
            status = watch.run(run, end, callback)
    finally:
        run.release()
    if status != "ok":
        raise _model._diverged(run, status, hp["learning_rate"])
    return model._adopt(run, watch, hp, warm_start, run.seed)


def start_run(model, X, Y, parameters=None, warm_start=False, client=None):
    """Everything :func:`fit` checks and sets up before the blocks are persisted: a ``_Run``.

    ``run.persist()`` then keeps the blocks on the workers, ``run.step(epoch,
    k)`` makes one step (the benchmarks time it) and ``run.release()``
    forgets them.
    """
    hp = model._hyperparameters()
    dims, dtype = hp["layer_dims"], np.dtype(hp["dtype"])
    X, Y = _aligned(X, Y, dims, hp["output_activation"])
    client = _client(client)
    if warm_start:
        if parameters is not None:
            raise ValueError("fit: pass either parameters or warm_start=True, not both")
        start = model._continuation(hp)
    else:
        seed = hp["seed"] if hp["seed"] is not None else _model._fresh_seed()
        start = {"parameters": _model._initial_parameters(parameters, hp, seed), "seed": seed,
                 "start_epoch": 0, "t": 0, "optimizer_state": None}
    if np.any(np.asarray(hp["keep_prob"]) < 1):
        raise ValueError(f"keep_prob={hp['keep_prob']!r}: dropout is not supported for Dask "
                         "arrays yet (its masks are keyed to the batch's columns, which the "
                         "block kernels do not know); use keep_prob=1.0 or NumPy arrays")
    with np.errstate(over="ignore"):
        if not np.isfinite(dtype.type(hp["learning_rate"])):
            raise ValueError(f"learning_rate {hp['learning_rate']:g} is not finite in {dtype}")
    widths = [w for w in X.chunks[1] if w > 0]
    n_steps = 1 if hp["batch_size"] is None else -(-X.shape[1] // hp["batch_size"])
    if min(widths) < n_steps:
        raise ValueError(
            f"batch_size={hp['batch_size']}: with Dask arrays every step takes columns from "
            f"every block, so each block needs at least ceil(m / batch_size) = {n_steps} "
            f"columns; the smallest has {min(widths)}. Use a larger batch_size or fewer, "
            "larger chunks (X.rechunk)")
    config = Config(tuple(dims), hp["hidden_activation"], hp["output_activation"],
                    model.backend, dtype.name)
    return _Run(client, config, hp, start, X, Y, widths, n_steps)


class _Run:
    """One Dask fit: the persisted blocks, the client-side state and the step loop.

    Has the attributes ``TrainingDivergedError`` is built from (``failed_at``,
    ``t``, ``parameters``, ``n_iter``, ``costs``) after :meth:`train`.
    """

    def __init__(self, client, config, hp, start, X, Y, widths, n_steps):
        self.client = client
        self.X, self.Y = X, Y
        self.config = config
        self.hp = hp
        self.dims = list(config.dims)
        self.dtype = np.dtype(config.dtype)
        self.widths = widths
        self.n_steps = n_steps
        self.m = sum(widths)
        self.token = uuid.uuid4().hex[:12]
        self.blocks = []
        self.pending = []
        self.seed = start["seed"]
        self.start_epoch = self.n_iter = start["start_epoch"]
        self.start_t = self.t = start["t"]
        self.slots = spec.OPTIMIZERS[hp["optimizer"]].state
        from .layout import pack

        self.theta = pack(start["parameters"], self.dims, self.dtype)
        state = start["optimizer_state"]
        self.state = {
            slot: (np.zeros_like(self.theta) if state is None else
                   pack({k[1:]: v for k, v in state[slot].items()}, self.dims, self.dtype))
            for slot in self.slots}
        self.previous = None  # (theta, state) before the last update, once one was made
        self.l2 = self.dtype.type(hp["l2"])
        self.weights = np.concatenate([  # where the W{l} (not the b{l}) lie in theta
            np.repeat([True, False], [n * k, n]) for n, k in zip(self.dims[1:], self.dims[:-1])])
        self._costs = []
        self.status = "ok"
        self.failed_at = None

    # -- the blocks --------------------------------------------------------

    def persist(self):
        """Check, convert, tile and keep every block on a worker.

        Raises the error of the first bad block (in block order).
        """
        X, Y = self.X, self.Y
        workers = sorted(self.client.nthreads()) or [None]
        tile = TILE if self.hp["batch_size"] is None else None
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

    # -- the loop ------------------------------------------------------------

    def run(self, n_epochs):
        """Run ``n_epochs`` more epochs; returns the status (the trainers' interface).

        So ``Model``'s chunked driver and its validation drive a Dask fit as
        they drive a one-machine trainer; after a failure, further calls do nothing.
        """
        if self.status != "ok":
            return self.status
        hp = self.hp
        f = self.dtype.type
        inv_m = f(1) / f(self.m)
        for e in range(self.n_iter, self.n_iter + n_epochs):
            alpha = optimizers.learning_rate_at(hp["learning_rate"], e, hp["decay_rate"],
                                                hp["time_interval"])
            perms = self._permutations(e)
            loss = f(0)
            for k in range(self.n_steps):
                loss += self.step(e, k, perms, alpha)
                if self.status != "ok":
                    break
            if e % hp["cost_every"] == 0:
                self._costs.append(loss * inv_m)
            if self.status != "ok":
                self.failed_at = e
                self.n_iter = self.start_epoch + (self.t - self.start_t) // self.n_steps
                return self.status
            self.n_iter = e + 1
        return self.status

    def step(self, epoch, k, perms=None, alpha=None):
        """Step ``k`` of ``epoch``: the block sums, their reduction, the update.

        Returns the step's loss sum. On a non-finite cost or update sets
        :attr:`status` (and steps back to the last parameters with a finite
        cost, as the compiled loop does).
        """
        if alpha is None:
            alpha = optimizers.learning_rate_at(self.hp["learning_rate"], epoch,
                                                self.hp["decay_rate"], self.hp["time_interval"])
        sums, m_b = self._step(k, epoch, perms)
        loss = sums[-1]
        if np.isfinite(loss) and self.l2 != 0:  # L2, once, on the whole batch's sums
            W = self.theta[self.weights]
            sums[:-1][self.weights] += self.l2 * W
            loss += self.dtype.type(0.5) * self.l2 * np.dot(W, W)
        if not np.isfinite(loss):
            self.status = "nonfinite_cost"
            if self.previous is not None:  # back to the last parameters with a finite cost
                self.theta, self.state = self.previous
                self.previous = None
                self.t -= 1
        elif not self._update(sums[:-1], m_b, alpha):
            self.status = "nonfinite_update"
        return loss

    def _permutations(self, epoch):
        """Each block's column order of ``epoch`` (futures on the blocks' workers), or None."""
        if self.hp["batch_size"] is None or not self.hp["shuffle"] or self.n_steps == 1:
            return None
        keys = [f"fastbackprop-order-{self.token}-{epoch}-{i}" for i in range(len(self.blocks))]
        seeds = [block_seed(self.seed, i) for i in range(len(self.blocks))]
        perms = self.client.map(_permutation, self.blocks, seeds, [epoch] * len(self.blocks),
                                key=keys, pure=False)
        self.pending = perms
        return perms

    def _step(self, k, epoch, perms):
        """Step ``k`` of ``epoch``: the summed ``[grad | loss]`` of its batch, and its columns."""
        B = len(self.blocks)
        name = f"{self.token}-{epoch}-{k}"
        keys = [f"fastbackprop-sums-{name}-{i}" for i in range(B)]
        if self.hp["batch_size"] is None:
            futures = self.client.map(_block_sums, self.blocks, key=keys, pure=False,
                                      theta=self.theta, config=self.config)
            m_b = self.m
        else:
            S = self.n_steps
            starts = [k * w // S for w in self.widths]
            stops = [(k + 1) * w // S for w in self.widths]
            futures = self.client.map(_block_sums, self.blocks, perms or [None] * B, starts,
                                      stops, key=keys, pure=False, theta=self.theta,
                                      config=self.config)
            m_b = sum(stops) - sum(starts)
        # Every future of the step stays referenced until its result is in: a key
        # released while a dependent's graph is still on its way is lost.
        self.pending = futures + (perms or [])
        level = 0
        while len(futures) > FAN_IN:  # the tree's inner levels run on the workers
            level += 1
            groups = [futures[j:j + FAN_IN] for j in range(0, len(futures), FAN_IN)]
            futures = [self.client.submit(_add, *group, key=f"fastbackprop-add-{name}-{level}-{j}",
                                          pure=False) for j, group in enumerate(groups)]
            self.pending += futures
        parts = self.client.gather(futures, direct=True)
        return _add(*parts), m_b

    def _update(self, grad_sum, m_b, alpha):
        """The optimiser's update from the batch's summed gradient; False when it is non-finite."""
        f = self.dtype.type
        grads = grad_sum * (f(1) / f(m_b))
        hp = self.hp
        new, state = optimizers.update(
            {"theta": self.theta}, {"dtheta": grads},
            {slot: {"dtheta": value} for slot, value in self.state.items()}, self.t + 1, alpha,
            hp["optimizer"],
            optimizers.Hyperparameters(hp["beta"], hp["beta1"], hp["beta2"], hp["epsilon"]))
        theta = new["theta"]
        if not np.isfinite(theta.sum()):
            return False
        self.previous = (self.theta, self.state)
        self.theta = theta
        self.state = {slot: values["dtheta"] for slot, values in state.items()}
        self.t += 1
        return True

    # -- results -------------------------------------------------------------

    @property
    def parameters(self):
        from .layout import unpack

        return unpack(self.theta, self.dims)

    @property
    def optimizer_state(self):
        from .layout import unpack

        return {slot: {f"d{k}": v for k, v in unpack(value, self.dims).items()}
                for slot, value in self.state.items()}

    @property
    def costs(self):
        return np.array(self._costs, dtype=np.float64)


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
    """``sums(theta, X, Y, out)``: add one tile's ``[grad | loss]`` into ``out``."""
    dims = list(config.dims)
    if config.backend != "numba":
        gradient_sums = backends.get(config.backend).gradient_sums

        def sums(theta, X, Y, out):
            grad, loss = gradient_sums(theta, X, Y, dims, config.hidden_activation,
                                       config.output_activation)
            out[:-1] += grad
            out[-1] += loss if np.isfinite(loss) else np.nan
        return sums

    from .kernels import training
    from .kernels.convert import as_kernel_array, call_specialised

    codes = (spec.code_of(spec.ACTIVATIONS, config.hidden_activation, "hidden_activation"),
             spec.code_of(spec.OUTPUTS, config.output_activation, "output_activation"))
    work = _workspace(config)
    dims_array = work["dims"]

    def sums(theta, X, Y, out):
        # the entry point is typed for C-contiguous arrays: anything else must be copied
        X, Y = as_kernel_array(X, theta.dtype), as_kernel_array(Y, theta.dtype)
        total, loss = call_specialised(training.gradient_sums, theta, X, Y,
                                       work["ones"][:X.shape[1]], dims_array, *codes,
                                       work["work"])
        out[:-1] += work["work"].grad
        out[-1] += loss if np.isfinite(total) else np.nan
    return sums


_local = threading.local()


def _workspace(config):
    """This thread's kernel buffers for :data:`TILE` columns of ``config``'s network (kept)."""
    cache = getattr(_local, "workspaces", None)
    if cache is None:
        cache = _local.workspaces = {}
    key = (config.dims, config.dtype)
    if key not in cache:
        dims = np.asarray(config.dims, dtype=np.int64)
        dtype = np.dtype(config.dtype)
        from .kernels.training import workspace

        cache.clear()  # one network at a time
        cache[key] = {"dims": dims, "work": workspace(dims, TILE, dtype),  # slots of TILE columns
                      "ones": np.ones(TILE, dtype=dtype)}  # the columns' weights
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
    """``A_L`` ``(n_y, m)`` of the fitted ``model`` on the Dask array ``X``, lazily, by blocks."""
    parameters, dims = model._fitted()
    X = _dask_X(X, dims[0])
    dtype = parameters["W1"].dtype
    return X.map_blocks(_proba_block, parameters=parameters, config=_predict_config(model, dims),
                        chunks=((dims[-1],), X.chunks[1]), dtype=dtype,
                        meta=np.empty((0, 0), dtype=dtype))


def predict(model, X):
    """``model.predict`` as a lazy Dask array: 0/1 ``(n_y, m)``, classes ``(m,)`` or values."""
    parameters, dims = model._fitted()
    X = _dask_X(X, dims[0])
    config = _predict_config(model, dims)
    probe = outputs.FUNCTIONS[config.output_activation].predict(
        np.full((dims[-1], 1), 0.5, dtype=parameters["W1"].dtype))
    if probe.ndim == 1:
        return X.map_blocks(_predict_block, parameters=parameters, config=config,
                            chunks=(X.chunks[1],), drop_axis=0, dtype=probe.dtype,
                            meta=np.empty((0,), dtype=probe.dtype))
    return X.map_blocks(_predict_block, parameters=parameters, config=config,
                        chunks=((probe.shape[0],), X.chunks[1]), dtype=probe.dtype,
                        meta=np.empty((0, 0), dtype=probe.dtype))


def _predict_config(model, dims):
    return Config(tuple(dims), model.hidden_activation, model.output_activation, model.backend,
                  model.parameters_["W1"].dtype.name)


def _proba_block(X, parameters, config):
    X = check_X(X, n_x=config.dims[0], dtype=np.dtype(config.dtype))
    return backends.get(config.backend).probabilities(X, parameters, config.hidden_activation,
                                                      config.output_activation)


def _predict_block(X, parameters, config):
    return outputs.FUNCTIONS[config.output_activation].predict(_proba_block(X, parameters, config))


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
    _known(X, "X")
    as_real_array(np.zeros(0, dtype=X.dtype), "X")
    check_matrix(_shape_only(X), "X", rows=n_x, row_name="n_x")
    return X.rechunk({0: -1}) if X.numblocks[0] > 1 else X


def _aligned(X, Y, dims, output):
    """``X``, ``Y`` as Dask arrays with the same column chunks, checked by their metadata."""
    for a, argument in ((X, "X"), (Y, "Y")):
        if _model._is_dask(a) and not _is_array(a):
            raise TypeError(f"{argument} must be a Dask array (or a NumPy array); got "
                            f"{type(a).__module__}.{type(a).__name__}")
    if not (_is_array(X) or _is_array(Y)):
        raise TypeError("fastbackprop.dask.fit: X or Y must be a Dask array; for NumPy "
                        "arrays call Model.fit")
    if _is_array(X):
        X = _dask_X(X, dims[0])
        columns = X.chunks[1]
    else:
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
