"""How long the matrix products of one training step take, one by one, through the kernels' gemm.

``python tools/blas_products.py small`` (any workload of ``fastbackprop.bench``;
for an epoch workload, one batch's step) times each product of a step (forward ``W A_prev``, ``dW = dZ A_prev^T``, and
``dA_prev = W^T dZ`` for layers 2..L) back to back, prints its GFLOP/s, and
their sum against the step's floor: the least time any code that calls BLAS
for these products can take. For a workload trained by another optimiser
than gradient descent (the epoch workloads: Adam) it times the optimiser's
fused update over the network's parameters too (``optimizer_update``, in
place, as the training loop runs it), and prints the products and the
update together against the floor: a step does both, one after the other.
"""

import statistics
import sys
import time

import numpy as np
from numba import literally

from fastbackprop import bench, spec
from fastbackprop._jit import jit
from fastbackprop.kernels import passes, training
from fastbackprop.kernels.convert import call_specialised
from fastbackprop.kernels.layout import n_parameters
from fastbackprop.kernels.optimizers import optimizer_update
from fastbackprop.kernels.scalar import like


@jit(entry=True)
def _repeat(n, A, B, out, mode):
    literally(mode)
    for _ in range(n):
        passes.gemm(A, B, out, mode)


def repeat(n, A, B, out, mode):
    """``n`` products in one compiled call. (Called plainly from Python, a kernel compiled
    for a constant ``mode`` takes Numba's slow dispatch path, about 10 ms a call, which
    would be charged to the products.)"""
    call_specialised(_repeat, n, A, B, out, mode)


@jit(entry=True)
def _updates(n, current, grad, hyper, code, m):
    literally(code)
    total = like(grad, 0.0)
    for t in range(1, n + 1):
        total += optimizer_update(code, current, grad, like(grad, 1.0) / like(grad, m),
                                  hyper.learning_rate, hyper, t)
    return total


def update_time(w, m, calls):
    """Median seconds of one fused update of ``w.optimizer`` over ``w``'s parameters."""
    dt = np.dtype(w.dtype)
    f = dt.type
    optimizer = spec.OPTIMIZERS[w.optimizer]
    n = n_parameters(list(w.layer_dims))
    current = np.zeros(n * (1 + len(optimizer.state)), dtype=dt)
    grad = np.random.default_rng(1).standard_normal(n).astype(dt)
    d = spec.OPTIMIZER_DEFAULTS
    hyper = training.Hyper(f(0.001), 1, f(d["beta"]), f(d["beta1"]), f(d["beta2"]),
                           f(d["epsilon"]), f(0.0), 0, m, True, np.uint64(0))
    run = lambda k: call_specialised(_updates, k, current, grad, hyper,
                                     optimizer.code, m)
    run(1)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run(calls)
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def products(dims, m):
    """``(name, A shape, B shape, out shape, mode)`` of every product of one step."""
    for l in range(1, len(dims)):
        n, k = dims[l], dims[l - 1]
        yield f"W{l} A{l - 1}", (n, k), (k, m), (n, m), passes.NN
        yield f"dW{l} = dZ{l} A{l - 1}^T", (n, m), (k, m), (n, k), passes.NT
        if l > 1:
            yield f"dA{l - 1} = W{l}^T dZ{l}", (n, k), (n, m), (k, m), passes.TN


def main(name="small", calls=500):
    w = bench.ALL_WORKLOADS[name]
    m = w.m if w.batch_size is None else w.batch_size
    dt = np.dtype(w.dtype)
    rng = np.random.default_rng(0)
    rate = bench.gemm_rate(dt)
    total = 0.0
    for label, a, b, o, mode in products(w.layer_dims, m):
        A, B = (rng.standard_normal(s).astype(dt) for s in (a, b))
        out = np.empty(o, dtype=dt)
        repeat(1, A, B, out, mode)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            repeat(calls, A, B, out, mode)
            times.append((time.perf_counter() - start) / calls)
        t = statistics.median(times)
        inner = a[1] if mode == passes.NN else (b[1] if mode == passes.NT else a[0])
        flops = 2 * o[0] * o[1] * inner
        total += t
        print(f"{label:22s} {o[0]:>5d} x {inner:>5d} x {o[1]:>5d}  {t * 1e6:9.1f} us  {flops / t / 1e9:6.1f} GFLOP/s")
    floor = bench.step_flops(w.layer_dims, m) / rate
    print(f"sum {total * 1e6:.1f} us; floor {floor * 1e6:.1f} us (2048^2 GEMM at {rate / 1e9:.0f} GFLOP/s); "
          f"sum/floor {total / floor:.2f}x")
    if w.optimizer != "gd":
        update = update_time(w, m, calls)
        print(f"{w.optimizer} update of {n_parameters(list(w.layer_dims))} parameters "
              f"{update * 1e6:.1f} us ({update / floor:.2f}x the floor); "
              f"products + update {(total + update) / floor:.2f}x the floor")


if __name__ == "__main__":
    main(*sys.argv[1:2])
