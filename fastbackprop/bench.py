"""``fastbackprop bench``: time per training step, reference against kernels against the GEMM floor.

One registry, :data:`WORKLOADS`, holds the workloads of ``docs/benchmarks.md``;
it drives this table and the asv suite in ``asv_bench/`` alike.

A **step** is one full-batch gradient-descent step: forward, the cost
(computed every step, from ``ZL``), backward from ``dZ_L = A_L - Y``, and the
update. Times are seconds per step, the median of ``repeats`` timings, each
timing running enough steps to last at least ``min_time`` seconds.

* reference: :func:`step` with :mod:`fastbackprop.reference`
  (``L_model_forward``, ``compute_cost_from_logits`` on ``ZL``,
  ``L_model_backward(output_start="dZ")``, ``update_parameters``), in a
  Python loop;
* kernels: ``kernels.Trainer(..., cost_every=1).run(k)``, divided by ``k``
  (compiled before it is timed);
* floor: :func:`step_flops` divided by :func:`gemm_rate` of the workload's
  dtype, measured in the same run.

This module imports Numba only when the kernels are timed.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from . import reference
from .datasets import load_planar_dataset, make_classification

#: Learning rate of every benchmark problem (small enough never to diverge
#: over the many thousands of steps a timing runs; speed does not depend on it).
LEARNING_RATE = 0.0075

#: Learning rate of the epoch workloads (Adam's usual 0.001).
ADAM_LEARNING_RATE = 0.001

#: Seed of the benchmark data and initial parameters.
SEED = 0

#: Side of the square product that measures the machine's GEMM rate.
GEMM_SIZE = 2048

#: A single timing lasts at least this long (seconds).
MIN_TIME = 0.1

#: The side of the GEMM timed after each workload to see whether the machine stayed as
#: fast through the run (:func:`steadiness`), and how much slower a run may see it before
#: the run is called unsteady.
PROBE_SIZE = 1024
STEADY = 0.85

#: The second probe after each workload (:func:`core_slowdown`): the same independent work on
#: every core at once, over the time it takes one thread alone. At most this, every core was
#: free to the run. (On the 2-core AVX2 EPYC: 1.10 to 1.14 with both cores free, 1.6 to 2.0
#: while the host gave one to other guests.)
CORES_FREE = 1.3

#: Pause (seconds) before timing one backend after the other. NumPy and
#: SciPy (whose BLAS the kernels call) each bundle their own OpenBLAS; the
#: threads of the one used last keep spinning for a while after a product
#: and slow the other's down (up to 2x measured on 2 cores).
SETTLE = 0.3


# ---------------------------------------------------------------------------
# The workload registry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One workload and its target for the kernels.

    ``target_seconds`` is an absolute bound on the kernels' time per step;
    ``target_floor_ratio`` a bound on kernels / floor. One of them is set.
    """

    name: str
    layer_dims: tuple
    hidden: str
    m: int
    dtype: str
    target_seconds: float | None = None
    target_floor_ratio: float | None = None
    output: str = "sigmoid"
    batch_size: int | None = None
    optimizer: str = "gd"
    shuffle: bool = True

    @property
    def target(self):
        """The target as text: ``"<= 5 us"`` or ``"<= 1.15x floor"``."""
        if self.target_seconds is not None:
            return f"<= {format_seconds(self.target_seconds)}"
        return f"<= {self.target_floor_ratio:.2f}x floor"

    def met(self, kernels_seconds, floor_seconds):
        """True when the kernels' time per step meets the target."""
        if self.target_seconds is not None:
            return kernels_seconds <= self.target_seconds
        return kernels_seconds <= self.target_floor_ratio * floor_seconds

    def with_dtype(self, dtype):
        """The same workload computed in ``dtype`` (``"float32"`` or ``"float64"``)."""
        return replace(self, dtype=np.dtype(dtype).name)

    @property
    def label(self):
        """``[784, 256, 128, 10] relu m=512 float64`` (and the output layer unless sigmoid,
        the batch size and optimiser of epoch workloads)."""
        output = "" if self.output == "sigmoid" else f" {self.output}"
        batches = "" if self.batch_size is None else f" {self.optimizer} batch={self.batch_size}"
        return f"{list(self.layer_dims)} {self.hidden}{output}{batches} m={self.m} {self.dtype}"


