"""Serving latency (issue 28): prediction of one example and of a batch, on one BLAS thread.

The ``[64, 100, 10]`` relu/softmax network of ``tools/serving_latency.py``
(random weights here: the time does not depend on them), through
``Model.predict_proba`` (examples as columns) and the scikit-learn
classifier's ``predict_proba`` (rows; skipped without scikit-learn). Each
``setup`` makes the first call, so compilation is not timed. The full table,
with scikit-learn, PyTorch and onnxruntime beside, is the tool's.
"""

import pickle

import numpy as np

from fastbackprop import Model
from fastbackprop import reference as R

DIMS = [64, 100, 10]


def fitted_model(dtype):
    """A fitted Model of ``DIMS`` (unpickled: it owns its packed parameters)."""
    model = Model(DIMS, "relu", "softmax", dtype=dtype)
    model.parameters_ = R.initialize_parameters(DIMS, seed=0, dtype=np.dtype(dtype))
    model.n_iter_ = 0
    return pickle.loads(pickle.dumps(model))


def one_blas_thread():
    """threadpoolctl's limit to one BLAS thread (kept alive by the caller), or None."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(1)


class Predict:
    """``predict_proba`` of 1 and of 10,000 examples, ``Model`` and the scikit-learn class."""

    params = (["float64", "float32"], [1, 10_000])
    param_names = ["dtype", "m"]

    def setup(self, dtype, m):
        self.model = fitted_model(dtype)
        rows = np.random.default_rng(0).standard_normal((m, DIMS[0])).astype(dtype)
        self.rows, self.columns = rows, np.ascontiguousarray(rows.T)
        self.model.predict_proba(self.columns)  # loads the kernels' BLAS (SciPy's), then:
        self.limits = one_blas_thread()  # which threadpoolctl limits only once it is loaded
        self.classifier = None
        try:
            from fastbackprop.sklearn import MLPClassifier
        except ImportError:
            return
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = np.arange(200) % DIMS[-1]
            self.classifier = MLPClassifier(hidden_layer_sizes=(DIMS[1],), max_iter=1,
                                            random_state=0)
            if "backend" in self.classifier.get_params():  # the compiled prediction
                self.classifier.set_params(backend="numba")
            self.classifier.fit(rows[:1].repeat(200, 0), y)
        self.classifier.predict_proba(self.rows)

    def teardown(self, dtype, m):
        if self.limits is not None:
            self.limits.restore_original_limits()

    def time_model_predict_proba(self, dtype, m):
        self.model.predict_proba(self.columns)

    def time_sklearn_predict_proba(self, dtype, m):
        if self.classifier is None:
            raise NotImplementedError("scikit-learn is not installed")
        self.classifier.predict_proba(self.rows)
