"""``fastbackprop bench --peers``: the same workloads timed in PyTorch and JAX, each in its own process.

A **peer** is another framework running the same computation as the kernels:
the same layer shapes, dtype, data and initial parameters
(:func:`fastbackprop.bench.make_problem`), the same loss and the same update,
so that the floor (the step's matrix-product FLOPs at this machine's GEMM
rate) is the same for all.

* Full-batch workloads (:data:`bench.WORKLOADS`): one gradient-descent step
  is the forward pass (the workload's hidden activation; sigmoid with binary
  cross-entropy or softmax with categorical cross-entropy, computed from the
  logits), the cost, backward by autodiff and ``W := W - alpha dW`` with
  :data:`bench.LEARNING_RATE`. JAX: ``jax.jit`` of a ``lax.fori_loop`` of
  ``k`` steps (``k`` traced, so one compilation serves every ``k``).
  PyTorch: eager autograd, ``k`` steps in a Python loop, the update in place
  under ``torch.no_grad()``.
* Epoch workloads (:data:`bench.EPOCH_WORKLOADS`): one epoch of Adam
  (:data:`bench.ADAM_LEARNING_RATE`, beta1 0.9, beta2 0.999, eps 1e-8) on
  softmax, in batches of ``batch_size`` shuffled every epoch, the last batch
  keeping the remainder; the epoch's cost is recorded (the batches' costs
  weighted by their sizes), as the kernels' ``Trainer`` records it. JAX: a
  ``lax.scan`` over the full batches, then one more step on the remainder
  batch (its own static shape), Adam written out, the shuffle by
  ``jax.random.permutation``; ``k`` epochs in one jitted ``lax.fori_loop``.
  PyTorch: a Python loop over the batches, each gathered from the data by
  index, ``torch.optim.Adam``.

Both peers hold examples as **rows** (``X`` is ``(m, n_x)``, ``Z = A W^T + b``),
the layout they are written for: a shuffled batch is a gather of
contiguous rows, and softmax reduces along the contiguous axis. ``W{l}``
keeps the course's shape ``(n_l, n_{l-1})``; ``b{l}`` is a vector ``(n_l,)``.
Each peer uses its framework's default threads, on the CPU.

Times are seconds per step (or per epoch): each timing is one of
:func:`bench.timer`, lasting at least ``min_time``, after a first call that
compiles (JAX) or warms up (PyTorch).

The worker, ``python -m fastbackprop.peers PEER WORKLOAD [--min-time S]
[--dtype D]``, sets the peer up, prints ``{"ready": true}``, then answers
each line ``time`` on its standard input with one timing,
``{"seconds": ...}``, until its input ends; on failure it prints
``{"error": "..."}`` and exits with status 1. Every answer is one JSON line.
:class:`Worker` runs it: ``fastbackprop bench`` keeps one worker a peer
open while it times a workload, and asks the kernels and each worker for a
timing in turn (:func:`bench.measure`), so that all of them see the
machine's slow periods alike. Importing this module imports neither
PyTorch nor JAX, and ``import fastbackprop`` does not import this module.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import queue
import statistics
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from . import bench

#: The peers, in the order of the table: name -> the modules it needs.
PEERS = {"pytorch": ("torch",), "jax": ("jax", "jaxlib")}

#: The distribution whose version the caption quotes, per peer.
DISTRIBUTIONS = {"pytorch": "torch", "jax": "jax"}

#: What to install when a peer is missing.
INSTALL_HINT = 'pip install "fastbackprop[peers]"'

#: Seconds a worker may take for one workload before it is stopped.
TIMEOUT = 900.0

#: How far from 1 the kernels' time among the peers' processes may be from their time before
#: the peers started (:func:`agreement_line`) for the run to count the peers as harmless.
AGREEMENT = 0.10

#: Adam's hyperparameters (the course's and the kernels' defaults).
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8


def available():
    """The peers whose modules can be imported, as a tuple of names (nothing is imported)."""
    return tuple(peer for peer, modules in PEERS.items()
                 if all(_find_spec(module) is not None for module in modules))


def _find_spec(name):
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a broken install, or a module without a spec
        return None


def version(peer):
    """The installed version of ``peer``'s framework (``"2.13.0+cpu"``), or None (nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version(DISTRIBUTIONS[peer])
    except PackageNotFoundError:
        return None


