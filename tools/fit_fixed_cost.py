"""What a ``Model.fit`` pays beyond its epochs (issue 25: at most 2 ms on every bench workload).

For each workload, fits of ``k`` epochs for several ``k`` (after a warm-up
fit, so nothing compiles), each timed as a user calls it (building the
``Model``, ``fit``), the median of ``--repeats``; a least-squares line
``t(k) = fixed + k * epoch`` through them gives the fixed cost per fit and
the steady epoch. Run from the repository root::

    python tools/fit_fixed_cost.py [--workloads planar,mlp,...] [--repeats 5]
    python tools/fit_fixed_cost.py --workloads deep,mnist128 --epochs 1 --repeats 15 --best

``--best`` takes the fastest fit of the repeats instead of the median (on a shared machine,
the fit least slowed by others); with one epoch count there is no line to fit.
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


def fit_seconds(workload, X, Y, n_epochs, repeats, best=False):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model(workload, n_epochs).fit(X, Y)
        times.append(time.perf_counter() - started)
    return min(times) if best else statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(bench.ALL_WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", default=",".join(map(str, EPOCHS)),
                        help="the epoch counts of the fits, comma-separated")
    parser.add_argument("--best", action="store_true", help="the fastest fit, not the median")
    args = parser.parse_args()
    counts = tuple(int(k) for k in args.epochs.split(","))
    print("| workload | " + " | ".join(f"{k} epochs" for k in counts)
          + " | steady epoch | fixed cost per fit |")
    print("| --- " * (len(counts) + 3) + "|")
    for name in args.workloads.split(","):
        w = bench.ALL_WORKLOADS[name]
        problem = bench.make_problem(w)
        X, Y = problem.X, problem.Y
        epochs = counts if w.m * max(w.layer_dims) < 10**8 else counts[:3]
        model(w, max(epochs)).fit(X, Y)  # compile every variant the fits use
        model(w, 1).fit(X, Y)
        seconds = [fit_seconds(w, X, Y, k, args.repeats, args.best) for k in epochs]
        cells = [bench.format_seconds(s) for s in seconds] + [""] * (len(counts) - len(epochs))
        line = ["", ""]
        if len(epochs) > 1:
            slope, fixed = np.polyfit(epochs, seconds, 1)
            line = [bench.format_seconds(slope), f"{fixed * 1e3:.2f} ms"]
        print(f"| {name} | " + " | ".join(cells + line) + " |", flush=True)


if __name__ == "__main__":
    main()
