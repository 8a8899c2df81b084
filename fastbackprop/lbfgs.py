"""Full-batch L-BFGS on the compiled forward and backward pass: scikit-learn's ``solver="lbfgs"``.

scikit-learn's MLP with ``solver="lbfgs"`` hands ``scipy.optimize.minimize(method="L-BFGS-B",
jac=True)`` one vector of every parameter and a function returning the loss over all the
examples and its gradient. This module is that, in four parts:

:class:`Layout`
    the permutation between scikit-learn's packed vector (every ``coefs_[i]`` ``(n_in,
    n_out)`` row-major, then every ``intercepts_[i]``) and the kernels' flat layout
    (:func:`fastbackprop.kernels.pack`: ``W1`` ``(n_1, n_0)`` row-major, ``b1``, ``W2``,
    ...), computed once per fit as two index arrays;
:class:`CompiledPass`
    an *engine*: ``engine(theta) -> (grad_sums, loss_sum)``, the raw sums ``dZ A_prev^T``,
    ``sum(dZ)`` and ``sum_j w_j L_j`` over all the examples, by one compiled forward and
    backward pass (``kernels.training.gradient_sums``) into buffers allocated once;
:class:`LogLossClip`
    scikit-learn's clipping of the probabilities inside its cross-entropies, applied to
    the engine's loss where it changes it;
:class:`Objective`
    scikit-learn's loss and gradient from an engine's sums (``alpha``'s L2 term, the sample
    weights), in scikit-learn's packed order: the function scipy calls.

:func:`minimize` runs scipy with scikit-learn's options. Any object with the engine's
call and its ``output()`` (for example one that splits the columns into blocks on
several threads and adds their sums) can replace :class:`CompiledPass` in
:class:`Objective`.

scikit-learn's objective (``_backprop``; ``s = sum_j w_j``, ``n`` when unweighted)::

    J(W, b) = (1 / (s d)) sum_j w_j L_j  +  (alpha / (2 s)) sum_l ||W_l||^2
    dJ/dW_l = ((dZ_l A_{l-1}^T) + alpha W_l) / s,   dZ_L = w_j (A_L - Y)   per example
    dJ/db_l = sum(dZ_l) / s

``L_j`` the example's loss summed over the outputs (the cross-entropies, of the
probabilities clipped to ``[eps, 1 - eps]``: :class:`LogLossClip`; half the squared
error), ``d`` 1, except ``n_outputs`` for the squared error, whose loss scikit-learn
averages over the outputs while its gradient sums them: for several outputs its
``J`` and gradient disagree by that factor, and so do these, on purpose.

:class:`NumpyPass` is the same engine on the reference's step functions (the drop-in's
``backend="numpy"``).

This module needs NumPy, SciPy and (for :class:`CompiledPass`) the kernels; not
scikit-learn.
"""

from __future__ import annotations

import numpy as np

from . import spec
from .sparse import is_sparse


