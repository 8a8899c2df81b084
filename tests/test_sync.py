"""The spin barrier of ``kernels/sync.py``: visibility, abort, more threads than cores, repeatability.

The stress kernel is the data-parallel step's pattern: each thread writes
its own block of a shared array (and its step number), crosses the
barrier, reads every other thread's block and counts the entries that are
not what that thread wrote at this step, then crosses a second barrier
before the next write. A barrier that let a thread through early, or a
load hoisted out of a spin loop, or a store not ordered after the writes
it publishes, shows up as mismatches; ``test_stress_detects_a_missing_barrier``
checks that the count does see them when the barrier is left out.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fastbackprop._jit import jit
from fastbackprop.kernels import sync

BLOCK = 40  # float64 entries each thread writes per step (5 cache lines)


@jit(entry=True)
def stress(state, tid, n_threads, n_steps, shared, synchronise):
    """``n_steps`` steps of write, barrier, check, barrier; returns the mismatches seen
    (-1 - step when a barrier returned False). ``synchronise`` False: no barriers."""
    errors = 0
    for s in range(n_steps):
        value = float(s * n_threads + tid + 1)
        for j in range(BLOCK):
            shared[tid, j] = value + j
        if synchronise and not sync.barrier(state, tid, n_threads):
            return -1 - s
        for other in range(n_threads):
            expected = float(s * n_threads + other + 1)
            for j in range(BLOCK):
                if shared[other, j] != expected + j:
                    errors += 1
        if synchronise and not sync.barrier(state, tid, n_threads):
            return -1 - s
    return errors


@jit(entry=True)
def wait_forever(state, tid, n_threads, stop_early):
    """Barriers until aborted; thread ``n_threads - 1`` leaves at once when ``stop_early``
    (a thread that died), so the others wait in the first barrier. Returns the step."""
    s = 0
    if stop_early and tid == n_threads - 1:
        return -1
    while sync.barrier(state, tid, n_threads):
        s += 1
    return s


@jit(entry=True)
def raise_at(state, tid, n_threads, n_steps, bad_tid, bad_step):
    """Barriers; thread ``bad_tid`` raises ValueError at ``bad_step``. Returns the step."""
    for s in range(n_steps):
        if tid == bad_tid and s == bad_step:
            raise ValueError("worker failed")
        if not sync.barrier(state, tid, n_threads):
            return s
    return n_steps


@jit(entry=True)
def check_finite(state, tid, n_threads, data, n_steps):
    """Each step each thread checks its row of ``data`` at column ``step``; on a NaN it
    raises the abort flag and returns. Returns the step it left at."""
    for s in range(n_steps):
        if data[tid, s] != data[tid, s]:
            sync.abort(state)
            return s
        if not sync.barrier(state, tid, n_threads):
            return s
    return n_steps


@jit(entry=True)
def reduce_steps(state, tid, n_threads, x, theta, partial, n_steps, rate):
    """A data-parallel gradient step on ``theta`` (the loss ``sum_j (x_j . theta)^2 / 2``):
    each thread sums its columns' gradients into ``partial[tid]``, barrier, sums the
    ``P`` partials over its share of ``theta`` in thread order and updates it, barrier."""
    n, m = x.shape
    lo, hi = tid * m // n_threads, (tid + 1) * m // n_threads
    plo, phi = tid * n // n_threads, (tid + 1) * n // n_threads
    for _ in range(n_steps):
        for i in range(n):
            partial[tid, i] = 0.0
        for j in range(lo, hi):
            z = 0.0
            for i in range(n):
                z += x[i, j] * theta[i]
            for i in range(n):
                partial[tid, i] += z * x[i, j]
        if not sync.barrier(state, tid, n_threads):
            return False
        for i in range(plo, phi):
            g = 0.0
            for t in range(n_threads):
                g += partial[t, i]
            theta[i] -= rate * g / m
        if not sync.barrier(state, tid, n_threads):
            return False
    return True


@jit(entry=True)
def add_many(state, tid, n_threads, counter, rounds, n):
    """``rounds`` times: start together (a barrier), then ``n`` atomic increments of
    ``counter[0]`` (the barriers make the threads' increments overlap in time)."""
    for _ in range(rounds):
        if not sync.barrier(state, tid, n_threads):
            return 0
        for _ in range(n):
            sync.atomic_add(counter, 0, 1)
    return rounds * n


def within(seconds, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a daemon thread; fails the test if it has not returned
    after ``seconds`` (a hang, e.g. threads that never leave a barrier), else its result
    (or its exception, re-raised)."""
    outcome = {}

    def target():
        try:
            outcome["result"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: B036 - re-raised below
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"did not return within {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def run_threads(work, n_threads, state, caller_works=True, seconds=60):
    """``sync.run_threads``, failing the test after ``seconds``."""
    return within(seconds, sync.run_threads, work, n_threads, state, caller_works=caller_works)


def run(kernel, n_threads, *args, caller_works=True):
    state = sync.new_barrier(n_threads)
    results = run_threads(lambda tid: kernel(state, tid, n_threads, *args), n_threads,
                          state, caller_works=caller_works)
    return results, state


def test_new_barrier_layout():
    for P in (1, 2, 3, 8):
        state = sync.new_barrier(P)
        assert state.dtype == np.int64 and state.shape == ((P + 1) * sync.SLOT,)
        assert state.ctypes.data % 128 == 0
        assert not state.any()
    with pytest.raises(ValueError):
        sync.new_barrier(0)


@pytest.mark.parametrize("P, n_steps", [(1, 100), (2, 20000), (3, 3000)])
def test_barrier_publishes_writes(P, n_steps):
    shared = np.zeros((P, BLOCK))
    results, state = run(stress, P, n_steps, shared, True)
    assert results == [0] * P
    assert list(state[sync.SLOT::sync.SLOT]) == [2 * n_steps] * P  # every barrier crossed


def test_stress_detects_a_missing_barrier():
    """The check of ``test_barrier_publishes_writes`` sees a missing barrier."""
    shared = np.zeros((2, BLOCK))
    results, _ = run(stress, 2, 20000, shared, False)
    assert sum(results) > 0


@pytest.mark.parametrize("P", [4, 8])
def test_more_threads_than_cores(P):
    """Threads that share cores yield while they wait, so a run ends (here, 4 and 8
    threads on the cores the machine has: 7 to 15 us a barrier on 2 cores)."""
    n_steps = 300
    shared = np.zeros((P, BLOCK))
    start = time.perf_counter()
    results, _ = run(stress, P, n_steps, shared, True)
    elapsed = time.perf_counter() - start
    assert results == [0] * P
    assert elapsed < 5, elapsed  # about 0.01 s; pause-only waiting takes seconds


def test_with_a_cpu_bound_process_beside():
    """Another process busy on a core: slower, but no deadlock and no error."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        for P in (2, 4):
            shared = np.zeros((P, BLOCK))
            start = time.perf_counter()
            results, _ = run(stress, P, 200, shared, True)
            assert results == [0] * P
            assert time.perf_counter() - start < 60
    finally:
        hog.kill()
        hog.wait()


@pytest.mark.parametrize("P", [2, 4])
def test_abort_from_python_releases_waiting_threads(P):
    """One thread never arrives; the others wait until Python raises the flag, then return."""
    state = sync.new_barrier(P)
    timer = threading.Timer(0.2, sync.raise_abort, args=(state,))
    timer.start()
    start = time.perf_counter()
    results = run_threads(lambda tid: wait_forever(state, tid, P, True), P, state, seconds=10)
    elapsed = time.perf_counter() - start
    timer.join()
    assert results == [0] * (P - 1) + [-1]  # all left the first barrier
    assert sync.aborted(state)
    assert 0.15 < elapsed < 2.0, elapsed


def test_abort_stops_threads_that_all_arrive():
    """Threads crossing barriers steadily stop at the flag too."""
    state = sync.new_barrier(2)
    timer = threading.Timer(0.1, sync.raise_abort, args=(state,))
    timer.start()
    start = time.perf_counter()
    results = run_threads(lambda tid: wait_forever(state, tid, 2, False), 2, state,
                          caller_works=False, seconds=10)
    timer.join()
    assert time.perf_counter() - start < 2.0
    assert all(r > 0 for r in results)
    assert abs(results[0] - results[1]) <= 1


@pytest.mark.parametrize("caller_works", [True, False])
def test_an_exception_in_a_worker_aborts_the_others(caller_works):
    P, n_steps = 3, 10_000_000
    state = sync.new_barrier(P)
    steps = {}

    def work(tid):
        steps[tid] = raise_at(state, tid, P, n_steps, 1, 1000)
        return steps[tid]

    start = time.perf_counter()
    with pytest.raises(ValueError, match="worker failed"):
        run_threads(work, P, state, caller_works=caller_works, seconds=10)
    assert time.perf_counter() - start < 5.0
    assert sync.aborted(state)
    assert sorted(steps) == [0, 2] and all(s <= 1001 for s in steps.values())


def test_abort_from_a_kernel_on_a_non_finite_value():
    P, n_steps = 2, 1000
    data = np.ones((P, n_steps))
    data[1, 500] = np.nan
    results, state = run(check_finite, P, data, n_steps)
    assert sync.aborted(state)
    assert results[1] == 500
    # thread 0 crossed barrier 499 (thread 1 reached it before looking at step 500) and
    # stops in barrier 500, which thread 1 never reaches: not earlier, even when it sees
    # the flag before it sees thread 1 arrive at 499 (a race seen once in 3600 tests)
    assert results[0] == 500


def test_reduction_is_repeatable_and_matches_one_thread():
    """The same P gives the same bits run after run; P threads agree with one."""
    rng = np.random.default_rng(0)
    n, m = 24, 1000
    x = rng.standard_normal((n, m))
    theta0 = rng.standard_normal(n)

    def fit(P):
        theta = theta0.copy()
        partial = np.zeros((P, n))
        results, _ = run(reduce_steps, P, x, theta, partial, 50, 0.05)
        assert all(results)
        return theta

    one = fit(1)
    for P in (2, 3, 4):
        first = fit(P)
        for _ in range(4):
            np.testing.assert_array_equal(fit(P), first)
        np.testing.assert_allclose(first, one, rtol=1e-12, atol=1e-12 * np.abs(one).max())


def test_atomic_add_loses_no_update():
    counter = np.zeros(1, dtype=np.int64)
    results, _ = run(add_many, 2, counter, 2000, 500)
    assert counter[0] == 2_000_000


def test_os_calls_found():
    """On Linux, macOS and Windows both OS calls are found (else waiting degrades to pause)."""
    if sys.platform.startswith(("linux", "darwin", "win")):
        assert sync._HAVE_YIELD and sync._HAVE_SLEEP
    assert os.cpu_count() >= 1


# -- the crew: threads kept from run to run ------------------------------------------------


def team_threads():
    return [t for t in threading.enumerate() if t.name.startswith(sync.THREAD_NAME)]


@pytest.mark.parametrize("P", [1, 2, 3, 8])
def test_a_crew_runs_every_thread_on_the_same_threads_and_leaves_none(P):
    """Every run gives each ``tid`` its work on the same thread as the runs before (none
    started after the first), barriers included (8: more threads than cores); after the
    block no thread of the crew is left."""
    n_steps = 200
    shared = np.zeros((P, BLOCK))
    state = sync.new_barrier(P)
    seen = []

    def work(tid):
        seen.append((tid, threading.get_ident()))
        return stress(state, tid, P, n_steps, shared, True)

    def runs():
        with sync.Crew(P, state) as crew:
            assert len(team_threads()) == P - 1
            out = []
            for _ in range(5):
                sync.reset(state)
                out.append(crew.run(work))
            return out

    for results in within(60, runs):
        assert results == [0] * P
    assert len(set(seen)) == P  # five runs, one thread per tid
    assert {tid for tid, _ in seen} == set(range(P))
    assert not team_threads()


@pytest.mark.parametrize("bad_tid", [0, 1])
def test_an_exception_in_a_crew_aborts_the_others_and_the_next_run_works(bad_tid):
    P, n_steps = 3, 10_000_000
    state = sync.new_barrier(P)

    def runs():
        with sync.Crew(P, state) as crew:
            steps = {}

            def failing(tid):
                steps[tid] = raise_at(state, tid, P, n_steps, bad_tid, 1000)
                return steps[tid]

            with pytest.raises(ValueError, match="worker failed"):
                crew.run(failing)
            assert sync.aborted(state)
            assert sorted(steps) == sorted(set(range(P)) - {bad_tid})
            assert all(s <= 1001 for s in steps.values())
            sync.reset(state)
            return crew.run(lambda tid: raise_at(state, tid, P, 50, -1, 0))

    assert within(10, runs) == [50] * P
    assert not team_threads()


def test_a_ctrl_c_in_the_caller_stops_the_crew_and_is_raised_after_it():
    """A KeyboardInterrupt in thread 0's work (a Ctrl-C) raises the abort flag: the workers
    leave their barriers, the run raises it once they have, and the block joins them."""
    P = 2
    state = sync.new_barrier(P)

    def work(tid):
        if tid == 0:
            time.sleep(0.05)
            raise KeyboardInterrupt
        return wait_forever(state, tid, P, False)

    def runs():
        with sync.Crew(P, state) as crew:
            crew.run(work)

    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        within(10, runs)
    assert time.perf_counter() - start < 5
    assert sync.aborted(state)
    assert not team_threads()


def test_a_closed_crew_refuses_to_run():
    state = sync.new_barrier(2)
    with sync.Crew(2, state) as crew:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        crew.run(lambda tid: tid)
