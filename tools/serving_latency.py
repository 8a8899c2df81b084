"""Serving latency: one example and a batch, ours against scikit-learn, PyTorch and onnxruntime.

    python tools/serving_latency.py                      # the table in docs/serving.md
    python tools/serving_latency.py --repeats 15 --rows 10000 --dtype float32

The network is a ``[64, 100, 10]`` relu/softmax classifier fitted on digits
(scikit-learn's ``MLPClassifier`` and ours, same data, same
hyperparameters); the batch is ``--rows`` standard-normal rows. Every row of
the table is measured in this one run, on one thread: BLAS limited to one
thread by threadpoolctl, onnxruntime with ``intra_op_num_threads=1`` and
``inter_op_num_threads=1``, ``torch.set_num_threads(1)``. Each time is the
median over ``--repeats`` repeats of a loop long enough to take about
``--target`` seconds (``timeit``), after one untimed call (compilation,
caches). Rows whose library is not importable are printed as skipped.

The rows:

* scikit-learn ``predict_proba`` (its ``MLPClassifier``);
* ``fastbackprop.sklearn.MLPClassifier.predict_proba`` (every check
  scikit-learn's makes) and ``predict``;
* ``fastbackprop.Model.predict_proba`` of the same network, examples as
  columns (the course's layout);
* the forward pass alone (``Network.probabilities``: no input checks);
* PyTorch eager, the same weights as ``nn.Sequential`` under ``inference_mode``;
* onnxruntime on skl2onnx's graph of scikit-learn's classifier (``zipmap`` off),
  and on our own export (``Model.to_onnx(layout="rows")``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import statistics
import sys
import timeit
import warnings


def median_time(call, repeats, target):
    """Median seconds per ``call()`` over ``repeats`` timed loops of about ``target`` s each."""
    call()
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    number = max(1, int(number * target / 0.2))
    return statistics.median(t / number for t in timer.repeat(repeat=repeats, number=number))


def fitted_pair(dtype):
    """scikit-learn's and our ``MLPClassifier`` fitted alike on standardised digits."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as Theirs

    from fastbackprop.sklearn import MLPClassifier as Ours

    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(axis=0)) / (X.std(axis=0) + 1)).astype(dtype)
    settings = dict(hidden_layer_sizes=(100,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # ours on numba: the compiled prediction (backend="auto" may fit, and then predict,
        # on NumPy in a process that has compiled nothing yet)
        return X, Theirs(**settings).fit(X, y), Ours(**settings, backend="numba").fit(X, y)


def model_of(ours):
    """A fitted :class:`fastbackprop.Model` holding our classifier's weights (columns layout)."""
    from fastbackprop import Model

    W = {f"W{l}": c.T.copy() for l, c in enumerate(ours.coefs_, 1)}
    b = {f"b{l}": i.reshape(-1, 1).copy() for l, i in enumerate(ours.intercepts_, 1)}
    dims = [ours.coefs_[0].shape[0], *(c.shape[1] for c in ours.coefs_)]
    model = Model(dims, "relu", "softmax", dtype=ours.coefs_[0].dtype.name)
    model.parameters_ = {**W, **b}
    model.n_iter_ = 0
    # unpickled, a model packs its parameters once and owns them, as a fitted one does
    # (assigned arrays are checked and packed again on every call)
    return pickle.loads(pickle.dumps(model))


def torch_rows(ours):
    """PyTorch eager: ``(name, predict(X_rows))``, or None when torch is not importable."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    dtype = getattr(torch, ours.coefs_[0].dtype.name)
    layers = []
    for l, (W, b) in enumerate(zip(ours.coefs_, ours.intercepts_)):
        linear = torch.nn.Linear(*W.shape, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b.copy()))
        layers += [linear, torch.nn.ReLU() if l < len(ours.coefs_) - 1 else torch.nn.Softmax(1)]
    net = torch.nn.Sequential(*layers).eval()

    def predict(X):
        with torch.inference_mode():
            return net(torch.from_numpy(X)).numpy()
    return predict


def onnx_sessions(theirs, model, X):
    """``{name: predict(X_rows)}`` for onnxruntime on skl2onnx's graph and on ours."""
    try:
        import onnxruntime
    except ImportError:
        return {}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1

    def session(proto):
        s = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                         providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        outputs = [o.name for o in s.get_outputs()]
        output = "probabilities" if "probabilities" in outputs else outputs[0]
        return lambda rows: s.run([output], {name: rows})[0]

    found = {}
    try:
        from skl2onnx import to_onnx

        found["onnxruntime, skl2onnx graph"] = session(
            to_onnx(theirs, X[:1], options={id(theirs): {"zipmap": False}}))
    except ImportError:
        pass
    try:
        found["onnxruntime, our export (rows)"] = session(model.to_onnx(layout="rows"))
    except ImportError:
        pass
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed loops per row (9)")
    parser.add_argument("--target", type=float, default=0.2,
                        help="seconds per timed loop (0.2)")
    parser.add_argument("--rows", type=int, default=10_000, help="the batch's rows (10000)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args(argv)

    import numpy as np
    import sklearn
    from threadpoolctl import threadpool_limits

    import fastbackprop

    X, theirs, ours = fitted_pair(args.dtype)
    model = model_of(ours)
    network = ours._network
    one = np.ascontiguousarray(X[:1])
    column = np.ascontiguousarray(one.T)
    batch = np.random.default_rng(0).standard_normal((args.rows, X.shape[1])).astype(args.dtype)
    batch_columns = np.ascontiguousarray(batch.T)

    assert np.allclose(ours.predict_proba(one), model.predict_proba(column).T)
    rows = [
        ("scikit-learn MLPClassifier.predict_proba", theirs.predict_proba),
        ("fastbackprop.sklearn predict_proba", ours.predict_proba),
        ("fastbackprop.sklearn predict", ours.predict),
        ("fastbackprop Model.predict_proba (columns)", model.predict_proba),
        ("forward pass alone (Network.probabilities, rows)",
         lambda R: network.probabilities(R, rows=True)),
    ]
    predict = torch_rows(ours)
    rows.append(("PyTorch eager (inference_mode)", predict))
    for name, run in onnx_sessions(theirs, model, X).items():
        rows.append((name, run))

    for _, run in rows:  # first calls: compiled kernels, and SciPy's BLAS loaded, which
        if run is not None:  # threadpoolctl limits only once it is loaded
            run(column if run == model.predict_proba else one)
    from fastbackprop.bench import cpu_model

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); one thread everywhere")
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, "
          f"scikit-learn {sklearn.__version__}, fastbackprop {fastbackprop.__version__}")
    print(f"network [64, 100, 10] relu/softmax, {args.dtype}; median of {args.repeats} "
          f"repeats; command: python tools/serving_latency.py {' '.join(argv or sys.argv[1:])}")
    print()
    print(f"| {'':50} | {'1 row':>9} | {f'{args.rows:,} rows':>12} |")
    print(f"| {'-' * 50} | {'-' * 8}: | {'-' * 11}: |")
    with threadpool_limits(1):
        for name, run in rows:
            if run is None:
                print(f"| {name:50} | {'skipped':>9} | {'skipped':>12} |")
                continue
            inputs = (column, batch_columns) if run == model.predict_proba else (one, batch)
            single = median_time(lambda: run(inputs[0]), args.repeats, args.target)
            many = median_time(lambda: run(inputs[1]), args.repeats, args.target)
            print(f"| {name:50} | {single * 1e6:6.1f} us | {many * 1e3:9.2f} ms |", flush=True)


if __name__ == "__main__":
    main()
