"""GFLOP/s of the products one thread computes when a batch is split in two: OpenBLAS on one
thread, the kernels' hand loops, and the register-blocked ``microgemm``.

Run from the repository root::

    python tools/small_gemm.py               # every workload below
    python tools/small_gemm.py digits32 small   # some of them
    python tools/small_gemm.py --asm         # count the FMAs in each variant's machine code

For each workload (``WORKLOADS``: the layer widths, the columns a thread
gets, the dtype, and whether the first layer's input comes as rows, as a
gathered mini-batch does) it lists every product of a step, as the
training loop runs them (``Z = W A_prev``; ``dW = dZ A_prev^T``, or ``dZ1
X_rows`` for the first layer of a mini-batch; ``dA_prev = W^T dZ``), and
prints per product: its mode and size ``n x k x m`` (``out`` is ``n x m``,
``k`` the inner dimension), then GFLOP/s (``2 n k m`` per product) of

* ``blas1``: SciPy's OpenBLAS, held to one thread by threadpoolctl
  (``blas.blas_gemm``, the call the kernels make);
* ``hand``: ``passes.gemm``'s plain loops (used below ``SMALL_GEMM`` and for a
  small operand where ``micro_gemm`` does not win), here forced at every size;
* ``micro``: ``microgemm.micro_gemm`` (``passes.gemm`` takes it where
  ``microgemm.micro_wins`` says so, with this CPU's tiles: set
  ``FASTBACKPROP_VECTOR_BYTES=64`` or ``32`` to time the other plan);

and ``micro/blas1``. Each variant runs its product ``calls`` times in one
compiled call (no Python dispatch in the time); the variants alternate,
seven rounds, and each figure is the median of the seven (the machine is
shared, so single timings are noisy). The last lines sum the times per
workload: a step's products, per variant, and with the better of blas1
and micro chosen per product.
"""

from __future__ import annotations

import re
import statistics
import sys
import time

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's OpenBLAS, so threadpoolctl finds it)
from numba import literally
from threadpoolctl import threadpool_limits

from fastbackprop._jit import jit, overload_kernel
from fastbackprop.kernels import passes
from fastbackprop.kernels.blas import NN, NT, TN, blas_gemm
from fastbackprop.kernels.convert import call_specialised
from fastbackprop.kernels.microgemm import micro_gemm
from fastbackprop.kernels.scalar import select

MODES = {NN: "NN", NT: "NT", TN: "TN"}

#: name -> (layer widths, columns a thread gets, dtype, first layer's input as rows)
WORKLOADS = {
    "planar": ((2, 4, 1), 400, "float64", False),
    "digits32": ((64, 64, 10), 16, "float64", True),
    "digits32-one": ((64, 64, 10), 32, "float64", True),  # the thread rule's one thread
    "chains128": ((4, 32, 16, 4), 128, "float32", False),  # a batch of 256 on two threads
    "sklearn": ((64, 100, 10), 100, "float64", True),
    "small": ((20, 64, 64, 1), 128, "float64", False),
    "chains": ((4, 32, 16, 4), 5000, "float32", False),
    "mnist128": ((784, 256, 128, 10), 64, "float32", True),
    "mnist64d": ((784, 256, 128, 10), 32, "float64", True),
    "wide1024": ((784, 1024, 1024, 10), 128, "float32", True),
}


def products(dims, m, rows):
    """``(label, mode, A shape, B shape, out shape)`` of each product of one step."""
    for l in range(1, len(dims)):
        n, k = dims[l], dims[l - 1]
        if rows and l == 1:
            yield "W1 X^T", NT, (n, k), (m, k), (n, m)
            yield "dW1 = dZ1 X", NN, (n, m), (m, k), (n, k)
        else:
            yield f"W{l} A{l - 1}", NN, (n, k), (k, m), (n, m)
            yield f"dW{l} = dZ{l} A{l - 1}^T", NT, (n, m), (k, m), (n, k)
        if l > 1:
            yield f"dA{l - 1} = W{l}^T dZ{l}", TN, (n, k), (n, m), (k, m)


def inner(mode, a_shape):
    return a_shape[0] if mode == TN else a_shape[1]


# -- the three variants, each a compiled loop of products --------------------------------

passes.SMALL_GEMM = 1 << 62  # read when hand_gemm compiles: the hand loops at every size


@jit
def _never(n, k, m=0):
    return False


# and never micro_gemm, which passes.gemm takes first where it wins
passes.micro_wins_rank1 = passes.micro_wins_nt = _never


def hand_gemm(A, B, out, mode):
    """``passes.gemm``'s loops, never BLAS (``SMALL_GEMM`` raised above)."""


@overload_kernel(hand_gemm)
def _hand_gemm(A, B, out, mode):
    return select(mode, passes.GEMM_KERNELS, "gemm mode")