#: name -> :class:`Workload`, in the order of ``docs/benchmarks.md``.
WORKLOADS = {
    w.name: w
    for w in (
        Workload("planar", (2, 4, 1), "tanh", 400, "float64", target_seconds=5e-6),
        Workload("small", (20, 64, 64, 1), "relu", 256, "float64", target_floor_ratio=1.5),
        Workload("deep", (12288, 20, 7, 5, 1), "relu", 209, "float64", target_floor_ratio=1.4),
        Workload("mlp", (784, 256, 128, 10), "relu", 512, "float64", target_floor_ratio=1.15),
        Workload("mlp32", (784, 256, 128, 10), "relu", 512, "float32", target_floor_ratio=1.15),
        Workload("softmax", (784, 256, 128, 10), "relu", 512, "float64", target_floor_ratio=1.15,
                 output="softmax"),
        Workload("softmax32", (784, 256, 128, 10), "relu", 512, "float32",
                 target_floor_ratio=1.15, output="softmax"),
    )
}


#: name -> :class:`Workload` of mini-batch epochs (softmax, Adam, shuffled, on
#: MNIST-shaped random data): a row times one epoch, not one step.
EPOCH_WORKLOADS = {
    w.name: w
    for w in (
        Workload("mnist128", (784, 256, 128, 10), "relu", 60000, "float32",
                 target_floor_ratio=1.3, output="softmax", batch_size=128, optimizer="adam"),
        Workload("mnist64d", (784, 256, 128, 10), "relu", 60000, "float64",
                 target_floor_ratio=1.3, output="softmax", batch_size=64, optimizer="adam"),
        Workload("wide1024", (784, 1024, 1024, 10), "relu", 20000, "float32",
                 target_floor_ratio=1.15, output="softmax", batch_size=256, optimizer="adam"),
        Workload("digits32", (64, 64, 10), "relu", 1797, "float64",
                 target_floor_ratio=2.0, output="softmax", batch_size=32, optimizer="adam"),
        # SimpleChains.jl's headline: full-batch Adam (one batch of every example, in order)
        Workload("chains", (4, 32, 16, 4), "tanh", 10000, "float32", target_floor_ratio=3.0,
                 output="linear", batch_size=10000, optimizer="adam", shuffle=False),
    )
}

#: Issue 29's sparse epoch (TF-IDF-shaped: ``m`` documents, ``n_x`` features at ``density``,
#: ``[n_x, 64, 20]`` relu, softmax, Adam, batch 200, float64), timed by asv's ``SparseEpoch``
#: and, against scikit-learn and PyTorch, by ``tools/sparse_speed.py`` (docs/sparse.md).
SPARSE_EPOCH = dict(m=20000, n_x=50000, density=0.002, n_1=64, n_classes=20, batch_size=200)


