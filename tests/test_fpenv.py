"""Subnormals flushed to zero inside the training loop only (kernels/fpenv.py)."""

import platform

import numpy as np
import pytest

from fastbackprop import Model
from fastbackprop._jit import jit
from fastbackprop.kernels import fpenv

X86 = platform.machine().lower() in ("x86_64", "amd64")


@jit(entry=True)
def _halve(a, flush):
    """``a *= 0.5`` in place (loads and stores: ordered after the control word's change)."""
    control = fpenv.flush_subnormals() if flush else np.uint32(0)
    for i in range(a.size):
        a[i] *= 0.5
    if flush:
        fpenv.restore(control)


def _halve_flushed(x, flush):
    a = np.array([x])
    _halve(a, flush)
    return a[0]


@pytest.mark.skipif(not X86, reason="FTZ and DAZ are x86's")
def test_flushing_makes_subnormal_results_zero_and_is_undone():
    tiny = np.finfo(np.float64).tiny  # the smallest normal number: half of it is subnormal
    before = fpenv.control_word() & fpenv.FTZ_DAZ
    assert _halve_flushed(tiny, False) == tiny / 2  # subnormal, not flushed
    assert _halve_flushed(tiny, True) == 0.0
    assert fpenv.control_word() & fpenv.FTZ_DAZ == before
    assert _halve_flushed(tiny, False) == tiny / 2  # restored: subnormals again


def test_a_fit_leaves_the_control_word_as_it_was():
    before = fpenv.control_word() & fpenv.FTZ_DAZ
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((3, 40)), (rng.random((1, 40)) > 0.5).astype(float)
    Model([3, 4, 1], n_epochs=3, seed=0, optimizer="adam", batch_size=8).fit(X, Y)
    assert fpenv.control_word() & fpenv.FTZ_DAZ == before
    assert np.finfo(np.float64).tiny * 0.5 > 0  # NumPy still sees subnormals
