"""Two Python threads calling OpenBLAS (or ``microgemm``) at once, each on its own half-size product.

Run from the repository root::

    python tools/blas_two_threads.py          # the table
    python tools/blas_two_threads.py --hog    # then again beside a CPU-bound process

For each product (``PRODUCTS``: ``out = A @ B``, NN, the sizes one thread of
a 2-thread step gets) and each setting of SciPy's OpenBLAS (held to one
thread by threadpoolctl, or left at its default: the machine's cores),
prints the median over ``REPEATS`` runs (the settings alternate inside each
repeat) of:

* ``alone``: one thread, in one nogil compiled call, doing ``CALLS``
  products; us per product;
* ``two``: two Python threads (started by ``sync.run_threads``; they meet at
  a barrier first, so both loops overlap), each doing ``CALLS`` products
  on its own arrays at once; us per product per thread, i.e. the wall time
  over ``CALLS`` (the two threads' products are done in that time);
* ``speed-up``: two threads' work per second over one thread's (2.0: both
  cores fully used);

and whether any run failed to finish within ``DEADLINE`` seconds (a
deadlock). The same for ``microgemm.micro_gemm`` (never threaded), with
each thread's ``A`` its own copy, and with one ``A`` shared by both
threads (a shared array's reference count is written at every
non-inlined call: the cache line moves between the cores).

With ``--hog`` the table is printed a second time while one CPU-bound
process (``while True: pass``, started and killed by this script) keeps a
core busy, as the other worker of a 2-thread step does: what OpenBLAS's
own threads do when the core they expect is taken.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's OpenBLAS, so threadpoolctl finds it)
from numba import literally
from threadpoolctl import threadpool_info, threadpool_limits

from fastbackprop._jit import jit
from fastbackprop.kernels import sync
from fastbackprop.kernels.blas import NN, blas_gemm
from fastbackprop.kernels.convert import call_specialised
from fastbackprop.kernels.microgemm import micro_gemm

#: (n, k, m, dtype): out is n x m, the inner dimension k.
PRODUCTS = [(256, 784, 64, "float32"), (64, 64, 16, "float64"), (128, 256, 64, "float32"),
            (100, 64, 100, "float64")]
REPEATS = 7
DEADLINE = 60.0
BUDGET = 0.05  # seconds of products per run, one thread


@jit(entry=True)
def _blas_loop(state, tid, n_threads, calls, A, B, out, mode):
    literally(mode)
    if not sync.barrier(state, tid, n_threads):
        return 0
    for _ in range(calls):
        blas_gemm(A, B, out, mode)
    return calls


@jit(entry=True)
def _micro_loop(state, tid, n_threads, calls, A, B, out, mode):
    literally(mode)
    if not sync.barrier(state, tid, n_threads):
        return 0
    for _ in range(calls):
        micro_gemm(A, B, out, mode)
    return calls


def timed_run(kernel, operands, calls):
    """Wall seconds for ``len(operands)`` threads, thread ``t`` doing ``calls`` products on
    ``operands[t]``; ``None`` when they do not finish within ``DEADLINE``."""
    P = len(operands)
    state = sync.new_barrier(P)
    dtype = operands[0][0].dtype

    def work(tid):
        A, B, out = operands[tid]
        return call_specialised(kernel, dtype, NN, state, tid, P, calls, A, B, out, NN)

    outcome = {}

    def timed():
        start = time.perf_counter()
        sync.run_threads(work, P, state)
        outcome["t"] = time.perf_counter() - start

    waiter = threading.Thread(target=timed, daemon=True)
    waiter.start()
    waiter.join(DEADLINE)
    if waiter.is_alive():
        sync.raise_abort(state)
        return None
    return outcome["t"]


def operands_for(n, k, m, dtype, rng):
    return (rng.standard_normal((n, k)).astype(dtype), rng.standard_normal((k, m)).astype(dtype),
            np.empty((n, m), dtype=dtype))


def main(argv):
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", cpu)
    print(f"CPU: {model.group(1) if model else 'unknown'}")
    scipy_blas = [i for i in threadpool_info() if "scipy" in i["filepath"]]
    for info in scipy_blas:
        print(f"SciPy's BLAS: {info['internal_api']} {info['version']}, "
              f"default {info['num_threads']} threads")
    table()
    if "--hog" in argv:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            print("\nwith a CPU-bound process beside:")
            table()
        finally:
            hog.kill()
            hog.wait()


def table():
    rng = np.random.default_rng(0)
    print(f"\n{'product':>22s} {'variant':24s} {'alone us':>9s} {'two us':>9s} {'speed-up':>9s}"
          f"  (median of {REPEATS}; 'two': wall time per product, both threads)")
    for n, k, m, dtype in PRODUCTS:
        ops = [operands_for(n, k, m, dtype, rng) for _ in range(2)]
        shared_A = [ops[0], (ops[0][0], ops[1][1], ops[1][2])]
        variants = {
            "OpenBLAS, 1 thread": (_blas_loop, ops, 1),
            "OpenBLAS, default": (_blas_loop, ops, None),
            "micro_gemm, own A": (_micro_loop, ops, None),
            "micro_gemm, shared A": (_micro_loop, shared_A, None),
        }
        calls = {}
        for name, (kernel, operands, limit) in variants.items():
            with threadpool_limits(limit, user_api="blas"):
                timed_run(kernel, operands[:1], 10)  # compile, warm
                t = timed_run(kernel, operands[:1], 50)
                calls[name] = max(20, int(BUDGET / (t / 50)))
        times = {(name, P): [] for name in variants for P in (1, 2)}
        for _ in range(REPEATS):
            for name, (kernel, operands, limit) in variants.items():
                with threadpool_limits(limit, user_api="blas"):
                    for P in (1, 2):
                        t = timed_run(kernel, operands[:P], calls[name])
                        times[name, P].append(float("inf") if t is None else t / calls[name])
        size = f"{n}x{k}x{m} {dtype}"
        for name in variants:
            alone = statistics.median(times[name, 1])
            two = statistics.median(times[name, 2])
            hung = any(t == float("inf") for t in times[name, 1] + times[name, 2])
            print(f"{size:>22s} {name:24s} {alone * 1e6:9.2f} {two * 1e6:9.2f} {2 * alone / two:8.2f}x"
                  + ("  DID NOT FINISH (deadline)" if hung else ""))
            size = ""


if __name__ == "__main__":
    main(sys.argv[1:])
