"""The ``fastbackprop`` command: in subprocesses as a user runs it, and in-process for details.

Most runs use ``--backend numpy`` and few iterations; one runs the default
(Numba) ``fastbackprop train`` end to end.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastbackprop import cli, spec
from fastbackprop.datasets import make_classification
from fastbackprop.model import Model

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAST = ["--backend", "numpy", "--epochs", "200", "--seed", "0"]


def environment():
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def fastbackprop(*args, cwd):
    """``python -m fastbackprop ARGS`` in ``cwd``; the completed process (text)."""
    return subprocess.run([sys.executable, "-m", "fastbackprop", *map(str, args)], cwd=cwd,
                          env=environment(), capture_output=True, text=True, timeout=300)


def python(code, cwd):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          env=environment(), capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, code, match):
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastbackprop"), lines
    assert "error: " in lines[0] and "Traceback" not in result.stderr
    assert re.search(match, lines[0]), lines[0]


def write_csv(path, n_x=3, m=120, seed=1, label=True):
    """A CSV with a header, one example per line: x1..x{n_x}[,label]."""
    X, Y = make_classification(n_x, m, seed=seed)
    columns = [X.T] + ([Y.T] if label else [])
    header = ",".join([f"x{i + 1}" for i in range(n_x)] + (["label"] if label else []))
    np.savetxt(path, np.hstack(columns), fmt="%.17g", delimiter=",", header=header, comments="")
    return X, Y


# ---------------------------------------------------------------------------
# As a user runs it
# ---------------------------------------------------------------------------


def test_train_with_no_arguments_trains_the_planar_network(tmp_path):
    result = fastbackprop("train", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "data: planar flower (built-in): 400 examples, 2 features"
    assert lines[1].startswith("model: Model(layer_dims=[2, 4, 1], hidden_activation='tanh', "
                               "learning_rate=1.2, n_epochs=10000, init='scaled'")
    accuracy = float(lines[2].removeprefix("training accuracy: ").rstrip("%"))
    assert accuracy > 85
    assert lines[3].startswith("time per epoch: ") and "10000 epochs, 10000 updates" in lines[3]
    assert "numba backend, float64" in lines[3]
    assert lines[4].startswith(("compiling the kernels: ", "numba's start-up and loading"))
    assert "10000/10000" in result.stderr and "cost=" in result.stderr  # tqdm's bar


def test_train_reports_compiling_apart_from_training(tmp_path):
    """The first run of a configuration compiles its kernels: that time is reported on its own
    line, not in the time per epoch; the next run loads them from the cache."""
    import re

    def run():
        result = subprocess.run(
            [sys.executable, "-m", "fastbackprop", "train", "--epochs", "3000"], cwd=tmp_path,
            env={**environment(), "NUMBA_CACHE_DIR": str(tmp_path / "cache")},
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        *_, epoch, compiled = result.stdout.splitlines()
        per_epoch = float(re.search(r"in ([0-9.e+-]+) s;", epoch).group(1)) / 3000
        seconds = re.search(r": ([0-9.]+) (m?s)", compiled)
        return per_epoch, compiled, float(seconds.group(1)) * (1e-3 if seconds.group(2) == "ms"
                                                               else 1), result.stderr

    cold_epoch, cold_line, cold, stderr = run()
    assert cold_line.startswith("compiling the kernels: ") and cold > 0.3
    assert "compiling the numba kernels" in stderr  # the progress bar said so meanwhile
    warm_epoch, warm_line, warm, warm_stderr = run()
    assert warm_line.startswith("numba's start-up and loading the kernels from the cache: ")
    assert "compiling" not in warm_stderr  # loading from the cache does not relabel the bar
    assert warm < cold / 2
    assert cold_epoch < 20 * warm_epoch + 1e-4  # the compile is not in the time per epoch


def test_train_save_plot_then_predict_on_a_users_csv(tmp_path):
    X, Y = write_csv(tmp_path / "train.csv")
    result = fastbackprop("train", "--data", "train.csv", "--layers", "3,6,1", "--activation",
                          "relu", "--init", "he", "--lr", "0.5", *FAST, "--save", "model.npz",
                          "--plot", "cost.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "data: train.csv: 120 examples, 3 features" in result.stdout
    assert "saved the model to model.npz" in result.stdout
    assert (tmp_path / "cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = Model.load(tmp_path / "model.npz")
    assert model.get_params() == {
        "layer_dims": [3, 6, 1], "hidden_activation": "relu", "output_activation": "sigmoid",
        "learning_rate": 0.5, "n_epochs": 200, "init": "he", "seed": 0,
        "dtype": "float64", "backend": "numpy", "cost_every": 100, "optimizer": "gd",
        "batch_size": None, "shuffle": True, "beta": 0.9, "beta1": 0.9, "beta2": 0.999,
        "epsilon": 1e-8, "decay_rate": 0.0, "time_interval": None, "l2": 0.0,
        "keep_prob": 1.0, "early_stopping": False, "patience": 10, "tol": 1e-4,
        "validation_fraction": 0.1, "n_threads": None, "batch_norm": False,
        "batch_norm_momentum": 0.9, "batch_norm_epsilon": 1e-5}
    accuracy = model.score(X, Y)
    assert f"training accuracy: {accuracy:.1%}" in result.stdout

    result = fastbackprop("predict", "--model", "model.npz", "--data", "train.csv",
                          "--out", "predictions.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["wrote 120 predictions to predictions.csv",
                                          f"accuracy: {accuracy:.1%}"]
    text = (tmp_path / "predictions.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == "probability,prediction" and len(lines) == 121
    table = np.loadtxt(tmp_path / "predictions.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 0], model.predict_proba(X)[0], rtol=1e-9)
    np.testing.assert_array_equal(table[:, 1], model.predict(X)[0])

    write_csv(tmp_path / "new.csv", label=False)  # features only: predictions to stdout
    result = fastbackprop("predict", "--model", "model.npz", "--data", "new.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == text and result.stderr == ""


def test_train_on_an_npz_file(tmp_path):
    X, Y = make_classification(4, 50, n_y=2, seed=2)
    np.savez(tmp_path / "data.npz", X=X.T, Y=Y.T)  # one example per row
    result = fastbackprop("train", "--data", "data.npz", "--layers", "4,5,2", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "data: data.npz: 50 examples, 4 features" in result.stdout


def bad_csvs(tmp_path):
    (tmp_path / "ragged.csv").write_text("a,b,label\n1,2,0\n3,4\n")
    (tmp_path / "quote.csv").write_text('a,"b,label\n1,2,1\n')
    (tmp_path / "words.csv").write_text("a,colour,label\n1,2,0\n3,red,1\n")
    write_csv(tmp_path / "three.csv")


@pytest.mark.parametrize("args,match", [
    (["train", "--data", "missing.csv"], r"^fastbackprop: error: data file 'missing.csv' does not exist$"),
    (["train", "--data", "ragged.csv"], r"ragged.csv, line 3: 2 fields; the header has 3$"),
    (["train", "--data", "quote.csv"], r"quote.csv, line 2: malformed CSV \(unexpected end of data\)$"),
    (["train", "--data", "words.csv"], r"words.csv, line 3, column 'colour': 'red' is not a number$"),
    (["train", "--data", "three.csv", "--layers", "2,4,1"],
     r"--layers 2,4,1: the first entry must be the number of features in the data, 3$"),
    (["train", "--data", "three.csv", "--layers", "3,4,2"],
     r"--layers 3,4,2: the last entry must be the number of labels in the data, 1$"),
    (["predict", "--model", "missing.npz", "--data", "three.csv"],
     r"model file 'missing.npz' does not exist$"),
    (["predict", "--model", "three.csv", "--data", "three.csv"],
     r"model file 'three.csv' is not an .npz archive$"),
    (["train", "--lr", "-1"], r"^fastbackprop train: error: argument --lr: expected a number > 0; got '-1'"),
])
def test_bad_files_and_arguments_exit_2_with_one_line(tmp_path, args, match):
    bad_csvs(tmp_path)
    result = fastbackprop(*args, cwd=tmp_path)
    assert_one_line_error(result, 2, match)
    assert result.stdout == ""


def test_predict_with_data_that_does_not_fit_the_model(tmp_path):
    write_csv(tmp_path / "three.csv")
    Model([2, 3, 1], backend="numpy", n_epochs=1).fit(np.ones((2, 2)), [0, 1]).save(
        tmp_path / "m.npz")
    result = fastbackprop("predict", "--model", "m.npz", "--data", "three.csv", cwd=tmp_path)
    assert_one_line_error(result, 2, r"three.csv has 4 columns \['x1', 'x2', 'x3', 'label'\]; "
                                     r"expected 2 feature columns, or 2 features and a label column")


def test_divergence_exits_1(tmp_path):
    result = fastbackprop("train", "--activation", "relu", "--init", "he", "--lr", "1e8",
                          "--backend", "numpy", "--iterations", "100", "--seed", "0",
                          "--save", "m.npz", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [result.stderr.splitlines()[-1]]  # after the progress bar
    assert re.fullmatch(r"fastbackprop: error: training diverged: the cost became NaN or "
                        r"infinite at epoch \d+; try a smaller --lr", errors[0])
    assert not (tmp_path / "m.npz").exists()


def test_ctrl_c_during_training_exits_130_and_saves_nothing(tmp_path):
    # A shell in the background ignores SIGINT; restore Python's handler as a terminal would.
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from fastbackprop.cli import main; sys.exit(main(sys.argv[1:]))")
    process = subprocess.Popen(
        [sys.executable, "-c", code, "train", "--backend", "numpy", "--iterations", "100000000",
         "--save", "m.npz"], cwd=tmp_path, env=environment(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    started = ""
    while "training" not in started:  # the progress bar is up: fit is running
        character = process.stderr.read(1)
        assert character, f"the command ended before training: {started}"
        started += character
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.splitlines()[-1] == "fastbackprop: error: interrupted" and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()


def test_plot_without_matplotlib_fails_before_training(tmp_path):
    result = python("""
        import sys
        sys.modules["matplotlib"] = None  # as if it were not installed
        from fastbackprop.cli import main
        sys.exit(main(["train", "--plot", "cost.png", "--save", "m.npz"]))
    """, cwd=tmp_path)
    assert_one_line_error(result, 1, r"--plot needs matplotlib, which is not installed: "
                                     r"pip install 'fastbackprop\[plot\]'$")
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_help_imports_neither_numba_nor_bench(tmp_path):
    result = python("""
        import sys
        from fastbackprop.cli import main
        for argv in (["--help"], ["train", "--help"], ["predict", "--help"]):
            try:
                main(argv)
            except SystemExit as e:
                assert e.code == 0
        print(sorted(m for m in sys.modules
                     if m.startswith("numba") or m in ("fastbackprop.bench", "fastbackprop.kernels")))
    """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


@pytest.mark.skipif(not (ROOT / "fastbackprop" / "bench.py").exists(),
                    reason="fastbackprop/bench.py is not written yet")
def test_bench_help(tmp_path):
    result = fastbackprop("bench", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: fastbackprop bench")


# ---------------------------------------------------------------------------
# Output layers: softmax with class names, linear regression, decision regions
# ---------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n"


def write_classes_csv(path, names, m=90, seed=3):
    """A CSV ``x1,x2,species``: one blob of points per class, labelled ``names[k]``, in turn."""
    rng = np.random.default_rng(seed)
    k = np.arange(m) % len(names)
    centres = 3.0 * np.array([[np.cos(a), np.sin(a)]
                              for a in 2 * np.pi * np.arange(len(names)) / len(names)])
    points = centres[k] + 0.6 * rng.standard_normal((m, 2))
    rows = [f"{a:.17g},{b:.17g},{names[j]}" for (a, b), j in zip(points, k)]
    path.write_text("\n".join(["x1,x2,species", *rows]) + "\n")
    return np.ascontiguousarray(points.T), [names[j] for j in k]


def write_regression_csv(path, m=80, seed=4, label=True):
    """A CSV ``x1,x2[,price]`` with ``price = 2 x1 - x2 + 0.5 + noise``; returns X (2, m), Y (1, m)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (2, m))
    Y = 2 * X[:1] - X[1:] + 0.5 + 0.05 * rng.standard_normal((1, m))
    header = "x1,x2,price" if label else "x1,x2"
    table = np.vstack([X, Y]).T if label else X.T
    np.savetxt(path, table, fmt="%.17g", delimiter=",", header=header, comments="")
    return X, Y