def not_installed(peer):
    """The reason given when ``peer`` is missing."""
    return f"not installed ({INSTALL_HINT})"


# ---------------------------------------------------------------------------
# What is timed: one object per (peer, problem) with run(k)
# ---------------------------------------------------------------------------


def _check_problem(problem):
    w = problem.workload
    if w.output not in ("sigmoid", "softmax", "linear"):
        raise ValueError(f"{w.name}: the peers time sigmoid, softmax and linear outputs; "
                         f"got {w.output!r}")
    if w.hidden not in ("relu", "tanh"):
        raise ValueError(f"{w.name}: the peers know relu and tanh hidden layers; got {w.hidden!r}")
    if w.batch_size is not None and w.optimizer != "adam":
        raise ValueError(f"{w.name}: the peers' epochs are Adam's")


def _labels(Y):
    """The class of each column of a one-hot ``Y`` ``(n_y, m)``."""
    if not (np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=0) == 1)):
        raise ValueError("a softmax workload needs one class per column of Y")
    return np.argmax(Y, axis=0)


class _Peer:
    """One peer's run on one problem: ``run(k)`` does ``k`` steps (or epochs), then waits
    for them to finish. ``parameters()`` are in the course's layout; ``cost`` is the last
    step's cost (before its update), or the last epoch's."""

    def run(self, k):  # pragma: no cover - each peer defines it
        raise NotImplementedError

    def parameters(self):  # pragma: no cover
        raise NotImplementedError


class TorchPeer(_Peer):
    """PyTorch eager: autograd and an in-place update (steps), or ``torch.optim.Adam`` (epochs)."""

    def __init__(self, problem, seed=bench.SEED):
        import torch
        import torch.nn.functional as F

        _check_problem(problem)
        self.torch, self.F = torch, F
        w = self.workload = problem.workload
        dtype = {"float32": torch.float32, "float64": torch.float64}[np.dtype(w.dtype).name]
        self.X = torch.from_numpy(np.ascontiguousarray(problem.X.T)).to(dtype)
        if w.output == "softmax":
            self.Y = torch.from_numpy(_labels(problem.Y).astype(np.int64))
        else:
            self.Y = torch.from_numpy(np.ascontiguousarray(problem.Y.T)).to(dtype)
        L = len(w.layer_dims) - 1
        self.params = []
        for l in range(1, L + 1):
            W = torch.from_numpy(np.array(problem.parameters[f"W{l}"])).to(dtype)
            b = torch.from_numpy(np.array(problem.parameters[f"b{l}"]).reshape(-1)).to(dtype)
            self.params += [W.requires_grad_(), b.requires_grad_()]
        self.hidden = {"relu": torch.relu, "tanh": torch.tanh}[w.hidden]
        self.m = problem.X.shape[1]
        self._last = math.nan
        if w.batch_size is not None:
            self.generator = torch.Generator().manual_seed(seed)
            self.optimizer = _torch_adam(torch, self.params)

    def _cost(self, X, Y):
        F, p = self.F, self.params
        A = X
        for i in range(0, len(p) - 2, 2):
            A = self.hidden(F.linear(A, p[i], p[i + 1]))
        Z = F.linear(A, p[-2], p[-1])
        if self.workload.output == "softmax":
            return F.cross_entropy(Z, Y)  # the mean over the batch of -log softmax(Z)[y]
        if self.workload.output == "linear":
            return 0.5 * F.mse_loss(Z, Y, reduction="sum") / X.shape[0]
        return F.binary_cross_entropy_with_logits(Z, Y, reduction="sum") / X.shape[0]

    def run(self, k):
        if self.workload.batch_size is None:
            self._steps(k)
        else:
            for _ in range(k):
                self._epoch()

    def _steps(self, k):
        lr = bench.LEARNING_RATE
        for _ in range(k):
            cost = self._cost(self.X, self.Y)
            cost.backward()
            with self.torch.no_grad():
                for p in self.params:
                    p.sub_(p.grad, alpha=lr)
                    p.grad = None
        self._last = cost.detach()

    def _epoch(self):
        torch, bs, m = self.torch, self.workload.batch_size, self.m
        if bs >= m:  # one full batch: no shuffle, no gather
            cost = self._cost(self.X, self.Y)
            self.optimizer.zero_grad(set_to_none=True)
            cost.backward()
            self.optimizer.step()
            self._last = cost.detach()
            return
        order = torch.randperm(m, generator=self.generator)
        total = torch.zeros((), dtype=self.X.dtype)
        for start in range(0, m, bs):
            rows = order[start:start + bs]
            cost = self._cost(self.X[rows], self.Y[rows])
            self.optimizer.zero_grad(set_to_none=True)
            cost.backward()
            self.optimizer.step()
            total += cost.detach() * len(rows)
        self._last = total / m

    @property
    def cost(self):
        return float(self._last)

    def parameters(self):
        out = {}
        for l, i in enumerate(range(0, len(self.params), 2), start=1):
            out[f"W{l}"] = self.params[i].detach().numpy().copy()
            out[f"b{l}"] = self.params[i + 1].detach().numpy().reshape(-1, 1).copy()
        return out


