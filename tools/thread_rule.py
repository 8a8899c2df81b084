"""One thread or two? The measurements behind ``fastbackprop.variants.MIN_COLUMNS``.

For each network below and each batch width, a mini-batch Adam fit of the
kernels' ``Trainer`` on ``n_threads=1`` (BLAS as it starts, as the trainer
runs it) and on ``n_threads=2`` (each thread half of every batch), timed in
alternating rounds with a pause before each timing (OpenBLAS's threads spin
for a while after a product, on the cores the two threads need), and the
median of the rounds per step. Run from the repository root::

    python tools/thread_rule.py [--widths 16,32,64,128] [--rounds 5] [--pause 0.3] [--min-time 0.2]

Each line gives, per width, ``us per step on 1 / on 2 threads (gain)``; the
rule splits a batch when each thread keeps at least ``MIN_COLUMNS`` of its
columns (and ``MIN_SHARE`` multiply-adds), so the widths where the gain is
above 1 for every network should be those from ``2 * MIN_COLUMNS`` on.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastbackprop import reference as R  # noqa: E402
from fastbackprop.bench import cpu_model, timer  # noqa: E402
from fastbackprop.kernels import Trainer  # noqa: E402
from fastbackprop.validation import check_labels  # noqa: E402

#: (layer_dims, dtype): digits32's and the drop-in's default networks, small, chains, MNIST's.
NETWORKS = [([64, 64, 10], "float64"), ([64, 100, 10], "float64"), ([20, 64, 64, 1], "float64"),
            ([4, 32, 16, 4], "float32"), ([784, 256, 128, 10], "float32"),
            ([784, 256, 128, 10], "float64")]
PAUSE = 0.3  # seconds before each timing
MIN_TIME = 0.2  # seconds each timing lasts at least
M = 2048  # training columns


def problem(dims, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((dims[0], M)).astype(dtype)
    if dims[-1] == 1:
        return X, (rng.random((1, M)) > 0.5).astype(dtype), "sigmoid"
    Y = check_labels(rng.integers(0, dims[-1], M), "softmax", n_y=dims[-1], m=M, dtype=dtype)
    return X, Y, "softmax"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="16,32,64,128")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pause", type=float, default=PAUSE,
                        help=f"seconds before each timing ({PAUSE}; 0: back to back)")
    parser.add_argument("--min-time", type=float, default=MIN_TIME,
                        help=f"seconds each timing lasts at least ({MIN_TIME}): after a pause "
                             "the second core runs slow for milliseconds, which a short "
                             "timing counts against two threads")
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    print(f"CPU: {cpu_model()}; us per step on 1 / 2 threads (gain), median of {args.rounds} rounds, "
          f"{args.pause} s before each timing of at least {args.min_time} s")
    for dims, dtype in NETWORKS:
        X, Y, output = problem(dims, np.dtype(dtype))
        trainers = {}
        for width in widths:
            for P in (1, 2):
                trainer = Trainer(R.initialize_parameters(dims, seed=1, dtype=np.dtype(dtype)), X, Y,
                                  "relu", 0.001, n_threads=P, output_activation=output,
                                  optimizer="adam", batch_size=width, seed=3, cost_every=1)
                trainer.run(1)  # compiles, or loads from the cache
                trainers[width, P] = trainer
        # each timing runs enough epochs to last --min-time: seconds per epoch
        timings = {key: timer(trainer.run, args.min_time) for key, trainer in trainers.items()}
        times = {key: [] for key in trainers}
        for _ in range(args.rounds):
            for key, trainer in trainers.items():
                time.sleep(args.pause)
                times[key].append(timings[key]() / trainer.n_batches)
        cells = []
        for width in widths:
            one, two = (statistics.median(times[width, P]) * 1e6 for P in (1, 2))
            cells.append(f"b{width}: {one:.1f}/{two:.1f} ({one / two:.2f}x)")
        print(f"{str(dims):<20} {dtype:<8} " + "  ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
