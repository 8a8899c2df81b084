"""Start-up figures of issues 6 and 26, each the median over new processes.

Run from the repository root: ``python tools/measure_startup.py``. Prints the
import cost, the first fit of the planar network (1000 steps) with a warm
and a cold kernel cache, and the whole-process time next to a process that
only calls one trivial cached ``@njit`` function (Numba's own floor) and
the same script on the NumPy backend.

``python tools/measure_startup.py --first-contact [--repeats N] [--against CHECKOUT]``
prints issue 26's table instead (for this checkout and, alternating process by
process, the other), as a new user meets the package: the first and
the second ``fastbackprop train`` (an empty, then a filled kernel cache), and
a script that fits the scikit-learn drop-in on digits at its defaults (imports
included; ``backend="auto"``), cold and warm, the same with ``backend="numba"``, and
the same script with scikit-learn's own class.

Each checkout's bytecode is compiled first (``compileall``), as ``pip install``
does: without it, in an environment with ``PYTHONDONTWRITEBYTECODE`` set (this
development machine's), every process compiles the package's sources again
(about 40 ms), which an installed package never does, while scikit-learn's
installed modules have their bytecode.
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIT = """
import json, time
t0 = time.perf_counter()
from fastbackprop import Model
from fastbackprop.datasets import load_planar_dataset
X, Y = load_planar_dataset()
t1 = time.perf_counter()
Model([2, 4, 1], hidden_activation="tanh", learning_rate=1.2, n_epochs=1000,
      init="scaled", seed=0, backend="{backend}").fit(X, Y)
print(json.dumps({{"first_fit": time.perf_counter() - t1}}))
"""
TRIVIAL = """
from numba import njit
@njit(cache=True)
def f(x):
    return x + 1
f(1.0)
"""


def wall(code, env, n):
    """Median seconds of ``n`` new processes running ``code`` (from a file, so Numba can cache)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=env["NUMBA_CACHE_DIR"]
                                     if "NUMBA_CACHE_DIR" in env else None, delete=False) as f:
        f.write(code)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, f.name], env=env, check=True,
                             capture_output=True, text=True)
        times.append(time.perf_counter() - start)
    os.unlink(f.name)
    return statistics.median(times), out.stdout


def wall_file(path, env, n):
    """Median seconds of ``n`` new processes running the script ``path``."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([sys.executable, path], env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_fit(env, n, backend="numba"):
    return statistics.median(
        json.loads(wall(FIT.format(backend=backend), env, 1)[1])["first_fit"] for _ in range(n))


DIGITS = """
from sklearn.datasets import load_digits
from {module} import MLPClassifier
X, y = load_digits(return_X_y=True)
print(MLPClassifier(random_state=0{options}).fit(X, y).score(X, y))
"""


def seconds(command, env, cwd, check=True):
    """Wall seconds of one new process running ``command`` (a list), which must succeed
    (``check=False``: NaN when it fails, e.g. an older checkout without ``backend``)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, check=check, capture_output=True, cwd=cwd)
    return time.perf_counter() - start if done.returncode == 0 else float("nan")


