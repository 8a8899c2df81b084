"""fastbackprop.bench: the workload registry, the FLOP count, the table and the subcommand."""

import argparse
import io
import re
import subprocess
import sys

import numpy as np
import pytest

from fastbackprop import bench


def parse(argv):
    parser = argparse.ArgumentParser(prog="fastbackprop bench")
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_registry_is_the_designed_workloads():
    expected = {
        "planar": ((2, 4, 1), "tanh", 400, "float64", "sigmoid"),
        "small": ((20, 64, 64, 1), "relu", 256, "float64", "sigmoid"),
        "deep": ((12288, 20, 7, 5, 1), "relu", 209, "float64", "sigmoid"),
        "mlp": ((784, 256, 128, 10), "relu", 512, "float64", "sigmoid"),
        "mlp32": ((784, 256, 128, 10), "relu", 512, "float32", "sigmoid"),
        "softmax": ((784, 256, 128, 10), "relu", 512, "float64", "softmax"),
        "softmax32": ((784, 256, 128, 10), "relu", 512, "float32", "softmax"),
    }
    assert list(bench.WORKLOADS) == list(expected)
    for name, (dims, hidden, m, dtype, output) in expected.items():
        w = bench.WORKLOADS[name]
        assert (w.name, tuple(w.layer_dims), w.hidden, w.m, w.dtype, w.output) == \
            (name, dims, hidden, m, dtype, output)
    targets = {name: (w.target_seconds, w.target_floor_ratio) for name, w in bench.WORKLOADS.items()}
    assert targets == {"planar": (5e-6, None), "small": (None, 1.5), "deep": (None, 1.4),
                       "mlp": (None, 1.15), "mlp32": (None, 1.15), "softmax": (None, 1.15),
                       "softmax32": (None, 1.15)}


def test_softmax_workloads_have_one_class_per_column():
    p = bench.make_problem("softmax32")
    np.testing.assert_array_equal(p.Y.sum(axis=0), 1)
    assert p.Y.dtype == np.float32


@pytest.mark.parametrize("name", ["planar", "small", "mlp32"])
def test_make_problem_shapes_and_dtype(name):
    w = bench.WORKLOADS[name]
    p = bench.make_problem(name)
    dims = w.layer_dims
    assert p.X.shape == (dims[0], w.m) and p.Y.shape == (dims[-1], w.m)
    assert p.X.dtype == p.Y.dtype == np.dtype(w.dtype)
    assert set(np.unique(p.Y)) <= {0.0, 1.0}
    for l in range(1, len(dims)):
        assert p.parameters[f"W{l}"].shape == (dims[l], dims[l - 1])
        assert p.parameters[f"W{l}"].dtype == np.dtype(w.dtype)


def test_step_flops_hand_computed():
    # [2, 4, 1], m = 400. Layer 1: W1 X and dW1, 2*4*2*400 = 6400 each (no dA0).
    # Layer 2: W2 A1, dW2 and dA1, 2*1*4*400 = 3200 each.
    assert bench.step_flops([2, 4, 1], 400) == 2 * 6400 + 3 * 3200 == 22400
    # One layer: forward and dW only.
    assert bench.step_flops([3, 5], 7) == 2 * (2 * 5 * 3 * 7)
    # deep: dominated by layer 1, 2 * (2 * 20 * 12288 * 209).
    deep = bench.WORKLOADS["deep"]
    rest = 3 * 2 * 209 * (7 * 20 + 5 * 7 + 1 * 5)
    assert bench.step_flops(deep.layer_dims, deep.m) == 2 * 2 * 20 * 12288 * 209 + rest


def test_step_reference_matches_L_layer_model():
    from fastbackprop import reference as R

    p = bench.make_problem("small")
    params, cost0 = bench.step(R, p.X, p.Y, p.parameters, "relu")
    params, _ = bench.step(R, p.X, p.Y, params, "relu")
    expected, costs = R.L_layer_model(p.X, p.Y, [20, 64, 64, 1], "relu", bench.LEARNING_RATE,
                                      num_iterations=2, parameters=p.parameters, cost_every=1)
    assert cost0 == pytest.approx(costs[0])
    for key in expected:
        np.testing.assert_allclose(params[key], expected[key], rtol=1e-12)


