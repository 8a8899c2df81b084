"""Cold first fit per configuration: how long a new user waits for the kernels to compile.

Each measurement is a new process with an empty kernel cache (a fresh
``NUMBA_CACHE_DIR``) that imports fastbackprop, builds the data (untimed)
and times ``Model(...).fit`` (compilation and training) for one of the
configurations of :data:`fastbackprop.bench.COLD_FITS`. Run from the
repository root::

    python tools/compile_time.py                     # every configuration, median of 3
    python tools/compile_time.py --repeats 5 --configs planar,adam
    python tools/compile_time.py --against /path/to/other/checkout

``--against`` times another checkout of the package too (say, the previous
main: ``git worktree add /tmp/previous <commit>``), alternating the two
process by process so that both see the same machine; it prints both
columns and their ratio. Ratios hold between days on a shared machine;
absolute times drift. Times are the fitting process's CPU time, which
another process on the other core disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastbackprop.bench import COLD_FITS, cold_fit_code  # noqa: E402

TIMED = """
{setup}
import json, time
start = time.process_time()
{fit}
print(json.dumps({{"seconds": time.process_time() - start}}))
"""


def cold_fit(checkout, config):
    """CPU seconds of the first fit of ``config`` in a new process with an empty kernel cache."""
    setup, fit = cold_fit_code(config)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PYTHONPATH=str(checkout), NUMBA_CACHE_DIR=cache)
        env.pop("FASTBACKPROP_CACHE", None)
        out = subprocess.run([sys.executable, "-c", TIMED.format(setup=setup, fit=fit)],
                             env=env, check=True, capture_output=True, text=True, cwd=cache)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(COLD_FITS),
                        help=f"comma-separated subset of {','.join(COLD_FITS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", type=pathlib.Path, default=None,
                        help="another checkout to time in the same run")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(configs) - set(COLD_FITS))
    if unknown:
        parser.error(f"unknown configurations {unknown}; known: {','.join(COLD_FITS)}")
    checkouts = {"this": ROOT}
    if args.against is not None:
        checkouts["against"] = args.against.resolve()
    times = {(name, c): [] for name in checkouts for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            for name, path in checkouts.items():
                times[name, c].append(cold_fit(path, c))
                print(f"  {name} {c}: {times[name, c][-1]:.2f} s", file=sys.stderr, flush=True)
    median = {key: statistics.median(v) for key, v in times.items()}
    print(f"cold first fit (new process, empty kernel cache), CPU seconds, "
          f"median of {args.repeats}:")
    header = f"{'config':<12} {'this':>8} {'/planar':>8}"
    if "against" in checkouts:
        header += f" {'against':>8} {'/planar':>8} {'this/against':>12}"
    print(header)
    for c in configs:
        line = f"{c:<12} {median['this', c]:7.2f}s"
        line += (f" {median['this', c] / median['this', 'planar']:7.2f}x"
                 if "planar" in configs else f" {'':>8}")
        if "against" in checkouts:
            line += f" {median['against', c]:7.2f}s"
            line += (f" {median['against', c] / median['against', 'planar']:7.2f}x"
                     if "planar" in configs else f" {'':>8}")
            line += f" {median['this', c] / median['against', c]:11.2f}x"
        print(line)


if __name__ == "__main__":
    main()
