"""The background compile that ``fastbackprop train --backend auto`` starts (:mod:`.first_run`).

``python -m fastbackprop._background_compile DATA.npz HYPERPARAMETERS MARKER LOCK PARTS PID``:
at a low priority, fit a Model of the hyperparameters (JSON, the numba backend) on the
data of ``DATA.npz`` (deleted once read) for one chunk of epochs, as the command's fit
starts, then for one epoch, and make the predictions the command makes, so that the
kernels this configuration loads are compiled into the cache; then write ``MARKER``
(holding ``PARTS``, JSON) and remove ``LOCK`` (which holds this process's pid, or
``PID``, its starter's, if this process ended before the starter wrote it). On any failure nothing is written and
the data file and the lock are removed all the same.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys


class _Enough(Exception):
    """Raised by the progress callback: the first chunk has compiled the training kernels."""


def _stop(n_iter, cost):
    raise _Enough


def load(path):
    """The arrays of the ``.npz`` file ``path``, which is deleted once read."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    finally:
        os.unlink(path)


def compile_kernels(hp, arrays):
    """Fit and predict as the command does with these hyperparameters and data shapes.

    The first fit has the run's ``n_epochs`` (Gram mode's choice depends on it) and
    stops after its first chunk; the second, of one epoch, leaves a fitted model to
    predict with (in Gram mode it compiles one more variant, which costs only time).
    """
    from .model import Model

    validation = (arrays["X_val"], arrays["Y_val"]) if "X_val" in arrays else None
    model = Model(**hp)
    try:
        model.fit(arrays["X"], arrays["Y"], callback=_stop, validation_data=validation)
    except _Enough:
        pass
    model.set_params(n_epochs=1).fit(arrays["X"], arrays["Y"], validation_data=validation)
    model.score(arrays["X"], arrays["Y"])
    if validation is not None:
        model.score(*validation)


def main(argv):
    """Run the background compile of ``argv`` (see the module); the exit status."""
    from . import first_run

    data, hyperparameters, marker, lock, parts, starter = argv
    try:
        os.nice(10)
    except OSError:
        pass
    try:
        compile_kernels(json.loads(hyperparameters), load(data))
        import numba

        if numba.get_num_threads() != first_run.numba_threads():
            return 1  # the marker would name another variant than the one compiled
        return 0 if first_run.write_marker(pathlib.Path(marker), json.loads(parts)) else 1
    except BaseException:
        return 1
    finally:
        first_run._unlink(data)
        # the lock holds this process's pid, or still its starter's if this ended first
        first_run.release_lock(lock, (os.getpid(), starter))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
