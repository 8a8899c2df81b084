"""How closely fastbackprop.sklearn's solver="lbfgs" follows scikit-learn's, per configuration.

    python tools/lbfgs_agreement.py                  # float64, 20 iterations (the tests')
    python tools/lbfgs_agreement.py --dtype float32 --max-iter 5

For each target kind (binary, multi-class, multi-label, regression, multi-output
regression), hidden activation and weighting, both classes fit the data of
``tests/test_sklearn.py`` (``_lbfgs_problems``) from the same ``random_state``; printed:
the largest relative difference of the weights (each array norm-wise, as the tests
assert), of ``loss_``, and the same for scikit-learn against itself with every loss and
gradient entry perturbed by relative noise of one ulp of the dtype (what any rounding
difference does to L-BFGS: the scale to judge the first columns by).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--max-iter", type=int, default=20)
    args = parser.parse_args(argv)

    import numpy as np
    from sklearn import neural_network as sk
    from sklearn.exceptions import ConvergenceWarning

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from test_sklearn import _lbfgs_problems

    warnings.simplefilter("ignore", ConvergenceWarning)
    ulp = float(np.finfo(args.dtype).eps) / 2
    rng = np.random.default_rng(0)

    def perturbed(original):
        def loss_grad(self, x, *rest):
            loss, grad = original(self, x, *rest)
            noise = 1 + ulp * rng.standard_normal(grad.size)
            return loss * (1 + ulp * rng.standard_normal()), (grad * noise).astype(grad.dtype)
        return loss_grad

    def difference(a, b):
        return max(float(np.max(np.abs(p - q)) / np.max(np.abs(q)))
                   for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))

    print(f"{args.dtype} X, max_iter={args.max_iter}, hidden (7, 4), alpha=0.01, "
          f"random_state=0; weights: uniform(0, 3)")
    header = (f"{'target':<13} {'activation':<9} {'weights':<8} {'iter':>4}  {'weights':>8}  "
              f"{'loss_':>8}  {'sklearn vs itself + 1 ulp':>25}")
    print(header)
    print("-" * len(header))
    ours_all, self_all = [], []
    for name, (ours_cls, theirs_cls, X, y) in _lbfgs_problems().items():
        X = X.astype(args.dtype)
        for activation in ("relu", "tanh", "logistic", "identity"):
            for weighted in (False, True):
                w = np.random.default_rng(1).uniform(0, 3, len(X)) if weighted else None
                kw = dict(hidden_layer_sizes=(7, 4), activation=activation, solver="lbfgs",
                          max_iter=args.max_iter, random_state=0, alpha=0.01)
                ours = ours_cls(**kw).fit(X, y, sample_weight=w)
                theirs = theirs_cls(**kw).fit(X, y, sample_weight=w)
                original = theirs_cls._loss_grad_lbfgs
                theirs_cls._loss_grad_lbfgs = perturbed(original)
                try:
                    noisy = theirs_cls(**kw).fit(X, y, sample_weight=w)
                finally:
                    theirs_cls._loss_grad_lbfgs = original
                d, s = difference(ours, theirs), difference(noisy, theirs)
                ours_all.append(d)
                self_all.append(s)
                loss = abs(ours.loss_ - theirs.loss_) / abs(theirs.loss_)
                print(f"{name:<13} {activation:<9} {'yes' if weighted else 'no':<8} "
                      f"{theirs.n_iter_:>4}  {d:>8.1e}  {loss:>8.1e}  {s:>25.1e}", flush=True)
    print(f"weights: median {np.median(ours_all):.1e}, max {max(ours_all):.1e}; scikit-learn "
          f"against itself + 1 ulp: median {np.median(self_all):.1e}, max {max(self_all):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
