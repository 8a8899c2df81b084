"""Train the course's one-hidden-layer network on the planar "flower" data."""

import numpy as np

from fastbackprop import reference as R
from fastbackprop.datasets import load_planar_dataset

X, Y = load_planar_dataset()
parameters, costs = R.nn_model(X, Y, n_h=4, num_iterations=10000, seed=3)
for i, cost in enumerate(costs):
    print(f"cost after iteration {i * 1000:5d}: {cost:.6f}")
print(f"training accuracy: {np.mean(R.predict(X, parameters, 'tanh') == Y):.1%}")
