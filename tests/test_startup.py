"""Import cost, lazy Numba, the on-disk kernel cache and warm-up, each in a new process.

Every check runs in a subprocess on a private copy of the package, so the
caches it creates or finds are its own.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "fastbackprop"


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the package without caches; returns the directory to put on sys.path."""
    root = tmp_path / "site"
    shutil.copytree(PACKAGE, root / "fastbackprop", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def run(code, root, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("NUMBA_CACHE_DIR", "FASTBACKPROP_CACHE")}
    environment.update(PYTHONPATH=str(root), **env)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment,
                         capture_output=True, text=True, timeout=600, cwd=root)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_does_not_import_numba_or_the_kernels(package_copy):
    out = run("""
        import sys
        import fastbackprop
        fastbackprop.reference, fastbackprop.datasets, fastbackprop.activations
        print(sorted(m for m in sys.modules if m.startswith("numba") or m == "fastbackprop.kernels"))
    """, package_copy)
    assert out.strip() == "[]"
    out = run("import fastbackprop, sys; fastbackprop.kernels; print('numba' in sys.modules)",
              package_copy)
    assert out.strip() == "True"  # the check above can see Numba when it is there


def test_import_does_not_import_the_peers_or_their_frameworks(package_copy):
    """bench --peers runs PyTorch and JAX in processes of their own: importing the package,
    its bench module or even fastbackprop.peers imports neither (installed or not)."""
    out = run("""
        import sys
        import fastbackprop, fastbackprop.bench
        fastbackprop.bench.add_arguments
        print(sorted(m for m in ("torch", "jax", "jaxlib", "fastbackprop.peers") if m in sys.modules))
        import fastbackprop.peers
        fastbackprop.peers.available()
        print(sorted(m for m in ("torch", "jax", "jaxlib") if m in sys.modules))
    """, package_copy)
    assert out.split("\n")[:2] == ["[]", "[]"]


def test_import_does_not_import_onnx_onnxruntime_or_skl2onnx(package_copy):
    """ONNX export is an extra: neither the package, nor a Model, nor fastbackprop.sklearn
    imports onnx, onnxruntime or skl2onnx (installed or not); to_onnx imports onnx only."""
    out = run("""
        import sys
        extras = ("onnx", "onnxruntime", "skl2onnx", "fastbackprop.export")
        import fastbackprop
        from fastbackprop import Model
        Model([2, 3, 1]).fit
        print(sorted(m for m in extras if m in sys.modules))
        try:
            import sklearn
        except ImportError:
            print([])
        else:
            import fastbackprop.sklearn
            print(sorted(m for m in extras if m in sys.modules))
        import importlib.util
        if importlib.util.find_spec("onnx") is None:
            print(["fastbackprop.export", "onnx"])
        else:
            from fastbackprop.datasets import load_planar_dataset
            X, Y = load_planar_dataset(m=20)
            Model([2, 3, 1], n_epochs=1, backend="numpy").fit(X, Y).to_onnx()
            print(sorted(m for m in extras if m in sys.modules))
    """, package_copy)
    assert out.split("\n")[:3] == ["[]", "[]", "['fastbackprop.export', 'onnx']"]


def test_import_costs_little_after_numpy(package_copy):
    out = run("""
        import statistics, subprocess, sys
        def seconds(code):
            times = []
            for _ in range(7):
                t = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                                   capture_output=True, text=True).stderr
                total = [l for l in t.splitlines() if l.rstrip().endswith("| fastbackprop")]
                times.append(int(total[0].split("|")[1]) if total else 0)
            return statistics.median(times) / 1e6
        print(seconds("import numpy; import fastbackprop"))
    """, package_copy)
    assert float(out) < 0.030  # the target: at most 30 ms more than import numpy (docs/startup.md)


CACHED_KERNEL = """
    import numpy as np
    from numba import types
    from fastbackprop.kernels import passes
    out = np.empty((3, 2))
    passes.gemm_pass(np.ones((3, 5)), np.ones((5, 2)), out, passes.NN)
    assert (out == 5).all()
    stats = passes.gemm_pass.stats  # counted for the signature compiled for the constant mode
    def literal(counts):
        return sum(n for sig, n in counts.items() if isinstance(sig[-1], types.Literal))
    print(literal(stats.cache_hits), literal(stats.cache_misses),
          type(passes.gemm_pass._cache).__name__)
"""


