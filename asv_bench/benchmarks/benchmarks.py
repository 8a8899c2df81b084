"""Benchmarks of both backends ("numpy" = fastbackprop.reference, "numba" = fastbackprop.kernels).

Every class is parametrised over the workloads (the registry in
:mod:`fastbackprop.bench`) and the backends (:mod:`fastbackprop.backends`). Each ``setup``
builds the problem and calls the timed function once, so the Numba kernels
are compiled (or loaded from the on-disk cache) before anything is timed.
Only :class:`Startup` times compilation, in fresh processes.
"""

import os
import time

import inspect

import numpy as np

from fastbackprop import activations, backends, reference, spec
from fastbackprop.bench import (
    ADAM_LEARNING_RATE,
    COLD_FITS,
    EPOCH_WORKLOADS,
    GEMM_SIZE,
    LEARNING_RATE,
    SEED,
    SETTLE,
    WORKLOADS,
    cold_fit_code,
    gemm_rate,
    make_problem,
    step,
)

#: CI's smoke run (``.ci/run`` sets ``FASTBACKPROP_ASV_SMOKE=1``): every benchmark runs once,
#: to prove the suite works (CI compares no timings), over a few of its parameters: the
#: smallest step workloads, two epoch workloads and two cold fits. The whole asv run took
#: 4.7 to 6.6 of CI's 19 minutes on the AVX2 EPYC of 6 December.
SMOKE = os.environ.get("FASTBACKPROP_ASV_SMOKE", "") == "1"

WORKLOAD_NAMES = ["planar", "small"] if SMOKE else list(WORKLOADS)
EPOCH_NAMES = ["digits32", "chains"] if SMOKE else list(EPOCH_WORKLOADS)
COLD_FIT_NAMES = ["planar", "threads"] if SMOKE else list(COLD_FITS)
BACKENDS = list(spec.BACKENDS)

#: Iterations of the fit benchmarks.
FIT_ITERATIONS = 100


def backend_module(backend):
    """The module implementing ``backend``'s step functions."""
    return backends.get(backend).steps


def settle(backend):
    """Let NumPy's OpenBLAS threads go idle before the kernels (SciPy's OpenBLAS) are timed.

    ``setup`` uses NumPy's products to make the data; their threads keep
    spinning for a moment and would slow down the first numba samples.
    """
    if backend == "numba":
        time.sleep(SETTLE)


class _Workload:
    """Base: ``self.problem``, ``self.w`` (its Workload) and ``self.module`` (the backend).

    Subclasses call the timed functions once at the end of ``setup`` (the
    warm-up that compiles the kernels), then :func:`settle`.
    """

    params = (WORKLOAD_NAMES, BACKENDS)
    param_names = ["workload", "backend"]

    def setup(self, workload, backend):
        self.problem = make_problem(workload)
        self.w = self.problem.workload
        self.backend = backend
        self.module = backend_module(backend)


class Forward(_Workload):
    """The forward pass: the first hidden layer alone, and the whole network."""

    def setup(self, workload, backend):
        super().setup(workload, backend)
        p = self.problem.parameters
        self.W1, self.b1 = p["W1"], p["b1"]
        self.time_layer_forward(workload, backend)
        self.time_L_model_forward(workload, backend)
        settle(backend)

    def time_layer_forward(self, workload, backend):
        """A1 = g(W1 X + b1): ``linear_activation_forward`` on the first hidden layer."""
        self.module.linear_activation_forward(self.problem.X, self.W1, self.b1, self.w.hidden)

    def time_L_model_forward(self, workload, backend):
        """``L_model_forward``: every layer, caches included."""
        self.module.L_model_forward(self.problem.X, self.problem.parameters, self.w.hidden,
                                    self.w.output)


