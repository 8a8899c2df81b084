"""The backend of one fit of the scikit-learn drop-in: its ``backend="auto"``.

A drop-in fit on the numba backend compiles its kernels the first time a
configuration runs (about 5.5 s on the 2-core Xeon for digits at scikit-learn's
defaults: Numba's start-up, the training loop and the prediction), while the
NumPy backend trains the same fit in 0.76 s. ``fastbackprop train --backend
auto`` answers this with a background compile (:mod:`fastbackprop.first_run`);
a library call must not start processes, so the drop-in's rule is this one,
taken per fit (:func:`decide`):

1. **numba** for what the NumPy path does not cover or should not take:
   ``solver="lbfgs"``, sparse ``X``, batch normalisation, ``partial_fit``, and a
   warm start continuing a model fitted on numba;
2. **numba** when the kernels of this fit's configuration (its
   :func:`fastbackprop.first_run.variant`) are compiled already: run on numba in
   this process (:data:`compiled`), or marked as in the on-disk kernel cache by
   first_run's marker (written by the command, its background compile, or an
   earlier drop-in fit on numba: :func:`finished`);
3. else **numpy** when this fit's projected NumPy seconds
   (:func:`fastbackprop.first_run.projected_numpy_seconds` with the realistic
   :data:`RATES`, ``max_iter`` epochs) plus those of this process's earlier fits
   that ``auto`` sent to NumPy (:func:`spent`) stay below :data:`COMPILE_SECONDS`;
4. else **numba**: compiling once pays off for the rest of the process (and,
   through the cache, for later ones).

It is ski rental: rent (NumPy) while the rent paid stays below the price of buying
(compiling), then buy. ``backend="numba"`` and ``backend="numpy"`` are honoured as
given. This module imports neither Numba nor scikit-learn, and ``import
fastbackprop`` does not import it.
"""

from __future__ import annotations

import json
import threading
from typing import NamedTuple

from . import first_run

#: The values of the estimators' ``backend`` parameter.
BACKENDS = ("auto", "numba", "numpy")

#: The budget of NumPy seconds ``auto`` spends in one process before it compiles. A drop-in
#: fit's first compile measured 5.5 to 6 s on the 2-core Xeon (issue 26: 4.9 s the training
#: loop, 0.56 s the prediction, about 0.5 s importing Numba); the budget takes the low end,
#: as first_run's :data:`~fastbackprop.first_run.COMPILE_SECONDS` does, because compiling
#: also fills the on-disk cache for every later process, which renting never does.
COMPILE_SECONDS = 3.0

#: The NumPy backend's realistic rates for the drop-in (first_run's are pessimistic on
#: purpose: they project 9.5 s for digits at scikit-learn's defaults). Calibrated on the
#: 2-core Xeon, idle: digits at the defaults ([64, 100, 10], 1797 samples, batches of 200,
#: Adam, alpha=1e-4) trains 135 epochs in 0.76 s, 5.6 ms an epoch; these rates project
#: 6.7 ms an epoch (1.34 s for ``max_iter=200``, the epoch count projected, since where the
#: stopping rule ends is not known before).
RATES = first_run.Rates(step=40e-6, layer=20e-6, unit=10e-9, flops=20e9)

#: The keys (:func:`key`) of the configurations fitted on numba in this process.
compiled = set()

#: The keys of those whose marker :func:`finished` found or wrote (not looked for again:
#: naming a marker reads the CPU's name and Numba's metadata, about 1 ms a fit).
_marked = set()

_lock = threading.Lock()
_spent = [0.0]  # projected NumPy seconds of this process's auto fits sent to NumPy


class Choice(NamedTuple):
    """What :func:`decide` chose for one fit: the ``backend`` to train on, why (``reason``),
    what was asked (``requested``), the fit's ``configuration`` (first_run's variant; None
    where it names no compiled training loop: L-BFGS, sparse ``X``) and, when ``auto``
    weighed it, its ``projected`` NumPy seconds."""

    backend: str
    reason: str
    requested: str = "auto"
    configuration: dict | None = None
    projected: float | None = None


def hyperparameters(layer_dims, hidden_activation, output_activation, optimizer, batch_size,
                    shuffle, l2, n_epochs, dtype, n_threads, batch_norm):
    """The ``hp`` dict :func:`fastbackprop.first_run.variant` and ``projected_numpy_seconds``
    read, from a drop-in fit's options (the package's names: ``hidden_activation`` one of
    ``spec.ACTIVATIONS``, ``optimizer`` one of ``spec.OPTIMIZERS``; ``batch_size`` None for
    a full batch; ``dtype`` a name; ``batch_norm`` one bool per hidden layer)."""
    return {"layer_dims": [int(n) for n in layer_dims], "hidden_activation": hidden_activation,
            "output_activation": output_activation, "optimizer": optimizer,
            "batch_size": None if batch_size is None else int(batch_size),
            "shuffle": bool(shuffle), "l2": float(l2), "decay_rate": 0.0, "keep_prob": 1.0,
            "n_epochs": int(n_epochs), "dtype": str(dtype), "n_threads": n_threads,
            "batch_norm": [bool(b) for b in batch_norm]}


