"""``fastbackprop train --backend auto``: NumPy for a short cold first run, the kernels
compiled meanwhile in a background process (fastbackprop.first_run).

conftest.py switches the background compile off for the session; these tests switch it
back on (monkeypatch) and give each test a kernel cache of its own (NUMBA_CACHE_DIR).
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from fastbackprop import _background_compile, cli, first_run
from fastbackprop.model import Model

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh kernel cache (NUMBA_CACHE_DIR), with the background compile switched on."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(directory))
    monkeypatch.delenv(first_run.ENVIRONMENT, raising=False)
    monkeypatch.delenv("FASTBACKPROP_CACHE", raising=False)
    return directory


def planar_hp(**changes):
    """The hyperparameters of the command's default planar run (``--seed 0``)."""
    params = dict(hidden_activation="tanh", learning_rate=1.2, n_epochs=10000, init="scaled",
                  seed=0)
    params.update(changes)
    return Model([2, 4, 1], **params)._hyperparameters()


def fastbackprop(*args, cwd, **env):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "fastbackprop", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": path, **env}, capture_output=True,
                          text=True, timeout=300)


def test_a_cold_run_trains_on_numpy_and_the_next_loads_the_kernels_compiled_meanwhile(
        cache, tmp_path, capsys):
    spawned = len(first_run.spawned)
    args = ["train", "--epochs", "300", "--seed", "0"]
    assert cli.main([*args, "--save", str(tmp_path / "cold.npz")]) == 0
    out, err = capsys.readouterr()
    assert "numpy backend" in out
    assert ("note: this run used the NumPy backend while the numba kernels compile in the "
            "background for the next run of this configuration") in err
    assert len(first_run.spawned) == spawned + 1
    process = first_run.spawned[-1]
    assert process.wait(timeout=300) == 0
    data, marker, lock = (pathlib.Path(process.args[i]) for i in (3, 5, 6))
    assert marker.parent == cache / first_run.WARM_DIRECTORY and marker.exists()
    assert not data.exists() and not lock.exists()  # nothing else left behind
    assert json.loads(marker.read_text())["variant"]["hidden"] == "tanh"

    warm = fastbackprop(*args, "--save", "warm.npz", cwd=tmp_path)
    assert warm.returncode == 0, warm.stderr
    assert "numba backend" in warm.stdout and "note:" not in warm.stderr
    # what the background process compiled is exactly what this run loads
    assert "loading the kernels from the cache" in warm.stdout
    cold = Model.load(tmp_path / "cold.npz")
    assert cold.backend == "numba"  # the file is the same whichever backend auto ran
    cold_costs = cold.costs_
    np.testing.assert_allclose(Model.load(tmp_path / "warm.npz").costs_, cold_costs, rtol=1e-9)

    marker.unlink()  # a numba run that finishes writes the marker too
    again = fastbackprop(*args, "--backend", "numba", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert marker.exists()


def test_the_planar_default_is_projected_short_and_a_large_run_long():
    planar = first_run.projected_numpy_seconds(planar_hp(), 400)
    assert 0.5 < planar < first_run.COMPILE_SECONDS  # measured: 1.2 to 1.6 s
    mnist = Model([784, 128, 10], output_activation="softmax", n_epochs=10)._hyperparameters()
    assert first_run.projected_numpy_seconds(mnist, 60000) > 10 * first_run.COMPILE_SECONDS
    mini = dict(mnist, batch_size=64)
    assert first_run.projected_numpy_seconds(mini, 60000) > 10 * first_run.COMPILE_SECONDS


def test_a_long_projected_run_picks_numba(cache):
    hp = Model([784, 128, 10], output_activation="softmax", n_epochs=10)._hyperparameters()
    plan = first_run.decide("auto", hp, 60000, None)
    assert plan.backend == "numba" and plan.reason.startswith("compiling costs less")
    assert plan.marker is not None  # its run writes the marker when it finishes
    assert first_run.decide("auto", planar_hp(), 400, None).backend == "numpy"


@pytest.fixture
def fixed_key(monkeypatch):
    """The marker's parts outside the variant, fixed (each test changes one)."""
    parts = {"cpu": ("skylake-avx512", "+avx512f,+fma"), "numba": "0.60.0",
             "source": "abc", "python": "3.11.7"}
    monkeypatch.setattr(first_run, "host_cpu", lambda: parts["cpu"])
    monkeypatch.setattr(first_run, "numba_version", lambda: parts["numba"])
    monkeypatch.setattr("fastbackprop._jit.source_fingerprint", lambda: parts["source"])
    monkeypatch.setattr(first_run.platform, "python_version", lambda: parts["python"])
    return parts


@pytest.mark.parametrize("part, value", [
    ("cpu", ("icelake-server", "+avx512f,+fma")),  # another CPU
    ("cpu", ("skylake-avx512", "+avx512f,-fma")),  # its features
    ("numba", "0.61.0"),                           # another Numba
    ("source", "abd"),                             # another package version or kernel source
    ("python", "3.12.1"),
])
def test_a_cache_written_for_anything_else_is_not_warm(cache, fixed_key, part, value):
    hp = planar_hp()
    plan = first_run.decide("auto", hp, 400, None)
    assert plan.backend == "numpy"
    assert first_run.write_marker(plan.marker, plan.parts)
    assert first_run.decide("auto", hp, 400, None).reason == "the kernels are in the cache"
    fixed_key[part] = value
    other = first_run.decide("auto", hp, 400, None)
    assert other.marker != plan.marker and other.backend == "numpy"


@pytest.mark.parametrize("change, m", [
    ({"dtype": "float32"}, 400), ({"hidden_activation": "relu"}, 400),
    ({"output_activation": "linear"}, 400), ({"optimizer": "adam"}, 400),
    ({"batch_size": 64}, 400), ({"l2": 0.1}, 400), ({"keep_prob": 0.8}, 400),
    ({"batch_norm": True}, 400), ({"n_threads": 2}, 400),
    ({"layer_dims": [3, 4, 1]}, 2),  # Gram mode: n_x >= m
])
def test_the_marker_key_changes_with_the_compiled_variant(fixed_key, change, m):
    base = first_run.key_parts(first_run.variant(planar_hp(), 400, None))
    hp = {**planar_hp(), **change}
    other = first_run.key_parts(first_run.variant(hp, m, None))
    assert first_run.marker_key(other) != first_run.marker_key(base)
    with_validation = first_run.key_parts(first_run.variant(planar_hp(), 400, (1, 1)))
    assert first_run.marker_key(with_validation) != first_run.marker_key(base)
    # values, not types: the same kernels
    same = first_run.key_parts(first_run.variant({**planar_hp(), "learning_rate": 0.1,
                                                  "layer_dims": [5, 7, 1]}, 300, None))
    assert first_run.marker_key(same) == first_run.marker_key(base)


@pytest.mark.parametrize("dims, m, changes", [
    ([2, 4, 1], 400, {}),                                       # planar: one thread
    ([784, 64, 10], 300, {"n_epochs": 100}),                    # n_x >= m: Gram mode
    ([784, 64, 10], 300, {"n_epochs": 1}),                      # too short to repay G
    ([784, 64, 10], 300, {"optimizer": "momentum"}),           # not a linear update
    ([64, 64, 10], 1797, {"batch_size": 32, "optimizer": "adam"}),
    ([64, 100, 10], 1797, {"batch_size": 200, "optimizer": "adam"}),  # threads
    ([64, 100, 10], 1797, {"batch_size": 4000, "shuffle": False}),    # one batch: full
    ([20, 64, 64, 1], 256, {"n_threads": 3}),
    ([20, 64, 64, 1], 256, {"batch_norm": True}),
    ([20, 64, 64, 1], 256, {"l2": 0.1}),
    ([784, 64, 10], 300, {"n_epochs": 100, "l2": 0.1}),        # L2: not a linear update
    ([784, 64, 10], 300, {"n_epochs": 100, "batch_norm": True}),  # no Gram mode with it
])
def test_the_variant_names_the_threads_and_gram_mode_the_trainer_chooses(dims, m, changes):
    """first_run decides without Numba, from the hyperparameters: as the trainer does."""
    from fastbackprop import reference
    from fastbackprop.kernels import Trainer

    hp = Model(dims, seed=0, **changes)._hyperparameters()
    X = np.random.default_rng(0).random((dims[0], m))
    Y = np.random.default_rng(1).integers(0, 2, (dims[-1], m)).astype(float)
    parameters = reference.initialize_parameters(dims, seed=0)
    if hp["batch_norm"]:
        parameters = reference.initialize_batch_norm(parameters, [True] * (len(dims) - 2))
    trainer = Trainer(parameters, X, Y, hp["hidden_activation"], 0.1, max_epochs=hp["n_epochs"],
                      optimizer=hp["optimizer"], batch_size=hp["batch_size"],
                      shuffle=hp["shuffle"], l2=hp["l2"], n_threads=hp["n_threads"])
    variant = first_run.variant(hp, m, None)
    assert (variant["threads"], variant["gram"]) == (trainer.n_threads, trainer.gram)


def test_the_lock_stops_a_second_spawn(cache):
    plan = first_run.decide("auto", planar_hp(), 400, None)
    lock = first_run.lock_path(plan.marker)
    assert first_run.acquire_lock(lock)
    assert not first_run.acquire_lock(lock)
    spawned = len(first_run.spawned)
    X, Y = np.ones((2, 400)), np.ones((1, 400))
    assert first_run.start_compile(plan, planar_hp(), X, Y, None) == "running"
    assert len(first_run.spawned) == spawned
    note = first_run.prepare("auto", planar_hp(), X, Y, None).note
    assert note.endswith("(started by an earlier run)")
    first_run.release_lock(lock)
    assert not lock.exists()


def test_a_stale_lock_is_taken_over(cache):
    plan = first_run.decide("auto", planar_hp(), 400, None)
    lock = first_run.lock_path(plan.marker)
    lock.write_text("999999999")
    assert not first_run.acquire_lock(lock)
    old = time.time() - first_run.LOCK_STALE_SECONDS - 60
    os.utime(lock, (old, old))
    assert first_run.acquire_lock(lock)
    assert lock.read_text() == str(os.getpid())
    assert [p.name for p in lock.parent.iterdir()] == [lock.name]
    first_run.release_lock(lock)


def test_without_a_writable_cache_auto_runs_numba(tmp_path, monkeypatch):
    monkeypatch.delenv(first_run.ENVIRONMENT, raising=False)
    monkeypatch.delenv("FASTBACKPROP_CACHE", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # below a regular file no directory can be made, whoever runs the tests (root too)
    monkeypatch.setattr(first_run, "cache_candidates", lambda: [blocker / "cache"])
    assert first_run.warm_directory() is None
    plan = first_run.decide("auto", planar_hp(), 400, None)
    assert plan.backend == "numba" and plan.marker is None
    assert first_run.finished(plan) is False
    assert first_run.write_marker(blocker / "cache" / "marker", {}) is False  # no error


@pytest.mark.parametrize("variable", ["FASTBACKPROP_CACHE", first_run.ENVIRONMENT])
def test_switched_off_auto_runs_numba(cache, monkeypatch, variable):
    monkeypatch.setenv(variable, "off")
    assert first_run.decide("auto", planar_hp(), 400, None).backend == "numba"


def test_numpy_and_numba_are_unchanged(cache, capsys):
    spawned = len(first_run.spawned)
    assert cli.main(["train", "--backend", "numpy", "--epochs", "100", "--seed", "0"]) == 0
    out, err = capsys.readouterr()
    assert "numpy backend" in out and "note:" not in err
    assert len(first_run.spawned) == spawned
    assert not (cache / first_run.WARM_DIRECTORY).exists()  # --backend numpy looks at nothing
    assert first_run.decide("numpy", planar_hp(), 400, None).backend == "numpy"
    cold = first_run.decide("numba", planar_hp(), 400, None)
    assert cold.backend == "numba" and not cold.marker.exists()  # compiles now, as before


def test_a_failed_background_compile_leaves_nothing_behind(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "nice", lambda increment: 0)  # not this test process's priority
    plan = first_run.decide("auto", planar_hp(), 400, None)
    lock = first_run.lock_path(plan.marker)
    assert first_run.acquire_lock(lock)
    data = tmp_path / "data.npz"
    np.savez(data, X=np.ones((3, 5)), Y=np.ones((1, 5)))  # 3 features: [2, 4, 1] fails
    status = _background_compile.main([str(data), json.dumps(planar_hp()), str(plan.marker),
                                       str(lock), json.dumps(plan.parts), "1"])
    assert status == 1
    assert not data.exists() and not lock.exists() and not plan.marker.exists()
    assert sorted(os.listdir(plan.marker.parent)) == []


def test_importing_the_package_or_the_command_does_not_import_first_run():
    out = subprocess.run([sys.executable, "-c", "import sys, fastbackprop, fastbackprop.cli; "
                          "print('fastbackprop.first_run' in sys.modules)"],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_the_help_names_auto_as_the_default():
    help_text = cli.build_parser(["train"])._subparsers._group_actions[0].choices[
        "train"].format_help()
    assert re.search(r"--backend\s+\{numba,numpy,auto\}", help_text)
    assert "(default: auto)" in " ".join(help_text.split())