def sparse_problem(m=20000, n_x=50000, density=0.002, n_classes=20, seed=0):
    """``X`` CSR ``(m, n_x)`` (scikit-learn's layout) of positive TF-IDF-like values and
    ``y`` ``(m,)`` classes, drawn from ``seed``."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    X = sparse.random(m, n_x, density=density, format="csr", random_state=rng)
    X.data = rng.random(X.data.size)
    return X, rng.integers(0, n_classes, m)


#: Every workload by name: the full-batch steps, then the mini-batch epochs.
ALL_WORKLOADS = {**WORKLOADS, **EPOCH_WORKLOADS}


#: Configurations whose cold first fit (compilation included) is tracked:
#: name -> (data, ``Model`` keyword arguments). ``planar`` is the start-up
#: figure's network (docs/startup.md); each other compiles another hidden
#: activation, output layer and optimiser, some with mini-batches, L2 and
#: dropout. Data: ``"planar"`` the flower, ``"digits"`` digits-shaped
#: random data (64 features, 10 classes, 1797 examples), ``"regression"``
#: 3 features, 500 examples, a smooth target.
COLD_FITS = {
    "planar": ("planar", dict(layer_dims=[2, 4, 1], hidden_activation="tanh", learning_rate=1.2,
                              n_epochs=1000, init="scaled")),
    "adam": ("digits", dict(layer_dims=[64, 32, 10], hidden_activation="relu",
                            output_activation="softmax", optimizer="adam", batch_size=32,
                            learning_rate=0.001, n_epochs=20)),
    "rmsprop": ("regression", dict(layer_dims=[3, 16, 1], hidden_activation="sigmoid",
                                   output_activation="linear", optimizer="rmsprop",
                                   batch_size=16, learning_rate=0.001, n_epochs=20)),
    "momentum": ("planar", dict(layer_dims=[2, 8, 1], hidden_activation="leaky_relu",
                                optimizer="momentum", learning_rate=0.1, n_epochs=200)),
    "regularised": ("digits", dict(layer_dims=[64, 32, 32, 10], hidden_activation="relu",
                                   output_activation="softmax", optimizer="adam", batch_size=64,
                                   learning_rate=0.001, n_epochs=10, l2=0.1, keep_prob=0.8)),
    # scikit-learn's defaults on digits: batches of 200 split between the threads
    "threads": ("digits", dict(layer_dims=[64, 100, 10], hidden_activation="relu",
                               output_activation="softmax", optimizer="adam", batch_size=200,
                               learning_rate=0.001, n_epochs=10, n_threads=2)),
}

_COLD_FIT_DATA = """
import numpy as np
from fastbackprop import Model
from fastbackprop.datasets import load_planar_dataset
data = {data!r}
if data == "planar":
    X, Y = load_planar_dataset()
elif data == "digits":
    g = np.random.default_rng(0)
    X = g.random((64, 1797)); Y = np.eye(10)[:, g.integers(0, 10, 1797)]
else:
    g = np.random.default_rng(0)
    X = g.standard_normal((3, 500)); Y = np.sin(X[:1]) + X[1:2] ** 2
