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
* no module-level optimisation and no machine code for those kernels
  either (their compiler pipeline, :func:`_pipelines`). Numba links a
  callee's LLVM IR into every caller, and the caller's module passes
  (inlining, vectorisation) and machine code cover it; the callee's own
  were never run. Skipping them takes a third off a cold first fit.
* an on-disk cache of the entry kernels (Numba's ``cache=True`` machinery,
  keyed to the hash of all kernel sources) when a cache location is
  writable and the environment does not say ``FASTBACKPROP_CACHE=0``;
  ``NUMBA_CACHE_DIR`` is honoured. The kernels they call are not cached:
  their code is in the entry kernels that link them.

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

#: Products of any size whose small operand (the weights ``W`` of ``W A_prev``
#: and ``W^T dZ``, the gradient ``dW`` of ``dZ A_prev^T``) has at most
#: ``SMALL_OPERAND`` entries run as the hand-written loops too, where the
#: target CPU's vector width (:func:`target_vector_bytes`) says so: narrow
#: layers (``planar``'s ``[2, 4, 1]``, ``chains``' ``[4, 32, 16, 4]``), whose
#: products stream the wide operand once per small entry. OpenBLAS packs both
#: operands first and, on AVX2 (its Haswell kernels, without the small-matrix
#: ones of its AVX-512 builds), ran them 1.4 to 4.3 times slower than the
#: loops: 64 there. With AVX-512 OpenBLAS runs its SkylakeX kernels, and
#: they beat the loops on every such product (on a Zen 4 EPYC: ``planar``'s
#: five products 1.23 against 1.91 us, ``chains``' ``W3 A2`` 105 against 26
#: GFLOP/s): 0 there, the rule off (``tools/small_gemm.py planar chains small``).
SMALL_OPERAND_BY_VECTOR_BYTES = {32: 64, 64: 0}


def small_operand():
    """The ``SMALL_OPERAND`` of the target CPU (:data:`SMALL_OPERAND_BY_VECTOR_BYTES`)."""
    return SMALL_OPERAND_BY_VECTOR_BYTES[target_vector_bytes()]


def target_vector_bytes():
    """Bytes of the widest vector register of the CPU Numba compiles for: 64 with AVX-512
    (``+avx512f``), else 32 (AVX2). Numba's ``NUMBA_CPU_FEATURES`` is honoured (it is also
    part of every cached kernel's key); ``FASTBACKPROP_VECTOR_BYTES`` (32 or 64) overrides
    the choice of the products' plan only (the tiles of ``kernels/microgemm.py`` and
    ``SMALL_OPERAND``), for tests and measurements (it is part of the kernel cache's
    fingerprint, :func:`source_fingerprint`). Imports Numba's configuration when called."""
    forced = os.environ.get("FASTBACKPROP_VECTOR_BYTES", "").strip()
    if forced:
        if forced not in ("32", "64"):
            raise ValueError(f"FASTBACKPROP_VECTOR_BYTES must be 32 or 64; got {forced!r}")
        return int(forced)
    from numba.core import config

    features = config.CPU_FEATURES
    if features is None:
        try:
            from llvmlite import binding

            features = binding.get_host_cpu_features().flatten()
        except RuntimeError:  # LLVM cannot tell on this host: the narrower vectors are safe
            features = ""
    return 64 if "+avx512f" in features.split(",") else 32


