"""What the persistent threads' spin barrier (``kernels/sync.py``) costs, and what starting them costs.

Run from the repository root::

    python tools/barrier_cost.py          # everything below, about a minute
    python tools/barrier_cost.py --hog    # also with CPU-bound processes running beside

Prints, each figure the median of ``REPEATS`` runs (the machine is shared,
so single runs are noisy; the variants of one table alternate within each
repeat):

1. ns per barrier crossing: ``P`` threads (2, 4, 8; the machine's core
   count is printed: above it, threads must take turns), each in one nogil
   call crossing ``N`` barriers with no work between.
2. ns per step with a little work between barriers: each thread runs a
   dependent chain of multiply-adds (about 0.25, 1 and 4 us) then crosses
   the barrier, against the same chain alone in one thread; the difference
   is what the barrier adds to a step with work in it.
3. The slot size: counters 64 bytes apart against 128 (``P = 2``).
4. us to start ``P - 1`` ``threading.Thread``\\ s that each enter a nogil call
   (one barrier with the caller, which runs thread 0), and join them: the
   fixed cost of a run of epochs on ``P`` threads (``sync.run_threads``),
   against the caller making the same call alone; and the same with the
   caller only waiting (``caller_works=False``, all ``P`` threads started).
5. With ``--hog``: tables 1 and 2 again while ``HOGS`` CPU-bound processes
   (``while True: pass``, started and then killed by this script) take cores.
"""

from __future__ import annotations

import os
import queue
import re
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

from fastbackprop._jit import jit
from fastbackprop.kernels import sync

REPEATS = 7
HOGS = 1


@jit(entry=True)
def crossings(state, tid, n_threads, n, stride):
    """``n`` barriers with nothing between; the number crossed."""
    for s in range(n):
        if not sync.barrier_at(state, tid, n_threads, stride):
            return s
    return n


@jit(entry=True, exact=True)
def work_steps(state, tid, n_threads, n, chain, x):
    """``n`` steps of a dependent multiply-add chain of ``chain`` links, then a barrier
    (none when ``n_threads`` is 1); returns the chain's value (so it is not removed).
    ``exact``: no reassociation, so the chain stays a chain (4 cycles a link)."""
    for s in range(n):
        for _ in range(chain):
            x = x * 0.999999 + 1e-7
        if n_threads > 1 and not sync.barrier(state, tid, n_threads):
            return x
    return x


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def run(P, per_thread):
    """Seconds for ``P`` threads (the caller one of them) to run ``per_thread(tid, state)``."""
    state = sync.new_barrier(P)
    start = time.perf_counter()
    sync.run_threads(lambda tid: per_thread(tid, state), P, state)
    return time.perf_counter() - start


def table_crossings():
    print(f"\n1. barrier crossings, no work between ({cores()} cores available); median of {REPEATS}")
    n_of = {2: 200000, 4: 5000, 8: 2000}
    times = {P: [] for P in n_of}
    for _ in range(REPEATS):
        for P, n in n_of.items():
            t = run(P, lambda tid, st: crossings(st, tid, P, n, sync.SLOT))
            times[P].append(t / n)
    for P in n_of:
        print(f"   P = {P}: {statistics.median(times[P]) * 1e9:9.0f} ns per crossing "
              f"(min {min(times[P]) * 1e9:.0f}, max {max(times[P]) * 1e9:.0f}; {n_of[P]} crossings a run)")


def chain_time(chain, n=2000):
    """Seconds per step of the chain alone, one thread, no barrier."""
    state = sync.new_barrier(1)
    start = time.perf_counter()
    work_steps(state, 0, 1, n, chain, 1.0)
    return (time.perf_counter() - start) / n


def table_work(Ps=(2, 4)):
    print(f"\n2. steps of work then a barrier: us per step; median of {REPEATS}")
    chains = (200, 800, 3200)  # about 0.25, 1 and 4 us (4 cycles a link)
    for chain in chains:
        work_steps(sync.new_barrier(1), 0, 1, 1, chain, 1.0)
    rows = {(P, c): [] for P in (1,) + tuple(Ps) for c in chains}
    for _ in range(REPEATS):
        for chain in chains:
            rows[1, chain].append(chain_time(chain))
            for P in Ps:
                n = 20000 if P <= cores() else 2000
                t = run(P, lambda tid, st: work_steps(st, tid, P, n, chain, 1.0))
                rows[P, chain].append(t / n)
    for chain in chains:
        alone = statistics.median(rows[1, chain])
        line = f"   chain {chain:5d}: alone {alone * 1e6:6.2f} us"
        for P in Ps:
            step = statistics.median(rows[P, chain])
            line += f" | P = {P}: {step * 1e6:6.2f} us a step, barrier adds {(step - alone) * 1e9:7.0f} ns"
        print(line)