"""


def cold_fit_code(name):
    """``(setup, fit)``: Python code that makes the data of ``COLD_FITS[name]``, and code
    that fits its ``Model`` on the numba backend (only public API, so it runs against
    any version of the package)."""
    data, kwargs = COLD_FITS[name]
    return (_COLD_FIT_DATA.format(data=data),
            f"Model(seed=0, backend='numba', **{kwargs!r}).fit(X, Y)")


@dataclass
class Problem:
    """Data and initial parameters of one workload, in its dtype."""

    workload: Workload
    X: np.ndarray
    Y: np.ndarray
    parameters: dict


def make_problem(workload, seed=SEED):
    """``X`` ``(n_x, m)``, ``Y`` ``(n_L, m)`` and He-initialised parameters for ``workload``.

    planar uses :func:`load_planar_dataset`; the others
    :func:`make_classification`. ``workload`` is a :class:`Workload` or a name.
    """
    if isinstance(workload, str):
        workload = ALL_WORKLOADS[workload]
    dims = list(workload.layer_dims)
    dtype = np.dtype(workload.dtype)
    if workload.name == "planar":
        X, Y = load_planar_dataset(m=workload.m, dtype=dtype)
    elif workload.name == "chains":  # SimpleChains.jl's: a smooth map from 4 inputs to 4
        generator = np.random.default_rng(seed)
        X = generator.standard_normal((dims[0], workload.m)).astype(dtype)
        Y = np.vstack([np.sin(X[0] + X[1]), np.cos(X[2]) * X[3], X[0] * X[2],
                       np.tanh(X[1] - X[3])]).astype(dtype)
        return Problem(workload, X, Y, reference.initialize_parameters(
            dims, init="he", seed=seed, dtype=dtype))
    elif workload.batch_size is not None:  # MNIST-shaped random data: pixels, 10 classes
        generator = np.random.default_rng(seed)
        X = generator.random((dims[0], workload.m), dtype=np.float32).astype(dtype)
        Y = np.eye(dims[-1], dtype=dtype)[:, generator.integers(0, dims[-1], workload.m)]
        return Problem(workload, X, Y, reference.initialize_parameters(
            dims, init="he", seed=seed, dtype=dtype))
    else:
        X, Y = make_classification(dims[0], workload.m, n_y=dims[-1], seed=seed, dtype=dtype)
    if workload.output == "softmax":  # one class per column: the first label set, else the last
        Y = np.eye(dims[-1], dtype=dtype)[:, np.argmax(Y, axis=0)]
    parameters = reference.initialize_parameters(dims, init="he", seed=seed, dtype=dtype)
    return Problem(workload, X, Y, parameters)


# ---------------------------------------------------------------------------
# What is timed
# ---------------------------------------------------------------------------


def step(backend, X, Y, parameters, hidden, learning_rate=LEARNING_RATE, output="sigmoid"):
    """One full gradient-descent step through ``backend``'s step functions.

    ``backend`` is :mod:`fastbackprop.reference` or :mod:`fastbackprop.kernels`
    (one interface, two backends). Returns the new parameters and the cost
    before the update.
    """
    AL, caches = backend.L_model_forward(X, parameters, hidden, output)
    cost = backend.compute_cost_from_logits(caches[-1][1], Y, output)
    grads = backend.L_model_backward(AL, Y, caches, hidden, "dZ", output)
    return backend.update_parameters(parameters, grads, learning_rate), cost


def step_flops(layer_dims, m):
    """Matrix-product FLOPs of one training step of ``layer_dims`` on ``m`` examples.

    Per layer ``l``: ``W A_prev`` and ``dZ A_prev^T`` cost ``2 n_l n_{l-1} m``
    each; ``W^T dZ`` (``dA_prev``) costs as much again for layers 2..L only,
    since ``dA0`` is never needed in training.
    """
    dims = [int(n) for n in layer_dims]
    total = 0
    for l in range(1, len(dims)):
        products = 2 if l == 1 else 3
        total += products * 2 * dims[l] * dims[l - 1] * int(m)
    return total


def gemm_rate(dtype, n=GEMM_SIZE, repeats=3):
    """FLOP/s of an ``n x n`` by ``n x n`` product (NumPy ``@``) in ``dtype``: median of ``repeats``."""
    rng = np.random.default_rng(SEED)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    C = np.empty((n, n), dtype=dtype)
    np.matmul(A, B, out=C)  # warm-up: BLAS threads, page faults
    times = []
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        np.matmul(A, B, out=C)
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / statistics.median(times)


def cpu_model():
    """The CPU's model name (Linux's ``/proc/cpuinfo``, else what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def steadiness(rates, dtype):
    """The line saying how fast a ``PROBE_SIZE`` GEMM in ``dtype`` ran after each workload
    (``rates``, FLOP/s): steady when the slowest is at least :data:`STEADY` of the fastest.
    On a shared or virtual machine a slow period (other guests on the host) moves every
    ratio of the run; this says whether one fell inside it."""
    low, mid, high = min(rates) / 1e9, statistics.median(rates) / 1e9, max(rates) / 1e9
    verdict = ("steady" if low >= STEADY * high else
               "NOT steady: a slow period fell inside the run; its rows are not comparable "
               "with each other or with another run's")
    return (f"machine: a {PROBE_SIZE}x{PROBE_SIZE} {np.dtype(dtype).name} GEMM after each "
            f"workload ran at {low:.0f} to {high:.0f} GFLOP/s (median {mid:.0f}): {verdict}.")


def core_slowdown(threads=None, size=32768, calls=40):
    """How many times longer ``threads`` threads (default: the CPUs) take, started together,
    to each do the work one thread does alone: ``calls`` of ``np.exp`` over its own
    ``size`` float64 (256 KB: in the core's L2), which NumPy runs without the GIL.

    1.0 when every core is free; 2.0 on two threads when only one core is to be had. A
    virtual machine's host can give a vCPU to other guests for seconds at a time, which a
    GEMM rate alone may miss between probes; a run's P-thread timings are comparable with
    its one-thread ones only while this stays near 1 (:data:`CORES_FREE`)."""
    import threading

    P = usable_cpus() if threads is None else int(threads)
    if P < 2:
        return 1.0  # nothing runs beside the one thread
    arrays = [np.linspace(-1.0, 1.0, size) for _ in range(P)]
    outs = [np.empty(size) for _ in range(P)]

    def work(p):
        for _ in range(calls):
            np.exp(arrays[p], out=outs[p])

    work(0)  # warm-up
    start = time.perf_counter()
    work(0)
    alone = time.perf_counter() - start
    ready = threading.Barrier(P + 1)

    def worker(p):
        ready.wait()
        work(p)

    team = [threading.Thread(target=worker, args=(p,)) for p in range(P)]
    for thread in team:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in team:
        thread.join()
    return (time.perf_counter() - start) / alone


