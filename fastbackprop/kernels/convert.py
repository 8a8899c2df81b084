"""Python-side plumbing of the kernels: input conversion and fast calls into specialised kernels."""

from __future__ import annotations

import functools
import threading

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


#: Bytes of a transposed copy from which :func:`as_rows` splits it between threads: starting
#: a thread costs about 0.2 ms, and below this the copy's half takes little more.
THREADED_COPY_BYTES = 4 << 20


def as_rows(a, dtype, n_threads=1):
    """``a`` ``(n, m)`` transposed, ``(m, n)``, as a writeable C-contiguous array of ``dtype``:
    each of the ``m`` examples' ``n`` values contiguous (:func:`as_kernel_array` of
    ``a.T``; itself when ``a.T`` already is one). A copy of at least
    :data:`THREADED_COPY_BYTES` is split between ``n_threads`` threads by rows of the result
    (NumPy copies without the GIL): the transpose is strided reads, bound by their misses and
    by the first touch of the new pages, which two cores share. On the 2-core AVX2 EPYC,
    MNIST's 784 x 60000 float32 took 38 ms on two threads against 66 ms in one
    ``np.ascontiguousarray``, ``deep``'s 12288 x 209 float64 3.6 against 6.0 ms."""
    t = np.transpose(a)
    dtype = np.dtype(dtype)
    if t.dtype == dtype and t.flags.c_contiguous and t.flags.writeable:
        return t
    out = np.empty(t.shape, dtype=dtype)
    P = max(1, min(int(n_threads), len(out))) if out.nbytes >= THREADED_COPY_BYTES else 1
    cuts = [p * len(out) // P for p in range(P + 1)]
    errors = []

    def copy(p):
        try:
            np.copyto(out[cuts[p]:cuts[p + 1]], t[cuts[p]:cuts[p + 1]], casting="unsafe")
        except BaseException as error:  # re-raised in the caller's thread
            errors.append(error)

    helpers = [threading.Thread(target=copy, args=(p,), daemon=True) for p in range(1, P)]
    for helper in helpers:
        helper.start()
    try:
        copy(0)
    finally:
        for helper in helpers:
            helper.join()
    if errors:
        raise errors[0]
    return out


_ENTRY_POINTS = {}

#: dispatcher -> the positions of its arguments that it compiles as literal values.
_LITERAL_POSITIONS = {}


def call_specialised(dispatcher, *args):
    """``dispatcher(*args)``, through the compiled entry point of exactly these argument types.

    A kernel compiled per constant code (``literally``) is typed by Numba for
    ``Literal[int](code)``, but a call from Python types the int as ``int64``,
    misses, and goes through the compiler's slow path on every call (about
    10 ms). This looks the compiled entry point up by a key derived from the
    arguments themselves (:func:`type_key`: each array's dtype, dimensions,
    layout and flags, which arguments are None, the named tuples' classes and
    their fields, and the values of the literal arguments) and calls it
    directly (a few microseconds). A call whose arguments differ in any of
    these from the compiled entry's has another key, and goes to the
    dispatcher, which compiles or finds the right machine code: no call can
    reach code compiled for other types.
    """
    literals = _LITERAL_POSITIONS.get(dispatcher)
    if literals is not None:
        entry = _ENTRY_POINTS.get((dispatcher, type_key(args, literals)))
        if entry is not None:
            return entry(*args)
    elif _compile_with_literals(dispatcher, args):
        _remember(dispatcher, args)
        entry = entry_point(dispatcher, *args)
        if entry is not None:
            return entry(*args)
    result = dispatcher(*args)
    _remember(dispatcher, args)
    return result


@functools.lru_cache(maxsize=None)
def literal_positions(dispatcher):
    """The positions of the parameters that ``dispatcher``'s function passes to
    ``literally`` (read from its source, once), as a frozenset; empty when it has none or
    its source cannot be read."""
    import ast
    import inspect
    import textwrap

    function = dispatcher.py_func
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):  # no source (a frozen or bytecode-only install)
        return frozenset()  # the ordinary call then finds the literals, as Numba does
    names = {node.args[0].id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id == "literally" and len(node.args) == 1
             and isinstance(node.args[0], ast.Name)}
    parameters = list(inspect.signature(function).parameters)
    return frozenset(parameters.index(name) for name in names if name in parameters)


def _compile_with_literals(dispatcher, args):
    """Compile (or load from the cache) ``dispatcher`` for ``args`` with its ``literally``
    parameters typed as the literal values; True when it has such parameters and did.

    Called with an ``int64`` where it wants a literal, Numba types the function until
    ``literally`` raises, then starts again with the literal: in a new process a cached
    training loop paid about 0.15 s of that typing before its entry was looked up, and
    with the literal signature from the start it is found at once (0.02 s).
    """
    from numba.core import errors, types

    positions = literal_positions(dispatcher)
    if not positions or len(args) != dispatcher.py_func.__code__.co_argcount:
        return False
    signature = tuple(types.literal(a) if i in positions else dispatcher.typeof_pyval(a)
                      for i, a in enumerate(args))
    try:
        dispatcher.compile(signature)
    except errors.NumbaError:
        return False  # the ordinary call below raises Numba's own error for these arguments
    return True


def entry_point(dispatcher, *args):
    """The compiled entry point that :func:`call_specialised` keeps for these arguments (None
    before its first call with them). For callers that call it again and again with
    arguments of the same types by construction, skipping even the key."""
    literals = _LITERAL_POSITIONS.get(dispatcher)
    if literals is None:
        return None
    return _ENTRY_POINTS.get((dispatcher, type_key(args, literals)))


def type_key(args, literals):
    """What Numba's types of ``args`` depend on, as a hashable tuple (values at ``literals``)."""
    return tuple(args[i] if i in literals else _type_key(a) for i, a in enumerate(args))


def _type_key(a):
    if isinstance(a, np.ndarray):
        flags = a.flags
        layout = "C" if flags.c_contiguous else "F" if flags.f_contiguous else "A"
        return (a.dtype, a.ndim, layout, flags.writeable, flags.aligned)
    if a is None:
        return None
    if isinstance(a, tuple):
        return (type(a), *map(_type_key, a))
    if isinstance(a, (bool, int, float, np.generic)):
        return type(a)
    from numba import typeof

    return typeof(a)


def _remember(dispatcher, args):
    """Record the entry point of the overload that ``args`` were just compiled or dispatched to."""
    from numba import typeof, types

    for signature, compiled in dispatcher.overloads.items():
        if len(signature) == len(args) and all(
            (isinstance(t, types.Literal) and t.literal_value == a)
            or (not isinstance(t, types.Literal) and typeof(a) == t)
            for t, a in zip(signature, args)
        ):
            literals = frozenset(i for i, t in enumerate(signature) if isinstance(t, types.Literal))
            _LITERAL_POSITIONS[dispatcher] = literals
            _ENTRY_POINTS[(dispatcher, type_key(args, literals))] = compiled.entry_point
            return