def key(configuration):
    """The key of ``configuration`` in :data:`compiled`: its JSON, keys sorted."""
    return json.dumps(configuration, sort_keys=True)


def spent():
    """The projected NumPy seconds of this process's fits that ``auto`` sent to NumPy."""
    return _spent[0]


def reset():
    """Forget this process's fits (:data:`compiled`, :func:`spent`): for tests."""
    with _lock:
        compiled.clear()
        _marked.clear()
        _spent[0] = 0.0


def marker(configuration):
    """first_run's marker of ``configuration``, or None when there is no writable cache."""
    directory = first_run.warm_directory()
    if directory is None:
        return None
    return first_run.marker_path(directory, first_run.key_parts(configuration))


def cached(configuration):
    """Whether first_run's marker of ``configuration`` is in the cache. A warm directory
    without markers (a new machine's first fit) answers without the marker's name, whose
    CPU name would import llvmlite (18 ms)."""
    directory = first_run.warm_directory()
    if directory is None or not first_run.has_markers(directory):
        return False
    return first_run.marker_path(directory, first_run.key_parts(configuration)).exists()


def check_backend(value):
    """``value`` if it is one of :data:`BACKENDS`, else a ValueError naming ``backend``."""
    if not isinstance(value, str) or value not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}; got {value!r}")
    return value


def decide(requested, hp=None, m=None, *, lbfgs=False, sparse=False, incremental=False,
           continuing=None):
    """The :class:`Choice` of one fit with ``backend=requested`` of ``hp``
    (:func:`hyperparameters`) on ``m`` training samples; ``lbfgs``, ``sparse`` (X) and
    ``incremental`` (``partial_fit``) as they are, ``continuing`` the ``backend_`` of
    the model a warm start continues (None for a fresh fit). See the module for ``auto``.
    Changes nothing (:func:`choose` books the NumPy seconds)."""
    check_backend(requested)
    configuration = None if lbfgs or sparse or hp is None else first_run.variant(hp, m, None)

    def choice(backend, reason, projected=None):
        return Choice(backend, reason, requested, configuration, projected)

    if requested != "auto":
        return choice(requested, "asked for")
    if lbfgs:
        return choice("numba", "solver='lbfgs' runs on the compiled pass")
    if sparse:
        return choice("numba", "sparse X trains on the compiled kernels' nonzeros")
    if any(configuration["batch_norm"]):
        return choice("numba", "batch normalisation trains inside the compiled loop")
    if incremental:
        return choice("numba", "partial_fit: many short calls, each cheap once compiled")
    if continuing == "numba":
        return choice("numba", "a warm start continues a model fitted on numba")
    if key(configuration) in compiled:
        return choice("numba", "compiled in this process")
    if cached(configuration):
        return choice("numba", "the kernels are in the cache")
    projected = first_run.projected_numpy_seconds(hp, m, RATES)
    if spent() + projected < COMPILE_SECONDS:
        return choice("numpy", "NumPy trains it before the kernels would compile", projected)
    return choice("numba", "compiling costs less than training on NumPy", projected)


def choose(requested, hp=None, m=None, **situation):
    """:func:`decide`, booking the projected seconds of a fit ``auto`` sends to NumPy."""
    with _lock:
        made = decide(requested, hp, m, **situation)
        if made.requested == "auto" and made.backend == "numpy":
            _spent[0] += made.projected
    return made


def finished(choice):
    """After a fit of ``choice`` on numba that finished: its configuration's kernels are
    compiled in this process (:data:`compiled`) and in the cache, so write its marker
    (when there is a writable cache and Numba runs the threads the variant assumed, as
    :func:`fastbackprop.first_run.finished`). Returns whether a marker was written."""
    if choice.backend != "numba" or choice.configuration is None:
        return False
    k = key(choice.configuration)
    with _lock:
        compiled.add(k)
        if k in _marked:
            return False
    import numba

    if numba.get_num_threads() != first_run.numba_threads():
        return False
    path = marker(choice.configuration)
    if path is None:
        return False
    if path.exists():
        _marked.add(k)
        return False
    written = first_run.write_marker(path, first_run.key_parts(choice.configuration))
    if written:
        _marked.add(k)
    return written