def _torch_adam(torch, params):
    """``torch.optim.Adam`` with the course's hyperparameters: the fused implementation
    (one kernel for every parameter's update, the fastest measured on the CPU) where this
    PyTorch has it for the CPU (2.4 and later), else the default one."""
    options = dict(lr=bench.ADAM_LEARNING_RATE, betas=(BETA1, BETA2), eps=EPSILON)
    try:
        return torch.optim.Adam(params, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, **options)


class JaxPeer(_Peer):
    """JAX: ``jit`` of a ``fori_loop`` of ``k`` steps, or of ``k`` epochs each a ``scan``."""

    def __init__(self, problem, seed=bench.SEED):
        _check_problem(problem)
        w = self.workload = problem.workload
        dtype = np.dtype(w.dtype)
        import jax

        if dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        self.jax = jax
        self.X = jnp.asarray(np.ascontiguousarray(problem.X.T), dtype=dtype)
        self.Y = jnp.asarray(np.ascontiguousarray(problem.Y.T), dtype=dtype)
        if self.X.dtype != dtype:
            raise RuntimeError(f"JAX computes in {self.X.dtype}, not {dtype}")
        L = len(w.layer_dims) - 1
        params = tuple((jnp.asarray(problem.parameters[f"W{l}"], dtype=dtype),
                        jnp.asarray(np.reshape(problem.parameters[f"b{l}"], -1), dtype=dtype))
                       for l in range(1, L + 1))
        cost_and_grads = jax.value_and_grad(_jax_cost_function(w.hidden, w.output))
        zero = jnp.zeros((), dtype=dtype)
        if w.batch_size is None:
            self._loop = jax.jit(_jax_steps(cost_and_grads, bench.LEARNING_RATE))
            self.state = (params, zero)
        else:
            self._loop = jax.jit(_jax_epochs(cost_and_grads, problem.X.shape[1], w.batch_size))
            moments = jax.tree_util.tree_map(jnp.zeros_like, params)
            adam = (params, moments, moments, jnp.zeros((), dtype=jnp.int32))
            self.state = (adam, zero, jax.random.PRNGKey(seed))

    def run(self, k):
        self.state = self._loop(self.state, self.X, self.Y, k)
        self.jax.block_until_ready(self.state)

    @property
    def cost(self):
        return float(self.state[1])

    def parameters(self):
        params = self.state[0] if self.workload.batch_size is None else self.state[0][0]
        out = {}
        for l, (W, b) in enumerate(params, start=1):
            out[f"W{l}"] = np.array(W)
            out[f"b{l}"] = np.array(b).reshape(-1, 1)
        return out


def _jax_cost_function(hidden, output):
    """``cost(params, X, Y)``: the mean over the rows of ``X`` of the output layer's loss."""
    import jax
    import jax.numpy as jnp

    g = {"relu": jax.nn.relu, "tanh": jnp.tanh}[hidden]

    def cost(params, X, Y):
        A = X
        for W, b in params[:-1]:
            A = g(A @ W.T + b)
        W, b = params[-1]
        Z = A @ W.T + b
        if output == "softmax":
            losses = -Y * jax.nn.log_softmax(Z, axis=1)
        elif output == "linear":
            losses = 0.5 * (Z - Y) ** 2
        else:  # log(1 + e^z) - z y, stably: softplus is logaddexp(z, 0)
            losses = jax.nn.softplus(Z) - Z * Y
        return jnp.sum(losses) / X.shape[0]

    return cost


