"""What a data-parallel step on Dask costs: seconds per step against one process, and the overhead.

``python tools/dask_overhead.py`` trains the ``[100, 64, 1]`` relu network
on random data of m = 1e5, 1e6 and 4e6 columns (``--sizes``), full-batch
gradient descent in float64, two ways on the same data:

* one process: ``kernels.Trainer`` (the compiled loop, BLAS on every core)
  in a process of its own, one ``run(1)`` per step;
* Dask: a ``LocalCluster`` of 2 single-threaded worker processes, one block
  of columns per worker, the kernels warmed, the blocks persisted
  (``fastbackprop.dask.start_run``), then ``run.step``:
  what ``Model.fit`` does per epoch (the block tasks, the reduction, the
  update on the client). The slowest block's compute is the longest
  ``compute`` interval among the step's block tasks, from Dask's own task
  stream, and the **overhead per step** is the step's time minus it.

The steps of the two alternate (one-process, Dask, one-process, ...), so a
change in the machine's load hits both alike; the table shows medians over
the steps.

``--model`` also measures the constants of the cost model in ``docs/dask.md``
(time per column of one block, scheduler cost per task, per-step latency,
transfer bandwidth) and prints what the model predicts for 64 workers and
10^9 examples. Keep the machine otherwise idle: everything here is a ratio
of times taken in one run, but the 2 cores are shared.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time

import numpy as np

DIMS = [100, 64, 1]
LEARNING_RATE = 0.01


def make_block(i, width, n_x=DIMS[0], seed=0):
    """Block ``i`` of the random data: ``X`` ``(n_x, width)``, 0/1 labels ``Y`` ``(1, width)``."""
    r = np.random.default_rng([seed, i])
    X = r.standard_normal((n_x, width))
    Y = (X[0] + X[1] * X[2] > 0).astype(np.float64).reshape(1, width)
    return X, Y


def _x_block(block_info=None):
    info = block_info[None]
    i = info["chunk-location"][1]
    width = info["chunk-shape"][1]
    return make_block(i, width)[0]


def _y_block(block_info=None):
    info = block_info[None]
    return make_block(info["chunk-location"][1], info["chunk-shape"][1])[1]


def widths_of(m, n_blocks):
    return [m * (i + 1) // n_blocks - m * i // n_blocks for i in range(n_blocks)]


def one_process_trainer(m, n_blocks, steps):
    """The one-process compiled trainer on the same data, warmed by one step."""
    from fastbackprop import kernels, reference

    blocks = [make_block(i, w) for i, w in enumerate(widths_of(m, n_blocks))]
    X = np.concatenate([b[0] for b in blocks], axis=1)
    Y = np.concatenate([b[1] for b in blocks], axis=1)
    del blocks
    parameters = reference.initialize_parameters(DIMS, "he", 0)
    trainer = kernels.Trainer(parameters, X, Y, "relu", LEARNING_RATE, cost_every=1,
                              max_iterations=steps + 1)
    trainer.run(1)
    return trainer


def _one_process_server(connection, m, n_blocks, steps):
    """In a process of its own: build the trainer, then time one step per request."""
    trainer = one_process_trainer(m, n_blocks, steps)
    connection.send("ready")
    while connection.recv() == "step":
        started = time.perf_counter()
        trainer.run(1)
        connection.send(time.perf_counter() - started)


class OneProcess:
    """The one-process trainer in a separate process (not the one hosting Dask's scheduler
    and client threads, which would compete with its BLAS threads), one step per call."""

    def __init__(self, m, n_blocks, steps):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_one_process_server,
                                       args=(child, m, n_blocks, steps), daemon=True)
        self.process.start()
        assert self.connection.recv() == "ready"

    def step(self):
        self.connection.send("step")
        return self.connection.recv()

    def close(self):
        self.connection.send("stop")
        self.process.join()


def dask_arrays(m, n_blocks):
    """``X``, ``Y`` generated on the workers, block by block (nothing is sent from here)."""
    import dask.array as da

    chunks = ((DIMS[0],), tuple(widths_of(m, n_blocks)))
    X = da.map_blocks(_x_block, chunks=chunks, dtype=np.float64, meta=np.empty((0, 0)))
    Y = da.map_blocks(_y_block, chunks=((1,), chunks[1]), dtype=np.float64,
                      meta=np.empty((0, 0)))
    return X, Y


def dask_run(client, m, n_blocks, dims=DIMS):
    """A Dask fit's state with its blocks persisted and one step made (``dask.start_run``)."""
    from fastbackprop import Model, dask as fdask

    model = Model(dims, learning_rate=LEARNING_RATE, n_epochs=1, seed=0, cost_every=1)
    run = fdask.start_run(model, *dask_arrays(m, n_blocks), client=client)  # persisted
    run.step(0, 0)
    return run


