"""The kernels' vectorisable exp, expm1, log1p, sigmoid and tanh against NumPy.

Errors are measured in units in the last place (ulp) of the exact result,
taken from NumPy in float64 (and, for float32, from float64 rounded).
"""

import numpy as np
import pytest

from fastbackprop._jit import jit
from fastbackprop.kernels import scalar

DTYPES = [np.float32, np.float64]


def _vectorised(name):
    f = getattr(scalar, name)

    @jit
    def apply(x, out):
        for i in range(x.size):
            out[i] = f(x[i])

    return apply


KERNELS = {name: _vectorised(name) for name in ("exp", "expm1", "sigmoid", "tanh", "log1p_unit")}


def run(name, x):
    out = np.empty_like(x)
    KERNELS[name](x, out)
    return out


def exact(name, x):
    x = x.astype(np.float64)
    with np.errstate(over="ignore"):
        if name == "exp":
            return np.exp(x)
        if name == "expm1":
            return np.expm1(x)
        if name == "sigmoid":
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        if name == "tanh":
            return np.tanh(x)
        return np.log1p(x)


def ulp_error(got, expected, dtype):
    expected_d = expected.astype(dtype)
    finite = np.isfinite(expected_d) & (np.abs(expected_d) >= np.finfo(dtype).tiny)
    spacing = np.spacing(np.abs(expected_d[finite]).astype(dtype)).astype(np.float64)
    return np.abs(got[finite].astype(np.float64) - expected[finite]) / spacing


RANGES = {
    "exp": [(-5, 5), (-740, 709), (-100, 88)],
    "expm1": [(-1e-6, 1e-6), (-1, 1), (-50, 50)],
    "sigmoid": [(-10, 10), (-700, 700), (-1e-5, 1e-5)],
    "tanh": [(-1e-6, 1e-6), (-1, 1), (-25, 25)],
    "log1p_unit": [(0, 1e-8), (0, 1)],
}

#: Largest error allowed, in ulp of the dtype (float32 is checked against
#: the exact value, so its polynomial's own error shows).
MAX_ULP = {np.float64: 4, np.float32: 3}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(RANGES))
def test_accuracy_in_ulp(name, dtype):
    rng = np.random.default_rng(0)
    for lo, hi in RANGES[name]:
        if dtype == np.float32 and name == "exp" and hi > 88:
            lo, hi = -100, 88
        x = rng.uniform(lo, hi, 20000).astype(dtype)
        got = run(name, x)
        assert got.dtype == dtype
        err = ulp_error(got, exact(name, x), dtype)
        assert err.size > 1000
        assert err.max() <= MAX_ULP[dtype], (lo, hi, err.max(), x[np.argmax(err)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4], dtype=dtype)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(run("exp", x), [np.nan, np.inf, 0, 1, 1, np.inf, 0])
        np.testing.assert_array_equal(run("expm1", x), [np.nan, np.inf, -1, 0, 0, np.inf, -1])
        np.testing.assert_array_equal(run("sigmoid", x), [np.nan, 1, 0, 0.5, 0.5, 1, 0])
        np.testing.assert_array_equal(run("tanh", x), [np.nan, 1, -1, 0, 0, 1, -1])


def test_exp_overflow_and_underflow_boundaries():
    x = np.array([709.78, 709.79, -708.3, -745.0, -745.2])
    got = run("exp", x)
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    assert np.isfinite(got[0]) and got[1] == np.inf
    np.testing.assert_allclose(got[:3], expected[:3], rtol=4e-16)
    assert got[3] == expected[3] and got[4] == 0.0  # the smallest subnormal, then 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_monotonically(dtype):
    x = np.linspace(-60, 60, 100001).astype(dtype)
    s = run("sigmoid", x)
    assert np.all(np.diff(s) >= 0) and s[0] >= 0 and s[-1] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_nearest_integer_comes_as_a_float_and_an_int_over_the_exponent_range(dtype):
    """``_nearest_integer`` (the shifter trick that replaces ``floor`` and ``int(k)`` for the
    scale ``2^k``) rounds to the nearest integer (ties to even) and gives it as a float and
    as an int, exactly, for every ``k`` the routines can reach and a little beyond. Called, as
    by the routines, from code compiled without reassociation (which would fold
    ``(y + S) - S`` to ``y``); the accuracy tests above call the routines from a kernel with
    the package's fast-math flags."""
    from fastbackprop._jit import jit

    @jit(entry=True, exact=True)
    def nearest(y, k, ki):
        for i in range(y.size):
            k[i], ki[i] = scalar._nearest_integer(y[i])

    reach = 1100 if dtype == np.float64 else 160
    integers = np.arange(-reach, reach + 1).astype(dtype)
    rng = np.random.default_rng(0)
    y = np.concatenate([integers, integers + dtype(0.5), integers - dtype(0.25),
                        rng.uniform(-reach, reach, 5000).astype(dtype)]).astype(dtype)
    k = np.empty_like(y)
    ki = np.empty(y.size, dtype=np.int64)
    nearest(y, k, ki)
    expected = np.rint(y)  # ties to even
    np.testing.assert_array_equal(k, expected)
    np.testing.assert_array_equal(ki, expected.astype(np.int64))


@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"),
                    reason="x86 machine code")
@pytest.mark.parametrize("name", ["exp", "expm1", "sigmoid", "tanh"])
def test_the_float64_loops_convert_no_lane_to_int_one_at_a_time(name):
    """The scale ``2^k`` is built without a float-to-int conversion: AVX2 has none for
    float64 vectors, and ``int64(k)`` compiled to four scalar ``cvttsd2si`` a vector
    (``vcvttpd2qq`` is AVX-512's), 15% of tanh's time on an AVX2 EPYC."""
    import numba

    from fastbackprop._jit import FASTMATH

    f = getattr(scalar, name)

    @numba.njit(fastmath=set(FASTMATH))
    def apply(x, out):
        for i in range(x.size):
            out[i] = f(x[i])

    x = np.linspace(-3.0, 3.0, 64)
    apply(x, np.empty_like(x))
    asm = "".join(apply.inspect_asm().values())
    assert "cvttsd2si" not in asm and "cvtsd2si" not in asm