class BackwardPointwise(_Workload):
    """The element-wise part of the backward pass on the first hidden layer ``(n_1, m)``.

    numpy: ``dZ = dA * g'(Z)`` with ``activations.derivative``, then
    ``db = np.sum(dZ, axis=1, keepdims=True)``; numba: the fused kernel
    ``passes.backward_pointwise_pass`` (``g'`` from ``A``, ``dZ`` in place over a
    copy of ``dA``, ``db`` in the same pass: the copy is timed with it, so
    that ``dA`` never shrinks into denormals over many calls). ``time_db``
    is the bias-gradient row sum alone.
    """

    def setup(self, workload, backend):
        super().setup(workload, backend)
        dtype = np.dtype(self.w.dtype)
        p = self.problem.parameters
        self.A, (_, self.Z) = reference.linear_activation_forward(
            self.problem.X, p["W1"], p["b1"], self.w.hidden)
        rng = np.random.default_rng(1)
        self.dA = rng.standard_normal(self.Z.shape).astype(dtype)
        self.dZ = np.empty_like(self.dA)
        self.db = np.empty((self.Z.shape[0], 1), dtype=dtype)
        self.code = activations.check_activation_name(self.w.hidden)
        if backend == "numba":
            from fastbackprop.kernels import convert, passes

            self.passes = passes
            self.call = convert.call_specialised
            # earlier commits' call_specialised took (dispatcher, dtype, codes, *args)
            old = "dtype" in inspect.signature(convert.call_specialised).parameters
            self.key = (self.dZ.dtype, self.code) if old else ()
            # the entry Python calls (backward_pointwise itself in earlier commits)
            self.pointwise = getattr(passes, "backward_pointwise_pass", passes.backward_pointwise)
        self.time_dZ_db(workload, backend)
        self.time_db(workload, backend)
        settle(backend)

    def time_dZ_db(self, workload, backend):
        if backend == "numpy":
            dZ = self.dA * activations.derivative(self.Z, self.w.hidden)
            np.sum(dZ, axis=1, keepdims=True)
        else:
            np.copyto(self.dZ, self.dA)
            self.call(self.pointwise, *self.key, self.dZ, self.A, self.code, self.db)

    def time_db(self, workload, backend):
        if backend == "numpy":
            np.sum(self.dA, axis=1, keepdims=True)
        else:
            self.passes.row_sum(self.dA, self.db)


class Step(_Workload):
    """One full training step through the backend's step functions.

    ``L_model_forward``, ``compute_cost_from_logits`` on ``ZL``,
    ``L_model_backward(output_start="dZ")``, ``update_parameters``: the
    reference column of ``fastbackprop bench``, and the same calls on the
    kernels module (Python orchestration included). The kernels' whole-loop
    trainer is timed by :class:`Fit`.
    """

    def setup(self, workload, backend):
        super().setup(workload, backend)
        self.time_step(workload, backend)
        settle(backend)

    def time_step(self, workload, backend):
        p = self.problem
        step(self.module, p.X, p.Y, p.parameters, self.w.hidden, output=self.w.output)


class Fit(_Workload):
    """A 100-iteration full-batch fit, the cost computed every iteration.

    Each backend's ``Trainer`` from the registry, built and run once per
    fit: numpy steps through the reference's functions; numba runs the
    whole loop in one compiled call, its buffers allocated once per fit.
    """

    # A numpy fit of mlp takes about a second: fewer, longer samples.
    repeat = (1, 5, 20.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, workload, backend):
        super().setup(workload, backend)
        if backend == "numba":
            self._fit(2)  # compile
        settle(backend)

    def _fit(self, n_iterations):
        p, w = self.problem, self.w
        trainer = backends.get(self.backend).Trainer(p.parameters, p.X, p.Y, w.hidden,
                                                     LEARNING_RATE, cost_every=1,
                                                     output_activation=w.output)
        status = trainer.run(n_iterations)
        if status != "ok":
            raise RuntimeError(f"fit stopped: {status}")

    def time_fit(self, workload, backend):
        self._fit(FIT_ITERATIONS)

    def peakmem_fit(self, workload, backend):
        self._fit(FIT_ITERATIONS)


class Epoch:
    """One mini-batch epoch (softmax, Adam, shuffled) of the compiled trainer, per epoch
    workload, on one thread and on the team the package chooses (``"P"``: every core when
    the batch is large enough, issue 25); the trainer and its buffers are built, and
    compiled, in ``setup``."""

    params = (EPOCH_NAMES, ["1", "P"])
    param_names = ["workload", "threads"]
    repeat = (1, 5, 30.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, workload, threads):
        p = make_problem(workload)
        w = p.workload
        self.trainer = backends.get("numba").Trainer(
            p.parameters, p.X, p.Y, w.hidden, ADAM_LEARNING_RATE, cost_every=1,
            output_activation=w.output, optimizer=w.optimizer, batch_size=w.batch_size,
            seed=SEED, shuffle=w.shuffle, n_threads=1 if threads == "1" else None)
        self.trainer.run(1)  # compile
        settle("numba")

    def time_epoch(self, workload, threads):
        self.trainer.run(1)


class EpochThreads:
    """How many threads :class:`Epoch`'s team has (the package's choice for ``"P"``): the
    trainer's rule (``kernels.team.choose``) for the workload's network and batch width,
    without building the data and compiling an epoch as :class:`Epoch`'s ``setup`` does."""

    params = Epoch.params
    param_names = Epoch.param_names

    def track_threads(self, workload, threads):
        from fastbackprop.kernels import team

        w = EPOCH_WORKLOADS[workload]
        width = w.m if w.batch_size is None else min(w.batch_size, w.m)
        return team.choose(1 if threads == "1" else None, list(w.layer_dims), width)