def test_kernels_are_cached_under_NUMBA_CACHE_DIR_and_loaded_next_time(package_copy, tmp_path):
    cache = tmp_path / "numba-cache"
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "0", "1", "KernelCache"]
    assert list(cache.rglob("*.nbi")), "nothing written to NUMBA_CACHE_DIR"
    assert not (package_copy / "fastbackprop" / "kernels" / "__pycache__").exists() or not list(
        (package_copy / "fastbackprop" / "kernels" / "__pycache__").glob("*.nbi"))
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "1", "0", "KernelCache"]


def test_without_NUMBA_CACHE_DIR_the_cache_sits_beside_the_source(package_copy):
    run(CACHED_KERNEL, package_copy)
    assert list((package_copy / "fastbackprop" / "kernels" / "__pycache__").glob("*.nbi"))


def test_FASTBACKPROP_CACHE_0_turns_caching_off(package_copy, tmp_path):
    cache = tmp_path / "numba-cache"
    for _ in range(2):
        out = run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache), FASTBACKPROP_CACHE="0")
        assert out.split() == ["0", "1", "NullCache"]  # compiled in memory both times
    assert not cache.exists() or not list(cache.rglob("*.nb*"))


def test_an_edit_to_any_kernel_source_invalidates_dependent_caches(package_copy, tmp_path):
    """gemm_pass lives in passes.py but inlines scalar.py's code: editing scalar.py must recompile it."""
    cache = tmp_path / "numba-cache"
    run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache))
    scalar = package_copy / "fastbackprop" / "kernels" / "scalar.py"
    scalar.write_text(scalar.read_text() + "\n# an edit\n")
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "0", "1", "KernelCache"]


def test_a_cache_another_version_wrote_is_compiled_again_not_an_error(package_copy, tmp_path):
    """An upgrade leaves the previous version's cache behind. Its index may name types that
    no longer exist (unpickling it raises AttributeError), its data may not load: both are
    misses, the kernel compiles, and the rewritten cache is loaded next time."""
    import numba
    import pickle

    cache = tmp_path / "numba-cache"
    run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache))
    removed_type = b"cfastbackprop.kernels.passes\nRemovedType\n."  # a pickle naming it
    for index in cache.rglob("*.nbi"):
        index.write_bytes(pickle.dumps(numba.__version__, protocol=-1) + removed_type)
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "0", "1", "KernelCache"]
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "1", "0", "KernelCache"]
    for data in cache.rglob("*.nbc"):
        data.write_bytes(b"not a pickle")
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "0", "1", "KernelCache"]
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "1", "0", "KernelCache"]


def test_a_cache_another_numba_wrote_is_compiled_again(package_copy, tmp_path):
    """Numba's index records the Numba version that wrote it: another version's is a miss."""
    import pickle

    cache = tmp_path / "numba-cache"
    run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache))
    for index in cache.rglob("*.nbi"):
        data = index.read_bytes()
        version = pickle.loads(data)  # the first pickle of the file
        rest = data[len(pickle.dumps(version, protocol=-1)):]
        assert pickle.dumps(version, protocol=-1) + rest == data
        index.write_bytes(pickle.dumps("0.1.0-another-numba", protocol=-1) + rest)
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "0", "1", "KernelCache"]


def test_a_cache_another_version_of_the_package_wrote_is_compiled_again(package_copy, tmp_path):
    """The fingerprint covers the package's version, not only the kernels' sources."""
    cache = tmp_path / "numba-cache"
    run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache))
    init = package_copy / "fastbackprop" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9+'))
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "0", "1", "KernelCache"]
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "1", "0", "KernelCache"]


