"""How long Numba spends compiling (or loading from its cache) inside a block of code.

The first fit of a configuration on a machine compiles its kernels; the
command and its progress bar report that time apart from the training time
(issue 26). Numba announces every compilation with ``numba:compile`` events
(``numba.core.event``), nested when one kernel compiles another; the clock
counts the outermost ones, so nothing is counted twice. Loading a kernel
from the on-disk cache raises the same events and takes milliseconds.
"""

import contextlib
import time

__all__ = ["CompileClock", "compile_clock"]


class CompileClock:
    """Seconds of compilation seen so far, and callbacks at its edges.

    ``on_start()`` is called when an outermost compilation begins and
    ``on_end()`` when it ends (for example to label a progress bar); both
    may be set after the clock is made.
    """

    def __init__(self, on_start=None, on_end=None):
        self.seconds = 0.0
        self.compilations = 0  # outermost compilations (or cache loads)
        self.compiled = False  # whether any of them compiled (generated code)
        self.on_start = on_start
        self.on_end = on_end
        self._depth = 0
        self._started = 0.0

    def begin(self):
        if self._depth == 0:
            self._started = time.perf_counter()
            if self.on_start is not None:
                self.on_start()
        self._depth += 1

    def end(self):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._started
            self.compilations += 1
            if self.on_end is not None:
                self.on_end()


@contextlib.contextmanager
def compile_clock(on_start=None, on_end=None):
    """``with compile_clock() as clock: ...``; then ``clock.seconds`` is the compile time.

    Listens to Numba's ``numba:compile`` events while the block runs, and
    to its ``numba:llvm_lock`` events inside them to tell a compilation from
    a cache load (a call that Numba types again with literal arguments runs
    a few compiler passes even when the result then loads from the cache,
    but generates no code)
    (imports Numba: use it where the kernels run).
    """
    from numba.core import event

    clock = CompileClock(on_start, on_end)

    class Listener(event.Listener):
        def on_start(self, ev):
            clock.begin()

        def on_end(self, ev):
            clock.end()

    class Codegen(event.Listener):  # loading from the cache generates no code
        def on_start(self, ev):
            if clock._depth:
                clock.compiled = True

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", Listener()), \
            event.install_listener("numba:llvm_lock", Codegen()):
        yield clock
