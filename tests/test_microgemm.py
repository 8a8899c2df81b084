"""The register-blocked products (``kernels/microgemm.py``) against NumPy, every mode and dtype.

Each shape is chosen to hit one path: sizes of 1; sizes just below, at and
above the tile sizes (8 and 16 columns, 4 and 8 rows, 2-row and 4-column NT
tiles); inner dimensions that are not a multiple of a vector and that span
several of the NT chunks; the shapes a thread gets in the workloads of
``tools/small_gemm.py``. The reference is the float64 product of the same
inputs; the tolerance is the kernels' (1e-12 in float64, 1e-5 in float32),
norm-wise. Every entry of ``out`` starts as NaN, so an entry the kernel
does not write fails; and a guard row and column around ``out`` (a view
into a larger array) must stay untouched.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import DTYPES, assert_close
from numba import literally

from fastbackprop._jit import jit
from fastbackprop.kernels import microgemm, passes
from fastbackprop.kernels.blas import NN, NT, TN

SIZES = [
    (1, 1, 1), (1, 7, 1), (2, 3, 5), (3, 1, 9), (4, 8, 16), (5, 7, 3), (7, 9, 15),
    (8, 16, 17), (9, 17, 31), (10, 64, 16), (12, 5, 33), (17, 33, 25), (1, 128, 64),
    (64, 1, 128), (3, 100, 4), (33, 300, 7), (6, 1100, 3), (64, 64, 16), (100, 64, 100),
    (31, 259, 40), (2, 0, 3),
]

THREAD_SHAPES = [  # n, k, m of the products of tools/small_gemm.py (one thread's)
    (64, 64, 16), (64, 16, 64), (10, 64, 16), (10, 16, 64), (64, 10, 16),
    (32, 4, 500), (32, 500, 4), (4, 500, 16), (256, 784, 32), (256, 32, 784),
]


def operands(mode, n, k, m, dtype, rng):
    a = (k, n) if mode == TN else (n, k)
    b = (m, k) if mode == NT else (k, m)
    return rng.standard_normal(a).astype(dtype), rng.standard_normal(b).astype(dtype)


def reference(A, B, mode):
    A, B = A.astype(np.float64), B.astype(np.float64)
    if mode == NN:
        return A @ B
    return A @ B.T if mode == NT else A.T @ B


def check(mode, n, k, m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    A, B = operands(mode, n, k, m, dtype, rng)
    out = np.full((n, m), np.nan, dtype=dtype)
    microgemm.micro_gemm_pass(A, B, out, mode)
    expected = reference(A, B, mode)
    if k == 0:
        np.testing.assert_array_equal(out, 0)
    else:
        assert_close(out, expected, np.dtype(dtype), err_msg=f"mode {mode} {n}x{k}x{m}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", [NN, NT, TN])
@pytest.mark.parametrize("n, k, m", SIZES + THREAD_SHAPES)
def test_micro_gemm_matches_numpy(mode, n, k, m, dtype):
    check(mode, n, k, m, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", [NN, NT, TN])
def test_micro_gemm_writes_out_only(mode, dtype):
    """``out`` a C-contiguous block of rows of a larger array: the rows around it stay."""
    rng = np.random.default_rng(1)
    n, k, m = 11, 13, 21
    A, B = operands(mode, n, k, m, dtype, rng)
    big = np.full((n + 2, m), 7.0, dtype=dtype)
    out = big[1:-1]
    assert out.flags.c_contiguous
    microgemm.micro_gemm_pass(A, B, out, mode)
    np.testing.assert_array_equal(big[0], 7.0)
    np.testing.assert_array_equal(big[-1], 7.0)
    assert_close(out, reference(A, B, mode), np.dtype(dtype))


@pytest.mark.parametrize("mode", [NN, NT, TN])
def test_micro_gemm_random_shapes(mode):
    """Many random small shapes, both dtypes."""
    rng = np.random.default_rng(2)
    for trial in range(40):
        n, k, m = (int(x) for x in rng.integers(1, 70, size=3))
        for dtype in DTYPES:
            check(mode, n, k, m, dtype, seed=trial)


def test_micro_gemm_pass_checks_shapes():
    A = np.ones((3, 4))
    with pytest.raises(ValueError):
        microgemm.micro_gemm_pass(A, np.ones((5, 2)), np.empty((3, 2)), NN)
    with pytest.raises(ValueError):
        microgemm.micro_gemm_pass(A, np.ones((2, 4)), np.empty((3, 3)), NT)


def test_nonfinite_propagates():
    """A NaN or an infinity in an operand gives a non-finite result, as BLAS does."""
    for mode in (NN, NT, TN):
        rng = np.random.default_rng(3)
        A, B = operands(mode, 9, 19, 21, np.float64, rng)
        A.flat[5] = np.nan
        out = np.empty((9, 21))
        microgemm.micro_gemm_pass(A, B, out, mode)
        assert not np.isfinite(out).all()


@jit(entry=True)
def _wins(mode, n, k, m):
    literally(mode)
    return microgemm.micro_wins(mode, n, k, m)


@pytest.mark.parametrize("mode", [NN, NT, TN])
def test_the_kernels_products_either_side_of_the_rule(mode):
    """``passes.gemm`` (every product of the kernels) on shapes on both sides of the size
    rule: ``micro_gemm``, or the hand loops and BLAS, each computed right."""
    shapes = [(10, 64, 16), (64, 64, 128), (64, 4, 40), (1, 3000, 4), (128, 32, 64),
              (200, 100, 300), (4, 3, 400), (3, 0, 2), (129, 255, 33), (40, 300, 70)]
    sides = set()
    for n, k, m in shapes:
        sides.add(bool(_wins(mode, n, k, m)))
        for dtype in DTYPES:
            rng = np.random.default_rng(4)
            A, B = operands(mode, n, k, m, dtype, rng)
            out = np.full((n, m), np.nan, dtype=dtype)
            passes.gemm_pass(A, B, out, mode)
            if k == 0:
                np.testing.assert_array_equal(out, 0)
            else:
                assert_close(out, reference(A, B, mode), np.dtype(dtype))
    assert sides == {True, False}


def test_the_rule_keeps_large_products_and_one_row_layers_off_micro_gemm():
    """Large products stay on OpenBLAS (both cores where it is not held to one), 1-row layers
    and inner dimensions of 1 to 3 on the hand loops; the narrow layers of ``chains`` and
    the ``digits32`` shapes take ``micro_gemm`` on every CPU's plan."""
    for mode in (NN, NT, TN):
        assert not _wins(mode, 256, 784, 512) and not _wins(mode, 1000, 64, 1000)
        assert not _wins(mode, 64, 3, 128) and not _wins(mode, 64, 0, 128)
    assert not _wins(NN, 1, 64, 128) and not _wins(NT, 1, 128, 64) and not _wins(NT, 4, 400, 2)
    assert _wins(NT, 16, 5000, 32) and _wins(NT, 32, 16, 64) and _wins(NN, 64, 16, 64)
    if microgemm.VECTOR_BYTES == 64:  # the wider case: a thread's share of [784, 256, 128, 10]
        assert _wins(NN, 128, 256, 32) and _wins(TN, 256, 128, 64) and _wins(NN, 256, 32, 784)
        assert _wins(NN, 128, 256, 256) and not _wins(NN, 128, 256, 257)  # the product bound
        assert not _wins(NN, 256, 24, 784) and not _wins(TN, 1024, 1024, 128)
        assert not _wins(NN, 256, 784, 32) and not _wins(TN, 1000, 64, 100)
    if microgemm.VECTOR_BYTES == 32:
        assert not _wins(NN, 128, 256, 32) and not _wins(TN, 256, 128, 64)
        assert _wins(NT, 64, 16, 64)
        assert _wins(NN, 16, 32, 5000) and _wins(TN, 32, 16, 5000) and _wins(NN, 4, 16, 5000)
        assert _wins(NN, 10, 64, 16) and not _wins(NN, 100, 64, 100)