def test_a_cache_compiled_for_another_cpu_is_not_loaded(package_copy, tmp_path):
    """Numba keys each entry to the CPU name and features it compiled for: a cache written
    for another CPU (here: a generic x86-64 without the host's features) is a miss on this one,
    and this CPU's entry is then kept beside it."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the other CPU named here is an x86-64 one")
    cache = tmp_path / "numba-cache"
    generic = {"NUMBA_CPU_NAME": "x86-64", "NUMBA_CPU_FEATURES": ""}
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache), **generic).split() == [
        "0", "1", "KernelCache"]
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "0", "1", "KernelCache"]
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        "1", "0", "KernelCache"]
    assert run(CACHED_KERNEL, package_copy, NUMBA_CACHE_DIR=str(cache), **generic).split() == [
        "1", "0", "KernelCache"]


def test_no_writable_cache_location_still_works_without_error(package_copy, tmp_path):
    """Read-only install, unwritable home, unusable NUMBA_CACHE_DIR: compile in memory, quietly.

    Permission bits do not stop root (CI runs as root), so every location is
    made unusable by putting a regular file where a directory must go.
    """
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for sub in ("fastbackprop/__pycache__", "fastbackprop/kernels/__pycache__"):
        (package_copy / sub).write_text("not a directory")
    if os.geteuid() != 0:
        for path in sorted(package_copy.rglob("*"), reverse=True):
            path.chmod(0o555 if path.is_dir() else 0o444)
    code = CACHED_KERNEL + """
    import warnings
    from fastbackprop import kernels, reference
    from fastbackprop.datasets import load_planar_dataset
    X, Y = load_planar_dataset(m=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = reference.initialize_parameters([2, 3, 1], seed=0)
        result = kernels.train(p, X, Y, "tanh", 0.5, 20)
    expected, _ = reference.L_layer_model(X, Y, [2, 3, 1], "tanh", 0.5, 20, parameters=p)
    assert np.allclose(result.parameters["W1"], expected["W1"], rtol=1e-10)
    print("trained")
    """
    out = run(code, package_copy, NUMBA_CACHE_DIR=str(blocker / "cache"),
              HOME=str(blocker / "home"), XDG_CACHE_HOME=str(blocker / "xdg"))
    assert out.split() == ["0", "1", "NullCache", "trained"]


def test_warmup_compiles_what_fit_uses_so_a_new_process_only_loads(package_copy, tmp_path):
    """And writes the markers of what it compiled: the command's first run (the planar
    network, tanh) then loads the kernels rather than training on NumPy."""
    cache = tmp_path / "numba-cache"
    decide = """
        from fastbackprop import first_run
        from fastbackprop.model import Model
        hp = Model([2, 4, 1], "tanh", learning_rate=1.2, n_epochs=1000)._hyperparameters()
        print(first_run.decide("auto", hp, 400, None).backend)
    """
    auto = {"NUMBA_CACHE_DIR": str(cache), "FASTBACKPROP_BACKGROUND_COMPILE": "1"}  # (decides only)
    assert run(decide, package_copy, **auto).split() == ["numpy"]
    run("import fastbackprop; fastbackprop.warmup(dtypes=['float64'], hidden_activations=['tanh'])",
        package_copy, NUMBA_CACHE_DIR=str(cache))
    assert run(decide, package_copy, **auto).split() == ["numba"]
    out = run("""
        from fastbackprop import Model
        from fastbackprop.datasets import load_planar_dataset
        from fastbackprop.kernels import training
        X, Y = load_planar_dataset()
        Model([2, 4, 1], "tanh", learning_rate=1.2, n_epochs=100, backend="numba").fit(X, Y)
        print(sum(training.train.stats.cache_hits.values()), len(training.train.overloads))
    """, package_copy, NUMBA_CACHE_DIR=str(cache))
    assert out.split() == ["1", "1"]  # what the marker promised: the fit's loop, from the cache
    out = run("""
        import numpy as np
        from fastbackprop import kernels, reference
        from fastbackprop.kernels import training
        from fastbackprop.datasets import load_planar_dataset
        X, Y = load_planar_dataset()
        p = reference.initialize_parameters([2, 4, 1], seed=0)
        kernels.train(p, X, Y, "tanh", 1.2, 100)
        kernels.probabilities(X, p, "tanh")
        print(sum(training.train.stats.cache_hits.values()), len(training.train.overloads),
              sum(training.train.stats.cache_misses.values()))
    """, package_copy, NUMBA_CACHE_DIR=str(cache))
    # One overload, and it came from the cache, at the first look: no miss. (Called with
    # a plain int for the activation's code, Numba would type the loop until its
    # ``literally`` asks for the literal, count a miss, and only then look the literal
    # signature up: about 0.1 s of typing in every new process. convert.call_specialised
    # asks for the literal signature from the start.)
    assert out.split() == ["1", "1", "0"]


def test_kernels_only_kernels_call_are_compiled_without_wrappers_yet_callable_from_python():
    """Skipping Numba's CPython and C wrappers for internal kernels shortens a cold compile;
    a Python call to one still works (through a wrapped twin) and gives the kernel's result."""
    from fastbackprop.kernels import passes, training

    assert passes.row_sum.targetoptions.get("no_cpython_wrapper") is True
    assert training.forward.targetoptions.get("no_cpython_wrapper") is True
    for entry in (training.train, training.predict, training.gradient_sums, passes.gemm_pass,
                  passes.bias_activation_pass, passes.backward_pointwise_pass):
        assert not entry.targetoptions.get("no_cpython_wrapper"), entry
    dZ = np.arange(12.0).reshape(3, 4)
    db = np.zeros((3, 1))
    passes.row_sum(dZ, db)
    passes.row_sum(dZ, db)  # a second call: the twin's compiled code, not a crash
    np.testing.assert_array_equal(db, dZ.sum(axis=1, keepdims=True))


