"""One registry of implementations drives the parametrised tests (and the benchmarks).

``BACKENDS`` maps a backend name to the module that implements the
reference's step-function interface, read from the package's own registry
(:mod:`fastbackprop.backends`). ``TOLERANCES`` gives, per dtype, the
relative tolerance at which a kernel must agree with the reference; it is
applied norm-wise (``atol = rtol * max|expected|``) so sums whose terms
cancel are judged against the size of their terms, not their result.
"""

import os

import numpy as np
import pytest

from fastbackprop import backends, spec

#: ``fastbackprop train --backend auto`` (the default) runs numba in the tests, as
#: before auto, and starts no background compiles: tests/test_first_run.py unsets this.
os.environ["FASTBACKPROP_BACKGROUND_COMPILE"] = "0"

BACKENDS = {name: backends.MODULES[name][0] for name in spec.BACKENDS}


@pytest.fixture(autouse=True, scope="session")
def dropin_auto_runs_numba():
    """The scikit-learn drop-in's ``backend="auto"`` (fastbackprop.tiers) trains on numba in
    the tests, as before auto: a budget of 0 NumPy seconds, so that every sklearn test and
    scikit-learn's estimator checks keep exercising the kernels. A module attribute set
    here rather than an environment variable: the subprocesses that check auto's own
    choice start with the real budget, and no user's environment can switch it.
    tests/test_tiers.py sets the budget back where it tests auto's rule."""
    from fastbackprop import tiers

    saved = tiers.COMPILE_SECONDS
    tiers.COMPILE_SECONDS = 0.0
    yield
    tiers.COMPILE_SECONDS = saved

#: float64 kernels agree with the reference to about 1e-12, float32 to 1e-5.
TOLERANCES = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

DTYPES = [np.float32, np.float64]


def backend(name):
    """The step-function module of backend ``name``."""
    return backends.get(name).steps


@pytest.fixture(params=list(BACKENDS))
def impl(request):
    """Each backend's step functions in turn."""
    return backend(request.param)


def allocation_counts(script):
    """Run ``script`` in a new process with Numba's allocation statistics on; each line it
    prints becomes a tuple of ints (the allocations it counted)."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, NUMBA_NRT_STATS="1"),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return [tuple(map(int, line.split())) for line in out.stdout.splitlines()]


def assert_close(actual, expected, dtype, factor=1.0, err_msg="", scale=None):
    """``actual`` matches ``expected`` to the dtype's tolerance (times ``factor``).

    ``atol = rtol * scale``, ``scale`` defaulting to ``max|expected|``.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, err_msg)
    rtol = TOLERANCES[np.dtype(dtype)] * factor
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=err_msg)