# -- the tiles per vector width ------------------------------------------------------------


def test_the_tiles_follow_the_target_cpus_vector_registers(monkeypatch):
    from numba.core import config

    monkeypatch.delenv("FASTBACKPROP_VECTOR_BYTES", raising=False)
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx,+avx2,+fma,-avx512f")
    assert microgemm.target_vector_bytes() == 32
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,+avx512f,+avx512dq")
    assert microgemm.target_vector_bytes() == 64
    monkeypatch.setenv("FASTBACKPROP_VECTOR_BYTES", "32")
    assert microgemm.target_vector_bytes() == 32
    monkeypatch.setenv("FASTBACKPROP_VECTOR_BYTES", "48")
    with pytest.raises(ValueError, match="FASTBACKPROP_VECTOR_BYTES must be 32 or 64; got '48'"):
        microgemm.target_vector_bytes()
    # each plan fits its registers: AVX2's 16 hold the NN tile's accumulators, the rows of B
    # and a broadcast; an NT tile has at most a vector's lanes of columns (float64: 4 on AVX2)
    for width, plan in microgemm.TILE_PLANS.items():
        registers = 32 if width == 64 else 16
        rows, vectors = plan["nn"]
        assert rows * vectors + vectors + 1 <= registers
        assert plan["nt"][1] <= width // 8 and plan["nt_narrow"][1] <= width // 8


def test_narrow_layers_take_the_loops_on_avx2_targets_only(monkeypatch):
    """``SMALL_OPERAND`` follows the vector width: OpenBLAS's AVX2 kernels lose to the loops on
    narrow layers, its AVX-512 ones (small-matrix paths) win (``_jit.py``)."""
    from fastbackprop import _jit

    monkeypatch.setenv("FASTBACKPROP_VECTOR_BYTES", "32")
    assert _jit.small_operand() == 64
    monkeypatch.setenv("FASTBACKPROP_VECTOR_BYTES", "64")
    assert _jit.small_operand() == 0
    monkeypatch.delenv("FASTBACKPROP_VECTOR_BYTES")
    assert passes.SMALL_OPERAND == _jit.small_operand()  # this process's target
    # chains' W3 A2 (4 x 16 x 5000): the loops on AVX2, BLAS with AVX-512
    assert passes.by_loops.py_func(4, 16, 5000, 64) == (passes.SMALL_OPERAND == 64)


def test_the_vector_width_is_part_of_the_kernel_caches_key(monkeypatch):
    from fastbackprop import _jit

    monkeypatch.delenv("FASTBACKPROP_VECTOR_BYTES", raising=False)
    default = _jit.source_fingerprint()
    monkeypatch.setenv("FASTBACKPROP_VECTOR_BYTES", "64")
    wide = _jit.source_fingerprint()
    monkeypatch.setenv("FASTBACKPROP_VECTOR_BYTES", "32")
    assert len({default, wide, _jit.source_fingerprint()}) == 3


def test_the_other_vector_widths_tiles_match_numpy_too():
    """The tests above run this CPU's tiles; here the other plan's (64-byte vectors run on an
    AVX2 CPU as pairs of registers, 32-byte ones on any), in a new process."""
    other = 32 if microgemm.VECTOR_BYTES == 64 else 64
    env = dict(os.environ, FASTBACKPROP_VECTOR_BYTES=str(other), FASTBACKPROP_CACHE="0")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         os.path.abspath(__file__), "-k", "matches_numpy or writes_out_only or rule"],
        env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