LINKED_ENVIRONMENTS = """
    import ctypes
    from numba.core.environment import lookup_environment
    from fastbackprop._jit import jit

    @jit
    def twice(x):
        return 2.0 * x

    @jit(entry=True)
    def outer(x):
        return twice(x) + 1.0

    print(outer(1.5))
    (inner,) = twice.overloads.values()
    print(type(inner.library).__name__, inner.library.get_pointer_to_function(
        inner.fndesc.llvm_func_name))
    library = next(iter(outer.overloads.values())).library
    engine = library.codegen._engine
    names = [gv.name for gv in library._final_module.global_variables
             if gv.name.startswith("_ZN08NumbaEnv")]
    print(len(names), all(
        ctypes.c_void_p.from_address(engine.get_global_value_address(name)).value
        == id(lookup_environment(name)) for name in names))
"""


def test_internal_kernels_are_linked_as_ir_and_their_callers_set_their_environments(
        package_copy):
    """An internal kernel gets no module optimisation and no machine code of its own (its
    callers optimise and emit its code where they link it); so each caller points the linked
    copy of the callee's environment global at its environment, as Numba's cache does."""
    out = run(LINKED_ENVIRONMENTS, package_copy).split()
    assert out == ["4.0", "InternalLibrary", "0", "2", "True"], out


PARTLY_CACHED_FIT = """
    import numpy as np
    from fastbackprop import Model
    from fastbackprop.datasets import load_planar_dataset
    from fastbackprop.kernels import training
    X, Y = load_planar_dataset()
    model = Model([2, 4, 1], hidden_activation="tanh", learning_rate=1.2, n_epochs=50,
                  init="scaled", seed=0, backend="numba").fit(X, Y)
    print(repr(float(model.costs_[-1])), sum(training.train.stats.cache_hits.values()))
"""


def test_only_entry_kernels_are_cached_and_a_loop_compiled_again_trains_the_same(
        package_copy, tmp_path):
    """The cache holds the kernels Python calls, which hold the code of those they call: a
    process that finds the training loop's entry missing compiles it again, with everything
    it calls, and trains to the same bits. (A process that loads it: test_warmup_....)"""
    cache = tmp_path / "numba-cache"
    cost, hits = run(PARTLY_CACHED_FIT, package_copy, NUMBA_CACHE_DIR=str(cache)).split()
    assert hits == "0"
    cached = {f.name.split("-")[0] for f in cache.rglob("*.nbi")}
    assert "training.train" in cached and "training.forward" not in cached, cached
    from fastbackprop import kernels  # noqa: F401 (the modules below)
    import importlib

    for name in cached:  # entry kernels only (gemm_pass and two more: the step API's)
        module, function = name.split(".")
        kernel = getattr(importlib.import_module(f"fastbackprop.kernels.{module}"), function)
        assert not kernel.targetoptions.get("no_cpython_wrapper"), name
    for f in cache.rglob("*.nb*"):
        f.unlink()
    assert run(PARTLY_CACHED_FIT, package_copy, NUMBA_CACHE_DIR=str(cache)).split() == [
        cost, "0"]