def usable_cpus():
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def cores_line(slowdowns):
    """The line saying how free the cores were after each workload (``slowdowns`` from
    :func:`core_slowdown`): free when the worst is at most :data:`CORES_FREE`."""
    low, mid, high = min(slowdowns), statistics.median(slowdowns), max(slowdowns)
    P = usable_cpus()
    verdict = ("every core free" if high <= CORES_FREE else
               "NOT free: at times other work held a core; the P-thread timings of the "
               "rows around it are not comparable with the one-thread ones")
    return (f"cores: {P} threads of independent work after each workload took {low:.2f}x "
            f"to {high:.2f}x one thread's time (median {mid:.2f}x): {verdict}.")


def timer(run, min_time=MIN_TIME):
    """A function that times ``run(k)`` once (``run(k)`` does ``k`` units of work) and returns
    the seconds per unit.

    ``run(1)`` is called once first (warm-up), and its time sets ``k`` so
    that one timing of ``run(k)`` lasts at least ``min_time``.
    """
    start = time.perf_counter()
    run(1)
    once = time.perf_counter() - start
    k = max(1, math.ceil(min_time / max(once, 1e-9)))

    def timing():
        start = time.perf_counter()
        run(k)
        return (time.perf_counter() - start) / k

    return timing


def median_timing(timing, repeats):
    """The median of ``repeats`` (at least one) calls of ``timing``, a :func:`timer`."""
    return statistics.median(timing() for _ in range(max(1, int(repeats))))


def time_per_call(run, repeats, min_time=MIN_TIME):
    """Median seconds per unit of ``run(k)`` over ``repeats`` timings of a :func:`timer`."""
    return median_timing(timer(run, min_time), repeats)


def epoch_timer(backend, problem, min_time=MIN_TIME, n_threads=None):
    """A :func:`timer` of ``backend``'s ``Trainer`` (``"numba"`` or ``"numpy"``) on an epoch
    workload: each timing is ``run(k) / k`` seconds per epoch, after one epoch that compiles
    (numba)."""
    from . import backends

    w = problem.workload
    trainer = backends.get(backend).Trainer(
        problem.parameters, problem.X, problem.Y, w.hidden, ADAM_LEARNING_RATE, cost_every=1,
        output_activation=w.output, optimizer=w.optimizer, batch_size=w.batch_size, seed=SEED,
        shuffle=w.shuffle, **({} if backend == "numpy" else {"n_threads": n_threads}))
    trainer.run(1)
    timing = timer(_checked(trainer, w), min_time)
    timing.n_threads = getattr(trainer, "n_threads", 1)
    timing.by_units = getattr(trainer, "by_units", False)
    return timing


def epoch_time(backend, problem, repeats, min_time=MIN_TIME):
    """Median seconds per epoch of :func:`epoch_timer` over ``repeats`` timings."""
    return median_timing(epoch_timer(backend, problem, min_time), repeats)


def _checked(trainer, workload):
    """``run(k)``: ``trainer.run(k)``, raising when training stopped (the timing is void)."""

    def run(k):
        status = trainer.run(k)
        if status != "ok":
            raise RuntimeError(f"{workload.name}: training stopped with status {status!r} "
                               f"at iteration {trainer.failed_at}; the timing is void")

    return run


def reference_step_time(problem, repeats, min_time=MIN_TIME):
    """Median seconds per step of the reference, :func:`step` in a Python loop."""
    w = problem.workload
    X, Y, parameters = problem.X, problem.Y, problem.parameters

    def run(k):
        nonlocal parameters
        for _ in range(k):
            parameters, _cost = step(reference, X, Y, parameters, w.hidden, output=w.output)

    return time_per_call(run, repeats, min_time)


