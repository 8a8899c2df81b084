"""fastbackprop.peers: ``bench --peers``, the worker protocol, and each peer against the reference.

The tests that run PyTorch or JAX skip where they are not installed (CI has
neither); the rest run everywhere.
"""

import argparse
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from fastbackprop import bench, peers
from fastbackprop import reference as R


def parse(argv):
    parser = argparse.ArgumentParser(prog="fastbackprop bench")
    bench.add_arguments(parser)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# Without the peers
# ---------------------------------------------------------------------------


def test_available_finds_modules_without_importing_them(monkeypatch):
    found = {"torch": object(), "jax": object(), "jaxlib": None}
    monkeypatch.setattr(peers, "_find_spec", lambda name: found[name])
    assert peers.available() == ("pytorch",)  # jax needs jaxlib as well
    found["jaxlib"] = object()
    assert peers.available() == ("pytorch", "jax")


def test_bench_peers_without_any_peer_says_so_and_prints_the_table(monkeypatch):
    monkeypatch.setattr(peers, "available", lambda: ())
    out = io.StringIO()
    assert bench.run(parse(["--workloads", "planar", "--quick", "--peers"]), out=out) == 0
    text = out.getvalue()
    assert [line for line in text.splitlines() if line.startswith("planar ")]  # the kernels' row
    assert 'pytorch: not installed (pip install "fastbackprop[peers]")' in text.splitlines()
    assert 'jax: not installed (pip install "fastbackprop[peers]")' in text.splitlines()
    assert "Peers: none timed." in text


def test_bench_peers_with_one_peer_missing_times_the_other(monkeypatch):
    """A peer that is there gets its column; the missing one a note. (The worker is replaced.)"""
    monkeypatch.setattr(peers, "available", lambda: ("jax",))
    calls = []

    def fake_measure(peer, workload, repeats, min_time, timeout):
        calls.append((peer, workload.name, repeats))
        return 1e-3, None

    monkeypatch.setattr(peers, "measure", fake_measure)
    out = io.StringIO()
    assert bench.run(parse(["--workloads", "planar", "--quick", "--peers"]), out=out) == 0
    lines = out.getvalue().splitlines()
    assert calls == [("jax", "planar", 1)]
    assert 'pytorch: not installed (pip install "fastbackprop[peers]")' in lines
    header = [line for line in lines if line.startswith("workload") and "jax/kernels" in line]
    assert header and header[0].split() == ["workload", "floor", "kernels", "jax", "jax/kernels",
                                            "faster", "than", "jax", "target", "met"]
    row = [line for line in lines if line.startswith("planar ")][-1]
    # 1 ms for JAX is far slower than the kernels: the 2x target is met.
    assert "1.00 ms (" in row and row.split()[-4:] == ["yes", ">=", "2.00x", "yes"]


def test_bench_rejects_an_unknown_peer(capsys):
    assert bench.run(parse(["--workloads", "planar", "--peers", "tensorflow"])) == 2
    assert "--peers" in capsys.readouterr().err


def test_selected_peers():
    assert peers.selected("all") == ["pytorch", "jax"]
    assert peers.selected("jax, pytorch") == ["pytorch", "jax"]
    assert peers.selected("JAX") == ["jax"]
    with pytest.raises(ValueError, match="--peers"):
        peers.selected("jax,numpy")


