"""``fastbackprop train --backend auto``: train a cold first run on NumPy while the kernels compile.

The first run of a configuration on the numba backend compiles its kernels
(3 to 5 s on the 2-core Xeon, against 0.15 s of training for the planar
network); the NumPy backend needs no compiling and trains the same network
in about 1.3 s. ``auto`` picks, for one run of the command:

1. **numba** when this configuration's kernels are known to be in the
   kernel cache: a *marker* file says so (:func:`marker_path`);
2. else, when a background compile can be started (:func:`background_possible`)
   and the NumPy backend's projected time for the run (:func:`projected_numpy_seconds`)
   is below :data:`COMPILE_SECONDS`: **numpy** for this run, and a detached
   process (``python -m fastbackprop._background_compile``) compiles the
   numba kernels of exactly this configuration into the cache and writes
   the marker, for the next run;
3. else **numba**, compiling now (as before ``auto``).

The marker is a file in a ``fastbackprop-warm`` directory of the kernel cache
(:func:`warm_directory`), named by the SHA-256 of everything that decides
whether the cache holds the kernels this run loads (:func:`marker_key`): the
kernel sources' fingerprint, the Numba version, the CPU (as LLVM names it),
the Python version, and the variant of the compiled kernels the run uses
(:func:`variant`). A cache written by another package version, another
Numba or for another CPU never counts as warm. A lock file next to it
(:func:`acquire_lock`) keeps two cold runs from starting two compiles.

This module imports neither Numba nor the kernels: the command decides
before either is loaded (llvmlite's small binding module gives the CPU).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

import numpy as np

from . import variants

#: Seconds the numba backend's first run of a configuration spends compiling (Numba's
#: start-up included). Measured with an empty cache on the 2-core Xeon with
#: ``python tools/first_run.py compile`` (``fastbackprop train --backend numba`` with a
#: fresh NUMBA_CACHE_DIR, its "compiling the kernels" line): 4.56 s, the median of 3
#: (4.4 to 4.9 s; 3 to 5 s in issue 26). The constant takes the low end, so a run goes
#: to NumPy only where NumPy wins clearly, and still does once compiling gets faster.
COMPILE_SECONDS = 3.0

#: The NumPy backend's cost model (:func:`projected_numpy_seconds`), fitted with
#: ``python tools/first_run.py calibrate`` on the 2-core Xeon: Python's overhead per
#: step and per layer of a step, the element-wise passes per unit and example, and the
#: matrix products at a modest rate. It errs on the slow side: the planar network's
#: 10000 epochs project to 1.75 s (measured 1.2 s idle, 1.3 s with the other core busy),
#: 20 epochs of [2, 64, 1] on 20000 examples to 1.27 s (0.42 s idle, 1.47 s busy); the
#: products, 10 to 50 Gflop/s with BLAS alone but several times slower when its threads
#: meet a busy core, are projected at 2, so large products go to numba.
STEP_SECONDS = 40e-6
LAYER_SECONDS = 20e-6
UNIT_SECONDS = 40e-9
FLOPS_PER_SECOND = 2e9


class Rates(NamedTuple):
    """The rates of :func:`projected_numpy_seconds`: seconds per ``step`` and per ``layer`` of
    a step (Python's overhead), per ``unit`` of the layers per example (the element-wise
    passes), and the matrix products' ``flops`` per second. The command's are the
    module's constants (:func:`command_rates`); the scikit-learn drop-in passes realistic
    ones (:data:`fastbackprop.tiers.RATES`)."""

    step: float
    layer: float
    unit: float
    flops: float


def command_rates():
    """The command's (pessimistic) :class:`Rates`: :data:`STEP_SECONDS`, :data:`LAYER_SECONDS`,
    :data:`UNIT_SECONDS`, :data:`FLOPS_PER_SECOND`, read when called."""
    return Rates(STEP_SECONDS, LAYER_SECONDS, UNIT_SECONDS, FLOPS_PER_SECOND)

#: The environment variable that switches the background compile off (0, false, no, off).
ENVIRONMENT = "FASTBACKPROP_BACKGROUND_COMPILE"

#: The directory of markers and locks, inside the kernel cache's location.
WARM_DIRECTORY = "fastbackprop-warm"

#: A lock older than this (seconds) belongs to a compile that died: it is taken over.
LOCK_STALE_SECONDS = 600

#: The background processes this process started (tests wait for them).
spawned = []


class Plan(NamedTuple):
    """What ``auto`` decided for one run: the ``backend`` to train on, why (``reason``), the
    ``note`` to print on stderr (or None), and where the marker of this configuration
    is (``marker``, None when there is no writable cache) with the ``parts`` it was named by."""

    backend: str
    reason: str
    note: str | None = None
    marker: pathlib.Path | None = None
    parts: dict | None = None


# ---------------------------------------------------------------------------
# Switches
# ---------------------------------------------------------------------------


def background_enabled():
    """False when :data:`ENVIRONMENT` is 0/false/no/off (default: enabled)."""
    value = os.environ.get(ENVIRONMENT, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


# ---------------------------------------------------------------------------
# Where: the kernel cache's location
# ---------------------------------------------------------------------------


def cache_candidates():
    """The directories the kernel cache may live in, in the order of Numba's locators
    (``_jit._enable_cache``): ``NUMBA_CACHE_DIR`` when set, the kernels' ``__pycache__``,
    then the user-wide cache directory (``~/.cache/numba`` on Linux)."""
    candidates = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        candidates.append(pathlib.Path(os.environ["NUMBA_CACHE_DIR"]))
    candidates.append(pathlib.Path(__file__).parent / "kernels" / "__pycache__")
    candidates.append(_user_wide_cache())
    return candidates


def _user_wide_cache():
    """Numba's user-wide cache directory (``appdirs.user_cache_dir("numba")``)."""
    home = pathlib.Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "numba"
    if sys.platform.startswith("win"):
        return pathlib.Path(os.environ.get("LOCALAPPDATA", home)) / "numba" / "Cache"
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "numba"


