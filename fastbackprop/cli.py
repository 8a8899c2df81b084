"""The ``fastbackprop`` command (also ``python -m fastbackprop``).

::

    fastbackprop train                       # the course's planar "flower" network
    fastbackprop train --data spiral --output softmax --plot-regions regions.png
    fastbackprop train --data my.csv --layers 3,8,1 --activation relu --lr 0.05 \\
                       --epochs 2000 --save model.npz --plot cost.png
    fastbackprop train --data digits.csv --output softmax --optimizer adam --batch-size 64 \\
                       --epochs 10 --lr 0.001
    fastbackprop train --data iris.csv --output softmax --save iris.npz   # class names
    fastbackprop train --data prices.csv --output linear                  # regression
    fastbackprop predict --model model.npz --data new.csv --out predictions.csv
    fastbackprop export --model model.npz --onnx model.onnx   # for onnxruntime (serving)
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
import csv
import io
import os
import sys
import threading
import time

import numpy as np

from . import __version__, spec
from .compile_clock import CompileClock
from .validation import INITS

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: What ``fastbackprop train`` trains without options: the course's planar network.
DEFAULTS = {"activation": "tanh", "lr": 1.2, "iterations": 10000, "init": "scaled",
            "hidden_units": 4}

#: Where another output layer's defaults differ from :data:`DEFAULTS`. Softmax:
#: at learning rate 1.2 the cost oscillates on the spiral (so rounding decides
#: where training ends); 10 tanh units at 0.5 descend steadily to 99.3% for
#: every seed tried. Linear: 1.2 diverges on regression targets; 0.03 descends
#: steadily on targets up to about ten times the features' size (larger ones:
#: scale them, or lower --lr), and 0.01 learns too slowly for 10000 iterations.
#: Exp: the linear output's 0.03 (its gradient e^z - y grows with the counts, as the
#: linear output's with the targets).
#: What the progress shows while the kernels compile.
COMPILING = "compiling the numba kernels (the first run only) ..."
#: Seconds a compilation runs before the progress bar says so (loading from the cache
#: takes milliseconds, and would only make the label flicker).
LABEL_AFTER = 0.2

OUTPUT_DEFAULTS = {"softmax": {"lr": 0.5, "hidden_units": 10}, "linear": {"lr": 0.03},
                   "exp": {"lr": 0.03}}


def default(name, output):
    """The default of ``name`` (a key of :data:`DEFAULTS`) for the output layer ``output``."""
    return OUTPUT_DEFAULTS.get(output, {}).get(name, DEFAULTS[name])


#: What the label column holds for each output layer (the loaders' ``labels``).
LABELS = {"sigmoid": "binary", "softmax": "classes", "linear": "real", "exp": "real"}

#: The built-in data sets ``--data NAME`` selects (when no file of that name exists).
BUILTIN = {"planar": "planar flower (built-in)", "spiral": "spiral (built-in)"}


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
        return _fail(f"training diverged: the {what} became NaN or infinite at epoch "
                     f"{e.epoch}; try a smaller --lr", EXIT_FAILED)
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
    _add_export(commands)
    _add_bench(commands, load=_command(argv) == "bench")
    _add_warmup(commands)
    return parser


def _command(argv):
    """The subcommand named in ``argv``: its first argument that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def _add_train(commands):
    p = commands.add_parser(
        "train", help="train a model and report its training accuracy (or R²)",
        description="Train [LINEAR -> g] x (L-1) -> LINEAR -> OUTPUT (sigmoid, softmax, "
                    "linear or exp) by gradient descent. Without --data: the course's planar "
                    "'flower' data and network.",
    )
    p.add_argument("--data", metavar="FILE",
                   help="CSV with a header (one example per row; the label column holds 0/1, "
                        "class names or numbers, as --output needs) or .npz holding X (m, n_x) "
                        "and Y (m,); or a built-in data set, 'planar' or 'spiral' (used when "
                        "no file of that name exists); default: the built-in planar data")
    p.add_argument("--target", metavar="COLUMN",
                   help="name of the CSV's label column (default: the last column)")
    p.add_argument("--labels", metavar="FILE", dest="labels_file",
                   help="the labels of a sparse --data .npz (written by scipy.sparse.save_npz, "
                        "one example per row): an .npy array or one label per line after a "
                        "header line. An svmlight/libsvm --data file (.svm, .svmlight, "
                        ".libsvm) holds its labels. Sparse data train sparse")
    p.add_argument("--output", choices=tuple(spec.OUTPUTS), default="sigmoid",
                   help="output layer: sigmoid (0/1 labels), softmax (one of several classes), "
                        "linear (real numbers: regression) or exp (counts or rates >= 0: "
                        "Poisson regression, A = exp(Z)) (default: %(default)s)")
    p.add_argument("--layers", type=_layers, metavar="N_X,...,N_Y",
                   help="layer sizes, e.g. 2,4,1; the first must be the number of features "
                        "and the last the number of labels (with --output softmax: of classes) "
                        f"(default: n_x,{DEFAULTS['hidden_units']},n_y; "
                        f"n_x,{default('hidden_units', 'softmax')},n_y with --output softmax)")
    p.add_argument("--activation", choices=tuple(spec.ACTIVATIONS),
                   default=DEFAULTS["activation"],
                   help="hidden layers' g (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"learning rate alpha (default: {DEFAULTS['lr']}; "
                        f"{default('lr', 'softmax')} with --output softmax, "
                        f"{default('lr', 'linear')} with --output linear or exp)")
    p.add_argument("--epochs", "--iterations", dest="epochs", type=_positive_int,
                   default=DEFAULTS["iterations"], metavar="N",
                   help="epochs (passes over the data); with full batches each is one "
                        "gradient-descent step (default: %(default)s)")
    p.add_argument("--optimizer", choices=tuple(spec.OPTIMIZERS), default="gd",
                   help="the course's gd, momentum, rmsprop or adam, or scikit-learn's "
                        "sgd_momentum, nesterov or adam_folded (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                   help="columns per mini-batch (default: the whole data, one step per epoch)")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                   help="keep the columns in order (mini-batches are shuffled every epoch "
                        "by default, from --seed)")
    p.add_argument("--beta", type=float, default=0.9, help="momentum's beta (default: 0.9)")
    p.add_argument("--beta1", type=float, default=0.9, help="Adam's beta1 (default: 0.9)")
    p.add_argument("--beta2", type=float, default=0.999,
                   help="Adam's and RMSprop's beta2 (default: 0.999)")
    p.add_argument("--epsilon", type=float, default=1e-8,
                   help="Adam's and RMSprop's epsilon (default: 1e-8)")
    p.add_argument("--decay-rate", type=float, default=0.0, metavar="R",
                   help="learning-rate decay: alpha = lr / (1 + R * epoch) (default: 0, none)")
    p.add_argument("--time-interval", type=_positive_int, default=None, metavar="N",
                   help="decay every N epochs: alpha = lr / (1 + R * floor(epoch / N))")
    p.add_argument("--l2", type=float, default=0.0, metavar="LAMBDA",
                   help="L2 regularisation: the cost gains LAMBDA/(2m) sum ||W||^2 (default: 0)")
    p.add_argument("--keep-prob", type=_keep_probs, default=1.0, metavar="P[,P...]",
                   help="inverted dropout on the hidden layers: the probability of keeping a "
                        "unit, one for all or one per hidden layer (default: 1, no dropout)")
    p.add_argument("--batch-norm", action="store_true",
                   help="batch normalisation in every hidden layer: each unit's Z normalised "
                        "over the batch, then gamma Z_hat + beta (b dropped); prediction uses "
                        "the running statistics")
    p.add_argument("--batch-norm-momentum", type=float, default=0.9, metavar="BETA",
                   help="the running statistics' average: running = BETA running + (1 - BETA) "
                        "batch (default: 0.9, PyTorch's momentum=0.1)")
    p.add_argument("--batch-norm-epsilon", type=float, default=1e-5, metavar="EPS",
                   help="the epsilon of sqrt(sigma2 + EPS) (default: 1e-5)")
    p.add_argument("--threads", type=int, default=None, metavar="P",
                   help="split every step between P threads (default: the cores, where the "
                        "batch is large enough; 1: one thread)")
    p.add_argument("--validation-fraction", type=float, default=None, metavar="F",
                   help="hold out this share of the examples (drawn with --seed, stratified "
                        "by class) and report the model's cost and score on them "
                        "(default: none; 0.1 with --early-stopping)")
    p.add_argument("--early-stopping", action="store_true",
                   help="stop when the validation cost has not improved for --patience epochs, "
                        "and keep the best epoch's model")
    p.add_argument("--patience", type=_positive_int, default=10, metavar="N",
                   help="epochs without improvement before early stopping (default: 10)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="train on the Dask cluster whose scheduler is at ADDRESS, the data in "
                        "one block per worker thread (needs the dask extra)")
    p.add_argument("--init", choices=INITS, default=DEFAULTS["init"],
                   help="initialisation of W (default: %(default)s)")
    p.add_argument("--seed", type=_seed, default=None,
                   help="seed of the initialisation (default: a random one)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="(default: %(default)s)")
    p.add_argument("--backend", choices=(*spec.BACKENDS, "auto"), default="auto",
                   help="numba (compiled kernels), numpy (the NumPy reference) or auto: numba, "
                        "except on a short first run of a configuration, which trains on "
                        "numpy while its kernels compile in the background for the next run "
                        "(FASTBACKPROP_BACKGROUND_COMPILE=0: never) (default: %(default)s)")
    p.add_argument("--cost-every", type=_positive_int, default=100, metavar="N",
                   help="record the cost every N epochs (default: %(default)s)")
    p.add_argument("--save", metavar="MODEL.npz", help="write the trained model here")
    p.add_argument("--plot", metavar="COST.png",
                   help="draw the cost curve to this image (needs matplotlib: "
                        "pip install 'fastbackprop[plot]')")
    p.add_argument("--plot-regions", metavar="REGIONS.png",
                   help="draw the trained classifier's decision regions and the training "
                        "points to this image; data with exactly 2 features, sigmoid or "
                        "softmax output (needs matplotlib)")
    p.set_defaults(run=run_train)


def _add_predict(commands):
    p = commands.add_parser(
        "predict", help="predict with a saved model",
        description="Write a line for each example (row) of FILE: for a sigmoid model the "
                    "probability that its label is 1 and the 0/1 prediction; for softmax one "
                    "probability per class (p_NAME) and the predicted class name; for linear "
                    "and exp the predicted value(s). FILE has the model's feature columns, and may "
                    "also have the label column: then the accuracy (or R²) is reported too.",
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


def _add_export(commands):
    p = commands.add_parser(
        "export", help="write a saved model as an ONNX file, to serve with onnxruntime",
        description="Write the network of a model saved by 'fastbackprop train --save' as an "
                    "ONNX file (needs the onnx extra): input X, output A_L (the probabilities, "
                    "or a linear or exp output's values). See docs/serving.md.",
    )
    p.add_argument("--model", required=True, metavar="MODEL.npz",
                   help="a model written by 'fastbackprop train --save'")
    p.add_argument("--onnx", required=True, metavar="MODEL.onnx",
                   help="the ONNX file to write (replaced atomically if it exists)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="the graph's dtype (default: the model's)")
    p.add_argument("--layout", choices=("columns", "rows"), default="columns",
                   help="columns: X (n_x, m) -> A_L (n_y, m), one example per column, the "
                        "course's; rows: X (m, n_x) -> A_L (m, n_y), one example per row "
                        "(default: %(default)s)")
    p.set_defaults(run=run_export)


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
    p.add_argument("--output", choices=tuple(spec.OUTPUTS), action="append",
                   help="this output layer (repeatable; default: sigmoid)")
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


def _keep_probs(text):
    """``--keep-prob 0.8`` or ``0.8,0.5`` (one per hidden layer)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or numbers separated by commas; "
                                         f"got {text!r}") from None
    return values[0] if len(values) == 1 else values


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

    for option, path in (("--save", args.save), ("--plot", args.plot),
                         ("--plot-regions", args.plot_regions)):
        _check_output_directory(option, path)
    if args.plot_regions and spec.OUTPUTS[args.output].regression:
        raise CommandError("--plot-regions draws a classifier's decision regions; "
                           f"{'an' if args.output == 'exp' else 'a'} {args.output} output "
                           "(regression) has none")
    for option, path in (("--plot", args.plot), ("--plot-regions", args.plot_regions)):
        if path:
            _check_plotting(path, option)
    data = _training_data(args.data, args.target, args.output, args.labels_file)
    X = data.X
    if args.plot_regions:
        _check_regions(data)
    layers = _fit_layers(args.layers, X, data.n_out, args.output)
    model = Model(layers, hidden_activation=args.activation, output_activation=args.output,
                  learning_rate=_learning_rate(args), n_epochs=args.epochs, init=args.init,
                  seed=args.seed, dtype=args.dtype,
                  backend="numba" if args.backend == "auto" else args.backend,
                  cost_every=args.cost_every, optimizer=args.optimizer,
                  batch_size=args.batch_size, shuffle=args.shuffle, beta=args.beta,
                  beta1=args.beta1, beta2=args.beta2, epsilon=args.epsilon,
                  decay_rate=args.decay_rate, time_interval=args.time_interval, l2=args.l2,
                  keep_prob=args.keep_prob, early_stopping=args.early_stopping,
                  patience=args.patience, n_threads=args.threads,
                  batch_norm=args.batch_norm, batch_norm_momentum=args.batch_norm_momentum,
                  batch_norm_epsilon=args.batch_norm_epsilon,
                  **({} if args.validation_fraction is None
                     else {"validation_fraction": args.validation_fraction}))
    X_fit, Y_fit, validation = _held_out(model, X, data.Y, args)
    plan = _backend_plan(args, model, X_fit, Y_fit, validation)
    print(f"data: {data.source}: {X.shape[1]} examples, {X.shape[0]} features{data.note}")
    print(f"model: {model!r}")
    sys.stdout.flush()  # before the progress bar on stderr
    with _compile_clock(args.backend) as clock, _progress(args.epochs, clock) as callback:
        started, compiled = time.perf_counter(), clock.seconds  # Numba's start-up before
        if args.scheduler:
            try:
                from . import dask as fdask
            except ImportError:
                raise CommandError("--scheduler needs Dask: pip install 'fastbackprop[dask]'")
            fdask.fit_with_scheduler(model, X_fit, Y_fit, args.scheduler, callback=callback,
                                     validation_data=validation)
        else:
            model.fit(X_fit, Y_fit, callback=callback, validation_data=validation)
        elapsed = time.perf_counter() - started - (clock.seconds - compiled)
        scores = [_score_line("training ", model, X_fit, Y_fit)]
        if validation is not None:
            scores.append(_score_line("validation ", model, *validation))
    print("\n".join(scores))
    if validation is not None and args.early_stopping:
        print(f"early stopping: kept epoch {model.best_epoch_} of {model.n_iter_}")
    print(f"time per epoch: {_duration(elapsed / model.n_iter_)} "
          f"({model.n_iter_} epochs, {model.t_} updates, in {elapsed:.3g} s; "
          f"{args.backend} backend, {args.dtype})")
    if args.backend == "numba":
        print(_compile_line(clock))
    if args.save:
        if data.classes is not None:
            model.classes_ = data.classes
        _save(model, args.save, plan)
        print(f"saved the model to {args.save}")
    if args.plot:
        _plot_costs(model, args.plot)
        print(f"saved the cost curve to {args.plot}")
    if args.plot_regions:
        from .plotting import plot_decision_regions

        plot_decision_regions(model, X, data.y, args.plot_regions, classes=data.classes,
                              title=f"{data.source}: layers {model.layer_dims}, "
                                    f"{model.hidden_activation}, {model.output_activation}")
        print(f"saved the decision regions to {args.plot_regions}")
    if plan is not None and plan.backend == "numba":
        from .first_run import finished

        finished(plan)  # the kernels are in the cache now: the marker says so
    return 0


def _save(model, path, plan):
    """``model.save(path)``; a model that ``--backend auto`` trained on NumPy is saved with the
    numba backend, the one asked for: the file does not depend on the state of the cache."""
    if plan is None or plan.note is None:
        model.save(path)
        return
    model.set_params(backend="numba")
    try:
        model.save(path)
    finally:
        model.set_params(backend="numpy")


def _backend_plan(args, model, X, Y, validation):
    """The backend of this run (``--backend auto``: :mod:`fastbackprop.first_run`'s choice,
    its background compile started), set in ``args`` and ``model``; the plan (None with
    ``--backend numpy``). A note on stderr says when auto trains on NumPy."""
    if args.backend == "numpy":
        return None
    from .first_run import prepare

    plan = prepare(args.backend, model._hyperparameters(), X, Y, validation,
                   distributed=bool(args.scheduler))
    args.backend = plan.backend
    model.set_params(backend=plan.backend)
    if plan.note:
        print(plan.note, file=sys.stderr)
    return plan


def _learning_rate(args):
    """``--lr``, or its default for the output layer."""
    return default("lr", args.output) if args.lr is None else args.lr


def _score_line(prefix, model, X, Y):
    """``training accuracy: 97.3%`` (sigmoid, softmax) or ``training R²: 0.912`` (linear,
    exp)."""
    score = model.score(X, Y)
    if spec.OUTPUTS[model.output_activation].regression:
        return f"{prefix}R²: {score:.3f}"
    return f"{prefix}accuracy: {score:.1%}"


class _Data:
    """Training data as the output layer takes it.

    ``X`` ``(n_x, m)``; ``Y``: what ``Model.fit`` takes (``(n_y, m)`` of 0/1
    or reals, or ``(m,)`` int64 class indices for softmax); ``y`` ``(m,)``
    the class of each example for drawing (None for linear and exp); ``classes``
    the sorted class names for softmax (else None); ``n_out`` the last
    layer's size; ``source`` and ``note`` describe it.
    """

    def __init__(self, X, Y, source, output, classes=None):
        self.X, self.Y, self.source, self.classes = X, Y, source, classes
        self.note = ""
        if output == "softmax":
            self.n_out, self.y = len(classes), Y
            names = ", ".join(_name(c) for c in classes[:10])
            if len(classes) > 10:
                names += ", ..."
            self.note = f", {len(classes)} classes: {names}"
        else:
            self.n_out = Y.shape[0]
            self.y = Y[0].astype(np.int64) if output == "sigmoid" and Y.shape[0] == 1 else None


def _held_out(model, X, Y, args):
    """``X, Y`` to train on and the held-out ``(X_val, Y_val)`` of ``--validation-fraction``
    (or ``--early-stopping``), else ``X, Y, None``."""
    from .model import held_out_columns
    from .validation import check_labels

    if args.validation_fraction is None and not args.early_stopping:
        return X, Y, None
    hp = model._hyperparameters()
    labels = check_labels(Y, hp["output_activation"], n_y=hp["layer_dims"][-1], m=X.shape[1])
    held = held_out_columns(labels, hp["validation_fraction"],
                            0 if args.seed is None else args.seed, hp["output_activation"])
    kept = np.setdiff1d(np.arange(X.shape[1]), held)
    if held.size == 0 or kept.size == 0:
        raise CommandError(f"--validation-fraction {hp['validation_fraction']} of "
                           f"{X.shape[1]} examples leaves none to validate on or none to train on")
    return X[:, kept], labels[:, kept], (X[:, held], labels[:, held])


def _training_data(path, target, output, labels_path=None):
    """The training data (a :class:`_Data`) from a file or a built-in data set."""
    from . import datasets

    builtin = _builtin_name(path)
    if builtin is None:
        try:
            loaded = datasets.load_file(path, target, LABELS[output], labels_path)
        except datasets.LabelError as e:
            if output == "softmax":
                raise
            raise CommandError(f"{e} (for classes, use --output softmax)") from None
        if output == "softmax":
            X, y, classes = loaded
            if len(classes) < 2:
                raise CommandError(f"--output softmax needs at least 2 classes; the labels of "
                                   f"{path} are all {_name(classes[0])!r}")
            return _Data(X, y, path, output, classes)
        return _Data(*loaded, path, output)
    if labels_path is not None:
        raise CommandError("--labels goes with a sparse --data file (.npz of "
                           "scipy.sparse.save_npz)")
    if target is not None:
        raise CommandError("--target needs --data" if path is None else
                           f"--target names a column of a data file; the built-in data set "
                           f"{builtin!r} has no columns")
    if builtin == "planar":
        X, Y = datasets.load_planar_dataset()
        y = Y[0].astype(np.int64)
    else:
        X, y = datasets.load_spiral()
        Y = y.reshape(1, -1).astype(np.float64)
    source = BUILTIN[builtin]
    if output == "softmax":
        return _Data(X, y, source, output, np.unique(y))
    if output == "sigmoid" and y.max() > 1:
        raise CommandError(f"--data {builtin}: the labels are the classes "
                           f"{', '.join(map(str, np.unique(y)))}; a sigmoid output needs labels "
                           f"0 or 1: use --output softmax")
    return _Data(X, Y, source, output)


def _builtin_name(path):
    """The built-in data set ``--data path`` selects, or None for a file.

    No ``--data`` is the planar data; a built-in name selects that data set
    unless a file of that name exists.
    """
    if path is None:
        return "planar"
    if path in BUILTIN and not os.path.exists(path):
        return path
    return None


def _name(c):
    """A class name as text: ``7`` for ``numpy.int64(7)``, ``a`` for ``numpy.str_('a')``."""
    c = c.item() if isinstance(c, np.generic) else c
    return str(c)


def _fit_layers(layers, X, n_out, output):
    """``--layers`` checked against the data, or the default ``[n_x, 4, n_out]`` (softmax: 10)."""
    n_x = X.shape[0]
    if layers is None:
        return [n_x, default("hidden_units", output), n_out]
    text = ",".join(map(str, layers))
    if layers[0] != n_x:
        raise CommandError(
            f"--layers {text}: the first entry must be the number of features in the data, {n_x}"
        )
    if layers[-1] != n_out:
        what = "classes" if output == "softmax" else "labels"
        raise CommandError(
            f"--layers {text}: the last entry must be the number of {what} in the data, {n_out}"
        )
    return layers


def _check_regions(data):
    """``--plot-regions`` needs 2 features and one class per example (before training)."""
    n_x = data.X.shape[0]
    if n_x != 2:
        raise CommandError(f"--plot-regions needs data with exactly 2 features (a plane); "
                           f"{data.source} has {n_x}")
    if data.y is None:
        raise CommandError(f"--plot-regions needs one label per example; {data.source} has "
                           f"{data.n_out}")


@contextlib.contextmanager
def _compile_clock(backend):
    """The seconds the kernels spend compiling (or loading from the cache), not training.

    Numba's own start-up (importing it, about 0.25 s, and building its typing
    and target contexts on the first call, about 0.25 s more) is counted
    with them. With the NumPy backend nothing compiles, and Numba is not imported.
    """
    if backend != "numba":
        yield CompileClock()
        return
    started = time.perf_counter()
    from numba.core.registry import cpu_target

    from .compile_clock import compile_clock

    cpu_target.typing_context.refresh()  # what Numba's first call does
    cpu_target.target_context.refresh()
    with compile_clock() as clock:
        clock.seconds = time.perf_counter() - started
        yield clock


def _compile_line(clock):
    """What compiling cost this run: the first run of a configuration compiles, later ones load."""
    if clock.compiled:
        return (f"compiling the kernels: {clock.seconds:.3g} s (not counted above; "
                f"cached for the next run of this configuration)")
    return f"numba's start-up and loading the kernels from the cache: {_duration(clock.seconds)}"


@contextlib.contextmanager
def _progress(total, clock):
    """A ``callback(n_iter, cost)`` showing progress on stderr: a tqdm bar, else lines.

    While the kernels compile (``clock``'s callbacks) the bar says so, or,
    without tqdm, a line does when compiling takes more than a second.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        note = []

        def start():
            note.append(threading.Timer(1.0, print, [COMPILING], {"file": sys.stderr,
                                                                  "flush": True}))
            note[-1].start()

        clock.on_start, clock.on_end = start, lambda: note and note.pop().cancel()
        yield _progress_lines(total)
        return
    with tqdm(total=total, desc="training", unit="epoch", file=sys.stderr,
              dynamic_ncols=True) as bar:
        label = []  # the timer that will relabel the bar, while a compilation runs

        def start():  # a cache load takes milliseconds: the bar says nothing of it
            label.append(threading.Timer(LABEL_AFTER, bar.set_description,
                                         [COMPILING.rstrip(" .")]))
            label[-1].start()

        def end():
            timer = label.pop()
            timer.cancel()
            timer.join()  # had it fired, its label is set by now: undone below
            if bar.desc.startswith(COMPILING.rstrip(" .")):
                bar.set_description("training")

        clock.on_start, clock.on_end = start, end

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
            print(f"epoch {n_iter}/{total}: cost {cost:.6f}", file=sys.stderr, flush=True)
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


def _check_plotting(path, option="--plot"):
    """Fail before training if matplotlib is missing or cannot write ``path``'s format."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CommandError(
            f"{option} needs matplotlib, which is not installed: pip install 'fastbackprop[plot]'",
            EXIT_FAILED,
        ) from None
    formats = FigureCanvasBase.get_supported_filetypes()
    if _image_format(path) not in formats:
        raise CommandError(
            f"{option} {path}: unknown image format; use one of {', '.join(sorted(formats))}"
        )


def _image_format(path):
    return os.path.splitext(path)[1][1:].lower()


def _plot_costs(model, path):
    """Draw ``model.costs_`` (and the validation costs, if any) against the epoch into ``path``
    (written atomically)."""
    from matplotlib.figure import Figure

    from ._files import write_atomically

    figure = Figure(figsize=(6, 4), layout="tight")
    axes = figure.subplots()
    axes.plot(np.arange(len(model.costs_)) * model.cost_every, model.costs_, label="training")
    validation = getattr(model, "validation_costs_", None)
    if validation is not None:
        axes.plot(np.arange(len(validation)) * model.cost_every, validation, label="validation")
        axes.axvline(model.best_epoch_, color="grey", linestyle=":", label="best epoch")
        axes.legend()
    axes.set_xlabel("epoch")
    axes.set_ylabel("cost J")
    axes.set_title(f"layers {model.layer_dims}, {model.hidden_activation}, "
                   f"learning rate {model.learning_rate:g}")
    write_atomically(path, lambda f: figure.savefig(f, format=_image_format(path)))


def run_warmup(args):
    """``fastbackprop warmup``: compile or load every kernel; print the time each took."""
    from .warm import warmup

    timings = warmup(dtypes=args.dtype or ("float64", "float32"),
                     hidden_activations=args.activation or tuple(spec.ACTIVATIONS),
                     output_activations=args.output or ("sigmoid",))
    for key, seconds in timings.items():
        print(f"{' '.join(key)}: {_duration(seconds)}")
    return 0


# ---------------------------------------------------------------------------
# fastbackprop export
# ---------------------------------------------------------------------------


def run_export(args):
    """``fastbackprop export``: the saved model as an ONNX file (fastbackprop.export)."""
    from .model import Model

    _check_output_directory("--onnx", args.onnx)
    try:
        import onnx  # noqa: F401 - only to say what is missing before any work
    except ImportError:
        raise CommandError("export needs onnx, which is not installed: "
                           "pip install 'fastbackprop[onnx]'", EXIT_FAILED) from None
    model = Model.load(args.model)
    model.to_onnx(args.onnx, dtype=args.dtype, layout=args.layout)
    n_x, n_y = model.layer_dims[0], model.layer_dims[-1]
    shapes = ((f"({n_x}, m)", f"({n_y}, m)") if args.layout == "columns"
              else (f"(m, {n_x})", f"(m, {n_y})"))
    print(f"wrote {args.onnx}: input X {shapes[0]} -> output A_L {shapes[1]}, "
          f"{args.dtype or model.parameters_['W1'].dtype.name}, {args.layout} layout")
    return 0


# ---------------------------------------------------------------------------
# fastbackprop predict
# ---------------------------------------------------------------------------


def run_predict(args):
    """``fastbackprop predict``: one line per example, and the accuracy (or R²) with labels."""
    from ._files import write_atomically
    from .datasets import load_features
    from .model import Model

    _check_output_directory("--out", args.out)
    model = Model.load(args.model)
    output = model.output_activation
    X, Y = load_features(args.data, model.layer_dims[0], args.target, LABELS[output])
    notes = []
    if output == "softmax":
        classes = _model_classes(model, args.model)
        text = class_predictions_csv(model.predict_proba(X), classes)
        score = None if Y is None else _class_accuracy(model, X, Y, classes, notes)
    elif spec.OUTPUTS[output].regression:
        if Y is not None and Y.shape[0] != model.layer_dims[-1]:
            raise CommandError(f"{args.data} has {Y.shape[0]} label column; the model predicts "
                               f"{model.layer_dims[-1]} values per example")
        text = values_csv(model.predict(X))
        score = None if Y is None else _score_line("", model, X, Y)
    else:
        text = predictions_csv(model.predict_proba(X))
        score = None if Y is None else _score_line("", model, X, Y)
    report = sys.stdout
    if args.out:
        write_atomically(args.out, lambda f: f.write(text.encode()))
        print(f"wrote {X.shape[1]} predictions to {args.out}")
    else:
        sys.stdout.write(text)
        report = sys.stderr  # keep stdout a clean CSV
    for note in notes:
        print(note, file=sys.stderr)
    if score is not None:
        print(score, file=report)
    return 0


def _model_classes(model, path):
    """The class names of a softmax model: its ``classes_``, else ``0..n_L-1``."""
    n = model.layer_dims[-1]
    classes = getattr(model, "classes_", None)
    if classes is None:
        return np.arange(n)
    classes = np.asarray(classes).reshape(-1)
    if len(classes) != n:
        raise CommandError(f"model file {os.fspath(path)!r} has {len(classes)} class names for "
                           f"its {n} outputs")
    return classes


def _class_accuracy(model, X, labels, classes, notes):
    """``accuracy: 97.3%`` of a softmax model on the file's class names ``labels`` ``(m,)``.

    A label that is none of the model's classes counts as wrong; ``notes``
    gets a line saying how many there were.
    """
    from .datasets import class_indices

    truth = class_indices(labels, classes)
    unknown = np.flatnonzero(truth < 0)
    if unknown.size:
        notes.append(f"note: {unknown.size} of {truth.size} examples have a label that is not "
                     f"one of the model's classes (such as {_name(labels[unknown[0]])!r}); "
                     "they count as wrong")
    return f"accuracy: {np.mean(model.predict(X) == truth):.1%}"


def class_predictions_csv(AL, classes):
    """CSV text, one line per example (column of ``AL`` ``(K, m)``, softmax probabilities).

    Columns ``p_NAME`` for each class name in ``classes`` (their order,
    sorted), then ``prediction``: the name of the most probable class.
    """
    names = [_name(c) for c in classes]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f"p_{name}" for name in names] + ["prediction"])
    for column, k in zip(AL.T, np.argmax(AL, axis=0)):
        writer.writerow([f"{p:.10g}" for p in column] + [names[k]])
    return out.getvalue()


def values_csv(A):
    """CSV text, one line per example (column of ``A`` ``(n_y, m)``): the predicted values.

    One column ``prediction`` when ``n_y = 1``, else ``prediction_1, ..., prediction_n_y``.
    """
    n_y = A.shape[0]
    header = ["prediction"] if n_y == 1 else [f"prediction_{k + 1}" for k in range(n_y)]
    lines = [",".join(header)] + [",".join(f"{v:.10g}" for v in column) for column in A.T]
    return "\n".join(lines) + "\n"


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