def cache_enabled():
    """False when the environment variable ``FASTBACKPROP_CACHE`` is 0/false/no/off."""
    value = os.environ.get("FASTBACKPROP_CACHE", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def options(exact=False, wrapped=True):
    """The keyword options given to ``numba.njit`` (without ``cache``).

    ``wrapped=False``: no CPython or C wrapper (a function only compiled code calls).
    """
    internal, entry = _pipelines()
    opts = {
        "nogil": True,
        "error_model": "numpy",
        "fastmath": set(EXACT_FASTMATH if exact else FASTMATH),
        "pipeline_class": entry if wrapped else internal,
    }
    if not wrapped:
        opts.update(no_cpython_wrapper=True, no_cfunc_wrapper=True)
    return opts


@functools.lru_cache(maxsize=None)
def _pipelines():
    """``(internal, entry)``: the compiler pipelines of wrapper-less kernels and of the rest.

    Numba compiles each function into a code library of its own, runs the
    module passes over it and emits its machine code. A caller links in the
    LLVM IR of each function it calls and does the same over the whole, so
    a kernel that only kernels call gets both done at every level of calls
    above it, and its own machine code is never run. The ``internal``
    pipeline gives such a kernel an :class:`InternalLibrary`, which keeps
    the IR (after the per-function passes) and does neither; its callers'
    passes optimise it where it runs. Measured by ``tools/compile_time.py``:
    a third off a cold first fit, and the same machine code where it runs
    (the kernels' tests, bit for bit; ``fastbackprop bench``, the same speed).

    The ``entry`` pipeline compiles as Numba does, then points each
    environment global of a linked callee at its environment, as Numba's
    cache does when it loads a function (``CompileResult._rebuild``): the
    callee's own copy of that global is no longer in the execution engine.

    Internal kernels are not cached on disk (:func:`jit`): loaded from a
    cache, a library goes into the execution engine, whose symbols then
    take the place of a new caller's own optimised copies of them.
    """
    from numba.core import codegen, compiler
    from numba.core.environment import lookup_environment

    class InternalLibrary(codegen.JITCodeLibrary):
        """The code library of a wrapper-less kernel: LLVM IR for callers to link, no machine code."""

        def _optimize_final_module(self):
            pass  # the module passes run in each caller, over the code as it is used there

        def _finalize_final_module(self):
            self._finalize_dynamic_globals()
            self._verify_declare_only_symbols()
            self._finalized = True  # not added to the execution engine: no machine code

        def get_pointer_to_function(self, name):
            self._ensure_finalized()
            return 0  # nothing here can be called from Python: no wrappers

        @property
        def codegen(self):
            return _CalleeCodegen(self._codegen)

    class _CalleeCodegen:
        """The codegen, as an :class:`InternalLibrary` sees it: its environment is set by the
        callers that link it (:class:`EntryCompiler`), since its own global is not loaded."""

        def __init__(self, codegen):
            self._codegen = codegen

        def set_env(self, env_name, env):
            pass

        def __getattr__(self, name):
            return getattr(self._codegen, name)

    class InternalCompiler(compiler.Compiler):
        """Numba's pipeline, into an :class:`InternalLibrary`."""

        def compile_extra(self, func):
            if self.state.library is None:
                library = InternalLibrary(self.state.targetctx.codegen(), func.__qualname__)
                library.enable_object_caching()
                self.state.library = library
            return super().compile_extra(func)

    class EntryCompiler(compiler.Compiler):
        """Numba's pipeline, then the environments of the linked callees set."""

        def compile_extra(self, func):
            cres = super().compile_extra(func)
            library = cres.library
            for gv in library._final_module.global_variables:
                env = lookup_environment(gv.name) if gv.name.startswith("_ZN08NumbaEnv") else None
                if env is not None and library.codegen._engine.get_global_value_address(gv.name):
                    library.codegen.set_env(gv.name, env)
            return cres

    return InternalCompiler, EntryCompiler


def jit(func=None, *, exact=False, entry=False):
    """``numba.njit`` with the package's options; compiles lazily on first call.

    ``entry=True`` for a kernel that Python calls (the training loop, the
    step kernels): it gets Numba's wrappers. Other kernels are compiled
    without them, as a :class:`KernelDispatcher`.

    When :func:`cache_enabled`, an entry kernel's compiled code is cached on
    disk (see :func:`_enable_cache`); when no cache location is writable it
    is compiled in memory instead, silently. The other kernels are not
    cached: their code is in the entry kernels that link them, and they
    have no machine code of their own to cache (:func:`_pipelines`).
    """

    def decorate(f):
        import numba

        dispatcher = numba.njit(**options(exact, wrapped=entry))(f)
        if not entry:
            dispatcher.__class__ = _kernel_dispatcher_class()
            dispatcher.exact = exact
        if entry and cache_enabled():
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


def source_fingerprint():
    """SHA-256 of the package's version and every source file that kernels are compiled from.

    ``FASTBACKPROP_VECTOR_BYTES`` (which picks the products' tiles) is part of it too.
    Numba's cache adds the rest of the key: its index file records the Numba
    version that wrote it (another version's index reads as empty), and each
    entry is keyed to the CPU's name and features (``codegen.magic_tuple()``),
    so a cache written on (or for) another CPU is never loaded here.
    """
    digest = hashlib.sha256(_sources_digest().encode())
    # the products' plan follows it (target_vector_bytes: tiles, SMALL_OPERAND)
    digest.update(os.environ.get("FASTBACKPROP_VECTOR_BYTES", "").strip().encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _sources_digest():
    """SHA-256 of the package's version and the kernels' source files (read once)."""
    from . import __version__

    root = pathlib.Path(__file__).parent
    files = sorted(root.glob("kernels/*.py")) + [
        root / name for name in ("_jit.py", "activations.py", "spec.py")
    ]
    digest = hashlib.sha256(__version__.encode())
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