def warm_directory():
    """The ``fastbackprop-warm`` directory of the first writable cache location (created),
    or None when there is none or caching is off (``FASTBACKPROP_CACHE=0``)."""
    from ._jit import cache_enabled

    if not cache_enabled():
        return None
    for root in cache_candidates():
        directory = root / WARM_DIRECTORY
        if _writable(directory):
            return directory
    return None


def has_markers(directory):
    """Whether the warm ``directory`` holds any marker (locks aside)."""
    try:
        return any(not path.name.endswith(".lock") for path in directory.iterdir())
    except OSError:
        return False


def _writable(directory):
    """Whether files can be created in ``directory`` (made if missing), as Numba tests it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------
# What: the compiled variant and the marker's name
# ---------------------------------------------------------------------------


def numba_threads():
    """The threads Numba will run with: ``NUMBA_NUM_THREADS``, else the CPUs this process
    may use (Numba's default), read without importing Numba."""
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def variant(hp, m, validation):
    """What selects the compiled kernels a fit of the hyperparameters ``hp`` (a Model's
    ``_hyperparameters()``) on ``m`` columns loads, with or without ``validation`` data.

    Numba compiles one machine code per type of the arguments: the dtype, the codes of
    the activations, the output and the optimiser, full batch or mini-batches, which
    optional parts are on (L2, dropout, batch norm per layer, Gram mode) and one thread
    or several (:func:`threads`, which decides the data's layout), and a step split by
    hidden units or by columns (:func:`fastbackprop.variants.by_units`). Validation adds the
    step functions' forward pass. The layer sizes, ``m`` and the learning rates are not
    part of it: they are values, not types.
    """
    dims = hp["layer_dims"]
    n_hidden = len(dims) - 2
    batch_norm = _per_layer(hp["batch_norm"], n_hidden)
    keep = _per_layer(hp["keep_prob"], n_hidden)
    full = hp["batch_size"] is None or (hp["batch_size"] >= m and not hp["shuffle"])
    width = m if full else min(hp["batch_size"], m)
    linear_update = hp["optimizer"] == "gd" and hp["decay_rate"] == 0 and hp["l2"] == 0
    gram = not any(batch_norm) and variants.gram_applies(dims, m, full, linear_update,
                                                         hp["n_epochs"])
    dropout = any(k < 1 for k in keep)
    P = threads(hp["n_threads"], dims, width, gram, any(batch_norm), dropout)
    return {
        "dtype": hp["dtype"], "hidden": hp["hidden_activation"],
        "output": hp["output_activation"], "optimizer": hp["optimizer"],
        "full_batch": bool(full), "l2": hp["l2"] != 0,
        "dropout": dropout, "batch_norm": [bool(b) for b in batch_norm],
        "gram": bool(gram), "threads": P,
        "by_units": variants.by_units(dims, width, P, dropout, gram, any(batch_norm)),
        "validation": validation is not None,
    }


def _per_layer(value, n_hidden):
    """A value given once or per hidden layer, as a list of one per hidden layer."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * n_hidden


def threads(n_threads, dims, width, gram=False, batch_norm=False, dropout=False):
    """:func:`fastbackprop.variants.threads` with :func:`numba_threads` for the cores."""
    return variants.threads(n_threads, dims, width, numba_threads(), gram, batch_norm, dropout)


def host_cpu():
    """``(name, features)`` of this CPU as LLVM sees it, which Numba's cache is keyed to
    (``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES`` override them, as they do for Numba)."""
    import llvmlite.binding as llvm

    name = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
    features = os.environ.get("NUMBA_CPU_FEATURES") or llvm.get_host_cpu_features().flatten()
    return name, features


def numba_version():
    """The installed Numba's version, read from its metadata (Numba is not imported)."""
    return importlib.metadata.version("numba")


def key_parts(configuration):
    """Everything the marker of ``configuration`` (a :func:`variant`) is named by."""
    from ._jit import source_fingerprint

    name, features = host_cpu()
    return {"source": source_fingerprint(), "numba": numba_version(), "cpu": name,
            "cpu_features": features,
            "python": f"{sys.implementation.name} {platform.python_version()}",
            "variant": configuration}


def marker_key(parts):
    """The SHA-256 (hex) of :func:`key_parts`, the marker's file name."""
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def marker_path(directory, parts):
    """The marker of ``parts`` in the warm ``directory``."""
    return directory / marker_key(parts)


def write_marker(path, parts):
    """Record that the kernels of ``parts`` are in the cache: ``path`` written atomically
    (a temporary file, then ``os.replace``), holding ``parts`` as JSON. Returns whether
    it was written; an unwritable directory is not an error."""
    from ._files import write_atomically

    try:
        write_atomically(path, lambda f: f.write(json.dumps(parts, indent=1).encode()))
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------
# When: the NumPy backend's projected time
# ---------------------------------------------------------------------------


def projected_numpy_seconds(hp, m, rates=None):
    """Seconds the NumPy backend is expected to train ``hp`` on ``m`` columns.

    Per epoch: each step (``ceil(m / batch_size)``, or one) costs Python's overhead,
    :data:`STEP_SECONDS` plus :data:`LAYER_SECONDS` per layer; each example costs
    :data:`UNIT_SECONDS` per unit of the layers (the element-wise passes) and
    ``6 sum n_{l-1} n_l`` flops (forward, dW and dA products) at
    :data:`FLOPS_PER_SECOND`. Validation, dropout and the optimiser's update are left
    out: small next to these where the answer is close. ``rates``: other
    :class:`Rates` than these (default :func:`command_rates`).
    """
    rates = command_rates() if rates is None else rates
    dims = hp["layer_dims"]
    layers = len(dims) - 1
    steps = 1 if hp["batch_size"] is None else -(-m // hp["batch_size"])
    units = sum(dims[1:])
    flops = 6 * sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    per_epoch = (steps * (rates.step + layers * rates.layer)
                 + m * (units * rates.unit + flops / rates.flops))
    return hp["n_epochs"] * per_epoch


# ---------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------


def lock_path(marker):
    """The lock of the compile that will write ``marker``."""
    return marker.with_name(marker.name + ".lock")


def acquire_lock(path, pid=None):
    """Create the lock ``path`` (``O_EXCL``), holding ``pid`` (default this process's);
    True when this process now holds it. A lock older than :data:`LOCK_STALE_SECONDS`
    is taken over (:func:`_remove_stale`)."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not _remove_stale(path):
                return False
            continue
        except OSError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid() if pid is None else pid))
        return True
    return False


def _remove_stale(path):
    """Remove the lock ``path`` if it is stale; True when it is gone. Renamed away first,
    so that of two processes taking over the same stale lock only one succeeds."""
    try:
        if time.time() - os.stat(path).st_mtime < LOCK_STALE_SECONDS:
            return False
        taken = path.with_name(f"{path.name}.stale-{os.getpid()}")
        os.rename(path, taken)
        os.unlink(taken)
    except FileNotFoundError:
        return True  # released meanwhile
    except OSError:
        return False
    return True


def set_lock_owner(path, pid):
    """Write ``pid`` into the lock ``path`` (the background process, once started), unless
    that process has released it already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(str(pid))


def release_lock(path, pids=None):
    """Remove the lock ``path`` if it holds one of ``pids`` (default this process's)."""
    pids = (os.getpid(),) if pids is None else pids
    try:
        if pathlib.Path(path).read_text().strip() in {str(pid) for pid in pids}:
            os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------
# The decision and the background process
# ---------------------------------------------------------------------------


def background_possible(directory):
    """Whether a background compile can run: a writable cache (``directory``, see
    :func:`warm_directory`) and :func:`background_enabled`."""
    return directory is not None and background_enabled()


def decide(requested, hp, m, validation, sparse=False, distributed=False):
    """The :class:`Plan` of a run with ``--backend requested`` (``auto``, ``numba`` or
    ``numpy``) of ``hp`` on ``m`` columns (see the module for ``auto``'s rule).

    Sparse data and Dask clusters train on numba, as before ``auto``: the background
    compile covers dense data on this machine only. ``marker`` is set wherever a
    numba run can write it when it finishes (:func:`finished`).
    """
    if requested == "numpy" or sparse or distributed:
        backend = "numba" if requested == "auto" else requested
        return Plan(backend, "sparse data or a Dask cluster" if requested == "auto"
                    else "asked for")
    directory = warm_directory()
    parts = key_parts(variant(hp, m, validation)) if directory is not None else None
    marker = marker_path(directory, parts) if directory is not None else None
    if requested == "numba":
        return Plan("numba", "asked for", marker=marker, parts=parts)
    if marker is not None and marker.exists():
        return Plan("numba", "the kernels are in the cache", marker=marker, parts=parts)
    if not background_possible(directory):
        return Plan("numba", "no background compile (no writable cache, FASTBACKPROP_CACHE=0 "
                    f"or {ENVIRONMENT}=0)", marker=marker, parts=parts)
    if projected_numpy_seconds(hp, m) >= COMPILE_SECONDS:
        return Plan("numba", "compiling costs less than training on NumPy", marker=marker,
                    parts=parts)
    return Plan("numpy", "NumPy trains this run before the kernels would compile",
                marker=marker, parts=parts)


def start_compile(plan, hp, X, Y, validation):
    """Start the background compile of ``plan``'s kernels on data of the shapes of ``X``,
    ``Y`` (and ``validation``): a detached ``python -m fastbackprop._background_compile``.

    Returns ``"started"``, ``"running"`` (another process holds the lock: its compile is
    under way) or None when it could not be started (nothing is left behind). The data
    go through a temporary ``.npz`` file, which the process deletes; the Model's
    hyperparameters as JSON.
    """
    lock = lock_path(plan.marker)
    if not acquire_lock(lock):
        return "running"
    fd, data = tempfile.mkstemp(prefix="fastbackprop-compile-", suffix=".npz")
    try:
        arrays = {"X": X, "Y": Y}
        if validation is not None:
            arrays.update(X_val=validation[0], Y_val=validation[1])
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        process = spawn([data, json.dumps({**hp, "backend": "numba"}), str(plan.marker),
                         str(lock), json.dumps(plan.parts), str(os.getpid())])
        set_lock_owner(lock, process.pid)
    except Exception:
        _unlink(data)
        release_lock(lock)
        return None
    spawned.append(process)
    return "started"


def spawn(arguments):
    """Start ``python -m fastbackprop._background_compile ARGUMENTS`` detached (a session
    of its own, no standard streams), importing this same package; the ``Popen``."""
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "fastbackprop._background_compile", *arguments],
        env={**os.environ, "PYTHONPATH": path, ENVIRONMENT: "0"}, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def prepare(requested, hp, X, Y, validation, distributed=False):
    """The :class:`Plan` of a run of the command, with the background compile started
    when it trains on NumPy for ``auto``; its ``note`` says so (for stderr). A compile
    that cannot be started makes the run numba's."""
    from .sparse import is_sparse

    plan = decide(requested, hp, X.shape[1], validation, is_sparse(X), distributed)
    if requested != "auto" or plan.backend != "numpy":
        return plan
    started = start_compile(plan, hp, X, Y, validation)
    if started is None:
        return plan._replace(backend="numba", reason="the background compile did not start")
    return plan._replace(note="note: this run used the NumPy backend while the numba kernels "
                              "compile in the background for the next run of this "
                              "configuration" + (" (started by an earlier run)"
                                                 if started == "running" else ""))


def finished(plan):
    """After a numba run of ``plan`` that finished: its kernels are in the cache, so write
    the marker (when there is a writable cache and Numba runs the threads the marker's
    variant assumed)."""
    if plan.backend != "numba" or plan.marker is None or plan.marker.exists():
        return False
    import numba

    if numba.get_num_threads() != numba_threads():
        return False
    return write_marker(plan.marker, plan.parts)