def wait_for_background(cache, timeout=120):
    """Wait until no background compile of ``fastbackprop train`` holds a lock in ``cache``
    (a checkout without one returns at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pathlib.Path(cache).glob("**/*.lock")):
            return
        time.sleep(0.05)


def first_contact(base, repeats, checkouts):
    """Issue 26's table: each row the median of ``repeats``, a new empty cache for each cold run,
    for each checkout (alternating, so that all see the same machine)."""
    train = [sys.executable, "-m", "fastbackprop", "train"]
    labels = {
        "train cold": "first `fastbackprop train` (empty kernel cache)",
        "train warm": "second `fastbackprop train`",
        "ours cold": "script fitting `fastbackprop.sklearn.MLPClassifier` on digits, first run",
        "ours warm": "the same script again",
        "numba cold": "the script with `backend=\"numba\"`, first run (empty kernel cache)",
        "numba warm": "the same script again",
        "theirs": "the same script with scikit-learn's own `MLPClassifier`",
    }
    rows = {(c, key): [] for c in checkouts for key in labels}
    with tempfile.TemporaryDirectory() as scripts:
        # (not "numba.py": the script's directory comes first on sys.path)
        ours, numba, theirs = (os.path.join(scripts, f"{name}.py")
                               for name in ("ours", "ours_numba", "theirs"))
        for path, module, options in ((ours, "fastbackprop.sklearn", ""),
                                      (numba, "fastbackprop.sklearn", ', backend="numba"'),
                                      (theirs, "sklearn.neural_network", "")):
            with open(path, "w") as f:
                f.write(DIGITS.format(module=module, options=options))
        for _ in range(repeats):
            for checkout in checkouts:
                def run(key, command, env, cwd, check=True):
                    rows[(checkout, key)].append(seconds(command, env, cwd, check))

                with tempfile.TemporaryDirectory() as cache:
                    env = dict(base, NUMBA_CACHE_DIR=cache, PYTHONWARNINGS="ignore",
                               PYTHONPATH=str(checkout))
                    run("train cold", train, env, cache)
                    wait_for_background(cache)
                    run("train warm", train, env, cache)
                with tempfile.TemporaryDirectory() as cache:
                    env = dict(base, NUMBA_CACHE_DIR=cache, PYTHONWARNINGS="ignore",
                               PYTHONPATH=str(checkout))
                    run("ours cold", [sys.executable, ours], env, cache)
                    run("ours warm", [sys.executable, ours], env, cache)
                    run("theirs", [sys.executable, theirs], env, cache)
                with tempfile.TemporaryDirectory() as cache:
                    env = dict(base, NUMBA_CACHE_DIR=cache, PYTHONWARNINGS="ignore",
                               PYTHONPATH=str(checkout))
                    run("numba cold", [sys.executable, numba], env, cache, check=False)
                    run("numba warm", [sys.executable, numba], env, cache, check=False)
    names = [str(c) for c in checkouts]
    print(f"| what the user runs (seconds, median of {repeats}) | " + " | ".join(names) + " |")
    print("| --- " * (len(names) + 1) + "|")
    for key, label in labels.items():
        cells = [f"{statistics.median(rows[(c, key)]):.2f}".replace("nan", "n/a")
                 for c in checkouts]
        print(f"| {label} | " + " | ".join(cells) + " |")


def compile_bytecode(checkout):
    """Write ``checkout``'s package bytecode, as an installed package has it."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(pathlib.Path(checkout) / "fastbackprop")],
                   check=True, capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-contact", action="store_true",
                        help="issue 26's table (first train, the scikit-learn script)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", metavar="CHECKOUT", action="append", default=[],
                        help="with --first-contact: time this other checkout too (repeatable)")
    args = parser.parse_args()
    base = dict(os.environ, PYTHONPATH=str(ROOT))
    base.pop("FASTBACKPROP_CACHE", None)
    checkouts = [ROOT] + [pathlib.Path(a).resolve() for a in args.against]
    for checkout in checkouts:
        compile_bytecode(checkout)
    if args.first_contact:
        first_contact(base, args.repeats, checkouts)
        return
    base.pop("FASTBACKPROP_CACHE", None)
    importtimes = []
    for _ in range(9):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import numpy; import fastbackprop"],
                             env=base, capture_output=True, text=True).stderr
        importtimes += [int(line.split("|")[1]) for line in err.splitlines()
                        if line.rstrip().endswith("| fastbackprop")]
    print(f"import fastbackprop after numpy (-X importtime): {statistics.median(importtimes) / 1e3:.2f} ms")
    print(f"import numpy: {wall('import numpy', base, 7)[0]:.3f} s; "
          f"import numpy, fastbackprop: {wall('import numpy, fastbackprop', base, 7)[0]:.3f} s; "
          f"import fastbackprop.kernels: {wall('import fastbackprop.kernels', base, 7)[0]:.3f} s")
    warm = tempfile.mkdtemp()
    try:
        env = dict(base, NUMBA_CACHE_DIR=warm)
        trivial = os.path.join(warm, "trivial.py")
        with open(trivial, "w") as f:
            f.write(TRIVIAL)
        subprocess.run([sys.executable, trivial], env=env, check=True)  # fill its cache
        wall(FIT.format(backend="numba"), env, 1)  # fill the cache
        print(f"first fit, 1000 planar steps: warm cache {first_fit(env, 7):.3f} s", end="; ")
        cold = []
        for _ in range(3):
            fresh = tempfile.mkdtemp()
            cold.append(first_fit(dict(base, NUMBA_CACHE_DIR=fresh), 1))
            shutil.rmtree(fresh)
        print(f"cold cache {statistics.median(cold):.2f} s")
        print(f"whole process: planar 1000 steps, numba, warm cache {wall(FIT.format(backend='numba'), env, 9)[0]:.3f} s; "
              f"one trivial cached @njit function {wall_file(trivial, env, 9):.3f} s; "
              f"planar on the numpy backend {wall(FIT.format(backend='numpy'), env, 9)[0]:.3f} s")
    finally:
        shutil.rmtree(warm)


if __name__ == "__main__":
    main()
