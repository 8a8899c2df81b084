"""Issue 29's measurement: an epoch on a TF-IDF-shaped sparse problem, ours against
scikit-learn's MLPClassifier and PyTorch with a sparse first layer, in one run.

    python tools/sparse_speed.py [--m 20000] [--n-x 50000] [--density 0.002] [--epochs 3]
                                 [--dense]

The problem: ``m`` documents, ``n_x`` features at ``density``, 20 classes, ``[n_x, 64, 20]``
relu, softmax, Adam, batch 200, float64 (scikit-learn's dtype for float64 X). Each
contender runs a warm-up epoch (compilation, allocation); then the scikit-learn classes
(ours and scikit-learn's) one fit of ``--epochs`` epochs, PyTorch ``--epochs`` epochs;
the table shows seconds per epoch (PyTorch's the median). ``--dense`` adds our fit on the
densified matrix (8 GB at the default shape: only when it fits in memory).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from fastbackprop.bench import sparse_problem


def _time_fit(MLPClassifier, X, y, epochs, n_1, batch):
    """Seconds per epoch of one ``fit`` of ``epochs`` epochs, after a one-epoch warm-up fit
    (compilation, caches)."""
    kw = dict(solver="adam", batch_size=batch, random_state=0, tol=0,
              n_iter_no_change=10**9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPClassifier((n_1,), max_iter=1, **kw).fit(X, y)
        clf = MLPClassifier((n_1,), max_iter=epochs, **kw)
        start = time.perf_counter()
        clf.fit(X, y)
        return (time.perf_counter() - start) / epochs


def time_ours(X, y, epochs, n_1, batch):
    from fastbackprop.sklearn import MLPClassifier

    return _time_fit(MLPClassifier, X, y, epochs, n_1, batch)


def time_sklearn(X, y, epochs, n_1, batch):
    from sklearn.neural_network import MLPClassifier

    return _time_fit(MLPClassifier, X, y, epochs, n_1, batch)


def time_torch(X, y, epochs, n_1, batch, n_classes):
    import torch

    torch.manual_seed(0)
    m, n_x = X.shape
    X = X.tocsr()
    W1 = torch.nn.Parameter(torch.randn(n_x, n_1, dtype=torch.float64) * np.sqrt(2 / n_x))
    b1 = torch.nn.Parameter(torch.zeros(n_1, dtype=torch.float64))
    out = torch.nn.Linear(n_1, n_classes, dtype=torch.float64)
    params = [W1, b1, *out.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    labels = torch.from_numpy(y)
    order = np.random.default_rng(0)

    def batch_tensor(rows):
        part = X[rows].tocoo()
        index = torch.from_numpy(np.vstack([part.row, part.col]).astype(np.int64))
        return torch.sparse_coo_tensor(index, torch.from_numpy(part.data), part.shape)

    def epoch():
        perm = order.permutation(m)
        for first in range(0, m, batch):
            rows = perm[first:first + batch]
            Xb = batch_tensor(rows)
            optimizer.zero_grad()
            A1 = torch.relu(torch.sparse.mm(Xb, W1) + b1)
            loss = torch.nn.functional.cross_entropy(out(A1), labels[rows])
            loss.backward()
            optimizer.step()

    epoch()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=20000)
    parser.add_argument("--n-x", type=int, default=50000)
    parser.add_argument("--density", type=float, default=0.002)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dense", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[])
    args = parser.parse_args(argv)
    n_classes, n_1, batch = 20, 64, 200
    X, y = sparse_problem(args.m, args.n_x, args.density, n_classes)
    print(f"X {X.shape}, {X.nnz} nonzeros (density {X.nnz / np.prod(X.shape):.4f}), "
          f"[{args.n_x}, {n_1}, {n_classes}], Adam, batch {batch}, float64")
    rows = {}
    rows["fastbackprop (sparse)"] = time_ours(X, y, args.epochs, n_1, batch)
    if "sklearn" not in args.skip:
        rows["scikit-learn (sparse)"] = time_sklearn(X, y, args.epochs, n_1, batch)
    if "torch" not in args.skip:
        rows["PyTorch torch.sparse.mm"] = time_torch(X, y, args.epochs, n_1, batch, n_classes)
    if args.dense:
        rows["fastbackprop (densified)"] = time_ours(X.toarray(), y, args.epochs, n_1, batch)
    ours = rows["fastbackprop (sparse)"]
    print(f"{'contender':28s} {'s / epoch':>10s} {'/ ours':>8s}")
    for name, seconds in rows.items():
        print(f"{name:28s} {seconds:10.3f} {seconds / ours:8.2f}")


if __name__ == "__main__":
    main()