def slowest_blocks(stream, epochs):
    """The longest ``compute`` interval of each step's block tasks, from Dask's task stream."""
    compute = {}
    for task in stream.data:
        key = str(task["key"])
        if key.startswith("fastbackprop-sums-"):
            epoch = int(key.split("-")[3])
            for interval in task["startstops"]:
                if interval["action"] == "compute":
                    duration = interval["stop"] - interval["start"]
                    compute[epoch] = max(compute.get(epoch, 0.0), duration)
    return np.array([compute[e] for e in epochs])


def measure_size(client, m, n_blocks, steps, single=True):
    """Steps of both, interleaved (one-process, Dask, one-process, ...), so load drifts
    hit both alike; returns the one-process and Dask step times and the slowest blocks."""
    import distributed

    run = dask_run(client, m, n_blocks)
    trainer = OneProcess(m, n_blocks, steps) if single else None
    one, times = [], []
    try:
        with distributed.get_task_stream(client=client) as stream:
            for epoch in range(1, steps + 1):
                if trainer is not None:
                    one.append(trainer.step())
                started = time.perf_counter()
                run.step(epoch, 0)
                times.append(time.perf_counter() - started)
        assert run.status == "ok"
    finally:
        run.release()
        if trainer is not None:
            trainer.close()
    return np.array(one), np.array(times), slowest_blocks(stream, range(1, steps + 1))


@contextlib.contextmanager
def cluster(n_workers=2):
    import distributed

    from fastbackprop import dask as fdask

    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c, distributed.Client(c) as client:
        fdask.warmup(client, dims=DIMS)
        yield client


def measure_sizes(client, sizes, n_blocks, steps_for):
    rows = []
    for m in sizes:
        steps = steps_for(m)
        one, times, slowest = measure_size(client, m, n_blocks, steps)
        rows.append((m, float(np.median(one)), float(np.median(times)),
                     float(np.median(slowest)), float(np.median(times - slowest)), steps))
        print(f"  m={m:.0e}: {steps} steps done", file=sys.stderr, flush=True)
    return rows


def print_table(rows, n_blocks):
    print(f"[100, 64, 1] relu, float64, full batch; Dask: LocalCluster of {n_blocks} "
          "single-threaded worker processes, one block each; medians over the steps")
    print()
    header = ("m", "one-process s/step", "Dask s/step", "slowest block s", "overhead/step",
              "Dask/one-process", "steps")
    print("  ".join(f"{h:>18}" if i else f"{h:>9}" for i, h in enumerate(header)))
    for m, single, step, slowest, overhead, steps in rows:
        print(f"{m:>9.0e}  {single:>18.4f}  {step:>18.4f}  {slowest:>18.4f}  "
              f"{overhead * 1e3:>15.1f} ms  {step / single:>18.2f}  {steps:>18d}")


# ---------------------------------------------------------------------------
# The cost model's constants
# ---------------------------------------------------------------------------