def test_softmax_on_a_csv_of_class_names_then_predict_the_names(tmp_path):
    names = ["virginica", "setosa", "versicolor"]  # sorted: setosa, versicolor, virginica
    X, labels = write_classes_csv(tmp_path / "iris.csv", names)
    result = fastbackprop("train", "--data", "iris.csv", "--output", "softmax",
                          *FAST, "--save", "iris.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "data: iris.csv: 90 examples, 2 features, 3 classes: setosa, versicolor, virginica"
    model = Model.load(tmp_path / "iris.npz")
    assert model.output_activation == "softmax" and model.layer_dims == [2, 10, 3]  # n_x,10,classes
    assert model.learning_rate == 0.5  # the softmax default
    assert list(model.classes_) == ["setosa", "versicolor", "virginica"]
    y = np.array([list(model.classes_).index(name) for name in labels])
    accuracy = model.score(X, y)
    assert accuracy > 0.9 and lines[2] == f"training accuracy: {accuracy:.1%}"

    result = fastbackprop("predict", "--model", "iris.npz", "--data", "iris.csv",
                          "--out", "predictions.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["wrote 90 predictions to predictions.csv",
                                          f"accuracy: {accuracy:.1%}"]
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert lines[0] == "p_setosa,p_versicolor,p_virginica,prediction" and len(lines) == 91
    rows = [line.split(",") for line in lines[1:]]
    probabilities = np.array([[float(p) for p in row[:3]] for row in rows])
    np.testing.assert_allclose(probabilities, model.predict_proba(X).T, rtol=1e-9)
    assert [row[3] for row in rows] == list(model.classes_[model.predict(X)])

    (tmp_path / "new.csv").write_text("x1,x2\n3,0\n-1.5,2.6\n")  # features only: to stdout
    result = fastbackprop("predict", "--model", "iris.npz", "--data", "new.csv", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert [line.split(",")[-1] for line in result.stdout.splitlines()] == [
        "prediction", "virginica", "setosa"]


def test_softmax_with_integer_class_names_sorts_them_as_numbers(tmp_path):
    X, labels = write_classes_csv(tmp_path / "digits.csv", [10, 2, 7], m=60)
    result = fastbackprop("train", "--data", "digits.csv", "--output", "softmax", "--layers",
                          "2,6,3", "--lr", "0.5", *FAST, "--save", "m.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 classes: 2, 7, 10" in result.stdout
    model = Model.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(model.classes_, [2, 7, 10])
    with open(tmp_path / "digits.csv", "a") as f:
        f.write("0,0,99\n")  # a class the model never saw: counted as wrong, with a note
    result = fastbackprop("predict", "--model", "m.npz", "--data", "digits.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "p_2,p_7,p_10,prediction" and len(lines) == 62
    assert {line.split(",")[-1] for line in lines[1:]} <= {"2", "7", "10"}
    y = np.array([[2, 7, 10].index(name) for name in labels])
    right = np.sum(model.predict(X) == y)
    assert result.stderr.splitlines() == [
        "note: 1 of 61 examples have a label that is not one of the model's classes (such as "
        "'99'); they count as wrong", f"accuracy: {right / 61:.1%}"]


def test_linear_output_on_a_regression_csv(tmp_path):
    X, Y = write_regression_csv(tmp_path / "prices.csv")
    result = fastbackprop("train", "--data", "prices.csv", "--output", "linear", "--backend",
                          "numpy", "--iterations", "2000", "--seed", "0", "--save", "m.npz",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = Model.load(tmp_path / "m.npz")
    assert model.output_activation == "linear" and not hasattr(model, "classes_")
    assert model.learning_rate == 0.03  # the linear output's default, not 1.2
    r2 = model.score(X, Y)
    assert r2 > 0.9 and result.stdout.splitlines()[2] == f"training R²: {r2:.3f}"

    result = fastbackprop("predict", "--model", "m.npz", "--data", "prices.csv",
                          "--out", "predictions.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["wrote 80 predictions to predictions.csv", f"R²: {r2:.3f}"]
    assert (tmp_path / "predictions.csv").read_text().startswith("prediction\n")
    values = np.loadtxt(tmp_path / "predictions.csv", skiprows=1)
    np.testing.assert_allclose(values, model.predict(X)[0], rtol=1e-9)


def write_counts_csv(path, m=80, seed=6):
    """A CSV ``x1,x2,visits`` of Poisson counts with mean ``exp(1 + x1 - x2 / 2)``."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (2, m))
    Y = rng.poisson(np.exp(1 + X[:1] - 0.5 * X[1:])).astype(float)
    np.savetxt(path, np.vstack([X, Y]).T, fmt="%.17g", delimiter=",", header="x1,x2,visits",
               comments="")
    return X, Y


def test_exp_output_on_a_csv_of_counts(tmp_path):
    """``--output exp`` (Poisson regression): trained with its default rate, reported and
    predicted as a regression (R², the predicted means); negative counts are one line."""
    X, Y = write_counts_csv(tmp_path / "visits.csv")
    result = fastbackprop("train", "--data", "visits.csv", "--output", "exp", "--backend",
                          "numpy", "--iterations", "2000", "--seed", "0", "--save", "m.npz",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = Model.load(tmp_path / "m.npz")
    assert model.output_activation == "exp" and model.learning_rate == 0.03
    r2 = model.score(X, Y)
    assert r2 > 0.3 and result.stdout.splitlines()[2] == f"training R²: {r2:.3f}"
    result = fastbackprop("predict", "--model", "m.npz", "--data", "visits.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "prediction" and result.stderr == f"R²: {r2:.3f}\n"
    values = np.loadtxt(result.stdout.splitlines()[1:])
    np.testing.assert_allclose(values, model.predict(X)[0], rtol=1e-9)
    assert np.all(values > 0)
    write_regression_csv(tmp_path / "prices.csv")  # prices below 0 among them
    result = fastbackprop("train", "--data", "prices.csv", "--output", "exp", *FAST,
                          cwd=tmp_path)
    assert result.returncode == 2 and "training" not in result.stdout
    assert re.fullmatch(r"fastbackprop: error: Y must hold values >= 0 for "
                        r"output_activation='exp' \(counts or rates: Poisson regression, whose "
                        r"cost takes log Y\); found -[\d.]+ at row 0, column \d+",
                        result.stderr.splitlines()[-1]), result.stderr


def test_linear_output_with_several_targets_from_npz(tmp_path):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 3))
    Y = np.column_stack([X @ [1.0, -2.0, 0.5], 10 * X[:, 0]])  # (m, 2): not 0/1
    np.savez(tmp_path / "d.npz", X=X, Y=Y)
    result = fastbackprop("train", "--data", "d.npz", "--output", "linear", "--lr", "0.05",
                          *FAST, "--save", "m.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^training R²: -?\d\.\d{3}$", result.stdout, re.M)
    result = fastbackprop("predict", "--model", "m.npz", "--data", "d.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "prediction_1,prediction_2"
    assert len(result.stdout.splitlines()) == 41 and result.stderr.startswith("R²: ")


def test_spiral_with_softmax_out_of_the_box(tmp_path):
    # The defaults but the NumPy backend (the numba one is the no-arguments test's).
    result = fastbackprop("train", "--data", "spiral", "--output", "softmax", "--backend",
                          "numpy", "--seed", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "data: spiral (built-in): 300 examples, 2 features, 3 classes: 0, 1, 2"
    assert lines[1].startswith("model: Model(layer_dims=[2, 10, 3], hidden_activation='tanh', "
                               "output_activation='softmax', learning_rate=0.5, "
                               "n_epochs=10000, init='scaled'")
    assert float(lines[2].removeprefix("training accuracy: ").rstrip("%")) > 95


def test_plot_regions_draws_a_png_for_softmax_and_sigmoid(tmp_path):
    result = fastbackprop("train", "--data", "spiral", "--output", "softmax", *FAST,
                          "--plot-regions", "spiral.png", "--save", "m.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "saved the decision regions to spiral.png"
    assert (tmp_path / "spiral.png").read_bytes()[:8] == PNG
    np.testing.assert_array_equal(Model.load(tmp_path / "m.npz").classes_, [0, 1, 2])
    result = fastbackprop("train", "--data", "planar", *FAST, "--plot-regions", "flower.png",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "data: planar flower (built-in): 400 examples, 2 features" in result.stdout
    assert (tmp_path / "flower.png").read_bytes()[:8] == PNG


def test_plot_regions_without_matplotlib_fails_before_training(tmp_path):
    result = python("""
        import sys
        sys.modules["matplotlib"] = None  # as if it were not installed
        from fastbackprop.cli import main
        sys.exit(main(["train", "--data", "spiral", "--output", "softmax",
                       "--plot-regions", "regions.png"]))
    """, cwd=tmp_path)
    assert_one_line_error(result, 1, r"--plot-regions needs matplotlib, which is not installed: "
                                     r"pip install 'fastbackprop\[plot\]'$")
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_training_without_plots_does_not_import_matplotlib(tmp_path):
    result = python("""
        import sys
        from fastbackprop.cli import main
        assert main(["train", "--data", "spiral", "--output", "softmax", "--backend", "numpy",
                     "--iterations", "5"]) == 0
        print(sorted(m for m in sys.modules if m.startswith("matplotlib")))
    """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_a_file_named_like_a_built_in_data_set_wins(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "spiral", n_x=3, m=20)
    assert cli.main(["train", "--data", "spiral", *FAST[:2], "--iterations", "1"]) == 0
    assert capsys.readouterr().out.startswith("data: spiral: 20 examples, 3 features\n")


@pytest.mark.parametrize("args,match", [
    (["train", "--data", "iris.csv", "--output", "softmax", "--layers", "2,4,2"],
     r"--layers 2,4,2: the last entry must be the number of classes in the data, 3$"),
    (["train", "--data", "three.csv", "--plot-regions", "r.png"],
     r"--plot-regions needs data with exactly 2 features \(a plane\); three.csv has 3$"),
    (["train", "--data", "prices.csv", "--output", "linear", "--plot-regions", "r.png"],
     r"--plot-regions draws a classifier's decision regions; a linear output \(regression\) has none$"),
    (["train", "--data", "prices.csv", "--output", "exp", "--plot-regions", "r.png"],
     r"--plot-regions draws a classifier's decision regions; an exp output \(regression\) has none$"),
    (["train", "--data", "two.npz", "--layers", "2,4,2", "--plot-regions", "r.png"],
     r"--plot-regions needs one label per example; two.npz has 2$"),
    (["train", "--data", "spiral", "--plot-regions", "r.xyz"],
     r"--plot-regions r.xyz: unknown image format; use one of .*png"),
    (["train", "--data", "spiral"],
     r"--data spiral: the labels are the classes 0, 1, 2; a sigmoid output needs labels 0 or 1: "
     r"use --output softmax$"),
    (["train", "--data", "spiral", "--output", "softmax", "--target", "y"],
     r"--target names a column of a data file; the built-in data set 'spiral' has no columns$"),
    (["train", "--data", "same.csv", "--output", "softmax"],
     r"--output softmax needs at least 2 classes; the labels of same.csv are all 'setosa'$"),
    (["train", "--data", "iris.csv"], r"iris.csv, line 2, column 'species': labels must be 0 or 1; "
                                      r"got 'setosa' \(for classes, use --output softmax\)$"),
    (["train", "--data", "iris.csv", "--output", "linear"],
     r"iris.csv, line 2, column 'species': labels must be finite numbers; got 'setosa' "
     r"\(for classes, use --output softmax\)$"),
    (["train", "--data", "empty.csv", "--output", "softmax"],
     r"empty.csv, line 3, column 'species': the class name is empty$"),
    (["train", "--output", "tanh"], None),  # argparse: invalid choice
])
def test_output_layer_problems_are_one_line_before_training(args, match, capsys, monkeypatch,
                                                            tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Model, "fit", pytest.fail)
    write_classes_csv(tmp_path / "iris.csv", ["setosa", "versicolor", "virginica"], m=9)
    write_csv(tmp_path / "three.csv")
    write_regression_csv(tmp_path / "prices.csv")
    np.savez(tmp_path / "two.npz", X=np.ones((4, 2)), Y=np.ones((4, 2)))
    (tmp_path / "same.csv").write_text("x1,x2,species\n1,2,setosa\n3,4,setosa\n")
    (tmp_path / "empty.csv").write_text("x1,x2,species\n1,2,setosa\n3,4,\n")
    if match is None:
        with pytest.raises(SystemExit) as caught:
            cli.main(args)
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "argument --output: invalid choice: 'tanh'" in err
        return
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert re.search(r"^fastbackprop: error: " + match.removeprefix("^"), err.strip()), err
    assert not (tmp_path / "r.png").exists()


def test_warmup_for_other_output_layers(capsys, monkeypatch):
    calls = []

    def warmup(dtypes, hidden_activations, output_activations):  # records, compiles nothing
        calls.append((dtypes, hidden_activations, output_activations))
        return {(d, h, o): 0.5 for d in dtypes for h in hidden_activations
                for o in output_activations}

    monkeypatch.setattr("fastbackprop.warm.warmup", warmup)
    assert cli.main(["warmup", "--dtype", "float64", "--activation", "tanh",
                     "--output", "softmax", "--output", "linear"]) == 0
    assert calls == [(["float64"], ["tanh"], ["softmax", "linear"])]
    assert capsys.readouterr().out == "float64 tanh softmax: 500 ms\nfloat64 tanh linear: 500 ms\n"
    assert cli.main(["warmup"]) == 0
    assert calls[1] == (("float64", "float32"), tuple(spec.ACTIVATIONS), ("sigmoid",))


def test_class_predictions_csv_quotes_names():
    AL = np.array([[0.25, 0.5], [0.75, 0.5]])
    assert cli.class_predictions_csv(AL, np.array(["a,b", "c"])) == (
        '"p_a,b",p_c,prediction\n'
        '0.25,0.75,c\n'
        '0.5,0.5,"a,b"\n')
    assert cli.values_csv(np.array([[1.5, -2.0]])) == "prediction\n1.5\n-2\n"


# ---------------------------------------------------------------------------
# In-process details
# ---------------------------------------------------------------------------


def test_progress_lines_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if it were not installed
    assert cli.main(["train", "--backend", "numpy", "--iterations", "300", "--seed", "0"]) == 0
    out, err = capsys.readouterr()
    assert "training accuracy: " in out
    lines = err.splitlines()
    assert lines[-1].startswith("epoch 300/300: cost ")
    assert all(line.startswith("epoch ") for line in lines)


def test_ctrl_c_exits_130_and_writes_nothing(monkeypatch, capsys, tmp_path):
    def interrupted(self, X, Y, parameters=None, *, callback=None, **kwargs):
        callback(100, 0.5)
        raise KeyboardInterrupt

    monkeypatch.setattr(Model, "fit", interrupted)
    save = tmp_path / "m.npz"
    assert cli.main(["train", "--backend", "numpy", "--save", str(save)]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "fastbackprop: error: interrupted"
    assert not save.exists()


@pytest.mark.parametrize("args,match", [
    (["train", "--target", "y"], "--target needs --data"),
    (["train", "--save", "no/such/dir/m.npz"], r"--save no/such/dir/m.npz: directory '.*no/such/dir' does not exist"),
    (["train", "--plot", "cost.xyz"], r"--plot cost.xyz: unknown image format; use one of .*png"),
])
def test_output_problems_are_found_before_training(args, match, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Model, "fit", pytest.fail)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.search(match, err)


@pytest.mark.parametrize("argv,match", [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "--layers", "2,x,1"], "expected comma-separated positive integers such as 2,4,1"),
    (["train", "--iterations", "0"], "expected an integer >= 1; got '0'"),
    (["train", "--seed", "-3"], "expected an integer >= 0; got '-3'"),
    (["train", "--activation", "softmax"], "invalid choice: 'softmax'"),
    (["predict", "--data", "x.csv"], "the following arguments are required: --model"),
])
def test_usage_errors_exit_2_on_one_line(argv, match, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and match in err and "(see 'fastbackprop" in err


def test_predictions_csv_for_several_labels():
    AL = np.array([[0.25, 0.75], [0.5, 0.125]])
    assert cli.predictions_csv(AL) == (
        "probability_1,probability_2,prediction_1,prediction_2\n"
        "0.25,0.5,0,0\n"
        "0.75,0.125,1,0\n")


def test_warmup_reports_each_kernel_set(capsys):
    assert cli.main(["warmup", "--dtype", "float64", "--activation", "tanh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("float64 tanh sigmoid: ") and len(out.splitlines()) == 1


def test_train_with_adam_in_mini_batches(tmp_path):
    """The optimiser flags reach the model; progress and the report count epochs."""
    write_csv(tmp_path / "train.csv")
    result = fastbackprop("train", "--data", "train.csv", "--layers", "3,6,1", "--backend",
                          "numpy", "--epochs", "7", "--seed", "0", "--optimizer", "adam",
                          "--batch-size", "32", "--lr", "0.01", "--beta1", "0.8",
                          "--decay-rate", "0.5", "--time-interval", "2", "--save", "adam.npz",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "time per epoch: " in result.stdout and "(7 epochs, 28 updates, in" in result.stdout
    model = Model.load(tmp_path / "adam.npz")
    assert (model.optimizer, model.batch_size, model.beta1, model.decay_rate,
            model.time_interval) == ("adam", 32, 0.8, 0.5, 2)
    assert (model.n_iter_, model.t_) == (7, 28)
    assert set(model.optimizer_state_) == {"v", "s"}


@pytest.mark.parametrize("args,message", [
    (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
    (["--batch-size", "0"], "expected an integer >= 1; got '0'"),
    (["--beta", "1.5"], r"beta must be a number in \[0, 1\); got 1.5"),
    (["--epsilon", "0"], "epsilon must be a finite number > 0; got 0"),
    (["--l2", "-1"], "l2 must be a finite number >= 0; got -1"),
    (["--keep-prob", "0"], r"keep_prob must be a number in \(0, 1\]; got 0"),
    (["--keep-prob", "a,b"], "expected a number or numbers separated by commas"),
    (["--validation-fraction", "1.5"], r"validation_fraction must be a number in \(0, 1\)"),
])
def test_bad_optimiser_and_regularisation_flags_are_one_line_errors(tmp_path, args, message):
    result = fastbackprop("train", *FAST, *args, cwd=tmp_path)
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and re.match(r"fastbackprop( train)?: error: ", errors[0])
    assert re.search(message, errors[0]), errors[0]


def test_train_with_regularisation_validation_and_early_stopping(tmp_path):
    write_csv(tmp_path / "train.csv")
    result = fastbackprop("train", "--data", "train.csv", "--layers", "3,16,8,1", "--backend",
                          "numpy", "--epochs", "300", "--seed", "0", "--lr", "0.3", "--l2",
                          "0.5", "--keep-prob", "0.9,0.8", "--validation-fraction", "0.25",
                          "--early-stopping", "--patience", "50", "--cost-every", "10",
                          "--save", "reg.npz", "--plot", "costs.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    validation = [line for line in lines if line.startswith("validation accuracy: ")]
    assert len(validation) == 1
    assert any(line.startswith("early stopping: kept epoch ") for line in lines)
    model = Model.load(tmp_path / "reg.npz")
    assert (model.l2, model.keep_prob, model.early_stopping, model.patience,
            model.validation_fraction) == (0.5, [0.9, 0.8], True, 50, 0.25)
    assert (tmp_path / "costs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_with_batch_norm_saves_a_model_that_predicts(tmp_path):
    write_csv(tmp_path / "train.csv")
    result = fastbackprop("train", "--data", "train.csv", "--layers", "3,8,6,1", "--epochs",
                          "20", "--seed", "0", "--optimizer", "adam", "--batch-size", "16",
                          "--lr", "0.01", "--batch-norm", "--batch-norm-momentum", "0.8",
                          "--batch-norm-epsilon", "1e-4", "--save", "bn.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = Model.load(tmp_path / "bn.npz")
    assert (model.batch_norm, model.batch_norm_momentum, model.batch_norm_epsilon) == (
        True, 0.8, 1e-4)
    assert {"gamma1", "beta2", "running_var2"} <= set(model.parameters_)
    assert "b1" not in model.parameters_
    result = fastbackprop("predict", "--model", "bn.npz", "--data", "train.csv",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = fastbackprop("train", *FAST, "--batch-norm", "--batch-norm-momentum", "1",
                          cwd=tmp_path)
    assert_one_line_error(result, 2, r"batch_norm_momentum must be a number in \[0, 1\)")