def kernels_step_timer(problem, min_time=MIN_TIME, n_threads=None):
    """A :func:`timer` of ``kernels.Trainer(..., cost_every=1).run(k) / k``: seconds per step."""
    from . import kernels  # imports Numba

    w = problem.workload
    trainer = kernels.Trainer(problem.parameters, problem.X, problem.Y,
                              hidden_activation=w.hidden, learning_rate=LEARNING_RATE,
                              cost_every=1, output_activation=w.output, n_threads=n_threads)
    trainer.run(2)  # compile (or load from the cache) before anything is timed
    timing = timer(_checked(trainer, w), min_time)
    timing.n_threads = trainer.n_threads
    return timing


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


@dataclass
class Row:
    """One measured workload: seconds per step and the GEMM rate the floor came from."""

    workload: Workload
    reference: float
    kernels: float
    flops: int
    gemm_rate: float
    one_thread: float | None = None  # the kernels held to one thread (None: not timed apart)
    threads: int = 1  # the threads the kernels' own rule gave
    alone: float | None = None  # the kernels before any rival started (None: no rivals)
    rivals: tuple = ()  # the rivals timed in turn with the kernels (peers.Worker)
    by_units: bool = False  # the threads split each step by hidden units (kernels/units.py)

    @property
    def with_rivals_over_alone(self):
        """The kernels' time among the rivals over their time before the rivals started
        (None without rivals): near 1 when the rivals' processes take nothing from them."""
        return None if self.alone is None else self.kernels / self.alone

    @property
    def floor(self):
        return self.flops / self.gemm_rate

    @property
    def kernels_over_floor(self):
        return self.kernels / self.floor

    @property
    def speedup(self):
        """reference / kernels."""
        return self.reference / self.kernels

    @property
    def met(self):
        return self.workload.met(self.kernels, self.floor)


def format_seconds(seconds):
    """``3.1 us``, ``412 us``, ``4.82 ms``, ``1.30 s``: three significant digits."""
    if not math.isfinite(seconds):
        return str(seconds)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            value = seconds / scale
            digits = 2 if value < 10 else (1 if value < 100 else 0)
            return f"{value:.{digits}f} {unit}"


def format_ratio(ratio):
    """``1.07x``, ``12.4x``, ``215x``."""
    digits = 2 if ratio < 10 else (1 if ratio < 100 else 0)
    return f"{ratio:.{digits}f}x"


COLUMNS = ("workload", "dtype", "reference", "kernels", "floor", "kernels/floor",
           "ref/kernels", "target", "met")


def format_table(rows):
    """The rows as an aligned plain-text table (one header line, a rule, one line a row)."""
    cells = [COLUMNS]
    for r in rows:
        cells.append((
            r.workload.name, r.workload.dtype, format_seconds(r.reference),
            format_seconds(r.kernels), format_seconds(r.floor),
            format_ratio(r.kernels_over_floor), format_ratio(r.speedup),
            r.workload.target, "yes" if r.met else "NO",
        ))
    return layout_table(cells, left={0, 1, 7, 8})  # text columns; numbers right-aligned


def format_threads(rows):
    """The kernels on one thread and on the threads their rule gives, side by side (the
    workloads the rule splits; "by units": each step split by hidden units)."""
    cells = [("workload", "threads", "1 thread", "P threads", "1 thread/P threads",
              "P threads/floor")]
    for r in rows:
        one = r.one_thread if r.one_thread is not None else r.kernels
        cells.append((r.workload.name, f"{r.threads}{' by units' if r.by_units else ''}",
                      format_seconds(one), format_seconds(r.kernels),
                      format_ratio(one / r.kernels), format_ratio(r.kernels_over_floor)))
    return layout_table(cells, left={0})


