"""A spin barrier for persistent threads in nogil kernels, with an abort flag.

The data-parallel step (issue 25) runs ``P`` Python threads, each in one
long nogil compiled call for a whole run of epochs, meeting at a barrier
twice a step. Numba has no atomics and no threads' primitives inside
nopython code, so this module adds them as intrinsics:

* :func:`atomic_load` (acquire), :func:`atomic_store` (release) and
  :func:`atomic_add` (sequentially consistent fetch-and-add) on an entry of
  an int64 array. A plain load in a spin loop would be hoisted out of it
  by LLVM (nothing in the loop writes the array), and a plain store could
  be moved before the writes it publishes.
* :func:`cpu_relax`: the ``pause`` instruction on x86 (``llvm.x86.sse2.pause``),
  which lets the core's other work (a hyper-thread sibling, the memory
  system) go on while a thread spins; nothing on other architectures.
* :func:`yield_cpu` and :func:`sleep_us`: ``sched_yield``/``usleep`` from
  libc (``SwitchToThread``/``Sleep`` on Windows), called through symbols
  this module registers with LLVM from their ``ctypes`` addresses. Where
  they cannot be found, both degrade to :func:`cpu_relax` (a spinning
  thread still makes progress when the OS preempts it, only slowly).

The barrier state is one int64 array, :func:`new_barrier`: slot 0 the
abort flag, slot ``1 + t`` the number of barriers thread ``t`` has reached,
each slot on its own 128 bytes (a cache line and the line the adjacent-line
prefetcher pulls with it), the array aligned to 128 bytes. :func:`barrier`
publishes the caller's count (release) and waits until every other
thread's count has reached it (acquire), so every write a thread made
before the barrier is visible to every thread after it. Counts only grow,
so a fast thread may already be past the next barrier: waiting for ``>=``,
not ``==``, is right.

Waiting backs off in three stages (:data:`SPIN_PAUSES`,
:data:`SPIN_YIELDS`): ``pause`` in a tight loop (the common case: the other
threads are a few microseconds away); then ``sched_yield``, so a thread
that shares a core with the one it waits for gives it the core (more
threads than free cores: ``P`` above the core count, or another process
busy); then sleeps of :data:`SLEEP_US`, so a long wait leaves the core
idle for the scheduler to move work onto it.

Abort: any thread, or Python (:func:`raise_abort`, e.g. a worker's wrapper
after an exception), sets the flag; every thread waiting in a barrier
sees it within one spin and returns ``False``; a thread arriving at a
barrier after it returns ``False`` at once. Kernels return when a barrier
returns ``False``. :func:`run_threads` starts the workers, raises the
flag when one of them raises, joins them all and re-raises.
"""

from __future__ import annotations

import ctypes
import sys
import threading

import numpy as np
from llvmlite import binding as ll
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._jit import jit

#: int64 entries per slot of the barrier state: 128 bytes.
SLOT = 16

#: Waiting: ``pause`` this many times (about 8 ns each on the development machine: 2 us),
#: then ``sched_yield`` up to ``SPIN_YIELDS`` times (about 0.15 us each when nothing else
#: wants the core: 1.5 ms; a context switch when something does), then sleep ``SLEEP_US``
#: at a time (``usleep`` takes 80 us or more, whatever it is asked: the timer slack).
#: The counts are checked between any two waits.
SPIN_PAUSES = 256
SPIN_YIELDS = 10000
SLEEP_US = 50

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)

#: The names under which the OS calls are registered with LLVM (``None``: not found).
_YIELD_SYMBOL = "fastbackprop_sync_yield"
_SLEEP_SYMBOL = "fastbackprop_sync_sleep"


