"""Holding BLAS to a number of threads (threadpoolctl), without importing Numba.

The compiled trainer holds BLAS to one thread while its own threads run
(:mod:`fastbackprop.kernels.team`, which re-exports :func:`blas_threads`), and
the scikit-learn drop-in does so for small products on either backend
(``fastbackprop.sklearn``). A fit on the NumPy backend needs this too, and must
not import Numba for it: hence this module of its own.
"""

from __future__ import annotations

import contextlib
import functools
import importlib

__all__ = ["blas_threads"]


@functools.lru_cache(maxsize=None)
def _controller():
    """threadpoolctl's view of the loaded BLAS libraries (found once: it takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    importlib.import_module("scipy.linalg.cython_blas")  # the BLAS the kernels call, loaded

    return ThreadpoolController()


def blas_threads(n):
    """A context holding BLAS to ``n`` threads, putting it back on exit (``n`` None: as it is)."""
    if n is None:
        return contextlib.nullcontext()
    return _controller().limit(limits=n, user_api="blas")
