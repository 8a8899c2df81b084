"""Would splitting a step's columns across the cores pay? A measured prototype (issue 13).

``python tools/column_split.py small`` (any workload of ``fastbackprop.bench``;
for an epoch workload, one batch) times the forward pass (with the cost)
and the backward pass of one step, the parts that hold the matrix
products, two ways, in one compiled call of many steps each:

whole  the kernels as the training loop runs them: every column in one
       forward and one backward pass, BLAS on its default threads;
split  the columns cut into ``P`` equal blocks (``P`` the number of cores),
       each core running the same forward and backward passes on its own
       block (Numba ``prange``) with BLAS on one thread, then the blocks'
       raw ``dW``, ``db`` summed: the per-core design of issue 13.

It prints both against the step's floor. The parameter update, the
gather and the epoch's bookkeeping are not in either, so the two columns
bound what the split can save, not a whole step's time. Needs
``threadpoolctl`` (a scikit-learn dependency) to put BLAS on one thread.
"""

import os
import statistics
import sys
import time

import numpy as np
from numba import literally, njit, prange
from threadpoolctl import threadpool_limits

from fastbackprop import bench, spec
from fastbackprop._jit import options
from fastbackprop.kernels.layout import layer_offsets, n_parameters
from fastbackprop.kernels.first_layer import Columns
from fastbackprop.kernels.training import Batch, Work, backward, forward


@njit(**options())
def whole(n, theta, X, Y, w, dims, offsets, hidden, output, acts, deltas, grad, cols):
    """``n`` forward and backward passes over all the columns of ``X``."""
    literally(hidden)
    literally(output)
    total = 0.0
    batch = Batch(Columns(X), Y, w)
    work = Work(acts, deltas, grad, cols[0], cols, offsets)
    for _ in range(n):
        s, loss = forward(theta, batch, dims, work, hidden, output, True, None, 0)
        backward(theta, batch, dims, work, hidden, None, None, 0)
        total += loss
    return total


@njit(**options(), parallel=True)
def split(n, theta, Xs, Ys, ws, dims, offsets, hidden, output, acts, deltas, grads, cols, grad):
    """``n`` steps of: forward and backward on block ``p`` (``Xs[p]`` ``(n_x, m / P)``) on
    core ``p``, raw gradients into ``grads[p]``, then ``grad = sum_p grads[p]``."""
    literally(hidden)
    literally(output)
    P = Xs.shape[0]
    total = 0.0
    for _ in range(n):
        for p in prange(P):
            batch = Batch(Columns(Xs[p]), Ys[p], ws[p])
            work = Work(acts[p], deltas[p], grads[p], ws[p], cols[p], offsets)
            forward(theta, batch, dims, work, hidden, output, True, None, 0)
            backward(theta, batch, dims, work, hidden, None, None, 0)
        for k in range(grad.size):
            g = grads[0, k]
            for p in range(1, P):
                g += grads[p, k]
            grad[k] = g
        total += grad[0]
    return total


def median_time(run, n, repeats=7):
    run(1)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(n)
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def main(name="small", steps=400):
    wl = bench.ALL_WORKLOADS[name]
    dt = np.dtype(wl.dtype)
    m = wl.m if wl.batch_size is None else wl.batch_size
    P = os.cpu_count() or 1
    mb = m // P
    m = mb * P  # equal blocks
    dims = np.array(wl.layer_dims, dtype=np.int64)
    rng = np.random.default_rng(0)
    theta = (rng.standard_normal(n_parameters(wl.layer_dims)) * 0.1).astype(dt)
    X = rng.random((dims[0], m)).astype(dt)
    Y = np.zeros((dims[-1], m), dtype=dt)
    if wl.output == "softmax":
        Y[rng.integers(0, dims[-1], m), np.arange(m)] = 1
    else:
        Y[:] = rng.integers(0, 2, Y.shape)
    w = np.ones(m, dtype=dt)
    hidden, output = spec.ACTIVATIONS[wl.hidden].code, spec.OUTPUTS[wl.output].code
    units = int(dims[1:].sum())
    acts, deltas = (np.empty(units * m, dtype=dt) for _ in range(2))
    grad = np.empty_like(theta)
    cols = np.empty((4, m), dtype=dt)

    Xs = np.ascontiguousarray(X.reshape(dims[0], P, mb).transpose(1, 0, 2))
    Ys = np.ascontiguousarray(Y.reshape(dims[-1], P, mb).transpose(1, 0, 2))
    ws = w.reshape(P, mb).copy()
    acts_p, deltas_p = (np.empty((P, units * mb), dtype=dt) for _ in range(2))
    grads = np.empty((P, theta.size), dtype=dt)
    cols_p = np.empty((P, 4, mb), dtype=dt)

    def run_whole(n):
        whole(n, theta, X, Y, w, dims, layer_offsets(dims, X.shape[1]), hidden, output, acts,
              deltas, grad, cols)

    def run_split(n):
        split(n, theta, Xs, Ys, ws, dims, layer_offsets(dims, Xs.shape[2]), hidden, output,
              acts_p, deltas_p, grads, cols_p, grad)

    run_whole(1)
    whole_grad = grad.copy()
    run_split(1)
    tol = 1e-4 if dt == np.float32 else 1e-10
    assert np.allclose(grad, whole_grad, rtol=tol, atol=tol), "the split's gradients differ"

    floor = bench.step_flops(wl.layer_dims, m) / bench.gemm_rate(dt)
    time.sleep(bench.SETTLE)
    t_whole = median_time(run_whole, steps)
    with threadpool_limits(1, user_api="blas"):
        t_split = median_time(run_split, steps)
    print(f"{name} {wl.layer_dims} m={m} {dt.name}, {P} blocks of {mb} columns; "
          f"floor {floor * 1e6:.1f} us")
    print(f"whole: {t_whole * 1e6:8.1f} us  {t_whole / floor:5.2f}x floor")
    print(f"split: {t_split * 1e6:8.1f} us  {t_split / floor:5.2f}x floor  "
          f"({t_whole / t_split:.2f}x faster)")


if __name__ == "__main__":
    main(*sys.argv[1:2])