def layout_table(cells, left):
    """Rows of text cells (the first the header) as aligned columns under a rule of dashes;
    the columns numbered in ``left`` are left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]

    def fmt(line):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule] + [fmt(line) for line in cells[1:]])


def caption(rates, repeats):
    """What the table shows and where the floor comes from."""
    parts = ", ".join(f"{np.dtype(d).name} {rate / 1e9:.1f} GFLOP/s" for d, rate in rates.items())
    return (
        "Seconds per full-batch gradient-descent step (forward, cost from ZL every step,\n"
        "backward from dZ_L = A_L - Y, update), or per epoch for the mini-batch workloads\n"
        "(softmax, Adam, shuffled batches, the cost recorded every epoch); median of "
        f"{repeats} timing{'s' if repeats != 1 else ''}.\n"
        "reference: the NumPy step functions in a Python loop;\n"
        "kernels: kernels.Trainer(cost_every=1).run(k) / k;\n"
        "(an epoch's reference and kernels: Trainer(...).run(k) / k of each backend);\n"
        "floor: the step's matrix-product FLOPs (W A_prev and dW for every layer, dA_prev\n"
        f"for layers 2..L) / the rate of a {GEMM_SIZE}x{GEMM_SIZE} GEMM "
        f"measured in this run:\n{parts}.\n"
        f"numpy {np.__version__}, {_numba_version()}, {usable_cpus()} CPUs ({cpu_model()})."
    )


def _numba_version():
    try:
        from importlib.metadata import version

        return f"numba {version('numba')}"
    except Exception:  # pragma: no cover - numba is a dependency
        return "numba ?"


def measure(workload, gemm_rates, repeats, min_time=MIN_TIME, rivals=None):
    """Time ``workload`` (a :class:`Workload`) with both backends: a :class:`Row`.

    The reference is timed first. Then the kernels (and, when the rule gave
    them ``P`` threads, the same kernels on one thread) are timed in
    ``repeats`` rounds, each timing after a :data:`SETTLE` pause.

    ``rivals``, when given, is a context manager not yet entered that starts
    the rivals and yields them (:func:`fastbackprop.peers.workers`). A rival is
    an object whose ``timing()`` does one timing and keeps it (such as a
    :class:`fastbackprop.peers.Worker`); it takes its own median. The kernels
    are then first timed in ``repeats`` rounds alone, before any rival
    starts (``Row.alone``), and then in ``repeats`` rounds with them: one
    timing of the kernels, then one of each rival. Timed in turn, the
    kernels and the rivals share the machine's slow periods, which last
    minutes on the development machine, instead of one of them timing all
    its repeats in one; the timings alone show whether the rivals' processes
    (their thread pools, which may spin after work) took anything from the
    kernels.
    """
    problem = make_problem(workload)
    time.sleep(SETTLE)
    if workload.batch_size is None:
        ref = reference_step_time(problem, repeats, min_time)
        kernels_timing = kernels_step_timer(problem, min_time)
    else:
        ref = epoch_time("numpy", problem, max(1, min(repeats, 3)), min_time)
        kernels_timing = epoch_timer("numba", problem, min_time)
    threads = getattr(kernels_timing, "n_threads", 1)
    one_timing = None
    if threads > 1:  # the same kernels on one thread, timed in the same rounds
        one_timing = (kernels_step_timer(problem, min_time, n_threads=1)
                      if workload.batch_size is None
                      else epoch_timer("numba", problem, min_time, n_threads=1))
    alone, started = None, ()
    if rivals is None:
        times, one_times = _rounds(repeats, kernels_timing, one_timing)
    else:
        alone = statistics.median(_rounds(repeats, kernels_timing)[0])
        with rivals as started:
            times, one_times = _rounds(repeats, kernels_timing, one_timing, started)
    return Row(workload, ref, statistics.median(times),
               step_flops(workload.layer_dims, workload.m),
               gemm_rates[np.dtype(workload.dtype).name],
               statistics.median(one_times) if one_times else statistics.median(times), threads,
               alone, tuple(started), getattr(kernels_timing, "by_units", False))


def _rounds(repeats, kernels_timing, one_timing=None, rivals=()):
    """``repeats`` rounds of one timing of the kernels, then of the kernels on one thread (if
    ``one_timing``), then of each of ``rivals``, each after a :data:`SETTLE` pause:
    ``(kernels' times, one-thread times)``."""
    times, one_times = [], []
    for _ in range(max(1, int(repeats))):
        time.sleep(SETTLE)
        times.append(kernels_timing())
        if one_timing is not None:
            time.sleep(SETTLE)
            one_times.append(one_timing())
        for rival in rivals:
            time.sleep(SETTLE)
            rival.timing()
    return times, one_times


# ---------------------------------------------------------------------------
# The subcommand
# ---------------------------------------------------------------------------


def add_arguments(parser):
    """Add ``fastbackprop bench``'s options to ``parser`` (an ``argparse`` parser)."""
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), metavar="NAMES",
        help=f"comma-separated workloads to time: full-batch steps {','.join(WORKLOADS)}; "
             f"mini-batch epochs {','.join(EPOCH_WORKLOADS)} (default: the steps)")
    parser.add_argument(
        "--epochs", action="store_true",
        help="time the mini-batch epoch workloads too (or name them in --workloads)")
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], default=None,
        help="compute every workload in this dtype (default: each workload's own)")
    parser.add_argument(
        "--repeats", type=int, default=None, metavar="N",
        help="timings per measurement; the table quotes their median (default: 5, --quick: 1)")
    parser.add_argument(
        "--quick", action="store_true",
        help="one short timing per measurement: a rough table, fast")
    parser.add_argument(
        "--check", action="store_true",
        help="exit with status 1 when a workload misses its target (with --peers, "
             "its target against JAX too)")
    parser.add_argument(
        "--peers", nargs="?", const="all", default=None, metavar="NAMES",
        help="time the same workloads in PyTorch and JAX too, each in its own process, "
             "and print them in a second table (or only the comma-separated NAMES: pytorch, "
             "jax); a peer not installed is reported and skipped")
    return parser