def _jax_steps(cost_and_grads, learning_rate):
    """``loop(state, X, Y, k)``: ``k`` gradient-descent steps; ``state`` is
    ``(params, the last step's cost)``."""
    import jax
    from jax import lax

    def loop(state, X, Y, k):
        def body(_, state):
            params, _cost = state
            cost, grads = cost_and_grads(params, X, Y)
            params = jax.tree_util.tree_map(lambda p, d: p - learning_rate * d, params, grads)
            return params, cost

        return lax.fori_loop(0, k, body, state)

    return loop


def _jax_epochs(cost_and_grads, m, batch_size):
    """``loop(state, X, Y, k)``: ``k`` epochs of Adam; ``state`` is
    ``((params, v, s, t), the last epoch's cost, key)``.

    An epoch draws a permutation of the rows, scans the ``m // batch_size``
    full batches and takes one more step on the ``m % batch_size`` rows left,
    each batch gathered from ``X`` and ``Y`` by index.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    full, rest = divmod(m, batch_size)
    alpha = bench.ADAM_LEARNING_RATE
    tree_map = jax.tree_util.tree_map

    def adam_step(carry, rows, X, Y):
        (params, v, s, t), total = carry
        Xb, Yb = (X, Y) if isinstance(rows, slice) else (X[rows], Y[rows])
        cost, grads = cost_and_grads(params, Xb, Yb)
        t = t + 1
        dtype = cost.dtype
        correction1 = 1 - jnp.asarray(BETA1, dtype) ** t
        correction2 = 1 - jnp.asarray(BETA2, dtype) ** t
        v = tree_map(lambda v, d: BETA1 * v + (1 - BETA1) * d, v, grads)
        s = tree_map(lambda s, d: BETA2 * s + (1 - BETA2) * d * d, s, grads)
        params = tree_map(
            lambda p, v, s: p - alpha * (v / correction1) / (jnp.sqrt(s / correction2) + EPSILON),
            params, v, s)
        return ((params, v, s, t), total + cost * Xb.shape[0]), None

    def whole(_, state, X, Y):  # one full batch: no shuffle, no gather
        adam, _cost, key = state
        (adam, total), _ = adam_step((adam, jnp.zeros((), X.dtype)), slice(None), X, Y)
        return adam, total / m, key

    def epoch(_, state, X, Y):
        adam, _cost, key = state
        key, draw = jax.random.split(key)
        order = jax.random.permutation(draw, m)
        carry = (adam, jnp.zeros((), X.dtype))
        if full:
            carry, _ = lax.scan(lambda c, rows: adam_step(c, rows, X, Y), carry,
                                order[:full * batch_size].reshape(full, batch_size))
        if rest:
            carry, _ = adam_step(carry, order[full * batch_size:], X, Y)
        adam, total = carry
        return adam, total / m, key

    step = whole if batch_size >= m else epoch

    def loop(state, X, Y, k):
        return lax.fori_loop(0, k, lambda i, state: step(i, state, X, Y), state)

    return loop


#: name -> the class that runs it.
RUNNERS = {"pytorch": TorchPeer, "jax": JaxPeer}


def make_peer(peer, problem):
    """The object that runs ``problem`` (a :class:`bench.Problem`) on ``peer``; imports the peer."""
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; the peers are {', '.join(PEERS)}")
    return RUNNERS[peer](problem)


def peer_timer(peer, problem, min_time=bench.MIN_TIME):
    """A :func:`bench.timer` of ``peer`` on ``problem``, in this process: each call does one
    timing and returns seconds per step (or epoch), raising when the cost is no longer finite.

    A first ``run(1)`` compiles (JAX) or warms up (PyTorch) outside the timings.
    """
    runner = make_peer(peer, problem)
    runner.run(1)
    timing = bench.timer(runner.run, min_time)

    def checked():
        seconds = timing()
        if not math.isfinite(runner.cost):
            raise RuntimeError(f"{problem.workload.name}: the cost became {runner.cost}; "
                               "the timing is void")
        return seconds

    return checked


def time_peer(peer, problem, repeats, min_time=bench.MIN_TIME):
    """Median seconds per step (or epoch) of ``repeats`` timings of :func:`peer_timer`."""
    return bench.median_timing(peer_timer(peer, problem, min_time), repeats)


# ---------------------------------------------------------------------------
# The peers' table (fastbackprop bench --peers)
# ---------------------------------------------------------------------------


def selected(names):
    """The peers named in ``names`` (comma-separated, or ``"all"``), in table order;
    ``ValueError`` on an unknown name."""
    chosen = [n.strip().lower() for n in str(names).split(",") if n.strip()]
    if chosen == ["all"]:
        return list(PEERS)
    unknown = [n for n in chosen if n not in PEERS]
    if unknown or not chosen:
        raise ValueError(f"--peers takes a comma-separated subset of {','.join(PEERS)}; "
                         f"got {names!r}")
    return [peer for peer in PEERS if peer in chosen]


def jax_target(workload):
    """Issue 13's target against JAX for ``workload``: ``(ratio, strict)``, met when JAX's time
    over the kernels' is ``> ratio`` (strict) or ``>= ratio``; None where there is none.

    planar: at least 2x faster than a JAX ``fori_loop`` of the same steps; each epoch
    workload: faster than JAX.
    """
    if workload.name == "planar":
        return 2.0, False
    if workload.batch_size is not None:
        return 1.0, True
    return None


@dataclass
class PeerRow:
    """One workload's :class:`bench.Row` and each peer's seconds (None, with a reason, when
    it was not timed)."""

    row: bench.Row
    seconds: dict = field(default_factory=dict)
    reasons: dict = field(default_factory=dict)

    @classmethod
    def of(cls, row, workers):
        """The row with each of ``workers``' (:class:`Worker`) median, or its reason."""
        result = cls(row)
        for worker in workers:
            result.seconds[worker.peer] = worker.median
            if worker.reason is not None:
                result.reasons[worker.peer] = worker.reason
        return result

    @property
    def jax_over_kernels(self):
        """JAX's time over the kernels': how many times faster the kernels are (None without JAX)."""
        jax = self.seconds.get("jax")
        return None if jax is None else jax / self.row.kernels

    @property
    def target(self):
        return jax_target(self.row.workload)

    @property
    def met(self):
        """Whether the kernels meet the JAX target: True, False, or None (no target, no JAX)."""
        ratio, target = self.jax_over_kernels, self.target
        if ratio is None or target is None:
            return None
        bound, strict = target
        return ratio > bound if strict else ratio >= bound


