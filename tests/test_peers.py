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


class FakeWorker:
    """Stands in for :class:`peers.Worker`: each timing returns the next of ``answers`` (None
    ends it with a reason), and every call is logged to ``log``."""

    def __init__(self, peer, workload, answers, log):
        self.peer, self.workload, self.answers, self.log = peer, workload, list(answers), log
        self.times, self.reason = [], None

    @property
    def median(self):
        return None if self.reason is not None else float(np.median(self.times))

    def timing(self):
        if self.reason is not None:  # as a Worker does once it has failed
            return None
        self.log.append(("timing", self.peer))
        seconds = self.answers.pop(0)
        if seconds is None:
            self.reason = "worker exited with status -9: MemoryError"
        else:
            self.times.append(seconds)
        return seconds


def fake_workers(monkeypatch, answers):
    """Replace the workers: ``answers[peer]`` are the timings each peer's worker returns. The
    returned log holds ("start", peer, workload), ("timing", peer) and ("kernels",) in order."""
    import contextlib

    log = []

    @contextlib.contextmanager
    def workers(names, workload, min_time):
        for peer in names:
            log.append(("start", peer, workload.name))
        yield [FakeWorker(peer, workload, answers[peer], log) for peer in names]
        log.append(("closed",))

    real_timer = bench.kernels_step_timer

    def kernels_step_timer(problem, min_time):
        timing = real_timer(problem, min_time)

        def logged():
            log.append(("kernels",))
            return timing()

        return logged

    monkeypatch.setattr(peers, "workers", workers)
    monkeypatch.setattr(bench, "kernels_step_timer", kernels_step_timer)
    monkeypatch.setattr(bench, "SETTLE", 0.0)
    return log


def test_bench_peers_with_one_peer_missing_times_the_other(monkeypatch):
    """A peer that is there gets its column; the missing one a note. (The worker is replaced.)"""
    monkeypatch.setattr(peers, "available", lambda: ("jax",))
    log = fake_workers(monkeypatch, {"jax": [1e-3]})
    out = io.StringIO()
    assert bench.run(parse(["--workloads", "planar", "--quick", "--peers"]), out=out) == 0
    lines = out.getvalue().splitlines()
    # the kernels alone first, then the worker starts and the rounds with it
    assert log == [("kernels",), ("start", "jax", "planar"), ("kernels",), ("timing", "jax"),
                   ("closed",)]
    assert 'pytorch: not installed (pip install "fastbackprop[peers]")' in lines
    header = [line for line in lines if line.startswith("workload") and "jax/kernels" in line]
    assert header and header[0].split() == ["workload", "floor", "kernels", "jax", "jax/kernels",
                                            "faster", "than", "jax", "target", "met"]
    row = [line for line in lines if line.startswith("planar ")][-1]
    # 1 ms for JAX is far slower than the kernels: the 2x target is met.
    assert "1.00 ms (" in row and row.split()[-4:] == ["yes", ">=", "2.00x", "yes"]


def test_bench_times_the_kernels_and_the_peers_in_turn_and_takes_each_median(monkeypatch):
    """Round after round, one kernels' timing then one of each peer; each peer's median is of
    its own timings; a peer that fails mid-way is reported and not asked again."""
    monkeypatch.setattr(peers, "available", lambda: ("pytorch", "jax"))
    log = fake_workers(monkeypatch, {"pytorch": [3e-3, None], "jax": [5e-3, 1e-3, 2e-3]})
    out = io.StringIO()
    assert bench.run(parse(["--workloads", "planar", "--quick", "--repeats", "3", "--peers"]),
                     out=out) == 0
    rounds = [("kernels",), ("timing", "pytorch"), ("timing", "jax")]
    assert log == ([("kernels",)] * 3  # alone, before any peer starts
                   + [("start", "pytorch", "planar"), ("start", "jax", "planar")]
                   + rounds * 2 + [("kernels",), ("timing", "jax"), ("closed",)])
    text = out.getvalue()
    agreement = [line for line in text.splitlines() if line.startswith("kernels with the peers")]
    assert len(agreement) == 1 and "(timed before the peers started)" in agreement[0]
    row = [line for line in text.splitlines() if line.startswith("planar ")][-1]
    assert row.split()[6:9] == ["failed", "2.00", "ms"]  # JAX: the median of 5, 1 and 2 ms
    assert "pytorch on planar: worker exited with status -9: MemoryError" in text.splitlines()


