"""Time fastbackprop.sklearn's solver="lbfgs" against scikit-learn's on digits.

    python tools/lbfgs_speed.py                        # BLAS threads as the libraries start
    python tools/lbfgs_speed.py --blas-threads 1       # both on one BLAS thread

Both classes get the same standardised digits (a stratified 70/30 split), scikit-learn's
defaults (``hidden_layer_sizes=(100,)``, relu, ``alpha=1e-4``), ``solver="lbfgs"``,
``max_iter=200`` and ``random_state=0`` (the same initial weights), with ``tol`` at its
default (1e-4: scipy's ``gtol``, which stops both early) and at 0 (both run until
``max_iter`` or scipy's ``ftol``). Each ``fit`` is timed ``--repeats`` times, ours and
theirs alternating, and the median is reported with scipy's iterations and function
evaluations (each evaluation one forward and backward pass over all 1257 training
images), the time per evaluation and the test accuracy. Our first fit is run once before
the timings, so Numba's compilation (or loading from its cache) is not counted.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed fits per setting (5)")
    parser.add_argument("--max-iter", type=int, default=200, help="max_iter (200)")
    parser.add_argument("--tols", default="0.0001,0", help="comma-separated tol values")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS to this many threads for both classes (default: "
                             "as the libraries start)")
    args = parser.parse_args(argv)

    import numpy as np
    import scipy
    import scipy.optimize
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as Theirs
    from sklearn.preprocessing import StandardScaler

    import fastbackprop
    from fastbackprop.sklearn import MLPClassifier as Ours

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    results = []
    minimize = scipy.optimize.minimize

    def recording(*a, **kw):  # both classes call scipy.optimize.minimize: keep its result
        result = minimize(*a, **kw)
        results.append(result)
        return result

    scipy.optimize.minimize = recording
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    def timed(cls, kw):
        model = cls(**kw)
        start = clock()
        model.fit(X_train, y_train)
        elapsed = clock() - start
        return elapsed, model, results[-1]

    if args.blas_threads is not None:
        import scipy.linalg.cython_blas  # noqa: F401 - load the kernels' BLAS before limiting
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")

    print(f"fastbackprop {fastbackprop.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}, scipy {scipy.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs; digits {X_train.shape}, "
          f"hidden (100,), relu, solver='lbfgs', max_iter={args.max_iter}, random_state=0; "
          f"median of {args.repeats} fits ({args.clock} time), alternating; BLAS threads: "
          f"{'as started' if args.blas_threads is None else args.blas_threads}.")
    header = (f"{'tol':>6}  {'':7} {'fit':>8} {'iter':>5} {'evals':>5} {'per eval':>9}  "
              f"{'score':>6}  {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    for tol in (float(t) for t in args.tols.split(",")):
        kw = dict(solver="lbfgs", max_iter=args.max_iter, tol=tol, random_state=0)
        timed(Ours, kw)  # compile or load
        times = {"ours": [], "sklearn": []}
        fitted = {}
        for _ in range(args.repeats):
            for name, cls in (("ours", Ours), ("sklearn", Theirs)):
                elapsed, model, result = timed(cls, kw)
                times[name].append(elapsed)
                fitted[name] = (model, result)
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name in ("ours", "sklearn"):
            model, result = fitted[name]
            t = medians[name]
            speed_up = f"{medians['sklearn'] / medians['ours']:>7.1f}x" if name == "ours" else ""
            print(f"{tol:>6g}  {name:7} {t:>7.3f}s {model.n_iter_:>5} {result.nfev:>5} "
                  f"{1e3 * t / result.nfev:>7.2f}ms  {model.score(X_test, y_test):>6.4f}  "
                  f"{speed_up:>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
