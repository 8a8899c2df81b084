"""What a ``Model.fit`` pays beyond its epochs (issue 25: at most 2 ms on every bench workload).

For each workload, fits of ``k`` epochs for several ``k`` (after a warm-up
fit, so nothing compiles), each timed as a user calls it (building the
``Model``, ``fit``), the median of ``--repeats``; a least-squares line
``t(k) = fixed + k * epoch`` through them gives the fixed cost per fit and
the steady epoch. Run from the repository root::

    python tools/fit_fixed_cost.py [--workloads planar,mlp,...] [--repeats 5]
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastbackprop import Model, bench  # noqa: E402

EPOCHS = (1, 2, 4, 8)


def model(workload, n_epochs):
    w = workload
    options = {} if w.batch_size is None else {"batch_size": w.batch_size,
                                               "shuffle": w.shuffle}
    return Model(list(w.layer_dims), w.hidden, w.output, optimizer=w.optimizer,
                 learning_rate=bench.LEARNING_RATE if w.optimizer == "gd"
                 else bench.ADAM_LEARNING_RATE, n_epochs=n_epochs, seed=0, dtype=w.dtype,
                 **options)


def fit_seconds(workload, X, Y, n_epochs, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model(workload, n_epochs).fit(X, Y)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(bench.ALL_WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| workload | " + " | ".join(f"{k} epochs" for k in EPOCHS)
          + " | steady epoch | fixed cost per fit |")
    print("| --- " * (len(EPOCHS) + 3) + "|")
    for name in args.workloads.split(","):
        w = bench.ALL_WORKLOADS[name]
        problem = bench.make_problem(w)
        X, Y = problem.X, problem.Y
        epochs = EPOCHS if w.m * max(w.layer_dims) < 10**8 else EPOCHS[:3]
        model(w, max(epochs)).fit(X, Y)  # compile every variant the fits use
        model(w, 1).fit(X, Y)
        seconds = [fit_seconds(w, X, Y, k, args.repeats) for k in epochs]
        slope, fixed = np.polyfit(epochs, seconds, 1)
        cells = [bench.format_seconds(s) for s in seconds] + [""] * (len(EPOCHS) - len(epochs))
        print(f"| {name} | " + " | ".join(cells)
              + f" | {bench.format_seconds(slope)} | {fixed * 1e3:.2f} ms |", flush=True)


if __name__ == "__main__":
    main()