def _register_os_calls():
    """Register ``sched_yield``/``usleep`` (``SwitchToThread``/``Sleep(ms)``) with LLVM.

    Returns ``(yield_ok, sleep_ok, sleep_unit_us)``: which were found, and the unit of the
    sleep call's argument in microseconds (1 for ``usleep``, 1000 for ``Sleep``)."""
    try:
        if sys.platform == "win32":
            kernel32 = ctypes.WinDLL("kernel32")
            calls = (kernel32.SwitchToThread, kernel32.Sleep, 1000)
        else:
            libc = ctypes.CDLL(None)
            calls = (libc.sched_yield, libc.usleep, 1)
    except (OSError, AttributeError):
        return False, False, 1
    found = []
    for name, fn in ((_YIELD_SYMBOL, calls[0]), (_SLEEP_SYMBOL, calls[1])):
        address = ctypes.cast(fn, ctypes.c_void_p).value
        if address:
            ll.add_symbol(name, address)
        found.append(bool(address))
    return found[0], found[1], calls[2]


_HAVE_YIELD, _HAVE_SLEEP, _SLEEP_UNIT_US = _register_os_calls()


def _is_x86():
    triple = ll.get_process_triple()
    return triple.startswith(("x86_64", "i386", "i486", "i586", "i686", "amd64"))


# -- intrinsics ---------------------------------------------------------------------------


def _int64_array(a):
    return isinstance(a, types.Array) and a.dtype == types.int64 and a.ndim == 1


def _entry_pointer(context, builder, aty, aval, index):
    a = context.make_array(aty)(context, builder, aval)
    return cgutils.get_item_pointer(context, builder, aty, a, [index])