@pytest.mark.parametrize("seconds,text", [
    (3.14e-6, "3.14 us"), (41.2e-6, "41.2 us"), (412e-6, "412 us"), (4.82e-3, "4.82 ms"),
    (0.0213, "21.3 ms"), (1.3, "1.30 s"), (496e-9, "496 ns"), (5e-6, "5.00 us"),
])
def test_format_seconds(seconds, text):
    assert bench.format_seconds(seconds) == text


def test_format_ratio():
    assert [bench.format_ratio(r) for r in (1.071, 12.43, 215.2)] == ["1.07x", "12.4x", "215x"]


def test_table_columns_ratios_and_targets():
    planar, mlp = bench.WORKLOADS["planar"], bench.WORKLOADS["mlp"]
    rows = [
        # planar: 4 us per step meets "<= 5 us"; floor = 22400 / 1e10 = 2.24 us.
        bench.Row(planar, reference=40e-6, kernels=4e-6, flops=22400, gemm_rate=1e10),
        # mlp: floor 1e8 / 1e10 = 10 ms; kernels 12 ms is 1.2x: misses "<= 1.15x floor".
        bench.Row(mlp, reference=24e-3, kernels=12e-3, flops=10**8, gemm_rate=1e10),
    ]
    assert rows[0].met and not rows[1].met
    assert rows[1].kernels_over_floor == pytest.approx(1.2)
    assert rows[0].speedup == pytest.approx(10.0)
    lines = bench.format_table(rows).splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["workload", "dtype", "reference", "kernels", "floor",
                                "kernels/floor", "ref/kernels", "target", "met"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["planar", "float64", "40.0", "us", "4.00", "us", "2.24", "us",
                                "1.79x", "10.0x", "<=", "5.00", "us", "yes"]
    assert lines[3].split() == ["mlp", "float64", "24.0", "ms", "12.0", "ms", "10.0", "ms",
                                "1.20x", "2.00x", "<=", "1.15x", "floor", "NO"]
    # Columns line up: every row is as wide as the rule, up to trailing blanks.
    assert {len(line) for line in lines} <= {len(lines[1])} | {len(lines[1]) - k for k in range(1, 4)}


def test_the_threads_table_says_how_each_step_is_split():
    digits32, small = bench.ALL_WORKLOADS["digits32"], bench.ALL_WORKLOADS["small"]
    rows = [bench.Row(digits32, reference=1e-2, kernels=1e-3, flops=10**7, gemm_rate=1e10,
                      one_thread=1.5e-3, threads=2, by_units=True),
            bench.Row(small, reference=1e-3, kernels=2e-4, flops=10**6, gemm_rate=1e10,
                      one_thread=3e-4, threads=2)]
    lines = bench.format_threads(rows).splitlines()
    assert lines[2].split() == ["digits32", "2", "by", "units", "1.50", "ms", "1.00", "ms",
                                "1.50x", "1.00x"]
    assert lines[3].split() == ["small", "2", "300", "us", "200", "us", "1.50x", "2.00x"]


def test_arguments_and_workload_selection():
    args = parse([])
    assert [w.name for w in bench.selected_workloads(args.workloads)] == list(bench.WORKLOADS)
    args = parse(["--workloads", "mlp,planar", "--dtype", "float32", "--repeats", "2"])
    chosen = bench.selected_workloads(args.workloads, args.dtype)
    assert [(w.name, w.dtype) for w in chosen] == [("mlp", "float32"), ("planar", "float32")]
    assert args.repeats == 2
    with pytest.raises(ValueError, match="--workloads"):
        bench.selected_workloads("planar,nope")


def test_run_rejects_unknown_workload(capsys):
    assert bench.run(parse(["--workloads", "huge"])) == 2
    assert "--workloads" in capsys.readouterr().err


def test_gemm_rate_is_positive():
    assert bench.gemm_rate("float32", n=64, repeats=1) > 0


def test_run_planar_prints_a_row():
    out = io.StringIO()
    assert bench.run(parse(["--workloads", "planar", "--repeats", "1"]), out=out) == 0
    text = out.getvalue()
    assert "GFLOP/s" in text and "median of 1 timing" in text
    assert f"({bench.cpu_model()})" in text  # which CPU measured it
    assert re.search(r"^machine: a 1024x1024 float64 GEMM after each workload ran at \d+ to "
                     r"\d+ GFLOP/s \(median \d+\): (steady|NOT steady)", text, re.M), text
    assert re.search(r"^cores: \d+ threads of independent work after each workload took "
                     r"[\d.]+x to [\d.]+x one thread's time \(median [\d.]+x\): "
                     r"(every core free|NOT free)", text, re.M), text
    rows = [line for line in text.splitlines() if line.startswith("planar ")]
    assert len(rows) == 1
    assert re.match(r"planar\s+float64\s+[\d.]+ [num]?s\s+[\d.]+ [num]?s\s+[\d.]+ [num]?s"
                    r"\s+[\d.]+x\s+[\d.]+x\s+<= 5.00 us\s+(yes|NO)$", rows[0]), rows[0]


def test_steadiness_flags_a_run_whose_machine_slowed_down():
    steady = bench.steadiness([100e9, 95e9, 90e9], "float32")
    assert steady.endswith(": steady.") and "90 to 100 GFLOP/s (median 95)" in steady
    slow = bench.steadiness([100e9, 60e9, 98e9], "float64")
    assert "NOT steady" in slow and "60 to 100" in slow and "float64" in slow


def test_cores_line_flags_a_run_where_a_core_was_held():
    free = bench.cores_line([1.02, 1.1, 1.2])
    assert free.endswith(": every core free.") and "1.02x to 1.20x" in free
    assert "(median 1.10x)" in free
    held = bench.cores_line([1.05, 1.9, 1.1])
    assert "NOT free" in held and "1.05x to 1.90x" in held


def test_core_slowdown_times_the_threads_against_one():
    assert bench.core_slowdown(threads=1) == 1.0  # nothing beside the one thread
    slowdown = bench.core_slowdown(threads=2, size=4096, calls=4)
    assert np.isfinite(slowdown) and slowdown > 0.2
    # more threads than the CPUs can run at once: each waits for a core, so it takes longer
    crowded = bench.core_slowdown(threads=4 * bench.usable_cpus(), size=32768, calls=20)
    assert crowded > 1.5, crowded


def test_cpu_model_names_a_cpu():
    assert isinstance(bench.cpu_model(), str) and bench.cpu_model()


def test_bench_does_not_import_numba():
    code = "import sys, fastbackprop.bench; print('numba' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_epoch_workloads_are_the_mini_batch_targets():
    expected = {
        "mnist128": ((784, 256, 128, 10), 128, "float32", 60000, 1.3),
        "mnist64d": ((784, 256, 128, 10), 64, "float64", 60000, 1.3),
        "wide1024": ((784, 1024, 1024, 10), 256, "float32", 20000, 1.15),
        "digits32": ((64, 64, 10), 32, "float64", 1797, 2.0),
    }  # issue 25's targets
    assert list(bench.EPOCH_WORKLOADS) == list(expected) + ["chains"]
    chains = bench.EPOCH_WORKLOADS["chains"]  # SimpleChains.jl's: full-batch Adam, in order
    assert (tuple(chains.layer_dims), chains.batch_size, chains.m, chains.dtype, chains.hidden,
            chains.output, chains.optimizer, chains.shuffle, chains.target_floor_ratio) == (
        (4, 32, 16, 4), 10000, 10000, "float32", "tanh", "linear", "adam", False, 3.0)
    for name, (dims, batch, dtype, m, ratio) in expected.items():
        w = bench.EPOCH_WORKLOADS[name]
        assert (tuple(w.layer_dims), w.batch_size, w.dtype, w.m, w.target_floor_ratio,
                w.output, w.optimizer, w.hidden) == (dims, batch, dtype, m, ratio, "softmax",
                                                     "adam", "relu")
    p = bench.make_problem("digits32")
    assert p.X.shape == (64, 1797) and p.Y.shape == (10, 1797)
    np.testing.assert_array_equal(p.Y.sum(axis=0), 1)


def test_bench_times_an_epoch_workload(capsys):
    assert bench.run(parse(["--workloads", "digits32", "--quick"])) == 0
    out = capsys.readouterr().out
    # the main table's row (a second table has a row per workload the rule splits)
    row = [line for line in out.splitlines() if line.split()[:2] == ["digits32", "float64"]]
    assert len(row) == 1 and "<= 2.00x floor" in row[0]
    assert "per epoch for the mini-batch workloads" in out