class Layout:
    """Between scikit-learn's packed parameters and the kernels' flat layout.

    ``layer_units``: ``[n_0, n_1, ..., n_L]``. :attr:`to_kernels` and
    :attr:`to_sklearn` are index arrays: ``theta = x[to_kernels]`` and ``x =
    theta[to_sklearn]``; :attr:`n_coefs` the number of weights (``x[:n_coefs]``
    holds every ``coefs_[i]``, the part ``alpha`` penalises).
    """

    def __init__(self, layer_units):
        units = [int(n) for n in layer_units]
        if len(units) < 2 or min(units) < 1:
            raise ValueError(f"layer_units must be at least two sizes >= 1; got {layer_units}")
        self.layer_units = units
        pairs = list(zip(units[:-1], units[1:]))
        self.n_coefs = sum(a * b for a, b in pairs)
        self.size = self.n_coefs + sum(units[1:])
        parts = []
        coef_start, intercept_start = 0, self.n_coefs
        for n_in, n_out in pairs:
            # the kernels' W (n_out, n_in), row-major, is coefs_[i].T
            parts.append(coef_start + np.arange(n_in * n_out).reshape(n_in, n_out).T.ravel())
            parts.append(intercept_start + np.arange(n_out))
            coef_start += n_in * n_out
            intercept_start += n_out
        self.to_kernels = np.concatenate(parts)
        self.to_sklearn = np.argsort(self.to_kernels)

    def pack(self, coefs, intercepts):
        """scikit-learn's packed vector of ``coefs``, ``intercepts``, float64 (its order)."""
        self._check(coefs, intercepts)
        return np.hstack([np.ravel(a) for a in list(coefs) + list(intercepts)]).astype(
            np.float64, copy=False)

    def unpack(self, x):
        """``(coefs, intercepts)`` lists from scikit-learn's packed ``x`` (views of it)."""
        x = np.asarray(x)
        if x.shape != (self.size,):
            raise ValueError(f"x must have shape ({self.size},); got {x.shape}")
        coefs, intercepts = [], []
        coef_start, intercept_start = 0, self.n_coefs
        for n_in, n_out in zip(self.layer_units[:-1], self.layer_units[1:]):
            coefs.append(x[coef_start:coef_start + n_in * n_out].reshape(n_in, n_out))
            intercepts.append(x[intercept_start:intercept_start + n_out])
            coef_start += n_in * n_out
            intercept_start += n_out
        return coefs, intercepts

    def _check(self, coefs, intercepts):
        pairs = list(zip(self.layer_units[:-1], self.layer_units[1:]))
        shapes = [np.shape(c) for c in coefs] + [np.shape(i) for i in intercepts]
        expected = pairs + [(n_out,) for _, n_out in pairs]
        if shapes != expected:
            raise ValueError(f"coefs and intercepts must have shapes {expected}; got {shapes}")


def sparse_input(X, dims, dtype):
    """A sparse ``X`` ``(n_x, m)`` as the kernels' :class:`.kernels.sparse.SparseRows`."""
    from . import sparse
    from .kernels.sparse import SparseRows, writeable

    rows = sparse.rows(X, dtype, n_x=int(dims[0]))
    return SparseRows(np.asarray(rows.indptr, dtype=np.int64), writeable(rows.indices),
                      writeable(rows.values), np.zeros(int(dims[1]), dtype=dtype))


def _checked_engine(hidden_activation, output_activation, dtype):
    """A pass engine's ``(names, dtype)``: the activation names checked against ``spec``'s
    tables, the dtype float64 or float32 (else ``TypeError`` naming ``dtype``)."""
    spec.code_of(spec.ACTIVATIONS, hidden_activation, "hidden_activation")
    spec.code_of(spec.OUTPUTS, output_activation, "output_activation")
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise TypeError(f"dtype must be float64 or float32; got {dtype}")
    return (hidden_activation, output_activation), dtype