def test_without_a_peer_to_time_the_kernels_are_not_timed_alone_too(monkeypatch):
    monkeypatch.setattr(peers, "available", lambda: ())
    log = fake_workers(monkeypatch, {})
    out = io.StringIO()
    assert bench.run(parse(["--workloads", "planar", "--quick", "--repeats", "2", "--peers"]),
                     out=out) == 0
    assert log == [("kernels",)] * 2
    assert "kernels with the peers" not in out.getvalue()


def test_the_agreement_of_the_kernels_with_the_peers_and_alone():
    """The kernels' time among the peers over their time before the peers started: each
    workload beyond 10% is named."""
    planar, small = bench.ALL_WORKLOADS["planar"], bench.ALL_WORKLOADS["small"]
    digits = bench.ALL_WORKLOADS["digits32"]

    def row(workload, kernels, alone):
        return peers.PeerRow(bench.Row(workload, 1.0, kernels, 10**6, 1e10, alone=alone))

    assert peers.agreement_line([row(planar, 1.0, None)]) is None  # no rivals: not timed alone
    assert bench.Row(planar, 1.0, 2.0, 1, 1.0).with_rivals_over_alone is None
    assert bench.Row(planar, 1.0, 2.0, 1, 1.0, alone=1.6).with_rivals_over_alone == 2.0 / 1.6
    assert peers.agreement_line([row(planar, 1.05, 1.0), row(small, 0.95, 1.0),
                                 row(digits, 1.0, 1.0)]) == (
        "kernels with the peers / alone (timed before the peers started): 0.95x to 1.05x "
        "(median 1.00x): within 10% on every workload.")
    line = peers.agreement_line([row(planar, 1.25, 1.0), row(small, 0.8, 1.0),
                                 row(digits, 1.0, 1.0)])
    assert line.endswith("0.80x to 1.25x (median 1.00x): NOT within 10%: planar 1.25x, "
                         "small 0.80x.")
    assert "0.91x" in peers.agreement_line([row(small, 0.91, 1.0)]).split(":")[1]
    assert "within 10% on every" in peers.agreement_line([row(small, 0.91, 1.0)])
    assert "NOT within" in peers.agreement_line([row(small, 1.11, 1.0)])


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
    """The worker in a process where torch and jax cannot be found: one JSON line, exit 1;
    a :class:`peers.Worker` reports it as the reason."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['torch'] = sys.modules['jax'] = None\n")
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path)] + sys.path)
    for peer in ("pytorch", "jax"):
        done = subprocess.run([sys.executable, "-m", "fastbackprop.peers", peer, "planar"],
                              capture_output=True, text=True, env=env, timeout=120,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert answer == {"error": 'not installed (pip install "fastbackprop[peers]")'}
    import unittest.mock

    with unittest.mock.patch.dict(os.environ, {"PYTHONPATH": env["PYTHONPATH"]}):
        assert peers.measure("jax", "planar", 2, 0.01, timeout=120) == (
            None, 'not installed (pip install "fastbackprop[peers]")')


def test_worker_in_process_for_a_missing_peer(monkeypatch, capsys):
    monkeypatch.setattr(peers, "available", lambda: ())
    assert peers.main(["jax", "planar"], requests=["time\n"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "error": 'not installed (pip install "fastbackprop[peers]")'}


class FakePeer:
    """A peer whose epoch takes no time; its cost turns to nan after ``finite`` epochs."""

    def __init__(self, finite=10**9):
        self.epochs, self.finite = 0, finite

    def run(self, k):
        self.epochs += k

    @property
    def cost(self):
        return 0.5 if self.epochs <= self.finite else float("nan")


def test_worker_answers_ready_then_one_timing_a_request(monkeypatch, capsys):
    monkeypatch.setattr(peers, "available", lambda: ("jax",))
    monkeypatch.setattr(peers, "make_peer", lambda peer, problem: FakePeer())
    assert peers.main(["jax", "planar", "--min-time", "0"], requests=["time\n"] * 3) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert answers[0] == {"ready": True} and len(answers) == 4
    assert all(set(a) == {"seconds"} and a["seconds"] >= 0 for a in answers[1:])
    # A timing whose cost is no longer finite is an error, and the worker stops.
    monkeypatch.setattr(peers, "make_peer", lambda peer, problem: FakePeer(finite=3))  # warm-up, k, one timing
    assert peers.main(["jax", "planar", "--min-time", "0"], requests=["time\n"] * 3) == 1
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert answers[0] == {"ready": True} and "seconds" in answers[1]
    assert answers[-1] == {"error": "RuntimeError: planar: the cost became nan; "
                                    "the timing is void"}
    assert peers.main(["jax", "planar"], requests=["stop\n"]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {
        "error": "unknown request 'stop'"}


def script_worker(monkeypatch, script):
    """Make every :class:`peers.Worker` run ``python -c script`` instead of the real worker."""
    monkeypatch.setattr(peers, "worker_command",
                        lambda *args, **kwargs: [sys.executable, "-c", script])


def test_worker_reads_answers_past_other_output_and_takes_the_median(monkeypatch):
    script_worker(monkeypatch, "\n".join([
        "import sys, json",
        "print('a framework says hello'); print(json.dumps({'ready': True}), flush=True)",
        "for i, line in enumerate(sys.stdin):",
        "    print(json.dumps({'seconds': [4.0, 1.0, 2.0][i]}), flush=True)",
    ]))
    with peers.Worker("jax", "planar", timeout=60) as worker:
        assert [worker.timing() for _ in range(3)] == [4.0, 1.0, 2.0]
    assert worker.median == 2.0 and worker.reason is None and worker.process is None


@pytest.mark.parametrize("script, reason", [
    ("import sys; sys.stderr.write('Traceback ...\\nMemoryError\\n'); sys.exit(3)",
     "worker exited with status 3: MemoryError"),
    ("import json; print(json.dumps({'error': 'float64 unsupported'}))", "float64 unsupported"),
    ("import json; print(json.dumps({'seconds': 1.0}))",
     "worker answered {'seconds': 1.0}, not 'ready'"),
    ("import time; time.sleep(30)", "timed out after 0.5 s"),
])
def test_a_worker_that_fails_to_start_gives_its_reason(monkeypatch, script, reason):
    script_worker(monkeypatch, script)
    with peers.Worker("jax", "planar", timeout=0.5) as worker:
        assert worker.timing() is None
    assert worker.reason == reason and worker.median is None and worker.times == []
    assert worker.process is None  # stopped, even the one that hung


def test_a_worker_that_dies_mid_way_keeps_its_reason_and_is_not_asked_again(monkeypatch):
    script_worker(monkeypatch, "\n".join([
        "import sys, json",
        "print(json.dumps({'ready': True}), flush=True)",
        "sys.stdin.readline(); print(json.dumps({'seconds': 0.25}), flush=True)",
        "sys.stdin.readline(); sys.exit(-9 % 256)",
    ]))
    with peers.Worker("jax", "planar", timeout=60) as worker:
        assert worker.timing() == 0.25
        assert worker.timing() is None
        assert worker.timing() is None
    assert worker.times == [0.25] and worker.median is None
    assert worker.reason == "worker exited with status 247: no output"


def test_worker_command_passes_the_dtype_only_when_it_is_not_the_workloads_own():
    w = bench.WORKLOADS["mlp"].with_dtype("float32")
    assert peers.Worker("jax", w, 0.05).command[1:] == [
        "-m", "fastbackprop.peers", "jax", "mlp", "--min-time", "0.05", "--dtype", "float32"]
    assert "--dtype" not in peers.Worker("jax", "mlp", 0.05).command


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