def test_peers_table_ratios_targets_and_failures():
    planar, digits = bench.WORKLOADS["planar"], bench.EPOCH_WORKLOADS["digits32"]
    small = bench.WORKLOADS["small"]
    rows = [
        # planar: floor 1 us, kernels 5 us; JAX 12 us is 2.4x the kernels: the 2x target met.
        peers.PeerRow(bench.Row(planar, 50e-6, 5e-6, 10**4, 1e10),
                      {"pytorch": 100e-6, "jax": 12e-6}),
        # digits32: kernels 3 ms, JAX 2 ms: the kernels are slower, "faster than JAX" missed.
        peers.PeerRow(bench.Row(digits, 30e-3, 3e-3, 10**7, 1e10),
                      {"pytorch": None, "jax": 2e-3}, {"pytorch": "timed out after 900 s"}),
        # small: no target against JAX; JAX not timed.
        peers.PeerRow(bench.Row(small, 1e-3, 2e-4, 10**6, 1e10), {"pytorch": 4e-4}),
    ]
    assert [pr.met for pr in rows] == [True, False, None]
    assert rows[0].jax_over_kernels == pytest.approx(2.4)
    lines = peers.format_table(rows).splitlines()
    assert lines[0].split() == ["workload", "floor", "kernels", "pytorch", "jax", "jax/kernels",
                                "faster", "than", "jax", "target", "met"]
    assert lines[2].split() == ["planar", "1.00", "us", "5.00", "us", "(5.00x)", "100", "us",
                                "(100x)", "12.0", "us", "(12.0x)", "2.40x", "yes", ">=", "2.00x",
                                "yes"]
    assert lines[3].split() == ["digits32", "1.00", "ms", "3.00", "ms", "(3.00x)", "failed",
                                "2.00", "ms", "(2.00x)", "0.67x", "NO", ">", "1.00x", "NO"]
    assert lines[4].split() == ["small", "100", "us", "200", "us", "(2.00x)", "400", "us",
                                "(4.00x)", "-", "-", "-", "-", "-"]
    text = peers.report(rows, ["pytorch", "jax"], ("pytorch", "jax"), repeats=3)
    assert "pytorch on digits32: timed out after 900 s" in text.splitlines()
    assert "median of 3 timings" in text
    # Without JAX, no JAX columns.
    assert peers.format_table(rows[2:], ["pytorch"]).splitlines()[0].split() == [
        "workload", "floor", "kernels", "pytorch"]


def test_the_targets_against_jax():
    assert peers.jax_target(bench.WORKLOADS["planar"]) == (2.0, False)
    assert all(peers.jax_target(w) == (1.0, True) for w in bench.EPOCH_WORKLOADS.values())
    assert all(peers.jax_target(w) is None for n, w in bench.WORKLOADS.items() if n != "planar")


def test_worker_for_a_missing_peer_answers_with_a_reason(tmp_path):
    """The worker in a process where torch and jax cannot be found: one JSON line, exit 1."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['torch'] = sys.modules['jax'] = None\n")
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path)] + sys.path)
    for peer in ("pytorch", "jax"):
        done = subprocess.run([sys.executable, "-m", "fastbackprop.peers", peer, "planar",
                               "--repeats", "1"], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert answer == {"error": 'not installed (pip install "fastbackprop[peers]")'}
        assert peers.parse_result(done.returncode, done.stdout, done.stderr) == (
            None, 'not installed (pip install "fastbackprop[peers]")')


def test_worker_in_process_for_a_missing_peer(monkeypatch, capsys):
    monkeypatch.setattr(peers, "available", lambda: ())
    assert peers.main(["jax", "planar"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "error": 'not installed (pip install "fastbackprop[peers]")'}


def test_parse_result():
    assert peers.parse_result(0, 'a warning\n{"seconds": 0.5}\n', "") == (0.5, None)
    assert peers.parse_result(1, '{"error": "float64 unsupported"}\n', "") == (
        None, "float64 unsupported")
    seconds, reason = peers.parse_result(-9, "", "Traceback ...\nMemoryError\n")
    assert seconds is None and reason == "worker exited with status -9: MemoryError"


def test_measure_passes_the_dtype_and_reports_a_timeout(monkeypatch):
    seen = []

    def fake_run(command, **kwargs):
        seen.append(command)
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", fake_run)
    w = bench.WORKLOADS["mlp"].with_dtype("float32")
    assert peers.measure("jax", w, 3, 0.05, timeout=7) == (None, "timed out after 7 s")
    assert seen[0][1:] == ["-m", "fastbackprop.peers", "jax", "mlp", "--repeats", "3",
                           "--min-time", "0.05", "--dtype", "float32"]
    peers.measure("jax", "mlp", 3, 0.05, timeout=7)
    assert "--dtype" not in seen[1]


# ---------------------------------------------------------------------------
# With the peers: the same computation as the reference
# ---------------------------------------------------------------------------

MODULES = {"pytorch": "torch", "jax": "jax"}


def _need(peer):
    pytest.importorskip(MODULES[peer])


def tiny(output, hidden="relu", m=13, dims=(6, 5, 4, 3), **kwargs):
    return bench.Workload(f"tiny-{output}", dims, hidden, m, "float64", target_seconds=1.0,
                          output=output, **kwargs)


STEP_CASES = [
    pytest.param(bench.WORKLOADS["planar"], id="planar"),
    pytest.param(tiny("sigmoid", dims=(6, 5, 4, 3)), id="sigmoid-3-units"),
    pytest.param(tiny("softmax", hidden="tanh"), id="softmax-tanh"),
]


@pytest.mark.parametrize("workload", STEP_CASES)
@pytest.mark.parametrize("peer", ["pytorch", "jax"])
def test_one_step_is_the_reference_step(peer, workload):
    """One peer step: the cost before it, and the gradients (from W - alpha dW), as the reference's."""
    _need(peer)
    problem = bench.make_problem(workload)
    expected, cost = bench.step(R, problem.X, problem.Y, problem.parameters, workload.hidden,
                                output=workload.output)
    runner = peers.make_peer(peer, problem)
    runner.run(1)
    got = runner.parameters()
    assert runner.cost == pytest.approx(cost, rel=1e-12, abs=1e-12)
    for key, value in expected.items():
        assert got[key].shape == value.shape and got[key].dtype == np.float64
        gradient = (problem.parameters[key] - got[key]) / bench.LEARNING_RATE
        expected_gradient = (problem.parameters[key] - value) / bench.LEARNING_RATE
        np.testing.assert_allclose(gradient, expected_gradient, rtol=0, atol=1e-10)


