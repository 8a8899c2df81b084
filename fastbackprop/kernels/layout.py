"""Views of each layer's arrays in the flat buffers of the compiled loop.

The layout itself (which arrays a layer has, their order and offsets) is
:mod:`fastbackprop.layout`'s, described once; this module adds the compiled
views into it.

One compiled function serves every depth because the state is a few flat
arrays, not tuples of per-layer arrays (which would compile again for
each number of layers):

``theta``  ``W1 (row-major), b1, W2, b2, ..., WL, bL`` flattened; ``W{l}``
           and ``b{l}`` are C-contiguous views into it. Gradients (``dW``,
           ``db``) use the same layout.
``acts``   ``A1, ..., AL``, each ``(n_l, m)`` in a slot of ``n_l x capacity``:
           the buffers are sized for ``capacity`` columns, and a batch of
           ``m <= capacity`` columns uses the start of each slot.
``deltas`` ``dZ1, ..., dZL``, in the same slots as ``acts``.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

from .._jit import jit
from ..layout import layer_offsets, n_parameters, pack, unpack


@intrinsic
def matrix_view(typingctx, flat, start, rows, cols):
    """``flat[start:start + rows * cols].reshape((rows, cols))``: a C-contiguous view.

    ``flat`` a 1-D C-contiguous array holding at least ``start + rows * cols``
    entries (not checked: the layouts here are right by construction, and
    their tests cover every slot). What the slice and ``reshape`` make,
    without them: Numba's ``reshape`` compiles a helper function for each
    signature and calls its C routine for the strides at run time, every
    time a layer's view is taken.
    """
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"
            and all(isinstance(t, types.Integer) for t in (start, rows, cols))):
        return None
    view_type = flat.copy(ndim=2)

    def codegen(context, builder, signature, args):
        from numba.core.imputils import impl_ret_borrowed
        from numba.np.arrayobj import populate_array

        source = context.make_array(flat)(context, builder, args[0])
        first, n_rows, n_cols = (context.cast(builder, v, t, types.intp)
                                 for v, t in zip(args[1:], signature.args[1:]))
        view = context.make_array(view_type)(context, builder)
        itemsize = source.itemsize
        populate_array(view, data=builder.gep(source.data, [first]), shape=[n_rows, n_cols],
                       strides=[builder.mul(n_cols, itemsize), itemsize], itemsize=itemsize,
                       meminfo=source.meminfo, parent=source.parent)
        return impl_ret_borrowed(context, builder, view_type, view._getvalue())

    return view_type(flat, start, rows, cols), codegen


@jit
def W_of(theta, dims, offsets, l):
    """View of ``W{l}``, ``(n_l, n_{l-1})``, in a flat parameter vector."""
    return matrix_view(theta, offsets[l - 1, 0], dims[l], dims[l - 1])


@jit
def b_of(theta, dims, offsets, l):
    """View of ``b{l}``, ``(n_l, 1)``, in a flat parameter vector."""
    return matrix_view(theta, offsets[l - 1, 1], dims[l], 1)


@jit
def layer_of(buffer, dims, offsets, l, m):
    """View of layer ``l``'s ``(n_l, m)`` block in ``acts`` or ``deltas``."""
    return matrix_view(buffer, offsets[l - 1, 2], dims[l], m)


__all__ = ["layer_offsets", "n_parameters", "pack", "unpack", "matrix_view", "W_of", "b_of",
           "layer_of"]