def table_slots():
    print(f"\n3. slot size, P = 2: ns per crossing; median of {REPEATS}, alternating")
    n = 200000
    times = {8: [], 16: []}
    for _ in range(REPEATS):
        for stride in times:
            t = run(2, lambda tid, st: crossings(st, tid, 2, n, stride))
            times[stride].append(t / n)
    for stride, ts in times.items():
        print(f"   {stride * 8:4d} bytes apart: {statistics.median(ts) * 1e9:6.0f} ns")


def table_start():
    print(f"\n4. start P - 1 threads into one nogil call (a barrier with the caller) and join; "
          f"median of 201")
    base = []
    rows = {(P, w): [] for P in (2, 4) for w in (True, False)}
    state1 = sync.new_barrier(1)
    for _ in range(201):
        start = time.perf_counter()
        crossings(state1, 0, 1, 1, sync.SLOT)
        base.append(time.perf_counter() - start)
        for P, caller_works in rows:
            state = sync.new_barrier(P)
            start = time.perf_counter()
            sync.run_threads(lambda tid: crossings(state, tid, P, 1, sync.SLOT), P, state,
                             caller_works=caller_works)
            rows[P, caller_works].append(time.perf_counter() - start)
    pool = Pool(3)
    pooled = {P: [] for P in (2, 4)}
    for _ in range(201):
        for P in pooled:
            state = sync.new_barrier(P)
            start = time.perf_counter()
            pool.run(lambda tid: crossings(state, tid, P, 1, sync.SLOT), P, state)
            pooled[P].append(time.perf_counter() - start)
    pool.close()
    empty = []
    for _ in range(201):
        start = time.perf_counter()
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        empty.append(time.perf_counter() - start)
    print(f"   the call alone, in the caller: {statistics.median(base) * 1e6:7.1f} us")
    print(f"   an empty threading.Thread started and joined: {statistics.median(empty) * 1e6:7.1f} us")
    for P, ts in pooled.items():
        print(f"   P = {P}, {P - 1} parked pool threads woken (queue) and awaited: "
              f"{statistics.median(ts) * 1e6:7.1f} us")
    for (P, caller_works), ts in rows.items():
        started = P - 1 if caller_works else P
        how = "caller is thread 0" if caller_works else "caller only waits"
        print(f"   P = {P}, {started} threads started ({how}): {statistics.median(ts) * 1e6:7.1f} us")


class Pool:
    """``n`` threads parked on queues between runs: what a pool that outlives a run of
    epochs would pay per run instead of starting threads (a comparison, not the package's)."""

    def __init__(self, n):
        self.inbox = [queue.SimpleQueue() for _ in range(n)]
        self.done = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._serve, args=(q,), daemon=True)
                        for q in self.inbox]
        for t in self.threads:
            t.start()

    def _serve(self, inbox):
        while True:
            job = inbox.get()
            if job is None:
                return
            work, tid = job
            try:
                work(tid)
            finally:
                self.done.put(tid)

    def run(self, work, P, state):
        for tid in range(1, P):
            self.inbox[tid - 1].put((work, tid))
        work(0)
        for _ in range(1, P):
            self.done.get()

    def close(self):
        for q in self.inbox:
            q.put(None)
        for t in self.threads:
            t.join()


def main(argv):
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", cpu)
    print(f"CPU: {model.group(1) if model else 'unknown'}; {cores()} cores available")
    crossings(sync.new_barrier(1), 0, 1, 1, sync.SLOT)  # compile
    table_crossings()
    table_work()
    table_slots()
    table_start()
    if "--hog" in argv:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
        try:
            time.sleep(0.5)
            print(f"\n5. with {HOGS} CPU-bound process(es) running beside")
            table_crossings()
            table_work()
        finally:
            for h in hogs:
                h.kill()
                h.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