class CompiledPass:
    """The engine: one compiled forward and backward pass over every example.

    ``X`` ``(n_x, m)`` and ``Y`` ``(n_L, m)``, examples as columns (the course's
    layout; ``Y`` checked labels of ``output_activation``), copied once to C-contiguous
    arrays of ``dtype`` (float64 or float32: the pass computes in it); ``dims`` ``[n_x,
    ..., n_L]``; ``sample_weight`` ``(m,)`` or None (all 1). Calling it with ``theta``
    (the kernels' flat layout, of ``dtype``) returns ``(grad, loss)``: ``grad`` holds
    ``dZ A_prev^T`` and ``sum(dZ)`` summed over the examples, ``dZ_L = w_j (A_L - Y)``,
    in ``theta``'s layout (a buffer of the engine, overwritten by the next call: copy
    what you keep); ``loss`` is ``sum_j w_j L_j`` (NaN when the pass is not finite).
    Nothing is allocated per call. A SciPy sparse ``X`` is held as its CSR rows (made
    once) and each pass runs over its nonzeros (:mod:`fastbackprop.kernels.sparse`, whose
    ``W1`` slot holds ``W1^T``: ``theta``'s and the gradient's are transposed around
    the pass, ``2 n_1 n_x`` copies a call).
    """

    def __init__(self, X, Y, dims, hidden_activation, output_activation, sample_weight=None,
                 dtype=np.float64):
        from .kernels.convert import as_kernel_array
        from .kernels.layout import n_parameters
        from .kernels.training import workspace

        self.names, self.dtype = _checked_engine(hidden_activation, output_activation, dtype)
        self.dims = np.asarray(dims, dtype=np.int64)
        self.sparse = is_sparse(X)
        if self.sparse:  # its CSR rows, made once; W1's slot transposed around each pass
            X = sparse_input(X, self.dims, self.dtype)
            m = X.indptr.size - 1
        else:
            X = as_kernel_array(X, self.dtype)
            if X.ndim != 2 or X.shape[0] != self.dims[0]:
                raise ValueError(f"X must have shape ({self.dims[0]}, m); got {X.shape}")
            m = X.shape[1]
        Y = as_kernel_array(Y, self.dtype)
        if Y.shape != (self.dims[-1], m):
            raise ValueError(f"Y must have shape ({self.dims[-1]}, {m}); got {Y.shape}")
        if sample_weight is None:
            w = np.ones(m, dtype=self.dtype)
        else:
            w = as_kernel_array(sample_weight, self.dtype)
            if w.shape != (m,):
                raise ValueError(f"sample_weight must have shape ({m},); got {w.shape}")
        self.X, self.Y, self.w, self.m = X, Y, w, m
        self.size = n_parameters(self.dims)
        self.work = workspace(self.dims, m, self.dtype)
        if self.sparse:
            self._theta_T = np.empty(self.size, dtype=self.dtype)
            self._grad = np.empty(self.size, dtype=self.dtype)

    def __call__(self, theta):
        from .kernels import gradient_sums

        if theta.dtype != self.dtype or theta.shape != (self.size,) or not \
                theta.flags.c_contiguous:
            raise ValueError(f"theta must be a C-contiguous {self.dtype} array of shape "
                             f"({self.size},); got {theta.dtype} {theta.shape}")
        if not self.sparse:
            return gradient_sums(theta, self.X, self.Y, self.dims, *self.names,
                                 sample_weight=self.w, work=self.work)
        n_1, n_x = self.dims[1], self.dims[0]
        k = n_1 * n_x
        theta_T, grad = self._theta_T, self._grad
        theta_T[k:] = theta[k:]
        theta_T[:k].reshape(n_x, n_1)[...] = theta[:k].reshape(n_1, n_x).T
        grad_T, loss = gradient_sums(theta_T, self.X, self.Y, self.dims, *self.names,
                                     sample_weight=self.w, work=self.work)
        grad[k:] = grad_T[k:]
        grad[:k].reshape(n_1, n_x)[...] = grad_T[:k].reshape(n_x, n_1).T
        return grad, loss

    def output(self):
        """``A_L`` ``(n_L, m)`` of the last call: a view of the engine's buffer."""
        L = self.dims.size - 1
        start = self.work.offsets[L - 1, 2]
        acts = self.work.acts
        return acts[start:start + self.dims[-1] * self.m].reshape(self.dims[-1], self.m)


class NumpyPass:
    """The engine of :class:`CompiledPass` on the NumPy backend: one forward and backward pass
    of the reference's step functions over every example (``solver="lbfgs"`` with the
    scikit-learn drop-in's ``backend="numpy"``). The same arguments and results; a
    SciPy sparse ``X`` goes through SciPy's products. It compiles nothing and imports
    no Numba.
    """

    def __init__(self, X, Y, dims, hidden_activation, output_activation, sample_weight=None,
                 dtype=np.float64):
        from .sparse import check_sparse_X

        self.names, self.dtype = _checked_engine(hidden_activation, output_activation, dtype)
        self.dims = [int(d) for d in dims]
        self.X = (check_sparse_X(X, dtype=self.dtype) if is_sparse(X)
                  else np.ascontiguousarray(X, dtype=self.dtype))
        self.m = self.X.shape[1]
        self.Y = np.ascontiguousarray(Y, dtype=self.dtype)
        if self.Y.shape != (self.dims[-1], self.m):
            raise ValueError(f"Y must have shape ({self.dims[-1]}, {self.m}); got {self.Y.shape}")
        self.w = None if sample_weight is None else np.asarray(sample_weight, dtype=self.dtype)
        self._AL = None

    def __call__(self, theta):
        from .reference_trainer import block_pass

        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            grad, loss, self._AL = block_pass(theta, self.X, self.Y, self.dims, *self.names,
                                              self.w)
        return grad.astype(self.dtype, copy=False), loss

    def output(self):
        """``A_L`` ``(n_L, m)`` of the last call."""
        return self._AL


