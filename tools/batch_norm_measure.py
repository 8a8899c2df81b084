"""Batch norm (issue 27): the mnist128 epoch's cost with and without it, its cold first fit,
and accuracy against epochs on digits with and without it.

    python tools/batch_norm_measure.py epoch     # mnist128: seconds per epoch, interleaved
    python tools/batch_norm_measure.py cold      # cold first fit in new processes (no cache)
    python tools/batch_norm_measure.py accuracy  # digits, [64, 64, 64, 64, 10] relu
"""

import os
import subprocess
import sys
import time

import numpy as np


def epoch_cost(repeats=7):
    from fastbackprop import kernels, reference as R
    from fastbackprop.options import TrainingOptions

    rng = np.random.default_rng(0)
    m, dims = 60000, [784, 256, 128, 10]
    X = rng.random((784, m), dtype=np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, m)].T
    base = R.initialize_parameters(dims, "he", 0, np.float32)
    configs = {
        "dense, default threads": (base, dict()),
        "dense, 1 thread": (base, dict(n_threads=1)),
        "batch norm (1 thread)": (R.initialize_batch_norm(base, True), dict(batch_norm=True)),
    }
    trainers = {}
    for name, (parameters, extra) in configs.items():
        o = TrainingOptions(output_activation="softmax", optimizer="adam", batch_size=128,
                            learning_rate=1e-3, cost_every=1000, **extra)
        trainers[name] = kernels.Trainer(parameters, X, Y, options=o, dtype=np.float32,
                                         max_epochs=2 * repeats + 1)
        trainers[name].run(1)  # compile, warm up
        print(f"{name}: threads {trainers[name].n_threads}", flush=True)
    from fastbackprop.kernels.team import blas_threads

    times = {name: [] for name in configs}
    times.update({name + ", BLAS on 1 thread": [] for name in configs if "1 thread" in name})
    for _ in range(repeats):  # interleaved: the machine is shared and noisy
        for name, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.run(1)
            times[name].append(time.perf_counter() - t0)
            if "1 thread" in name:
                with blas_threads(1):
                    t0 = time.perf_counter()
                    trainer.run(1)
                    times[name + ", BLAS on 1 thread"].append(time.perf_counter() - t0)
    for name, values in times.items():
        print(f"{name}: median {np.median(values):.3f} s/epoch, min {min(values):.3f} "
              f"(of {repeats})")


COLD = """
import time, numpy as np
t0 = time.perf_counter()
from fastbackprop import Model
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 1797)); y = rng.integers(0, 10, 1797)
Model([64, 32, 10], output_activation="softmax", optimizer="adam", batch_size=32,
      learning_rate=1e-3, n_epochs=1, seed=0, batch_norm={bn}).fit(X, y)
print(time.perf_counter() - t0)
"""


def cold(repeats=2):
    env = dict(os.environ, FASTBACKPROP_CACHE="0")
    for bn in (False, True, False, True)[:2 * repeats]:
        out = subprocess.run([sys.executable, "-c", COLD.format(bn=bn)], env=env,
                             capture_output=True, text=True, check=True)
        print(f"cold first fit, adam digits-shaped, batch_norm={bn}: "
              f"{float(out.stdout.split()[-1]):.2f} s", flush=True)


def accuracy(n_epochs=15):
    from sklearn.datasets import load_digits

    from fastbackprop import Model

    digits = load_digits()
    X = (digits.data / 16.0).T
    y = digits.target
    order = np.random.default_rng(0).permutation(X.shape[1])
    train, test = order[:1400], order[1400:]
    print("epoch " + " ".join(f"{e:>5d}" for e in range(1, n_epochs + 1)))
    for rate in (0.02, 0.2, 1.0):
        for bn in (False, True):
            model = Model([64, 64, 64, 64, 10], output_activation="softmax",
                          optimizer="momentum", batch_size=32, learning_rate=rate,
                          n_epochs=1, seed=0, batch_norm=bn, init="he")
            scores = []
            for e in range(n_epochs):
                try:
                    model.fit(X[:, train], y[train], warm_start=e > 0)
                    scores.append(model.score(X[:, test], y[test]))
                except FloatingPointError:
                    scores.append(float("nan"))
                    break
            print(f"momentum lr={rate:<4} batch_norm={bn!s:<5} "
                  + " ".join(f"{s:5.3f}" for s in scores), flush=True)


if __name__ == "__main__":
    {"epoch": epoch_cost, "cold": cold, "accuracy": accuracy}[sys.argv[1]]()
