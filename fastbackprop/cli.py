"""The ``fastbackprop`` command (also ``python -m fastbackprop``).

::

    fastbackprop train                       # the course's planar "flower" network
    fastbackprop train --data my.csv --layers 3,8,1 --activation relu --lr 0.05 \\
                       --iterations 2000 --save model.npz --plot cost.png
    fastbackprop predict --model model.npz --data new.csv --out predictions.csv
    fastbackprop bench ...                   # timings (fastbackprop.bench)
    fastbackprop warmup                      # compile the kernels into Numba's cache

Data files hold one example per row (see :mod:`fastbackprop.datasets`);
the model works on the course's columns.

Errors print one line, ``fastbackprop: error: ...``, and exit with status 2
for bad usage or data, 1 when training diverges or an optional package is
missing, and 130 on Ctrl-C. Importing this module does not import Numba.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time

from . import __version__, spec
from .validation import INITS

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: What ``fastbackprop train`` trains without options: the course's planar network.
DEFAULTS = {"activation": "tanh", "lr": 1.2, "iterations": 10000, "init": "scaled",
            "hidden_units": 4}


class CommandError(Exception):
    """An error reported as one line on stderr, exiting with ``code``."""

    def __init__(self, message, code=EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def main(argv=None):
    """Run the command with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    from .model import TrainingDivergedError

    try:
        return args.run(args)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except CommandError as e:
        return _fail(str(e), e.code)
    except TrainingDivergedError as e:
        what = "cost" if e.reason == "nonfinite_cost" else "parameters"
        return _fail(f"training diverged: the {what} became NaN or infinite at iteration "
                     f"{e.iteration}; try a smaller --lr", EXIT_FAILED)
    except (OSError, ValueError, TypeError) as e:
        return _fail(str(e), EXIT_USAGE)


