"""How long XLA takes for the matrix products of one training step, against the floor.

``python tools/xla_products.py wide1024`` (any workload of ``fastbackprop.bench``;
for an epoch workload, one batch's step) times, in JAX on the CPU, the
products that ``tools/blas_products.py`` times through OpenBLAS: the forward
``W A_prev``, ``dW = dZ A_prev^T`` and ``dA_prev = W^T dZ`` for layers 2..L,
with the examples as rows as the JAX peer holds them, ``k`` steps in one
jitted ``fori_loop`` (every result summed into the carry, so that XLA can
neither drop nor hoist a product). The two scripts side by side say how much
of a peer's lead is its GEMM: the kernels call OpenBLAS through Numba and
SciPy, and cannot call anything else. Needs ``jax`` (the ``peers`` extra).
"""

import statistics
import sys
import time

import numpy as np

from fastbackprop import bench


def main(name="wide1024", repeats=7):
    import jax
    import jax.numpy as jnp

    w = bench.ALL_WORKLOADS[name]
    dt = np.dtype(w.dtype)
    if dt == np.float64:
        jax.config.update("jax_enable_x64", True)
    m = w.batch_size or w.m
    dims = w.layer_dims
    rng = np.random.default_rng(0)
    Ws = [jnp.asarray(rng.standard_normal((dims[l], dims[l - 1])).astype(dt))
          for l in range(1, len(dims))]
    dZs = [jnp.asarray(rng.standard_normal((m, dims[l])).astype(dt)) for l in range(1, len(dims))]
    X = jnp.asarray(rng.random((m, dims[0])).astype(dt))

    def step(_, X):
        acts = [X]
        for W in Ws:
            acts.append(acts[-1] @ W.T)
        total = jnp.zeros((), dt)
        for l in range(len(Ws), 0, -1):
            total += jnp.sum(dZs[l - 1].T @ acts[l - 1])  # dW_l
            if l > 1:
                total += jnp.sum(dZs[l - 1] @ Ws[l - 1])  # dA_{l-1}
        return X + total * dt.type(0)

    run = jax.jit(lambda X, k: jax.lax.fori_loop(0, k, step, X))
    k = 20 if m * dims[1] > 10**5 else 200
    run(X, k).block_until_ready()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(X, k).block_until_ready()
        times.append((time.perf_counter() - start) / k)
    t = statistics.median(times)
    rate = bench.gemm_rate(dt)
    floor = bench.step_flops(dims, m) / rate
    print(f"{name}: XLA's products {t * 1e6:.1f} us a step; floor {floor * 1e6:.1f} us "
          f"(2048^2 NumPy GEMM at {rate / 1e9:.0f} GFLOP/s); products/floor {t / floor:.2f}x")


if __name__ == "__main__":
    main(*sys.argv[1:2])