class LogLossClip:
    """scikit-learn's cross-entropies from its probabilities, where they differ from the
    engine's loss from the logits.

    scikit-learn clips the probabilities to ``[eps, 1 - eps]`` (``eps`` float64's machine
    epsilon, 2.2e-16) before the logarithm, and takes the sigmoid's ``log(1 - p)`` from
    the rounded ``p``; the engine computes the loss from the logits, unclipped and exact.
    They differ by more than rounding only where a label reads a probability that is
    clipped or near 1: a true class (``Y = 1``) below ``eps`` (an example more than 36
    logits on the wrong side), or for the sigmoid a false label (``Y = 0``) above ``1 -
    NEAR_ONE``, where the rounding of ``p`` (5.5e-17) is a relative error of more than
    6e-14 in ``log(1 - p)`` (it grows as ``1 - p`` shrinks). Calling it with the outputs
    ``A_L`` and the engine's summed loss returns that loss when no label reads such a
    probability (one pass over ``A_L``), else scikit-learn's loss from the probabilities,
    as it computes it (``xlogy`` of the clipped ``A_L``, weighted, summed). ``Y``
    ``(n_L, m)`` 0/1; ``sample_weight`` ``(m,)`` or None; ``output`` ``"sigmoid"`` or
    ``"softmax"``. :attr:`recomputed` counts the calls that recomputed.

    ``dtype`` float32 (the probabilities' dtype when scikit-learn fits float32 ``X``):
    scikit-learn then clips to float32's ``eps``, 1.2e-7, which changes the term of every
    example predicted with a probability above ``1 - eps`` by up to 1.2e-7, so every
    call returns scikit-learn's loss from the probabilities.
    """

    NEAR_ONE = 1e-4

    def __init__(self, Y, sample_weight, output, dtype=np.float64):
        if output not in ("sigmoid", "softmax"):
            raise ValueError(f"output must be 'sigmoid' or 'softmax'; got {output!r}")
        self.eps = float(np.finfo(dtype).eps)
        self.always = np.dtype(dtype) != np.float64
        self.Y = np.asarray(Y, dtype=np.float64)
        self.w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.sigmoid = output == "sigmoid"
        self.true = self.Y > 0
        self.false = ~self.true if self.sigmoid else None
        self.recomputed = 0

    def __call__(self, A, loss):
        eps = self.eps
        clipped = self.always or np.min(A, where=self.true, initial=np.inf) < eps
        if self.sigmoid and not clipped:
            clipped = np.max(A, where=self.false, initial=-np.inf) > 1 - self.NEAR_ONE
        if not clipped:
            return loss
        from scipy.special import xlogy

        self.recomputed += 1
        P = np.clip(np.asarray(A, dtype=np.float64), eps, 1 - eps)
        terms = xlogy(self.Y, P)
        if self.sigmoid:
            terms += xlogy(1 - self.Y, 1 - P)
        per_example = terms.sum(axis=0)
        return float(-(per_example.sum() if self.w is None else per_example @ self.w))


