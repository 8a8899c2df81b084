"""The figures behind ``fastbackprop train --backend auto`` (fastbackprop.first_run).

Run from the repository root::

    python tools/first_run.py calibrate      # the NumPy cost model against measured fits
    python tools/first_run.py compile [-n N] # cold runs: numba against auto, and the compile

``calibrate`` times ``Model(backend="numpy").fit`` for a few networks (the planar one,
mini-batches, wide and long layers) and prints each next to
``first_run.projected_numpy_seconds``. ``compile`` runs the default ``fastbackprop
train`` (the planar network, 10000 epochs) N times each way, in new processes with an
empty kernel cache (a fresh NUMBA_CACHE_DIR): ``--backend numba`` (its "compiling the
kernels" line is what :data:`fastbackprop.first_run.COMPILE_SECONDS` stands for), and
``--backend auto``, then waits for auto's background compile and runs auto again
(warm). Medians, wall seconds of the whole process.
"""

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastbackprop import first_run  # noqa: E402
from fastbackprop.model import Model  # noqa: E402

#: (layer_dims, m, epochs, batch_size, hidden, output) of the calibration fits.
CASES = [
    ([2, 4, 1], 400, 2000, None, "tanh", "sigmoid"),  # planar
    ([2, 10, 3], 300, 1000, None, "tanh", "softmax"),  # spiral
    ([3, 16, 8, 1], 120, 1000, None, "relu", "sigmoid"),
    ([64, 64, 10], 1797, 5, 32, "relu", "softmax"),  # digits, mini-batches
    ([2, 64, 1], 20000, 20, None, "tanh", "sigmoid"),  # many examples, element-wise
    ([2, 4, 1], 100000, 20, None, "tanh", "sigmoid"),
    ([784, 128, 10], 6000, 3, None, "relu", "softmax"),  # products
    ([784, 128, 10], 6000, 1, 128, "relu", "softmax"),
]


def calibrate():
    """Measured against projected seconds of NumPy fits (best of 3)."""
    rng = np.random.default_rng(0)
    print("| layers | m | epochs | batch | measured s | projected s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for dims, m, epochs, batch, hidden, output in CASES:
        X = rng.standard_normal((dims[0], m))
        Y = (rng.integers(0, dims[-1], m) if output == "softmax"
             else (rng.random((dims[-1], m)) > 0.5).astype(float))
        model = Model(dims, hidden_activation=hidden, output_activation=output,
                      backend="numpy", n_epochs=epochs, batch_size=batch, seed=0,
                      learning_rate=0.01)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model.fit(X, Y)
            times.append(time.perf_counter() - start)
        projected = first_run.projected_numpy_seconds(model._hyperparameters(), m)
        print(f"| {dims} | {m} | {epochs} | {batch} | {min(times):.3f} | {projected:.3f} |")


def run(args, env):
    """Wall seconds and stdout of ``fastbackprop ARGS`` in a new process."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fastbackprop", *args], env=env, check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - start, out.stdout


def wait_for_marker(cache, timeout=120):
    """Wait until the background compile wrote a marker in ``cache`` (and released its lock)."""
    warm = pathlib.Path(cache) / first_run.WARM_DIRECTORY
    deadline = time.time() + timeout
    while time.time() < deadline:
        names = os.listdir(warm) if warm.exists() else []
        if names and not any(n.endswith(".lock") for n in names):
            return
        time.sleep(0.2)
    raise TimeoutError("the background compile did not finish")


def compile_figures(repeats):
    """Cold ``train`` on numba and on auto, the compile line, and auto warm: medians."""
    base = {k: v for k, v in os.environ.items() if k != first_run.ENVIRONMENT}
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH")) if p)
    rows = {"numba cold": [], "compiling": [], "auto cold": [], "auto warm": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            seconds, out = run(["train", "--backend", "numba"], dict(base, NUMBA_CACHE_DIR=cache))
            rows["numba cold"].append(seconds)
            rows["compiling"].append(float(re.search(r"compiling the kernels: ([0-9.]+) s",
                                                     out).group(1)))
        with tempfile.TemporaryDirectory() as cache:
            env = dict(base, NUMBA_CACHE_DIR=cache)
            seconds, out = run(["train"], env)
            assert "numpy backend" in out, out
            rows["auto cold"].append(seconds)
            wait_for_marker(cache)
            seconds, out = run(["train"], env)
            assert "numba backend" in out, out
            rows["auto warm"].append(seconds)
    print(f"| the planar `fastbackprop train` | seconds (median of {repeats}) |")
    print("| --- | --- |")
    labels = {"numba cold": "`--backend numba`, empty cache (whole process)",
              "compiling": "of which compiling (its own line)",
              "auto cold": "`--backend auto`, empty cache: NumPy (whole process)",
              "auto warm": "`--backend auto` after the background compile: numba"}
    for key, label in labels.items():
        print(f"| {label} | {statistics.median(rows[key]):.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("calibrate", "compile"))
    parser.add_argument("-n", "--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.what == "calibrate":
        calibrate()
    else:
        compile_figures(args.repeats)


if __name__ == "__main__":
    main()