def _permutation(peer, m, seed=bench.SEED):
    """The order of the rows in the peer's first epoch, drawn as the peer draws it."""
    if peer == "pytorch":
        import torch

        return torch.randperm(m, generator=torch.Generator().manual_seed(seed)).numpy()
    import jax

    _key, draw = jax.random.split(jax.random.PRNGKey(seed))
    return np.asarray(jax.random.permutation(draw, m))


@pytest.mark.parametrize("peer", ["pytorch", "jax"])
def test_one_adam_epoch_is_the_reference_adam_on_the_peers_batches(peer):
    """m = 10, batches of 4: two full batches and the remainder of 2, in the peer's order."""
    _need(peer)
    w = tiny("softmax", m=10, dims=(6, 5, 3), batch_size=4, optimizer="adam")
    problem = bench.make_problem(w)
    order = _permutation(peer, w.m)
    parameters = problem.parameters
    state = R.initialize_optimizer(parameters, "adam")
    total = 0.0
    for t, start in enumerate(range(0, w.m, 4), start=1):
        columns = order[start:start + 4]
        X, Y = problem.X[:, columns], problem.Y[:, columns]
        AL, caches = R.L_model_forward(X, parameters, "relu", "softmax")
        total += R.compute_cost_from_logits(caches[-1][1], Y, "softmax") * len(columns)
        grads = R.L_model_backward(AL, Y, caches, "relu", "dZ", "softmax")
        parameters, state = R.update_parameters_with_optimizer(
            parameters, grads, state, t, bench.ADAM_LEARNING_RATE, "adam")
    assert t == 3
    runner = peers.make_peer(peer, problem)
    runner.run(1)
    assert runner.cost == pytest.approx(total / w.m, rel=1e-12)
    got = runner.parameters()
    for key, value in parameters.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["pytorch", "jax"])
def test_an_adam_epoch_on_digits32_shaped_data_has_a_positive_time(peer):
    _need(peer)
    w = bench.EPOCH_WORKLOADS["digits32"]
    small = bench.Workload("digits32-small", w.layer_dims, w.hidden, 200, w.dtype,
                           target_floor_ratio=1.0, output="softmax", batch_size=w.batch_size,
                           optimizer="adam")
    seconds = peers.time_peer(peer, bench.make_problem(small), repeats=1, min_time=0.01)
    assert 0 < seconds < 10


@pytest.mark.parametrize("peer", ["pytorch", "jax"])
def test_float32_stays_float32(peer):
    _need(peer)
    problem = bench.make_problem(tiny("softmax").with_dtype("float32"))
    runner = peers.make_peer(peer, problem)
    runner.run(2)
    assert all(v.dtype == np.float32 for v in runner.parameters().values())
    assert np.isfinite(runner.cost)


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["pytorch", "jax"])
def test_the_worker_times_planar_and_digits32(peer):
    """The worker end to end, in its own process, as bench runs it."""
    _need(peer)
    for name in ("planar", "digits32"):
        seconds, reason = peers.measure(peer, name, repeats=1, min_time=0.01, timeout=300)
        assert reason is None and 0 < seconds < 10


@pytest.mark.slow
def test_bench_peers_prints_both_peers():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    out = io.StringIO()
    assert bench.run(parse(["--workloads", "planar", "--quick", "--peers"]), out=out) == 0
    row = [line for line in out.getvalue().splitlines() if line.startswith("planar ")][-1]
    assert row.count(" us (") + row.count(" ms (") + row.count(" ns (") == 3  # kernels, peers
    assert row.endswith(("yes", "NO"))
