"""By hidden units or by columns? The measurements behind ``fastbackprop.variants.UNIT_COLUMNS``.

For each network of one hidden layer and batch width given, two kernel
trainers of the bench's mini-batch Adam fit on ``P`` threads, one split by
hidden units (``kernels/units.py``) and one by the batch's columns, built in
one process (``variants.UNIT_COLUMNS`` set either way while each is built), then
timed in alternating rounds of ``--epochs`` epochs each (the threads kept for
the round), and one thread's too with ``--one``. Run from the repository root::

    python tools/thread_split.py [--nets 64x64x10:32,64x100x10:16,...] [--rounds 30] [--one]

Each line gives, per split, the minimum, first quartile and median us a step:
the minimum is what the host's other work took least from (on a shared host
the medians move by 10 to 50% from minute to minute).
"""
import argparse
import dataclasses
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastbackprop import bench, variants  # noqa: E402
from fastbackprop.kernels import trainer as kernels_trainer  # noqa: E402

NETS = "64x64x10:32,64x64x10:64,64x100x10:16,64x100x10:32,64x100x10:64"


def workload(net):
    """``digits32``'s workload with the network and batch of ``"64x100x10:32"``."""
    dims, batch = net.split(":")
    return dataclasses.replace(bench.ALL_WORKLOADS["digits32"],
                               layer_dims=tuple(int(d) for d in dims.split("x")),
                               batch_size=int(batch))


def trainer(w, n_threads, units):
    """The bench's kernels trainer of ``w`` on ``n_threads``, split by ``units`` or not."""
    saved = variants.UNIT_COLUMNS
    variants.UNIT_COLUMNS = 10**9 if units else 0
    try:
        p = bench.make_problem(w)
        t = kernels_trainer.Trainer(
            p.parameters, p.X, p.Y, w.hidden, bench.ADAM_LEARNING_RATE, cost_every=1,
            output_activation=w.output, optimizer=w.optimizer, batch_size=w.batch_size,
            seed=bench.SEED, shuffle=w.shuffle, n_threads=n_threads)
    finally:
        variants.UNIT_COLUMNS = saved
    t.run(1)  # compile (or load)
    return t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default=NETS, help="dims:batch, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--one", action="store_true", help="time one thread too")
    args = parser.parse_args(argv)
    print(f"CPU: {bench.cpu_model()}; cores: {bench.core_slowdown():.2f}x")
    for net in args.nets.split(","):
        w = workload(net)
        steps = -(-w.m // w.batch_size)
        trainers = {"units": trainer(w, args.threads, True),
                    "columns": trainer(w, args.threads, False)}
        if args.one:
            trainers["one thread"] = trainer(w, 1, False)
        times = {name: [] for name in trainers}
        for _ in range(args.rounds):
            for name, t in trainers.items():
                with t.threads_kept():
                    start = time.perf_counter()
                    t.run(args.epochs)
                    times[name].append((time.perf_counter() - start) / args.epochs / steps)
        print(f"{net}: " + " | ".join(
            f"{name} min {min(v) * 1e6:.2f} q25 {np.percentile(v, 25) * 1e6:.2f} "
            f"med {statistics.median(v) * 1e6:.2f}" for name, v in times.items()), flush=True)
    print(f"cores: {bench.core_slowdown():.2f}x")


if __name__ == "__main__":
    main()