class Objective:
    """scikit-learn's MLP loss and gradient over all examples, on scikit-learn's packed ``x``.

    ``engine(theta) -> (grad_sums, loss_sum)`` (a :class:`CompiledPass`, or anything
    that returns the same sums); ``layout`` a :class:`Layout`; ``alpha`` the L2
    strength; ``weight_sum`` ``s`` (the sum of the sample weights, ``n`` without);
    ``loss_divisor`` ``d`` (see the module); ``clip`` a :class:`LogLossClip` for the
    classifiers' losses (it reads ``engine.output()``), or None. Calling it with ``x``
    (float64) returns ``(J, gradient)`` as scikit-learn's ``_loss_grad_lbfgs`` does; the
    gradient is a new float64 array (scipy keeps it). :attr:`evaluations` counts the calls.

    An engine of float32 (its ``dtype``) is evaluated at ``x`` rounded to float32, as
    scikit-learn evaluates its float32 fits (scipy hands a float32 ``x0``'s function
    float32 points; its L-BFGS state stays float64); ``J`` and the gradient are then
    assembled in float64 from the engine's float32 sums.
    """

    def __init__(self, engine, layout, alpha, weight_sum, loss_divisor=1, clip=None):
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0; got {alpha!r}")
        if not (np.isfinite(weight_sum) and weight_sum > 0):
            raise ValueError(f"weight_sum must be a finite number > 0; got {weight_sum!r}")
        if not loss_divisor >= 1:
            raise ValueError(f"loss_divisor must be >= 1; got {loss_divisor!r}")
        self.engine, self.layout, self.clip = engine, layout, clip
        self.alpha, self.weight_sum = float(alpha), float(weight_sum)
        self.loss_divisor = float(loss_divisor)
        self.dtype = np.dtype(getattr(engine, "dtype", np.float64))
        self.theta = np.empty(layout.size, dtype=self.dtype)
        self.evaluations = 0

    def __call__(self, x):
        self.evaluations += 1
        layout = self.layout
        x = np.asarray(x, dtype=np.float64)
        if self.dtype == np.float64:
            np.take(x, layout.to_kernels, out=self.theta)
            coefs = x[:layout.n_coefs]
        else:  # evaluated where scikit-learn evaluates: at x rounded to the engine's dtype
            self.theta[...] = x[layout.to_kernels]
            coefs = x[:layout.n_coefs].astype(self.dtype).astype(np.float64)
        grad_sums, loss = self.engine(self.theta)
        if self.clip is not None:
            loss = self.clip(self.engine.output(), loss)
        s = self.weight_sum
        J = loss / (s * self.loss_divisor) + (0.5 * self.alpha) * float(np.dot(coefs, coefs)) / s
        gradient = np.take(grad_sums, layout.to_sklearn).astype(np.float64, copy=False)
        gradient[:layout.n_coefs] += self.alpha * coefs
        gradient /= s
        return J, gradient


def scipy_options(max_iter, max_fun, tol, verbose):
    """scikit-learn's options for ``L-BFGS-B``: ``maxiter``, ``maxfun``, ``gtol`` from
    ``max_iter``, ``max_fun``, ``tol``; ``iprint`` from ``verbose`` only with SciPy < 1.15,
    which deprecated it (scikit-learn passes it there only, so from 1.15 a verbose fit
    prints nothing, in scikit-learn as here)."""
    import scipy

    options = {"maxfun": int(max_fun), "maxiter": int(max_iter), "gtol": float(tol)}
    if tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 15):
        options["iprint"] = 1 if verbose is True or verbose >= 1 else -1
    return options


def minimize(objective, x0, max_iter=200, max_fun=15000, tol=1e-4, verbose=False):
    """``scipy.optimize.minimize(objective, x0, method="L-BFGS-B", jac=True)`` with
    scikit-learn's options (:func:`scipy_options`); returns scipy's ``OptimizeResult``
    (``x`` in ``x0``'s order, ``fun``, ``nit``, ``nfev``, ``status``, ``message``)."""
    import scipy.optimize

    return scipy.optimize.minimize(objective, np.asarray(x0, dtype=np.float64),
                                   method="L-BFGS-B", jac=True,
                                   options=scipy_options(max_iter, max_fun, tol, verbose))