def _cell(seconds, floor):
    return f"{bench.format_seconds(seconds)} ({bench.format_ratio(seconds / floor)})"


def format_table(peer_rows, peers=tuple(PEERS)):
    """The peers' table: workload, floor, the kernels' and each peer's time with its ratio
    to the floor, and (with JAX) jax/kernels, whether the kernels are faster, the target, met."""
    with_jax = "jax" in peers
    columns = ["workload", "floor", "kernels", *peers]
    if with_jax:
        columns += ["jax/kernels", "faster than jax", "target", "met"]
    cells = [columns]
    for pr in peer_rows:
        r = pr.row
        line = [r.workload.name, bench.format_seconds(r.floor), _cell(r.kernels, r.floor)]
        for peer in peers:
            seconds = pr.seconds.get(peer)
            line.append("-" if peer not in pr.seconds else
                        "failed" if seconds is None else _cell(seconds, r.floor))
        if with_jax:
            ratio, target = pr.jax_over_kernels, pr.target
            line.append("-" if ratio is None else bench.format_ratio(ratio))
            line.append("-" if ratio is None else ("yes" if ratio > 1 else "NO"))
            line.append("-" if target is None else
                        f"{'>' if target[1] else '>='} {bench.format_ratio(target[0])}")
            line.append({None: "-", True: "yes", False: "NO"}[pr.met])
        cells.append(line)
    n = len(columns)
    left = {0} | ({n - 3, n - 2, n - 1} if with_jax else set())  # text columns
    return bench.layout_table(cells, left)


