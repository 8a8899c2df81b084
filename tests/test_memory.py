"""Issue 13: a mini-batch fit holds the data, the parameters, the optimiser state and one
batch's activations, never ``m`` columns of activations."""

import tracemalloc

import numpy as np
import pytest

from fastbackprop import backends
from fastbackprop.reference import initialize_parameters


@pytest.mark.parametrize("order", ["C", "F"])
def test_mini_batch_training_peak_is_the_data_parameters_state_and_one_batch(order):
    dims, m, batch = [100, 256, 128, 10], 20000, 64
    rng = np.random.default_rng(0)
    X = np.asarray(rng.random((dims[0], m)), order=order)
    Y = np.eye(dims[-1])[:, rng.integers(0, dims[-1], m)]
    parameters = initialize_parameters(dims, init="he", seed=0)
    Trainer = backends.get("numba").Trainer
    Trainer(parameters, X[:, :100], Y[:, :100], "relu", 0.001, output_activation="softmax",
            optimizer="adam", batch_size=batch).run(1)  # compile outside the measurement

    tracemalloc.start()
    try:
        trainer = Trainer(parameters, X, Y, "relu", 0.001, output_activation="softmax",
                          optimizer="adam", batch_size=batch)
        trainer.run(1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert trainer.status == "ok"

    n_parameters = sum(dims[l] * (dims[l - 1] + 1) for l in range(1, len(dims)))
    parameter_buffers = 2 * 3 * n_parameters * 8  # [theta | v | s], twice (the update's swap)
    gradient = n_parameters * 8
    one_batch = (2 * sum(dims[1:]) + dims[0] + dims[-1] + 4 + 1) * batch * 8
    # the examples as rows (a copy unless X is F-ordered), Y's likewise, weights, the order
    data = (X.nbytes if order == "C" else 0) + Y.nbytes + 2 * m * 8
    budget = data + parameter_buffers + gradient + one_batch
    m_columns_of_activations = sum(dims[1:]) * m * 8
    assert peak <= 1.05 * budget + 2**20, (peak, budget)
    assert peak < m_columns_of_activations / 2