def test_a_warm_process_compiles_nothing_for_the_step_api_and_a_validated_fit(package_copy,
                                                                              tmp_path):
    """Every kernel Python calls is a cached entry: once the cache is filled, a new process
    that runs the step API (forward, backward with L2, update) and a fit with early stopping
    (whose validation runs the step API's forward) loads them all and compiles none. An
    internal kernel called from Python would compile its in-memory twin in every process."""
    code = """
        import numpy as np
        from fastbackprop import Model
        from fastbackprop.compile_clock import compile_clock
        from fastbackprop.datasets import load_planar_dataset
        from fastbackprop.kernels import steps
        X, Y = load_planar_dataset()
        from fastbackprop import reference
        with compile_clock() as clock:
            p = reference.initialize_parameters([2, 4, 1], seed=0)
            AL, caches = steps.L_model_forward(X, p, "tanh")
            grads = steps.L_model_backward(AL, Y, caches, "tanh", output_start="dZ", l2=0.1)
            steps.linear_backward(AL - Y, caches[-1][0])
            steps.update_parameters(p, grads, 0.1)
            Model([2, 4, 1], hidden_activation="tanh", n_epochs=50, seed=0,
                  validation_fraction=0.1, early_stopping=True).fit(X, Y)
        print(clock.compiled)
    """
    cache = tmp_path / "numba-cache"
    assert run(code, package_copy, NUMBA_CACHE_DIR=str(cache)).split()[-1] == "True"
    assert run(code, package_copy, NUMBA_CACHE_DIR=str(cache)).split()[-1] == "False"


@pytest.mark.slow
def test_a_cold_fit_compiles_each_kernel_for_one_signature(package_copy):
    """A counter that starts as a literal ``0`` is typed as ``Literal[int](0)`` too, and a
    ``uint64`` constant next to ``int64`` counters gives a second signature: each kernel it
    reaches is compiled twice (the barrier's ``backoff``: 0.11 s of each cold threaded fit;
    the random numbers' ``absorb``). Compiled in memory (no cache), a fit with every optional
    part on two threads must compile each of the package's kernels for one signature
    (Numba's own overloads, ``<locals>`` implementations, are not the package's to fix)."""
    out = run("""
        import collections, json
        import numpy as np
        from numba.core import event
        from fastbackprop import Model
        signatures = collections.defaultdict(set)
        class Listener(event.Listener):
            def on_start(self, ev):
                f = ev.data["dispatcher"].py_func
                if f.__module__.startswith("fastbackprop") and "<locals>" not in f.__qualname__:
                    signatures[f.__qualname__].add(str(ev.data["args"]))
            def on_end(self, ev):
                pass
        event.register("numba:compile", Listener())
        g = np.random.default_rng(0)
        X, Y = g.random((8, 256)), np.eye(3)[:, g.integers(0, 3, 256)]
        Model([8, 16, 16, 3], output_activation="softmax", optimizer="adam", batch_size=128,
              l2=0.1, keep_prob=0.8, n_epochs=2, n_threads=2, seed=0).fit(X, Y)
        print(json.dumps({"covered": sorted({"backoff", "absorb", "dropout_forward"}
                                            & set(signatures)),
                          "repeated": {k: sorted(v) for k, v in signatures.items()
                                       if len(v) > 1}}))
    """, package_copy, FASTBACKPROP_CACHE="0")
    result = json.loads(out)
    assert result["covered"] == ["absorb", "backoff", "dropout_forward"]  # they were compiled
    assert result["repeated"] == {}