def caption(peers, repeats):
    """What the peers' table shows, and the peers' versions."""
    names = " and ".join({"pytorch": "PyTorch", "jax": "JAX"}[p] for p in peers)
    versions = ", ".join(f"{DISTRIBUTIONS[p]} {version(p)}" for p in peers if version(p))
    lines = [
        "Peers: the same workloads (shapes, dtype, data, initial parameters, loss) in",
        f"{names}, each in a process of its own; median of {repeats} "
        f"timing{'s' if repeats != 1 else ''},",
        "taken in rounds with the kernels' (one timing of each in turn a round),",
        "after as many rounds of the kernels alone, before the peers started;",
        "after each time, its ratio to the floor.",
    ]
    if "pytorch" in peers:
        lines.append("pytorch: eager autograd, k steps in a Python loop (epochs: torch.optim.Adam);")
    if "jax" in peers:
        lines += ["jax: jit of a lax.fori_loop of k steps (epochs: a lax.scan over the batches);",
                  "jax/kernels: JAX's time over the kernels'; target: issue 13's, on jax/kernels."]
    if versions:
        lines.append(f"{versions}.")
    return "\n".join(lines)


def agreement_line(peer_rows):
    """The line saying whether the kernels' times with the peers' processes running agree
    with their times before the peers started (each row's :attr:`bench.Row.alone`), or None
    when no row has both. Within :data:`AGREEMENT` on every workload, the peers took nothing
    measurable from the kernels between their timings."""
    ratios = [(pr.row.workload.name, pr.row.with_rivals_over_alone) for pr in peer_rows
              if pr.row.with_rivals_over_alone is not None]
    if not ratios:
        return None
    values = [ratio for _, ratio in ratios]
    off = [f"{name} {bench.format_ratio(ratio)}" for name, ratio in ratios
           if abs(ratio - 1.0) > AGREEMENT]
    verdict = (f"within {AGREEMENT:.0%} on every workload" if not off
               else f"NOT within {AGREEMENT:.0%}: " + ", ".join(off))
    return (f"kernels with the peers / alone (timed before the peers started): "
            f"{bench.format_ratio(min(values))} to {bench.format_ratio(max(values))} "
            f"(median {bench.format_ratio(statistics.median(values))}): {verdict}.")


def report(peer_rows, requested, installed, repeats):
    """The caption, the table and a note for each peer missing or failed (the text under the
    kernels' table)."""
    shown = [p for p in requested if p in installed]
    notes = [f"{peer}: {not_installed(peer)}" for peer in requested if peer not in installed]
    for pr in peer_rows:
        notes += [f"{peer} on {pr.row.workload.name}: {reason}" for peer, reason in pr.reasons.items()]
    if not shown:
        return "\n".join(["Peers: none timed."] + notes)
    parts = [caption(shown, repeats), "", format_table(peer_rows, shown)]
    agreement = agreement_line(peer_rows)
    if agreement is not None:
        parts += ["", agreement]
    if notes:
        parts += [""] + notes
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# The worker process and its runner
# ---------------------------------------------------------------------------


def worker_command(peer, workload, min_time=bench.MIN_TIME, dtype=None):
    """The command line of the worker (``python -m fastbackprop.peers ...``)."""
    name = workload.name if isinstance(workload, bench.Workload) else workload
    command = [sys.executable, "-m", "fastbackprop.peers", peer, name,
               "--min-time", repr(float(min_time))]
    if dtype is not None:
        command += ["--dtype", np.dtype(dtype).name]
    return command


