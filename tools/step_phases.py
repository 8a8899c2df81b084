"""Where a step of the bench's workloads spends its time, thread by thread.

Run from the repository root::

    python tools/step_phases.py digits32 chains small --threads 1,2
    python tools/step_phases.py digits32 --batch-size 16 --optimizer gd --threads 1

For each workload (the bench's epoch workloads, and its step workloads:
full-batch gradient descent) and thread count, a kernels trainer with a clock
(:mod:`fastbackprop.kernels.clock`) runs ``--rounds`` timings of ``--epochs``
epochs after one that compiles; the round with the least wall time per step
is printed: its wall time per step, and each thread's microseconds per step
in each phase (the gather of its share of the batch, forward, backward, the
wait at the barrier after them, choosing the gradient row of the thread's
partner, the optimiser's update of its share (which adds the two rows), the
wait after the updates).
What is left of the wall time is the epoch loop itself and the calls.

The phases are read with the time-stamp counter; while another process
holds a core (the bench's ``cores:`` probe, printed first and last), a
phase that lost its core looks long: compare rounds taken with both cores
free.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from fastbackprop import bench
from fastbackprop.kernels import clock, trainer as kernels_trainer

#: Every workload of the bench, by name: its full-batch steps and its epochs.
WORKLOADS = {**bench.WORKLOADS, **bench.EPOCH_WORKLOADS}


def trainer_for(workload, n_threads):
    """The bench's kernels trainer of a workload on ``n_threads``, as ``bench.epoch_timer``
    (epoch workloads) or ``bench.kernels_step_timer`` (step workloads) builds it, with a
    clock."""
    problem = bench.make_problem(workload)
    if workload.name in bench.EPOCH_WORKLOADS:
        options = dict(learning_rate=bench.ADAM_LEARNING_RATE, optimizer=workload.optimizer,
                       batch_size=workload.batch_size, seed=bench.SEED,
                       shuffle=workload.shuffle)
    else:
        options = dict(learning_rate=bench.LEARNING_RATE)
    trainer = kernels_trainer.Trainer(
        problem.parameters, problem.X, problem.Y, workload.hidden, cost_every=1,
        output_activation=workload.output, n_threads=n_threads, **options)
    return trainer, trainer.clock_phases()


def best_round(trainer, cycles, epochs, rounds):
    """``(wall seconds per step, cycles per phase (P, CLOCK_WIDTH))`` of the fastest round."""
    trainer.run(1)  # compile (or load) the clocked variant
    best = None
    for _ in range(rounds):
        cycles[:] = 0.0
        start = time.perf_counter()
        trainer.run(epochs)
        wall = time.perf_counter() - start
        per_step = wall / cycles[0, clock.STEPS]
        if best is None or per_step < best[0]:
            best = (per_step, cycles.copy())
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="+",
                        choices=sorted(WORKLOADS))
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--batch-size", type=int, help="instead of the workload's")
    parser.add_argument("--optimizer", help="instead of the workload's")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    ticks = clock.rate()
    print(f"CPU: {bench.cpu_model()}; counter {ticks / 1e9:.2f} GHz; "
          f"cores: {bench.core_slowdown():.2f}x")
    header = "  ".join(f"{name:>11}" for name in clock.PHASES)
    for name in args.workloads:
        workload = WORKLOADS[name]
        changes = {k: v for k, v in (("batch_size", args.batch_size),
                                     ("optimizer", args.optimizer)) if v is not None}
        workload = dataclasses.replace(workload, **changes)
        for P in (int(p) for p in args.threads.split(",")):
            trainer, cycles = trainer_for(workload, P)
            wall, best = best_round(trainer, cycles, args.epochs, args.rounds)
            seconds = clock.seconds_per_step(best, ticks)
            print(f"\n{workload.name}: {workload.label}, {trainer.n_threads} thread(s): "
                  f"{wall * 1e6:.2f} us a step (best of {args.rounds}); us a step:")
            print(f"thread  {header}")
            for tid in range(trainer.n_threads):
                print(f"{tid:>6}  " + "  ".join(f"{s * 1e6:>11.2f}" for s in seconds[tid]))
            print("   max  " + "  ".join(f"{s * 1e6:>11.2f}" for s in np.max(seconds, 0))
                  + "  (the slowest thread's)")
    print(f"\ncores: {bench.core_slowdown():.2f}x")


if __name__ == "__main__":
    main()
