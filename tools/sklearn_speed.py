"""Time fastbackprop.sklearn's MLPClassifier against scikit-learn's on digits and breast_cancer.

    python tools/sklearn_speed.py                 # the table in docs/sklearn.md
    python tools/sklearn_speed.py --blas-threads 1 --clock cpu   # both on one BLAS thread
    python tools/sklearn_speed.py --repeats 5 --max-iter 100

Both classes get the same standardised data (a stratified 70/30 split), the
same hyperparameters (scikit-learn's defaults, ``max_iter`` fixed and
``tol=0`` so both run every epoch, ``random_state=0`` so both start from the
same weights) for ``solver`` adam and sgd and each ``batch_size``. Each
``fit`` is timed ``--repeats`` times, ours and theirs alternating (with a pause
before each, while the other's BLAS threads stop spinning), and the
median is reported with the test accuracy. Our first fit of each setting is
run once before the timings, so Numba's compilation (or loading from its
cache) is not counted; it is a once-per-process cost (see docs/startup.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings


#: Seconds to wait before each timed fit (fastbackprop.bench's SETTLE).
SETTLE = 0.3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per setting (3)")
    parser.add_argument("--max-iter", type=int, default=200, help="epochs per fit (200)")
    parser.add_argument("--batch-sizes", default="32,auto,512",
                        help="comma-separated batch sizes (32,auto,512)")
    parser.add_argument("--datasets", default="digits,breast_cancer")
    parser.add_argument("--solvers", default="adam,sgd")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time (default); cpu: the process's CPU time, "
                             "steadier on a shared machine when BLAS has one thread")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS to this many threads for both classes (default: "
                             "as the libraries start; ours uses 1 for small products itself)")
    parser.add_argument("--one-thread", action="store_true",
                        help="also time ours with n_threads=1: what the P-thread step gains")
    args = parser.parse_args(argv)

    import numpy as np
    import sklearn
    from sklearn import datasets
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as Theirs
    from sklearn.preprocessing import StandardScaler

    import fastbackprop
    from fastbackprop.sklearn import MLPClassifier as Ours

    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", UserWarning)  # batch_size clipped to n_samples

    def data(name):
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                            stratify=y)
        scaler = StandardScaler().fit(X_train)
        return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test

    clock = time.perf_counter if args.clock == "wall" else time.process_time

    def timed(cls, kw, X_train, y_train):
        # the other library's BLAS threads spin for a while after its last product, on the
        # cores this fit's threads need: let them go to sleep first (as fastbackprop bench)
        time.sleep(SETTLE)
        model = cls(**kw)
        if cls is Ours:  # the compiled trainer, not a NumPy fit of backend="auto"
            model.set_params(backend="numba")
        start = clock()
        model.fit(X_train, y_train)
        return clock() - start, model

    if args.blas_threads is not None:
        import scipy.linalg.cython_blas  # noqa: F401 - load the kernels' BLAS before limiting
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")

    print(f"fastbackprop {fastbackprop.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; max_iter={args.max_iter}, tol=0, random_state=0, "
          f"otherwise scikit-learn's defaults; median of {args.repeats} fits ({args.clock} "
          f"time); BLAS threads: "
          f"{'as started' if args.blas_threads is None else args.blas_threads}.")
    header = (f"{'data':<14} {'solver':<6} {'batch':>5}  {'ours':>8}  {'sklearn':>8}  "
              f"{'speed-up':>8}  {'score ours':>10}  {'sklearn':>7}  {'diff':>6}"
              + (f"  {'1 thread':>8}  {'P gain':>6}" if args.one_thread else ""))
    print(header)
    print("-" * len(header))
    for name in args.datasets.split(","):
        X_train, X_test, y_train, y_test = data(name)
        for solver in args.solvers.split(","):
            for batch in args.batch_sizes.split(","):
                batch_size = batch if batch == "auto" else int(batch)
                kw = dict(solver=solver, batch_size=batch_size, max_iter=args.max_iter, tol=0,
                          random_state=0)
                timed(Ours, dict(kw, max_iter=1), X_train, y_train)  # compile or load
                ours, theirs, single = [], [], []
                for _ in range(args.repeats):
                    t, mine = timed(Ours, kw, X_train, y_train)
                    ours.append(t)
                    t, other = timed(Theirs, kw, X_train, y_train)
                    theirs.append(t)
                    if args.one_thread:
                        single.append(timed(Ours, dict(kw, n_threads=1), X_train, y_train)[0])
                a, b = statistics.median(ours), statistics.median(theirs)
                extra = ""
                if args.one_thread:
                    c = statistics.median(single)
                    extra = f"  {c:>7.3f}s  {c / a:>5.2f}x"
                s_ours, s_theirs = mine.score(X_test, y_test), other.score(X_test, y_test)
                shown = batch if batch == "auto" else str(min(int(batch), len(X_train)))
                print(f"{name:<14} {solver:<6} {shown:>5}  {a:>7.3f}s  {b:>7.3f}s  "
                      f"{b / a:>7.1f}x  {s_ours:>10.4f}  {s_theirs:>7.4f}  "
                      f"{s_ours - s_theirs:>+6.3f}{extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