@intrinsic
def atomic_load(typingctx, a, index):
    """``a[index]``, read with acquire ordering (never hoisted out of a loop)."""
    if not (_int64_array(a) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _entry_pointer(context, builder, a, args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(a, index), codegen


@intrinsic
def atomic_store(typingctx, a, index, value):
    """``a[index] = value`` with release ordering: the caller's earlier writes are visible
    to a thread that reads this value with :func:`atomic_load`."""
    if not (_int64_array(a) and isinstance(index, types.Integer)
            and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _entry_pointer(context, builder, a, args[0], args[1])
        v = context.cast(builder, args[2], value, types.int64)
        builder.store_atomic(v, ptr, "release", 8)
        return context.get_dummy_value()

    return types.none(a, index, value), codegen


@intrinsic
def atomic_add(typingctx, a, index, value):
    """``old = a[index]; a[index] += value; return old``, atomically (sequentially consistent)."""
    if not (_int64_array(a) and isinstance(index, types.Integer)
            and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _entry_pointer(context, builder, a, args[0], args[1])
        v = context.cast(builder, args[2], value, types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")

    return types.int64(a, index, value), codegen


@intrinsic
def cpu_relax(typingctx):
    """The spin-wait hint: ``pause`` on x86, nothing elsewhere."""

    def codegen(context, builder, signature, args):
        _pause(builder)
        return context.get_dummy_value()

    return types.none(), codegen


def _pause(builder):
    """Emit ``pause`` on x86 (nothing elsewhere)."""
    if _is_x86():
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                            "llvm.x86.sse2.pause")
        builder.call(fn, [])


@intrinsic
def yield_cpu(typingctx):
    """Give up the core to another runnable thread (``sched_yield``; ``pause`` without it)."""

    def codegen(context, builder, signature, args):
        if _HAVE_YIELD:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, []),
                                                _YIELD_SYMBOL)
            builder.call(fn, [])
        else:
            _pause(builder)
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def sleep_us(typingctx, us):
    """Sleep about ``us`` microseconds (``usleep``; on Windows ``Sleep`` of whole ms, so
    ``Sleep(0)`` below a millisecond: a yield); ``pause`` where neither is found."""
    if not isinstance(us, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        if _HAVE_SLEEP:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [_I32]),
                                                _SLEEP_SYMBOL)
            n = context.cast(builder, args[0], us, types.int64)
            n = builder.sdiv(n, ir.Constant(_I64, _SLEEP_UNIT_US))
            builder.call(fn, [builder.trunc(n, _I32)])
        else:
            _pause(builder)
        return context.get_dummy_value()

    return types.none(us), codegen


# -- the barrier ----------------------------------------------------------------------------


def new_barrier(n_threads):
    """The state of a barrier for ``n_threads`` threads: a zeroed int64 array of
    ``(n_threads + 1) * SLOT`` entries, aligned to 128 bytes (slot 0 the abort flag,
    slot ``1 + t`` thread ``t``'s count)."""
    if n_threads < 1:
        raise ValueError(f"a barrier needs at least one thread; got {n_threads}")
    size = (n_threads + 1) * SLOT
    raw = np.zeros(size + SLOT, dtype=np.int64)
    offset = (-raw.ctypes.data % (SLOT * 8)) // 8
    return raw[offset:offset + size]


def reset(state):
    """Clear the counts and the abort flag (no thread may be using ``state``)."""
    state[:] = 0


def raise_abort(state):
    """Set the abort flag from Python: every thread in a barrier returns ``False``."""
    state[0] = 1


def aborted(state):
    """True when the abort flag is set (from Python)."""
    return bool(state[0])


@jit
def abort(state):
    """Set the abort flag from a kernel (e.g. on a non-finite value)."""
    atomic_store(state, 0, 1)


@jit
def is_aborted(state):
    """True when the abort flag is set (from a kernel)."""
    return atomic_load(state, 0) != 0


@jit
def backoff(spins):
    """One wait of a spin loop that has waited ``spins`` times: pause, yield, then sleep."""
    if spins < SPIN_PAUSES:
        cpu_relax()
    elif spins < SPIN_PAUSES + SPIN_YIELDS:
        yield_cpu()
    else:
        sleep_us(SLEEP_US)


@jit
def barrier_at(state, tid, n_threads, stride):
    """:func:`barrier` with slots of ``stride`` int64 entries (for measuring the layout)."""
    if atomic_load(state, 0) != 0:
        return False
    own = (tid + 1) * stride
    count = atomic_load(state, own) + 1
    atomic_store(state, own, count)
    for other in range(n_threads):
        if other == tid:
            continue
        slot = (other + 1) * stride
        # an int64 from the start: from a literal 0, Numba typed (and compiled) backoff for
        # Literal[int](0) as well as for int64, 0.11 s of every cold threaded fit
        spins = np.int64(0)
        while atomic_load(state, slot) < count:
            if atomic_load(state, 0) != 0 and atomic_load(state, slot) < count:
                return False  # aborted, and the other has not arrived: it never will
            backoff(spins)
            spins += 1
    return True


@jit
def barrier(state, tid, n_threads):
    """Wait until all ``n_threads`` threads have reached this barrier; ``tid`` is the caller's
    index. Returns True, or False as soon as the abort flag is set (then return too) while
    a thread has not arrived: a barrier every thread reached returns True even when the
    flag went up meanwhile (a thread that passed it can abort before a slow waiter has
    seen it arrive; the waiter reads the other's count again after the flag, and the
    count was published before the flag).

    Every write made by any thread before its call is visible to every thread
    after the call returns True. Threads must cross the same barriers in the
    same order; the state starts zeroed (:func:`new_barrier`, :func:`reset`).
    """
    return barrier_at(state, tid, n_threads, SLOT)


# -- the threads ----------------------------------------------------------------------------


THREAD_NAME = "fastbackprop-team"  # the prefix of every worker thread's name


def run_threads(work, n_threads, state, caller_works=True):
    """Run ``work(tid)`` for ``tid`` in ``range(n_threads)``, each in its own thread.

    ``work`` is a Python callable that enters a nogil kernel sharing ``state``.
    With ``caller_works`` (the default) thread 0 is the calling thread, so
    only ``n_threads - 1`` threads are started; a Ctrl-C then waits until
    the caller's kernel returns. Without it the caller only waits, in
    ``join`` with a timeout, so a Ctrl-C interrupts at once; it raises the
    abort flag, then joins every worker.

    When any ``work`` raises, the abort flag is raised (the others leave
    their barriers and return) and, once all have returned, the first
    exception is re-raised. Returns the list of the ``work`` results.
    """
    results = [None] * n_threads
    errors = []

    def target(tid):
        try:
            results[tid] = work(tid)
        except BaseException as e:  # noqa: B036 - re-raised in the caller
            errors.append(e)
            raise_abort(state)

    first = 1 if caller_works else 0
    threads = [threading.Thread(target=target, args=(tid,), daemon=True,
                                name=f"{THREAD_NAME}-{tid}")
               for tid in range(first, n_threads)]
    try:
        for t in threads:
            t.start()
        if caller_works:
            target(0)
        else:
            for t in threads:
                while t.is_alive():
                    t.join(0.05)
    except BaseException:
        raise_abort(state)
        raise
    finally:
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return results


class Crew:
    """``n_threads - 1`` started threads kept between runs: :func:`run_threads` (with the
    caller as thread 0) without starting and joining threads every time.

    Starting and joining a thread costs about 80 us here, and a fit that runs one
    epoch a call (scikit-learn's epoch loop, a progress callback) paid it every
    epoch: digits at the drop-in's defaults took 1.03 ms an epoch in calls of
    one epoch against 0.64 ms in one call. A crew's workers wait on a lock of
    their own between runs (no spinning: an idle crew uses no CPU) and leave
    when it is closed; use it as a context manager so that they always do::

        with Crew(2, state) as crew:
            crew.run(work)
            crew.run(other_work)

    :meth:`run` has :func:`run_threads`'s guarantees: an exception in any
    ``work`` raises the abort flag and is re-raised once every thread has
    returned; a Ctrl-C in the caller raises the flag and waits for the workers.
    """

    def __init__(self, n_threads, state):
        self.n_threads = n_threads
        self._state = state
        self._work = None
        self._results = [None] * n_threads
        self._errors = []
        self._go = [threading.Lock() for _ in range(n_threads)]
        self._done = [threading.Lock() for _ in range(n_threads)]
        for lock in self._go + self._done:
            lock.acquire()
        self._threads = [threading.Thread(target=self._serve, args=(tid,), daemon=True,
                                          name=f"{THREAD_NAME}-{tid}")
                         for tid in range(1, n_threads)]
        for t in self._threads:
            t.start()

    def _call(self, tid):
        try:
            self._results[tid] = self._work(tid)
        except BaseException as e:  # noqa: B036 - re-raised in the caller
            self._errors.append(e)
            raise_abort(self._state)

    def _serve(self, tid):
        """Worker ``tid``: run the work of each run until the crew closes (work None)."""
        while True:
            self._go[tid].acquire()
            try:
                if self._work is None:
                    return
                self._call(tid)
            finally:
                self._done[tid].release()

    def run(self, work):
        """``work(tid)`` for every ``tid`` at once, the caller running ``tid = 0``; the list of
        results (see :func:`run_threads`)."""
        if not self._threads and self.n_threads > 1:
            raise RuntimeError("this crew is closed")
        self._work, self._errors = work, []
        self._results = [None] * self.n_threads
        for tid in range(1, self.n_threads):
            self._go[tid].release()
        try:
            self._call(0)
        finally:
            self._wait()
            self._work = None
        if self._errors:
            raise self._errors[0]
        return self._results

    def _wait(self):
        """Wait until every worker has done its run (a Ctrl-C meanwhile raises the abort flag
        and is re-raised once they have)."""
        interrupted = None
        for tid in range(1, self.n_threads):
            while True:
                try:
                    self._done[tid].acquire()
                    break
                except BaseException as e:  # noqa: B036 - a Ctrl-C: stop them, still wait
                    raise_abort(self._state)
                    interrupted = e
        if interrupted is not None:
            raise interrupted

    def close(self):
        """Let the workers leave, and join them (a second close does nothing)."""
        if not self._threads:
            return
        self._work = None
        for tid in range(1, self.n_threads):
            self._go[tid].release()
        for t in self._threads:
            t.join()
        self._threads = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
