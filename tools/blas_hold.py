"""Should a one-thread fit hold BLAS to one thread? (issue 25: the fixed cost and the load.)

For each workload, the kernels on one thread (``n_threads=1``), timed with
BLAS on its default threads and held to one (``threadpoolctl``), alternating
the two timing by timing so that both see the same machine; the median of
``--repeats`` each. With ``--busy`` a process spins on one core meanwhile (a
machine with its other core taken, as under a test run or a second fit).
Also the cost of a short fit (``--epochs`` epochs from a fresh trainer,
first steps included), where BLAS's sleeping threads are woken. Run from the
repository root::

    python tools/blas_hold.py [--workloads mlp,mnist128] [--repeats 5] [--busy]
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastbackprop import bench  # noqa: E402
from fastbackprop.kernels import Trainer, team  # noqa: E402


def spin(stop):
    while not stop.is_set():
        pass


def trainer(problem):
    w = problem.workload
    epochs = w.name in bench.EPOCH_WORKLOADS
    return Trainer(problem.parameters, problem.X, problem.Y, w.hidden,
                   bench.ADAM_LEARNING_RATE if epochs else bench.LEARNING_RATE, cost_every=1,
                   output_activation=w.output, optimizer=w.optimizer if epochs else "gd",
                   batch_size=w.batch_size if epochs else None, seed=0,
                   shuffle=w.shuffle if epochs else False, n_threads=1)


def steady(problem, hold, k):
    """Seconds per epoch (step) of ``k`` epochs after two that warm up."""
    t = trainer(problem)
    with team.blas_threads(1 if hold else None):
        t.run(2)
        start = time.perf_counter()
        t.run(k)
        return (time.perf_counter() - start) / k


def short_fit(problem, hold, k):
    """Seconds of a fresh trainer's first ``k`` epochs (its set-up included)."""
    start = time.perf_counter()
    with team.blas_threads(1 if hold else None):
        trainer(problem).run(k)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(bench.ALL_WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--busy", action="store_true")
    args = parser.parse_args()
    stop = multiprocessing.Event()
    spinner = None
    if args.busy:
        spinner = multiprocessing.Process(target=spin, args=(stop,), daemon=True)
        spinner.start()
    try:
        print(f"busy other core: {args.busy}; median of {args.repeats}")
        print("| workload | steady, BLAS default | steady, BLAS held to 1 | ratio | "
              f"{args.epochs}-epoch fit, default | held | ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name in args.workloads.split(","):
            problem = bench.make_problem(bench.ALL_WORKLOADS[name])
            trainer(problem).run(1)  # compile
            k = max(1, int(0.05 / max(steady(problem, True, 1), 1e-6)))
            cells = {}
            for label, f, n in (("steady", steady, k), ("short", short_fit, args.epochs)):
                runs = {False: [], True: []}
                for _ in range(args.repeats):
                    for hold in (False, True):
                        runs[hold].append(f(problem, hold, n))
                cells[label] = [statistics.median(runs[False]), statistics.median(runs[True])]
            s, f = cells["steady"], cells["short"]
            print(f"| {name} | {bench.format_seconds(s[0])} | {bench.format_seconds(s[1])} | "
                  f"{s[0] / s[1]:.2f} | {bench.format_seconds(f[0])} | "
                  f"{bench.format_seconds(f[1])} | {f[0] / f[1]:.2f} |", flush=True)
    finally:
        stop.set()
        if spinner is not None:
            spinner.join()


if __name__ == "__main__":
    main()