def selected_workloads(names, dtype=None):
    """The :class:`Workload` list for a comma-separated ``names``; ``ValueError`` on unknown ones."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in ALL_WORKLOADS]
    if unknown or not chosen:
        raise ValueError(f"--workloads must be a comma-separated subset of "
                         f"{','.join(ALL_WORKLOADS)}; got {names!r}")
    workloads = [ALL_WORKLOADS[n] for n in dict.fromkeys(chosen)]
    return [w.with_dtype(dtype) for w in workloads] if dtype else workloads


def run(args, out=None):
    """Run ``fastbackprop bench`` with parsed ``args``; print the table; return the exit status."""
    out = sys.stdout if out is None else out
    names = args.workloads + ("," + ",".join(EPOCH_WORKLOADS) if getattr(args, "epochs", False)
                              else "")
    try:
        workloads = selected_workloads(names, args.dtype)
    except ValueError as error:
        print(f"fastbackprop bench: {error}", file=sys.stderr)
        return 2
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    if repeats < 1:
        print(f"fastbackprop bench: --repeats must be at least 1; got {repeats}", file=sys.stderr)
        return 2
    requested = getattr(args, "peers", None)
    if requested is not None:
        from . import peers  # imports neither PyTorch nor JAX: they run in their own processes

        try:
            requested = peers.selected(requested)
        except ValueError as error:
            print(f"fastbackprop bench: {error}", file=sys.stderr)
            return 2
        installed = peers.available()
        timed_peers = [p for p in requested if p in installed]
    min_time = MIN_TIME / 4 if args.quick else MIN_TIME
    dtypes = list(dict.fromkeys(np.dtype(w.dtype).name for w in workloads))
    rates = {d: gemm_rate(d, repeats=max(repeats, 3)) for d in dtypes}
    rows, peer_rows = [], []
    probe = [gemm_rate(dtypes[0], n=PROBE_SIZE)]
    slowdowns = [core_slowdown()]
    for w in workloads:
        print(f"timing {w.name}: {w.label} ...", file=sys.stderr, flush=True)
        if requested is None:
            rows.append(measure(w, rates, repeats, min_time))
        else:
            rows.append(measure(w, rates, repeats, min_time,
                                peers.workers(timed_peers, w, min_time) if timed_peers
                                else None))
            peer_rows.append(peers.PeerRow.of(rows[-1], rows[-1].rivals))
        probe.append(gemm_rate(dtypes[0], n=PROBE_SIZE))
        slowdowns.append(core_slowdown())
    print(caption(rates, repeats), file=out)
    print(steadiness(probe, dtypes[0]), file=out)
    print(cores_line(slowdowns), file=out)
    print(file=out)
    print(format_table(rows), file=out)
    threaded = [r for r in rows if r.threads > 1]
    if threaded:
        print(file=out)
        print(format_threads(threaded), file=out)
    if requested is not None:
        print(file=out)
        print(peers.report(peer_rows, requested, installed, repeats), file=out)
    out.flush()
    if args.check and (not all(r.met for r in rows)
                       or any(pr.met is False for pr in peer_rows)):
        return 1
    return 0
