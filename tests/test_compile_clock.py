"""The clock the command reports compile time with (fastbackprop/compile_clock.py)."""

import time

import numba

from fastbackprop.compile_clock import compile_clock


def fresh_function():
    @numba.njit
    def add_one(x):
        return x + 1

    return add_one


def test_it_counts_a_compilation_once_and_not_the_calls_after_it():
    f = fresh_function()
    edges = []
    with compile_clock(lambda: edges.append("start"), lambda: edges.append("end")) as clock:
        assert f(1.0) == 2.0
    assert clock.compiled and clock.compilations == 1 and clock.seconds > 0
    assert edges == ["start", "end"]
    with compile_clock() as again:
        started = time.perf_counter()
        for _ in range(1000):
            f(1.0)
        calls = time.perf_counter() - started
    assert not again.compiled and again.compilations == 0 and again.seconds == 0.0
    assert calls > 0


def test_nested_compilations_count_as_one():
    g = fresh_function()

    @numba.njit
    def outer(x):
        return g(x) * 2  # compiles g while outer compiles

    with compile_clock() as clock:
        assert outer(1.0) == 4.0
    assert clock.compilations == 1


def test_the_clock_stops_listening_after_the_block():
    f = fresh_function()
    with compile_clock() as clock:
        pass
    f(1.0)
    assert clock.compilations == 0 and not clock.compiled
