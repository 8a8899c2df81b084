"""Where a step's time goes: the time-stamp counter read between the phases of a step.

``tools/step_phases.py`` gives a fit a *clock*, a float64 array ``(P, CLOCK_WIDTH)``
(:func:`new`), through :meth:`.trainer.Trainer.clock_phases`; the training loop
then adds the cycles each thread spends in each phase of :data:`PHASES` to its
row (and counts its steps in the last column). Without a clock (``None``, every
fit's default) Numba prunes every reading before typing: nothing is compiled or
run for it, and the parameters are the same to the bit either way (tested).

The counter is LLVM's ``llvm.readcyclecounter`` (``rdtsc`` on x86: a constant
rate on the CPUs of the last decade, whatever the core's clock; :func:`rate`
measures it against Python's clock). A reading costs about 20 cycles and does
not wait for the instructions before it, so phases shorter than about 0.1 us
are blurred.
"""

from __future__ import annotations

import time

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._jit import jit

#: The phases of a step, in order: thread ``tid``'s row of a clock holds the cycles of
#: each in its column. ``gather``: its share of the batch into its buffers;
#: ``forward``/``backward``: the passes over it; ``wait``: the barrier after them (the
#: other threads' passes still running); ``sum``: choosing the partner's gradient row (with
#: more than two threads, adding the others into the thread's own); ``update``: the
#: optimiser's update of its share, which adds the two rows as it reads them (and L2's
#: term and the checkpoint's copy); ``wait_update``: the barrier after the updates.
PHASES = ("gather", "forward", "backward", "wait", "sum", "update", "wait_update")
GATHER, FORWARD, BACKWARD, WAIT, SUM, UPDATE, WAIT_UPDATE = range(len(PHASES))
#: Columns of a clock: the phases, then the steps counted.
CLOCK_WIDTH = len(PHASES) + 1
STEPS = len(PHASES)


@intrinsic
def read_counter(typingctx):
    """The time-stamp counter (``llvm.readcyclecounter``), a uint64."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.uint64(), codegen


@jit
def tick(clock):
    """The counter now, or 0 without a clock (``None``: nothing is read)."""
    if clock is None:
        return np.uint64(0)
    return read_counter()


@jit
def tock(clock, tid, phase, since):
    """Add the cycles from ``since`` (a :func:`tick`) to thread ``tid``'s ``phase``; return
    the counter now (the next phase's start). Called only with a clock (the caller's
    ``if clock is not None`` is what Numba prunes)."""
    now = read_counter()
    clock[tid, phase] += float(now - since)
    return now


@jit
def count_step(clock, tid):
    """Count one step of thread ``tid`` (with a clock, as :func:`tock`)."""
    clock[tid, STEPS] += 1.0


@jit(entry=True)
def counter():
    """:func:`read_counter`, from Python."""
    return read_counter()


def new(P):
    """A zeroed clock for ``P`` threads."""
    return np.zeros((P, CLOCK_WIDTH))


def rate(seconds=0.2):
    """Counter ticks per second, measured against ``time.perf_counter`` over ``seconds``."""
    counter()
    start, t0 = counter(), time.perf_counter()
    time.sleep(seconds)
    return (counter() - start) / (time.perf_counter() - t0)


def seconds_per_step(clock, ticks_per_second):
    """``(P, len(PHASES))`` seconds a step in each phase, per thread, from a clock."""
    steps = np.maximum(clock[:, STEPS:STEPS + 1], 1.0)
    return clock[:, :STEPS] / steps / ticks_per_second
