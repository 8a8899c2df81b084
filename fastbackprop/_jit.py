"""The one place where Numba options and kernel tunables are set.

Every kernel is decorated with :func:`jit` (or, for the scalar maths that
kernels inline, :func:`overload_kernel`); no kernel spells its own flags.

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
* no CPython or C wrapper for kernels that only kernels call (the
  default; ``jit(entry=True)`` marks the ones Python calls) and for the
  typed implementations of :func:`overload_kernel`. Numba builds both
  wrappers, and emits their machine code, for every function it compiles;
  skipping them takes a sizeable share off a cold first fit (measured by
  ``tools/compile_time.py``). A call from Python to such a kernel (tests,
  a debugging session) still works: it is forwarded to a second,
  wrapped, uncached compilation of the same function
  (:class:`KernelDispatcher`).
* an on-disk cache (Numba's ``cache=True`` machinery, keyed to the hash of
  all kernel sources) when a cache location is writable and the environment
  does not say ``FASTBACKPROP_CACHE=0``; ``NUMBA_CACHE_DIR`` is honoured.

This module does not import Numba at import time: :func:`jit` imports it
when the first kernel is decorated, which happens only when
``fastbackprop.kernels`` is imported.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib

#: Fast-math flags for every kernel.
FASTMATH = frozenset({"reassoc", "contract", "arcp", "nsz"})

#: Fast-math flags for scalar maths whose operation order must be kept.
EXACT_FASTMATH = frozenset({"contract"})

#: Matrix products with ``n * k * m`` at most this use hand-written loops
#: fused in the kernel; larger ones call BLAS. Measured on the 2-core AVX-512
#: machine with SciPy's OpenBLAS 0.3 (whose small-matrix kernels skip the
#: packing): BLAS is 2 to 9 times faster than the loops from about a thousand
#: multiply-adds (10 x 64 x 32: 0.76 us against 7.1 us), the two within 0.03 us
#: of each other below; 32768, the earlier value, made a digits32 epoch 1.3
#: times slower. ``fastbackprop bench``/asv cover both sides.
SMALL_GEMM = 512


def cache_enabled():
    """False when the environment variable ``FASTBACKPROP_CACHE`` is 0/false/no/off."""
    value = os.environ.get("FASTBACKPROP_CACHE", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def options(exact=False, wrapped=True):
    """The keyword options given to ``numba.njit`` (without ``cache``).

    ``wrapped=False``: no CPython or C wrapper (a function only compiled code calls).
    """
    opts = {
        "nogil": True,
        "error_model": "numpy",
        "fastmath": set(EXACT_FASTMATH if exact else FASTMATH),
    }
    if not wrapped:
        opts.update(no_cpython_wrapper=True, no_cfunc_wrapper=True)
    return opts


def jit(func=None, *, exact=False, entry=False):
    """``numba.njit`` with the package's options; compiles lazily on first call.

    ``entry=True`` for a kernel that Python calls (the training loop, the
    step kernels): it gets Numba's wrappers. Other kernels are compiled
    without them, as a :class:`KernelDispatcher`.

    When :func:`cache_enabled`, compiled code is cached on disk (see
    :func:`_enable_cache`); when no cache location is writable the kernel
    is compiled in memory instead, silently.
    """

    def decorate(f):
        import numba

        dispatcher = numba.njit(**options(exact, wrapped=entry))(f)
        if not entry:
            dispatcher.__class__ = _kernel_dispatcher_class()
            dispatcher.exact = exact
        if cache_enabled():
            _enable_cache(dispatcher)
        return dispatcher

    return decorate if func is None else decorate(func)


@functools.lru_cache(maxsize=None)
def _kernel_dispatcher_class():
    """:class:`KernelDispatcher`, defined on first use (it subclasses Numba's dispatcher)."""
    from numba.core.registry import CPUDispatcher

    class KernelDispatcher(CPUDispatcher):
        """A dispatcher for kernels that only compiled code calls: no wrappers.

        Its compilations have no CPython entry point, so none is registered
        for calls from Python (calling one would crash the interpreter);
        such a call reaches :meth:`_compile_for_args`, which hands it to a
        wrapped twin compiled from the same function, in memory only (the
        on-disk cache does not tell the two apart).
        """

        def add_overload(self, cres):
            self.overloads[tuple(cres.signature.args)] = cres

        def _compile_for_args(self, *args, **kws):
            import numba

            twin = self.__dict__.get("_python_twin")
            if twin is None:
                twin = numba.njit(**options(self.exact))(self.py_func)
                self.__dict__["_python_twin"] = twin
            return twin

    return KernelDispatcher


def _enable_cache(dispatcher):
    """Give ``dispatcher`` an on-disk cache keyed to the whole kernel source.

    Numba's own ``cache=True`` stamps a cached function with the hash of its
    own file only, so after an edit of ``passes.py`` the training loop in
    ``training.py`` would still load a stale binary with the old passes
    inlined. This cache uses Numba's locators (``NUMBA_CACHE_DIR`` first,
    then ``__pycache__`` beside the source, then the user-wide cache
    directory) with the stamp replaced by :func:`source_fingerprint`.
    When none is writable, the dispatcher keeps Numba's null cache.
    """
    try:
        dispatcher._cache = _kernel_cache_class()(dispatcher.py_func)
    except RuntimeError:
        pass  # "no locator available": nothing writable; compile in memory


@functools.lru_cache(maxsize=None)
def source_fingerprint():
    """SHA-256 of every source file that kernels are compiled from."""
    root = pathlib.Path(__file__).parent
    files = sorted(root.glob("kernels/*.py")) + [
        root / name for name in ("_jit.py", "activations.py", "spec.py")
    ]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _kernel_cache_class():
    """A ``numba.core.caching.FunctionCache`` whose locators stamp with the fingerprint."""
    from numba.core import caching

    def fingerprinted(base):
        class Locator(base):
            def get_source_stamp(self):
                return (super().get_source_stamp(), source_fingerprint())

        Locator.__name__ = f"Fingerprinted{base.__name__}"
        return Locator

    class Impl(caching.CompileResultCacheImpl):
        _locator_classes = [
            fingerprinted(caching.UserProvidedCacheLocator),
            fingerprinted(caching.InTreeCacheLocator),
            fingerprinted(caching.UserWideCacheLocator),
        ]

    class TolerantCacheFile(caching.IndexDataCacheFile):
        """Numba's index and data files, where an entry that cannot be read is a miss.

        Numba unpickles an index before it compares its stamp, and the
        pickle names the types of the cached signatures: after an upgrade
        of the package that renamed or removed one of them, the old index
        (left in ``__pycache__`` or the user-wide cache by the previous
        version) would raise ``AttributeError`` on every call. Read as
        empty instead, the kernel is compiled again and the index rewritten.
        """

        def _load_index(self):
            try:
                return super()._load_index()
            except Exception:  # unpicklable: written by another version
                return {}

        def load(self, key):
            try:
                return super().load(key)
            except Exception:  # a data file that cannot be unpickled
                return None

    class KernelCache(caching.FunctionCache):
        _impl_class = Impl

        def __init__(self, py_func):
            super().__init__(py_func)
            self._cache_file.__class__ = TolerantCacheFile

    return KernelCache


def overload_kernel(stub, exact=False):
    """Register a typed implementation of ``stub`` for use inside kernels.

    The decorated function receives Numba types and returns an
    implementation; this is how one generic body gets float32 or float64
    constants, so float32 inputs are computed in float32, and how a
    constant code selects one entry of a table. Only compiled code calls
    these, so they get no wrappers.
    """
    from numba.extending import overload

    return overload(stub, jit_options=options(exact, wrapped=False))