def measure_constants(client, rows, n_blocks):
    """``t_col``, per-task cost ``c``, latency ``l``, bandwidth ``bw`` (see docs/dask.md)."""
    from fastbackprop import dask as fdask

    m, _, _, slowest, _, _ = rows[-1]
    t_col = slowest / (m / n_blocks)
    # per-task cost and latency: tiny blocks (64 columns each), more and more of them
    counts, times = [], []
    for B in (2, 4, 8, 16, 32):
        _, step_times, _ = measure_size(client, 64 * B, B, 15, single=False)
        counts.append(B + (math.ceil(B / fdask.FAN_IN) if B > fdask.FAN_IN else 0))
        times.append(float(np.median(step_times)))
    c, intercept = np.polyfit(counts, times, 1)
    # bandwidth: a worker's 8 MB array gathered by the client
    import distributed

    future = client.submit(np.ones, 1 << 20, pure=False)
    distributed.wait(future)
    client.gather(future)
    started = time.perf_counter()
    for _ in range(5):
        client.gather(future, direct=True)
    bw = 5 * 8 * (1 << 20) / (time.perf_counter() - started)
    return {"t_col": t_col, "c": float(c), "latency": float(intercept), "bandwidth": bw,
            "counts": counts, "times": times}


def predicted_step(W, m, k, P):
    """The model's seconds per step for W workers (one block each) and m columns."""
    from fastbackprop import dask as fdask

    n_tasks, level, depth = W, W, 1
    while level > fdask.FAN_IN:
        level = math.ceil(level / fdask.FAN_IN)
        n_tasks += level
        depth += 1
    compute = k["t_col"] * m / W
    return compute, k["c"] * n_tasks, depth * (k["latency"] + P / k["bandwidth"])


def print_model(k, P):
    print()
    print("Cost model: step = t_col m / W + c * tasks + depth * (l + P / bw)")
    print(f"  t_col = {k['t_col'] * 1e9:.1f} ns per column (one block, one thread)")
    print(f"  c     = {k['c'] * 1e3:.2f} ms per task (fit of the step time against tasks: "
          + ", ".join(f"{n} tasks {t * 1e3:.1f} ms" for n, t in zip(k["counts"], k["times"]))
          + ")")
    print(f"  l     = {k['latency'] * 1e3:.2f} ms per step (the fit's intercept)")
    print(f"  bw    = {k['bandwidth'] / 1e9:.2f} GB/s (8 MB gathered from a worker)")
    print(f"  P     = {P / 1e3:.1f} kB of parameters")
    m = 1e9
    print(f"Predicted for m = 1e9 columns (one block per worker):")
    print(f"{'W':>6}  {'compute s':>10}  {'tasks s':>10}  {'tree s':>10}  {'step s':>10}  "
          f"{'efficiency':>10}")
    for W in (1, 8, 64, 512, 4096, 32768):
        compute, tasks, tree = predicted_step(W, m, k, P)
        total = compute + tasks + tree
        print(f"{W:>6}  {compute:>10.3f}  {tasks:>10.3f}  {tree:>10.4f}  {total:>10.3f}  "
              f"{compute / total:>10.0%}")
    best = min(range(1, 200001), key=lambda W: sum(predicted_step(W, m, k, P)))
    print(f"  the fastest step: W = {best} workers (sqrt(t_col m / c) = "
          f"{math.sqrt(k['t_col'] * m / k['c']):.0f})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6,4e6",
                        help="numbers of columns m, comma-separated (default: 1e5,1e6,4e6)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per size (default: 20, 10 or 5 by size)")
    parser.add_argument("--model", action="store_true",
                        help="also measure the cost model's constants and predict")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]

    def steps_for(m):
        return args.steps or (20 if m <= 100_000 else 10 if m <= 1_000_000 else 5)

    with cluster(args.workers) as client:
        rows = measure_sizes(client, sizes, args.workers, steps_for)
        print_table(rows, args.workers)
        if args.model:
            k = measure_constants(client, rows, args.workers)
            from fastbackprop.kernels.layout import n_parameters

            print_model(k, 8 * n_parameters(DIMS))


if __name__ == "__main__":
    main()