@jit(entry=True)
def _repeat_blas(n, A, B, out, mode):
    literally(mode)
    for _ in range(n):
        blas_gemm(A, B, out, mode)


@jit(entry=True)
def _repeat_hand(n, A, B, out, mode):
    literally(mode)
    for _ in range(n):
        hand_gemm(A, B, out, mode)


@jit(entry=True)
def _repeat_micro(n, A, B, out, mode):
    literally(mode)
    for _ in range(n):
        micro_gemm(A, B, out, mode)


VARIANTS = {"blas1": _repeat_blas, "hand": _repeat_hand, "micro": _repeat_micro}


def run(kernel, calls, A, B, out, mode):
    call_specialised(kernel, calls, A, B, out, mode)


def measure(mode, a, b, o, dtype, rounds=7, budget=2e-3):
    """Median seconds per product of each variant, alternating in rounds."""
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal(s).astype(dtype) for s in (a, b))
    out = np.empty(o, dtype=dtype)
    calls = {}
    for name, kernel in VARIANTS.items():
        run(kernel, 1, A, B, out, mode)  # compile, and warm the caches
        start = time.perf_counter()
        run(kernel, 10, A, B, out, mode)
        calls[name] = max(1, int(budget / max((time.perf_counter() - start) / 10, 1e-9)))
    times = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, kernel in VARIANTS.items():
            start = time.perf_counter()
            run(kernel, calls[name], A, B, out, mode)
            times[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(t) for name, t in times.items()}


def table(names):
    print(f"{'workload':9s} {'product':22s} {'mode':4s} {'n x k x m':>17s} "
          f"{'blas1':>7s} {'hand':>7s} {'micro':>7s} {'micro/blas1':>11s}   (GFLOP/s)")
    for name in names:
        dims, m, dtype, rows = WORKLOADS[name]
        sums = dict.fromkeys(list(VARIANTS) + ["best"], 0.0)
        for label, mode, a, b, o in products(dims, m, rows):
            k = inner(mode, a)
            t = measure(mode, a, b, o, dtype)
            flops = 2.0 * o[0] * o[1] * k
            rate = {v: flops / t[v] / 1e9 for v in t}
            for v in VARIANTS:
                sums[v] += t[v]
            sums["best"] += min(t["blas1"], t["micro"])
            size = f"{o[0]} x {k} x {o[1]}"
            print(f"{name:9s} {label:22s} {MODES[mode]:4s} {size:>17s} {rate['blas1']:7.1f} "
                  f"{rate['hand']:7.1f} {rate['micro']:7.1f} {t['blas1'] / t['micro']:10.2f}x")
        print(f"{name:9s} {'step sum (us)':22s} {dtype:>22s} " +
              " ".join(f"{sums[v] * 1e6:7.2f}" for v in VARIANTS) +
              f"   best of blas1/micro per product: {sums['best'] * 1e6:.2f} us")


def asm_report():
    """Count the FMAs in each variant's compiled loop, by register width and packed/scalar."""
    print(f"{'variant':6s} {'dtype':8s} {'mode':4s} {'zmm':>5s} {'ymm':>5s} {'xmm':>5s} "
          f"{'scalar':>6s} {'bcast':>6s}")
    for dtype in (np.float64, np.float32):
        for mode in MODES:
            A = np.ones((24, 24), dtype)
            B = np.ones((24, 24), dtype)
            out = np.empty((24, 24), dtype)
            for name, kernel in VARIANTS.items():
                if name == "blas1":
                    continue
                run(kernel, 1, A, B, out, mode)
                sig = next(s for s in kernel.signatures
                           if str(s[1].dtype) == np.dtype(dtype).name
                           and getattr(s[4], "literal_value", None) == mode)
                asm = kernel.inspect_asm(sig)
                fmas = re.findall(r"\tvf[n]?m(?:add|sub)\w*\s+([^\n]*)", asm)
                packed = [f for f in re.findall(r"\tvf[n]?m(?:add|sub)\w*", asm) if f[-2] == "p"]
                count = {r: sum(1 for f in fmas if f"%{r}" in f) for r in ("zmm", "ymm", "xmm")}
                scalar = len(fmas) - len(packed)
                bcast = sum(1 for f in fmas if "{1to" in f)
                print(f"{name:6s} {np.dtype(dtype).name:8s} {MODES[mode]:4s} {count['zmm']:5d} "
                      f"{count['ymm']:5d} {count['xmm']:5d} {scalar:6d} {bcast:6d}")


def main(argv):
    import subprocess

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", cpu)
    print(f"CPU: {model.group(1) if model else 'unknown'}")
    if "--asm" in argv:
        asm_report()
        return
    names = [a for a in argv if not a.startswith("-")] or list(WORKLOADS)
    with threadpool_limits(1, user_api="blas"):
        table(names)


if __name__ == "__main__":
    main(sys.argv[1:])
