"""The one place where Numba options and kernel tunables are set.

Every kernel is decorated with :func:`jit` (or, for the scalar maths that
kernels inline, :func:`overload_scalar`); no kernel spells its own flags.

* ``fastmath`` is the subset ``{"reassoc", "contract", "arcp", "nsz"}``:
  it lets loops vectorise and sums reassociate, but keeps NaN and infinity
  semantics, so ``x != x`` and ``math.isfinite`` still work. Full
  ``fastmath=True`` would let LLVM assume they never occur.
* The scalar ``exp``/``log1p`` routines use ``{"contract"}`` only
  (``exact=True``): their range reduction ``(x - k ln2_hi) - k ln2_lo`` and
  the split scaling ``(p * 2^k1) * 2^k2`` are written in the order that makes
  them exact, and re-association would undo that.
* ``error_model="numpy"``: division by zero gives inf/NaN, not an exception.
* ``nogil=True``: kernels release the GIL.
* ``cache=True`` when a cache location is writable and the environment does
  not say ``FASTBACKPROP_CACHE=0``; Numba honours ``NUMBA_CACHE_DIR``.

This module does not import Numba at import time: :func:`jit` imports it
when the first kernel is decorated, which happens only when
``fastbackprop.kernels`` is imported.
"""

from __future__ import annotations

import os

#: Fast-math flags for every kernel.
FASTMATH = frozenset({"reassoc", "contract", "arcp", "nsz"})

#: Fast-math flags for scalar maths whose operation order must be kept.
EXACT_FASTMATH = frozenset({"contract"})

#: Matrix products with ``n * k * m`` at most this use hand-written loops
#: fused in the kernel; larger ones call BLAS (measured crossover on a
#: 2-core AVX-512 machine, ``fastbackprop bench``/asv cover both sides).
SMALL_GEMM = 32768


def cache_enabled():
    """False when the environment variable ``FASTBACKPROP_CACHE`` is 0/false/no/off."""
    value = os.environ.get("FASTBACKPROP_CACHE", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def options(exact=False):
    """The keyword options given to ``numba.njit`` (without ``cache``)."""
    return {
        "nogil": True,
        "error_model": "numpy",
        "fastmath": set(EXACT_FASTMATH if exact else FASTMATH),
    }


def jit(func=None, *, exact=False):
    """``numba.njit`` with the package's options; compiles lazily on first call.

    Caching is attempted when :func:`cache_enabled`; Numba raises
    ``RuntimeError`` at decoration time when it finds no writable cache
    location (read-only install, no writable home), and the kernel is then
    compiled in memory instead.
    """

    def decorate(f):
        import numba

        if cache_enabled():
            try:
                return numba.njit(cache=True, **options(exact))(f)
            except RuntimeError:
                pass  # no writable cache location: compile in memory
        return numba.njit(**options(exact))(f)

    return decorate if func is None else decorate(func)


def overload_scalar(stub, exact=False):
    """Register a typed implementation of ``stub`` for use inside kernels.

    The decorated function receives Numba types and returns an
    implementation; this is how one generic body gets float32 or float64
    constants, so float32 inputs are computed in float32.
    """
    from numba.extending import overload

    return overload(stub, jit_options=options(exact))