class SparseEpoch:
    """Issue 29: one epoch of the sparse TF-IDF-shaped problem (``bench.SPARSE_EPOCH``) on
    its CSR matrix, through the compiled sparse trainer; ``peakmem`` the fit's peak."""

    repeat = (1, 3, 60.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self):
        from fastbackprop.bench import SPARSE_EPOCH, sparse_problem

        c = SPARSE_EPOCH
        X, y = sparse_problem(c["m"], c["n_x"], c["density"], c["n_classes"])
        dims = [c["n_x"], c["n_1"], c["n_classes"]]
        self.X, self.Y = X.T, np.eye(c["n_classes"])[:, y]
        self.parameters = reference.initialize_parameters(dims, "he", SEED)
        self.options = dict(output_activation="softmax", optimizer="adam",
                            batch_size=c["batch_size"], seed=SEED)
        self.trainer = backends.get("numba").Trainer(self.parameters, self.X, self.Y, "relu",
                                                     ADAM_LEARNING_RATE, **self.options)
        self.trainer.run(1)  # compile

    def time_epoch(self):
        self.trainer.run(1)

    def peakmem_fit(self):
        backends.get("numba").Trainer(self.parameters, self.X, self.Y, "relu",
                                      ADAM_LEARNING_RATE, **self.options).run(1)


class Gemm:
    """The machine's GEMM rate, the denominator of ``fastbackprop bench``'s floor."""

    params = (["float64", "float32"],)
    param_names = ["dtype"]
    unit = "GFLOP/s"

    def track_gemm_rate(self, dtype):
        return gemm_rate(dtype, n=GEMM_SIZE, repeats=3) / 1e9


# Code run by the fresh processes of Startup.timeraw_first_fit: the data are
# made in the untimed setup (which imports fastbackprop, not Numba); the
# timed statement imports the backend and fits the planar network, 1000
# iterations (the start-up target of docs/startup.md).
_FIRST_FIT_SETUP = """
import os
{environment}
from fastbackprop.bench import make_problem
problem = make_problem("planar")
"""

_FIRST_FIT = {
    "numpy": """
from fastbackprop import reference
reference.L_layer_model(problem.X, problem.Y, [2, 4, 1], "tanh", 0.0075,
                        num_iterations=1000, parameters=problem.parameters)
""",
    "numba": """
from fastbackprop import kernels
kernels.train(problem.parameters, problem.X, problem.Y, "tanh", 0.0075, n_iterations=1000)
""",
}


class Startup:
    """Import times in a fresh process (the interpreter's start-up is not timed).

    The target (docs/startup.md): ``import fastbackprop`` costs at most 30 ms more
    than ``import numpy``; importing the kernels imports Numba.
    """

    def timeraw_import_numpy(self):
        return "import numpy"

    def timeraw_import_fastbackprop(self):
        return "import fastbackprop", "import numpy"

    def timeraw_import_kernels(self):
        return "import fastbackprop.kernels", "import fastbackprop"


class FirstFit:
    """The first planar fit (1000 iterations) in a fresh process, import of the backend included.

    The one benchmark that times compilation. Backends: "numpy"; "numba"
    with a warm on-disk kernel cache (``setup`` fills it); "numba-nocache"
    with ``FASTBACKPROP_CACHE=0``, so every kernel compiles in the timed process.
    """

    params = (["numpy", "numba", "numba-nocache"],)
    param_names = ["backend"]
    timeout = 300
    repeat = (1, 3, 60.0)

    def setup(self, backend):
        if backend == "numba":
            # Fill the on-disk cache, so the timed process finds every kernel there.
            from fastbackprop import kernels

            problem = make_problem("planar")
            kernels.train(problem.parameters, problem.X, problem.Y, "tanh", LEARNING_RATE,
                          n_iterations=2)

    def timeraw_first_fit(self, backend):
        environment = 'os.environ["FASTBACKPROP_CACHE"] = "0"' if backend == "numba-nocache" else ""
        code = _FIRST_FIT["numpy" if backend == "numpy" else "numba"]
        return code, _FIRST_FIT_SETUP.format(environment=environment)


class ColdFit:
    """The first fit of each configuration of ``COLD_FITS`` in a fresh process that
    compiles every kernel it needs (``FASTBACKPROP_CACHE=0``): what a new user waits for.

    Each configuration compiles only its own activation, output layer,
    optimiser and optional parts (mini-batches, L2, dropout); issue 13's
    target is that none takes more than 1.25x ``planar``.
    """

    params = (COLD_FIT_NAMES,)
    param_names = ["config"]
    timeout = 300
    repeat = (1, 3, 60.0)

    def timeraw_first_fit(self, config):
        setup, fit = cold_fit_code(config)
        return fit, 'import os\nos.environ["FASTBACKPROP_CACHE"] = "0"\n' + setup
