"""Python-side plumbing of the kernels: input conversion and fast calls into specialised kernels."""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def common_dtype(**arrays):
    """The float dtype the kernels compute in for these arrays (NumPy promotion).

    Raises ``TypeError`` naming the first argument that is not float32 or float64.
    """
    for name, a in arrays.items():
        dt = np.asarray(a).dtype
        if dt not in FLOAT_DTYPES:
            raise TypeError(
                f"{name} must be a float32 or float64 array for the numba backend; got dtype {dt}"
            )
    return np.result_type(*arrays.values())


def as_kernel_array(a, dtype):
    """``a`` as a writeable C-contiguous array of ``dtype``: itself when it already is one.

    Read-only arrays are copied too: Numba types them differently, and each
    type would compile the kernels again.
    """
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.writeable else a.copy()


_ENTRY_POINTS = {}


def call_specialised(dispatcher, dtype, codes, *args):
    """``dispatcher(*args)`` for a kernel compiled per constant code(s) (literals).

    Numba compiles such a kernel for ``Literal[int](code)``, but a call from
    Python types the int as ``int64``, misses, and goes through the compiler's
    slow path on every call (about 10 ms). After the first call this looks up
    the compiled entry point for (``dtype``, ``codes``) and calls it directly
    (about 3 us). Every array argument must be C-contiguous and writeable
    (``as_kernel_array`` ensures it), so dtype and codes determine the types.
    """
    key = (dispatcher, np.dtype(dtype).name, codes)
    entry = _ENTRY_POINTS.get(key)
    if entry is not None and all(a.flags.c_contiguous for a in args if isinstance(a, np.ndarray)):
        return entry(*args)  # the cached types hold: C-contiguous arrays of this dtype
    result = dispatcher(*args)
    from numba import typeof, types

    for signature, compiled in dispatcher.overloads.items():
        if all(
            (isinstance(t, types.Literal) and t.literal_value == a)
            or (not isinstance(t, types.Literal) and typeof(a) == t)
            for t, a in zip(signature, args)
        ):
            _ENTRY_POINTS[key] = compiled.entry_point
            break
    return result
