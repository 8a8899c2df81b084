"""The parameter schema (fastbackprop.layout): the flat layout, described once."""

import numpy as np
import pytest

from fastbackprop import layout, reference as R
from fastbackprop.layout import Schema


def test_entries_follow_the_flat_layout():
    s = Schema([3, 4, 2])
    assert s.keys == ("W1", "b1", "W2", "b2")
    assert [e.shape for e in s.entries] == [(4, 3), (4, 1), (2, 4), (2, 1)]
    assert [e.start for e in s.entries] == [0, 12, 16, 24]
    assert s.size == 26 == layout.n_parameters([3, 4, 2])
    assert np.flatnonzero(s.mask("W")).tolist() == list(range(12)) + list(range(16, 24))


def test_pack_unpack_and_the_kernels_offsets_agree():
    dims = [5, 1, 3, 2]
    parameters = R.initialize_parameters(dims, seed=0)
    s = Schema.of(parameters)
    theta = s.pack(parameters, np.float64)
    np.testing.assert_array_equal(theta, R.parameters_to_vector(parameters).ravel())
    views = s.unpack(theta, copy=False)
    views["W2"][0, 0] = 7.0  # views write into theta
    assert theta[s.entries[2].start] == 7.0
    back = s.unpack(theta)
    back["b3"][:] = -1.0  # copies do not
    assert not np.any(theta == -1.0)
    offsets = layout.layer_offsets(dims, 10)
    for e in s.entries:
        assert offsets[e.layer - 1, layout.DENSE.index(e.kind)] == e.start
    assert offsets[-1, 0] == offsets[-1, 1] == s.size
    assert offsets[:, 2].tolist() == [0, 10, 40, 60]


@pytest.mark.parametrize("parameters, message", [
    ({"W1": np.ones((2, 3))}, r"must hold W1, b1, \.\.\., WL, bL"),
    ({"W1": np.ones((2, 3)), "b1": np.ones((3, 1))}, r"\['b1'\] must have shape \(2, 1\)"),
    ({"W1": np.ones((2, 3)), "b1": np.ones((2, 1)), "W2": np.ones((1, 3)),
      "b2": np.ones((1, 1))}, r"\['W2'\] must have shape \(n_2, 2\) to follow W1"),
])
def test_of_checks_every_shape(parameters, message):
    with pytest.raises(ValueError, match=message):
        Schema.of(parameters)


def test_kinds_must_cover_every_layer():
    with pytest.raises(ValueError, match="each of the 2 layers"):
        Schema([2, 3, 1], kinds=[("W", "b")])