class Worker:
    """A worker process timing one workload on one peer, a timing at a time.

    Entering starts ``python -m fastbackprop.peers`` and waits until it has
    compiled and warmed up; each :meth:`timing` asks it for one timing and
    keeps it in ``times``; leaving closes it. When it fails (it cannot start,
    answers with an error, exits, or takes longer than ``timeout`` seconds
    for one answer), ``reason`` says why, the process is stopped and further
    timings are skipped. ``median`` is the median of ``times``, or None when
    it failed.
    """

    def __init__(self, peer, workload, min_time=bench.MIN_TIME, timeout=TIMEOUT):
        if isinstance(workload, str):
            workload = bench.ALL_WORKLOADS[workload]
        own = bench.ALL_WORKLOADS.get(workload.name)
        dtype = None if own is not None and own.dtype == workload.dtype else workload.dtype
        self.peer, self.timeout = peer, timeout
        self.command = worker_command(peer, workload, min_time, dtype)
        self.times, self.reason, self.process = [], None, None

    @property
    def median(self):
        return None if self.reason is not None or not self.times else statistics.median(self.times)

    def __enter__(self):
        import tempfile

        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                        bufsize=1)
        self._answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._await("ready")
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def _read(self):
        """The reader thread: each JSON object the worker prints goes to ``_answers``;
        None when its output ends."""
        for line in self.process.stdout:
            try:
                answer = json.loads(line)
            except ValueError:  # a framework's message on standard output
                continue
            if isinstance(answer, dict):
                self._answers.put(answer)
        self._answers.put(None)

    def _await(self, key):
        """The worker's next answer's ``key``, or None after recording why there is none."""
        if self.reason is not None:
            return None
        try:
            answer = self._answers.get(timeout=self.timeout)
        except queue.Empty:
            return self._fail(f"timed out after {self.timeout:g} s")
        if answer is None:
            status = self.process.wait()
            self._stderr.seek(0)
            last = (self._stderr.read().strip().splitlines() or ["no output"])[-1]
            return self._fail(f"worker exited with status {status}: {last}")
        if "error" in answer:
            return self._fail(str(answer["error"]))
        if key not in answer:
            return self._fail(f"worker answered {answer!r}, not {key!r}")
        return answer[key]

    def _fail(self, reason):
        self.reason = reason
        self.close(kill=True)
        return None

    def timing(self):
        """One timing (seconds per step or epoch), kept in ``times``; None once failed."""
        if self.reason is not None:
            return None
        try:
            self.process.stdin.write("time\n")
            self.process.stdin.flush()
        except OSError:  # the worker has gone; _await reports how
            pass
        seconds = self._await("seconds")
        if seconds is not None:
            self.times.append(float(seconds))
        return seconds

    def close(self, kill=False):
        """Stop the worker: end its input and let it exit, or kill it (at once when ``kill``,
        else if it has not exited within 5 s)."""
        process, self.process = self.process, None
        if process is None:
            return
        if kill:
            process.kill()
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._stderr.close()


@contextlib.contextmanager
def workers(names, workload, min_time=bench.MIN_TIME, timeout=TIMEOUT, log=None):
    """A started :class:`Worker` for each peer in ``names`` on ``workload``, closed on exit."""
    log = sys.stderr if log is None else log
    with contextlib.ExitStack() as stack:
        started = []
        for peer in names:
            print(f"starting {peer} on {workload.name} ...", file=log, flush=True)
            started.append(stack.enter_context(Worker(peer, workload, min_time, timeout)))
        yield started


def measure(peer, workload, repeats, min_time=bench.MIN_TIME, timeout=TIMEOUT):
    """``repeats`` timings of ``peer`` on ``workload`` (a :class:`bench.Workload` or a name) in
    one worker process: ``(median seconds, None)``, or ``(None, reason)``."""
    with Worker(peer, workload, min_time, timeout) as worker:
        for _ in range(max(1, int(repeats))):
            worker.timing()
    return worker.median, worker.reason


def _parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m fastbackprop.peers",
        description="Time one workload of fastbackprop bench on a peer framework. Prints "
                    '{"ready": true} once compiled, then {"seconds": ...} for each line "time" '
                    'read from standard input, until it ends; {"error": ...} on failure. '
                    "Every answer is one JSON line.")
    parser.add_argument("peer", choices=list(PEERS))
    parser.add_argument("workload", choices=list(bench.ALL_WORKLOADS))
    parser.add_argument("--min-time", type=float, default=bench.MIN_TIME, metavar="S")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None)
    return parser


def main(argv=None, requests=None):
    """The worker: set up one (peer, workload), then answer each ``"time"`` line of
    ``requests`` (standard input) with one timing, as JSON lines."""
    args = _parser().parse_args(argv)
    requests = sys.stdin if requests is None else requests
    workload = bench.ALL_WORKLOADS[args.workload]
    if args.dtype:
        workload = workload.with_dtype(args.dtype)
    if args.peer not in available():
        return _answer({"error": not_installed(args.peer)}, 1)
    try:
        timing = peer_timer(args.peer, bench.make_problem(workload), args.min_time)
        _answer({"ready": True}, 0)
        for request in requests:
            if request.strip() != "time":
                return _answer({"error": f"unknown request {request.strip()!r}"}, 1)
            _answer({"seconds": timing()}, 0)
    except ImportError as error:
        return _answer({"error": f"cannot be imported ({error})"}, 1)
    except Exception as error:  # anything the framework raises: one line, not a traceback
        message = " ".join(str(error).split())[:300]
        return _answer({"error": f"{type(error).__name__}: {message}"}, 1)
    return 0


def _answer(answer, status):
    print(json.dumps(answer), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