def _fail(message, code):
    print(f"fastbackprop: error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def build_parser(argv=()):
    """The argument parser. The ``bench`` subcommand's own arguments (and its
    module) are loaded only when ``argv`` runs ``bench``."""
    parser = _Parser(
        prog="fastbackprop",
        description="Train the course's L-layer network on built-in data or your own file, "
                    "and predict with a saved model.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(commands)
    _add_predict(commands)
    _add_bench(commands, load=_command(argv) == "bench")
    _add_warmup(commands)
    return parser


def _command(argv):
    """The subcommand named in ``argv``: its first argument that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def _add_train(commands):
    p = commands.add_parser(
        "train", help="train a model and report its training accuracy",
        description="Train [LINEAR -> g] x (L-1) -> LINEAR -> SIGMOID by gradient descent. "
                    "Without --data: the course's planar 'flower' data and network.",
    )
    p.add_argument("--data", metavar="FILE",
                   help="CSV with a header (one example per row; label column 0/1) or .npz "
                        "holding X (m, n_x) and Y (m,); default: the built-in planar data")
    p.add_argument("--target", metavar="COLUMN",
                   help="name of the CSV's label column (default: the last column)")
    p.add_argument("--layers", type=_layers, metavar="N_X,...,N_Y",
                   help="layer sizes, e.g. 2,4,1; the first must be the number of features "
                        f"and the last the number of labels (default: n_x,{DEFAULTS['hidden_units']},n_y)")
    p.add_argument("--activation", choices=tuple(spec.ACTIVATIONS),
                   default=DEFAULTS["activation"],
                   help="hidden layers' g (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=DEFAULTS["lr"],
                   help="learning rate alpha (default: %(default)s)")
    p.add_argument("--iterations", type=_positive_int, default=DEFAULTS["iterations"],
                   help="gradient-descent steps (default: %(default)s)")
    p.add_argument("--init", choices=INITS, default=DEFAULTS["init"],
                   help="initialisation of W (default: %(default)s)")
    p.add_argument("--seed", type=_seed, default=None,
                   help="seed of the initialisation (default: a random one)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="(default: %(default)s)")
    p.add_argument("--backend", choices=spec.BACKENDS, default="numba",
                   help="compiled kernels or the NumPy reference (default: %(default)s)")
    p.add_argument("--cost-every", type=_positive_int, default=100, metavar="N",
                   help="record the cost every N iterations (default: %(default)s)")
    p.add_argument("--save", metavar="MODEL.npz", help="write the trained model here")
    p.add_argument("--plot", metavar="COST.png",
                   help="draw the cost curve to this image (needs matplotlib: "
                        "pip install 'fastbackprop[plot]')")
    p.set_defaults(run=run_train)


def _add_predict(commands):
    p = commands.add_parser(
        "predict", help="predict with a saved model",
        description="Write, for each example (row) of FILE, the probability that its label is "
                    "1 and the 0/1 prediction. FILE has the model's feature columns, and may "
                    "also have the label column: then the accuracy is reported too.",
    )
    p.add_argument("--model", required=True, metavar="MODEL.npz",
                   help="a model written by 'fastbackprop train --save'")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="CSV with a header, one example per row, or .npz holding X (m, n_x)")
    p.add_argument("--target", metavar="COLUMN",
                   help="the CSV's label column, if it has one (default: the last column "
                        "when there is one more column than features)")
    p.add_argument("--out", metavar="PREDICTIONS.csv",
                   help="write the predictions here (default: print them)")
    p.set_defaults(run=run_predict)


def _add_bench(commands, load):
    p = commands.add_parser("bench", help="time the kernels against the reference",
                            description="Time the Numba kernels against the NumPy reference.")
    if load:
        from . import bench

        bench.add_arguments(p)
        p.set_defaults(run=bench.run)


def _add_warmup(commands):
    p = commands.add_parser(
        "warmup", help="compile the numba kernels into the on-disk cache",
        description="Compile (or load from Numba's on-disk cache) the kernels that training "
                    "and prediction use, so that later runs start in milliseconds.",
    )
    p.add_argument("--dtype", choices=("float64", "float32"), action="append",
                   help="only this dtype (repeatable; default: both)")
    p.add_argument("--activation", choices=tuple(spec.ACTIVATIONS), action="append",
                   help="only this hidden activation (repeatable; default: all)")
    p.set_defaults(run=run_warmup)


def _layers(text):
    try:
        dims = [int(part) for part in text.split(",")]
    except ValueError:
        dims = []
    if len(dims) < 2 or min(dims) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 2,4,1; got {text!r}"
        )
    return dims


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}")
    return value


def _int_at_least(minimum):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


# ---------------------------------------------------------------------------
# fastbackprop train
# ---------------------------------------------------------------------------


def run_train(args):
    """``fastbackprop train``: load, train with a progress bar, report, save, plot."""
    from .model import Model

    for option, path in (("--save", args.save), ("--plot", args.plot)):
        _check_output_directory(option, path)
    if args.plot:
        _check_plotting(args.plot)
    X, Y, source = _training_data(args.data, args.target)
    layers = _fit_layers(args.layers, X, Y)
    model = Model(layers, hidden_activation=args.activation, learning_rate=args.lr,
                  n_iterations=args.iterations, init=args.init, seed=args.seed,
                  dtype=args.dtype, backend=args.backend, cost_every=args.cost_every)
    print(f"data: {source}: {X.shape[1]} examples, {X.shape[0]} features")
    print(f"model: {model!r}")
    if args.backend == "numba":
        _warm_up(args.dtype, args.activation)
    sys.stdout.flush()  # before the progress bar on stderr
    with _progress(args.iterations) as callback:
        started = time.perf_counter()
        model.fit(X, Y, callback=callback)
        elapsed = time.perf_counter() - started
    print(f"training accuracy: {model.score(X, Y):.1%}")
    print(f"time per iteration: {_duration(elapsed / model.n_iter_)} "
          f"({model.n_iter_} iterations in {elapsed:.3g} s; {args.backend} backend, {args.dtype})")
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}")
    if args.plot:
        _plot_costs(model, args.plot)
        print(f"saved the cost curve to {args.plot}")
    return 0


def _training_data(path, target):
    """``X`` ``(n_x, m)``, ``Y`` ``(n_y, m)`` and a description of where they came from."""
    from . import datasets

    if path is None:
        if target is not None:
            raise CommandError("--target needs --data")
        X, Y = datasets.load_planar_dataset()
        return X, Y, "planar flower (built-in)"
    X, Y = datasets.load_file(path, target)
    return X, Y, path


def _fit_layers(layers, X, Y):
    """``--layers`` checked against the data, or the default ``[n_x, 4, n_y]``."""
    n_x, n_y = X.shape[0], Y.shape[0]
    if layers is None:
        return [n_x, DEFAULTS["hidden_units"], n_y]
    text = ",".join(map(str, layers))
    if layers[0] != n_x:
        raise CommandError(
            f"--layers {text}: the first entry must be the number of features in the data, {n_x}"
        )
    if layers[-1] != n_y:
        raise CommandError(
            f"--layers {text}: the last entry must be the number of labels in the data, {n_y}"
        )
    return layers


def _warm_up(dtype, activation):
    """Compile the Numba kernels (or load them from Numba's cache) before the timed fit.

    A note goes to stderr if that takes more than a second (a first run).
    """
    from .warm import warmup

    note = threading.Timer(1.0, print, ["compiling the numba kernels (the first run only) ..."],
                           {"file": sys.stderr, "flush": True})
    note.start()
    try:
        warmup(dtypes=(dtype,), hidden_activations=(activation,))
    finally:
        note.cancel()


@contextlib.contextmanager
def _progress(total):
    """A ``callback(n_iter, cost)`` showing progress on stderr: a tqdm bar, else lines."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield _progress_lines(total)
        return
    with tqdm(total=total, desc="training", unit="it", file=sys.stderr,
              dynamic_ncols=True) as bar:

        def update(n_iter, cost):
            bar.set_postfix(cost=f"{cost:.6f}", refresh=False)
            bar.update(n_iter - bar.n)

        yield update


def _progress_lines(total, every=1.0):
    """The fallback without tqdm: one line per chunk, at most one per ``every`` seconds."""
    last = [-float("inf")]

    def update(n_iter, cost):
        now = time.perf_counter()
        if now - last[0] >= every or n_iter == total:
            print(f"iteration {n_iter}/{total}: cost {cost:.6f}", file=sys.stderr, flush=True)
            last[0] = now

    return update


def _duration(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _check_output_directory(option, path):
    if path:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise CommandError(f"{option} {path}: directory {directory!r} does not exist")


def _check_plotting(path):
    """Fail before training if matplotlib is missing or cannot write ``path``'s format."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CommandError(
            "--plot needs matplotlib, which is not installed: pip install 'fastbackprop[plot]'",
            EXIT_FAILED,
        ) from None
    formats = FigureCanvasBase.get_supported_filetypes()
    if _image_format(path) not in formats:
        raise CommandError(
            f"--plot {path}: unknown image format; use one of {', '.join(sorted(formats))}"
        )


def _image_format(path):
    return os.path.splitext(path)[1][1:].lower()


def _plot_costs(model, path):
    """Draw ``model.costs_`` against the iteration number into ``path`` (written atomically)."""
    import numpy as np
    from matplotlib.figure import Figure

    from ._files import write_atomically

    figure = Figure(figsize=(6, 4), layout="tight")
    axes = figure.subplots()
    axes.plot(np.arange(len(model.costs_)) * model.cost_every, model.costs_)
    axes.set_xlabel("iteration")
    axes.set_ylabel("cost J")
    axes.set_title(f"layers {model.layer_dims}, {model.hidden_activation}, "
                   f"learning rate {model.learning_rate:g}")
    write_atomically(path, lambda f: figure.savefig(f, format=_image_format(path)))


def run_warmup(args):
    """``fastbackprop warmup``: compile or load every kernel; print the time each took."""
    from .warm import warmup

    timings = warmup(dtypes=args.dtype or ("float64", "float32"),
                     hidden_activations=args.activation or tuple(spec.ACTIVATIONS))
    for key, seconds in timings.items():
        print(f"{' '.join(key)}: {_duration(seconds)}")
    return 0


# ---------------------------------------------------------------------------
# fastbackprop predict
# ---------------------------------------------------------------------------


def run_predict(args):
    """``fastbackprop predict``: probabilities and 0/1 predictions, one line per example."""
    from ._files import write_atomically
    from .datasets import load_features
    from .model import Model

    _check_output_directory("--out", args.out)
    model = Model.load(args.model)
    X, Y = load_features(args.data, model.layer_dims[0], args.target)
    text = predictions_csv(model.predict_proba(X))
    report = sys.stdout
    if args.out:
        write_atomically(args.out, lambda f: f.write(text.encode()))
        print(f"wrote {X.shape[1]} predictions to {args.out}")
    else:
        sys.stdout.write(text)
        report = sys.stderr  # keep stdout a clean CSV
    if Y is not None:
        print(f"accuracy: {model.score(X, Y):.1%}", file=report)
    return 0


def predictions_csv(AL):
    """CSV text, one line per example (column of ``AL`` ``(n_y, m)``): probabilities, then 0/1.

    Columns ``probability,prediction`` when ``n_y = 1``, else
    ``probability_1, ..., probability_n_y, prediction_1, ...``.
    """
    n_y = AL.shape[0]
    suffixes = [""] if n_y == 1 else [f"_{k + 1}" for k in range(n_y)]
    header = [f"probability{s}" for s in suffixes] + [f"prediction{s}" for s in suffixes]
    lines = [",".join(header)]
    for column in AL.T:
        lines.append(",".join([f"{p:.10g}" for p in column] + [str(int(p > 0.5)) for p in column]))
    return "\n".join(lines) + "\n"
